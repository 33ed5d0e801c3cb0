"""The OCT / VLT / ICT builders, SFT captions, evaluation sets, leak checks and the build folder.

Most cases run on a hand-made collection whose candidate pools are small enough to count by hand:

    train: <bo> dog (brown), <rex> dog, <kim> person      held out: <tup> dog, <zed> cat
    s_bo      <bo> + a cup                    s_look    <kim> + a lookalike dog
    s_pair    <bo> + <kim> + a lookalike dog  s_cat     a cat only (no concept)
    s_rex     <rex> without a box             h_tup, h_two (held out): <tup>; <tup> + <zed>

The end-to-end cases (rewards, the folder) run on a small synthetic world.
"""

from __future__ import annotations

import doctest
import json
import random

import pytest
from PIL import Image

from repic.concepts.database import ConceptDatabase
from repic.data import tasks as tasks_module
from repic.data.collection import Collection
from repic.data.samples import load_samples
from repic.data.tasks import (
    PARTIAL_KEY,
    UNBOXED_KEY,
    BoxSpace,
    BuildConfig,
    Source,
    build,
    build_caption_eval,
    build_ict,
    build_ict_multi,
    build_oct,
    build_samples,
    build_sft,
    build_vlt,
    check_no_leaks,
    reference_caption,
    split_leaks,
)
from repic.errors import RepicError
from repic.prompts import format_box_answer
from repic.records import Concept, Sample, Scene, SceneObject
from repic.rewards import RewardOptions, compute
from repic.world.synthetic import generate_world
from repic.world.world_config import WorldConfig


def scene(name, split, objects, **extra):
    return Scene(f"scenes/{name}.png", 120, 120, [SceneObject(*o) for o in objects], split, extra)


@pytest.fixture
def hand(tmp_path):
    """The hand-made collection of the module docstring, with real reference images."""
    concepts = {}
    categories = {"<bo>": "dog", "<rex>": "dog", "<kim>": "person", "<tup>": "dog", "<zed>": "cat"}
    for tag, category in categories.items():
        image = tmp_path / "references" / f"{tag[1:-1]}.png"
        image.parent.mkdir(exist_ok=True)
        Image.new("RGB", (56, 56), (120, 80, 40)).save(image)
        attributes = {"color": "brown"} if tag == "<bo>" else {}
        concepts[tag] = Concept(
            tag, tag[1:-1], category, f"my {category}", [image], {"attributes": attributes}
        )
    scenes = [
        scene("s_bo", "train", [("dog", (0, 0, 40, 40), "<bo>"), ("cup", (70, 70, 100, 100))]),
        scene("s_look", "train", [("person", (60, 60, 100, 100), "<kim>"), ("dog", (0, 0, 30, 30))]),
        scene(
            "s_pair",
            "train",
            [
                ("dog", (0, 0, 50, 50), "<bo>"),
                ("person", (60, 0, 110, 50), "<kim>"),
                ("dog", (0, 60, 30, 90)),
            ],
        ),
        scene("s_cat", "train", [("cat", (10, 10, 50, 50))]),
        scene("s_rex", "train", [], **{UNBOXED_KEY: ["<rex>"], PARTIAL_KEY: True}),
        scene("h_tup", "heldout", [("dog", (10, 10, 50, 50), "<tup>")]),
        scene("h_two", "heldout", [("dog", (0, 0, 40, 40), "<tup>"), ("cat", (60, 60, 100, 100), "<zed>")]),
    ]
    splits = {"train": ["<bo>", "<rex>", "<kim>"], "heldout": ["<tup>", "<zed>"]}
    return Collection(tmp_path, concepts, scenes, splits)


def source(collection, split="train", seed=0, **settings):
    return Source(collection, split, BuildConfig(**settings), random.Random(seed))


def pairs(samples):
    return sorted((s.extra["concepts"][0], s.images[-1].split("/")[-1][:-4], s.solution) for s in samples)


def test_module_doctests_pass():
    assert doctest.testmod(tasks_module).failed == 0


