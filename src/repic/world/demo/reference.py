"""Where a one-seed demo run falls in the shipped multi-seed run of the same settings.

A single training seed is one draw of GRPO's sampling, and another seed or another CPU draws another: the
shipped ``src/repic/assets/demo-seeds.json`` holds, per seeded model and main cell, the mean and range of
the multi-seed run the README reports (made from its ``results.json`` by this module's command), with the
settings it ran with. ``shipped_range_lines`` tells a one-seed run with the same settings where each of
its numbers falls in that range; a run with other settings gets no comparison (nothing to compare with)::

    python -m repic.world.demo.reference RESULTS_JSON    # rewrite the shipped file from a multi-seed run
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from ...atomic import atomic_write_json
from ...errors import RepicError
from ...report import CELLS, Results, percent, read_results
from ...report.seeds import MAIN_CELLS
from .settings import DemoSettings

REFERENCE_FORMAT = "repic-demo-seeds/1"
# What must match for two runs to be draws of the same process (the settings' other fields do not change it).
_SAME_RUN = ("mode", "world", "build", "grpo_steps", "grpo_overrides", "sft_overrides", "warmup_overrides",
             "seed", "top_k", "eval_batch_size")  # fmt: skip


def reference_path() -> Path:
    """The shipped reference file (inside the package)."""
    return Path(str(resources.files("repic") / "assets" / "demo-seeds.json"))


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps({name: values.get(name) for name in _SAME_RUN}, default=str))


def reference_of(results: Results, source: str) -> dict[str, Any]:
    """The reference document of a multi-seed run's results."""
    if len(results.seeds) < 2:
        raise RepicError(f"{source} holds one training seed; make the reference from a run with --seeds 0,1,2")
    demo = results.configs.get("demo")
    if demo is None:
        raise RepicError(f"{source} is not a repic demo's results (no demo settings); pass a demo's results.json")
    return {
        "format": REFERENCE_FORMAT,
        "source": source,
        "seeds": list(results.seeds),
        "settings": _plain(dict(demo)),
        "cells": {
            label: {
                cell: {"mean": s.mean, "minimum": s.minimum, "maximum": s.maximum}
                for cell, s in results.summaries[label].items() if cell in MAIN_CELLS
            }
            for label in results.per_seed
        },
    }


def shipped_range_lines(results: Results, settings: DemoSettings, path: Path | None = None) -> list[str]:
    """One line per seeded model and main cell: this run's number and the shipped run's range (empty when the
    shipped run's settings differ or there is none)."""
    try:
        reference = json.loads((path or reference_path()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if reference.get("format") != REFERENCE_FORMAT or reference.get("settings") != _plain(settings.describe()):
        return []
    seeds = ", ".join(map(str, reference["seeds"]))
    lines = [f"Where this seed falls in the shipped run over seeds {seeds} with the same settings (%):"]
    for label, cells in reference["cells"].items():
        summaries = results.summaries.get(label, {})
        for cell, shipped in cells.items():
            if cell in summaries:
                lines.append(
                    f"  {label:<9} {CELLS[cell]}: {percent(summaries[cell].mean)}; shipped "
                    f"{percent(shipped['minimum'])}-{percent(shipped['maximum'])} (mean {percent(shipped['mean'])})"
                )
    return lines


def main(argv: list[str] | None = None) -> int:
    """``python -m repic.world.demo.reference RESULTS_JSON``: rewrite the shipped reference from a run."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m repic.world.demo.reference RESULTS_JSON", file=sys.stderr)
        return 2
    try:
        document = reference_of(read_results(args[0]), args[0])
        atomic_write_json(reference_path(), document)
    except RepicError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{reference_path()}: written from {args[0]} (seeds {', '.join(map(str, document['seeds']))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
