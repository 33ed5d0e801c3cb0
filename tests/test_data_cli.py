"""``repic data synth | build | inspect | import``, run through the real entry point."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

SMALL_WORLD = [
    "--train-concepts", "6", "--heldout-concepts", "4",
    "--scenes", "scenes_per_train_concept=2,n_train_two=4,n_train_four=2,n_train_negative=2",
    "--scenes", "n_eval_single=2,n_eval_two=2,n_eval_four=1,n_eval_negative=1",
]  # fmt: skip


def flat(text: str) -> str:
    """Output with line wrapping undone, so a message reads as one line."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small synthetic collection made through the CLI (shared: generating it is the slow part)."""
    from repic.cli import main

    out = tmp_path_factory.mktemp("cli") / "world"
    try:
        main(["data", "synth", "--out", str(out), *SMALL_WORLD])
    except SystemExit as exc:
        assert exc.code in (0, None)
    return out


def test_synth_prints_the_world_and_its_size(run_cli, tmp_path):
    result = run_cli("data", "synth", "--out", tmp_path / "w", "--seed", "3", *SMALL_WORLD)
    assert result.exit_code == 0, result.stderr
    # 6 + 4 concepts; scenes: 6 * 2 single + 4 two + 2 four + 2 negative + 2 + 2 + 1 + 1 held out = 26
    assert "wrote 10 concepts and 26 scenes in" in flat(result.stdout) and " MB" in result.stdout
    assert (tmp_path / "w" / "collection.json").is_file()
    # Progress as lines, like other commands (a log shows them): about ten per stage, the last at its end.
    lines = result.stdout.splitlines()
    progress = [line for line in lines if line.startswith(("references: ", "scenes: "))]
    assert progress[-1] == "scenes: 26/26" and "references: 20/20" in progress  # 10 concepts x 2 references
    assert 2 <= len(progress) <= 22 and lines.index(progress[-1]) < lines.index(next(
        line for line in lines if line.startswith("wrote ")))


def test_build_then_inspect(run_cli, world, tmp_path):
    out = tmp_path / "build"
    result = run_cli(
        "data", "build", "--concepts", world, "--out", out, "--counts", "oct=10,vlt=6",
        "--counts", "ict=6,ict_multi=4", "--eval-counts", "oct=4,vlt=2",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    text = flat(result.stdout)
    assert "│ oct │ yes_no │ 10 │ 38% │ 2.0 │ yes 5 / no 5 │" in text  # 10 of 26 samples
    assert "evaluation (held-out concepts): single 2, two 2, four 1, oct 4, vlt 2" in text
    manifest = json.loads((out / "build.json").read_text())
    assert manifest["counts"]["train"] == {"oct": 10, "vlt": 6, "ict": 6, "ict_multi": 4}
    inspected = run_cli("data", "inspect", out / "train.jsonl")
    assert inspected.exit_code == 0, inspected.stderr
    assert "26 samples, every image decodes" in flat(inspected.stdout)


def test_tasks_left_out_of_counts_keep_their_default(run_cli, world, tmp_path):
    result = run_cli("data", "build", "--concepts", world, "--out", tmp_path / "b", "--counts", "vlt=0")
    assert result.exit_code == 0, result.stderr
    counts = json.loads((tmp_path / "b" / "build.json").read_text())["config"]["counts"]
    assert counts == {"oct": 600, "vlt": 0, "ict": 500, "ict_multi": 500}
    # The small world cannot fill 600 OCT samples: the shortfall is printed, not hidden.
    assert "notice: oct (train): built" in flat(result.stdout)


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["--counts", "oct=many"], "--counts 'oct=many' is not KEY=N"),
        (["--counts", "caption=3"], "unknown task 'caption'"),
        (["--oct-positive-ratio", "2"], "oct_positive_ratio is 2.0; a ratio is between 0 and 1"),
        (["--box-space", "pixels"], "unknown box space 'pixels'"),
        (["--ict-absent-references", "1.5"], "ict_absent_references is 1.5; a ratio is between 0 and 1"),
    ],
)
def test_build_option_errors(run_cli, world, tmp_path, arguments, expected):
    result = run_cli("data", "build", "--concepts", world, "--out", tmp_path / "b", *arguments)
    assert result.exit_code == 2
    assert expected in flat(result.stderr)
    assert not (tmp_path / "b").exists()