# ------------------------------------------------------------------------------------------ OCT
def test_oct_takes_every_positive_and_the_same_category_negatives_first(hand):
    samples = build_oct(source(hand), 10)
    # Positives: <bo> in s_bo and s_pair, <kim> in s_look and s_pair, <rex> (unboxed) in s_rex.
    # Hard negatives (a dog-or-person object present, concept absent): <rex> in s_bo, s_look, s_pair;
    # <bo> in s_look, s_rex. With 5 "yes" and 5 "no" asked, the "no" are exactly those five.
    assert pairs(samples) == [
        ("<bo>", "s_bo", "yes"),
        ("<bo>", "s_look", "no"),
        ("<bo>", "s_pair", "yes"),
        ("<bo>", "s_rex", "no"),
        ("<kim>", "s_look", "yes"),
        ("<kim>", "s_pair", "yes"),
        ("<rex>", "s_bo", "no"),
        ("<rex>", "s_look", "no"),
        ("<rex>", "s_pair", "no"),
        ("<rex>", "s_rex", "yes"),
    ]
    first = samples[0]
    assert first.images == [f"references/{first.extra['concepts'][0][1:-1]}.png", first.images[1]]
    assert first.problem.startswith(f"{first.extra['concepts'][0]} is shown in the first image")


def test_oct_short_of_pairs_builds_what_exists_and_says_so(hand):
    src = source(hand)
    samples = build_oct(src, 12)
    # 6 "yes" asked but 5 exist; 6 "no": the 5 hard ones and 1 easy one.
    assert len(samples) == 11
    assert src.notices == ["oct (train): built 11 of 12 asked (not enough distinct (concept, scene) pairs)"]


@pytest.mark.parametrize("ratio, expected_yes", [(0.0, 0), (0.3, 1), (1.0, 4)])  # round(4 * ratio)
def test_oct_positive_ratio(hand, ratio, expected_yes):
    samples = build_oct(source(hand, oct_positive_ratio=ratio), 4)
    assert sum(s.solution == "yes" for s in samples) == expected_yes


# ------------------------------------------------------------------------------------------ VLT
def test_vlt_asks_for_the_category_only_where_it_is_unambiguous(hand):
    src = source(hand, vlt_category_ratio=1.0)
    samples = build_vlt(src, 10)
    # Boxed appearances: <bo> in s_bo and s_pair, <kim> in s_look and s_pair; <rex> has no box.
    assert sorted((s.extra["concepts"][0], s.images[0]) for s in samples) == [
        ("<bo>", "scenes/s_bo.png"),
        ("<bo>", "scenes/s_pair.png"),
        ("<kim>", "scenes/s_look.png"),
        ("<kim>", "scenes/s_pair.png"),
    ]
    for sample in samples:
        ambiguous = sample.extra["concepts"] == ["<bo>"] and sample.images == ["scenes/s_pair.png"]  # 2 dogs
        if ambiguous:
            assert sample.problem.startswith("Name: <bo>, Info: my dog. ")
        else:
            assert "<" not in sample.problem and (
                "the dog" in sample.problem or "the person" in sample.problem
            )
    assert "vlt (train): skipped 1 concept appearance(s) without a box" in src.notices
    assert "vlt (train): built 4 of 10 asked (not enough boxed concept appearances)" in src.notices


def test_vlt_solution_is_the_box_in_the_model_pixel_space(hand):
    samples = build_vlt(source(hand, vlt_category_ratio=0.0), 4)
    by_scene = {(s.extra["concepts"][0], s.images[0]): s for s in samples}
    # 120 px is no multiple of 28: Qwen's processor shows the image at 112 x 112 (round(120 / 28) * 28),
    # so (0, 0, 40, 40) becomes (0, 0, 37, 37) (40 * 112 / 120 = 37.3).
    assert by_scene[("<bo>", "scenes/s_bo.png")].solution == [0, 0, 37, 37]
    assert by_scene[("<bo>", "scenes/s_bo.png")].problem.startswith("Name: <bo>, Info: my dog. ")


@pytest.mark.parametrize(
    "space, size, box, expected",
    [
        (BoxSpace("original"), (200, 100), (10, 20, 60, 80), (10, 20, 60, 80)),  # the file's pixels
        (BoxSpace("relative1000"), (200, 100), (10, 20, 60, 80), (50, 200, 300, 800)),  # x / 200, y / 100
        (BoxSpace(), (112, 84), (10, 20, 60, 80), (10, 20, 60, 80)),  # multiples of 28: identity
        # 100 x 80 -> 112 x 84 (round to multiples of 28): x * 1.12, y * 1.05; 73.5 rounds to even, 74
        (BoxSpace(), (100, 80), (10, 10, 60, 70), (11, 10, 67, 74)),
        # 28 x 28 = 784 px is under min_pixels 3136, so the processor doubles it to 56 x 56
        (BoxSpace(), (28, 28), (1, 2, 10, 20), (2, 4, 20, 40)),
        # a box that would vanish keeps one pixel
        (BoxSpace("relative1000"), (10000, 10000), (3, 3, 3.2, 3.2), (0, 0, 1, 1)),
    ],
)
def test_box_space_conversion(space, size, box, expected):
    assert space.convert(box, *size) == expected


