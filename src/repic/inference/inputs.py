"""Checks of what a user puts into a prompt, made before it reaches a processor or shares a batch.

One place for ``repic caption``, ``repic serve`` and ``repic app``: text that holds a chat-template
control token (``<|image_pad|>`` makes the processor count more image slots than images and fails the
whole batch), control characters, or is longer than a limit is refused; an image whose sides are too far
apart for Qwen-VL's resize (``smart_resize`` refuses an aspect ratio above 200) or too small to hold one
patch is refused. Each check raises ``RepicError`` naming what to fix, so a caller can refuse one request
(or skip one image) and go on with the others.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from PIL import Image

from ..errors import RepicError

MAX_ASPECT_RATIO = 200  # Qwen2-VL's smart_resize raises above it
MIN_IMAGE_SIDE = 1
# The chat templates this project serves mark their control tokens as <|...|> (Qwen, Llama 3, Phi);
# a tokenizer's own added tokens are checked too when one is given.
_CONTROL_TOKEN = re.compile(r"<\|[^<>|\s]{1,64}\|>")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def special_tokens(processor: Any) -> frozenset[str]:
    """The added (special) tokens of ``processor``'s tokenizer: text a user must not be able to inject."""
    tokenizer = getattr(processor, "tokenizer", processor)
    found: set[str] = set(getattr(tokenizer, "all_special_tokens", None) or [])
    getter = getattr(tokenizer, "get_added_vocab", None)
    if callable(getter):
        found.update(getter())
    return frozenset(token for token in found if len(token) > 1 and not token.isalnum())


def check_text(text: str, *, what: str = "the question", max_chars: int | None = None,
               reserved: Iterable[str] = ()) -> str:
    """``text`` when it is safe to put into a prompt; ``RepicError`` saying what to remove otherwise."""
    if not isinstance(text, str):
        raise RepicError(f"{what} must be text")
    if max_chars is not None and len(text) > max_chars:
        raise RepicError(f"{what} is {len(text):,} characters, more than the limit of {max_chars:,}; shorten it")
    bad = _CONTROL_CHARACTERS.search(text)
    if bad is not None:
        raise RepicError(f"{what} holds the control character {bad.group(0)!r}; remove it")
    token = _CONTROL_TOKEN.search(text)
    found = token.group(0) if token else next((t for t in reserved if t in text), None)
    if found is not None:
        raise RepicError(f"{what} holds {found!r}, a control token of the model's chat format; remove it")
    return text


def check_image(image: Image.Image, *, what: str = "the image") -> Image.Image:
    """``image`` when a Qwen-VL-style processor can take it; ``RepicError`` for an extreme shape."""
    width, height = image.size
    if min(width, height) < MIN_IMAGE_SIDE:
        raise RepicError(f"{what} is {width} x {height} pixels; send an image with both sides at least 1 pixel")
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_ASPECT_RATIO:
        raise RepicError(
            f"{what} is {width} x {height} pixels, an aspect ratio of {ratio:.0f}, above the limit of "
            f"{MAX_ASPECT_RATIO} the model's image processor takes; crop or pad it"
        )
    return image


def check_number(value: float, *, what: str, low: float | None = None, high: float | None = None,
                 low_open: bool = False) -> float:
    """``value`` when finite and within ``[low, high]`` (``(low, high]`` with ``low_open``); else ``RepicError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RepicError(f"{what} must be a finite number (got {value!r})")
    below = low is not None and (value <= low if low_open else value < low)
    if below or (high is not None and value > high):
        left = "(" if low_open else "["
        raise RepicError(f"{what} must be in {left}{low}, {high}] (got {value})")
    return value