def test_build_with_absent_references_in_single_concept_captions(run_cli, world, tmp_path):
    counts = ["--counts", "oct=0,vlt=0,ict=6,ict_multi=0", "--eval-counts", "oct=0,vlt=0"]
    paper = run_cli("data", "build", "--concepts", world, "--out", tmp_path / "paper", *counts)
    assert paper.exit_code == 0, paper.stderr
    paper_config = json.loads((tmp_path / "paper" / "build.json").read_text())["config"]
    assert "ict_absent_references" not in paper_config  # the paper's builds record what they always did
    result = run_cli(
        "data", "build", "--concepts", world, "--out", tmp_path / "b", *counts,
        "--ict-absent-references", "0.5",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    # 3 of the 6 samples show two references: (3 x 3 + 3 x 2) / 6 = 2.5 images per sample
    assert "│ ict │ yes_no_name │ 6 │ 100% │ 2.5 │ │" in flat(result.stdout)
    assert json.loads((tmp_path / "b" / "build.json").read_text())["config"]["ict_absent_references"] == 0.5
    rows = [json.loads(line) for line in (tmp_path / "b" / "train.jsonl").read_text().splitlines()]
    assert sorted(len(row["image"]) for row in rows) == [2, 2, 2, 3, 3, 3]


def test_build_errors_for_missing_collection_and_existing_build(run_cli, world, tmp_path):
    missing = run_cli("data", "build", "--concepts", tmp_path / "nowhere", "--out", tmp_path / "b")
    assert missing.exit_code == 2 and "does not exist" in flat(missing.stderr)
    counts = ["--counts", "oct=2,vlt=0,ict=0,ict_multi=0"]
    assert run_cli("data", "build", "--concepts", world, "--out", tmp_path / "b", *counts).exit_code == 0
    again = run_cli("data", "build", "--concepts", world, "--out", tmp_path / "b", *counts)
    assert again.exit_code == 2 and "pass --overwrite" in flat(again.stderr)
    forced = run_cli("data", "build", "--concepts", world, "--out", tmp_path / "b", *counts, "--overwrite")
    assert forced.exit_code == 0, forced.stderr


@pytest.mark.parametrize("damage", ["reference deleted", "scene replaced by text"])
def test_build_refuses_a_collection_with_an_unusable_image(run_cli, world, tmp_path, damage):
    copy = tmp_path / "world"
    shutil.copytree(world, copy)
    if damage == "reference deleted":
        image = sorted((copy / "references").rglob("*.png"))[0]
        image.unlink()
        reason = "does not exist"
    else:
        image = sorted((copy / "scenes").rglob("*.png"))[0]
        image.write_text("not an image")
        reason = "does not decode as an image"
    result = run_cli("data", "build", "--concepts", copy, "--out", tmp_path / "b")
    said = flat(result.stderr)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert f"{image.relative_to(copy)} {reason}" in said and "restore them" in said
    assert not (tmp_path / "b").exists()  # nothing written, not even half a build


def test_synth_rejects_unknown_scene_settings(run_cli, tmp_path):
    result = run_cli("data", "synth", "--out", tmp_path / "w", "--scenes", "n_train_five=3")
    assert result.exit_code == 2
    assert "unknown world setting(s) n_train_five" in flat(result.stderr)


def test_inspect_lists_missing_images_and_the_fix(run_cli, tmp_path):
    rows = [{"image": f"gone{i}.png", "problem": "Q", "solution": "yes", "accu_reward_method": "yes_no"}
            for i in range(2)]  # fmt: skip
    (tmp_path / "s.json").write_text(json.dumps(rows))
    result = run_cli("data", "inspect", tmp_path / "s.json")
    text = flat(result.stderr)
    assert result.exit_code == 2
    assert "2 image file(s) not found" in text and "gone0.png" in text and "gone1.png" in text
    assert "--image-root" in text


def photo_folders(root):
    for name, count in (("bo", 2), ("kim", 2)):
        for i in range(count):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (56, 56)).save(root / name / f"{i}.png")


def test_import_folders_then_build(run_cli, tmp_path):
    photo_folders(tmp_path / "photos")
    result = run_cli(
        "data", "import", "folders", tmp_path / "photos", "--out", tmp_path / "col", "--category", "dog",
        "--heldout", "kim",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    text = flat(result.stdout)
    assert "imported 2 concepts (train 1, heldout 1) and 2 scenes" in text
    assert "notice: 2 concept appearance(s) have no box" in text
    built = run_cli("data", "build", "--concepts", tmp_path / "col", "--out", tmp_path / "b")
    assert built.exit_code == 0, built.stderr
    assert "notice: vlt (train): skipped 1 concept appearance(s) without a box" in flat(built.stdout)


def test_import_folders_error_is_one_clear_message(run_cli, tmp_path):
    photo_folders(tmp_path / "photos")
    (tmp_path / "photos" / "empty").mkdir()
    result = run_cli("data", "import", "folders", tmp_path / "photos", "--out", tmp_path / "col")
    assert result.exit_code == 2
    assert "1 concept folder(s) hold no image" in flat(result.stderr)
    assert "Traceback" not in result.stderr


def test_import_database_and_samples(run_cli, tmp_path):
    photo_folders(tmp_path / "db")
    database = {
        "concept_dict": {
            "<bo>": {"name": "bo", "image": "bo/0.png", "images": ["bo/0.png", "bo/1.png"],
                     "category": "dog"},
            "<kim>": {"name": "kim", "image": "kim/0.png", "info": "", "category": "person"},
        },
        "path_to_concept": {"bo/0.png": "<bo>", "bo/1.png": "<bo>", "kim/0.png": "<kim>"},
    }  # fmt: skip
    (tmp_path / "db" / "database.json").write_text(json.dumps(database))
    result = run_cli(
        "data", "import", "database", tmp_path / "db" / "database.json", "--out", tmp_path / "col"
    )
    assert result.exit_code == 0, result.stderr
    # One held-out concept of two (25 % rounds up to one); bo's second image is a scene.
    assert "imported 2 concepts (train 1, heldout 1) and 1 scenes" in flat(result.stdout)

    row = {
        "image": ["bo/0.png", "kim/0.png"],
        "problem": "Q",
        "solution": "no",
        "accu_reward_method": "yes_no",
    }
    (tmp_path / "db" / "train.json").write_text(json.dumps([row]))
    imported = run_cli("data", "import", "samples", tmp_path / "db" / "train.json", "--out", tmp_path / "b")
    assert imported.exit_code == 0, imported.stderr
    assert "│ oct │ yes_no │ 1 │ 100% │ 2.0 │ yes 0 / no 1 │" in flat(imported.stdout)
    unknown = run_cli("data", "import", "samples", tmp_path / "db" / "missing.json", "--out", tmp_path / "c")
    assert unknown.exit_code == 2 and "does not exist" in flat(unknown.stderr)