def test_box_space_rejects_bad_settings():
    with pytest.raises(RepicError, match="resized, original or relative1000"):
        BoxSpace("pixels")
    with pytest.raises(RepicError, match="min_pixels <= max_pixels"):
        BoxSpace(min_pixels=10, max_pixels=5)


# ------------------------------------------------------------------------------------------ ICT
def test_ict_names_a_present_concept_with_its_reference(hand):
    samples = build_ict(source(hand), 5)
    # Present pairs: <bo> in s_bo, s_pair; <kim> in s_look, s_pair; <rex> in s_rex (no box needed).
    assert sorted((s.solution, s.images[1]) for s in samples) == [
        ("<bo>", "scenes/s_bo.png"),
        ("<bo>", "scenes/s_pair.png"),
        ("<kim>", "scenes/s_look.png"),
        ("<kim>", "scenes/s_pair.png"),
        ("<rex>", "scenes/s_rex.png"),
    ]
    for sample in samples:
        assert sample.images[0] == f"references/{sample.solution[1:-1]}.png"
        assert sample.problem.startswith(f"Name: {sample.solution}, Info: ")


def test_ict_multi_references_an_absent_concept_and_solves_with_the_present_ones(hand):
    src = source(hand)
    samples = build_ict_multi(src, 10)
    # Only s_pair shows two concepts (<bo>, <kim>); <rex> is the one absent training concept. The distinct
    # reference sets are {bo, rex}, {kim, rex} and {bo, kim, rex}: three samples, then a notice.
    assert sorted(tuple(sorted(s.extra["concepts"])) for s in samples) == [
        ("<bo>", "<kim>", "<rex>"),
        ("<bo>", "<rex>"),
        ("<kim>", "<rex>"),
    ]
    for sample in samples:
        assert sample.solution == [t for t in sample.extra["concepts"] if t != "<rex>"]  # in reference order
        assert len(sample.images) == len(sample.extra["concepts"]) + 1
    assert src.notices == [
        "ict_multi (train): built 3 of 10 asked (not enough distinct multi-concept scenes)"
    ]


def test_ict_absent_references_show_a_lookalike_before_or_after_the_present_concept(hand):
    plain = build_ict(source(hand), 5)
    src = source(hand, ict_absent_references=1.0)
    samples = build_ict(src, 5)
    # Every sample gets one: a dog absent from the scene for the dogs, any absent concept for <kim> (the
    # only person): <bo> in s_bo and s_pair -> <rex>; <rex> in s_rex -> <bo>; <kim> in s_pair -> <rex>
    # (the one concept absent there); <kim> in s_look -> <bo> or <rex>.
    partners = {
        (s.solution, s.images[-1]): next(t for t in s.extra["concepts"] if t != s.solution) for s in samples
    }
    assert partners.pop(("<kim>", "scenes/s_look.png")) in ("<bo>", "<rex>")
    assert partners == {
        ("<bo>", "scenes/s_bo.png"): "<rex>",
        ("<bo>", "scenes/s_pair.png"): "<rex>",
        ("<rex>", "scenes/s_rex.png"): "<bo>",
        ("<kim>", "scenes/s_pair.png"): "<rex>",
    }
    for sample, before in zip(samples, plain, strict=True):
        shown = sample.extra["concepts"]
        assert len(shown) == 2 and sample.solution in shown  # the solution is still the present concept
        # references in the order the problem names them, the scene last
        assert sample.images[:2] == [f"references/{tag[1:-1]}.png" for tag in shown]
        named = [line.split(",")[0] for line in sample.problem.splitlines()[:2]]
        assert named == [f"Name: {tag}" for tag in shown]
        # the same draws as without the extra reference: question, present concept, scene
        assert sample.problem.splitlines()[-1] == before.problem.splitlines()[-1]
        assert (sample.solution, sample.images[-1]) == (before.solution, before.images[-1])
    assert {s.extra["concepts"].index(s.solution) for s in samples} == {0, 1}  # before and after both drawn
    assert src.notices == []
    assert split_leaks(hand, samples, "train") == []


