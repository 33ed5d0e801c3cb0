"""The synthetic world: names, splits, boxes, text, determinism and settings.

Most tests share one small world (12 concepts, 29 scenes, well under a second to generate); the
determinism tests generate their own.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from repic.data.collection import load_collection
from repic.errors import RepicError
from repic.records import Scene, SceneObject
from repic.world.render import Picture, Placement, contact_sheet, draw_object, render
from repic.world.synthetic import (
    ATTRIBUTE_VALUES,
    ATTRIBUTES,
    CATEGORIES,
    NAME_PATTERN,
    SYLLABLES,
    WorldConfig,
    build_scene,
    describe_object,
    describe_scene,
    generate_world,
    make_names,
    make_world,
    position_phrase,
)

SMALL = WorldConfig(
    seed=3,
    n_train_concepts=8,
    n_heldout_concepts=4,
    scenes_per_train_concept=2,
    n_train_two=4,
    n_train_four=3,
    n_train_negative=3,
    n_eval_single=4,
    n_eval_two=2,
    n_eval_four=2,
    n_eval_negative=1,
)


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world") / "small"
    generate_world(root, SMALL)
    return root


@pytest.fixture(scope="module")
def collection(world_dir):
    return load_collection(world_dir)


def folder_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def identity(category: str, attributes: dict) -> tuple:
    return (category, *(attributes[k] for k in ATTRIBUTES))


# ------------------------------------------------------------------------------------------------ names
def test_syllable_inventory_is_17_consonants_times_5_vowels():
    assert len(SYLLABLES) == 85 == len(set(SYLLABLES))
    assert all(re.fullmatch(r"[bcdfghjklmnprstvz][aeiou]", s) for s in SYLLABLES)


@pytest.mark.parametrize(
    "text, matches",
    [
        ("<bako>", True),
        ("<tumi>", True),
        ("<bak>", False),  # three letters
        ("<Bako>", False),  # uppercase
        ("<bakoa>", False),  # five letters
        ("<waki>", False),  # w is not in the consonant inventory
        ("bako", False),  # no brackets
    ],
)
def test_name_pattern(text, matches):
    assert bool(NAME_PATTERN.fullmatch(text)) is matches


def test_heldout_names_are_new_combinations_of_training_syllables():
    train, heldout = make_names(WorldConfig())
    assert len(train) == 48 and len(heldout) == 16
    assert len(set(train + heldout)) == 64 and not set(train) & set(heldout)
    assert all(NAME_PATTERN.fullmatch(tag) for tag in train + heldout)
    training_syllables = {tag[i : i + 2] for tag in train for i in (1, 3)}
    assert {tag[i : i + 2] for tag in heldout for i in (1, 3)} <= training_syllables
    assert "<cone>" not in train + heldout and "<name>" not in train + heldout  # words of the world's text


def test_too_few_syllables_for_the_heldout_names_is_a_clear_error():
    # One training name has two syllables; they make 2 x 2 = 4 names, one of them taken: 3 left, not 4.
    with pytest.raises(RepicError, match="cannot all be new combinations"):
        WorldConfig(n_train_concepts=1, n_heldout_concepts=4, n_train_two=0, n_train_four=0)


# ------------------------------------------------------------------------------------------------ concepts
def test_same_category_concepts_differ_in_at_least_two_attributes():
    world = make_world(WorldConfig(), Path("/unused"))
    concepts = list(world.concepts.values())
    for i, a in enumerate(concepts):
        for b in concepts[i + 1 :]:
            if a.category == b.category:
                attrs_a, attrs_b = a.extra["attributes"], b.extra["attributes"]
                assert sum(attrs_a[k] != attrs_b[k] for k in ATTRIBUTES) >= 2, (a.tag, b.tag)


def test_every_split_covers_every_category():
    world = make_world(WorldConfig(), Path("/unused"))
    for split in ("train", "heldout"):
        assert {world.concepts[t].category for t in world.splits[split]} == set(CATEGORIES)


def test_concept_info_is_the_generic_description_of_its_attributes(collection):
    for concept in collection.concepts.values():
        assert concept.info == describe_object(concept.extra["attributes"], concept.category)
        assert concept.name == concept.tag[1:-1]


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_category_wears_every_accessory_in_every_shape(category):
    for shape in ATTRIBUTE_VALUES["shape"]:
        for accessory in ATTRIBUTE_VALUES["accessory"]:
            attributes = {
                "shape": shape,
                "color": "red",
                "pattern": "dots",
                "accent": "white",
                "accessory": accessory,
            }
            _, alpha = draw_object(Placement(category, attributes, (0.0, 0.0), 40.0))
            ys, xs = np.nonzero(alpha >= 0.5)
            # The longest side is the requested 40 px plus the one-pixel outline on both ends.
            assert max(xs.max() - xs.min(), ys.max() - ys.min()) + 1 in (41, 42, 43), (shape, accessory)


# ------------------------------------------------------------------------------------------------ splits
def test_no_heldout_concept_appears_in_any_training_scene(collection):
    heldout = {t: collection.concepts[t] for t in collection.splits["heldout"]}
    heldout_looks = {identity(c.category, c.extra["attributes"]) for c in heldout.values()}
    train_scenes = collection.scenes_in("train")
    assert train_scenes
    for scene in train_scenes:
        assert scene.image.startswith("scenes/train/")
        assert not set(scene.concepts) & set(heldout)
        for obj, detail in zip(scene.objects, scene.extra["object_details"], strict=True):
            # No object drawn in a training image looks like a held-out concept, distractors included.
            if detail["role"] != "prop":
                assert identity(obj.category, detail["attributes"]) not in heldout_looks
            assert detail.get("like") not in heldout


def test_heldout_names_are_in_no_training_text(collection, world_dir):
    heldout = collection.splits["heldout"]
    train_text = [c.info for c in collection.concepts_in("train")]
    train_text += [describe_scene(s, collection.concepts) for s in collection.scenes_in("train")]
    train_text += [
        line for line in (world_dir / "scenes.jsonl").read_text().splitlines() if '"split": "train"' in line
    ]
    assert len(train_text) > 30
    for tag in heldout:
        word = re.compile(rf"\b{tag[1:-1]}\b")
        assert not any(tag in text or word.search(text) for text in train_text), tag


def test_scene_kinds_show_the_promised_number_of_concepts(collection):
    expected = {"single": 1, "two": 2, "four": 4, "negative": 0}
    for scene in collection.scenes:
        shown = scene.concepts
        assert len(shown) == len(set(shown)) == expected[scene.extra["kind"]], scene.image
        assert scene.objects  # negative scenes still show distractors
        for obj in scene.objects:
            x1, y1, x2, y2 = obj.box
            assert 0 <= x1 < x2 <= scene.width and 0 <= y1 < y2 <= scene.height


def test_lookalikes_change_one_or_two_attributes_and_match_no_concept(collection):
    looks = {identity(c.category, c.extra["attributes"]) for c in collection.concepts.values()}
    lookalikes = [
        (obj, d)
        for s in collection.scenes
        for obj, d in zip(s.objects, s.extra["object_details"], strict=True)
        if d["role"] == "lookalike"
    ]
    assert lookalikes
    for obj, detail in lookalikes:
        original = collection.concepts[detail["like"]]
        changed = sum(detail["attributes"][k] != original.extra["attributes"][k] for k in ATTRIBUTES)
        assert obj.category == original.category and changed in (1, 2)
        assert identity(obj.category, detail["attributes"]) not in looks


# ------------------------------------------------------------------------------------------------ boxes
def test_boxes_are_tight_around_the_pixels_each_object_shows(collection, world_dir):
    world = make_world(SMALL, world_dir)
    checked = 0
    for stored in collection.scenes[::3]:
        split, kind, index = stored.split, stored.extra["kind"], int(Path(stored.image).stem.split("_")[1])
        scene, picture, rendered = build_scene(world, split, kind, index)
        saved = np.asarray(Image.open(world_dir / stored.image).convert("RGB"))
        assert np.array_equal(saved, rendered.image)  # the file is exactly what was rendered
        # The same lighting and noise without the objects: what the objects were drawn on.
        empty = render(Picture(picture.width, picture.height, picture.backdrop, (), picture.lighting)).image
        changed = np.any(saved != empty, axis=2)
        for i, obj in enumerate(stored.objects):
            assert obj.box == rendered.box(i)
            x1, y1, x2, y2 = (int(v) for v in obj.box)
            assert 0 <= x1 < x2 <= stored.width and 0 <= y1 < y2 <= stored.height
            mine = (rendered.labels == i) & changed
            assert (rendered.labels == i).sum() * 0.9 <= mine.sum()  # its pixels are not the backdrop
            # Tight: every edge row and column of the box holds a visible, changed pixel of the object.
            assert mine[y1, x1:x2].any() and mine[y2 - 1, x1:x2].any()
            assert mine[y1:y2, x1].any() and mine[y1:y2, x2 - 1].any()
            assert (
                not mine[:y1].any()
                and not mine[y2:].any()
                and not mine[:, :x1].any()
                and not mine[:, x2:].any()
            )
            checked += 1
        # Every drawn pixel lies in some box, except the anti-aliased edge: pixels an object covers less
        # than half of are not its pixels, and at a slanted corner those reach 2 px beyond the box.
        inside = np.zeros_like(changed)
        for obj in stored.objects:
            x1, y1, x2, y2 = (int(v) for v in obj.box)
            inside[max(y1 - 2, 0) : y2 + 2, max(x1 - 2, 0) : x2 + 2] = True
        assert not (changed & ~inside).any()
    assert checked >= 10


def test_images_have_the_configured_sizes(collection):
    for concept in collection.concepts.values():
        assert len(concept.images) == SMALL.refs_per_concept
        assert all(Image.open(path).size == (56, 56) for path in concept.images)
    assert all(Image.open(collection.image_path(s.image)).size == (112, 112) for s in collection.scenes)


# ------------------------------------------------------------------------------------------------ determinism
def test_same_seed_gives_a_byte_identical_folder(tmp_path, world_dir):
    again = tmp_path / "small"  # same folder name: the name is recorded in collection.json
    generate_world(again, SMALL)
    assert folder_hash(again) == folder_hash(world_dir)


def test_a_different_seed_gives_a_different_world(tmp_path, world_dir, collection):
    other = generate_world(tmp_path / "small", WorldConfig(**{**SMALL.to_dict(), "seed": 4}))
    assert folder_hash(tmp_path / "small") != folder_hash(world_dir)
    assert set(other.concepts) != set(collection.concepts)


# ------------------------------------------------------------------------------------------------ writing
def test_progress_reports_every_image(tmp_path):
    calls = []
    config = WorldConfig(**{**SMALL.to_dict(), "n_train_four": 0, "n_train_two": 0})
    generate_world(
        tmp_path / "w", config, progress=lambda stage, done, total: calls.append((stage, done, total))
    )
    assert calls[0] == ("references", 1, 24) and ("references", 24, 24) in calls  # 12 concepts x 2
    assert calls[-1] == ("scenes", 28, 28)  # training 8 x 2 single + 3 negative, held-out 4 + 2 + 2 + 1


def test_a_non_empty_folder_is_refused_unless_overwriting_a_collection(tmp_path, world_dir):
    stray = tmp_path / "notes"
    stray.mkdir()
    (stray / "todo.txt").write_text("mine")
    with pytest.raises(RepicError, match="not empty"):
        generate_world(stray, SMALL)
    with pytest.raises(RepicError, match="holds no collection.json"):
        generate_world(stray, SMALL, overwrite=True)
    assert (stray / "todo.txt").read_text() == "mine"  # nothing of the user's was deleted


def test_an_interrupted_overwrite_leaves_the_earlier_world_intact(tmp_path):
    root = tmp_path / "w"
    generate_world(root, SMALL)
    before = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    def interrupt(stage, done, total):
        if stage == "scenes" and done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_world(root, WorldConfig(**{**SMALL.to_dict(), "seed": 7}), interrupt, overwrite=True)
    assert {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["w"]  # no staging folder left behind


def test_overwrite_replaces_an_earlier_collection(tmp_path):
    root = tmp_path / "w"
    counts = {"scenes_per_train_concept": 0, "n_train_two": 0, "n_train_four": 0, "n_eval_single": 0}
    counts |= {"n_eval_two": 0, "n_eval_four": 0, "n_eval_negative": 0, "refs_per_concept": 1}
    generate_world(root, WorldConfig(n_train_concepts=2, n_heldout_concepts=1, n_train_negative=5, **counts))
    generate_world(
        root,
        WorldConfig(n_train_concepts=2, n_heldout_concepts=1, n_train_negative=2, **counts),
        overwrite=True,
    )
    assert not (root / "scenes/train/negative_0004.png").exists()  # no stale image from the bigger world
    assert len(load_collection(root).scenes_in("train", "negative")) == 2


# ------------------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize(
    "changes, message",
    [
        ({"query_size": 100}, "query_size is 100; use a multiple of 28"),
        ({"reference_size": 28}, "reference_size is 28"),  # too small for Qwen's minimum
        ({"n_train_concepts": 0}, "n_train_concepts must be at least 1"),
        ({"n_train_two": -1}, "n_train_two is -1; counts cannot be negative"),
        ({"n_heldout_concepts": 3}, "n_eval_four > 0 needs at least 4 held-out concepts"),
        ({"distractor_prob": 1.5}, "distractor_prob is 1.5; a probability is between 0 and 1"),
        ({"max_distractors": 5}, "use 0 to 4"),
        ({"seed": 1.5}, "seed must be a whole number"),
        ({"noise_std": "low"}, "noise_std must be a number"),
        ({"refs_per_concept": 0}, "refs_per_concept is 0; use 1 to 10"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(changes, message):
    with pytest.raises(RepicError, match=re.escape(message)):
        WorldConfig(**changes)


def test_config_round_trips_through_a_dict_and_refuses_unknown_keys():
    config = WorldConfig.from_dict({"seed": 7, "distractor_prob": 1})
    assert config.distractor_prob == 1.0 and isinstance(config.distractor_prob, float)  # 1 means 1.0
    assert WorldConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(RepicError, match="unknown world setting.*colour.*known: seed"):
        WorldConfig.from_dict({"colour": "red"}, where="recipe.yaml")


# ------------------------------------------------------------------------------------------------ text
@pytest.mark.parametrize(
    "attributes, category, expected",
    [
        (
            {"shape": "round", "color": "red", "pattern": "stripes", "accent": "yellow", "accessory": "hat"},
            "bear",
            "a round red bear with yellow stripes and a yellow hat",
        ),
        # A plain body: only the accessory shows the accent colour; "an" before a vowel.
        (
            {"shape": "wide", "color": "blue", "pattern": "plain", "accent": "orange", "accessory": "scarf"},
            "car",
            "a wide blue car with an orange scarf",
        ),
        ({"color": "orange", "pattern": "dots", "accent": "white"}, "ball", "an orange ball with white dots"),
        ({}, "cup", "a cup"),  # nothing known but the category
    ],
)
def test_describe_object(attributes, category, expected):
    assert describe_object(attributes, category) == expected


@pytest.mark.parametrize(
    "box, expected",
    [
        ((0, 40, 30, 70), "on the left"),  # centre (15, 55) of 112: left third, middle row
        ((80, 0, 110, 30), "at the top right"),
        ((40, 40, 70, 70), "in the middle"),
        ((40, 85, 70, 112), "at the bottom"),
    ],
)
def test_position_phrase(box, expected):
    assert position_phrase(box, 112, 112) == expected


def test_describe_scene_lists_objects_left_to_right_without_names():
    bear = {"shape": "tall", "color": "green", "pattern": "checks", "accent": "pink", "accessory": "star"}
    scene = Scene(
        "x.png",
        112,
        112,
        [SceneObject("ball", (80, 80, 110, 110)), SceneObject("bear", (5, 30, 40, 80), "<bako>")],
        extra={
            "object_details": [
                {"role": "prop", "attributes": {"color": "gray"}},
                {"role": "concept", "attributes": bear},
            ]
        },
    )
    expected = "A photo of a tall green bear with pink checks and a pink star on the left, and a gray ball at the bottom right."
    assert describe_scene(scene, {}) == expected
    assert "bako" not in describe_scene(scene, {})


def test_describe_scene_falls_back_to_the_concepts_attributes(collection):
    tag = collection.splits["train"][0]
    concept = collection.concepts[tag]
    scene = Scene("x.png", 112, 112, [SceneObject(concept.category, (40, 40, 70, 70), tag)])  # no details
    assert describe_scene(scene, collection.concepts) == f"A photo of {concept.info} in the middle."
    assert describe_scene(scene, {}) == f"A photo of a {concept.category} in the middle."  # nothing known


def test_contact_sheet_shows_every_category_and_stays_small(collection, tmp_path):
    path = contact_sheet(collection, tmp_path / "sheet.png")
    with Image.open(path) as sheet:
        # A 56 px label column, then 3 concepts x 2 references at twice their 56 px, 10 px apart.
        assert sheet.width == 56 + 3 * (2 * 112 + 10)
        assert sheet.height > len(CATEGORIES) * (112 + 16)  # one row per category, then the scenes
        assert sheet.mode == "P"  # a 256-colour palette keeps the file small
    assert path.stat().st_size < 300_000
