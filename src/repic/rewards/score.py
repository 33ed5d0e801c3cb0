"""Scoring one output: read the ground truth strictly, then apply the task's rules (``explain``, ``compute``).

Ground truth is the user's data, so it is checked, and a malformed value raises ``RepicError`` naming the
row: the official code scores such rows 0 (or, for an empty name, 1) for the whole run without a word.
Accepted forms are the official file's: oct ``"yes"``/``"no"`` in any case with stray punctuation; vlt 4
numbers, or a JSON string of them; ict one name; ict_multi a list of names, a JSON string of one, or a
single name. Names are stripped of surrounding whitespace, which would otherwise make them unmatchable.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from numbers import Real
from typing import Any

from ..errors import RepicError
from ..tasks import normalize_task
from .options import DEFAULT_OPTIONS, RewardOptions
from .output import Box, completion_text, first_yes_no, official_box_iou, parse_box, repetition_rate


def _fail(where: str, message: str) -> RepicError:
    prefix = f"{where}: " if where else ""
    return RepicError(f"{prefix}{message}; fix the solution in the training data")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _truth_yes_no(solution: Any, where: str) -> str:
    label = solution.strip().strip(".!,;:'\" ").lower() if isinstance(solution, str) else None
    if label not in ("yes", "no"):
        raise _fail(where, f"oct solution must be 'yes' or 'no', got {_short(solution)}")
    return label


def _truth_box(solution: Any, where: str) -> Box:
    value = solution
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass  # reported just below as not being 4 numbers, showing the string as given
    is_four_numbers = (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 4
        and all(map(_is_number, value))
    )
    if not is_four_numbers:
        raise _fail(where, f"vlt solution must be 4 numbers [x1, y1, x2, y2], got {_short(solution)}")
    x1, y1, x2, y2 = (float(v) for v in value)
    if x2 <= x1 or y2 <= y1:
        raise _fail(
            where, f"vlt solution box {_short(solution)} is inverted or empty (needs x1 < x2 and y1 < y2)"
        )
    return (x1, y1, x2, y2)


def _truth_names(solution: Any, task: str, where: str) -> list[str]:
    if task == "ict":
        if not isinstance(solution, str):
            raise _fail(
                where,
                f"ict solution must be one name such as '<bo>', got {_short(solution)} (several: use ict_multi)",
            )
        names: list[Any] = [solution]
    elif isinstance(solution, str):
        names = [solution]
        if solution.lstrip().startswith("["):  # a list stored as a JSON string, as tabular columns do
            try:
                decoded = json.loads(solution)
            except json.JSONDecodeError:
                decoded = None
            names = decoded if isinstance(decoded, list) else names
    elif isinstance(solution, Sequence):
        names = list(solution)
    else:
        raise _fail(
            where,
            f"ict_multi solution must be a list of names such as ['<bo>', '<kim>'], got {_short(solution)}",
        )
    if not all(isinstance(name, str) and name.strip() for name in names):
        raise _fail(where, f"{task} solution names must be non-empty strings, got {_short(solution)}")
    return [name.strip() for name in names]


def _closing_form(name: str) -> str | None:
    """``<bo>`` -> ``</bo>``; bare names have no closing form, as in the official code."""
    return "</" + name[1:] if name.startswith("<") else None


def _contains_name(text: str, name: str, word_boundary: bool) -> bool:
    if not word_boundary:
        return name in text
    # Guard only the edges that are word characters: brackets already delimit "<bo>", "bo" needs guarding.
    before = r"(?<!\w)" if re.match(r"\w", name) else ""
    after = r"(?!\w)" if re.search(r"\w\Z", name) else ""
    return re.search(before + re.escape(name) + after, text) is not None


def _explain_oct(text: str, truth: str, options: RewardOptions) -> dict[str, float]:
    answer = first_yes_no(text, word_boundary=options.word_boundary)
    return {"overall": float(answer == truth), "answered": float(answer is not None)}


def _explain_vlt(text: str, truth: Box, options: RewardOptions) -> dict[str, float]:
    box = parse_box(text, lenient=options.lenient_boxes)
    iou = official_box_iou(box, truth) if box is not None else 0.0
    overall = iou if options.continuous_iou else float(iou >= options.iou_threshold)
    return {"overall": overall, "parsed": float(box is not None), "iou": iou}


def _explain_caption(
    text: str, names: list[str], options: RewardOptions, absent: Sequence[str] = ()
) -> dict[str, float]:
    length_ok = len(text) >= options.min_caption_chars and (
        options.max_caption_chars is None or len(text) <= options.max_caption_chars
    )
    found = [_contains_name(text, name, options.word_boundary) for name in names]
    closed = [(form := _closing_form(name)) is not None and form in text for name in names]
    credited = sum(f and not c for f, c in zip(found, closed, strict=True))
    share = 1 / len(names) if names else 0.0  # an empty name list earns nothing
    parts = {
        "overall": credited * share if length_ok else 0.0,
        "length_ok": float(length_ok),
        "name_hits": sum(found) * share,
        "closing_tag": sum(closed) * share,
    }
    if (options.absent_name_penalty or options.absent_name_cost) and absent:
        # The paper's caption rewards only count present names, so naming every shown concept costs
        # nothing; these charge for each shown concept named that the image does not hold.
        hits = sum(_contains_name(text, name, options.word_boundary) for name in absent)
        parts["absent_named"] = hits / len(absent)
        if options.absent_name_penalty:  # takes back a share, floored at 0
            taken = options.absent_name_penalty * parts["absent_named"]
            parts["overall"] = max(0.0, parts["overall"] - taken)
        elif names:  # Omni-Persona: +1 per true name, -cost per absent one, in true-name units, not floored
            earned = credited if length_ok else 0
            parts["overall"] = (earned - options.absent_name_cost * hits) / len(names)
    if options.degeneration_gate:
        parts["repetition"] = repetition_rate(text)
        if parts["repetition"] > options.degeneration_threshold:
            parts["overall"] = min(parts["overall"], 0.0)  # no credit; a cost for absent names stays
    return parts


def explain_row(
    task: str, completion: Any, solution: Any, options: RewardOptions, where: str, shown: Any = None
) -> dict[str, float]:
    """``explain`` for a task already normalized; ``where`` names the row in ground-truth errors.

    ``shown`` (caption tasks) lists every concept the prompt showed; those not in the solution are the
    absent ones ``absent_name_penalty`` and ``absent_name_cost`` look for. ``None`` or an empty list:
    none known.
    """
    text = completion_text(completion)
    if task == "oct":
        return _explain_oct(text, _truth_yes_no(solution, where), options)
    if task == "vlt":
        return _explain_vlt(text, _truth_box(solution, where), options)
    names = _truth_names(solution, task, where)
    known = _truth_names(shown, "ict_multi", where) if shown not in (None, "") else []  # "[]" reads as []
    return _explain_caption(text, names, options, [name for name in known if name not in names])


def explain(
    task: str, completion: Any, solution: Any, options: RewardOptions | None = None, shown: Any = None
) -> dict[str, float]:
    """The reward of one output with its parts: ``overall`` plus what each rule saw.

    Parts: oct ``answered``; vlt ``parsed`` and ``iou``; ict and ict_multi ``length_ok``, ``name_hits``
    (share of names found), ``closing_tag`` (share of names whose closing form appears), with the
    degeneration gate on ``repetition``, and with ``absent_name_penalty`` or ``absent_name_cost`` and
    ``shown`` concepts ``absent_named`` (share of the shown-but-absent names the output names).

    With ``absent_name_cost`` a caption's ``overall`` can be negative. The degeneration gate makes a
    positive ``overall`` 0 and leaves a negative one as it is: it removes credit, never a cost, so
    repeating itself cannot excuse a caption from naming an absent concept.

    >>> explain("yes_no_name", "<bo> and </bo>" + "." * 90, "<bo>")
    {'overall': 0.0, 'length_ok': 1.0, 'name_hits': 1.0, 'closing_tag': 1.0}
    >>> cost = RewardOptions(min_caption_chars=5, absent_name_cost=0.5)  # <max> shown, not in the image
    >>> explain("ict", "<bo> and <max>", "<bo>", cost, shown=["<bo>", "<max>"])  # (1 - 0.5 x 1) / 1
    {'overall': 0.5, 'length_ok': 1.0, 'name_hits': 1.0, 'closing_tag': 0.0, 'absent_named': 1.0}
    """
    return explain_row(normalize_task(task), completion, solution, options or DEFAULT_OPTIONS, "", shown)


def compute(
    task: str, completion: Any, solution: Any, options: RewardOptions | None = None, shown: Any = None
) -> float:
    """The reward of one output for a task given in either spelling.

    >>> compute("oct", "No, it is not.", "no")
    1.0
    >>> compute("iou", "[0, 0, 10, 10]", [0, 0, 20, 10])  # IoU 100 / 200 = 0.5 meets the threshold
    1.0
    >>> compute("ict_multi", "<bo> and <kim> play. " * 5, ["<bo>", "<kim>", "<ann>"])
    0.6666666666666666
    >>> no_absent_names = RewardOptions(absent_name_penalty=1.0)  # <max> was shown but is not in the image
    >>> compute("ict_multi", "<bo> and <max> play. " * 5, ["<bo>", "<kim>"], no_absent_names,
    ...         shown=["<bo>", "<kim>", "<max>"])
    0.0
    >>> omni = RewardOptions(absent_name_cost=0.5)  # Omni-Persona: +1 a true name, -0.5 an absent one
    >>> compute("ict_multi", "<max> plays in the park. " * 5, ["<bo>", "<kim>"], omni,
    ...         shown=["<bo>", "<kim>", "<max>"])  # (0 - 0.5 x 1) / 2 true names
    -0.25
    """
    return explain(task, completion, solution, options, shown)["overall"]
