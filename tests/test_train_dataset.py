"""Samples -> TRL rows: prompts with one placeholder per image, string solutions, SFT targets."""

from __future__ import annotations

import doctest
import json

import pytest
from PIL import Image

from repic.errors import RepicError
from repic.prompts import ICT_SUFFIX_ROLL, OCT_ANSWER_INSTRUCTION, count_image_placeholders
from repic.records import Sample
from repic.rewards import RewardOptions, TaskReward, compute
from repic.train import dataset as dataset_module
from repic.train.dataset import (
    grpo_rows,
    sample_prompt,
    select_samples,
    sft_rows,
    sft_target,
    solution_text,
    to_dataset,
)


@pytest.fixture
def images(tmp_path):
    paths = []
    for index, color in enumerate(["red", "green", "blue"]):
        path = tmp_path / f"{index}.png"
        Image.new("RGB", (56, 56), color).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def samples(images):
    return [
        Sample("oct", images[:2], "<bo> is shown in the first image; ...", "yes"),
        Sample("iou", images[2:], "Name: <bo>, Info: a dog. Give the box.", [1, 2, 30, 40], {"concepts": ["<bo>"]}),
        Sample("ict", images[:2], "Name: <bo>, Info: a dog\nThe last image is the query image.", "<bo>",
               {"caption": "<bo> the brown dog sits on the left."}),
        Sample("ict_multi", images, "Name: <bo> ...\nName: <kim> ...", ["<bo>", "<kim>"]),
        # <max> is shown but absent from the query
        Sample("ict_multi", images, "Name: <bo> ...\nName: <max> ...", ["<bo>"], {"concepts": ["<max>", "<bo>"]}),
    ]


def test_doctests():
    assert doctest.testmod(dataset_module).failed == 0


def test_rows_hold_one_placeholder_per_image_and_the_project_task(samples):
    rows = grpo_rows(samples)
    assert [row["task"] for row in rows] == ["oct", "vlt", "ict", "ict_multi", "ict_multi"]  # "iou" -> vlt
    for row, sample in zip(rows, samples, strict=True):
        assert count_image_placeholders(row["prompt"]) == len(sample.images) == len(row["images"])
        assert row["prompt"][0]["content"][-1]["text"].startswith(sample.problem)
    assert rows[0]["prompt"][0]["content"][-1]["text"].endswith(OCT_ANSWER_INSTRUCTION)
    assert [row["sample_index"] for row in rows] == [0, 1, 2, 3, 4]


def test_solutions_are_strings_the_rewards_read_back(samples):
    rows = grpo_rows(samples)
    assert [row["solution"] for row in rows][:4] == ["yes", "[1, 2, 30, 40]", "<bo>", '["<bo>", "<kim>"]']
    # the rewards accept the JSON forms: a box IoU of 1 and both names found
    assert compute("vlt", "[1, 2, 30, 40]", rows[1]["solution"]) == 1.0
    assert compute("ict_multi", "<bo> and <kim> " * 10, rows[3]["solution"]) == 1.0


def test_shown_concepts_reach_the_rewards_so_absent_names_can_cost(samples):
    rows = grpo_rows(samples)
    assert [json.loads(row["concepts"]) for row in rows] == [[], ["<bo>"], [], [], ["<max>", "<bo>"]]
    reward = TaskReward("ict_multi", RewardOptions(min_caption_chars=10, absent_name_penalty=0.5))
    captions = ["<bo> runs by the lake.", "<bo> and <max> run by the lake."]
    columns = {key: [rows[4][key]] * 2 for key in ("task", "solution", "concepts")}
    assert reward(captions, **columns) == [1.0, 0.5]  # naming the absent <max> costs half
    # without the column (e.g. an older data file) nothing is known to be absent: the paper's reward
    assert reward(captions, task=columns["task"], solution=columns["solution"]) == [1.0, 1.0]


def test_the_ict_suffix_is_drawn_once_per_sample_and_seed(samples):
    ict = samples[2]
    first = [sample_prompt(ict, index)[0]["content"][-1]["text"] for index in range(40)]
    again = [sample_prompt(ict, index)[0]["content"][-1]["text"] for index in range(40)]
    other_seed = [sample_prompt(ict, index, prompt_seed=1)[0]["content"][-1]["text"] for index in range(40)]
    assert first == again  # a sample keeps its prompt across epochs and resumed runs
    assert first != other_seed
    suffixes = {text.removeprefix(ict.problem).strip() for text in first}
    assert suffixes == set(ICT_SUFFIX_ROLL)  # all three official variants occur in 40 draws


def test_a_sample_without_image_is_refused():
    with pytest.raises(RepicError, match="sample 0 .oct. has no image"):
        grpo_rows([Sample("oct", [], "q", "yes")])


def test_an_unknown_task_names_the_sample(images):
    with pytest.raises(RepicError, match="unknown task 'caption' in sample 0"):
        grpo_rows([Sample("caption", images, "q", "x")])


@pytest.mark.parametrize(
    ("index", "target"),
    [
        (0, "yes"),  # OCT: the label
        (1, '[{"bbox_2d": [1, 2, 30, 40], "label": "<bo>"}]'),  # VLT: the box in the json answer style
        (2, "<bo> the brown dog sits on the left."),  # ICT: the reference caption
    ],
)
def test_sft_targets(samples, index, target):
    assert sft_target(samples[index], index) == target


def test_sft_rows_put_the_answer_in_an_assistant_completion(samples):
    rows = sft_rows(samples[:3])
    assert rows[2]["completion"] == [
        {"role": "assistant", "content": [{"type": "text", "text": "<bo> the brown dog sits on the left."}]}
    ]


def test_sft_refuses_a_caption_sample_without_caption(samples):
    with pytest.raises(RepicError, match="sample 3 .ict_multi. has no 'caption' to train on"):
        sft_rows(samples)


@pytest.mark.parametrize(
    ("tasks", "limit", "expected"),
    [
        (None, None, ["oct", "iou", "ict", "ict_multi", "ict_multi"]),
        (["yes_no", "ict"], None, ["oct", "ict"]),  # either spelling selects
        (None, 2, ["oct", "iou"]),
        (["ict_multi", "vlt"], 1, ["iou"]),  # the limit applies after the filter, in file order
    ],
)
def test_select_samples(samples, tasks, limit, expected):
    assert [s.task for s in select_samples(samples, tasks, limit)] == expected


def test_dataset_opens_images_when_read(samples):
    dataset = to_dataset(grpo_rows(samples))
    assert dataset.column_names == ["prompt", "images", "task", "solution", "concepts", "sample_index"]
    row = dataset[3]
    assert [image.size for image in row["images"]] == [(56, 56)] * 3
    assert json.loads(row["solution"]) == ["<bo>", "<kim>"]


def test_an_empty_dataset_says_what_to_check():
    with pytest.raises(RepicError, match="no training samples are left"):
        to_dataset([])


def test_solution_text_keeps_strings():
    assert solution_text("no") == "no"
