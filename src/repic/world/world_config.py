"""``WorldConfig``: every size, count and probability of the synthetic world, checked when it is made.

One frozen dataclass is the single place for the world's defaults (YAML recipes and CLI options override
it); a bad value raises ``RepicError`` saying which field, why, and what would work, before anything is
drawn. ``to_dict`` / ``from_dict`` carry it through ``collection.json`` unchanged.

The defaults make a world of 64 concepts (48 for training, 16 held out), 504 scenes and 128 reference
images: about 13 MB (the pixel noise does not compress) written in about 4 seconds on one CPU core.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import RepicError

_PATCH = 28  # Qwen2.5-VL: 14 px patches merged 2 x 2; sides that are multiples of 28 are not resized
_SYLLABLE_COUNT = 85  # 17 consonants x 5 vowels, see repic.world.synthetic.SYLLABLES
_MAX_CONCEPTS = 800  # 100 per category keeps every category's looks pairwise distinct


@dataclass(frozen=True)
class WorldConfig:
    """Sizes, counts and probabilities of a synthetic world; see ``repic.world.synthetic``."""

    seed: int = 0
    n_train_concepts: int = 48
    n_heldout_concepts: int = 16
    scenes_per_train_concept: int = 6  # single-concept training scenes per training concept
    n_train_two: int = 64  # training scenes with two training concepts
    n_train_four: int = 32
    n_train_negative: int = 24  # training scenes with no concept, only distractors
    n_eval_single: int = 48  # held-out scenes with one held-out concept (round robin over them)
    n_eval_two: int = 24
    n_eval_four: int = 12
    n_eval_negative: int = 12
    query_size: int = 112  # pixels, square scenes
    reference_size: int = 56  # pixels, square reference images
    refs_per_concept: int = 2
    distractor_prob: float = 0.7  # chance that a concept scene has distractors at all
    max_distractors: int = 2
    lookalike_prob: float = 0.5  # chance that a distractor is a same-category lookalike of a shown concept
    occlusion_prob: float = 0.3  # chance that a distractor is moved over part of a concept
    max_rotation: float = 25.0  # degrees, either way
    brightness_jitter: float = 0.15  # brightness factor drawn from 1 +- this
    noise_std: float = 6.0  # largest standard deviation of pixel noise (0..255 scale)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise RepicError(f"WorldConfig.{f.name} must be a whole number, got {value!r}")
            if f.type == "float":
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    raise RepicError(f"WorldConfig.{f.name} must be a number, got {value!r}")
                object.__setattr__(self, f.name, float(value))  # 1 and 1.0 are the same setting
        for problem in self._problems():
            raise RepicError(f"WorldConfig: {problem}")

    def _problems(self):
        """Each broken rule, as a message that says what would work (the first one is raised)."""
        counts = [
            f.name for f in fields(self) if f.name.startswith("n_") or f.name == "scenes_per_train_concept"
        ]
        for name in counts:
            if getattr(self, name) < 0:
                yield f"{name} is {getattr(self, name)}; counts cannot be negative"
        if self.n_train_concepts < 1:
            yield "n_train_concepts must be at least 1: held-out names are built from training syllables"
        for scene_kind, needed in (("single", 1), ("two", 2), ("four", 4)):
            train_count = (
                self.scenes_per_train_concept
                if scene_kind == "single"
                else getattr(self, f"n_train_{scene_kind}")
            )
            if train_count and self.n_train_concepts < needed:
                yield (f"{scene_kind} training scenes need at least {needed} training concepts; raise n_train_concepts "
                       "(--train-concepts)")
            if getattr(self, f"n_eval_{scene_kind}") and self.n_heldout_concepts < needed:
                yield (f"n_eval_{scene_kind} > 0 needs at least {needed} held-out concepts; raise n_heldout_concepts "
                       "(--heldout-concepts)")
        if self.n_train_concepts + self.n_heldout_concepts > _MAX_CONCEPTS:  # checked first: no advice to raise
            yield (f"at most {_MAX_CONCEPTS} concepts in all (100 per category); lower the concept counts "
                   "(--train-concepts, --heldout-concepts)")
        known = min(_SYLLABLE_COUNT, 2 * self.n_train_concepts)
        if self.n_heldout_concepts > known * known - self.n_train_concepts:
            yield (
                f"{self.n_heldout_concepts} held-out names cannot all be new combinations of the {known} "
                "syllables the training names use; raise n_train_concepts (--train-concepts) or lower "
                "n_heldout_concepts (--heldout-concepts)"
            )
        for name in ("query_size", "reference_size"):
            size = getattr(self, name)
            if size % _PATCH or not 56 <= size <= 1008:
                yield f"{name} is {size}; use a multiple of {_PATCH} from 56 to 1008 (e.g. 112) so Qwen's processor keeps it"
        if not 1 <= self.refs_per_concept <= 10:
            yield f"refs_per_concept is {self.refs_per_concept}; use 1 to 10"
        for name in ("distractor_prob", "lookalike_prob", "occlusion_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                yield f"{name} is {getattr(self, name)}; a probability is between 0 and 1"
        if not 0 <= self.max_distractors <= 4:
            yield f"max_distractors is {self.max_distractors}; use 0 to 4 (more would hide the concepts)"
        if not 0.0 <= self.max_rotation <= 180.0:
            yield f"max_rotation is {self.max_rotation}; use 0 to 180 degrees"
        if not 0.0 <= self.brightness_jitter <= 0.5:
            yield f"brightness_jitter is {self.brightness_jitter}; use 0 to 0.5"
        if not 0.0 <= self.noise_std <= 50.0:
            yield f"noise_std is {self.noise_std}; use 0 to 50"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, where: str = "") -> WorldConfig:
        """A config from a mapping (``collection.json``, a YAML recipe); unknown keys are errors."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            place = f" in {where}" if where else ""
            raise RepicError(
                f"unknown world setting(s) {', '.join(unknown)}{place}; known: {', '.join(known)}"
            )
        return cls(**values)
