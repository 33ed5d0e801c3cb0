"""``repic eval judge``: verdict parsing and aggregation by hand, then end to end against ``repic serve``'s own
``/v1/chat/completions`` on loopback (a real server, the real ``openai`` client)."""

from __future__ import annotations

import json

import httpx
import pytest

from repic.evaluate.judge import (
    JudgeCache,
    Judgement,
    JudgePair,
    combine,
    pair_rows,
    parse_verdict,
    read_pairs,
    summarize,
)
from repic.evaluate.metrics import CaptionRow
from repic.prompts import judge_prompt

PAIR = JudgePair("a.png", ("<bo>",), "Give a caption.", "first", "second")


def test_parse_verdict():
    assert [parse_verdict(t) for t in ("A", " b.", "Tie", "equal", "**A**", "Verdict: B", "Caption B is better")] == \
        ["A", "B", "tie", "tie", "A", "B", "B"]
    assert [parse_verdict(t) for t in ("A photo of <bo> on a sofa.", "yes", "", None, "Neither")] == [None] * 5


def test_position_swapped_outcomes():
    # (verdict with A first, verdict with B first) -> outcome for file A
    table = {("A", "B"): "win", ("B", "A"): "loss", ("A", "A"): "tie", ("B", "B"): "tie",
             ("tie", "tie"): "tie", ("A", "tie"): "tie", (None, "B"): "invalid", ("A", None): "invalid"}
    assert {key: combine(*key) for key in table} == table


def test_summary_arithmetic():
    judgements = ([Judgement(PAIR, "A", "B", "win")] * 3 + [Judgement(PAIR, "A", "A", "tie")]
                  + [Judgement(PAIR, "B", "A", "loss")] + [Judgement(PAIR, "x", "A", "invalid")])
    summary = summarize(judgements)
    assert (summary.wins, summary.ties, summary.losses, summary.invalid) == (3, 1, 1, 1)
    assert summary.score == pytest.approx((3 + 0.5) / 5)  # ties count half, invalid pairs are left out
    assert 0 <= summary.low <= summary.score <= summary.high <= 1
    assert summary.consistency == pytest.approx(4 / 5)  # the tie came from two disagreeing orders
    assert summarize(judgements) == summary  # the bootstrap is seeded
    assert summarize([Judgement(PAIR, None, None, "invalid")]).score is None


def test_pairs_by_image_and_question():
    a = [CaptionRow("x.png", ("<bo>",), "a1", "q"), CaptionRow("x.png", ("<bo>",), "a2", "q"),
         CaptionRow("y.png", ("<kim>",), "a3", "q"), CaptionRow("z.png", (), "a4", "q")]
    b = [CaptionRow("y.png", ("<kim>",), "b3", "q"), CaptionRow("x.png", ("<bo>",), "b1", "q"),
         CaptionRow("x.png", ("<bo>",), "b2", "q"), CaptionRow("w.png", (), "b5", "q")]
    pairs, only_a, only_b = pair_rows(a, b)
    assert [(p.first, p.second) for p in pairs] == [("a1", "b1"), ("a2", "b2"), ("a3", "b3")]
    assert ([row.image for row in only_a], [row.image for row in only_b]) == (["z.png"], ["w.png"])


def _rows(folder, name, rows):
    (folder / name).write_text(json.dumps(rows))
    return folder / name


def test_rows_without_a_partner_are_refused_naming_both_counts(run_cli, tmp_path):
    """6 predictions against 3 references: judging the 3 shared pairs would report a score over half the
    file, unsaid. Refused before any request (the endpoint does not exist) and before writing anything."""
    predictions = [[f"{n}.png", ["<bo>"], f"A photo {n} of <bo>.", "Give a caption."] for n in range(6)]
    a = _rows(tmp_path, "a.json", predictions)
    b = _rows(tmp_path, "b.json", [[image, tags, "A photo.", question] for image, tags, _, question in predictions[:3]])
    args = ("--model", "m", "--base-url", "http://127.0.0.1:9/v1")
    result = run_cli("eval", "judge", a, b, "--out", tmp_path / "judged", *args)
    said = " ".join(result.stderr.split())
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert f"A ({a}) has 6 caption rows and B ({b}) has 3" in said
    assert "3 of A ('3.png' ('Give a caption.'), '4.png' ('Give a caption.'), '5.png' ('Give a caption.'))" in said
    assert not (tmp_path / "judged" / "summary.json").exists()
    # The other way round, and a malformed row (which would drop out the same way), are refused alike.
    swapped = run_cli("eval", "judge", b, a, "--out", tmp_path / "judged", *args)
    assert swapped.exit_code == 2 and "3 of B ('3.png'" in " ".join(swapped.stderr.split())
    broken = _rows(tmp_path, "c.json", [*predictions[:3], ["6.png", ["<bo>"]]])
    malformed = run_cli("eval", "judge", broken, b, "--out", tmp_path / "judged", *args)
    assert malformed.exit_code == 2 and "skipped 1 malformed row" in " ".join(malformed.stderr.split())


