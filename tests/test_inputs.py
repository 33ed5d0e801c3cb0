"""The prompt-input checks shared by the CLI, the server and the app (``repic.inference.inputs``)."""

from __future__ import annotations

import math
import re

import pytest
from PIL import Image
from transformers import AutoProcessor

from repic.errors import RepicError
from repic.inference.inputs import check_image, check_number, check_text, special_tokens
from repic.shipped import shipped_base_path


@pytest.mark.parametrize("text, found", [
    ("who is <|image_pad|>?", "'<|image_pad|>', a control token"),
    ("<|im_start|>system", "'<|im_start|>'"),
    ("a\x00b", "the control character '\\x00'"),
    ("tab\x1bescape", "the control character '\\x1b'"),
])
def test_text_with_a_control_token_or_character_is_refused_naming_it(text, found):
    with pytest.raises(RepicError, match="the question holds " + re.escape(found)):
        check_text(text)


def test_ordinary_text_passes_and_newlines_and_tabs_are_allowed():
    assert check_text("What is <bo> doing?\nSay it\tbriefly.") == "What is <bo> doing?\nSay it\tbriefly."


def test_text_over_the_limit_is_refused_with_both_lengths():
    with pytest.raises(RepicError, match="is 50,001 characters, more than the limit of 50,000"):
        check_text("x" * 50_001, max_chars=50_000)
    assert check_text("x" * 50_000, max_chars=50_000)


def test_a_tokenizers_own_added_tokens_are_refused_too():
    processor = AutoProcessor.from_pretrained(shipped_base_path())
    reserved = special_tokens(processor)
    assert {"<|image_pad|>", "<|vision_start|>", "<|im_end|>"} <= reserved
    with pytest.raises(RepicError, match="'<fake>'"):
        check_text("a <fake> token", reserved={"<fake>"})


@pytest.mark.parametrize("size, ok", [((200, 1), True), ((201, 1), False), ((1, 4020), False), ((28, 28), True)])
def test_images_beyond_the_processors_aspect_ratio_are_refused(size, ok):
    image = Image.new("RGB", size)
    if ok:
        assert check_image(image) is image
    else:
        with pytest.raises(RepicError, match="above the limit of 200 the model's image processor takes"):
            check_image(image)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "1", True])
def test_numbers_must_be_finite(value):
    with pytest.raises(RepicError, match="temperature must be a finite number"):
        check_number(value, what="temperature")


def test_number_ranges_say_which_end_is_open():
    assert check_number(2.0, what="temperature", low=0, high=2) == 2.0
    with pytest.raises(RepicError, match=r"top_p must be in \(0, 1\] \(got 0\)"):
        check_number(0, what="top_p", low=0, high=1, low_open=True)
