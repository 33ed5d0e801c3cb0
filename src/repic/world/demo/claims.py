"""The paper's claim on a demo run, judged over its training seeds, and each model's summary per cell.

``claim_checks`` compares, on the per-query outcomes of every model (``repic.evaluate.models.
query_outcomes``, one dict of cells per seed): RePIC with the base on every caption evaluation, OCT and VLT;
RePIC with SFT on 2- and 4-concept F1; and, when the run has it, RePIC + faithful naming with RePIC on how
often a caption names an absent offered concept. Each comparison is judged by the library's
``repic.report.claims.compare`` (paired gaps per seed, a two-level bootstrap interval, one verdict rule,
the weaker of the two scorer modes).
"""

from __future__ import annotations

from ...report import EVALUATIONS, ClaimCheck
from ...report.claims import Outcomes, compare, measures, seed_summaries

REPIC, SFT, FAITHFUL = "repic", "sft", "faithful"
ONCE = ("base", "start")  # made once: the shipped base and the warmed-up start model
SEEDED = (SFT, REPIC)  # trained once per training seed (``faithful`` too, when the run has it)

__all__ = ["FAITHFUL", "ONCE", "REPIC", "SEEDED", "SFT", "claim_checks", "seed_summaries"]


def claim_checks(outcomes: Outcomes) -> list[ClaimCheck]:
    """The claim checks of a run (see the module docstring)."""
    repic, base = outcomes[REPIC], outcomes["base"]
    cells = set(repic[0])
    checks = [compare(f"RePIC > base, {measure}", repic, base, measure_cells)
              for measure, measure_cells in measures(cells)]
    for key in ("two", "four"):
        if f"{key}.official" in cells:
            label = EVALUATIONS[key]
            checks.append(compare(f"RePIC > SFT, {label} F1", repic, outcomes[SFT], [f"{key}.official", f"{key}.strict"]))
    if FAITHFUL in outcomes:
        for key in ("single_retrieval", "two_retrieval"):
            cell = f"{key}.absent_named"
            if cell in cells:
                checks.append(compare(
                    f"RePIC + faithful naming names absent offered concepts less often than RePIC, {EVALUATIONS[key]}",
                    outcomes[FAITHFUL], repic, [cell], lower_is_better=True,
                ))  # fmt: skip
    return checks
