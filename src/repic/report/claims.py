"""Claims between two models, judged over training seeds: "A scores above B on this measure".

``compare`` judges one claim on per-query outcomes (``repic.evaluate.models.query_outcomes``: per model,
one dict of cells per seed): the paired gap per seed with a two-level bootstrap interval
(``repic.evaluate.intervals.summarize_gap``) and the one rule of ``claim_verdict`` (holds / within noise /
does not hold). A caption measure is judged in both scorer modes and keeps the weaker verdict, so a claim
never rests on the lenient scorer alone. ``claims_above`` states "A > B" on every measure both models have;
``seed_summaries`` gives each model's summary per cell. The demo's claim list is built from these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..evaluate.intervals import (
    DOES_NOT_HOLD,
    HOLDS,
    WITHIN_NOISE,
    GapSummary,
    QueryOutcomes,
    SeedSummary,
    summarize_gap,
    summarize_seeds,
)
from .results import EVALUATIONS, ClaimCheck, percent

Runs = Sequence[Mapping[str, QueryOutcomes]]  # one model: per seed, cell -> outcomes
Outcomes = Mapping[str, Runs]  # model label -> its runs
_STRENGTH = {HOLDS: 2, WITHIN_NOISE: 1, DOES_NOT_HOLD: 0}


def seed_summaries(outcomes: Outcomes) -> dict[str, dict[str, SeedSummary]]:
    """Each model's ``SeedSummary`` per cell (a model made once has one value per cell)."""
    return {
        label: {cell: summarize_seeds([run[cell] for run in runs]) for cell in runs[0]}
        for label, runs in outcomes.items()
    }


def measures(cells: set[str]) -> list[tuple[str, list[str]]]:
    """The measures a set of cells holds, in report order: (name, its cells), caption F1 in both modes first."""
    found = [(f"{label} F1", [f"{key}.official", f"{key}.strict"]) for key, label in EVALUATIONS.items()
             if f"{key}.official" in cells]
    found += [(name, [cell]) for cell, name in (("oct", "OCT accuracy"), ("vlt", "VLT accuracy (IoU >= 0.5)"))
              if cell in cells]
    return found


def claims_above(outcomes: Outcomes, mine: str, theirs: str, names: Mapping[str, str] | None = None) -> list[ClaimCheck]:
    """"``mine`` > ``theirs``" on every measure both models were evaluated on (``names``: labels as printed)."""
    names = names or {}
    shown = f"{names.get(mine, mine)} > {names.get(theirs, theirs)}"
    cells = set(outcomes[mine][0]) & set(outcomes[theirs][0])
    return [compare(f"{shown}, {measure}", outcomes[mine], outcomes[theirs], measure_cells)
            for measure, measure_cells in measures(cells)]


def compare(statement: str, mine: Runs, theirs: Runs, cells: Sequence[str], *,
            lower_is_better: bool = False) -> ClaimCheck:
    """One claim over ``cells`` (scorer modes of one measure): the weakest verdict, the first cell's gaps."""
    gaps: list[GapSummary] = []
    for cell in cells:
        better, worse = (theirs, mine) if lower_is_better else (mine, theirs)
        gaps.append(summarize_gap([run[cell] for run in better], [run[cell] for run in worse]))
    verdict = min((gap.verdict for gap in gaps), key=_STRENGTH.__getitem__)
    first = gaps[0]
    return ClaimCheck(
        statement=statement,
        repic=" / ".join(percent(_mean(mine, cell)) for cell in cells),
        other=" / ".join(percent(_mean(theirs, cell)) for cell in cells),
        holds=verdict == HOLDS,
        note=_note(first, [gap.verdict for gap in gaps]),
        verdict=verdict,
        gaps=first.gaps,
        low=first.low,
        high=first.high,
    )


def _mean(runs: Runs, cell: str) -> float:
    return sum(run[cell].value() for run in runs) / len(runs)


def _note(gap: GapSummary, verdicts: Sequence[str]) -> str:
    """What a verdict rests on, in points: the gap per seed and the interval of its mean.

    >>> _note(GapSummary((0.05, -0.01), 0.02, -0.02, 0.06, 0.95, WITHIN_NOISE), [WITHIN_NOISE])
    'gap +2.0 points; per seed +5.0, -1.0; 95 % interval [-2.0, +6.0]'
    """
    seeds = ", ".join(f"{100 * value:+.1f}" for value in gap.gaps)
    per_seed = f"; per seed {seeds}" if len(gap.gaps) > 1 else ""
    note = (f"gap {100 * gap.mean:+.1f} points{per_seed}; {100 * gap.level:.0f} % interval "
            f"[{100 * gap.low:+.1f}, {100 * gap.high:+.1f}]")
    if len(set(verdicts)) > 1:
        note += f"; strict scorer: {verdicts[1]}"
    return note
