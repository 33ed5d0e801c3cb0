"""Reading model output: its text, its yes/no, its box, the box's IoU, and how much it repeats itself.

These functions never raise on what a model writes: anything they cannot read comes back as ``""``,
``None``, ``0.0`` or ``False``. Every pattern here is linear in the output length (no nested or
overlapping quantifiers), so a runaway megabyte of output costs milliseconds, not minutes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .options import DEGENERATION_THRESHOLD

Box = tuple[float, float, float, float]  # (x1, y1, x2, y2), pixels

_YES_NO = re.compile(r"(yes|no)", re.IGNORECASE)
_YES_NO_WORD = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
# The official pattern: non-negative integers, no space after "[" or before "]".
_BOX_STRICT = re.compile(r"\[(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\]")
_NUMBER = r"(-?\d+(?:\.\d+)?)"
_BOX_LENIENT = re.compile(r"\[\s*" + r"\s*,\s*".join([_NUMBER] * 4) + r"\s*\]")
_QWEN_BOX_KEY = '"bbox_2d"'
_TOKEN = re.compile(r"\w+|[^\w\s]")  # words and single punctuation marks, so "<bo><bo>" is 6 tokens
_NGRAM = 4  # long enough that ordinary phrases ("on the left of") rarely recur within one caption


def completion_text(completion: Any) -> str:
    """The text a completion holds: a plain string, ``None`` (empty) or chat messages.

    Messages are dicts whose ``content`` is a string or a list of parts (``{"type": "text", "text": ...}``;
    other parts such as images carry no text). Several messages are joined with newlines.

    >>> completion_text([{"role": "assistant", "content": "Yes."}])
    'Yes.'
    >>> completion_text({"content": [{"type": "text", "text": "<bo> "}, {"type": "text", "text": "naps."}]})
    '<bo> naps.'
    >>> completion_text(None)
    ''
    """
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return _content_text(completion.get("content"))
    if isinstance(completion, Sequence):
        return "\n".join(completion_text(message) for message in completion)
    return str(completion)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "".join(texts)
    return str(content)


def first_yes_no(text: str, *, word_boundary: bool = False) -> str | None:
    """The first ``"yes"`` or ``"no"`` in ``text`` (lower-cased), or ``None`` when there is neither.

    >>> first_yes_no("Yes, <bo> is there.")
    'yes'
    >>> first_yes_no("I know it: yes")  # the official search finds "no" inside "know"
    'no'
    >>> first_yes_no("I know it: yes", word_boundary=True)
    'yes'
    """
    match = (_YES_NO_WORD if word_boundary else _YES_NO).search(text)
    return match.group(1).lower() if match else None


def parse_box(text: str, *, lenient: bool = False) -> Box | None:
    """The first box ``[x1, y1, x2, y2]`` written in ``text``, or ``None``.

    By default only non-negative integers count, as in the official reward. ``lenient`` also takes floats,
    negative numbers and spaces inside the brackets, and prefers the box after a ``"bbox_2d"`` key.

    >>> parse_box("The dog is at [12, 30, 200, 180].")
    (12.0, 30.0, 200.0, 180.0)
    >>> parse_box('[{"bbox_2d": [1.5, 2, 30, 40], "label": "<bo>"}]') is None
    True
    >>> parse_box('[{"bbox_2d": [1.5, 2, 30, 40], "label": "<bo>"}]', lenient=True)
    (1.5, 2.0, 30.0, 40.0)
    """
    if not lenient:
        match = _BOX_STRICT.search(text)
    else:
        key = text.find(_QWEN_BOX_KEY)
        match = _BOX_LENIENT.search(text, key) if key >= 0 else None
        match = match or _BOX_LENIENT.search(text)
    if match is None:
        return None
    x1, y1, x2, y2 = (float(group) for group in match.groups())
    return (x1, y1, x2, y2)


def official_box_iou(pred: Sequence[float], truth: Sequence[float]) -> float:
    """IoU of two ``[x1, y1, x2, y2]`` boxes with the official RePIC arithmetic.

    The official ``_iou`` treats the intersection as inclusive pixels (``max(x1)`` to ``min(x2) - 1``,
    width ``+ 1``) but the areas as exclusive (``x2 - x1``), and divides by ``max(1, union)``. The
    ``- 1`` and ``+ 1`` cancel, so this is the usual area IoU except that an overlap one pixel wide (or
    less) in either direction counts as none (``repic.concepts.detect.standard_box_iou`` counts it). An
    inverted or empty predicted box overlaps nothing, so it scores 0.

    >>> official_box_iou([0, 0, 10, 10], [5, 0, 15, 10])  # overlap 5 x 10 = 50, union 100 + 100 - 50 = 150
    0.3333333333333333
    >>> official_box_iou([0, 0, 10, 10], [9, 0, 19, 10])  # a one-pixel-wide overlap counts as none
    0.0
    """
    px1, py1, px2, py2 = pred
    tx1, ty1, tx2, ty2 = truth
    left, top = max(px1, tx1), max(py1, ty1)
    right, bottom = min(px2 - 1, tx2 - 1), min(py2 - 1, ty2 - 1)
    inter = (right - left + 1) * (bottom - top + 1) if left < right and top < bottom else 0.0
    # An inverted box overlaps nothing (inter is 0), so its signed area cannot change the result; the
    # official code clamps areas at 0 to the same effect.
    union = (px2 - px1) * (py2 - py1) + (tx2 - tx1) * (ty2 - ty1) - inter
    return float(inter) / float(max(1.0, union))


def repetition_rate(text: str, n: int = _NGRAM) -> float:
    """The share of word ``n``-grams in ``text`` that repeat an earlier one (0 when too short to judge).

    Tokens are words and single punctuation marks, lower-cased; texts under ``2 * n`` tokens score 0.

    >>> repetition_rate("the cat sat on the mat " * 3)  # 18 tokens, 15 4-grams, 6 distinct: 1 - 6/15
    0.6
    """
    tokens = _TOKEN.findall(text.lower())
    if len(tokens) < 2 * n:
        return 0.0
    # n shifted views of the token list, cut to the shortest: the i-th tuple is the n-gram starting at i.
    grams = list(zip(*(tokens[i:] for i in range(n)), strict=False))
    return 1.0 - len(set(grams)) / len(grams)


def is_degenerate(text: str, threshold: float = DEGENERATION_THRESHOLD) -> bool:
    """Whether ``text`` repeats itself: its ``repetition_rate`` is above ``threshold``.

    >>> is_degenerate("<bo> is here. " * 20)
    True
    >>> is_degenerate("<bo> naps on a grey sofa while the afternoon sun warms the rug below.")
    False
    """
    return repetition_rate(text) > threshold
