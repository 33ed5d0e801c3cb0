"""The collection folder format: save/load round trip, queries, and the errors a broken folder gives.

Each test builds a two-concept collection by hand (one training, one held-out concept; two scenes), so
what is checked is the format, not the generator.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from repic.concepts.database import ConceptDatabase
from repic.data.collection import FORMAT, Collection, load_collection, save_collection
from repic.errors import RepicError
from repic.records import Concept, Scene, SceneObject


def _png(path: Path, size: int, color: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path)
    return path


def make_collection(root: Path) -> Collection:
    bako = Concept(
        "<bako>",
        "bako",
        "bear",
        "a round red bear with a blue hat",
        [
            _png(root / "references/bako/0.png", 56, (200, 40, 40)),
            _png(root / "references/bako/1.png", 56, (190, 50, 40)),
        ],
        {"attributes": {"shape": "round", "color": "red", "accent": "blue", "accessory": "hat"}},
    )
    tumi = Concept(
        "<tumi>", "tumi", "cup", "a tall blue cup", [_png(root / "references/tumi/0.png", 56, (40, 40, 200))]
    )
    _png(root / "scenes/train/single_0000.png", 112, (120, 120, 120))
    _png(root / "scenes/heldout/two_0000.png", 112, (120, 120, 120))
    scenes = [
        Scene(
            "scenes/train/single_0000.png",
            112,
            112,
            [
                SceneObject("bear", (10.0, 20.0, 50.0, 70.0), "<bako>"),
                SceneObject("ball", (60.0, 60.0, 90.0, 95.0)),
            ],
            "train",
            {"kind": "single", "object_details": [{"role": "concept"}, {"role": "prop"}]},
        ),
        Scene(
            "scenes/heldout/two_0000.png",
            112,
            112,
            [SceneObject("cup", (0.0, 0.0, 40.0, 40.0), "<tumi>")],
            "heldout",
            {"kind": "two"},
        ),
    ]
    meta = {"name": "hand-made", "note": "kept across a round trip"}
    return Collection(
        root, {"<bako>": bako, "<tumi>": tumi}, scenes, {"train": ["<bako>"], "heldout": ["<tumi>"]}, meta
    )


@pytest.fixture
def saved(tmp_path) -> Path:
    root = tmp_path / "coll"
    save_collection(make_collection(root))
    return root


def test_round_trip_keeps_concepts_scenes_splits_and_unknown_keys(saved):
    original = make_collection(saved)
    loaded = load_collection(saved)
    assert loaded.root == saved.absolute()
    assert loaded.splits == original.splits
    assert [s.to_json() for s in loaded.scenes] == [s.to_json() for s in original.scenes]
    for tag, concept in original.concepts.items():
        got = loaded.concepts[tag]
        assert (got.name, got.category, got.info, got.extra) == (
            concept.name,
            concept.category,
            concept.info,
            concept.extra,
        )
        assert got.images == [p.absolute() for p in concept.images]
    assert loaded.meta["format"] == FORMAT and loaded.meta["note"] == "kept across a round trip"
    assert loaded.meta["categories"] == ["bear", "cup"]  # derived from the concepts when not given


def test_the_database_is_a_plain_rap_database(saved):
    database = ConceptDatabase.load(saved / "database.json")
    entry = json.loads((saved / "database.json").read_text())["concept_dict"]["<bako>"]
    assert entry["image"] == "references/bako/0.png"  # relative to the folder, first reference image
    assert entry["images"] == ["references/bako/0.png", "references/bako/1.png"]
    assert database.concepts["<bako>"].extra["attributes"]["accessory"] == "hat"


def test_collection_json_is_written_with_the_format_and_splits(saved):
    meta = json.loads((saved / "collection.json").read_text())
    assert meta["format"] == "repic-collection/1" and meta["name"] == "hand-made"
    assert meta["splits"] == {"train": ["<bako>"], "heldout": ["<tumi>"]}


def test_queries(saved):
    collection = load_collection(saved)
    assert [c.tag for c in collection.concepts_in("heldout")] == ["<tumi>"]
    assert [s.image for s in collection.scenes_in("train")] == ["scenes/train/single_0000.png"]
    assert collection.scenes_in("heldout", kind="single") == []  # its only scene is a "two" scene
    assert len(collection.scenes_in("heldout", kind="two")) == 1
    assert (
        collection.image_path("scenes/train/single_0000.png")
        == saved.absolute() / "scenes/train/single_0000.png"
    )
    with pytest.raises(RepicError, match="no split 'test'.*its splits: train, heldout"):
        collection.scenes_in("test")


def test_save_refuses_an_inconsistent_collection_and_writes_nothing(tmp_path):
    collection = make_collection(tmp_path / "bad")
    collection.scenes[0].objects[0].concept = "<tumi>"  # a held-out concept in a training scene
    with pytest.raises(RepicError, match="a 'train' scene shows <tumi> of split 'heldout'"):
        save_collection(collection)
    assert not (tmp_path / "bad/collection.json").exists() and not (tmp_path / "bad/database.json").exists()


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _edit_scene(root: Path, line: int, change) -> None:
    lines = (root / "scenes.jsonl").read_text().splitlines()
    row = json.loads(lines[line - 1])
    change(row)
    lines[line - 1] = json.dumps(row)
    (root / "scenes.jsonl").write_text("\n".join(lines) + "\n")


BROKEN = [
    # (what is broken, how to break it, the message that explains it)
    ("no folder", lambda r: r.rename(r.with_name("moved")), "collection folder .* does not exist"),
    (
        "no marker",
        lambda r: (r / "collection.json").unlink(),
        "has no collection.json, so it is not a collection",
    ),
    (
        "marker not JSON",
        lambda r: (r / "collection.json").write_text("{"),
        "collection.json is not valid UTF-8 JSON",
    ),
    (
        "wrong format",
        lambda r: _edit_json(r / "collection.json", lambda m: m.update(format="other/2")),
        "'format' is 'other/2', expected 'repic-collection/1'",
    ),
    (
        "splits not lists",
        lambda r: _edit_json(r / "collection.json", lambda m: m.update(splits={"train": "<bako>"})),
        "'splits' must map split names to lists of concept tags",
    ),
    (
        "unknown tag in a split",
        lambda r: _edit_json(r / "collection.json", lambda m: m["splits"]["train"].append("<zozo>")),
        "split 'train' lists <zozo>, which is not in database.json",
    ),
    (
        "a concept in two splits",
        lambda r: _edit_json(r / "collection.json", lambda m: m["splits"]["train"].append("<tumi>")),
        "<tumi> is in both splits 'train' and 'heldout'",
    ),
    (
        "a concept in no split",
        lambda r: _edit_json(r / "collection.json", lambda m: m["splits"].update(heldout=[])),
        r"concept\(s\) <tumi> are in no split",
    ),
    ("no database", lambda r: (r / "database.json").unlink(), "database .*database.json does not exist"),
    ("no scene list", lambda r: (r / "scenes.jsonl").unlink(), "scenes.jsonl is missing"),
    (
        "a line that is not JSON",
        lambda r: (r / "scenes.jsonl").write_text((r / "scenes.jsonl").read_text() + "{oops\n"),
        "scenes.jsonl line 3 is not a scene",
    ),
    (
        "a scene without a size",
        lambda r: _edit_scene(r, 1, lambda row: row.pop("size")),
        "scenes.jsonl line 1 is not a scene \\(missing key 'size'\\)",
    ),
    (
        "a box with three numbers",
        lambda r: _edit_scene(r, 1, lambda row: row["objects"][0].update(box=[1, 2, 3])),
        "line 1 is not a scene \\(box \\[1.0, 2.0, 3.0\\] has 3 numbers, not 4\\)",
    ),
    (
        "a box outside its image",
        lambda r: _edit_scene(r, 1, lambda row: row["objects"][1].update(box=[60, 60, 130, 95])),
        r"line 1 \(scenes/train/single_0000.png\): box \[60.0, 60.0, 130.0, 95.0\] is not inside the 112x112 image",
    ),
    (
        "an unknown concept in a scene",
        lambda r: _edit_scene(r, 1, lambda row: row["objects"][0].update(concept="<zozo>")),
        "line 1 .*: concept <zozo> is not in database.json",
    ),
    (
        "a held-out concept in a training scene",
        lambda r: _edit_scene(r, 1, lambda row: row["objects"][0].update(concept="<tumi>")),
        "a 'train' scene shows <tumi> of split 'heldout'",
    ),
    (
        "an unknown split",
        lambda r: _edit_scene(r, 2, lambda row: row.update(split="test")),
        "line 2 .*: split 'test' is not one of train, heldout",
    ),
    (
        "a missing scene image",
        lambda r: (r / "scenes/train/single_0000.png").unlink(),
        r"1 scene image\(s\) missing \(scenes/train/single_0000.png\)",
    ),
]


@pytest.mark.parametrize("broken, breaks, message", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_folder_gives_an_error_that_names_the_problem(saved, broken, breaks, message):
    breaks(saved)
    with pytest.raises(RepicError, match=message):
        load_collection(saved)


def test_many_problems_are_listed_a_few_at_a_time(saved):
    _edit_scene(
        saved,
        1,
        lambda row: row.update(
            objects=[{"concept": f"<x{i}>", "category": "bear", "box": [0, 0, 5, 5]} for i in range(8)]
        ),
    )
    with pytest.raises(RepicError) as info:
        load_collection(saved)
    message = str(info.value)
    assert len(re.findall(r"concept <x\d> is not in database.json", message)) == 5  # five shown ...
    assert "and 3 more" in message  # ... and the rest counted