def test_ict_absent_references_say_when_a_scene_holds_every_concept(hand):
    # Only <bo> and <kim> train, and s_pair shows both: nothing of the split is absent there.
    pair_only = Collection(hand.root, hand.concepts, [hand.scenes[2]], {"train": ["<bo>", "<kim>"]})
    src = source(pair_only, ict_absent_references=1.0)
    samples = build_ict(src, 2)
    assert [s.extra["concepts"] for s in samples] == [[s.solution] for s in samples]
    assert src.notices == [
        "ict (train): 2 sample(s) picked to show an absent concept show one reference, as their scene "
        "holds every concept of the split"
    ]


def test_same_seed_same_samples_and_another_seed_other_draws(hand):
    assert build_oct(source(hand, seed=3), 6) == build_oct(source(hand, seed=3), 6)
    draws = {tuple(s.problem for s in build_ict(source(hand, seed=seed), 5)) for seed in range(5)}
    assert len(draws) > 1


# ------------------------------------------------------------------------------------------ captions
def test_reference_caption_names_only_the_named_concepts(hand):
    s_pair = hand.scenes[2]
    # Left to right: the lookalike dog (x 0-30), <bo> (0-50), <kim> (60-110); thirds of 120 px.
    assert reference_caption(s_pair, hand.concepts, ["<bo>"]) == (
        "<bo> the brown dog is at the top left. "
        "There is also a dog on the left and a person at the top right."
    )
    assert reference_caption(s_pair, hand.concepts, ["<bo>", "<kim>"]) == (
        "<bo> the brown dog is at the top left and <kim> the person is at the top right. "
        "There is also a dog on the left."
    )
    with pytest.raises(RepicError, match="shows none of <rex>"):
        reference_caption(s_pair, hand.concepts, ["<rex>"])


def test_partially_annotated_scenes_claim_nothing_about_other_objects(hand):
    s_rex = hand.scenes[4]
    assert reference_caption(s_rex, hand.concepts, ["<rex>"]) == "<rex> the dog is in the picture."
    sft = build_sft(source(hand, min_caption_chars=100), build_ict(source(hand), 5))
    assert (
        next(r.extra["caption"] for r in sft if r.solution == "<rex>") == "<rex> the dog is in the picture."
    )


def test_short_captions_are_completed_with_the_scene_description(hand):
    sample = next(s for s in build_ict(source(hand), 5) if s.images[1] == "scenes/s_bo.png")
    short = build_sft(source(hand, min_caption_chars=0), [sample])[0].extra["caption"]
    assert short == "<bo> the brown dog is at the top left. There is also a cup at the bottom right."
    long = build_sft(source(hand, min_caption_chars=100), [sample])[0].extra["caption"]
    # 79 characters are under 100, so the generic description follows.
    assert long == short + " A photo of a brown dog at the top left, and a cup at the bottom right."


# ------------------------------------------------------------------------------------------ evaluation, leaks
def test_caption_eval_rows_have_the_scorer_shape(hand):
    assert build_caption_eval(source(hand, "heldout"), "two") == [
        {
            "image": "scenes/h_two.png",
            "task": "ict_multi",
            "concepts": ["<tup>", "<zed>"],
            "question": "Give a personalized caption of this image.",  # the first official question
            "references": ["references/tup.png", "references/zed.png"],
            "reference_concepts": ["<tup>", "<zed>"],
        }
    ]
    assert [row["concepts"] for row in build_caption_eval(source(hand, "heldout"), "single")] == [["<tup>"]]


