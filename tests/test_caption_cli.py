"""``repic caption`` through the real entry point, and the readers of its inputs (files, folders, eval files)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from repic.concepts import ConceptDatabase
from repic.errors import RepicError
from repic.inference import collect_images, image_queries, read_eval_file
from repic.records import Concept
from repic.shipped import shipped_base_path

COLOURS = {"bako": (220, 30, 30), "tumi": (30, 30, 220), "lefa": (30, 200, 30)}
FAST = ("--max-new-tokens", "6", "--threads", "1")


def flat(text: str) -> str:
    """Output with line wrapping undone, so a message reads as one line."""
    return " ".join(text.split())


@pytest.fixture(scope="module", autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)  # --threads 1 sets it for the whole process


@pytest.fixture
def build(tmp_path) -> Path:
    """A build-shaped folder: build.json pointing at a world with references and scenes, eval files and the
    held-out database (three one-colour concepts), like ``repic data build`` writes."""
    world = tmp_path / "world"
    for name, colour in COLOURS.items():
        (world / "references" / name).mkdir(parents=True)
        Image.new("RGB", (56, 56), colour).save(world / "references" / name / "0.png")
    (world / "scenes").mkdir()
    for number, name in enumerate(["bako", "tumi", "lefa", "bako"]):
        scene = Image.new("RGB", (112, 112), (240, 240, 240))
        scene.paste(Image.new("RGB", (56, 56), COLOURS[name]), (28, 28))
        scene.save(world / "scenes" / f"s{number}.png")
    out = tmp_path / "data"
    db = ConceptDatabase(out / "eval" / "database.json")
    for name in COLOURS:
        db.add(Concept(name, name, "toy", f"a {name} toy", [world / "references" / name / "0.png"]),
               images_dir=out / "eval" / "images")
    db.save()
    (out / "build.json").write_text(json.dumps({"format": "repic-build/1", "image_root": "../world"}))
    rows = [
        {"image": f"scenes/s{n}.png", "task": "ict", "concepts": [f"<{name}>"], "question": "Who is it?",
         "references": [f"references/{name}/0.png"], "reference_concepts": [f"<{name}>"]}
        for n, name in enumerate(["bako", "tumi", "lefa"])
    ]
    (out / "eval" / "single.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    oct_rows = [{"image": ["references/bako/0.png", "scenes/s0.png"], "problem": "Is <bako> in the query image?",
                 "solution": "yes", "accu_reward_method": "yes_no", "concepts": ["<bako>"]}]
    (out / "eval" / "oct.jsonl").write_text(json.dumps(oct_rows[0]) + "\n")
    return tmp_path


def test_caption_an_eval_file_then_score_it(run_cli, build):
    out = build / "out"
    result = run_cli("caption", shipped_base_path(), "--eval", build / "data" / "eval" / "single.jsonl", "--out", out, *FAST)
    assert result.exit_code == 0, result.stderr
    assert "answered 3 queries, skipped 0" in result.stdout and f"repic eval {out / 'captions.json'}" in result.stdout
    rows = json.loads((out / "captions.json").read_text())
    assert [row[0] for row in rows] == ["scenes/s0.png", "scenes/s1.png", "scenes/s2.png"]
    assert [row[1] for row in rows] == [["<bako>"], ["<tumi>"], ["<lefa>"]] and rows[0][3] == "Who is it?"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "auto" and summary["index"] is None  # skip-retrieval: no index was needed
    scored = run_cli("eval", out / "captions.json")
    assert scored.exit_code == 0 and "concept names in 3 captions" in scored.stdout


def test_retrieval_on_images_builds_the_index_then_reuses_it(run_cli, build):
    database = build / "data" / "eval" / "database.json"
    args = ("caption", shipped_base_path(), "--images", build / "world" / "scenes", "--database", database,
            "--top-k", "1", *FAST)
    first = run_cli(*args, "--out", build / "a")
    assert first.exit_code == 0, first.stderr
    assert "index: built (no saved index), 3 reference images of 3 concepts" in first.stdout
    rows = [json.loads(line) for line in (build / "a" / "captions.jsonl").read_text().splitlines()]
    # One-colour scenes on a light background: the built-in embedder finds each scene's own concept.
    assert [row["prompt_concepts"] for row in rows] == [["<bako>"], ["<tumi>"], ["<lefa>"], ["<bako>"]]
    assert all(row["mode"] == "retrieval" and row["retrieved"][0]["score"] > 0 for row in rows)
    # The images came without their concepts: retrieval's choice is recorded as shown, never as the truth,
    # so `repic eval` has nothing to score (it would score retrieval against itself).
    assert all(row["concepts"] == [] for row in rows)
    assert [row[1] for row in json.loads((build / "a" / "captions.json").read_text())] == [[]] * 4
    assert "score with" not in first.stdout and "nothing to be scored against" in flat(first.stdout)
    scored = run_cli("eval", build / "a" / "captions.json")
    assert scored.exit_code == 2 and "its caption rows (4) carry no true concepts" in flat(scored.stderr)
    second = run_cli(*args, "--out", build / "b")
    assert "index: reused (up to date)" in second.stdout


def test_mode_given_is_named_given_and_skip_still_works(run_cli, build):
    """``given`` is the mode's name (the API's and the app's word); ``skip`` is its older name, still read.
    Retrieval on an evaluation file keeps the file's truth: only unlabeled images have none."""
    eval_file = build / "data" / "eval" / "single.jsonl"
    captions = {}
    for mode in ("given", "skip", "retrieve"):
        result = run_cli("caption", shipped_base_path(), "--eval", eval_file, "--mode", mode, "--top-k", "1",
                         "--out", build / mode, *FAST)
        assert result.exit_code == 0, result.stderr
        assert "warning" not in result.stderr.lower()
        assert json.loads((build / mode / "summary.json").read_text())["mode"] == ("given" if mode == "skip" else mode)
        captions[mode] = json.loads((build / mode / "captions.json").read_text())
    assert captions["given"] == captions["skip"]
    assert [row[1] for row in captions["retrieve"]] == [["<bako>"], ["<tumi>"], ["<lefa>"]]


