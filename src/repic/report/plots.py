"""The report's plots as PNG bytes: RePIC reward per task over training steps, and P/R/F1 bars per model.

Choices:

- Figures are built with ``matplotlib.figure.Figure`` and rendered by the Agg canvas, never through
  ``pyplot``: no global figure state, no GUI backend picked from the environment, nothing to close, so
  the plots render the same on a headless server, in a test and next to a notebook.
- Functions return PNG bytes and write nothing; the report writer decides where they go, atomically.
- Sizes and fonts are chosen to be read at 100% zoom in a markdown viewer (about 1100-1450 pixels wide):
  every figure has a title, axis labels and a legend; bars carry their value; the reward legend carries
  each curve's last value, since that is the number a reader looks for.
- The training log is a JSONL file of metric rows (``{"step": 3, "reward": 0.4, "rewards/oct": 0.5,
  ...}``); which key holds which curve is a ``RewardKeys`` setting, because trainers name them differently
  (TRL logs ``rewards/<name>/mean``). Rows without a step, and values that are missing, not numbers or not
  finite, are skipped per curve: a log from an interrupted run still plots what it has.
- A model keeps its colour in every figure (its position in the results), so the bars and the gallery
  columns read the same way across the report.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from ..atomic import log_lines
from ..errors import RepicError
from .results import CELLS, EVALUATIONS, SCORER_MODES, Results
from .seeds import MAIN_CELLS

Series = list[tuple[float, float]]  # (step, value) points of one curve, in log order

# The curve label of each RePIC task key; the total reward is drawn in black and dashed.
TASK_LABELS: dict[str, str] = {
    "oct": "OCT (recognition)",
    "vlt": "VLT (localization)",
    "ict": "ICT (1 concept)",
    "ict_multi": "ICT multi (2-4 concepts)",
}
TOTAL_CURVE = "total"
_DPI = 110
_MARKER_LIMIT = 60  # beyond this many points markers hide the line


def _default_task_keys() -> dict[str, str]:
    return {task: f"rewards/{task}" for task in TASK_LABELS}


@dataclass(frozen=True)
class RewardKeys:
    """Which metric-row keys hold the step, the total reward (``None``: not drawn) and each task's reward."""

    step: str = "step"
    total: str | None = "reward"
    tasks: Mapping[str, str] = field(default_factory=_default_task_keys)


def model_color(index: int) -> str:
    """The colour of the model at ``index`` of the results, shared by every figure."""
    palette = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
    return palette[index % len(palette)]


# ------------------------------------------------------------------------------------- rewards