def test_leak_check_finds_foreign_names_scenes_and_references(hand):
    built = build_samples(hand, BuildConfig(counts={"oct": 8, "vlt": 4, "ict": 5, "ict_multi": 3}))
    assert split_leaks(hand, built.train + built.sft, "train") == []
    assert split_leaks(hand, built.evaluation["oct"] + built.evaluation["single"], "heldout") == []
    leaking = [
        Sample("ict", ["references/bo.png", "scenes/s_bo.png"], "Name: <tup>, Info: x", "<tup>"),
        Sample("oct", ["references/tup.png", "scenes/h_tup.png"], "Is <bo> here?", "no"),
    ]
    assert split_leaks(hand, leaking, "train") == [
        "row 1 names <tup> (not in split 'train')",
        "row 2 shows a reference of <tup>: references/tup.png",
        "row 2 shows a heldout scene: scenes/h_tup.png",
    ]
    with pytest.raises(RepicError, match="would leak concepts across splits: row 1 names <bo>"):
        check_no_leaks(hand, [{"image": "scenes/h_tup.png", "concepts": ["<bo>"]}], "heldout", "eval")


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"counts": {"caption": 3}}, "unknown task 'caption'"),
        ({"counts": {"oct": -1}}, "whole numbers >= 0"),
        ({"oct_positive_ratio": 1.5}, "a ratio is between 0 and 1"),
        ({"multi_references": (1, 4)}, "2 <= low <= high <= 4"),
        ({"oct_references": 0}, "oct_references must be >= 1"),
        ({"ict_absent_references": 1.5}, "ict_absent_references is 1.5; a ratio is between 0 and 1"),
        ({"ict_absent_references": -0.1}, "ict_absent_references is -0.1; a ratio is between 0 and 1"),
        ({"ict_absent_references": "half"}, "ict_absent_references is 'half'; a ratio"),
        ({"ict_absent_references": float("nan")}, "ict_absent_references is nan; a ratio"),
    ],
)
def test_build_config_rejects_bad_settings(settings, message):
    with pytest.raises(RepicError, match=message):
        BuildConfig(**settings)


def test_build_config_accepts_official_task_names():
    assert BuildConfig(counts={"yes_no": 4, "iou": 2}).counts == {"oct": 4, "vlt": 2}


# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    config = WorldConfig(
        n_train_concepts=8,
        n_heldout_concepts=4,
        scenes_per_train_concept=3,
        n_train_two=8,
        n_train_four=4,
        n_train_negative=4,
        n_eval_single=4,
        n_eval_two=3,
        n_eval_four=2,
        n_eval_negative=2,
    )
    return generate_world(tmp_path_factory.mktemp("w") / "world", config)