def test_a_question_with_a_control_token_is_refused_before_the_model_loads(run_cli, build):
    # The model folder does not exist: the question is what fails, so it was checked before loading.
    result = run_cli("caption", build / "no-such-model", "--images", build / "world" / "scenes" / "s0.png",
                     "--concepts", "bako", "--database", build / "data" / "eval" / "database.json",
                     "--question", "Who is <|image_pad|> here?", "--out", build / "out", *FAST)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "error: --question holds '<|image_pad|>', a control token of the model's chat format; remove it" in flat(
        result.stderr)
    assert not (build / "out").exists()


def test_an_image_of_extreme_aspect_ratio_is_skipped_and_the_others_captioned(run_cli, build):
    scenes = build / "world" / "scenes"
    Image.new("RGB", (402, 2), COLOURS["bako"]).save(scenes / "strip.png")  # 201:1, above the processor's 200
    out = build / "out"
    result = run_cli("caption", shipped_base_path(), "--images", scenes / "s0.png", "--images", scenes / "strip.png",
                     "--images", scenes / "s1.png", "--concepts", "bako", "--database",
                     build / "data" / "eval" / "database.json", "--out", out, *FAST)
    assert result.exit_code == 0, result.stderr
    assert "answered 2 queries, skipped 1" in result.stdout
    assert ("skipped --images, row 2: query image" in flat(result.stderr)
            and "an aspect ratio of 201, above the limit of 200" in flat(result.stderr))
    assert [Path(row[0]).name for row in json.loads((out / "captions.json").read_text())] == ["s0.png", "s1.png"]
    assert json.loads((out / "summary.json").read_text())["skipped_queries"][0]["image"].endswith("strip.png")


def test_an_image_path_with_a_nul_character_is_skipped_with_its_reason(run_cli, build):
    eval_file = build / "data" / "eval" / "single.jsonl"
    rows = [json.loads(line) for line in eval_file.read_text().splitlines()]
    rows[1]["image"] = "scenes/s\u0000.png"  # os calls on such a path raise "embedded null byte"
    rows[2]["references"] = ["references/lefa/\u0000.png"]
    eval_file.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_cli("caption", shipped_base_path(), "--eval", eval_file, "--out", build / "out", *FAST)
    assert result.exit_code == 0, result.stderr
    assert "answered 1 queries, skipped 2" in result.stdout and "Traceback" not in result.stderr
    said = flat(result.stderr)
    assert "row 2: query image path" in said and "row 3: reference image of <lefa> path" in said
    assert said.count("holds a NUL character; fix the path") == 2
    # A shell cannot pass a NUL in an argument; called in-process, the option parser refuses it, cleanly.
    refused = run_cli("caption", shipped_base_path(), "--images", "s\x00.png", "--out", build / "out2", *FAST)
    assert refused.exit_code == 2 and "--images" in refused.stderr and "Traceback" not in refused.stderr


