"""Prompt strings and chat layouts: official wording, suffix odds, one placeholder per image."""

from __future__ import annotations

import doctest
import random
import re
from collections import Counter

import pytest

from repic import prompts
from repic.errors import RepicError
from repic.prompts import (
    EVAL_CAPTION_QUESTIONS,
    ICT_SUFFIX_NO_DUPLICATION,
    ICT_SUFFIX_WITH_NAME,
    INFERENCE_SYSTEM_PROMPT,
    count_image_placeholders,
    format_box_answer,
    ict_problem,
    inference_messages,
    oct_problem,
    task_text,
    training_messages,
    vlt_problem,
)

# The reward's box pattern (official RePIC): the first integer list of four.
OFFICIAL_BOX_PATTERN = r"\[(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\]"


def test_module_doctests_pass():
    assert doctest.testmod(prompts).failed == 0


@pytest.mark.parametrize(
    "task, ending",
    [
        # official OCT instruction appended verbatim
        ("yes_no", "Is <bo> here? The final answer must be either 'yes' or 'no' with no additional output."),
        # official VLT instruction appended verbatim
        ("iou", "Is <bo> here? For bounding box coordinates, return the final answer in JSON format."),
    ],
)
def test_oct_and_vlt_texts_append_the_official_instruction(task, ending):
    assert task_text(task, "Is <bo> here?", random.Random(0)) == ending


def test_list_box_style_swaps_the_vlt_instruction():
    text = task_text("vlt", "Where?", random.Random(0), box_style="list")
    assert text == "Where? Return the bounding box as [x1, y1, x2, y2] in pixels of the image."
    with pytest.raises(RepicError, match="json, list"):
        task_text("vlt", "Where?", random.Random(0), box_style="xml")


def test_ict_suffix_follows_the_official_one_one_three_odds():
    rng = random.Random(1234)
    counts = Counter(task_text("ict", "Q.", rng) for _ in range(5000))
    # Expected 1000 / 1000 / 3000; a seeded draw stays within a few percent of that.
    assert set(counts) == {f"Q. {ICT_SUFFIX_WITH_NAME}", f"Q. {ICT_SUFFIX_NO_DUPLICATION}", "Q."}
    assert 900 < counts[f"Q. {ICT_SUFFIX_WITH_NAME}"] < 1100
    assert 900 < counts[f"Q. {ICT_SUFFIX_NO_DUPLICATION}"] < 1100
    assert 2850 < counts["Q."] < 3150


def test_ict_suffix_strings_are_the_official_ones():
    assert ICT_SUFFIX_WITH_NAME == "Output the final answer including its name."
    assert ICT_SUFFIX_NO_DUPLICATION == "Output the final answer without duplicating the given information."


def test_same_seed_gives_same_prompts():
    first = [task_text("ict_multi", "Q.", random.Random(7)) for _ in range(3)]
    again = [task_text("ict_multi", "Q.", random.Random(7)) for _ in range(3)]
    assert first == again


@pytest.mark.parametrize("n_images", [1, 2, 5])
def test_training_messages_hold_one_placeholder_per_image_then_the_text(n_images):
    messages = training_messages("oct", "Is <bo> in it?", n_images, random.Random(0))
    content = messages[0]["content"]
    assert messages[0]["role"] == "user"
    assert [part["type"] for part in content] == ["image"] * n_images + ["text"]
    assert count_image_placeholders(messages) == n_images


def test_prompt_without_images_is_refused():
    with pytest.raises(RepicError, match="at least one image"):
        training_messages("ict", "Q.", 0, random.Random(0))


def test_problem_texts():
    # One reference image of <bo>, then the query.
    assert oct_problem("<bo>", 1, "Is {name} in the query image?") == (
        "<bo> is shown in the first image; the last image is the query image. Is <bo> in the query image?"
    )
    # Two references say "the first 2 images".
    assert "the first 2 images" in oct_problem("<bo>", 2, "Is {name} here?")
    # A named VLT target carries its reference line; a category target does not need one.
    assert (
        vlt_problem("Find {target}.", "<bo>", tag="<bo>", info="a corgi")
        == "Name: <bo>, Info: a corgi. Find <bo>."
    )
    assert vlt_problem("Find {target}.", "the dog") == "Find the dog."
    # ICT: one line per reference, in image order, then the question about the last image.
    assert ict_problem([("<bo>", "a corgi"), ("<kim>", "a woman")], "Caption it.") == (
        "Name: <bo>, Info: a corgi\n"
        "Name: <kim>, Info: a woman\n"
        "The last image is the query image. Caption it."
    )
    with pytest.raises(RepicError):
        ict_problem([], "Caption it.")


def test_inference_layout_matches_the_rap_repic_scripts():
    messages = inference_messages([("<bo>", "a corgi"), ("<kim>", "a woman")], EVAL_CAPTION_QUESTIONS[0])
    assert messages[0] == {"role": "system", "content": [{"type": "text", "text": INFERENCE_SYSTEM_PROMPT}]}
    parts = [part.get("text", "<IMG>") for part in messages[1]["content"]]
    assert parts == [
        "<IMG>",
        "1. Name: <bo>, Info: a corgi",
        "<IMG>",
        "2. Name: <kim>, Info: a woman",
        "<IMG>",
        "This is the query image. Give a personalized caption of this image.",
    ]
    assert count_image_placeholders(messages) == 3
    # Zero-shot: just the query.
    assert count_image_placeholders(inference_messages([], "Q?")) == 1


def test_eval_questions_cycle_in_official_order():
    assert [prompts.eval_question(i) for i in range(4)] == [
        *EVAL_CAPTION_QUESTIONS,
        EVAL_CAPTION_QUESTIONS[0],
    ]


@pytest.mark.parametrize("style", ["json", "list"])
def test_box_answers_parse_with_the_official_pattern(style):
    answer = format_box_answer((12.4, 30.6, 140.0, 200.5), "<bo>", style=style)
    match = re.search(OFFICIAL_BOX_PATTERN, answer)
    # Rounded to the nearest pixel: 12.4->12, 30.6->31, 200.5->200 (banker's rounding of .5).
    assert match and [int(g) for g in match.groups()] == [12, 31, 140, 200]


def test_question_pools_use_only_their_placeholder():
    for template in prompts.OCT_QUESTIONS:
        assert "{name}" in template and "{target}" not in template
    for template in prompts.VLT_QUESTIONS:
        assert "{target}" in template and "{name}" not in template
    # Training and evaluation questions do not overlap, so scores do not reward memorised phrasing.
    assert not set(prompts.TRAIN_CAPTION_QUESTIONS) & set(EVAL_CAPTION_QUESTIONS)
