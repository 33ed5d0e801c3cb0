"""Scoring predictions: concept names in captions, yes/no recognition, and box localization.

All functions here are pure: they take rows already read (``repic.evaluate.predictions`` reads files)
and return frozen score records. Rates are fractions in [0, 1]; the CLI prints them as percentages.

Caption names are scored in two modes, always reported side by side:

- **Official** (``official_scores``) reproduces the RePIC evaluation scripts (``eval_single_concept.py``,
  ``eval_multi_2_concept.py``, ``eval_multi_4_concept.py``) number for number: a true concept is *correct*
  when its bracketed or bare form equals a whitespace token of the caption, *MISS* when it is not but a
  pool concept outside the row's true concepts is, *none* otherwise; precision = correct / (correct +
  MISS), recall = correct / true concepts, F1 their harmonic mean. Each difference between the three
  scripts is kept, and ``choose_official_variant`` picks the script a file was meant for.
- **Strict** (``strict_scores``) is this project's reading of the same counting rule, fixing what the token
  match cannot see: whole names as case-insensitive phrases at word boundaries (multi-word names,
  ``<Anya>'s``), optional brackets, optional aliases, one case rule for every file, every concept of a row.

Both modes find a name that is also an ordinary word (``<park>``) in ordinary prose. The pool is the file's
concepts in both modes; aliases add names, not candidates.

Recognition (OCT rows) and localization (VLT rows) read answers with the reward module's parsers
(``first_yes_no``, ``parse_box``, ``official_box_iou``), so evaluation and training agree on what an answer
says.

In full: docs/notes/caption-name-scoring.md
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import RepicError
from ..records import Box, strip_tag
from ..rewards import first_yes_no, official_box_iou, parse_box

OFFICIAL_VARIANTS: tuple[str, ...] = ("single", "two", "four")

# Outcomes for one true concept of one row.
CORRECT, MISS = "correct", "miss"

_OFFICIAL_PUNCTUATION = ".,!?;:()[]{}\"'-"
_NAME_SEPARATORS = re.compile(r"[\s_\-]+")


@dataclass(frozen=True)
class CaptionRow:
    """A caption and the concepts truly in its image (tags as the file wrote them, e.g. ``"<bo>"``).

    Rows of this project's prediction files also say what the prompt showed (``shown``), what retrieval
    found (``retrieved``, rank order), and where the query and the shown references are (paths relative to
    the file, for galleries); official dumps leave them empty.
    """

    image: str
    concepts: tuple[str, ...]
    caption: str
    question: str = ""
    shown: tuple[str, ...] = ()
    retrieved: tuple[str, ...] = ()
    image_path: str = ""
    references: tuple[tuple[str, str], ...] = ()  # (tag, image path)


@dataclass(frozen=True)
class RecognitionRow:
    """An OCT answer: is the concept in the image? ``label`` is ``"yes"`` or ``"no"``."""

    image: str
    concepts: tuple[str, ...]
    prediction: str
    label: str


@dataclass(frozen=True)
class LocalizationRow:
    """A VLT answer: where is the concept? ``box`` is the true ``(x1, y1, x2, y2)`` in pixels."""

    image: str
    concepts: tuple[str, ...]
    prediction: str
    box: Box


@dataclass(frozen=True)
class NameScores:
    """Concept-name scores over a file: rates in [0, 1] and the counts they come from.

    ``total`` counts true concepts; ``correct + miss + none == total``.
    """

    precision: float
    recall: float
    f1: float
    correct: int
    miss: int
    none: int
    total: int


@dataclass(frozen=True)
class RecognitionScores:
    """OCT accuracy, and accuracy on the positive (``yes_recall``) and negative (``no_recall``) rows.

    A rate is ``None`` when no row has that label. Unparseable answers (neither yes nor no) count as wrong.
    """

    accuracy: float | None
    yes_recall: float | None
    no_recall: float | None
    correct: int
    total: int
    positives: int
    negatives: int
    unparseable: int


@dataclass(frozen=True)
class LocalizationScores:
    """VLT accuracy (IoU >= ``threshold``) and mean IoU; an answer without a box has IoU 0."""

    accuracy: float | None
    mean_iou: float | None
    hits: int
    total: int
    unparseable: int
    threshold: float


# ------------------------------------------------------------------------------------------ official


@dataclass(frozen=True)
class _OfficialRules:
    """What distinguishes the three official scripts."""

    lower: bool  # lower-case the caption and every name before matching
    first_only: bool  # score only the first true concept of each row (and pool only first concepts)
    exclude_by_name: bool  # "other concepts" drop pool names equal to a true name, not exact list members


_RULES = {
    "single": _OfficialRules(lower=True, first_only=True, exclude_by_name=True),
    "two": _OfficialRules(lower=False, first_only=False, exclude_by_name=False),
    "four": _OfficialRules(lower=True, first_only=False, exclude_by_name=False),
}


def choose_official_variant(rows: Sequence[CaptionRow]) -> str:
    """The official script for a file: by the most true concepts in one row (1, 2, 3 or more).

    >>> choose_official_variant([CaptionRow("a.jpg", ("<bo>", "<kim>"), "...")])
    'two'
    """
    most = max((len(row.concepts) for row in rows), default=1)
    return "single" if most <= 1 else "two" if most == 2 else "four"


def official_tokens(caption: str, *, lower: bool) -> set[str]:
    """The official scripts' caption tokens: whitespace split, ``</s>`` removed, edge punctuation stripped.

    >>> sorted(official_tokens('"<Bo>, meet (Kim)." </s>', lower=True))
    ['<bo>', 'kim', 'meet']
    """
    caption = caption.replace("</s>", "")
    if lower:
        caption = caption.lower()
    stripped = (word.strip(_OFFICIAL_PUNCTUATION) for word in caption.split())
    return {token for token in stripped if token}


def _official_outcomes(
    caption: str, truths: Sequence[str], pool: Sequence[str], rules: _OfficialRules
) -> list[str | None]:
    def norm(name: str) -> str:
        return name.lower() if rules.lower else name

    tokens = official_tokens(caption, lower=rules.lower)
    present = {strip_tag(norm(c)) for c in pool if norm(c) in tokens or strip_tag(norm(c)) in tokens}
    truth_names = [strip_tag(norm(t)) for t in truths]
    if rules.exclude_by_name:
        others = {strip_tag(norm(c)) for c in pool if strip_tag(norm(c)) not in truth_names}
    else:
        others = {strip_tag(norm(c)) for c in pool if c not in truths}
    wrong_name = bool(present & others)
    return [CORRECT if name in present else MISS if wrong_name else None for name in truth_names]


def official_row_outcomes(rows: Sequence[CaptionRow], variant: str | None = None) -> list[list[str | None]]:
    """Each row's outcome (``CORRECT``, ``MISS`` or ``None``) for each true concept the official script
    ``variant`` scores, as ``official_scores`` counts them (pool: the file's concepts; see the module docs).

    >>> rows = [CaptionRow("a.jpg", ("<bo>", "<kim>"), "<bo> waves."), CaptionRow("b.jpg", ("<kim>",), "<bo>.")]
    >>> official_row_outcomes(rows)  # row 2 names <bo>, a pool concept not in its image: MISS
    [['correct', None], ['miss']]
    """
    variant = choose_official_variant(rows) if variant is None else variant
    if variant not in _RULES:
        raise RepicError(
            f"unknown official variant {variant!r}; choose one of {', '.join(OFFICIAL_VARIANTS)}"
        )
    rules = _RULES[variant]
    truths_per_row = [row.concepts[:1] if rules.first_only else row.concepts for row in rows]
    pool = sorted({concept for truths in truths_per_row for concept in truths})
    return [
        _official_outcomes(row.caption, truths, pool, rules)
        for row, truths in zip(rows, truths_per_row, strict=True)
    ]


def official_scores(rows: Sequence[CaptionRow], variant: str | None = None) -> NameScores:
    """Name scores exactly as the official RePIC script ``variant`` prints them (see the module docs).

    ``variant`` is ``"single"``, ``"two"`` or ``"four"``; ``None`` picks it with ``choose_official_variant``.
    """
    return _name_scores([outcome for row in official_row_outcomes(rows, variant) for outcome in row])


# -------------------------------------------------------------------------------------------- strict


def _name_key(name: str) -> str:
    """A name as the strict mode compares it: ``<Black_Widow>`` -> ``blackwidow``."""
    return _NAME_SEPARATORS.sub("", strip_tag(name.strip())).lower()


def _name_pattern(name: str) -> str:
    words = [re.escape(word) for word in _NAME_SEPARATORS.split(strip_tag(name.strip())) if word]
    return r"[\s_\-]*".join(words)


class _StrictMatcher:
    """Finds which concepts of a pool a caption names, by whole names and aliases (see the module docs)."""

    def __init__(self, pool: Iterable[str], aliases: Mapping[str, Sequence[str]]):
        alias_names = {_name_key(tag): list(names) for tag, names in aliases.items()}
        self.concepts_of_name: dict[str, set[str]] = {}  # name key -> keys of the concepts it names
        patterns: set[str] = set()
        for tag in pool:
            concept = _name_key(tag)
            for name in [tag, *alias_names.get(concept, [])]:
                key = _name_key(name)
                if key:
                    self.concepts_of_name.setdefault(key, set()).add(concept)
                    patterns.add(_name_pattern(name))
        # Longest first, so at any position the longest name wins ("captain america" over "america");
        # ties sorted too, so the compiled pattern does not depend on set order.
        alternatives = sorted(patterns, key=lambda pattern: (-len(pattern), pattern))
        names = "|".join(alternatives)
        # A bracketed name always counts; a bare one not when a hyphen glues it to a word ("x-ray", "ray-like").
        self.regex = (
            re.compile(
                rf"(?<![\w/])<(?P<tagged>{names})>|(?<![\w/-])<?(?P<name>{names})>?(?![\w-])", re.IGNORECASE
            )
            if alternatives
            else None
        )

    def named(self, caption: str) -> set[str]:
        """Keys of the pool concepts ``caption`` names."""
        if self.regex is None:
            return set()
        found: set[str] = set()
        for match in self.regex.finditer(caption):
            found |= self.concepts_of_name.get(_name_key(match.group("tagged") or match.group("name")), set())
        return found


def named_concepts(
    caption: str, pool: Iterable[str], aliases: Mapping[str, Sequence[str]] | None = None
) -> list[str]:
    """The tags of ``pool`` that ``caption`` names, by the strict scorer's whole-name matching, in pool order.

    >>> named_concepts("<bo> sits next to Kim.", ["<bo>", "<kim>", "<rex>"])
    ['<bo>', '<kim>']
    """
    tags = list(pool)
    named = _StrictMatcher(tags, aliases or {}).named(caption)
    return [tag for tag in tags if _name_key(tag) in named]


def strict_row_outcomes(
    rows: Sequence[CaptionRow], aliases: Mapping[str, Sequence[str]] | None = None
) -> list[list[str | None]]:
    """Each row's outcome (``CORRECT``, ``MISS`` or ``None``) for each of its concepts, as ``strict_scores``
    counts them.

    >>> strict_row_outcomes([CaptionRow("a.jpg", ("<bo>", "<kim>"), "Kim and <rex>."),
    ...                      CaptionRow("b.jpg", ("<rex>",), "A dog.")])
    [['miss', 'correct'], [None]]
    """
    pool = sorted({concept for row in rows for concept in row.concepts})
    matcher = _StrictMatcher(pool, aliases or {})
    outcomes: list[list[str | None]] = []
    for row in rows:
        named = matcher.named(row.caption)
        truths = [_name_key(tag) for tag in row.concepts]
        wrong_name = bool(named - set(truths))
        outcomes.append([CORRECT if truth in named else MISS if wrong_name else None for truth in truths])
    return outcomes


def strict_scores(
    rows: Sequence[CaptionRow], aliases: Mapping[str, Sequence[str]] | None = None
) -> NameScores:
    """Name scores by whole-name matching with optional aliases per tag (see the module docs).

    >>> rows = [CaptionRow("a.jpg", ("<black widow>",), "Black Widow's jacket."),
    ...         CaptionRow("b.jpg", ("<thor>",), "<Black_Widow> waits.")]
    >>> strict_scores(rows)  # row 1 correct; row 2 names another pool concept: MISS
    NameScores(precision=0.5, recall=0.5, f1=0.5, correct=1, miss=1, none=0, total=2)
    """
    return _name_scores([outcome for row in strict_row_outcomes(rows, aliases) for outcome in row])


def _name_scores(outcomes: Sequence[str | None]) -> NameScores:
    correct = sum(outcome == CORRECT for outcome in outcomes)
    miss = sum(outcome == MISS for outcome in outcomes)
    total = len(outcomes)
    precision = correct / (correct + miss) if correct + miss else 0.0
    recall = correct / total if total else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return NameScores(precision, recall, f1, correct, miss, total - correct - miss, total)


# ------------------------------------------------------------------------ recognition, localization


def recognition_hits(rows: Sequence[RecognitionRow]) -> list[bool]:
    """Per OCT row: does the first yes/no of the answer (the reward's reading) equal the label?

    >>> recognition_hits([RecognitionRow("a.jpg", ("<bo>",), "Yes, it is.", "yes"),
    ...                   RecognitionRow("b.jpg", ("<bo>",), "Hard to tell.", "no")])
    [True, False]
    """
    return [first_yes_no(row.prediction) == row.label for row in rows]


def recognition_accuracy(rows: Sequence[RecognitionRow]) -> RecognitionScores:
    """OCT accuracy: the first yes/no of each answer (the reward's reading) against the label.

    >>> scores = recognition_accuracy([RecognitionRow("a.jpg", ("<bo>",), "Yes, it is.", "yes"),
    ...                                RecognitionRow("b.jpg", ("<bo>",), "Hard to tell.", "no")])
    >>> scores.accuracy, scores.yes_recall, scores.no_recall, scores.unparseable
    (0.5, 1.0, 0.0, 1)
    """
    right = recognition_hits(rows)
    positives = [ok for ok, row in zip(right, rows, strict=True) if row.label == "yes"]
    negatives = [ok for ok, row in zip(right, rows, strict=True) if row.label == "no"]
    return RecognitionScores(
        accuracy=_rate(right),
        yes_recall=_rate(positives),
        no_recall=_rate(negatives),
        correct=sum(right),
        total=len(rows),
        positives=len(positives),
        negatives=len(negatives),
        unparseable=sum(first_yes_no(row.prediction) is None for row in rows),
    )


def localization_hits(rows: Sequence[LocalizationRow], threshold: float = 0.5) -> list[bool]:
    """Per VLT row: does the first box of the answer (the reward's reading) have IoU >= ``threshold``?

    >>> localization_hits([  # IoU 50 / 150 = 1/3 (a miss), then 1 (a hit)
    ...     LocalizationRow("a.jpg", ("<bo>",), "[0, 0, 10, 10]", (5, 0, 15, 10)),
    ...     LocalizationRow("b.jpg", ("<bo>",), "[0, 0, 10, 10]", (0, 0, 10, 10))])
    [False, True]
    """
    return [iou >= threshold for iou in _ious(rows)]


def localization_accuracy(rows: Sequence[LocalizationRow], threshold: float = 0.5) -> LocalizationScores:
    """VLT accuracy: the first box of each answer (the reward's reading) hits when IoU >= ``threshold``.

    >>> scores = localization_accuracy([  # IoU 50 / 150 = 1/3 (a miss), then 1 (a hit)
    ...     LocalizationRow("a.jpg", ("<bo>",), "[0, 0, 10, 10]", (5, 0, 15, 10)),
    ...     LocalizationRow("b.jpg", ("<bo>",), "[0, 0, 10, 10]", (0, 0, 10, 10))])
    >>> scores.accuracy, round(scores.mean_iou, 4), scores.hits
    (0.5, 0.6667, 1)
    """
    ious = _ious(rows)
    hits = localization_hits(rows, threshold)
    return LocalizationScores(
        accuracy=_rate(hits),
        mean_iou=sum(ious) / len(ious) if ious else None,
        hits=sum(hits),
        total=len(rows),
        unparseable=sum(parse_box(row.prediction) is None for row in rows),
        threshold=threshold,
    )


def _ious(rows: Sequence[LocalizationRow]) -> list[float]:
    """Each answer's first box against the true one; 0 for an answer without a box."""
    boxes = [parse_box(row.prediction) for row in rows]
    return [
        0.0 if box is None else official_box_iou(box, row.box) for box, row in zip(boxes, rows, strict=True)
    ]


def _rate(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None
