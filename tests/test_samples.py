"""The official RePIC sample format: reading unchanged, validating with clear errors, writing back."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

from repic.data import samples as samples_module
from repic.data.samples import load_samples, resolve_image_root, task_mix, write_samples
from repic.errors import RepicError
from repic.records import Sample

OFFICIAL_ROWS = [
    {
        "image": ["refs/bo.png", "q/1.png"],
        "problem": "Is <bo> here?",
        "solution": "yes",
        "accu_reward_method": "yes_no",
    },
    {
        "image": "q/1.png",
        "problem": "Where is <bo>?",
        "solution": [10, 20, 110, 220],
        "accu_reward_method": "iou",
    },
    {
        "image": ["refs/bo.png", "q/1.png"],
        "problem": "Caption.",
        "solution": "<bo>",
        "accu_reward_method": "yes_no_name",
    },
    {
        "image": ["refs/bo.png", "refs/kim.png", "q/2.png"],
        "problem": "Caption.",
        "solution": ["<bo>", "<kim>"],
        "accu_reward_method": "yes_no_name_multi",
        "id": 17,  # an extra field the official file may carry
    },
]


def make_images(root: Path, *relative: str) -> None:
    for rel in relative:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"png")


@pytest.fixture
def official_file(tmp_path):
    make_images(tmp_path, "refs/bo.png", "refs/kim.png", "q/1.png", "q/2.png")
    path = tmp_path / "train.json"
    path.write_text(json.dumps(OFFICIAL_ROWS))
    return path


def test_module_doctests_pass():
    assert doctest.testmod(samples_module).failed == 0


def test_official_json_list_loads_with_tasks_images_and_extras(official_file):
    loaded = load_samples(official_file)
    assert [s.task for s in loaded] == ["oct", "vlt", "ict", "ict_multi"]
    # Paths resolve against the file's folder when no root is given or recorded.
    assert loaded[1].images == [str(official_file.parent / "q/1.png")]
    assert loaded[1].solution == [10, 20, 110, 220]
    assert loaded[3].extra == {"id": 17}


def test_round_trip_through_jsonl_reproduces_the_official_rows(official_file, tmp_path):
    out = tmp_path / "copy.jsonl"
    write_samples(out, load_samples(official_file), image_root=official_file.parent)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == OFFICIAL_ROWS  # one image stays a string, several a list; extras kept; official names


def test_write_json_list_and_reject_unknown_suffix(tmp_path):
    sample = Sample("ict", ["a.png", "b.png"], "Caption.", "<bo>")
    write_samples(tmp_path / "s.json", [sample])
    assert json.loads((tmp_path / "s.json").read_text())[0]["accu_reward_method"] == "yes_no_name"
    with pytest.raises(RepicError, match=r"\*\.jsonl"):
        write_samples(tmp_path / "s.txt", [sample])


def test_our_task_names_are_accepted_under_task_key(tmp_path):
    make_images(tmp_path, "a.png")
    path = tmp_path / "ours.jsonl"
    path.write_text(json.dumps({"image": "a.png", "problem": "Q", "solution": "no", "task": "oct"}) + "\n")
    assert load_samples(path)[0].task == "oct"


def test_ict_multi_string_solution_becomes_a_one_name_list(tmp_path):
    make_images(tmp_path, "a.png")
    path = tmp_path / "s.jsonl"
    row = {"image": "a.png", "problem": "Q", "solution": "<bo>", "accu_reward_method": "yes_no_name_multi"}
    path.write_text(json.dumps(row) + "\n")
    assert load_samples(path)[0].solution == ["<bo>"]


def test_image_root_argument_beats_manifest_beats_file_folder(tmp_path):
    data, images, other = tmp_path / "data", tmp_path / "images", tmp_path / "other"
    for folder in (data, images, other):
        folder.mkdir()
    sample_file = data / "train.jsonl"
    assert resolve_image_root(sample_file) == data.resolve()  # nothing recorded: the file's folder
    (data / "build.json").write_text(json.dumps({"image_root": "../images"}))
    assert resolve_image_root(sample_file) == images.resolve()  # relative to the manifest's folder
    (data / "eval").mkdir()
    assert resolve_image_root(data / "eval" / "single.jsonl") == images.resolve()  # one folder up counts
    assert resolve_image_root(sample_file, other) == other.resolve()  # an explicit root wins


def test_missing_images_are_all_listed_with_the_root_and_the_fix(tmp_path):
    make_images(tmp_path, "a.png")
    rows = [
        {"image": ["a.png", "gone1.png"], "problem": "Q", "solution": "yes", "accu_reward_method": "yes_no"},
        {"image": "gone2.png", "problem": "Q", "solution": "<bo>", "accu_reward_method": "yes_no_name"},
    ]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(RepicError) as info:
        load_samples(path)
    message = str(info.value)
    assert "2 image file(s) not found" in message and "gone1.png" in message and "gone2.png" in message
    assert str(tmp_path.resolve()) in message and "--image-root" in message


@pytest.mark.parametrize(
    "row, expected",
    [
        # no accu_reward_method: named, with the values to choose from
        ({"image": "a.png", "problem": "Q", "solution": "yes"}, "missing accu_reward_method"),
        # two required keys missing at once are both named
        ({"image": "a.png", "accu_reward_method": "yes_no"}, "missing problem, solution"),
        # an unknown reward method lists the known tasks
        (
            {"image": "a.png", "problem": "Q", "solution": "yes", "accu_reward_method": "caption"},
            "unknown task",
        ),
        # oct answers are yes or no
        (
            {"image": "a.png", "problem": "Q", "solution": "maybe", "accu_reward_method": "yes_no"},
            '"yes" or "no"',
        ),
        # a box needs four numbers
        (
            {"image": "a.png", "problem": "Q", "solution": [1, 2, 3], "accu_reward_method": "iou"},
            "four numbers",
        ),
        # a box given as a string is not parsed by the official reward either
        (
            {"image": "a.png", "problem": "Q", "solution": "[1,2,3,4]", "accu_reward_method": "iou"},
            "four numbers",
        ),
        # x2 < x1 is an inverted box
        (
            {"image": "a.png", "problem": "Q", "solution": [50, 0, 10, 9], "accu_reward_method": "iou"},
            "inverted",
        ),
        # no image at all
        ({"image": [], "problem": "Q", "solution": "yes", "accu_reward_method": "yes_no"}, "needs one"),
        # a multi-concept caption needs names
        (
            {"image": "a.png", "problem": "Q", "solution": [], "accu_reward_method": "yes_no_name_multi"},
            "non-empty list",
        ),
        # an empty problem
        (
            {"image": "a.png", "problem": " ", "solution": "yes", "accu_reward_method": "yes_no"},
            "problem must be",
        ),
    ],
)
def test_bad_rows_name_file_row_and_fix(tmp_path, row, expected):
    make_images(tmp_path, "a.png")
    path = tmp_path / "s.jsonl"
    good = {"image": "a.png", "problem": "Q", "solution": "no", "accu_reward_method": "yes_no"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(RepicError) as info:
        load_samples(path)
    assert expected in str(info.value)
    assert f"{path} row 2" in str(info.value)


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("s.json", "{not json", r"not valid JSON \(line 1"),  # broken JSON names the line
        ("s.json", json.dumps({"image": "a.png"}), "must hold a JSON list"),  # one object, not a list
        ("s.jsonl", "{}\n{oops\n", "line 2 is not valid JSON"),  # JSONL errors name the line
    ],
)
def test_unreadable_files_say_why(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(RepicError, match=expected):
        load_samples(path)


def test_missing_file_and_bad_root(tmp_path):
    with pytest.raises(RepicError, match="does not exist"):
        load_samples(tmp_path / "nope.jsonl")
    (tmp_path / "s.jsonl").write_text("")
    with pytest.raises(RepicError, match="is not a folder"):
        load_samples(tmp_path / "s.jsonl", image_root=tmp_path / "nowhere")


def test_task_mix_counts_every_task_with_its_balance():
    batch = [
        Sample("oct", ["r", "q"], "Q", "yes"),
        Sample("oct", ["r", "q"], "Q", "no"),
        Sample("oct", ["r", "q"], "Q", "no"),
        Sample("ict_multi", ["r1", "r2", "q"], "Q", ["<a>", "<b>"]),
        Sample("ict_multi", ["r1", "r2", "r3", "q"], "Q", ["<a>", "<b>", "<c>"]),
    ]
    rows = {row.task: row for row in task_mix(batch)}
    assert rows["oct"].count == 3 and rows["oct"].share == pytest.approx(0.6)  # 3 of 5
    assert rows["oct"].detail == "yes 1 / no 2"
    assert rows["ict_multi"].images_per_sample == pytest.approx(3.5)  # (3 + 4) / 2
    assert rows["ict_multi"].detail == "names 2:1, 3:1"  # one caption with 2 names, one with 3
    assert rows["vlt"].count == 0 and rows["vlt"].official == "iou"  # absent tasks still listed
