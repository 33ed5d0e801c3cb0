"""``report.md``: the results as markdown tables, the plots, a link to the gallery, and how the run was made.

The page is written for a reader who opens the report folder in any markdown viewer: what each model is,
the concept-name tables in both scorer modes (each labelled, with the counts behind every rate, so a
number can be checked by hand), recognition and localization, the claim checks, the plots, the gallery
link, then the commands, configs (as YAML, the recipes' own format), timings, machine and date.

Every number is formatted from the same ``Results`` that ``results.json`` stores (rates as percentages
with one decimal, as ``repic eval`` prints them), so the page and the file cannot disagree. Text from the
run (labels, descriptions, commands) is escaped for table cells or fenced so it renders as written.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence

import yaml

from .results import EVALUATIONS, SCORER_MODES, Results, percent
from .seeds import per_seed_rows, seed_rows

NAME_COLUMNS = (
    "evaluation", "model", "P %", "R %", "F1 %", "correct", "MISS", "none", "concepts", "captions", "absent named %", "retrieved top-1 % / recall %",
)  # fmt: skip
TASK_COLUMNS = (
    "model", "OCT accuracy %", "yes-recall %", "no-recall %", "answers", "VLT accuracy %", "mean IoU", "boxes",
)  # fmt: skip


def render_markdown(
    results: Results,
    *,
    plots: Mapping[str, str] | None = None,
    gallery: str | None = None,
    gallery_rows: int = 0,
) -> str:
    """The whole ``report.md``; ``plots`` maps a plot's title to its file name next to the page."""
    parts = [f"# {_line(results.title)}", f"Written {results.created} on {_line(results.machine)}."]
    parts += [
        "## Models",
        markdown_table(("model", "what it is"), [[m.label, m.description] for m in results.models], 2),
    ]
    if len(results.seeds) > 1:
        seeds = ", ".join(map(str, results.seeds))
        parts += [
            "## Over training seeds",
            f"Models trained once per training seed ({seeds}): each cell is the mean over seeds ± the sample "
            "standard deviation (min-max), then the 95 % interval of the mean, from a bootstrap that resamples "
            "the seeds and the queries within each. A model made once shows its one value and the interval over "
            "its queries. The tables after this section are those of the first seed.",
            markdown_table(("measure", *results.labels), seed_rows(results, interval=True)),
            "### Each seed",
            markdown_table(("model", "measure", *(f"seed {seed}" for seed in results.seeds)),
                           per_seed_rows(results), 2),
        ]
    elif results.seeds:
        parts.append(f"One training seed ({results.seeds[0]}): a draw of a process whose spread between seeds is "
                     "often larger than the gaps below.")
    if results.evaluations:
        parts += ["## Concept names in captions", _NAMES_INTRO]
        for mode, label in SCORER_MODES.items():
            parts += [f"### {label}", markdown_table(NAME_COLUMNS, name_rows(results, mode), 2)]
    task_rows = recognition_rows(results)
    if task_rows:
        parts += [
            "## Recognition (OCT) and localization (VLT)",
            _TASKS_INTRO,
            markdown_table(TASK_COLUMNS, task_rows),
        ]
    if results.checks:
        parts += [
            "## The claim, checked",
            _CLAIMS_INTRO,
            markdown_table(
                ("check", "claimed model %", "other %", "verdict"),
                [[c.statement, c.repic, c.other, c.with_note(c.verdict if c.holds else f"**{c.verdict}**")]
                 for c in results.checks],
            ),
        ]
    if plots:
        parts.append("## Plots")
        for title, file in plots.items():
            parts += [f"### {_line(title)}", f"![{_line(title)}]({file})"]
    if gallery:
        parts += ["## Gallery", f"[{gallery}]({gallery}): {gallery_rows} held-out queries with their reference "
                  "images and every model's caption side by side, concept names highlighted."]  # fmt: skip
    if results.commands:
        parts += ["## Commands", _fenced("\n".join(results.commands), "console")]
    if results.configs:
        parts.append("## Configs")
        for name, config in results.configs.items():
            text = yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True).rstrip()
            parts += [f"### {_line(name)}", _fenced(text, "yaml")]
    if results.timings:
        rows = [[stage, duration(seconds)] for stage, seconds in results.timings.items()]
        if results.wall_seconds is None:
            rows.append(["total", duration(sum(results.timings.values()))])
        else:  # stages overlapped: their sum is not how long the run took
            rows += [["sum of the stages", duration(sum(results.timings.values()))],
                     ["wall clock (stages side by side)", duration(results.wall_seconds)]]
        parts += ["## Timings", markdown_table(("stage", "time"), rows)]
    return "\n\n".join(parts) + "\n"


