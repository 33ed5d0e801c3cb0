"""Numbers over training seeds, as people read them: ``mean ± std (min-max)`` cells and their tables.

A run trained once per seed (``Results.seeds``, ``Results.summaries``) is reported per cell (``CELLS``) as
the mean over seeds with its sample standard deviation and range, and the 95 % interval of the mean
(``repic.evaluate.intervals``: seeds and the queries within them resampled). A model made once (the base)
has one value and an interval over its queries. ``seeds_cell`` formats one; ``seed_rows`` gives a table's
rows for the markdown report, the plain-text printout and the README summary alike, so they cannot differ.
"""

from __future__ import annotations

from ..evaluate.intervals import SeedSummary
from .results import CELLS, Results, percent

# The cells a short table shows, in order (every cell is in report.md's full table).
MAIN_CELLS = (
    "single.official", "two.official", "four.official", "single_retrieval.official", "single_retrieval.absent_named",
    "two_retrieval.official", "two_retrieval.absent_named", "oct", "vlt",
)  # fmt: skip


def seeds_cell(summary: SeedSummary | None, *, interval: bool = False) -> str:
    """``mean ± std (min-max)`` in percent, or the one value of a model made once; ``interval`` adds the
    95 % interval in brackets.

    >>> seeds_cell(SeedSummary((0.9, 0.8, 0.7), 0.8, 0.1, 0.7, 0.9, 0.72, 0.88))
    '80.0 ± 10.0 (70.0-90.0)'
    >>> seeds_cell(SeedSummary((0.5,), 0.5, 0.0, 0.5, 0.5, 0.4, 0.6), interval=True)
    '50.0 [40.0, 60.0]'
    """
    if summary is None:
        return "n/a"
    if len(summary.values) == 1:
        text = percent(summary.mean)
    else:
        text = (f"{percent(summary.mean)} ± {percent(summary.std)} "
                f"({percent(summary.minimum)}-{percent(summary.maximum)})")
    return f"{text} [{percent(summary.low)}, {percent(summary.high)}]" if interval else text


def seed_rows(results: Results, cells: tuple[str, ...] | None = None, *, interval: bool = False) -> list[list[str]]:
    """One row per cell (label, then a cell per model), for the cells any model has."""
    present = [cell for cell in (cells or tuple(CELLS)) if any(cell in s for s in results.summaries.values())]
    return [
        [CELLS[cell], *(seeds_cell(results.summaries.get(label, {}).get(cell), interval=interval)
                        for label in results.labels)]
        for cell in present
    ]  # fmt: skip


def per_seed_rows(results: Results, cells: tuple[str, ...] = MAIN_CELLS) -> list[list[str]]:
    """One row per (seeded model, cell): the value in each seed, for the report's per-seed table."""
    rows = []
    for label in results.per_seed:
        for cell in cells:
            summary = results.summaries.get(label, {}).get(cell)
            if summary is not None:
                rows.append([label, CELLS[cell], *(percent(value) for value in summary.values)])
    return rows
