"""Reports of a comparison run: typed results, plots, ``report.md``, an HTML caption gallery.

``results`` is the record (``Results``: models x caption evaluations x scorer modes, OCT and VLT
accuracy, timings, commands, configs, numbers over training seeds) and its ``results.json`` format;
``plots``, ``markdown`` and ``gallery`` render it, ``seeds`` formats numbers over training seeds,
``summary`` gives the short ``summary.md`` a README quotes (``readme`` keeps a README's section equal to it); ``writer.write_report`` writes the whole folder atomically and
``writer.results_table`` gives the plain-text table a run prints at its end. The package takes plain
data (score records, a metrics JSONL, image paths and captions), so any training or captioning code can
feed it.
"""

from __future__ import annotations

from .gallery import GalleryReference, GalleryRow, NameHighlighter, write_gallery
from .markdown import render_markdown
from .plots import RewardKeys, name_scores_png, read_reward_series, reward_curves_png
from .results import (
    CELLS,
    EVALUATIONS,
    RESULTS_FORMAT,
    RESULTS_VERSION,
    SCORER_MODES,
    CaptionResult,
    ClaimCheck,
    Count,
    ModelResult,
    Results,
    describe_machine,
    percent,
    read_results,
)
from .seeds import seed_rows, seeds_cell
from .writer import WrittenReport, results_table, seeds_table, write_report

__all__ = [
    "CELLS",
    "EVALUATIONS",
    "RESULTS_FORMAT",
    "RESULTS_VERSION",
    "SCORER_MODES",
    "CaptionResult",
    "ClaimCheck",
    "Count",
    "GalleryReference",
    "GalleryRow",
    "ModelResult",
    "NameHighlighter",
    "Results",
    "RewardKeys",
    "WrittenReport",
    "describe_machine",
    "name_scores_png",
    "percent",
    "read_results",
    "read_reward_series",
    "render_markdown",
    "results_table",
    "seed_rows",
    "seeds_cell",
    "seeds_table",
    "reward_curves_png",
    "write_gallery",
    "write_report",
]
