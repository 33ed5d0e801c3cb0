"""``RewardOptions``: the one place the reward rules' knobs and defaults live.

The defaults are the paper's rules; every option beyond the paper is off (``repic.rewards`` lists them;
docs/notes/reward-semantics.md says exactly what each one does). Options are checked when built, so a
bad YAML value fails before training starts, with a message that names the field and the value the paper
uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from numbers import Real

from ..errors import RepicError

# A caption says each thing once, so its share of repeated word 4-grams is near 0; one verbatim repeat
# of a passage stays just under 1/2, a third copy goes above it.
DEGENERATION_THRESHOLD = 0.5


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class RewardOptions:
    """How the rewards judge outputs; the defaults are the paper's rules.

    >>> RewardOptions(min_caption_chars=40).min_caption_chars
    40
    >>> RewardOptions(iou_threshold=0)
    Traceback (most recent call last):
    ...
    repic.errors.RepicError: RewardOptions.iou_threshold must be in (0, 1], got 0; the paper uses 0.5
    """

    min_caption_chars: int = 100
    max_caption_chars: int | None = None
    iou_threshold: float = 0.5
    continuous_iou: bool = False
    lenient_boxes: bool = False
    word_boundary: bool = False  # yes/no and names
    degeneration_gate: bool = False
    degeneration_threshold: float = DEGENERATION_THRESHOLD
    absent_name_penalty: float = 0.0  # x the share of shown-but-absent names a caption names, taken off
    absent_name_cost: float = 0.0  # per shown-but-absent name named, in true-name units, not floored

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "bool" and not isinstance(value, bool):
                raise RepicError(f"RewardOptions.{f.name} must be true or false, got {value!r}")
        if not _is_int(self.min_caption_chars) or self.min_caption_chars < 0:
            raise RepicError(
                f"RewardOptions.min_caption_chars must be a whole number >= 0, got {self.min_caption_chars!r}; "
                "the paper uses 100"
            )
        if self.max_caption_chars is not None and (
            not _is_int(self.max_caption_chars) or self.max_caption_chars < max(1, self.min_caption_chars)
        ):
            raise RepicError(
                "RewardOptions.max_caption_chars must be empty or a whole number >= min_caption_chars "
                f"({self.min_caption_chars}), got {self.max_caption_chars!r}"
            )
        if not _is_real(self.iou_threshold) or not 0 < self.iou_threshold <= 1:
            raise RepicError(
                f"RewardOptions.iou_threshold must be in (0, 1], got {self.iou_threshold!r}; the paper uses 0.5"
            )
        if not _is_real(self.degeneration_threshold) or not 0 < self.degeneration_threshold < 1:
            raise RepicError(
                f"RewardOptions.degeneration_threshold must be in (0, 1), got {self.degeneration_threshold!r}; "
                f"the default {DEGENERATION_THRESHOLD} flags text whose word 4-grams are mostly repeats"
            )
        if not _is_real(self.absent_name_penalty) or not 0 <= self.absent_name_penalty <= 1:
            raise RepicError(
                f"RewardOptions.absent_name_penalty must be in [0, 1], got {self.absent_name_penalty!r}; "
                "0 (the paper) ignores names of absent concepts, 1 takes a name's whole share back"
            )
        if not _is_real(self.absent_name_cost) or not 0 <= self.absent_name_cost <= 4:
            raise RepicError(
                f"RewardOptions.absent_name_cost must be a number in [0, 4], got {self.absent_name_cost!r}; "
                "it is what naming one shown-but-absent concept costs against one true name's credit of 1: "
                "0 (the paper) ignores such names, Omni-Persona charges 0.5"
            )
        if self.absent_name_penalty and self.absent_name_cost:
            raise RepicError(
                f"RewardOptions.absent_name_penalty ({self.absent_name_penalty}) and absent_name_cost "
                f"({self.absent_name_cost}) both charge for naming absent concepts; set one of them and "
                "leave the other at 0"
            )


DEFAULT_OPTIONS = RewardOptions()
