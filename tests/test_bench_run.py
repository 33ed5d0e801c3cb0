"""``repic.bench.run`` with the shipped tiny base on a small benchmark folder, and ``repic bench run`` / ``score``.

The folder holds the shipped concept database (``repic/assets/concepts``) and its example scenes, with rows
of all four kinds; answers are a few tokens long so every run takes a second or two.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from repic.bench.rows import BenchRow, Manifest, write_manifest, write_rows
from repic.bench.run import PREDICTIONS, RUN_JSON, choice_permutation, read_predictions, run_benchmark
from repic.bench.score import RESULTS_JSON, score_benchmark
from repic.errors import RepicError

CONCEPTS = Path(__file__).resolve().parents[1] / "src" / "repic" / "assets" / "concepts"
BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_run.py"
TOKENS = 6

ROWS = [
    BenchRow("rec-pos", "recognition", "Is <dana> here?", "yes", image="images/dana.png", concepts=["<dana>"]),
    BenchRow("rec-same", "recognition", "Is <goda> here?", "no", image="images/dana.png", concepts=["<goda>"],
             negative="same_category"),
    BenchRow("rec-other", "recognition", "Is <geza> here?", "no", image="images/fudu_dape.png",
             concepts=["<geza>"], negative="other_category"),
    BenchRow("cap-1", "caption", "Give a personalized caption of this image.", [], image="images/fudu_dape.png",
             concepts=["<fudu>", "<dape>"]),
    BenchRow("cap-2", "caption", "", [], image="images/dana.png", concepts=["<dana>"]),
    BenchRow("mc-text", "choice", "What kind of object is <dana>?", 0, concepts=["<dana>"],
             options=["cat", "robot", "cup", "car"]),
    BenchRow("mc-image", "choice", "Which object is in the image?", 1, image="images/dana.png",
             options=["robot", "cat", "bird"]),
    BenchRow("open-image", "open", "What colour is <dana>?", "purple", image="images/dana.png", concepts=["<dana>"]),
    BenchRow("open-text", "open", "What colour is the sky?", "blue"),
]


@pytest.fixture(scope="module")
def policy():
    from repic.inference import load_for_captioning

    return load_for_captioning("tiny-base", device="cpu")


def make_folder(folder: Path, rows=ROWS) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(CONCEPTS / "database.json", folder / "database.json")
    shutil.copytree(CONCEPTS / "references", folder / "references")
    shutil.copytree(CONCEPTS / "examples", folder / "images")
    counts = write_rows(folder, rows)
    write_manifest(folder, Manifest("test", "tests", counts, 16))
    return folder


@pytest.fixture
def bench(tmp_path) -> Path:
    return make_folder(tmp_path / "bench")


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def bench_cli(run_cli):
    """``repic bench ...`` through the real entry point."""
    return lambda *args: run_cli("bench", *args)


def test_every_row_answered_with_its_prompt_and_the_choice_order_recorded(policy, bench, tmp_path):
    out = tmp_path / "out"
    seen = []
    result = run_benchmark(policy, bench, out, batch_size=4, max_new_tokens=TOKENS, seed=3, progress=seen.append)
    assert (result.rows, result.answered, result.skipped, result.resumed) == (9, 9, 0, 0)
    lines = {line["id"]: line for line in lines_of(out / PREDICTIONS)}
    assert set(lines) == {row.id for row in ROWS}
    assert all(isinstance(line["answer"], str) and line["kind"] == row.kind
               for row in ROWS for line in [lines[row.id]])
    # references shown: the recognition concept, a caption's concepts, none for a question without concepts
    assert lines["rec-same"]["references"] == ["<goda>"] and lines["cap-1"]["references"] == ["<fudu>", "<dape>"]
    assert lines["open-text"]["references"] == [] and lines["mc-image"]["references"] == []
    for row_id, options in (("mc-text", 4), ("mc-image", 3)):
        assert lines[row_id]["permutation"] == choice_permutation(row_id, options, 3)
    assert "permutation" not in lines["open-image"]
    assert choice_permutation("mc-text", 4, 3) != choice_permutation("mc-text", 4, 4) or \
        choice_permutation("mc-image", 3, 3) != choice_permutation("mc-image", 3, 4)  # the seed matters
    record = json.loads((out / RUN_JSON).read_text())
    assert record["model"] == str(policy.info.source) and record["status"] == "finished"
    assert (record["seed"], record["max_new_tokens"], record["batch_size"], record["answered"]) == (3, TOKENS, 4, 9)
    assert record["bench_dir"] == str(bench.resolve())
    assert seen and seen[-1].done == seen[-1].total == 9


def test_batched_answers_equal_one_at_a_time(policy, bench, tmp_path):
    batched = run_benchmark(policy, bench, tmp_path / "b", batch_size=8, max_new_tokens=TOKENS)
    single = run_benchmark(policy, bench, tmp_path / "s", max_new_tokens=TOKENS, one_at_a_time=True)
    answers = [{key: line["answer"] for key, line in read_predictions(result.predictions)[0].items()}
               for result in (batched, single)]
    assert answers[0] == answers[1] and len(answers[0]) == 9
    assert json.loads(single.run_json.read_text())["one_at_a_time"] is True


def test_an_interrupt_loses_at_most_the_running_batch_and_resume_skips_finished_rows(policy, bench, tmp_path):
    out = tmp_path / "out"
    full = run_benchmark(policy, bench, tmp_path / "full", batch_size=2, max_new_tokens=TOKENS)
    expected = {key: line["answer"] for key, line in read_predictions(full.predictions)[0].items()}

    def stop_after_two_batches(progress):
        if progress.done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_benchmark(policy, bench, out, batch_size=2, max_new_tokens=TOKENS, progress=stop_after_two_batches)
    assert len(lines_of(out / PREDICTIONS)) == 4  # two whole batches on disk
    # the interrupt tore a line as it was written: a partial last line
    with (out / PREDICTIONS).open("a") as handle:
        handle.write('{"id": "open-text", "kind": "op')
    resumed = run_benchmark(policy, bench, out, batch_size=2, max_new_tokens=TOKENS)
    assert (resumed.resumed, resumed.answered) == (4, 5)
    lines = lines_of(out / PREDICTIONS)  # every line parses: the torn one was dropped before appending
    assert len(lines) == 9 and {line["id"] for line in lines} == set(expected)
    assert {line["id"]: line["answer"] for line in lines} == expected
    # truncated by hand to three lines and half of the fourth: only the rest is asked again
    text = (out / PREDICTIONS).read_text().splitlines(keepends=True)
    (out / PREDICTIONS).write_text("".join(text[:3]) + text[3][:10])
    again = run_benchmark(policy, bench, out, batch_size=4, max_new_tokens=TOKENS)
    assert (again.resumed, again.answered) == (3, 6)
    assert {line["id"]: line["answer"] for line in lines_of(out / PREDICTIONS)} == expected
    finished = run_benchmark(policy, bench, out, batch_size=4, max_new_tokens=TOKENS)
    assert (finished.resumed, finished.answered, finished.seconds) == (9, 0, 0.0)


def test_resume_refuses_another_run_and_restart_starts_over(policy, bench, tmp_path):
    out = tmp_path / "out"
    run_benchmark(policy, bench, out, max_new_tokens=TOKENS, limit=2)
    with pytest.raises(RepicError, match="seed was 0, now 1"):
        run_benchmark(policy, bench, out, max_new_tokens=TOKENS, seed=1)
    restarted = run_benchmark(policy, bench, out, max_new_tokens=TOKENS, seed=1, resume=False, limit=3)
    assert (restarted.resumed, restarted.answered) == (0, 3) and len(lines_of(out / PREDICTIONS)) == 3
    more = run_benchmark(policy, bench, out, max_new_tokens=TOKENS, seed=1)  # --limit grows: the rest
    assert (more.resumed, more.answered) == (3, 6)


def test_unusable_rows_are_recorded_skipped_and_scored_wrong(policy, tmp_path):
    rows = [*ROWS[:2],
            BenchRow("no-image", "recognition", "?", "yes", image="images/missing.png", concepts=["<dana>"]),
            BenchRow("no-concept", "caption", "", [], image="images/dana.png", concepts=["<nobody>"])]
    bench = make_folder(tmp_path / "bench", rows)
    result = run_benchmark(policy, bench, tmp_path / "out", max_new_tokens=TOKENS)
    assert (result.answered, result.skipped) == (2, 2)
    reasons = dict(result.skipped_rows)
    assert "missing.png does not exist" in reasons["no-image"] and "no concept <nobody>" in reasons["no-concept"]
    lines = {line["id"]: line for line in lines_of(result.predictions)}
    assert lines["no-image"]["answer"] is None and lines["no-image"]["skipped"] == reasons["no-image"]
    scored = score_benchmark(result.predictions, bench)
    assert scored["recognition"]["skipped"] == 1 and scored["recognition"]["positive"]["rows"] == 2
    assert scored["caption"]["skipped"] == 1 and scored["caption"]["strict"]["none"] == 1
    # a skipped row is asked again on resume (its image may have been fixed)
    shutil.copy(bench / "images" / "dana.png", bench / "images" / "missing.png")
    again = run_benchmark(policy, bench, tmp_path / "out", max_new_tokens=TOKENS)
    assert (again.resumed, again.answered, again.skipped) == (2, 1, 1)


def test_the_scorer_maps_letters_back_through_the_recorded_permutation(policy, bench, tmp_path):
    result = run_benchmark(policy, bench, tmp_path / "out", max_new_tokens=TOKENS, seed=5)
    lines = lines_of(result.predictions)
    choice = {line["id"]: line for line in lines if line["kind"] == "choice"}
    # seed 5: mc-text shows options [3, 1, 2, 0] (its right option 0 is "D"); mc-image shows [1, 0, 2] (its
    # right option 1 is "A")
    assert choice["mc-text"]["permutation"] == [3, 1, 2, 0] and choice["mc-image"]["permutation"] == [1, 0, 2]

    def score_with(answers: dict[str, str]) -> dict:
        for row_id, answer in answers.items():
            choice[row_id]["answer"] = answer
        result.predictions.write_text("".join(json.dumps(line) + "\n" for line in lines))
        return score_benchmark(result.predictions, bench)["choice"]

    assert score_with({"mc-text": "D", "mc-image": "A"})["correct"] == 2
    # the letters of the right options in the source's order are wrong as shown: A showed option 3, B option 0
    assert score_with({"mc-text": "A", "mc-image": "B"})["correct"] == 0
    assert score_with({"mc-text": "(D) cat", "mc-image": "cat"})["correct"] == 2  # a letter, or the option's text


def test_cli_run_then_score(bench_cli, bench, tmp_path):
    out = tmp_path / "out"
    ran = bench_cli("run", "tiny-base", bench, "--out", out, "--max-new-tokens", str(TOKENS), "--batch-size", "4",
                    "--threads", "1", "--seed", "2")
    assert ran.exit_code == 0, ran.stderr
    assert "answered 9 rows, skipped 0, 0 already answered before (of 9)" in ran.stdout
    assert f"repic bench score {out}" in ran.stdout and "Traceback" not in ran.stderr
    again = bench_cli("run", "tiny-base", bench, "--out", out, "--max-new-tokens", str(TOKENS), "--seed", "2")
    assert again.exit_code == 0 and "all 9 rows were already answered" in again.stdout
    scored = bench_cli("score", out)  # the benchmark folder read from run.json
    assert scored.exit_code == 0, scored.stderr
    for text in ("recognition, 3 rows", "balanced (mean of the two)", "same category", "caption names, 2 captions",
                 "official (two)", "strict", "multiple choice, 2 rows", "source's order", "order shown",
                 "open questions, 2 rows", "abstentions (counted wrong)", "model: tiny-base"):
        assert text in scored.stdout, text
    results = json.loads((out / RESULTS_JSON).read_text())
    assert results["rows"]["scored"] == 9 and results["model"] == "tiny-base"
    as_json = bench_cli("score", out / PREDICTIONS, bench, "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == results
    restarted = bench_cli("run", "tiny-base", bench, "--out", out, "--max-new-tokens", "4", "--restart",
                          "--limit", "2", "--threads", "1")
    assert restarted.exit_code == 0 and "answered 2 rows" in restarted.stdout
    partial = bench_cli("score", out)
    assert partial.exit_code == 0 and "7 rows of the folder have no prediction" in " ".join(partial.stderr.split())


def test_cli_errors_are_clear_and_exit_non_zero(bench_cli, bench, tmp_path):
    not_a_bench = bench_cli("run", "tiny-base", tmp_path, "--out", tmp_path / "o")
    assert not_a_bench.exit_code == 2 and "holds no manifest.json" in not_a_bench.stderr
    assert "Traceback" not in not_a_bench.stderr and not (tmp_path / "o").exists()
    no_model = bench_cli("run", tmp_path / "no-such-model", bench, "--out", tmp_path / "o")
    assert no_model.exit_code == 2 and "Traceback" not in no_model.stderr and not (tmp_path / "o").exists()
    bad_limit = bench_cli("run", "tiny-base", bench, "--out", tmp_path / "o", "--limit", "0")
    assert bad_limit.exit_code == 2 and "--limit must be at least 1" in bad_limit.stderr
    hopeless = make_folder(tmp_path / "hopeless", [
        BenchRow("r", "recognition", "?", "yes", image="images/missing.png", concepts=["<dana>"])])
    nothing = bench_cli("run", "tiny-base", hopeless, "--out", tmp_path / "h", "--threads", "1")
    assert nothing.exit_code == 1 and "no row could be answered" in nothing.stderr
    assert "skipped row r: query image" in " ".join(nothing.stderr.split())
    missing = bench_cli("score", tmp_path / "nowhere")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    stray = tmp_path / "stray" / PREDICTIONS
    stray.parent.mkdir()
    stray.write_text(json.dumps({"id": "elsewhere", "kind": "open", "answer": "x"}) + "\n")
    no_bench = bench_cli("score", stray)
    assert no_bench.exit_code == 2 and "give the benchmark folder" in " ".join(no_bench.stderr.split())
    unmatched = bench_cli("score", stray, bench)
    assert unmatched.exit_code == 2 and "no prediction in" in " ".join(unmatched.stderr.split())
    assert not (stray.parent / RESULTS_JSON).exists()


def test_the_benchmark_script_runs_small(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_run_script", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    summary = module.main(["--rows", "8", "--rounds", "1", "--max-new-tokens", "4", "--batch-size", "4"])
    assert summary["rows"] == 8 and summary["identical_answers"] == 8
    assert summary["batched_rows_per_s"] > 0 and summary["one_at_a_time_rows_per_s"] > 0
