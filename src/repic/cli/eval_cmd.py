"""``repic eval``: score prediction files, print one report per file, and optionally save every number.

Each file is read by ``repic.evaluate.predictions`` (official caption dumps and this project's JSONL, told
apart by content) and scored by ``repic.evaluate.engine.score_predictions`` (the metrics of
``repic.evaluate.metrics``, as every evaluation in the project scores them). Captions get both name-matching modes, always
together and labelled, because the official numbers are the ones papers compare against while the strict
ones are the ones that mean what they say (see ``repic.evaluate.metrics``). OCT and VLT rows, when a file
has them, get recognition and localization tables.

Tables show rates as percentages with one decimal, like the official scripts print them; ``--json`` keeps
the exact fractions and every count. Skipped malformed rows are reported once per file on stderr, and so
are caption rows that carry no true concepts (captions of images that came without them): there is nothing
to score those against, and a file of only such rows is an error, not a report of made-up numbers. User
text (paths, reasons) is printed as rich ``Text``, never as markup.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from ..atomic import atomic_write_json
from ..concepts.database import load_database
from ..errors import RepicError
from ..evaluate import (
    OFFICIAL_VARIANTS,
    ON_ERROR_CHOICES,
    LoadedPredictions,
    display_names,
    load_predictions,
    score_predictions,
)
from ..outputs import check_output_file
from .console import console, err_console, say

OFFICIAL_LABEL = "official (RePIC scripts)"
STRICT_LABEL = "strict (whole names)"


def eval_command(
    predictions: Annotated[
        list[Path],
        typer.Argument(
            help="Prediction files: official caption dumps (a JSON list of rows: image, concepts, caption, "
            "question) or predictions JSONL (one object per line with task, concepts, prediction).",
            metavar="FILE",
            show_default=False,
        ),
    ],
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Also write every number to this JSON file (rates as fractions in [0, 1])."
        ),
    ] = None,
    database: Annotated[
        Path | None,
        typer.Option(
            "--database",
            help="A concept database.json; its display names also count as names in the strict mode "
            "(e.g. 'Iron Man' for <ironman>).",
        ),
    ] = None,
    official_variant: Annotated[
        str | None,
        typer.Option(
            "--official-variant",
            metavar="single|two|four",
            help="Force the official script: single, two or four "
            "(default: by the most concepts in one row: 1, 2, 3 or more).",
        ),
    ] = None,
    on_error: Annotated[
        str,
        typer.Option(
            "--on-error",
            metavar="skip|fail",
            help="Malformed rows: skip (leave out, with a warning) or fail (stop).",
        ),
    ] = "skip",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --json file.")] = False,
) -> None:
    """Score captions (concept-name precision / recall / F1), OCT answers and VLT boxes."""
    if official_variant is not None and official_variant not in OFFICIAL_VARIANTS:
        raise RepicError(
            f"--official-variant must be one of {', '.join(OFFICIAL_VARIANTS)}, not {official_variant!r}"
        )
    if on_error not in ON_ERROR_CHOICES:
        raise RepicError(f"--on-error must be one of {', '.join(ON_ERROR_CHOICES)}, not {on_error!r}")
    if json_out is not None:
        check_output_file(json_out, inputs=[*predictions, database], overwrite=overwrite, option="--json")
    aliases = display_names(load_database(database)) if database is not None else {}
    # Read every file before printing anything, so a bad last file does not leave half a report.
    loaded = [load_predictions(path, on_error=on_error) for path in predictions]
    for file in loaded:  # nothing scored is a failure, so a script that evaluates an empty dump notices
        if not (file.captions or file.recognition or file.localization):
            raise RepicError(_nothing_to_score(file))
    reports = []
    for file in loaded:
        report = _file_report(file, aliases, official_variant)
        _print_report(file, report)
        reports.append(report)
    if json_out is not None:
        atomic_write_json(json_out, {"files": reports})
        say(f"wrote {json_out}")


def _nothing_to_score(file: LoadedPredictions) -> str:
    """Why ``file`` has no row to score, and what would give one."""
    if file.unlabeled:
        return (
            f"{file.path} has no row to score: its caption rows ({len(file.unlabeled)}) carry no true concepts "
            "(captions of images given without them), so there is nothing to score them against; "
            "caption an evaluation file (`repic caption --eval`) or name the concepts in the images (--concepts)"
        )
    skipped = f" ({file.skipped_message()})" if file.skipped else ""
    return (
        f"{file.path} has no row to score{skipped}; give a caption dump (a JSON list of "
        "[image, [concepts], caption, question] rows) or predictions JSONL from `repic caption`"
    )


def _file_report(
    file: LoadedPredictions, aliases: dict[str, list[str]], variant: str | None
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "path": str(file.path),
        "format": file.format,
        "skipped": [asdict(skipped) for skipped in file.skipped],
        "unlabeled": len(file.unlabeled),
        "captions": None,
        "recognition": None,
        "localization": None,
    }
    scores = score_predictions(file, aliases, variant)
    if scores.captions is not None:
        report["captions"] = {
            "rows": scores.captions.rows,
            "official": {"variant": scores.captions.variant, **asdict(scores.captions.official)},
            "strict": {"aliases": len(aliases), **asdict(scores.captions.strict)},
        }
    if scores.recognition is not None:
        report["recognition"] = asdict(scores.recognition)
    if scores.localization is not None:
        report["localization"] = asdict(scores.localization)
    return report


def _print_report(file: LoadedPredictions, report: dict[str, Any]) -> None:
    console.print()
    say(f"{file.path} ({file.format})", "bold")
    if file.skipped:
        err_console.print(Text(f"warning: {file.skipped_message()}", style="yellow"), soft_wrap=True)
    if file.unlabeled:
        err_console.print(Text(f"warning: left out {_count(len(file.unlabeled), 'caption row')} of {file.path} "
                               "without true concepts (nothing to score them against)", style="yellow"),
                          soft_wrap=True)
    if report["captions"] is not None:
        console.print(_captions_table(report["captions"]))
    if report["recognition"] is not None:
        console.print(_recognition_table(report["recognition"]))
    if report["localization"] is not None:
        console.print(_localization_table(report["localization"]))


def _captions_table(captions: dict[str, Any]) -> Table:
    official, strict = captions["official"], captions["strict"]
    table = _table(
        f"concept names in {_count(captions['rows'], 'caption')}",
        caption=f"total = true concepts; official variant: {official['variant']}; "
        f"strict aliases: {strict['aliases']}",
    )
    table.add_column("mode", no_wrap=True)
    for header in ("P %", "R %", "F1 %", "correct", "MISS", "none", "total"):
        table.add_column(header, justify="right")
    for label, scores in ((OFFICIAL_LABEL, official), (STRICT_LABEL, strict)):
        table.add_row(
            label,
            *(_percent(scores[name]) for name in ("precision", "recall", "f1")),
            *(str(scores[name]) for name in ("correct", "miss", "none", "total")),
        )
    return table


def _recognition_table(scores: dict[str, Any]) -> Table:
    table = _table(f"recognition (OCT), {_count(scores['total'], 'answer')}")
    for header in ("accuracy %", "yes-recall %", "no-recall %", "correct", "yes/no rows", "unparseable"):
        table.add_column(header, justify="right")
    table.add_row(
        _percent(scores["accuracy"]),
        _percent(scores["yes_recall"]),
        _percent(scores["no_recall"]),
        str(scores["correct"]),
        f"{scores['positives']}/{scores['negatives']}",
        str(scores["unparseable"]),
    )
    return table


def _localization_table(scores: dict[str, Any]) -> Table:
    table = _table(f"localization (VLT), {_count(scores['total'], 'box', 'boxes')}")
    for header in (f"accuracy@{scores['threshold']:g} %", "mean IoU", "hits", "unparseable"):
        table.add_column(header, justify="right")
    mean_iou = "n/a" if scores["mean_iou"] is None else f"{scores['mean_iou']:.3f}"
    table.add_row(_percent(scores["accuracy"]), mean_iou, str(scores["hits"]), str(scores["unparseable"]))
    return table


def _table(title: str, caption: str | None = None) -> Table:
    # Simple rules, no outer edge and one space between columns: the caption table fits 80 columns.
    return Table(title=title, caption=caption, box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)


def _count(number: int, noun: str, plural: str | None = None) -> str:
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f}"

