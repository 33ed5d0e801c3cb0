"""Importing concept folders, RAP databases and official training files as collections and builds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from repic.data.collection import load_collection
from repic.data.importers import ImportOptions, import_database, import_folders, import_samples, read_boxes
from repic.data.samples import load_samples
from repic.data.tasks import PARTIAL_KEY, UNBOXED_KEY, BuildConfig, build_samples
from repic.errors import RepicError


def photo(path: Path, size=(100, 80)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 60)).save(path)
    return path


@pytest.fixture
def folders(tmp_path):
    """photos/bo: 3 photos, category.txt and info.txt; photos/kim: 2 photos; photos/rex: 1 photo;
    group.png (outside the concept folders) shows several of them."""
    root = tmp_path / "photos"
    for name, count in (("bo", 3), ("kim", 2), ("rex", 1)):
        for i in range(count):
            photo(root / name / f"{i}.png")
    (root / "bo" / "category.txt").write_text("dog\n")
    (root / "bo" / "info.txt").write_text("a small brown dog\n")
    photo(tmp_path / "group.png", (200, 100))
    return root


def test_folders_become_concepts_with_references_and_unboxed_scenes(folders, tmp_path):
    result = import_folders(folders, tmp_path / "col", category="person", options=ImportOptions(heldout=["kim"]))
    collection = load_collection(tmp_path / "col")  # what was written reads back and passes its checks
    bo, kim = collection.concepts["<bo>"], collection.concepts["<kim>"]
    assert (bo.name, bo.category, bo.info) == ("bo", "dog", "a small brown dog")  # from the text files
    assert (kim.category, kim.info) == ("person", "a person")  # --category, and the default description
    assert [p.name for p in bo.images] == ["0.png"]  # one reference; 1.png and 2.png are scenes
    assert collection.splits == {"train": ["<bo>", "<rex>"], "heldout": ["<kim>"]}
    scenes = {Path(s.image).relative_to(folders).as_posix(): s for s in collection.scenes}
    assert sorted(scenes) == ["bo/1.png", "bo/2.png", "kim/1.png"]  # rex has no photo left for a scene
    assert scenes["kim/1.png"].split == "heldout"
    assert scenes["bo/1.png"].extra == {PARTIAL_KEY: True, UNBOXED_KEY: ["<bo>"]}
    assert result.notices == ["3 concept appearance(s) have no box: VLT samples will skip them"]


def test_boxes_add_objects_and_multi_concept_scenes(folders, tmp_path):
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(
        "image,concept,x1,y1,x2,y2\n"
        "bo/1.png,bo,10,10,60,70\n"  # a box for a photo in bo's folder
        "../group.png,bo,0,0,50,50\n"  # a photo outside the folders, with two concepts
        "../group.png,<rex>,60,0,120,90\n"
        "../group.png,kim,,,,\n"  # kim is there too, box unknown
        "bo/0.png,bo,0,0,10,10\n"  # bo's reference image: ignored, with a notice
    )
    result = import_folders(folders, tmp_path / "col", category="person", options=ImportOptions(heldout_ratio=0))
    assert result.collection.splits["heldout"] == []
    result = import_folders(folders, tmp_path / "col2", category="person",
                            options=ImportOptions(boxes=boxes, heldout_ratio=0))
    scenes = {
        Path(s.image).name if "group" in s.image else Path(s.image).relative_to(folders).as_posix(): s
        for s in result.collection.scenes
    }
    group = scenes["group.png"]
    assert [(o.concept, o.box) for o in group.objects] == [
        ("<bo>", (0, 0, 50, 50)),
        ("<rex>", (60, 0, 120, 90)),
    ]
    assert group.extra[UNBOXED_KEY] == ["<kim>"] and (group.width, group.height) == (200, 100)
    assert [o.box for o in scenes["bo/1.png"].objects] == [(10, 10, 60, 70)]
    assert "ignored 1 box row(s) on reference images (boxes are for query photos)" in result.notices
    # The multi-concept photo feeds ICT multi; VLT uses the three boxes only and counts what it skipped.
    built = build_samples(
        result.collection, BuildConfig(counts={"oct": 0, "vlt": 10, "ict": 0, "ict_multi": 0})
    )
    assert len(built.train) == 3
    assert "vlt (train): skipped 3 concept appearance(s) without a box" in built.notices  # kim x2, bo/2


def test_json_boxes_file(folders, tmp_path):
    boxes = tmp_path / "boxes.json"
    boxes.write_text(
        json.dumps(
            [
                {"image": "bo/1.png", "concept": "<bo>", "box": [1, 2, 30, 40]},
                {"image": "bo/2.png", "concept": "bo"},
            ]
        )
    )
    rows = read_boxes(boxes, folders)
    assert [(r.image, r.tag, r.box) for r in rows] == [
        (folders / "bo/1.png", "<bo>", (1.0, 2.0, 30.0, 40.0)),
        (folders / "bo/2.png", "<bo>", None),  # no box given: present, box unknown
    ]


def _break(kind: str, root: Path, tmp_path: Path) -> dict:
    """Spoil the fixture tree one way; return extra arguments for import_folders."""
    if kind == "empty":
        (root / "empty1").mkdir()
        (root / "empty2").mkdir()
    elif kind == "no category":
        return {"category": None}
    elif kind == "unreadable":
        (root / "bo" / "1.png").write_bytes(b"not a png")
        (root / "kim" / "1.png").write_bytes(b"")
    elif kind == "outside":
        (tmp_path / "b.csv").write_text(
            "image,concept,x1,y1,x2,y2\nbo/1.png,bo,0,0,101,50\nbo/2.png,bo,-1,0,5,5\n"
        )
        return {"boxes": tmp_path / "b.csv"}
    elif kind == "unknown concept":
        (tmp_path / "b.csv").write_text("image,concept,x1,y1,x2,y2\nbo/1.png,max,0,0,10,10\n")
        return {"boxes": tmp_path / "b.csv"}
    elif kind == "bad box":
        (tmp_path / "b.csv").write_text("image,concept,x1,y1,x2,y2\nbo/1.png,bo,0,0,ten,10\n")
        return {"boxes": tmp_path / "b.csv"}
    elif kind == "bad header":
        (tmp_path / "b.csv").write_text("file,concept,box\nbo/1.png,bo,1\n")
        return {"boxes": tmp_path / "b.csv"}
    elif kind == "duplicate":
        shutil.copytree(root / "bo", root / "Bo")
    elif kind == "unknown heldout":
        return {"heldout": ["max"]}
    elif kind == "not empty":
        (tmp_path / "col").mkdir()
        (tmp_path / "col" / "keep.txt").write_text("x")
    return {}


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("empty", ["2 concept folder(s) hold no image", "empty1", "empty2"]),  # every empty folder listed
        # bo has its category.txt; kim and rex are both named
        ("no category", ["2 concept folder(s) have no category", "photos/kim", "photos/rex", "--category"]),
        ("unreadable", ["2 image(s) cannot be used", "bo/1.png", "kim/1.png"]),  # all broken files listed
        ("outside", ["2 box(es) outside their image", "(image is 100x80)"]),  # 101 > 100 and -1 < 0
        ("unknown concept", ["box row(s) name unknown concepts", "concept <max>", "Known concepts: <bo>"]),
        ("bad box", ["four numbers"]),
        ("bad header", ["the CSV header must be image,concept,x1,y1,x2,y2"]),
        ("duplicate", ["give the same concept name", "rename one"]),
        ("unknown heldout", ["held-out concept(s) <max> are not imported"]),
        ("not empty", ["is not empty and holds no collection.json", "choose a new or empty folder"]),
    ],
)
def test_folder_import_errors_list_every_problem_and_the_fix(folders, tmp_path, kind, expected):
    arguments = _break(kind, folders, tmp_path)
    category = arguments.pop("category", "person")
    with pytest.raises(RepicError) as info:
        import_folders(folders, tmp_path / "col", category=category, options=ImportOptions(**arguments))
    for part in expected:
        assert part in str(info.value)
    assert not (tmp_path / "col" / "collection.json").exists()  # nothing half-written


def write_database(folder: Path, entries: dict) -> Path:
    path = folder / "database.json"
    links = {image: tag for tag, entry in entries.items() for image in entry.get("images", [entry["image"]])}
    path.write_text(json.dumps({"concept_dict": entries, "path_to_concept": links}))
    return path


def test_database_import_with_image_root_and_extra_images_as_scenes(tmp_path):
    images = tmp_path / "repo"
    for name in ("bo.png", "bo_2.png", "bo_3.png", "kim.png"):
        photo(images / "data" / name)
    entries = {
        "<bo>": {
            "name": "bo",
            "image": "data/bo.png",
            "images": ["data/bo.png", "data/bo_2.png", "data/bo_3.png"],
            "info": "a dog",
            "category": "dog",
        },
        "<kim>": {"name": "kim", "image": "data/kim.png", "info": "a woman", "category": "person"},
    }
    (tmp_path / "db").mkdir()
    database = write_database(tmp_path / "db", entries)
    result = import_database(database, tmp_path / "col", image_root=images, options=ImportOptions(heldout=["kim"]))
    collection = result.collection
    assert [p.name for p in collection.concepts["<bo>"].images] == ["bo.png"]  # the first is the reference
    assert sorted(Path(s.image).name for s in collection.scenes) == ["bo_2.png", "bo_3.png"]
    assert collection.splits == {"train": ["<bo>"], "heldout": ["<kim>"]}


def test_database_import_lists_every_missing_image_and_suggests_image_root(tmp_path):
    entries = {
        "<bo>": {"name": "bo", "image": "data/bo.png", "info": "", "category": "dog"},
        "<kim>": {"name": "kim", "image": "data/kim.png", "info": "", "category": "person"},
    }
    (tmp_path / "db").mkdir()
    database = write_database(tmp_path / "db", entries)
    with pytest.raises(RepicError) as info:
        import_database(database, tmp_path / "col")
    message = str(info.value)
    assert "2 image(s) of the database cannot be used" in message
    assert "bo.png" in message and "kim.png" in message and "--database-image-root" in message


def test_database_import_refuses_shared_display_names(tmp_path):
    photo(tmp_path / "db" / "a.png")
    photo(tmp_path / "db" / "b.png")
    entries = {
        "<ironman>": {"name": "Iron Man", "image": "a.png", "info": "", "category": "person"},
        "<iron_man>": {"name": "iron man", "image": "b.png", "info": "", "category": "person"},
    }
    with pytest.raises(RepicError, match="share the name 'iron man'"):
        import_database(write_database(tmp_path / "db", entries), tmp_path / "col")


def test_copy_makes_a_self_contained_collection(folders, tmp_path):
    import_folders(folders, tmp_path / "col", category="person", options=ImportOptions(copy=True, heldout=["kim"]))
    shutil.rmtree(folders)  # the originals are gone; the collection still loads with every image
    collection = load_collection(tmp_path / "col")
    assert all(
        image.is_relative_to(tmp_path / "col") for c in collection.concepts.values() for image in c.images
    )
    assert sorted(s.image for s in collection.scenes) == [
        "scenes/heldout/00002_1.png",
        "scenes/train/00000_1.png",
        "scenes/train/00001_2.png",
    ]


def test_official_training_file_becomes_a_build_folder(tmp_path):
    photo(tmp_path / "repo" / "imgs" / "a.png")
    photo(tmp_path / "repo" / "imgs" / "b.png")
    rows = [
        {
            "image": ["imgs/a.png", "imgs/b.png"],
            "problem": "Is <bo> here?",
            "solution": "yes",
            "accu_reward_method": "yes_no",
        },
        {
            "image": "imgs/b.png",
            "problem": "Where is <bo>?",
            "solution": [1, 2, 30, 40],
            "accu_reward_method": "iou",
        },
    ]
    (tmp_path / "official.json").write_text(json.dumps(rows))
    out, samples = import_samples(
        tmp_path / "official.json", tmp_path / "build", image_root=tmp_path / "repo"
    )
    assert len(samples) == 2
    manifest = json.loads((out / "build.json").read_text())
    assert manifest["image_root"] == "../repo" and manifest["counts"]["train"]["vlt"] == 1
    reloaded = load_samples(out / "train.jsonl")  # build.json supplies the root: no --image-root needed
    assert reloaded[0].images == [
        str(tmp_path / "repo" / "imgs" / "a.png"),
        str(tmp_path / "repo" / "imgs" / "b.png"),
    ]
    first_line = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    assert first_line == rows[0]  # written back in the official shape, paths as given


def test_official_file_with_an_unknown_task_is_refused(tmp_path):
    photo(tmp_path / "a.png")
    row = {"image": "a.png", "problem": "Q", "solution": "yes", "accu_reward_method": "caption_reward"}
    (tmp_path / "s.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(RepicError, match=r"unknown task 'caption_reward' in .*s.jsonl row 1"):
        import_samples(tmp_path / "s.jsonl", tmp_path / "build")
