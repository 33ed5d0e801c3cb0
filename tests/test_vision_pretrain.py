"""The vision tower's own pretraining stage (``repic.world.vision``): targets, the pretraining world, learning.

The learning test is a real, seeded run on a small world (16 training concepts plus 48 extra, 240 scenes,
120 steps of 12 scenes): on held-out concepts the tower must find a concept's own object in a scene far
more often than at initialisation, and its per-token colour head must beat chance well.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from repic.errors import RepicError
from repic.world.synthetic import ATTRIBUTE_VALUES, _distance, build_scene, make_world
from repic.world.tiny import build_tiny_model
from repic.world.tokenizer import builtin_corpus
from repic.world.vision import (
    OBJECT_ATTRIBUTES,
    TOKEN_ATTRIBUTES,
    TowerInput,
    VisionPretrainConfig,
    classes,
    encode,
    evaluate_vision,
    head_accuracy,
    pretraining_world,
    render_samples,
    sample_from_scene,
    train_tower,
)
from repic.world.world_config import WorldConfig

SMALL = WorldConfig(n_train_concepts=16, n_heldout_concepts=8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = build_tiny_model(tmp_path_factory.mktemp("vision") / "tiny", texts=builtin_corpus())
    return AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32), AutoProcessor.from_pretrained(folder)


def test_pretraining_world_adds_concepts_that_look_like_no_evaluation_concept():
    world = make_world(SMALL, Path("."))
    bigger = pretraining_world(world, 40)
    new = [tag for tag in bigger.splits["train"] if tag not in world.concepts]
    assert len(new) == 40 and bigger.splits["heldout"] == world.splits["heldout"]
    for tag in new:
        concept = bigger.concepts[tag]
        for other in world.concepts.values():  # held-out concepts included
            if other.category == concept.category:
                assert _distance(concept.extra["attributes"], other.extra["attributes"]) >= 1
    assert pretraining_world(world, 40).concepts.keys() == bigger.concepts.keys()  # seeded


def test_scene_targets_follow_the_renderers_pixels():
    world = make_world(SMALL, Path("."))
    sample = sample_from_scene(world, "train", "two", 0)
    tokens = (sample.image.shape[0] // 28) * (sample.image.shape[1] // 28)
    assert sample.token_targets.shape == (tokens, len(TOKEN_ATTRIBUTES))
    assert sample.weights.shape[1] == tokens
    np.testing.assert_allclose(sample.weights.sum(axis=1), 1.0, rtol=1e-5)  # every object is somewhere
    background = classes("category")
    assert (sample.token_targets[:, 0] == background).any() and (sample.token_targets[:, 0] < background).any()
    assert sample.object_targets.shape[1] == len(OBJECT_ATTRIBUTES)
    for key, view in zip(sample.identities, sample.views, strict=True):
        assert (key is None) == (view is None)
        if view is not None:
            assert view.shape == (56, 56, 3)
    # the concepts shown are identities named by their tag; props have none
    shown = {obj for obj in sample.identities if obj and obj.startswith("<")}
    assert len(shown) == 2


def test_token_geometry_holds_each_cells_centre_and_its_objects_box():
    world = make_world(SMALL, Path("."))
    scene, _, _ = build_scene(world, "train", "two", 0)
    sample = sample_from_scene(world, "train", "two", 0)
    side, cols = sample.image.shape[0], sample.image.shape[1] // 28
    assert sample.token_geometry.shape == (len(sample.token_targets), 6)
    for t, (x, y, *box) in enumerate(sample.token_geometry):
        assert (x, y) == pytest.approx(((t % cols + 0.5) * 28 / side, (t // cols + 0.5) * 28 / side))
        if sample.token_targets[t, 0] == classes("category"):
            assert np.isnan(box).all()  # a background token has no object box
        else:  # the box of the object that owns the cell, which covers the cell's centre region
            owner = int(sample.weights[:, t].argmax())
            assert box == pytest.approx([v / side for v in scene.objects[owner].box])


def test_config_refuses_nonsense():
    with pytest.raises(RepicError, match="steps must be at least 1"):
        VisionPretrainConfig(steps=0)
    with pytest.raises(RepicError, match="temperature"):
        VisionPretrainConfig(temperature=0)


def test_encode_gives_one_token_per_28_pixel_cell(tiny):
    model, processor = tiny
    world = make_world(SMALL, Path("."))
    sample = sample_from_scene(world, "train", "single", 0)
    scene, view = encode(model.model.visual, TowerInput(processor.image_processor), [sample.image, sample.views[0]])
    assert scene.shape == (16, model.config.text_config.hidden_size) and view.shape[0] == 4


@pytest.mark.slow
def test_a_short_seeded_run_learns_identity_and_colour_on_heldout_concepts(tiny):
    model, processor = tiny
    torch.manual_seed(0)
    world = make_world(SMALL, Path("."))
    train = render_samples(pretraining_world(world, 48), 240, seed=0)
    heldout = render_samples(world, 60, seed=0, split="heldout")
    tower_input, visual = TowerInput(processor.image_processor), model.model.visual
    before = evaluate_vision(visual, tower_input, heldout)
    config = VisionPretrainConfig(steps=120, batch_size=12, scenes=240, warmup_steps=10)
    heads, curve = train_tower(visual, tower_input, train, config, lambda message: None)
    after = evaluate_vision(visual, tower_input, heldout)
    accuracy = head_accuracy(visual, heads, tower_input, heldout)
    assert curve[-1]["identity"] < curve[0]["identity"]
    assert after["identity_rank1"] >= before["identity_rank1"] + 0.2, (before, after)
    assert after["identity_rank1"] >= 0.6, after
    assert accuracy["token_color_accuracy"] >= 2 / len(ATTRIBUTE_VALUES["color"]), accuracy  # chance: 1 in 10
    assert curve[-1]["geometry"] < 0.6 * curve[0]["geometry"], curve  # measured: 1.99 -> 0.88


def test_copy_tower_moves_the_vision_weights_only(tmp_path):
    from safetensors.torch import load_file

    from repic.world.tiny import TinyModelConfig
    from repic.world.vision import copy_tower

    source = build_tiny_model(tmp_path / "source", texts=builtin_corpus(), config=TinyModelConfig(seed=1))
    target = build_tiny_model(tmp_path / "target", texts=builtin_corpus(), config=TinyModelConfig(seed=2))
    before = load_file(target / "model.safetensors")
    record = copy_tower(source, target)
    after, given = load_file(target / "model.safetensors"), load_file(source / "model.safetensors")
    assert record["copied_from"] == str(source.resolve())
    for name, value in after.items():
        expected = given[name] if name.startswith("visual.") else before[name]
        assert torch.equal(value, expected), name
    assert (target / "vision_record.json").is_file() and (target / "tokenizer.json").is_file()
    with pytest.raises(RepicError, match="no \\*.safetensors"):
        copy_tower(tmp_path, target)