_NAMES_INTRO = (
    "Precision / recall / F1 of concept names in the captions of held-out concepts. For each concept in an "
    "image: *correct* if its caption names it, *MISS* if not but the caption names another concept, *none* "
    "otherwise; P = correct / (correct + MISS), R = correct / concepts. The **official** scorer reproduces the "
    "RePIC evaluation scripts (whitespace tokens); the **strict** scorer matches whole names (multi-word "
    "names, possessives, one case rule). *Retrieval* rows give the model retrieved concepts instead of the "
    "true ones. *Absent named* is the share of captions that name a concept not in the image."
)
_CLAIMS_INTRO = (
    "Means over the training seeds (official / strict scorer for captions). A check **holds** when the gap "
    "favours the claimed model in every seed and its 95 % interval (seeds and queries resampled, the models "
    "paired on the same queries) excludes 0; it is *within noise* when the mean gap favours it but either "
    "fails; otherwise it does not hold. A caption check keeps the weaker of its two scorers' verdicts."
)
_TASKS_INTRO = (
    "OCT: the first yes/no of the answer against the label (yes-recall and no-recall on positive and negative "
    "questions). VLT: a box hits when its IoU with the true box is at least the threshold; mean IoU counts a "
    "missing box as 0."
)


def _retrieval_cell(result) -> str:
    """"top-1 / recall@K" of the references retrieval chose, or n/a for skip-retrieval evaluations."""
    if result.retrieval_top1 is None or result.retrieval_recall is None:
        return "n/a"
    return f"{percent(result.retrieval_top1.rate)} / {percent(result.retrieval_recall.rate)}"


def name_rows(results: Results, mode: str) -> list[list[str]]:
    """One row per (evaluation, model) of the concept-name table of scorer ``mode``, as display cells."""
    rows = []
    for evaluation in results.evaluations:
        for model in results.models:
            result = model.captions.get(evaluation)
            if result is None:
                continue
            scores = result.scores(mode)
            absent = result.absent_named
            rows.append([
                EVALUATIONS[evaluation],
                model.label,
                percent(scores.precision),
                percent(scores.recall),
                percent(scores.f1),
                str(scores.correct),
                str(scores.miss),
                str(scores.none),
                str(scores.total),
                str(result.rows),
                "n/a" if absent is None else f"{percent(absent.rate)} ({absent.hits}/{absent.total})",
                _retrieval_cell(result),
            ])  # fmt: skip
    return rows


def recognition_rows(results: Results) -> list[list[str]]:
    """One row per model that has OCT or VLT scores, as display cells (``n/a`` for what it lacks)."""
    rows = []
    for model in results.models:
        oct_, vlt = model.recognition, model.localization
        if oct_ is None and vlt is None:
            continue
        rows.append([
            model.label,
            "n/a" if oct_ is None else percent(oct_.accuracy),
            "n/a" if oct_ is None else percent(oct_.yes_recall),
            "n/a" if oct_ is None else percent(oct_.no_recall),
            "n/a" if oct_ is None else str(oct_.total),
            "n/a" if vlt is None else f"{percent(vlt.accuracy)} (at IoU {vlt.threshold:g})",
            "n/a" if vlt is None or vlt.mean_iou is None else f"{vlt.mean_iou:.3f}",
            "n/a" if vlt is None else str(vlt.total),
        ])  # fmt: skip
    return rows


def duration(seconds: float) -> str:
    """A stage time for people: seconds under a minute, else minutes (and hours) too.

    >>> duration(12.34), duration(83.4), duration(3725)
    ('12.3 s', '83.4 s (1:23)', '3725.0 s (1:02:05)')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    clock = f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
    return f"{seconds:.1f} s ({clock})"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int = 1) -> str:
    """A markdown table; columns after the first ``text_columns`` hold numbers and are right-aligned."""
    rule = ["---" if index < text_columns else "---:" for index in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(table_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def table_cell(text: str) -> str:
    """Text safe inside a table cell: one line, pipes escaped, tags shown (see ``_line``)."""
    return _line(text).replace("|", "\\|")


def _line(text: str) -> str:
    """One line of run text for markdown: ``<bo>`` escaped, or viewers would take it for an HTML tag."""
    return html.escape(" ".join(text.split()), quote=False)


def _fenced(text: str, language: str) -> str:
    """A code block whose fence is longer than any backtick run inside, so the text cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"