def test_oct_rows_are_answered_and_scored(run_cli, build):
    out = build / "out"
    result = run_cli("caption", shipped_base_path(), "--eval", build / "data" / "eval" / "oct.jsonl", "--out", out, *FAST)
    assert result.exit_code == 0, result.stderr
    assert not (out / "captions.json").exists() and (out / "answers.jsonl").is_file()
    scored = run_cli("eval", out / "answers.jsonl")
    assert scored.exit_code == 0 and "recognition (OCT), 1 answer" in scored.stdout


def test_unusable_query_images_are_reported_and_skipped(run_cli, build):
    scenes = build / "world" / "scenes"
    (scenes / "notes.png").write_text("not an image")  # a missing file is refused before the model loads
    result = run_cli("caption", shipped_base_path(), "--images", scenes / "s0.png", "--images", scenes / "notes.png",
                     "--concepts", "bako", "--database", build / "data" / "eval" / "database.json",
                     "--out", build / "out", *FAST)
    assert result.exit_code == 0, result.stderr
    assert "answered 1 queries, skipped 1" in result.stdout
    assert "skipped --images, row 2: query image" in result.stderr and "does not decode" in result.stderr
    assert json.loads((build / "out" / "summary.json").read_text())["skipped"] == 1


def test_database_image_paths_start_from_the_database_image_root(run_cli, build):
    """A database whose paths start from another folder (as the official files start from their repository):
    ``--database-image-root`` names that folder; without it, the error names the folders tried."""
    database = build / "elsewhere" / "database.json"
    database.parent.mkdir()
    database.write_text(json.dumps({"concept_dict": {"<bako>": {
        "name": "bako", "image": "references/bako/0.png", "info": "a bako toy", "category": "toy"}}}))
    query = ("caption", shipped_base_path(), "--images", build / "world" / "scenes" / "s0.png", "--concepts", "bako",
             "--database", database, *FAST)
    lost = run_cli(*query, "--out", build / "lost")
    said = " ".join(lost.stderr.split())
    assert lost.exit_code == 2 and "image" in said and "of <bako> does not exist" in said
    assert (f"looked up from the database's folder {database.parent} and from the working directory; pass "
            "--database-image-root with the folder it starts from") in said
    found = run_cli(*query, "--database-image-root", build / "world", "--out", build / "found")
    assert found.exit_code == 0, found.stderr
    assert "answered 1 queries, skipped 0" in found.stdout
    # Checked before the model loads: with a model folder that does not exist, the database is still what fails.
    early = run_cli("caption", build / "no-such-model", *query[2:], "--out", build / "early")
    assert early.exit_code == 2 and "of <bako> does not exist" in " ".join(early.stderr.split())
    alone = run_cli("caption", shipped_base_path(), "--images", build / "world" / "scenes" / "s0.png",
                    "--database-image-root", build / "world", "--out", build / "alone", *FAST)
    assert alone.exit_code == 2 and "--database-image-root is for the concept database; pass --database" in alone.stderr


def test_existing_outputs_are_replaced_only_when_asked(run_cli, build):
    eval_file = build / "data" / "eval" / "single.jsonl"
    out = build / "out"
    assert run_cli("caption", shipped_base_path(), "--eval", eval_file, "--out", out, *FAST).exit_code == 0
    again = run_cli("caption", shipped_base_path(), "--eval", eval_file, "--out", out, *FAST)
    assert again.exit_code == 2 and "already holds captions.json" in again.stderr and "--overwrite" in again.stderr
    oct_file = build / "data" / "eval" / "oct.jsonl"
    replaced = run_cli("caption", shipped_base_path(), "--eval", oct_file, "--out", out, "--overwrite", *FAST)
    assert replaced.exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["answers.jsonl", "summary.json"]  # no stale captions


def empty_database(build: Path) -> Path:
    path = build / "empty" / "database.json"
    ConceptDatabase(path).save()
    return path


def database_with_a_missing_image(build: Path) -> Path:
    (build / "data" / "eval" / "images" / "tumi" / "0.png").unlink()
    return build / "data" / "eval" / "database.json"


