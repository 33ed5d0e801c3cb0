"""Evaluation: score a model's predictions the way the RePIC paper does, and more strictly.

``predictions`` reads prediction files (the official RePIC caption dumps and this project's JSONL rows)
into typed rows, counting malformed rows instead of crashing on them; ``metrics`` turns rows into scores:
concept-name precision / recall / F1 for captions in the official and the strict mode, recognition
accuracy for OCT answers and localization accuracy for VLT boxes, each built on per-row outcomes that are
public too. ``intervals`` turns the per-query outcomes of models trained once per seed into per-seed
summaries, bootstrap intervals and the verdict on a claim that one model beats another. ``engine`` is the
one way a model is measured: prompts answered and scored by the rewards, prediction files scored as
``repic eval`` scores them (``repic eval`` is the command-line front of that half).
"""

from __future__ import annotations

from .engine import (
    CaptionScores,
    EvalTask,
    Evaluation,
    PredictionScores,
    display_names,
    evaluate,
    score_predictions,
)
from .intervals import (
    DOES_NOT_HOLD,
    F1,
    HOLDS,
    RATE,
    WITHIN_NOISE,
    GapSummary,
    QueryOutcomes,
    SeedSummary,
    caption_outcomes,
    claim_verdict,
    measure,
    rate_outcomes,
    summarize_gap,
    summarize_seeds,
)
from .metrics import (
    OFFICIAL_VARIANTS,
    CaptionRow,
    LocalizationRow,
    LocalizationScores,
    NameScores,
    RecognitionRow,
    RecognitionScores,
    choose_official_variant,
    localization_accuracy,
    localization_hits,
    named_concepts,
    official_row_outcomes,
    official_scores,
    recognition_accuracy,
    recognition_hits,
    strict_row_outcomes,
    strict_scores,
)
from .predictions import ON_ERROR_CHOICES, LoadedPredictions, SkippedRow, load_predictions

__all__ = [
    "OFFICIAL_VARIANTS",
    "ON_ERROR_CHOICES",
    "CaptionRow",
    "CaptionScores",
    "EvalTask",
    "Evaluation",
    "PredictionScores",
    "display_names",
    "evaluate",
    "score_predictions",
    "LoadedPredictions",
    "LocalizationRow",
    "LocalizationScores",
    "NameScores",
    "RecognitionRow",
    "RecognitionScores",
    "SkippedRow",
    "choose_official_variant",
    "load_predictions",
    "localization_accuracy",
    "localization_hits",
    "official_row_outcomes",
    "official_scores",
    "recognition_accuracy",
    "recognition_hits",
    "named_concepts",
    "strict_row_outcomes",
    "strict_scores",
    "DOES_NOT_HOLD",
    "F1",
    "HOLDS",
    "RATE",
    "WITHIN_NOISE",
    "GapSummary",
    "QueryOutcomes",
    "SeedSummary",
    "caption_outcomes",
    "claim_verdict",
    "measure",
    "rate_outcomes",
    "summarize_gap",
    "summarize_seeds",
]
