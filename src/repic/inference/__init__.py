"""Inference: personalized captions and OCT / VLT answers from a policy, batched.

``queries`` reads what to ask (image files and folders, evaluation files), ``generate`` runs batched
multi-image generation, ``caption`` builds the RAP-style prompts (skip-retrieval or retrieval), answers
them and writes the files ``repic eval`` scores. ``repic caption`` is the command-line front.

Only the light modules are re-exported here: retrieval (FAISS, embedders) is imported by ``caption``
when a run needs it, so batched generation also works where those are not installed.
"""

from __future__ import annotations

from .caption import (
    MODES,
    OFFICIAL_MAX_PIXELS,
    AnsweredQuery,
    Captioner,
    CaptionRun,
    PreparedQuery,
    SkippedQuery,
    UnusableQuery,
    caption_mode,
    load_for_captioning,
    run_summary,
    write_outputs,
)
from .generate import CACHES, BatchDone, Generated, GenerationSettings, PromptInput, generate_batched
from .queries import Query, collect_images, image_queries, read_eval_file

__all__ = [
    "CACHES",
    "MODES",
    "OFFICIAL_MAX_PIXELS",
    "AnsweredQuery",
    "BatchDone",
    "CaptionRun",
    "Captioner",
    "Generated",
    "GenerationSettings",
    "PreparedQuery",
    "PromptInput",
    "Query",
    "SkippedQuery",
    "UnusableQuery",
    "caption_mode",
    "collect_images",
    "generate_batched",
    "image_queries",
    "load_for_captioning",
    "read_eval_file",
    "run_summary",
    "write_outputs",
]
