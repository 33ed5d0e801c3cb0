"""A run's results in one short table and a few lines (``summary.md``), and a README section kept equal to it.

``summary_markdown(results)`` gives what a README shows of a run: one row per evaluation, one column per
model (concept-name F1 by the official scorer, the strict one after a slash where it differs; the share of
captions naming an absent offered concept in parentheses; OCT accuracy; VLT accuracy with its mean IoU),
then how retrieval did, which claim checks hold and how long the stages took. ``write_report`` writes it
as ``summary.md`` next to ``report.md``.

``repic.report.readme`` puts it into a README, so a README quoting a run is regenerated from that run's
``results.json`` rather than copied by hand. What it chose and why:

- **Bold marks a row's best model only when one is best**: a tie bolds nothing, so the table never reads
  as a win that is not there.
- **The claim checks are restated, not judged again**: they come from ``results.checks`` as the run made
  them, verdicts and notes included (a gap within noise says so).
- **A run over several training seeds is summarized over them**: each main cell as mean ± std (min-max)
  (``repic.report.seeds``), never as one seed's number.
"""

from __future__ import annotations

import html

from ..evaluate.intervals import DOES_NOT_HOLD, HOLDS, WITHIN_NOISE
from .markdown import duration, markdown_table
from .results import EVALUATIONS, VERDICTS, CaptionResult, ModelResult, Results, percent
from .seeds import MAIN_CELLS, seed_rows


def summary_markdown(results: Results) -> str:
    """The summary of ``results`` as markdown (see the module docstring)."""
    if len(results.seeds) > 1:
        return _seeds_summary(results)
    models = results.models
    rows = [_caption_row(results, key) for key in results.evaluations]
    if any(model.recognition is not None for model in models):
        rows.append(_best(
            "OCT accuracy % (balanced, chance 50)",
            [None if m.recognition is None else m.recognition.accuracy for m in models],
            [percent(None if m.recognition is None else m.recognition.accuracy) for m in models],
        ))  # fmt: skip
    if any(model.localization is not None for model in models):
        threshold = next(m.localization.threshold for m in models if m.localization is not None)
        rows.append(_best(
            f"VLT accuracy % at IoU {threshold:g} (mean IoU)",
            [None if m.localization is None else m.localization.accuracy for m in models],
            [_vlt_cell(m) for m in models],
        ))  # fmt: skip
    parts = [markdown_table(["evaluation", *[m.label for m in models]], rows)]
    parts += [line for line in (_retrieval_line(results), _claims_line(results), _time_line(results)) if line]
    return "\n\n".join(parts) + "\n"


def _caption_row(results: Results, key: str) -> list[str]:
    results_of = [model.captions.get(key) for model in results.models]
    counted = next(result for result in results_of if result is not None)
    absent = any(result is not None and result.absent_named is not None for result in results_of)
    label = f"{EVALUATIONS[key]} ({counted.rows} captions{'; absent named %' if absent else ''})"
    return _best(label, [None if r is None else r.official.f1 for r in results_of], [_f1_cell(r) for r in results_of])


def _f1_cell(result: CaptionResult | None) -> str:
    if result is None:
        return "n/a"
    official, strict = percent(result.official.f1), percent(result.strict.f1)
    cell = official if official == strict else f"{official} / {strict}"
    if result.absent_named is not None:
        cell += f" ({percent(result.absent_named.rate)})"
    return cell


def _vlt_cell(model: ModelResult) -> str:
    vlt = model.localization
    if vlt is None:
        return "n/a"
    return percent(vlt.accuracy) + ("" if vlt.mean_iou is None else f" ({vlt.mean_iou:.3f})")


def _best(label: str, values: list[float | None], cells: list[str]) -> list[str]:
    """The row's cells, the best value's in bold when no other model ties it."""
    known = [value for value in values if value is not None]
    if known and known.count(max(known)) == 1:
        best = values.index(max(known))
        cells = [f"**{cell}**" if index == best else cell for index, cell in enumerate(cells)]
    return [label, *cells]


def _retrieval_line(results: Results) -> str:
    found = {}  # evaluation label -> its retrieval counts, from the first model that has them
    for key, label in EVALUATIONS.items():
        with_counts = [m.captions[key] for m in results.models if key in m.captions and m.captions[key].retrieval_top1]
        if with_counts:
            found[label.removesuffix(", retrieval")] = with_counts[0]
    if not found:
        return ""
    top1 = " / ".join(f"{percent(r.retrieval_top1.rate)} %" for r in found.values())
    recall = " / ".join(f"{percent(r.retrieval_recall.rate if r.retrieval_recall else None)} %" for r in found.values())
    return (f"Retrieval, the same for every model ({' / '.join(found)}): the first concept retrieved is in the "
            f"image for {top1} of the queries, and the retrieved ones hold {recall} of the true concepts.")  # fmt: skip


def _seeds_summary(results: Results) -> str:
    """A multi-seed run: the main cells as mean ± std (min-max) per model, then claims and time."""
    seeds = ", ".join(map(str, results.seeds))
    intro = (f"Training seeds {seeds}; each cell is the mean over seeds ± std (min-max), % (base and start are "
             "made once: one value).")
    table = markdown_table(["measure", *results.labels], seed_rows(results, MAIN_CELLS))
    parts = [intro, table]
    parts += [line for line in (_retrieval_line(results), _claims_line(results), _time_line(results)) if line]
    return "\n\n".join(parts) + "\n"


def _claims_line(results: Results) -> str:
    if not results.checks:
        return ""
    seeds = f" over {len(results.seeds)} training seeds" if len(results.seeds) > 1 else ""
    by_verdict = {verdict: [c for c in results.checks if c.verdict == verdict] for verdict in VERDICTS}
    line = (f"Claim checks{seeds}: {len(by_verdict[HOLDS])} of {len(results.checks)} hold, "
            f"{len(by_verdict[WITHIN_NOISE])} within noise, {len(by_verdict[DOES_NOT_HOLD])} do not hold.")
    for verdict in (WITHIN_NOISE, DOES_NOT_HOLD):
        if by_verdict[verdict]:
            listed = "; ".join(f"{_text(c.statement)} ({c.repic} vs {c.other}: {c.note})" if c.note else
                               f"{_text(c.statement)} ({c.repic} vs {c.other})" for c in by_verdict[verdict])
            line += f" {verdict.capitalize()}: {listed}."
    return line


def _text(text: str) -> str:
    """Run text for a markdown line: ``<bo>`` escaped (viewers would take it for a tag), ``>`` kept."""
    return html.escape(" ".join(text.split()), quote=False).replace("&gt;", ">")


def _time_line(results: Results) -> str:
    if not results.timings:
        return ""
    total = sum(results.timings.values())
    slowest = max(results.timings, key=results.timings.__getitem__)
    if results.wall_seconds is None:
        # one after the other, or side by side in earlier invocations whose records this run reused
        line = f"The stages took {duration(total)} in all (their records summed)"
    else:
        line = f"The stages took {duration(results.wall_seconds)} of wall clock side by side (their sum {duration(total)})"
    return f"{line}; the longest, {slowest}, {duration(results.timings[slowest])}."