def test_captions_of_unlabeled_images_are_judged_without_claimed_concepts(tmp_path):
    """Rows without true concepts pair like the others; the judge is told the concepts are not known."""
    rows = [["a.png", [], "A photo.", "Give a caption."]]
    pairs = read_pairs(_rows(tmp_path, "a.json", rows), _rows(tmp_path, "b.json", rows))
    assert [(pair.image, pair.concepts) for pair in pairs] == [("a.png", ())]
    assert "The personal concepts in this image: not known." in judge_prompt((), "q", "x", "y")


def test_cache_survives_a_torn_line(tmp_path):
    path = tmp_path / "cache.jsonl"
    cache = JudgeCache(path)
    cache.put("k1", "A")
    with path.open("a") as handle:
        handle.write('{"key": "k2", "ans')  # an interrupted append
    assert JudgeCache(path).answers == {"k1": "A"}


# ------------------------------------------------------------------------------------------ end to end
pytest.importorskip("fastapi")
pytest.importorskip("openai")
from serving import EXAMPLES, Server, copy_shipped_database, free_port  # noqa: E402

KEY = "judge-key"


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("judge-server")
    running = Server(["serve", "--database", copy_shipped_database(folder), "--api-key", KEY, "--max-new-tokens", "8"],
                     free_port(), folder / "server.log")
    yield running
    running.stop()


def _caption_files(folder):
    for name in ("dana.png", "fudu_dape.png"):
        (folder / name).write_bytes((EXAMPLES / name).read_bytes())
    a = [["dana.png", ["<dana>"], "A photo of <dana>, a purple cat with white stripes.", "Give a caption."],
         ["fudu_dape.png", ["<fudu>", "<dape>"], "<fudu> stands beside <dape>.", "Give a caption."]]
    b = [[image, concepts, "A photo of a cat.", question] for image, concepts, _, question in a]
    (folder / "a.json").write_text(json.dumps(a))
    (folder / "b.json").write_text(json.dumps(b))
    return folder / "a.json", folder / "b.json"


def _prompts_answered(server) -> int:
    return httpx.get(server.url + "/healthz").json()["batching"]["prompts"]


@pytest.mark.slow
def test_judge_end_to_end_against_repic_serve(judge_server, run_cli, tmp_path, monkeypatch):
    a, b = _caption_files(tmp_path)
    out = tmp_path / "judged"
    args = ["eval", "judge", a, b, "--out", out, "--model", "tiny", "--base-url", judge_server.url + "/v1"]
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    before = _prompts_answered(judge_server)
    result = run_cli(*args)
    # The tiny base is no judge: it answers, but with no verdict, and the command says so (status 1).
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "no usable verdict" in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs"] == 2 and summary["requests"] == 4  # two pairs, both orders, greedy: no retries
    assert summary["wins"] + summary["ties"] + summary["losses"] + summary["invalid"] == 2
    assert _prompts_answered(judge_server) - before == 4
    rows = [json.loads(line) for line in (out / "judgements.jsonl").read_text().splitlines()]
    assert [row["image"] for row in rows] == ["dana.png", "fudu_dape.png"]
    assert all(isinstance(row["answer_ab"], str) and isinstance(row["answer_ba"], str) for row in rows)
    assert len((out / "cache.jsonl").read_text().splitlines()) == 4

    again = run_cli(*args)  # the same run folder: every answer comes from its cache
    assert again.exit_code == 1 and "4 answers cached" in again.stdout
    assert json.loads((out / "summary.json").read_text())["requests"] == 0
    assert _prompts_answered(judge_server) - before == 4


@pytest.mark.slow
def test_judge_refusals(judge_server, run_cli, tmp_path, monkeypatch):
    a, b = _caption_files(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    base = ["eval", "judge", a, b, "--model", "tiny"]
    refused = run_cli(*base, "--out", tmp_path / "o1", "--base-url", judge_server.url + "/v1")
    assert refused.exit_code == 2 and "refused the request (401" in refused.stderr
    down = run_cli(*base, "--out", tmp_path / "o2", "--base-url", f"http://127.0.0.1:{free_port()}/v1", "--retries", "1")
    assert down.exit_code == 2 and "failed 2 times" in down.stderr
    (tmp_path / "dana.png").unlink()
    missing = run_cli(*base, "--out", tmp_path / "o3", "--base-url", judge_server.url + "/v1")
    assert missing.exit_code == 2 and "--image-root" in missing.stderr
    (tmp_path / "c.json").write_text(json.dumps([["other.png", ["<bo>"], "x", "q"]]))
    unrelated = run_cli("eval", "judge", a, tmp_path / "c.json", "--model", "m", "--out", tmp_path / "o4",
                        "--base-url", judge_server.url + "/v1")
    assert unrelated.exit_code == 2 and "share no (image, question)" in unrelated.stderr
    assert run_cli("eval", "judge", a, b, "--model", "m", "--out", tmp_path / "o5").exit_code == 2
