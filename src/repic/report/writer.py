"""Writing a report folder, and the plain-text results table printed at the end of a run.

``write_report`` writes, into one folder:

- ``results.json``: every number (``Results.to_json``), the file other tools read back;
- ``report.md``: the tables, plots, gallery link, commands, configs and timings (``markdown``);
- ``summary.md``: one table and a few lines, what a README quotes of the run (``summary``);
- ``reward_curves.png`` (when a training metrics log is given), ``name_scores_official.png`` /
  ``name_scores_strict.png`` (when there are caption results) and ``seeds.png`` (each cell's value per
  training seed, when the results have summaries) (``plots``);
- ``gallery.html`` and its thumbnails in ``gallery/`` (when gallery rows are given) (``gallery``).

Choices:

- The folder is built in a hidden staging sibling and renamed into place (``repic.atomic.atomic_folder``):
  a reader never sees a report whose ``report.md`` and ``results.json`` come from different runs, and a
  failure (an unreadable image, a bad metrics line) leaves the previous report as it was. The metrics log
  is read before anything is written, so its errors surface first.
- Because the folder is replaced as a whole, ``write_report`` refuses an existing folder that holds
  anything but a previous report (no ``results.json``): pointing it at a project folder by mistake must
  not delete that folder.
- ``results_table`` puts both scorer modes in one cell (``official / strict``) so the table a run prints
  fits a terminal; the markdown has one full table per mode with the counts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_folder, atomic_write_bytes, atomic_write_json, atomic_write_text
from ..errors import RepicError
from .gallery import GalleryRow, write_gallery
from .markdown import recognition_rows, render_markdown
from .plots import RewardKeys, name_scores_png, read_reward_series, reward_curves_png, seed_values_png
from .results import EVALUATIONS, SCORER_MODES, Results, percent
from .seeds import MAIN_CELLS, seed_rows
from .summary import summary_markdown

REPORT_FILE = "report.md"
SUMMARY_FILE = "summary.md"
RESULTS_FILE = "results.json"
REWARD_PLOT = "reward_curves.png"
SEEDS_PLOT = "seeds.png"
GALLERY_FILE = "gallery.html"


def name_scores_plot(mode: str) -> str:
    """The file name of the P/R/F1 bar plot of scorer ``mode``."""
    return f"name_scores_{mode}.png"


@dataclass(frozen=True)
class WrittenReport:
    """Where a report's files are, once ``write_report`` has moved the folder into place."""

    folder: Path
    markdown: Path
    summary: Path
    results: Path
    plots: tuple[Path, ...]
    gallery: Path | None


def write_report(
    out_dir: str | os.PathLike,
    results: Results,
    *,
    metrics_path: str | os.PathLike | None = None,
    gallery_rows: Sequence[GalleryRow] = (),
    reward_keys: RewardKeys | None = None,
) -> WrittenReport:
    """Write the report folder ``out_dir`` (see the module docs); it replaces a previous report there.

    ``metrics_path`` is the RePIC training metrics JSONL whose reward curves are plotted (``None``: no
    reward plot); ``reward_keys`` names its keys. ``gallery_rows`` become ``gallery.html`` (empty: none).
    """
    out = Path(out_dir)
    _check_replaceable(out)
    series = read_reward_series(metrics_path, reward_keys) if metrics_path is not None else None
    plots: dict[str, bytes] = {}  # file name -> PNG, in the order the page shows them
    titles: dict[str, str] = {}
    if series is not None:
        plots[REWARD_PLOT] = reward_curves_png(series)
        titles["Reward per task over RePIC training steps"] = REWARD_PLOT
    if results.evaluations:
        for mode, label in SCORER_MODES.items():
            plots[name_scores_plot(mode)] = name_scores_png(results, mode)
            titles[f"Concept-name P / R / F1, {label} scorer"] = name_scores_plot(mode)
    if results.summaries:
        plots[SEEDS_PLOT] = seed_values_png(results)
        titles["Each measure in each training seed, with the mean and its 95 % interval"] = SEEDS_PLOT
    try:
        with atomic_folder(out) as staging:
            atomic_write_json(staging / RESULTS_FILE, results.to_json())
            for name, png in plots.items():
                atomic_write_bytes(staging / name, png)
            if gallery_rows:
                descriptions = {model.label: model.description for model in results.models}
                write_gallery(
                    staging,
                    gallery_rows,
                    results.labels,
                    descriptions=descriptions,
                    title=f"{results.title}: captions on held-out concepts",
                )
            page = render_markdown(
                results,
                plots=titles,
                gallery=GALLERY_FILE if gallery_rows else None,
                gallery_rows=len(gallery_rows),
            )
            atomic_write_text(staging / REPORT_FILE, page)
            atomic_write_text(staging / SUMMARY_FILE, summary_markdown(results))
    except OSError as exc:
        raise RepicError(
            f"cannot write the report to {out}: {exc.strerror or exc}; choose a writable folder with free space"
        ) from None
    return WrittenReport(
        folder=out,
        markdown=out / REPORT_FILE,
        summary=out / SUMMARY_FILE,
        results=out / RESULTS_FILE,
        plots=tuple(out / name for name in plots),
        gallery=out / GALLERY_FILE if gallery_rows else None,
    )


def _check_replaceable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RepicError(f"report folder {out} is a file; choose a folder path for the report")
    if out.is_dir() and any(out.iterdir()) and not (out / RESULTS_FILE).is_file():
        raise RepicError(
            f"report folder {out} already holds files and is not a repic report (it has no {RESULTS_FILE}); "
            "writing the report replaces the folder, so choose a new or empty folder"
        )


def results_table(results: Results) -> str:
    """The plain-text results table a run prints at its end: names (both modes), then OCT and VLT."""
    blocks = [results.title]
    name_rows = []
    for evaluation in results.evaluations:
        for model in results.models:
            result = model.captions.get(evaluation)
            if result is None:
                continue
            official, strict = result.official, result.strict
            absent = result.absent_named
            name_rows.append([
                EVALUATIONS[evaluation],
                model.label,
                *(f"{percent(getattr(official, n))} / {percent(getattr(strict, n))}" for n in ("precision", "recall", "f1")),
                "n/a" if absent is None else percent(absent.rate),
            ])  # fmt: skip
    if name_rows:
        blocks += [
            "Concept names in captions, % (each cell: official scorer / strict scorer)",
            _aligned(("evaluation", "model", "P", "R", "F1", "absent named"), name_rows, text_columns=2),
        ]
    task_rows = recognition_rows(results)
    if task_rows:
        headers = (
            "model",
            "OCT acc %",
            "yes-recall %",
            "no-recall %",
            "answers",
            "VLT acc %",
            "mean IoU",
            "boxes",
        )
        blocks += ["Recognition (OCT) and localization (VLT)", _aligned(headers, task_rows, text_columns=1)]
    return "\n\n".join(blocks)


def seeds_table(results: Results) -> str:
    """The plain-text table of the main cells over training seeds: mean ± std (min-max) [95 % interval]."""
    seeds = ", ".join(map(str, results.seeds))
    rows = seed_rows(results, MAIN_CELLS, interval=True)
    return (f"Over training seeds {seeds}, %: mean ± std (min-max) [95 % interval of the mean; seeds and queries "
            "resampled]; a model made once shows its one value\n\n" + _aligned(("measure", *results.labels), rows, 1))


def _aligned(headers: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int) -> str:
    """Columns padded to their widest cell: the first ``text_columns`` left-aligned, numbers right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.ljust(width) if index < text_columns else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])