@pytest.mark.parametrize(
    "extra, message",
    [
        ((), "give either --eval FILE or --images PATH"),
        (("--eval", "E", "--images", "I"), "give either --eval FILE or --images PATH"),
        (("--images", "I"), "retrieval needs a concept database"),
        (("--images", "I", "--database", "DB", "--top-k", "4"), "top 4 concepts: .* has 3 concept.*between 1 and 3"),
        (("--images", "I", "--database", "EMPTY"), "has no concepts to retrieve"),
        (("--images", "I", "--database", "MISSING"), "tumi/0.png of <tumi> does not exist"),
        (("--images", "I", "--concepts", "bako"), "needs the Info of <bako> .* pass --database"),
        (("--eval", "E", "--concepts", "bako"), "--concepts and --question are for --images"),
        (("--eval", "E", "--mode", "sometimes"), "--mode must be one of auto, given, retrieve"),
        (("--eval", "E", "--batch-size", "0"), "batch_size must be at least 1"),
        (("--eval", "E", "--attn", "fast"), "unknown attention implementation 'fast'"),
        (("--eval", "NOFILE"), "does not exist"),
        (("--images", "EMPTYDIR", "--database", "DB"), "holds no image files"),
    ],
)
def test_errors_are_one_clear_line(run_cli, build, extra, message):
    (build / "emptydir").mkdir()
    names = {
        "E": build / "data" / "eval" / "single.jsonl", "I": build / "world" / "scenes" / "s0.png",
        "DB": build / "data" / "eval" / "database.json", "EMPTY": empty_database(build),
        "MISSING": database_with_a_missing_image(build) if "MISSING" in extra else None,
        "NOFILE": build / "nofile.jsonl", "EMPTYDIR": build / "emptydir",
    }
    args = [str(names.get(value, value)) for value in extra]
    result = run_cli("caption", shipped_base_path(), *args, "--out", build / "out", *FAST)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "error:" in result.stderr and "Traceback" not in result.stderr
    assert re.search(message, " ".join(result.stderr.split())), result.stderr


# ------------------------------------------------------------------------------------------ query readers
def test_eval_rows_resolve_against_the_builds_image_root(build):
    queries = read_eval_file(build / "data" / "eval" / "single.jsonl")
    assert [(q.label, q.image, q.task, q.concepts) for q in queries][0] == (
        "scenes/s0.png", (build / "world" / "scenes" / "s0.png").resolve(), "ict", ["<bako>"]
    )
    assert queries[0].references == [("<bako>", (build / "world" / "references" / "bako" / "0.png").resolve())]
    oct_query = read_eval_file(build / "data" / "eval" / "oct.jsonl")[0]
    assert (oct_query.task, oct_query.solution, oct_query.image.name, len(oct_query.references)) == ("oct", "yes", "s0.png", 1)


def test_official_query_files_map_images_to_concepts(tmp_path):
    path = tmp_path / "2_concept_query_templates.json"
    path.write_text(json.dumps({"a.jpg": ["<bo>", "<kim>"], "b.jpg": ["bo"]}))
    queries = read_eval_file(path)
    assert [(q.label, q.concepts, q.task) for q in queries] == [("a.jpg", ["<bo>", "<kim>"], "ict_multi"), ("b.jpg", ["<bo>"], "ict")]
    # The official scripts cycle their three questions over the rows.
    assert [q.question for q in queries] == ["Give a personalized caption of this image.", "Give a personal caption of the image."]


@pytest.mark.parametrize(
    "row, message",
    [
        ('{"image": "a.png"}', r"rows\.jsonl, row 1: concepts must be a non-empty list of tags"),
        ('{"concepts": ["<a>"]}', r"row 1: a caption row needs 'image'"),
        ('{"image": "a.png", "problem": "Is <a> here?", "accu_reward_method": "yes_no", "solution": "maybe"}',
         r"row 1: an oct \(yes_no\) solution must be \"yes\" or \"no\""),
        ('{"image": "a.png", "concepts": ["<a>"], "task": "captioning"}', r"unknown task 'captioning' in .*rows\.jsonl, row 1"),
        ('{"image": "a.png", "concepts": ["<a>"], "references": ["r.png"]}', r"1 references but 0|reference_concepts"),
        ("[1, 2]", r"row 1: expected a JSON object"),
    ],
)
def test_malformed_eval_rows_name_the_file_and_row(tmp_path, row, message):
    path = tmp_path / "rows.jsonl"
    path.write_text(row + "\n")
    with pytest.raises(RepicError, match=message):
        read_eval_file(path)


def test_folders_are_searched_for_images_in_order(tmp_path):
    for name in ("b/2.png", "a.jpg", "b/1.JPEG", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in collect_images([tmp_path])] == ["a.jpg", "b/1.JPEG", "b/2.png"]
    queries = image_queries([tmp_path / "a.jpg"], concepts=["bo", "<kim>"], question="Who?")
    assert (queries[0].concepts, queries[0].task, queries[0].question) == (["<bo>", "<kim>"], "ict_multi", "Who?")
