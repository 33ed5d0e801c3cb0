"""``repic demo``: the whole RePIC loop on a laptop CPU, from a concept world to a report.

``settings`` holds the demo's sizes (full and quick) and training seeds, ``pipeline`` runs the stages
(world, data, the warm-up start model, RePIC GRPO and the SFT baseline per seed, evaluation of every
model, the report) and reuses finished ones, ``evaluate`` measures one model on the held-out evaluation
files, ``claims`` judges the paper's claim over the seeds. ``repic demo`` is the command-line front.
"""

from __future__ import annotations

from ...evaluate.models import (
    CAPTION_EVALUATIONS,
    EvalSettings,
    evaluate_model,
    gallery_rows,
    read_model_result,
)
from ...report import ClaimCheck
from .claims import claim_checks
from .pipeline import MODELS, DemoOutcome, run_demo
from .settings import DemoSettings, demo_settings
from .stages import DemoInterrupted

__all__ = [
    "CAPTION_EVALUATIONS",
    "MODELS",
    "ClaimCheck",
    "DemoInterrupted",
    "DemoOutcome",
    "DemoSettings",
    "EvalSettings",
    "claim_checks",
    "demo_settings",
    "evaluate_model",
    "gallery_rows",
    "read_model_result",
    "run_demo",
]