@pytest.fixture(scope="module")
def built_world(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "build"
    config = BuildConfig(
        counts={"oct": 40, "vlt": 20, "ict": 20, "ict_multi": 20}, eval_counts={"oct": 20, "vlt": 10}
    )
    return out, build(world, out, config)


def test_every_ground_truth_earns_reward_one(built_world):
    _, built = built_world
    options = RewardOptions(min_caption_chars=built.caption_chars[0])
    assert built.caption_chars[0] >= 100  # padded captions reach the paper's minimum too
    samples = built.train + built.evaluation["oct"] + built.evaluation["vlt"]
    assert {s.task for s in built.train} == {"oct", "vlt", "ict", "ict_multi"}
    for sample in samples:
        if sample.task == "oct":
            assert compute("oct", sample.solution, sample.solution) == 1.0
        elif sample.task == "vlt":
            for style in ("json", "list"):
                assert (
                    compute("vlt", format_box_answer(sample.solution, "<x>", style=style), sample.solution)
                    == 1.0
                )
    assert len(built.sft) == sum(s.task in ("ict", "ict_multi") for s in built.train)  # one caption each
    for row in built.sft:
        assert compute(row.task, row.extra["caption"], row.solution, options) == 1.0
        assert compute(row.task, row.extra["caption"], row.solution) == 1.0  # the default 100 characters


def test_build_folder_layout_and_manifest(built_world, world):
    out, built = built_world
    manifest = json.loads((out / "build.json").read_text())
    assert manifest["image_root"] == "../../" + "/".join(world.root.parts[-2:])  # relative to the build
    assert manifest["counts"]["train"] == {"oct": 40, "vlt": 20, "ict": 20, "ict_multi": 20}
    assert manifest["counts"]["eval"] == {"single": 4, "two": 3, "four": 2, "oct": 20, "vlt": 10}
    # The manifest's root resolves the images: the files load as they are.
    train = load_samples(out / "train.jsonl")
    assert len(train) == 100 and all(str(world.root) in image for s in train for image in s.images)
    assert len(load_samples(out / "eval" / "vlt.jsonl")) == 10
    assert [s.extra["caption"] for s in load_samples(out / "sft.jsonl")] == [
        r.extra["caption"] for r in built.sft
    ]
    rows = [json.loads(line) for line in (out / "eval" / "four.jsonl").read_text().splitlines()]
    assert all(len(row["concepts"]) == 4 and row["references"] for row in rows)
    database = ConceptDatabase.load(out / "eval" / "database.json")
    assert sorted(database.concepts) == sorted(world.splits["heldout"])
    assert all(image.is_relative_to(out / "eval" / "images") for c in database for image in c.images)


def test_rebuild_is_identical_and_counts_are_independent(world, built_world, tmp_path):
    out, _ = built_world
    config = BuildConfig(
        counts={"oct": 40, "vlt": 20, "ict": 20, "ict_multi": 20}, eval_counts={"oct": 20, "vlt": 10}
    )
    build(world, tmp_path / "again", config)
    assert (tmp_path / "again" / "train.jsonl").read_bytes() == (out / "train.jsonl").read_bytes()
    fewer_vlt = build_samples(world, BuildConfig(counts={"oct": 40, "vlt": 5, "ict": 20, "ict_multi": 20}))
    same = build_samples(world, config)
    oct_of = lambda built: sorted((s.images, s.problem) for s in built.train if s.task == "oct")  # noqa: E731
    assert oct_of(fewer_vlt) == oct_of(same)


def test_ict_absent_references_at_zero_change_nothing(world):
    counts = {"oct": 40, "vlt": 20, "ict": 20, "ict_multi": 20}
    omitted, zero = BuildConfig(counts=counts), BuildConfig(counts=counts, ict_absent_references=0.0)
    assert build_samples(world, zero) == build_samples(world, omitted)
    assert zero.to_dict() == omitted.to_dict()  # a build.json and the demo's cache key, as before
    assert "ict_absent_references" not in omitted.to_dict()
    assert BuildConfig(ict_absent_references=0.5).to_dict()["ict_absent_references"] == 0.5


def test_ict_absent_references_show_an_absent_lookalike_in_half_the_ict_samples(world):
    counts = {"oct": 40, "vlt": 20, "ict": 20, "ict_multi": 20}
    paper = build_samples(world, BuildConfig(counts=counts))
    half = build_samples(world, BuildConfig(counts=counts, ict_absent_references=0.5))
    # every other task's samples are the same, in the same places
    assert [s for s in half.train if s.task != "ict"] == [s for s in paper.train if s.task != "ict"]
    ict, plain = [s for s in half.train if s.task == "ict"], [s for s in paper.train if s.task == "ict"]
    two = [s for s in ict if len(s.extra["concepts"]) == 2]
    assert len(two) == 10  # round(20 x 0.5)
    scenes = {Source(world, "train").image(scene.image): scene for scene in world.scenes}
    train = world.concepts_in("train")
    for sample, before in zip(ict, plain, strict=True):
        assert (sample.solution, sample.images[-1]) == (before.solution, before.images[-1])
        if sample not in two:
            assert sample == before
            continue
        (absent,) = [tag for tag in sample.extra["concepts"] if tag != sample.solution]
        present = set(tasks_module.present_concepts(scenes[sample.images[-1]]))
        assert absent not in present and absent in world.splits["train"]
        category = world.concepts[sample.solution].category
        if any(c.category == category and c.tag not in present for c in train):  # a lookalike to show
            assert world.concepts[absent].category == category
        assert len(sample.images) == 3
    assert {s.extra["concepts"].index(s.solution) for s in two} == {0, 1}
    # the reference caption names the present concept only, so it keeps the whole faithful-naming reward
    options = RewardOptions(min_caption_chars=half.caption_chars[0], absent_name_cost=0.5)
    for row in (row for row in half.sft if row.task == "ict"):
        shown = row.extra["concepts"]
        assert compute("ict", row.extra["caption"], row.solution, options, shown=shown) == 1.0


def test_build_refuses_to_overwrite_unless_asked(world, tmp_path):
    config = BuildConfig(counts={"oct": 4, "vlt": 0, "ict": 0, "ict_multi": 0}, eval_counts={})
    build(world, tmp_path / "b", config)
    with pytest.raises(RepicError, match="pass --overwrite"):
        build(world, tmp_path / "b", config)
    build(world, tmp_path / "b", config, overwrite=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RepicError, match="holds no build.json"):
        build(world, tmp_path / "other", config, overwrite=True)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
