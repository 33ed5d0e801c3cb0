"""The paper's claim on a demo run, judged over its training seeds, and each model's summary per cell.

``claim_checks`` compares, on the per-query outcomes of every model (``repic.world.demo.evaluate.
query_outcomes``, one dict of cells per seed): RePIC with the base on every caption evaluation, OCT and VLT;
RePIC with SFT on 2- and 4-concept F1; and, when the run has it, RePIC + faithful naming with RePIC on how
often a caption names an absent offered concept. Each comparison is a paired gap per seed with a two-level
bootstrap interval (``repic.evaluate.intervals.summarize_gap``) and the verdict of ``claim_verdict``: the
one rule. A caption check is judged in both scorer modes and keeps the weaker verdict, so a claim never
rests on the lenient scorer alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...evaluate.intervals import (
    DOES_NOT_HOLD,
    HOLDS,
    WITHIN_NOISE,
    GapSummary,
    QueryOutcomes,
    SeedSummary,
    summarize_gap,
    summarize_seeds,
)
from ...report import EVALUATIONS, ClaimCheck, percent

REPIC, SFT, FAITHFUL = "repic", "sft", "faithful"
ONCE = ("base", "start")  # made once: the shipped base and the warmed-up start model
SEEDED = (SFT, REPIC)  # trained once per training seed (``faithful`` too, when the run has it)
_STRENGTH = {HOLDS: 2, WITHIN_NOISE: 1, DOES_NOT_HOLD: 0}

Outcomes = Mapping[str, Sequence[Mapping[str, QueryOutcomes]]]  # model label -> per seed -> cell -> outcomes


def seed_summaries(outcomes: Outcomes) -> dict[str, dict[str, SeedSummary]]:
    """Each model's ``SeedSummary`` per cell (a model made once has one value per cell)."""
    return {
        label: {cell: summarize_seeds([run[cell] for run in runs]) for cell in runs[0]}
        for label, runs in outcomes.items()
    }


def claim_checks(outcomes: Outcomes) -> list[ClaimCheck]:
    """The claim checks of a run (see the module docstring)."""
    repic, base = outcomes[REPIC], outcomes["base"]
    cells = set(repic[0])
    checks = []
    for key, label in EVALUATIONS.items():
        if f"{key}.official" in cells:
            checks.append(_check(f"RePIC > base, {label} F1", repic, base, [f"{key}.official", f"{key}.strict"]))
    checks.append(_check("RePIC > base, OCT accuracy", repic, base, ["oct"]))
    checks.append(_check("RePIC > base, VLT accuracy (IoU >= 0.5)", repic, base, ["vlt"]))
    for key in ("two", "four"):
        if f"{key}.official" in cells:
            label = EVALUATIONS[key]
            checks.append(_check(f"RePIC > SFT, {label} F1", repic, outcomes[SFT], [f"{key}.official", f"{key}.strict"]))
    if FAITHFUL in outcomes:
        for key in ("single_retrieval", "two_retrieval"):
            cell = f"{key}.absent_named"
            if cell in cells:
                checks.append(_check(
                    f"RePIC + faithful naming names absent offered concepts less often than RePIC, {EVALUATIONS[key]}",
                    outcomes[FAITHFUL], repic, [cell], lower_is_better=True,
                ))  # fmt: skip
    return checks


def _check(
    statement: str,
    mine: Sequence[Mapping[str, QueryOutcomes]],
    theirs: Sequence[Mapping[str, QueryOutcomes]],
    cells: Sequence[str],
    *,
    lower_is_better: bool = False,
) -> ClaimCheck:
    """One check over ``cells`` (scorer modes of one measure): the weakest verdict, the first cell's gaps."""
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


def _mean(runs: Sequence[Mapping[str, QueryOutcomes]], cell: str) -> float:
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