def read_reward_series(metrics_path: str | os.PathLike, keys: RewardKeys | None = None) -> dict[str, Series]:
    """The reward curves of a metrics JSONL file: ``{"total": [...], "oct": [...], ...}``.

    Curves without a single point are left out; a file with no reward at all raises ``RepicError``
    naming the keys it does have, so a log written under other names is easy to map.
    """
    keys = keys or RewardKeys()
    path = Path(metrics_path)
    try:
        lines = log_lines(path.read_text(encoding="utf-8"))  # a line torn by a crashed run is left out
    except FileNotFoundError:
        raise RepicError(
            f"metrics file {path} does not exist; pass the training run's metrics JSONL"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RepicError(f"cannot read metrics file {path}: {exc}; check the file") from None
    curves = {TOTAL_CURVE: keys.total} if keys.total is not None else {}
    curves.update(keys.tasks)
    series: dict[str, Series] = {name: [] for name in curves}
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RepicError(
                f"{path}, line {number} is not JSON ({exc.msg}); fix or delete that line of the metrics log"
            ) from None
        if not isinstance(row, dict):
            raise RepicError(f"{path}, line {number} is not a JSON object of metrics; fix or delete it")
        seen.update(row)
        step = _finite(row.get(keys.step))
        if step is None:
            continue
        for name, key in curves.items():
            value = _finite(row.get(key))
            if value is not None:
                series[name].append((step, value))
    found = {name: points for name, points in series.items() if points}
    if not found:
        raise RepicError(
            f"{path} has no reward values under step key {keys.step!r} and reward keys "
            f"{', '.join(repr(k) for k in curves.values())}; its rows have keys "
            f"{', '.join(sorted(seen)) or '(none)'}; pass RewardKeys naming the keys your log uses"
        )
    return found


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def reward_curves_png(series: Mapping[str, Series], title: str = "RePIC training reward per task") -> bytes:
    """A line plot of each reward curve over training steps (rewards in [0, 1])."""
    figure = Figure(figsize=(10, 5.2), dpi=_DPI, layout="constrained")
    axes = figure.add_subplot()
    task_colors = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")
    low, high = 0.0, 1.0
    for index, (name, points) in enumerate(series.items()):
        steps = [step for step, _ in points]
        values = [value for _, value in points]
        low, high = min(low, *values), max(high, *values)
        label = (
            f"{TASK_LABELS.get(name, 'all tasks' if name == TOTAL_CURVE else name)}: last {values[-1]:.2f}"
        )
        style = (
            {"color": "black", "linestyle": "--", "linewidth": 2.2}
            if name == TOTAL_CURVE
            else {"color": task_colors[index % len(task_colors)], "linewidth": 1.8}
        )
        marker = "o" if len(points) <= _MARKER_LIMIT else None
        axes.plot(steps, values, marker=marker, markersize=4, label=label, **style)
    margin = 0.05 * (high - low)
    axes.set_ylim(low - margin, high + margin)
    axes.set_title(title, fontsize=14)
    axes.set_xlabel("training step", fontsize=12)
    axes.set_ylabel("mean reward per completion", fontsize=12)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    axes.grid(alpha=0.3)
    axes.legend(title="reward (last value)", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=10)
    return _png(figure)


# ------------------------------------------------------------------------------------ P/R/F1 bars


def name_scores_png(results: Results, mode: str) -> bytes:
    """Grouped bars of concept-name precision, recall and F1 (%): one panel per evaluation, a bar per model."""
    if mode not in SCORER_MODES:
        raise RepicError(f"unknown scorer mode {mode!r}; choose one of {', '.join(SCORER_MODES)}")
    evaluations = results.evaluations
    if not evaluations:
        raise RepicError("the results have no caption evaluation to plot; add CaptionResults to the models")
    # One spare panel cell (when the grid has one) holds the legend; otherwise it goes below the panels.
    figure, grid = _panels(len(evaluations), panel_height=3.9, extra_height=0.9)
    metrics = (("precision", "P"), ("recall", "R"), ("f1", "F1"))
    width = 0.8 / len(results.models)
    for cell, evaluation in zip(grid.flat, evaluations, strict=False):
        for index, model in enumerate(results.models):
            offsets = [m + (index - (len(results.models) - 1) / 2) * width for m in range(len(metrics))]
            result = model.captions.get(evaluation)
            if result is None:  # say so where the bars would be, so a gap does not read as zero
                for offset in offsets:
                    cell.text(offset, 1, "n/a", ha="center", va="bottom", fontsize=8)
                continue
            scores = result.scores(mode)
            heights = [getattr(scores, name) * 100 for name, _ in metrics]
            bars = cell.bar(offsets, heights, width * 0.92, color=model_color(index))
            cell.bar_label(bars, fmt="%.0f", fontsize=8, padding=2)
        cell.set_title(EVALUATIONS[evaluation], fontsize=12)
        cell.set_xticks(range(len(metrics)), [short for _, short in metrics], fontsize=11)
        cell.set_ylim(0, 112)  # headroom for the value labels over a 100% bar
        cell.set_ylabel("score %", fontsize=11)
        cell.grid(axis="y", alpha=0.3)
    spare = list(grid.flat[len(evaluations) :])
    for cell in spare:
        cell.set_axis_off()
    # Legend entries from the model list, not a panel: a model may lack the first evaluation.
    handles = [Patch(color=model_color(i)) for i in range(len(results.models))]
    labels = results.labels
    if spare:
        spare[0].legend(handles, labels, title="model", loc="center", fontsize=11, title_fontsize=12)
    else:
        figure.legend(
            handles, labels, title="model", loc="outside lower center", ncols=len(labels), fontsize=11
        )
    figure.suptitle(
        f"Concept names in captions: precision / recall / F1, {SCORER_MODES[mode]} scorer", fontsize=14
    )
    return _png(figure)


# ------------------------------------------------------------------------------- values per seed


def seed_values_png(results: Results) -> bytes:
    """One panel per main cell (``repic.report.seeds.MAIN_CELLS``): a dot per training seed of each model, a
    bar at the mean and the 95 % interval as a line, so the spread a claim must clear is seen."""
    cells = [cell for cell in MAIN_CELLS if any(cell in s for s in results.summaries.values())]
    if not cells:
        raise RepicError("the results have no summaries over seeds to plot; run with training seeds")
    figure, grid = _panels(len(cells), panel_height=3.4, extra_height=0.6)
    for panel, cell in zip(grid.flat, cells, strict=False):
        for index, label in enumerate(results.labels):
            summary = results.summaries.get(label, {}).get(cell)
            if summary is None:
                continue
            color = model_color(index)
            panel.bar(index, summary.mean * 100, 0.6, color=color, alpha=0.35)
            panel.plot([index, index], [summary.low * 100, summary.high * 100], color="black", linewidth=1.5)
            spread = [index + (k - (len(summary.values) - 1) / 2) * 0.08 for k in range(len(summary.values))]
            panel.scatter(spread, [v * 100 for v in summary.values], color=color, edgecolor="black", zorder=3, s=22)
        panel.set_title(CELLS[cell], fontsize=10)
        panel.set_xticks(range(len(results.labels)), results.labels, fontsize=9)
        panel.set_ylim(0, 105)
        panel.set_ylabel("%", fontsize=10)
        panel.grid(axis="y", alpha=0.3)
    for panel in grid.flat[len(cells):]:
        panel.set_axis_off()
    seeds = ", ".join(map(str, results.seeds))
    figure.suptitle(f"Per training seed ({seeds}): dots; bar: mean; line: 95 % interval", fontsize=13)
    return _png(figure)


def _panels(count: int, *, panel_height: float, extra_height: float) -> tuple[Figure, Any]:
    """A figure with ``count`` panels, three to a row (the grid of axes, spare cells included)."""
    columns = min(3, count)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(4.6 * columns, panel_height * rows + extra_height), dpi=_DPI, layout="constrained")
    return figure, figure.subplots(rows, columns, squeeze=False)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()
