"""``repic demo``: the whole RePIC loop on a laptop CPU, from a concept world to a report.

``settings`` holds the demo's sizes (full and quick), ``pipeline`` runs the stages (world, data, the
warm-up start model, RePIC GRPO, the SFT baseline, evaluation of every model, the report) and reuses
finished ones, ``evaluate`` measures one model on the held-out evaluation files. ``repic demo`` is the
command-line front.
"""

from __future__ import annotations

from .evaluate import CAPTION_EVALUATIONS, EvalSettings, evaluate_model, gallery_rows, read_model_result
from .pipeline import MODELS, ClaimCheck, DemoInterrupted, DemoOutcome, claim_checks, run_demo
from .settings import DemoSettings, demo_settings

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
