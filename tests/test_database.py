"""The concept database: RAP / RePIC database.json read, round trip, edits, validation and hashing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from repic.concepts import ConceptDatabase, Problem, image_problem, load_database
from repic.errors import RepicError
from repic.records import Concept


def make_image(path: Path, color=(200, 30, 30), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path, format=fmt)
    return path


def write_json(path: Path, document) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=4), encoding="utf-8")
    return path


def entry(image: str, **fields) -> dict:
    return {"name": "x", "image": image, "info": "", "category": "toy", **fields}


# ------------------------------------------------------------------------------------------ official files
@pytest.fixture
def official(tmp_path):
    """An official-style file: paths relative to the repository root, unknown fields at both levels."""
    repo = tmp_path / "RePIC"
    folder = repo / "data" / "database_tot" / "x"
    make_image(folder / "Anya.jpg", fmt="JPEG")
    make_image(folder / "black widow.jpg", color=(0, 0, 0), fmt="JPEG")
    document = {
        "concept_dict": {
            "<Anya>": {
                "name": "Anya",
                "image": "./data/database_tot/x/Anya.jpg",
                "info": "A young girl with pink hair.",
                "category": "person",
                "age": 6,  # unknown field: must survive a round trip
            },
            "<black widow>": {  # official tags may hold inner spaces
                "name": "Black Widow",
                "image": "./data/database_tot/x/black widow.jpg",
                "info": "A spy.",
                "category": "human",
            },
        },
        "path_to_concept": {
            "./data/database_tot/x/black widow.jpg": "<black widow>",
            "./data/database_tot/x/Anya.jpg": "<Anya>",
        },
        "version": "rap-1",  # unknown top-level field
    }
    return repo, write_json(folder / "database.json", document), document


def test_official_file_resolves_against_image_root_and_round_trips_unchanged(official):
    repo, path, document = official
    db = load_database(path, image_root=repo)
    anya = db.get("Anya")
    assert anya.images == [repo / "data/database_tot/x/Anya.jpg"]  # absolute, under the image root
    assert anya.extra == {"age": 6} and db.extra == {"version": "rap-1"}
    assert db.validate() == []
    db.save()
    # Every string, unknown field and the path_to_concept order come back exactly as they were.
    assert json.loads(path.read_text(encoding="utf-8")) == document
    assert list(json.loads(path.read_text())["path_to_concept"]) == list(document["path_to_concept"])


def test_official_file_without_image_root_reports_the_missing_images(official):
    _, path, _ = official
    # Without --image-root the paths resolve against the database folder, where ./data/... does not exist.
    problems = load_database(path).validate()
    assert [(p.kind, p.tag) for p in problems] == [
        ("missing_image", "<Anya>"),
        ("missing_image", "<black widow>"),
    ]
    assert str(path.parent / "data/database_tot/x/Anya.jpg") in problems[0].message


def test_file_without_path_to_concept_gets_one_on_save(tmp_path):
    # The official __assets__/main_figure/database.json has no path_to_concept at all.
    make_image(tmp_path / "ball.png")
    path = write_json(tmp_path / "db.json", {"concept_dict": {"<ball>": entry("./ball.png")}})
    ConceptDatabase.load(path).save()
    assert json.loads(path.read_text())["path_to_concept"] == {"./ball.png": "<ball>"}


# ------------------------------------------------------------------------------------------ several images
@pytest.mark.parametrize(
    "fields, links, expected",
    [
        ({"image": "a.png"}, {}, ["a.png"]),  # official: one image
        ({"image": "a.png", "images": ["a.png", "b.png"]}, {}, ["a.png", "b.png"]),  # image repeated first
        ({"image": "b.png", "images": ["a.png", "b.png"]}, {}, ["b.png", "a.png"]),  # `image` stays first
        ({"images": ["a.png", "./a.png", "b.png"]}, {}, ["a.png", "b.png"]),  # one file, two spellings
        (
            {"image": "a.png"},
            {"a.png": "<bo>", "b.png": "<bo>"},
            ["a.png", "b.png"],
        ),  # RAP: extra via the map
        ({"image": "a.png", "images": ["a.png"]}, {"b.png": "<bo>"}, ["a.png"]),  # `images` is authoritative
    ],
)
def test_images_read_from_image_images_and_path_to_concept(tmp_path, fields, links, expected):
    document = {
        "concept_dict": {"<bo>": {"name": "bo", "category": "dog", **fields}},
        "path_to_concept": links,
    }
    db = ConceptDatabase.load(write_json(tmp_path / "db.json", document))
    assert db.get("bo").images == [tmp_path / name for name in expected]


def test_several_images_are_written_as_image_plus_images(tmp_path):
    for name in ("a.png", "b.png"):
        make_image(tmp_path / name)
    path = write_json(
        tmp_path / "db.json",
        {"concept_dict": {"<bo>": entry("a.png")}, "path_to_concept": {"a.png": "<bo>", "b.png": "<bo>"}},
    )
    ConceptDatabase.load(path).save()
    saved = json.loads(path.read_text())
    assert saved["concept_dict"]["<bo>"]["image"] == "a.png"  # official readers still get one string
    assert saved["concept_dict"]["<bo>"]["images"] == ["a.png", "b.png"]
    assert saved["path_to_concept"] == {"a.png": "<bo>", "b.png": "<bo>"}


# ------------------------------------------------------------------------------------------ writing paths
def test_new_paths_are_relative_under_the_database_folder_and_absolute_elsewhere(tmp_path):
    inside = make_image(tmp_path / "db" / "pics" / "bo.png")
    outside = make_image(tmp_path / "elsewhere" / "kim.png")
    db = ConceptDatabase(tmp_path / "db" / "database.json")
    db.add(Concept("bo", "bo", "dog", images=[inside]), store="reference")
    db.add(Concept("kim", "Kim", "person", images=[outside]), store="reference")
    db.save()
    saved = json.loads((tmp_path / "db" / "database.json").read_text())
    assert saved["concept_dict"]["<bo>"]["image"] == "pics/bo.png"
    assert saved["concept_dict"]["<kim>"]["image"] == str(outside)
    assert saved["path_to_concept"] == {"pics/bo.png": "<bo>", str(outside): "<kim>"}


def test_saving_elsewhere_rewrites_only_paths_that_would_break(tmp_path):
    image = make_image(tmp_path / "a" / "images" / "bo.png")
    path = write_json(tmp_path / "a" / "db.json", {"concept_dict": {"<bo>": entry("./images/bo.png")}})
    db = ConceptDatabase.load(path)
    db.save(tmp_path / "b" / "db.json")  # ./images/bo.png would point into b/, so it becomes absolute
    assert json.loads((tmp_path / "b" / "db.json").read_text())["concept_dict"]["<bo>"]["image"] == str(image)
    assert ConceptDatabase.load(tmp_path / "b" / "db.json").get("bo").images == [image]
    assert db.path == tmp_path / "b" / "db.json"


def test_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    image = make_image(tmp_path / "bo.png")
    path = write_json(tmp_path / "db.json", {"concept_dict": {}})
    before = path.read_bytes()
    db = ConceptDatabase.load(path)
    db.add(Concept("bo", "bo", "dog", images=[image]), store="reference")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(RepicError, match="could not write database .*db.json: No space left"):
        db.save()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bo.png", "db.json"]


def test_saving_a_database_without_a_file_asks_for_a_path():
    with pytest.raises(RepicError, match="pass the path"):
        ConceptDatabase().save()


# ------------------------------------------------------------------------------------------ malformed files
@pytest.mark.parametrize(
    "text, fragments",
    [
        ('{"concept_dict": {', ["is not valid JSON", "line 1"]),
        ('["not", "a", "database"]', ["no 'concept_dict'", "repic db init"]),
        ('{"concept_dict": []}', ["no 'concept_dict'"]),
        ('{"concept_dict": {"<bo>": "bo.png"}}', ["concept <bo>", "expected an object"]),
        ('{"concept_dict": {"<bo>": {"name": 3}}}', ["concept <bo>", "'name' must be a string"]),
        ('{"concept_dict": {"<bo>": {"image": ""}}}', ["concept <bo>", "'image' must be one non-empty path"]),
        ('{"concept_dict": {"<bo>": {"image": ["a.png"]}}}', ["'image' must be one", "'images'"]),
        ('{"concept_dict": {"<bo>": {"images": "a.png"}}}', ["'images' must be a list"]),
        ('{"concept_dict": {"bo": {}}}', ["tag 'bo' needs angle brackets: '<bo>'"]),
        ('{"concept_dict": {"<bo >": {}}}', ["spaces inside its brackets", "'<bo>'"]),
        ('{"concept_dict": {" <bo>": {}}}', ["spaces at its ends"]),
        ('{"concept_dict": {"<>": {}}}', ["empty name"]),
        (
            '{"concept_dict": {"<bo>": {}, "<bo>": {}}}',
            ["defines the key '<bo>' twice"],
        ),  # json keeps the last
        ('{"concept_dict": {}, "path_to_concept": ["a.png"]}', ["'path_to_concept' must map image paths"]),
        ('{"concept_dict": {}, "path_to_concept": {"a.png": 1}}', ["'path_to_concept' must map image paths"]),
    ],
)
def test_malformed_files_name_the_file_and_the_key(tmp_path, text, fragments):
    path = tmp_path / "database.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RepicError) as info:
        ConceptDatabase.load(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_missing_file_and_bad_image_root_say_what_to_do(tmp_path):
    with pytest.raises(RepicError, match="does not exist; create it with `repic db init"):
        ConceptDatabase.load(tmp_path / "nope.json")
    path = write_json(tmp_path / "db.json", {"concept_dict": {}})
    with pytest.raises(RepicError, match="image root .* is not a folder"):
        ConceptDatabase.load(path, image_root=tmp_path / "missing")


# ------------------------------------------------------------------------------------------ add / remove / get
@pytest.fixture
def db(tmp_path):
    return ConceptDatabase.load(write_json(tmp_path / "db" / "database.json", {"concept_dict": {}}))


def test_add_copies_images_into_the_concept_folder(db, tmp_path):
    first = make_image(tmp_path / "src" / "bo.png")
    second = make_image(tmp_path / "other" / "bo.png", color=(0, 90, 0))  # same file name
    added = db.add(Concept("bo", "Bo", "dog", "a brown dog", images=[first, second]))
    folder = tmp_path / "db" / "images" / "bo"
    assert added.tag == "<bo>"  # a bare name is bracketed
    assert added.images == [folder / "bo.png", folder / "bo_1.png"]  # the clash gets a counter
    assert [p.read_bytes() for p in added.images] == [first.read_bytes(), second.read_bytes()]
    assert "<bo>" in db and "bo" in db and len(db) == 1


@pytest.mark.parametrize(
    "store, expected",
    [
        ("link", "db/images/black_widow/bw.png"),  # a link in a filename-safe folder
        ("reference", "src/bw.png"),  # left where it is
    ],
)
def test_add_links_or_references_images(db, tmp_path, store, expected):
    source = make_image(tmp_path / "src" / "bw.png")
    added = db.add(Concept("<black widow>", "Black Widow", "human", images=[source]), store=store)
    assert added.images == [tmp_path / expected]
    assert added.images[0].resolve() == source.resolve()
    assert added.images[0].is_symlink() == (store == "link")


def test_add_keeps_images_already_in_the_images_folder(db, tmp_path):
    placed = make_image(tmp_path / "db" / "images" / "bo.png")
    assert db.add(Concept("bo", "bo", "dog", images=[placed])).images == [placed]  # no second copy


@pytest.mark.parametrize(
    "concept, store, fragment",
    [
        (Concept("kim", "Kim", "person", images=["good.png"]), "copy", "<kim> is already in"),
        (Concept(" bo", "bo", "dog", images=["good.png"]), "copy", "' bo' starts with ' '; a concept name is"),
        (Concept("<>", "x", "dog", images=["good.png"]), "copy", "'<>' is empty"),
        (Concept("b<o", "x", "dog", images=["good.png"]), "copy", "'b<o' holds '<'"),
        (Concept("a/b", "x", "dog", images=["good.png"]), "copy", "'a/b' holds '/'"),
        (Concept("..", "x", "dog", images=["good.png"]), "copy", "'..' starts with '.'"),
        (Concept("bo", " ", "dog", images=["good.png"]), "copy", "<bo> has an empty name"),
        (Concept("bo", "bo", "", images=["good.png"]), "copy", "<bo> has an empty category"),
        (Concept("bo", "bo", "dog", images=[]), "copy", "<bo> has no images"),
        (Concept("bo", "bo", "dog", images=["good.png", "./good.png"]), "copy", "is given twice"),
        (
            Concept("bo", "bo", "dog", images=["good.png", "missing.png"]),
            "copy",
            "missing.png does not exist",
        ),
        (Concept("bo", "bo", "dog", images=["notes.png"]), "copy", "notes.png does not decode as an image"),
        (Concept("bo", "bo", "dog", images=["kim.png"]), "reference", "already a reference image of <kim>"),
        (Concept("bo", "bo", "dog", images=["good.png"]), "move", "unknown store mode 'move'"),
    ],
)
def test_add_refuses_bad_concepts_and_leaves_nothing_behind(
    db, tmp_path, monkeypatch, concept, store, fragment
):
    monkeypatch.chdir(tmp_path)  # relative image paths are taken from the current directory
    make_image(tmp_path / "good.png")
    db.add(Concept("kim", "Kim", "person", images=[make_image(tmp_path / "kim.png")]), store="reference")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(RepicError, match=fragment):
        db.add(concept, store=store)
    assert list(db.concepts) == ["<kim>"]
    assert not (tmp_path / "db" / "images").exists()


def test_add_without_a_database_file_needs_an_images_folder(tmp_path):
    image = make_image(tmp_path / "bo.png")
    with pytest.raises(RepicError, match="pass images_dir"):
        ConceptDatabase().add(Concept("bo", "bo", "dog", images=[image]))
    added = ConceptDatabase().add(Concept("bo", "bo", "dog", images=[image]), images_dir=tmp_path / "store")
    assert added.images == [tmp_path / "store" / "bo" / "bo.png"]


def test_get_and_remove_accept_bare_names_and_suggest_close_tags(db, tmp_path):
    for tag in ("bo", "bob", "kim"):
        db.add(Concept(tag, tag, "dog", images=[make_image(tmp_path / f"{tag}.png")]), store="reference")
    assert db.get("bo") is db.get("<bo>")
    assert [c.tag for c in db] == ["<bo>", "<bob>", "<kim>"]  # insertion order
    with pytest.raises(RepicError, match=r"no concept <boo> in .*did you mean <bo>, <bob>\?"):
        db.remove("boo")
    with pytest.raises(RepicError, match="none is close"):
        db.get("zzzzzz")
    assert db.remove("bob").tag == "<bob>" and "bob" not in db and len(db) == 2


def test_discard_images_deletes_copies_only(db, tmp_path):
    outside = make_image(tmp_path / "src" / "kim.png")
    copied = db.add(Concept("bo", "bo", "dog", images=[make_image(tmp_path / "src" / "bo.png")]))
    referenced = db.add(Concept("kim", "Kim", "person", images=[outside]), store="reference")
    db.remove("bo")
    db.remove("kim")
    assert db.discard_images(copied) == copied.images
    assert not (tmp_path / "db" / "images" / "bo").exists()  # its emptied folder goes too
    assert db.discard_images(referenced) == [] and outside.exists()  # never outside the database folder


# ------------------------------------------------------------------------------------------ validation
def test_validate_reports_every_kind_of_problem(tmp_path):
    make_image(tmp_path / "c.png")
    (tmp_path / "b.png").write_text("not an image")
    (tmp_path / "folder.png").mkdir()
    document = {
        "concept_dict": {
            "<a>": {"name": "a", "image": "a.png", "images": ["a.png"], "category": "toy"},  # a.png missing
            "<b>": entry("b.png"),  # not an image
            "<c>": entry("c.png"),
            "<d>": entry("c.png"),  # shares c.png with <c>
            "<e>": {"name": "", "category": " "},  # no image, empty name and category
            "<f>": entry("folder.png"),  # a folder
        },
        "path_to_concept": {
            "ghost.png": "<ghost>",  # unknown tag
            "c.png": "<a>",  # c.png belongs to <c>
            "x.png": "<a>",  # <a> lists its images, and x.png is not one
        },
    }
    problems = ConceptDatabase.load(write_json(tmp_path / "db.json", document)).validate()
    assert [(p.kind, p.tag, p.path.name if p.path else None) for p in problems] == [
        ("missing_image", "<a>", "a.png"),
        ("unreadable_image", "<b>", "b.png"),
        ("duplicate_image", "<d>", "c.png"),
        ("empty_name", "<e>", None),
        ("empty_category", "<e>", None),
        ("no_images", "<e>", None),
        ("unreadable_image", "<f>", "folder.png"),
        ("dangling_link", "<ghost>", "ghost.png"),
        ("conflicting_link", "<a>", "c.png"),
        ("dangling_link", "<a>", "x.png"),
    ]
    assert all(isinstance(p, Problem) and p.message for p in problems)


def truncated(path: Path, fmt: str) -> Path:
    """A noisy image cut in half: its header opens, its pixel data does not decode."""
    Image.effect_noise((128, 128), 60).convert("RGB").save(path, format=fmt)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda p: make_image(p / "ok.png"), None),
        (lambda p: make_image(p / "ok.jpg", fmt="JPEG"), None),
        (lambda p: p / "absent.png", ("missing_image", "does not exist")),
        (
            lambda p: truncated(p / "cut.jpg", "JPEG"),
            ("unreadable_image", "does not decode"),
        ),  # needs a decode
        (lambda p: truncated(p / "cut.png", "PNG"), ("unreadable_image", "does not decode")),
        (lambda p: p, ("unreadable_image", "is a folder")),
    ],
)
def test_image_problem_decodes_the_whole_file(tmp_path, build, expected):
    problem = image_problem(build(tmp_path))
    if expected is None:
        assert problem is None
    else:
        kind, reason = problem
        assert kind == expected[0] and reason.startswith(expected[1])


def test_broken_link_is_a_missing_image(db, tmp_path):
    source = make_image(tmp_path / "src" / "bo.png")
    db.add(Concept("bo", "bo", "dog", images=[source]), store="link")
    source.unlink()
    [problem] = db.validate()
    assert problem.kind == "missing_image" and "is a link to" in problem.message


def test_stray_links_survive_a_save_until_their_concept_is_removed(tmp_path):
    for name in ("a.png", "x.png"):
        make_image(tmp_path / name)
    links = {"a.png": "<a>", "x.png": "<a>", "ghost.png": "<ghost>"}
    document = {"concept_dict": {"<a>": entry("a.png", images=["a.png"])}, "path_to_concept": links}
    path = write_json(tmp_path / "db.json", document)
    ConceptDatabase.load(path).save()
    assert json.loads(path.read_text())["path_to_concept"] == links  # kept for the user to fix
    db = ConceptDatabase.load(path)
    db.remove("a")
    db.save()
    assert json.loads(path.read_text())["path_to_concept"] == {"ghost.png": "<ghost>"}


# ------------------------------------------------------------------------------------------ content hash
def test_content_hash_follows_content_not_order_or_location(tmp_path):
    make_image(tmp_path / "a" / "bo.png")
    make_image(tmp_path / "a" / "kim.png", color=(0, 0, 255))
    concepts = {"<bo>": entry("bo.png"), "<kim>": entry("kim.png")}
    path = write_json(tmp_path / "a" / "db.json", {"concept_dict": concepts})
    reference = ConceptDatabase.load(path).content_hash()
    assert len(reference) == 64 and ConceptDatabase.load(path).content_hash() == reference  # stable

    reordered = write_json(
        tmp_path / "a" / "reordered.json", {"concept_dict": dict(reversed(concepts.items()))}
    )
    assert ConceptDatabase.load(reordered).content_hash() == reference
    shutil.copytree(tmp_path / "a", tmp_path / "moved")
    assert ConceptDatabase.load(tmp_path / "moved" / "db.json").content_hash() == reference

    edited = write_json(
        tmp_path / "a" / "edited.json", {"concept_dict": {**concepts, "<bo>": entry("bo.png", info="!")}}
    )
    assert ConceptDatabase.load(edited).content_hash() != reference  # a description changed
    make_image(tmp_path / "a" / "kim.png", color=(0, 0, 254))
    assert ConceptDatabase.load(path).content_hash() != reference  # an image's bytes changed
    (tmp_path / "a" / "kim.png").unlink()
    assert ConceptDatabase.load(path).content_hash() != reference  # an image went missing


def test_the_database_records_its_own_copies_and_owned_only_discards_only_those(tmp_path):
    """A server's delete may remove what the database copied in, never a file it merely points at."""
    folder = tmp_path / "db"
    folder.mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "bo.png")
    Image.new("RGB", (8, 8), "blue").save(folder / "mine.png")  # a user's photo inside the database folder
    db = ConceptDatabase(folder / "database.json")
    db.add(Concept("bo", "bo", "dog", images=[tmp_path / "bo.png"]))  # copied into images/bo/
    db.add(Concept("kim", "kim", "person", images=[folder / "mine.png"]), store="reference")
    db.save()
    assert json.loads((folder / "database.json").read_text())["repic_copies"] == ["images/bo/bo.png"]

    reloaded = load_database(folder / "database.json")
    kim = reloaded.remove("kim")
    reloaded.save()
    assert reloaded.discard_images(kim, owned_only=True) == [] and (folder / "mine.png").is_file()
    bo = reloaded.remove("bo")
    reloaded.save()
    assert reloaded.discard_images(bo, owned_only=True) == [folder / "images" / "bo" / "bo.png"]
    assert "repic_copies" not in json.loads((folder / "database.json").read_text())  # none left to own
