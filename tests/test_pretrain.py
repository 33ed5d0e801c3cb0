"""Pretraining the tiny base: the rows, the fresh names, the SFTTrainer run, the probe, the shipped model.

A small world (4 training and 2 held-out concepts) is generated once per module; the pretraining run is a
few steps on it, enough to go through TRL's SFTTrainer, save and probe.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor

from repic import shipped
from repic.data.describe import describe_object
from repic.errors import RepicError
from repic.prompts import count_image_placeholders
from repic.shipped import shipped_base_path
from repic.world.pretrain import (
    FINAL_STAGE_MIX,
    MATCHING_STAGE_MIX,
    RECORD_FILE,
    FinalStage,
    PretrainConfig,
    _world,
    pretrain_tiny,
)
from repic.world.pretrain_data import (
    PRETRAIN_TASKS,
    PretrainMix,
    build_image_pool,
    fresh_name,
    pretraining_rows,
    reserved_names,
    row_text,
    tokenizer_corpus,
)
from repic.world.probe import PROBE_KEYS, Generated, ProbeConfig, caption_scores, known_heldout_concepts
from repic.world.synthetic import (
    CATEGORIES,
    PROP_CATEGORIES,
    WorldConfig,
    build_scene,
    generate_world,
    make_world,
)
from repic.world.tokenizer import NAME_SYLLABLES, TINY_NAME_PATTERN, check_name_tokenization
from repic.world.vision import VisionPretrainConfig

SMALL_WORLD = WorldConfig(
    n_train_concepts=4,
    n_heldout_concepts=2,
    scenes_per_train_concept=2,
    n_train_two=2,
    n_train_four=1,
    n_train_negative=2,
    n_eval_single=2,
    n_eval_two=1,
    n_eval_four=0,
    n_eval_negative=1,
)
TINY_VISION = VisionPretrainConfig(steps=2, batch_size=4, scenes=8, extra_concepts=4, eval_scenes=4, warmup_steps=1)
QUICK_PROBE = ProbeConfig(
    captions=2, copies=2, matching=2, category_questions=2, boxes=2, caption_tokens=4, answer_tokens=4, speed_tokens=2
)
NAME = re.compile(r"<[a-z]+>")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate_world(tmp_path_factory.mktemp("world") / "small", SMALL_WORLD)


@pytest.fixture(scope="module")
def pool(world, tmp_path_factory):
    return build_image_pool(
        world, tmp_path_factory.mktemp("pool"), extra_scenes=10, extra_references=1, object_views=12
    )


@pytest.fixture(scope="module")
def rows(pool):
    # the default mix plus the opt-in scene_objects task, so every task is drawn
    return list(pretraining_rows(pool, 400, mix=PretrainMix(scene_objects=0.1), seed=0))


@pytest.fixture(scope="module")
def pretrained(world, tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    config = PretrainConfig(
        steps=4, batch_size=4, vision_phase_steps=1, copy_phase_steps=1, decision_phase_steps=1, extra_scenes=6,
        extra_references=1, skill_checks=1, world=SMALL_WORLD, vision=TINY_VISION,
        final_stages=(FinalStage("half", 2, FINAL_STAGE_MIX), FinalStage("matching", 1, MATCHING_STAGE_MIX, 5e-4)),
    )
    record = pretrain_tiny(root / "base", config, world_dir=world.root, work_dir=root / "work", probe=QUICK_PROBE,
                           command="test run")
    return root, record


def _answer(row) -> str:
    return row["completion"][0]["content"][0]["text"]


def _by_path(pool):
    return {str(item.path): item.scene for item in pool.scenes}


# ------------------------------------------------------------------------------------------ rows
def test_every_task_is_drawn_and_each_image_has_one_placeholder(rows):
    assert set(Counter(row["task"] for row in rows)) == set(PRETRAIN_TASKS)
    for row in rows:
        # TRL pairs placeholders with images in order: the two counts must agree on every row.
        assert count_image_placeholders(row["prompt"]) == len(row["images"]) >= 1
        assert row["completion"][0]["role"] == "assistant"


def test_rows_name_no_concept_and_show_nothing_held_out(world, rows):
    held_out_images = {str(world.image_path(s.image)) for s in world.scenes_in("heldout")}
    held_out_images |= {str(p) for c in world.concepts_in("heldout") for p in c.images}
    for row in rows:
        text = row_text(row)
        assert not [tag for tag in world.concepts if tag in text], text  # neither training nor held-out names
        assert not held_out_images & set(row["images"])


def test_echo_names_are_fresh_and_copied_from_the_prompt(world, rows):
    reserved = reserved_names(world)
    echoes = [row for row in rows if row["task"] == "echo"]
    assert len(echoes) > 30  # about 12 % of 400
    for row in echoes:
        name = NAME.search(_answer(row)).group(0)
        assert TINY_NAME_PATTERN.fullmatch(name)
        assert name not in reserved
        assert name in row_text({"prompt": row["prompt"], "completion": []})  # given in the prompt


def test_echo_multi_rows_copy_every_fresh_name_in_order(world, rows):
    reserved = reserved_names(world)
    several = [row for row in rows if row["task"] == "echo_multi"]
    assert len(several) > 15  # about 8 % of 400
    for row in several:
        prompt = row_text({"prompt": row["prompt"], "completion": []})
        names = NAME.findall(_answer(row))
        assert 2 <= len(names) <= 4 and len(set(names)) == len(names)
        assert not set(names) & reserved
        # Given in the prompt in the same order as answered; one reference image per name (+ a query scene
        # in the RAP layout).
        assert NAME.findall(prompt) == names
        assert len(row["images"]) in (len(names), len(names) + 1)


def test_fresh_name_never_returns_a_reserved_name():
    everything = {f"<{a}{b}>" for a in NAME_SYLLABLES for b in NAME_SYLLABLES}
    # Every name but one is reserved, so the only possible draw is that one.
    assert fresh_name(__import__("random").Random(3), everything - {"<zuzu>"}) == "<zuzu>"


@pytest.mark.parametrize("task", ["category_yes_no", "matching"])
def test_yes_no_rows_are_balanced(rows, task):
    answers = Counter(_answer(row) for row in rows if row["task"] == task)
    assert set(answers) == {"yes", "no"}
    assert 0.35 <= answers["yes"] / sum(answers.values()) <= 0.65  # drawn at 1/2 per row


def test_matching_says_yes_exactly_when_the_reference_object_is_in_the_scene(pool, rows):
    # A concept's view belongs to every scene showing the concept; a distractor's view to its own scene.
    owners = {str(path): set(pool.by_concept[tag]) for tag, paths in pool.references.items() for path in paths}
    owners |= {str(view.path): {view.scene_index} for view in pool.objects}
    index = {str(item.path): i for i, item in enumerate(pool.scenes)}
    matching = [row for row in rows if row["task"] == "matching"]
    assert {row["images"][0] in owners for row in matching} == {True}
    for row in matching:
        reference, query = row["images"]
        assert (_answer(row) == "yes") == (index[query] in owners[reference])


def test_object_views_are_distractors_of_their_scene(pool):
    assert len(pool.objects) == 12
    for view in pool.objects:
        scene = pool.scenes[view.scene_index].scene
        details = scene.extra["object_details"]
        assert any(
            obj.concept is None and obj.category == view.category and detail["attributes"] == view.attributes
            for obj, detail in zip(scene.objects, details, strict=True)
        )


def test_box_answers_are_the_box_of_the_asked_object(pool, rows):
    scenes = _by_path(pool)
    described = 0
    for row in (r for r in rows if r["task"] == "category_box"):
        scene = scenes[row["images"][0]]
        prompt = row_text({"prompt": row["prompt"], "completion": []})
        if "Info: " in prompt:  # a named description (VLT's form): the object that description is of
            described += 1
            details = scene.extra["object_details"]
            matches = [obj for obj, detail in zip(scene.objects, details, strict=True)
                       if f"Info: {describe_object(detail['attributes'], obj.category)}." in prompt]
        else:  # a category shown once
            asked = [c for c in CATEGORIES + PROP_CATEGORIES if f"the {c}" in prompt]
            matches = [obj for obj in scene.objects if obj.category in asked]
        assert matches and all(obj.box == matches[0].box for obj in matches)
        # Integer pixels of the image, the format the VLT reward parses: "[x1, y1, x2, y2]".
        assert _answer(row) == "[" + ", ".join(str(round(v)) for v in matches[0].box) + "]"
    assert described >= 5


def test_same_seed_same_rows_other_seed_other_rows(pool):
    first = list(pretraining_rows(pool, 20, seed=5))
    assert first == list(pretraining_rows(pool, 20, seed=5))
    assert first != list(pretraining_rows(pool, 20, seed=6))


def test_tokenizer_corpus_holds_no_concept_name(world, pool, rows):
    corpus = "\n".join(tokenizer_corpus(pool, rows))
    assert "Give a personalized caption of this image." in corpus  # the evaluation prompts are learnt too
    assert not [tag for tag in world.concepts if tag in corpus]


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        # 0 + 0 + 1 + 0 + 0 + 1 + 0 + 2 = 4 in all: shares 0, 0, 1/4, 0, 0, 1/4, 0, 2/4.
        ({"object": 0, "scene_objects": 0, "describe": 1, "category_yes_no": 0, "category_box": 0, "echo": 1,
          "echo_multi": 0, "matching": 2},
         {"object": 0.0, "scene_objects": 0.0, "describe": 0.25, "category_yes_no": 0.0, "category_box": 0.0,
          "echo": 0.25, "echo_multi": 0.0, "matching": 0.5}),
        # The defaults already sum to 1, so shares equal weights.
        ({}, {"object": 0.15, "scene_objects": 0.0, "describe": 0.21, "category_yes_no": 0.10,
              "category_box": 0.10, "echo": 0.12, "echo_multi": 0.12, "matching": 0.20}),
    ],
)
def test_mix_shares(weights, expected):
    assert PretrainMix(**weights).shares() == pytest.approx(expected)


@pytest.mark.parametrize(
    ("weights", "message"),
    [({"describe": -1}, ">= 0"), ({"matching": True}, ">= 0"),
     ({task: 0 for task in PRETRAIN_TASKS}, "positive")],
)
def test_mix_rejects_bad_weights(weights, message):
    with pytest.raises(RepicError, match=message):
        PretrainMix(**weights)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # Without echo rows in the main mix the base never learns to write a name.
        ({"mix": PretrainMix(echo=0)}, "echo"),
        # 700 + 500 + 400 phase steps cannot fit in 500 steps.
        ({"steps": 500}, "fit in steps"),
        ({"vision_phase_steps": -1}, "fit in steps"),
        ({"phase_order": ("copy", "main")}, "phase_order must name each of copy, vision, decision, main once"),
        ({"grounding_weight": -1.0}, "grounding_weight cannot be negative"),
        ({"grounding_phases": ("copy", "warmup")}, "grounding_phases must be among"),
        ({"phase_order": ("copy", "vision", "vision", "main")}, "phase_order must name each"),
    ],
)
def test_pretrain_config_rejects_impossible_phases(changes, message):
    with pytest.raises(RepicError, match=message):
        PretrainConfig(**changes)


def test_phases_come_in_order_copy_vision_decision_main(pool):
    from repic.world.pretrain import _curriculum

    config = PretrainConfig(steps=8, batch_size=10, vision_phase_steps=2, copy_phase_steps=2, decision_phase_steps=2)
    assert [(name, steps) for name, steps, _ in config.phases()] == [
        ("copy", 2), ("vision", 2), ("decision", 2), ("main", 2)
    ]
    rows = _curriculum(pool, config)
    assert len(rows) == 80  # every step a fresh batch of 10
    copy, vision = Counter(r["task"] for r in rows[:20]), Counter(r["task"] for r in rows[20:40])
    decision = Counter(r["task"] for r in rows[40:60])
    assert copy["echo"] >= 9 and copy["object"] == 0  # 70 % echo rows, no object rows
    assert vision["object"] == 20  # the vision phase asks object questions only
    assert set(decision) <= {"matching", "category_yes_no", "category_box"} and decision["matching"] >= 6
    assert all(r["grounding"] for r in rows[40:60])  # every decision row says where its object is
    assert not any(r["grounding"] for r in rows[:20])  # none in the copy phase (it kept copying from emerging)


def test_phase_order_decides_the_rows_and_the_vision_window(pool):
    from repic.world.pretrain import _curriculum

    config = PretrainConfig(steps=7, batch_size=10, vision_phase_steps=2, copy_phase_steps=3, decision_phase_steps=0,
                            phase_order=("vision", "copy", "decision", "main"))
    assert [(name, steps) for name, steps, _ in config.phases()] == [
        ("vision", 2), ("copy", 3), ("decision", 0), ("main", 2)
    ]
    assert config.vision_window() == (0, 2)
    assert PretrainConfig().vision_window() == (900, 1400)  # copy first, then vision
    rows = _curriculum(pool, config)
    vision, copy = Counter(r["task"] for r in rows[:20]), Counter(r["task"] for r in rows[20:50])
    assert vision["object"] == 20 and copy["object"] == 0 and copy["echo"] >= 14


def test_scene_objects_rows_list_every_category_left_to_right(pool, rows):
    scenes = _by_path(pool)
    listed = [row for row in rows if row["task"] == "scene_objects"]
    assert len(listed) > 20  # about 10 % of 400
    for row in listed:
        scene = scenes[row["images"][0]]
        ordered = sorted(scene.objects, key=lambda obj: obj.box[0] + obj.box[2])
        words = [word.strip(",") for word in _answer(row).split() if word not in {"a", "an", "and"}]
        assert words == [obj.category for obj in ordered] and not NAME.search(_answer(row))


def test_object_answers_are_the_views_own_attributes(pool, rows):
    views = {str(view.path): (view.category, view.attributes) for view in pool.objects}
    views |= {str(p): (c.category, c.extra["attributes"]) for c in pool.concepts.values() for p in pool.references[c.tag]}
    objects = [row for row in rows if row["task"] == "object"]
    assert len(objects) > 30  # about 15 % of 400
    for row in objects:
        category, attributes = views[row["images"][0]]
        answer = _answer(row)
        # The answer is the category ("a cat") or one word group of the attributes, never a name.
        words = set(answer.split()) - {"a", "an"}
        assert words <= {category, *attributes.values()}, (answer, category, attributes)
        assert not NAME.search(answer)


def test_vision_schedule_trains_the_tower_only_inside_its_window(tmp_path):
    from repic.models.load import vision_module_names
    from repic.world.pretrain import _vision_schedule_callback
    from repic.world.tiny import build_tiny_model

    model = AutoModelForImageTextToText.from_pretrained(build_tiny_model(tmp_path / "m", texts=["a red cat"]))
    callback = _vision_schedule_callback(2, 4, lambda message: None)
    vision = vision_module_names(model)

    def vision_trainable():
        return {p.requires_grad for n, p in model.named_parameters() if any(n.startswith(v + ".") for v in vision)}

    callback.on_train_begin(None, None, None, model=model)
    seen = []
    for step in range(1, 6):  # the state after each step: frozen, trainable from 2, frozen again from 4
        callback.on_step_end(None, type("State", (), {"global_step": step})(), None, model=model)
        seen.append(vision_trainable())
    assert seen == [{False}, {True}, {True}, {False}, {False}]
    assert {p.requires_grad for n, p in model.named_parameters() if "lm_head" in n or "layers" in n} == {True}


def test_pool_refuses_a_collection_that_is_not_a_synthetic_world(world, tmp_path):
    world.meta.pop("generator")
    try:
        with pytest.raises(RepicError, match="not a synthetic world"):
            build_image_pool(world, tmp_path, extra_scenes=1)
    finally:
        world.meta["generator"] = "repic.world.synthetic"


# ------------------------------------------------------------------------------------------ scores
@pytest.mark.parametrize(
    ("reference", "caption", "expected"),
    [
        # Both categories named; of the attribute words {red, blue} only red is said: recall 1, 1/2.
        ("A photo of a red bear and a blue cup.", "a red bear, a green cup",
         {"category_recall": 1.0, "attribute_recall": 0.5}),
        # "cat" is not shown: precision 1 right / 2 named = 0.5; recall 1 of 2 shown categories.
        ("A photo of a bear and a cup.", "a bear and a cat", {"category_precision": 0.5, "category_recall": 0.5}),
        # No category at all: nothing named, mention rate 0.
        ("A photo of a bear.", "a photo", {"category_mention_rate": 0.0, "category_precision": 0.0}),
    ],
)
def test_caption_scores(reference, caption, expected):
    scores = caption_scores([reference], [Generated(caption, 6, True)])
    assert {key: scores[key] for key in expected} == pytest.approx(expected)


# ------------------------------------------------------------------------------------------ training
def test_pretraining_runs_through_sft_trainer_and_changes_the_weights(pretrained):
    root, record = pretrained
    before = load_file(root / "work" / "initial" / "model.safetensors")
    after = load_file(root / "base" / "model.safetensors")
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    language = [name for name in before if not name.startswith("visual.")]
    assert len(changed) > len(language) // 2 and changed <= set(language)  # the LM learns, the tower is frozen
    assert record["training"]["steps"] == 4
    assert record["data"]["rows"] == 4 * 4  # every row seen once
    assert record["training"]["grounding_loss_curve"]  # the decision row's grounding loss was computed
    stages = record["final_stages"]
    assert [(stage["name"], stage["steps"], stage["learning_rate"]) for stage in stages] == [
        ("half", 2, 1e-3), ("matching", 1, 5e-4)]
    assert sum(stages[0]["rows_per_task"].values()) == 2 * 4 and stages[1]["rows_per_task"] == {"matching": 4}
    assert record["vision"]["train_concepts"] == SMALL_WORLD.n_train_concepts + TINY_VISION.extra_concepts  # the tower's own stage ran first
    assert (root / "base" / "vision_record.json").is_file()
    checks = record["training"]["checks_by_step"]
    assert [c["step"] for c in checks] == [4] and set(checks[0]) == {"step", "copy_accuracy", "object_accuracy"}
    assert json.loads((root / "base" / RECORD_FILE).read_text())["command"] == "test run"
    # save_pretrained writes the weights owner-only (0600); the folder's files must be readable by all.
    assert {path.stat().st_mode & 0o044 for path in (root / "base").iterdir()} == {0o044}


def test_finish_from_runs_only_the_final_stages_and_keeps_the_earlier_record(pretrained, world, tmp_path):
    root, record = pretrained
    config = PretrainConfig(steps=4, batch_size=4, vision_phase_steps=1, copy_phase_steps=1, decision_phase_steps=1,
                            extra_scenes=6, extra_references=1, world=SMALL_WORLD, vision=TINY_VISION,
                            final_stages=(FinalStage("again", 1, MATCHING_STAGE_MIX, 5e-4),))
    finished = pretrain_tiny(tmp_path / "finished", config, world_dir=world.root, probe=None, command="finish",
                             finish_from=root / "base")
    before = load_file(root / "base" / "model.safetensors")
    after = load_file(tmp_path / "finished" / "model.safetensors")
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and not any(name.startswith("visual.") for name in changed)  # the LM moved, the tower did not
    assert [stage["name"] for stage in finished["final_stages"]] == ["half", "matching", "again"]
    assert finished["command"] == "test run" and finished["finished_from"]["command"] == "finish"
    assert finished["wall_seconds"] == record["wall_seconds"] and finished["finished_from"]["wall_seconds"] > 0
    assert finished["final_stages"][-1]["mix"] == MATCHING_STAGE_MIX.to_dict()
    assert finished["training"] == record["training"]  # the curriculum's account, carried over
    assert (tmp_path / "finished" / "vision_record.json").is_file()


def test_a_work_folder_used_before_gives_its_world_again_or_a_new_one_for_another_config(tmp_path):
    said = []
    first = _world(None, SMALL_WORLD, tmp_path, said.append)
    again = _world(None, SMALL_WORLD, tmp_path, said.append)  # raised "already holds an output" before
    assert "reusing" in said[-1] and again.meta["config"] == first.meta["config"]
    assert sorted(again.concepts) == sorted(first.concepts)
    other = replace(SMALL_WORLD, seed=SMALL_WORLD.seed + 1)
    regenerated = _world(None, other, tmp_path, said.append)
    assert "generating" in said[-1] and regenerated.meta["config"] == other.to_dict()
    (tmp_path / "world" / "collection.json").write_text("{ cut off", encoding="utf-8")  # damaged by a crash or a hand
    remade = _world(None, other, tmp_path, said.append)
    assert "generating" in said[-1] and remade.meta["config"] == other.to_dict()


def test_finish_from_refuses_a_folder_without_a_record_and_another_world(pretrained, world, tmp_path):
    root, _ = pretrained
    (tmp_path / "plain").mkdir()
    with pytest.raises(RepicError, match="has no pretrain_record.json"):
        pretrain_tiny(tmp_path / "a", PretrainConfig(world=SMALL_WORLD), world_dir=world.root,
                      finish_from=tmp_path / "plain")
    with pytest.raises(RepicError, match="is not a folder"):
        pretrain_tiny(tmp_path / "d", PretrainConfig(world=SMALL_WORLD), finish_from=tmp_path / "nowhere")
    (tmp_path / "weightless").mkdir()
    (tmp_path / "weightless" / RECORD_FILE).write_text((root / "base" / RECORD_FILE).read_text())
    with pytest.raises(RepicError, match="needs the whole model folder"):
        pretrain_tiny(tmp_path / "c", PretrainConfig(world=SMALL_WORLD), world_dir=world.root,
                      finish_from=tmp_path / "weightless")
    other = PretrainConfig(world=WorldConfig(seed=SMALL_WORLD.seed + 1))
    with pytest.raises(RepicError, match="--world-seed"):
        pretrain_tiny(tmp_path / "b", other, finish_from=root / "base")
    assert not any((tmp_path / name).exists() for name in ("a", "b", "c"))


def test_pretrained_folder_loads_with_auto_classes_and_keeps_names_at_four_tokens(pretrained, world):
    folder = pretrained[0] / "base"
    model = AutoModelForImageTextToText.from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder)
    assert model.config.model_type == "qwen2_5_vl"
    report = check_name_tokenization(processor.tokenizer, list(world.concepts))
    assert report["consistent"] and report["lengths"] == {4: len(world.concepts)}


def test_probe_returns_the_documented_keys(pretrained):
    assert set(pretrained[1]["probe"]) == set(PROBE_KEYS)
    assert pretrained[1]["probe"]["same_world_as_pretraining"] is True
    assert pretrained[1]["probe"]["heldout_known_from_pretraining"] == 0


def test_probe_counts_held_out_concepts_the_model_was_pretrained_on(pretrained, tmp_path, run_cli):
    base = pretrained[0] / "base"
    # more evaluation scenes, the same concepts: another world by its config, but nothing held out is known
    more_scenes = generate_world(tmp_path / "more", replace(SMALL_WORLD, n_eval_single=SMALL_WORLD.n_eval_single + 2))
    assert known_heldout_concepts(base, more_scenes) == 0
    result = run_cli("models", "probe", base, "--world", more_scenes.root, "--prompts", "1")
    assert result.exit_code == 0 and "warning" not in result.stdout + result.stderr
    # one training concept fewer (and no four-concept scenes, which need four): the concepts are drawn in the
    # same order, so the first held-out one is the pretraining world's last training concept, renamed
    shifted = generate_world(tmp_path / "shifted", replace(SMALL_WORLD, n_train_concepts=3, n_train_four=0))
    assert known_heldout_concepts(base, shifted) == 1
    result = run_cli("models", "probe", base, "--world", shifted.root, "--prompts", "1")
    assert result.exit_code == 0
    assert "warning: 1 of the world's held-out concepts look like concepts the model was pretrained on" in result.stdout + result.stderr


def test_probe_cli_prints_a_table_and_writes_json(pretrained, world, tmp_path, run_cli):
    out = tmp_path / "probe.json"
    result = run_cli("models", "probe", pretrained[0] / "base", "--world", world.root, "--prompts", "2",
                     "--caption-tokens", "4", "--json-out", out)
    assert result.exit_code == 0, result.stderr
    assert "copy accuracy, fresh names" in result.stdout
    assert set(json.loads(out.read_text())) == set(PROBE_KEYS)


def test_probe_cli_reports_progress_as_it_goes(world, run_cli):
    result = run_cli("models", "probe", "--world", world.root, "--prompts", "1", "--caption-tokens", "2")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    loading = next(i for i, line in enumerate(lines) if "s] loading " in line)
    phases = [line.split("] ", 1)[1] for line in lines if "s] [" in line]
    assert "s] loaded in " in lines[loading + 1]
    assert phases[0] == "[1/11] captions: 1 prompts" and phases[-1].startswith("[11/11] speed at batch 1 and 8")
    table = next(i for i, line in enumerate(lines) if "copy accuracy, fresh names" in line)
    assert len(phases) == 11 and table > loading  # progress first, then the table


def test_probe_cli_explains_a_missing_world(pretrained, tmp_path, run_cli):
    result = run_cli("models", "probe", pretrained[0] / "base", "--world", tmp_path / "nowhere")
    assert result.exit_code == 2
    assert "repic data synth" in result.stderr


def test_pretrain_cli_refuses_a_non_empty_out_folder(tmp_path, run_cli):
    (tmp_path / "keep.txt").write_text("mine")
    result = run_cli("models", "pretrain-tiny", "--out", tmp_path, "--steps", "1")
    assert result.exit_code == 2
    assert "--overwrite" in result.stderr and (tmp_path / "keep.txt").exists()


def test_pretrain_cli_refuses_unknown_stages_and_curriculum_flags_with_finish_from(tmp_path, run_cli):
    stages = run_cli("models", "pretrain-tiny", "--out", tmp_path / "a", "--stages", "matching,nope")
    assert stages.exit_code == 2 and "unknown stage nope" in stages.stderr and "recovery" in stages.stderr
    finish = run_cli("models", "pretrain-tiny", "--out", tmp_path / "b", "--finish-from", tmp_path,
                     "--vision-steps", "10")
    assert finish.exit_code == 2 and "drop --vision-steps, --steps and --lr" in " ".join(finish.stderr.split())
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_pretrain_config_explains_bad_values():
    with pytest.raises(RepicError, match="steps must be at least 1"):
        PretrainConfig(steps=0)


# ------------------------------------------------------------------------------------------ shipped base
def test_shipped_base_loads_and_captions_a_held_out_scene(tmp_path):
    folder = shipped_base_path()  # its load time is benchmarks/tiny_base_load.py's
    model = AutoModelForImageTextToText.from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder)
    # A held-out scene of the default world, the world the base was pretrained on without its held-out half.
    scene, _, rendered = build_scene(make_world(WorldConfig(), tmp_path), "heldout", "single", 0)
    from PIL import Image

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[Image.fromarray(rendered.image)], return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=96, do_sample=False)
    caption = processor.tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    # Greedy, so the same caption every run; it names objects by category as pretraining taught.
    assert set(CATEGORIES + PROP_CATEGORIES) & set(re.findall(r"[a-z]+", caption)), caption


def test_shipped_base_path_explains_a_missing_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(shipped, "SHIPPED_BASE", tmp_path / "tiny-base")
    with pytest.raises(RepicError, match="pretrain-tiny"):
        shipped_base_path()


def test_rap_describe_rows_caption_and_name_only_referenced_concepts_in_the_scene(pool):
    from repic.prompts import INFERENCE_SYSTEM_PROMPT
    from repic.world.pretrain_data import describe_row

    rng = random.Random(3)
    rows = [describe_row(pool, rng, view_share=0.0, rap_share=1.0, name_share=1.0) for _ in range(60)]
    scenes, counts, named_rows = _by_path(pool), Counter(), 0
    for row in rows:
        assert row["prompt"][0]["content"][0]["text"] == INFERENCE_SYSTEM_PROMPT
        references, query = row["images"][:-1], row["images"][-1]
        counts[len(references)] += 1
        lines = [part["text"] for part in row["prompt"][1]["content"] if part["type"] == "text"][:-1]
        given = [NAME.search(line).group(0) for line in lines]
        named = set(NAME.findall(_answer(row)))
        assert named <= set(given) and _answer(row).startswith("A photo of")
        named_rows += bool(named)
        # a name is written only for a referenced concept that is in the scene
        shown = {obj.concept for obj in scenes[query].objects}
        owners = {name: tag for name, tag in zip(given, _reference_tags(pool, references), strict=True)}
        assert all(owners[name] in shown for name in named)
    assert set(counts) <= {1, 2, 3, 4} and len(counts) >= 3  # several references too, not only one
    assert named_rows >= 10


def _reference_tags(pool, paths):
    owner = {str(path): tag for tag, views in pool.references.items() for path in views}
    return [owner[path] for path in paths]
