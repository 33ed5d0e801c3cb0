"""``repic eval`` through the real entry point, and the prediction-file reader behind it.

The caption file is the small 2-concept file of test_metrics.py (numbers worked out there): official
(two-concept script) P / R / F1 = 80.0 / 66.7 / 72.7, strict 83.3 / 83.3 / 83.3.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repic.errors import RepicError
from repic.evaluate import load_predictions

PAIR_ROWS = [
    [
        "q/anya_bond.jpg",
        ["<Anya>", "<Bond>"],
        "In this lively scene, <Anya> rides on <Bond>'s back, showing their playful bond.",
        "Give a caption of the image.",
    ],
    ["q/h_t_1.jpg", ["<H>", "<T>"], "<H> drives while <T> smiles.", "Give a caption of the image."],
    ["q/h_t_2.jpg", ["<H>", "<T>"], "<Anya> waves at <H>.", "Give a caption of the image."],
]


@pytest.fixture
def pairs(tmp_path):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(PAIR_ROWS, indent=2), encoding="utf-8")
    return path


def flat(text: str) -> str:
    """Output with line breaks and runs of spaces collapsed, as rich wraps long lines."""
    return " ".join(text.split())


def jsonl(tmp_path, lines: list[str]):
    path = tmp_path / "predictions.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


PROJECT_LINES = [
    json.dumps(
        {"image": "a.jpg", "task": "ict", "concepts": ["<bo>"], "prediction": "<bo> naps.", "model": "x"}
    ),
    json.dumps(
        {"image": "b.jpg", "task": "yes_no", "concepts": ["<bo>"], "prediction": "Yes.", "solution": "yes"}
    ),
    json.dumps(
        {"image": "c.jpg", "task": "oct", "concepts": ["<bo>"], "prediction": "Yes!", "solution": "No"}
    ),
    json.dumps(
        {
            "image": "d.jpg",
            "task": "iou",
            "concepts": ["<bo>"],
            "prediction": "[0, 0, 10, 10]",
            "solution": [0, 0, 10, 10],
        }
    ),
    json.dumps(
        {
            "image": "e.jpg",
            "task": "vlt",
            "concepts": ["<bo>"],
            "prediction": "left",
            "solution": [0, 0, 4, 4],
        }
    ),
]


def test_both_modes_are_printed_with_their_labels(run_cli, pairs):
    result = run_cli("eval", pairs)
    assert result.exit_code == 0, result.stderr
    official = next(line for line in result.stdout.splitlines() if "official (RePIC scripts)" in line)
    strict = next(line for line in result.stdout.splitlines() if "strict (whole names)" in line)
    # official: P 80.0, R 66.7, F1 72.7; correct 4, MISS 1, none 1 of 6 true concepts.
    assert official.split()[-7:] == ["80.0", "66.7", "72.7", "4", "1", "1", "6"]
    # strict: correct 5, MISS 1: 83.3 everywhere.
    assert strict.split()[-7:] == ["83.3", "83.3", "83.3", "5", "1", "0", "6"]
    assert "official variant: two" in result.stdout


def test_forced_variant_and_json_output(run_cli, pairs, tmp_path):
    out = tmp_path / "reports" / "scores.json"
    result = run_cli("eval", pairs, "--official-variant", "four", "--json", out)
    assert result.exit_code == 0, result.stderr
    (report,) = json.loads(out.read_text())["files"]
    assert report["format"] == "json" and report["skipped"] == []
    captions = report["captions"]
    assert captions["rows"] == 3
    # four (lower-cased): the prose word "bond" counts, correct 5, MISS 1: P = R = 5/6.
    assert captions["official"]["variant"] == "four"
    assert captions["official"]["precision"] == pytest.approx(5 / 6)
    assert (captions["official"]["correct"], captions["official"]["miss"]) == (5, 1)
    assert captions["strict"]["recall"] == pytest.approx(5 / 6)
    assert report["recognition"] is None and report["localization"] is None


def test_jsonl_with_recognition_and_localization(run_cli, tmp_path):
    path = jsonl(tmp_path, PROJECT_LINES)
    out = tmp_path / "scores.json"
    result = run_cli("eval", path, "--json", out)
    assert result.exit_code == 0, result.stderr
    assert "recognition (OCT), 2 answers" in result.stdout
    assert "localization (VLT), 2 boxes" in result.stdout
    (report,) = json.loads(out.read_text())["files"]
    assert report["format"] == "jsonl"
    # One caption row naming its only concept: 1 of 1.
    assert report["captions"]["strict"]["correct"] == 1
    # OCT: "Yes." for yes is right, "Yes!" for no is wrong: accuracy 1/2, yes-recall 1, no-recall 0.
    recognition = report["recognition"]
    assert (recognition["accuracy"], recognition["yes_recall"], recognition["no_recall"]) == (0.5, 1.0, 0.0)
    # VLT: an exact box (IoU 1) and no box (IoU 0): accuracy 1/2, mean IoU 1/2, one unparseable.
    localization = report["localization"]
    assert (localization["accuracy"], localization["mean_iou"], localization["unparseable"]) == (0.5, 0.5, 1)


def test_malformed_rows_are_skipped_and_counted(run_cli, tmp_path):
    path = jsonl(
        tmp_path,
        [
            PROJECT_LINES[0],
            '{"task": "ict", "concepts": "<bo>", "prediction": "x"}',  # line 2: concepts not a list
            "{not json",  # line 3
            PROJECT_LINES[1],
        ],
    )
    out = tmp_path / "scores.json"
    result = run_cli("eval", path, "--json", out)
    assert result.exit_code == 0, result.stderr
    warning = flat(result.stderr)
    assert "skipped 2 malformed rows" in warning and "(row 2, 3)" in warning
    assert warning.count("skipped") == 1  # once per file
    (report,) = json.loads(out.read_text())["files"]
    assert [skipped["row"] for skipped in report["skipped"]] == [2, 3]
    assert "concepts must be a list" in report["skipped"][0]["reason"]
    assert report["captions"]["rows"] == 1 and report["recognition"]["total"] == 1


UNLABELED_ROWS = [["q/a.jpg", [], "<Anya> waves.", "q"], ["q/b.jpg", [], "<H> drives.", "q"]]


def test_a_file_whose_rows_carry_no_truth_has_nothing_to_score(run_cli, tmp_path):
    """Captions of images given without their concepts (``repic caption --images`` with retrieval) record no
    truth; scoring them would score retrieval against itself, so there is nothing to score."""
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(UNLABELED_ROWS), encoding="utf-8")
    project = jsonl(tmp_path, [json.dumps({"image": "a.jpg", "task": "ict", "concepts": [], "prediction": "x"})])
    for file in (path, project):
        result = run_cli("eval", file, "--json", tmp_path / "scores.json")
        assert result.exit_code == 2 and "Traceback" not in result.stderr
        assert "has no row to score: its caption rows" in flat(result.stderr)
        assert "carry no true concepts" in flat(result.stderr) and "P %" not in result.stdout
        assert not (tmp_path / "scores.json").exists()


def test_rows_without_truth_are_left_out_with_a_warning(run_cli, tmp_path):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps([PAIR_ROWS[0], *UNLABELED_ROWS]), encoding="utf-8")
    out = tmp_path / "scores.json"
    result = run_cli("eval", path, "--json", out)
    assert result.exit_code == 0, result.stderr
    assert "concept names in 1 caption" in flat(result.stdout)
    assert "left out 2 caption rows of" in flat(result.stderr) and "without true concepts" in flat(result.stderr)
    (report,) = json.loads(out.read_text())["files"]
    assert (report["captions"]["rows"], report["unlabeled"], report["skipped"]) == (1, 2, [])
    loaded = load_predictions(path, on_error="fail")  # not malformed: a row may say nothing of the truth
    assert [row.image for row in loaded.unlabeled] == ["q/a.jpg", "q/b.jpg"]


def test_on_error_fail_names_the_row(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a short relative path, so the message is not wrapped inside it
    rows = [PAIR_ROWS[0], ["q/short.jpg", ["<H>"]], PAIR_ROWS[1]]  # row 2 has no caption
    Path("captions.json").write_text(json.dumps(rows), encoding="utf-8")
    result = run_cli("eval", "captions.json", "--on-error", "fail")
    assert result.exit_code == 2
    message = flat(result.stderr)  # rich wraps long messages
    assert 'captions.json, row 2: expected a row like ["image.jpg", ["<bo>", "<kim>"], "caption",' in message
    assert "at least 3 items" in message
    assert "Traceback" not in message


def test_missing_file_is_a_clear_error(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("eval", "nope.json")
    assert result.exit_code == 2
    assert "predictions file nope.json does not exist" in flat(result.stderr)
    assert result.stdout == ""


@pytest.mark.parametrize(("option", "value"), [("--official-variant", "three"), ("--on-error", "ignore")])
def test_bad_option_values_are_errors(run_cli, pairs, option, value):
    result = run_cli("eval", pairs, option, value)
    assert result.exit_code == 2
    assert f"{option} must be one of" in flat(result.stderr)


def test_database_display_names_are_strict_aliases(run_cli, tmp_path):
    database = tmp_path / "database.json"
    concept_dict = {"<ironman>": {"name": "Iron Man", "image": "ironman.jpg", "info": "", "category": "man"}}
    database.write_text(json.dumps({"concept_dict": concept_dict, "path_to_concept": {}}), encoding="utf-8")
    path = tmp_path / "captions.json"
    path.write_text(json.dumps([["q.jpg", ["<ironman>"], "Iron Man takes off.", "q"]]), encoding="utf-8")
    out = tmp_path / "scores.json"
    # Without the database "Iron Man" is not <ironman>; with it, it is: correct 0 -> 1.
    assert run_cli("eval", path, "--json", out).exit_code == 0
    assert json.loads(out.read_text())["files"][0]["captions"]["strict"]["correct"] == 0
    assert run_cli("eval", path, "--database", database, "--json", out, "--overwrite").exit_code == 0
    strict = json.loads(out.read_text())["files"][0]["captions"]["strict"]
    assert (strict["correct"], strict["aliases"]) == (1, 1)


# ------------------------------------------------------------------------- reading prediction files


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("just text", "expected a row"),
        (["q.jpg", ["<bo>"]], "at least 3 items"),
        (["q.jpg", "<bo>", "caption"], "concepts must be a list"),
        (["q.jpg", ["<bo>"], None], "caption must be a string"),
        ({"concepts": ["<bo>"], "prediction": "x"}, "has no 'task'"),
        ({"task": "poem", "concepts": ["<bo>"], "prediction": "x"}, "unknown task 'poem'"),
        ({"task": "oct", "concepts": ["<bo>"], "prediction": "yes", "solution": "maybe"}, '"yes" or "no"'),
        ({"task": "vlt", "concepts": [], "prediction": "[1, 1, 2, 2]", "solution": [5, 5, 1, 1]}, "x1 < x2"),
        ({"task": "vlt", "concepts": [], "prediction": "[1, 1, 2, 2]", "solution": [0, 0, True, 1]}, "a box"),
    ],
)
def test_each_kind_of_malformed_row_is_skipped_with_its_reason(tmp_path, row, reason):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([PAIR_ROWS[1], row]), encoding="utf-8")
    loaded = load_predictions(path)
    assert len(loaded.captions) == 1  # the good row is kept
    (skipped,) = loaded.skipped
    assert skipped.row == 2 and reason in skipped.reason


def test_official_rows_keep_their_fields(pairs):
    loaded = load_predictions(pairs)
    first = loaded.captions[0]
    assert (first.image, first.concepts, first.question) == (
        "q/anya_bond.jpg",
        ("<Anya>", "<Bond>"),
        "Give a caption of the image.",
    )


def test_jsonl_line_numbers_count_blank_lines(tmp_path):
    path = jsonl(tmp_path, [PROJECT_LINES[0], "", "[1, 2]"])  # line 3 is a too-short official row
    assert [s.row for s in load_predictions(path).skipped] == [3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ('[\n  ["q.jpg", ["<bo>"], "caption"],\n  ["q.jpg", ["<bo>"] "caption"]\n]', "line 3, column"),
        ("42", "single JSON int"),
    ],
)
def test_unreadable_files_raise(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RepicError, match=message):
        load_predictions(path)


def test_a_folder_is_not_a_predictions_file(tmp_path):
    with pytest.raises(RepicError, match="is a folder"):
        load_predictions(tmp_path)
