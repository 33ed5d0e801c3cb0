"""``repic bench run`` and ``repic bench score``: answer a benchmark folder with a model, then score it.

Thin fronts over ``repic.bench.run`` (batched, resumable answering) and ``repic.bench.score`` (the rules,
stated there). ``run`` shows a progress bar and says how to score; ``score`` prints one table per kind,
writes ``bench_results.json`` beside the predictions, and with ``--json`` prints that JSON instead of
the tables. Nothing answered is a failure (exit 1, as ``repic caption``), nothing scored too (exit 2 and
no results file, as ``repic eval``).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..errors import RepicError
from .console import console, err_console, say

_SHOWN_SKIPS = 5
_DEFAULT_BATCH = 16
_DEFAULT_MAX_NEW_TOKENS = 128  # repic.bench.run.DEFAULT_MAX_NEW_TOKENS, without importing torch here

ModelArg = Annotated[str, typer.Argument(
    help="A model folder or hub id, a merged checkpoint, a LoRA adapter folder, tiny-repic or tiny-base.",
    show_default=False)]
BenchArg = Annotated[Path, typer.Argument(
    help="A benchmark folder (`repic bench import FORMAT SRC --out DIR`).", show_default=False)]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for predictions.jsonl and run.json.",
                                      show_default=False)]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Rows per generate call.")]
MaxNewTokensOpt = Annotated[int, typer.Option(
    "--max-new-tokens", help="Longest answer, in tokens (128: the paper's caption evaluation; yes/no and letter "
                             "answers end long before).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seeds the per-row order of multiple-choice options.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="Only the first N rows of the folder.")]
RestartOpt = Annotated[bool, typer.Option(
    "--restart", "--no-resume",
    help="Answer every row again, replacing predictions.jsonl (default: resume, skipping rows already answered).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1 ...")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto (bf16 on GPU, fp32 on CPU), bf16, fp16, fp32.")]
ThreadsOpt = Annotated[int | None, typer.Option(
    "--threads", help="CPU threads for torch (default: torch's). For a small model on a busy machine, 1 is often "
                      "fastest.")]
PredictionsArg = Annotated[Path, typer.Argument(
    help="predictions.jsonl, or the run folder (`repic bench run --out`) that holds it.", show_default=False)]
BenchOptArg = Annotated[Path | None, typer.Argument(
    help="The benchmark folder (default: the one run.json beside the predictions names).", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the results as JSON instead of tables.")]


def run_command(
    model: ModelArg, bench_dir: BenchArg, out: OutOpt, batch_size: BatchOpt = _DEFAULT_BATCH,
    max_new_tokens: MaxNewTokensOpt = _DEFAULT_MAX_NEW_TOKENS, seed: SeedOpt = 0, limit: LimitOpt = None,
    restart: RestartOpt = False, device: DeviceOpt = "auto", dtype: DtypeOpt = "auto", threads: ThreadsOpt = None,
) -> None:
    """Answer every row of a benchmark folder with a model (batched; resumes where a run stopped)."""
    from ..bench.rows import read_rows
    from ..bench.run import run_benchmark

    if batch_size < 1:
        raise RepicError(f"--batch-size must be at least 1 (got {batch_size})")
    if max_new_tokens < 1:
        raise RepicError(f"--max-new-tokens must be at least 1 (got {max_new_tokens})")
    if limit is not None and limit < 1:
        raise RepicError(f"--limit must be at least 1 (got {limit})")
    if not bench_dir.is_dir():
        raise RepicError(f"{bench_dir} is not a folder; give a benchmark folder made by `repic bench import`")
    rows = len(read_rows(bench_dir))  # a clear error for a folder that is not a benchmark, before the model loads
    if threads is not None:
        if threads < 1:
            raise RepicError(f"--threads must be at least 1 (got {threads})")
        import torch

        torch.set_num_threads(threads)
    with _progress_bar(min(rows, limit or rows)) as advance:
        result = run_benchmark(model, bench_dir, out, batch_size=batch_size, max_new_tokens=max_new_tokens,
                               seed=seed, resume=not restart, limit=limit, progress=advance, device=device,
                               dtype=dtype)
    speed = f"; {result.rows_per_second:.2f} rows/s" if result.rows_per_second else ""
    if result.answered + result.skipped == 0:
        say(f"all {result.rows} rows were already answered in {out}; nothing to do (--restart answers them again)")
    else:
        say(f"answered {result.answered} rows, skipped {result.skipped}, {result.resumed} already answered before "
            f"(of {result.rows}){speed}")
    for row_id, reason in result.skipped_rows[:_SHOWN_SKIPS]:
        err_console.print(Text(f"skipped row {row_id}: {reason}", style="yellow"), soft_wrap=True)
    if result.skipped > _SHOWN_SKIPS:
        err_console.print(Text(f"... and {result.skipped - _SHOWN_SKIPS} more (their lines in "
                               f"{result.predictions} say why)", style="yellow"), soft_wrap=True)
    say(f"wrote {result.predictions}")
    if result.answered + result.resumed == 0:
        err_console.print(Text(f"error: no row could be answered: all {result.skipped} were skipped (reasons "
                               "above); fix the benchmark folder and run again", style="bold red"), soft_wrap=True)
        raise typer.Exit(1)
    say(f"score with `repic bench score {out}`")


def score_command(predictions: PredictionsArg, bench_dir: BenchOptArg = None, as_json: JsonOpt = False) -> None:
    """Score a run's predictions: one table per kind; bench_results.json is written beside them."""
    from ..bench.run import PREDICTIONS, RUN_JSON
    from ..bench.score import score_benchmark, write_results

    path = predictions / PREDICTIONS if predictions.is_dir() else predictions
    if not path.is_file():
        raise RepicError(f"{path} does not exist; answer the benchmark first with `repic bench run MODEL BENCH "
                         "--out DIR`")
    if bench_dir is None:
        bench_dir = _recorded_bench(path.parent / RUN_JSON)
    results = score_benchmark(path, bench_dir)
    if results["rows"]["scored"] == 0:  # nothing scored is a failure, as in `repic eval`; no results file
        raise RepicError(f"no prediction in {path} answers a row of {bench_dir}; score the predictions against the "
                         "benchmark they were made for")
    written = write_results(results, path)
    if as_json:
        say(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        _print_results(results)
        say(f"wrote {written}")


def _recorded_bench(run_json: Path) -> Path:
    try:
        recorded = json.loads(run_json.read_text(encoding="utf-8")).get("bench_dir")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if not isinstance(recorded, str):
        raise RepicError(f"no run.json beside the predictions names their benchmark ({run_json}); give the "
                         "benchmark folder: `repic bench score PREDICTIONS BENCH_DIR`")
    return Path(recorded)


@contextmanager
def _progress_bar(total: int):
    """A progress bar on stderr; yields the ``progress`` callback that advances it."""
    columns = (TextColumn("[bold]answering"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task("answering", total=total, rate="")

        def advance(done: Any) -> None:
            progress.update(task, total=done.total, completed=done.done,
                            rate=f"{done.done / max(done.seconds, 1e-9):.1f} rows/s")

        yield advance


# ------------------------------------------------------------------------------------------ tables
def _print_results(results: dict[str, Any]) -> None:
    rows = results["rows"]
    say(f"model: {results.get('model') or 'not recorded'}; benchmark: {results['bench_dir']} "
        f"({results['benchmark'].get('format')})")
    say(f"scored {rows['scored']} of {rows['in_folder']} rows")
    if rows["unanswered"]:
        err_console.print(Text(f"warning: {rows['unanswered']} rows of the folder have no prediction and are left "
                               "out of the rates (resume the run to answer them)", style="yellow"), soft_wrap=True)
    if rows["unknown_ids"] or rows["unreadable_lines"]:
        err_console.print(Text(f"warning: ignored {rows['unknown_ids']} predictions of rows not in the folder and "
                               f"{rows['unreadable_lines']} unreadable lines", style="yellow"), soft_wrap=True)
    for kind, table in (("recognition", _recognition_table), ("caption", _caption_table),
                        ("choice", _choice_table), ("open", _open_table)):
        if results.get(kind, {}).get("rows"):
            printed, note = table(results[kind])
            console.print(printed)
            say(note)
    abstention = _table("abstentions (counted wrong)")
    for header in ("kind", "answers", "abstained", "%"):
        abstention.add_column(header, justify="left" if header == "kind" else "right")
    for kind, numbers in results["abstention"].items():
        if results[kind].get("rows"):
            abstention.add_row(kind, str(results[kind]["rows"]), str(numbers["count"]), _percent(numbers["rate"]))
    if abstention.row_count:
        console.print(abstention)


def _recognition_table(section: dict[str, Any]) -> tuple[Table, str]:
    table = _table(f"recognition, {section['rows']} rows")
    note = (f"unclear (no yes/no; counted wrong): {section['unclear']}, of which abstained {section['abstained']}; "
            f"skipped: {section['skipped']}\n")
    for header in ("", "rows", "correct", "accuracy %"):
        table.add_column(header, justify="left" if not header else "right")
    negative = section["negative"]
    for label, group in (("positives", section["positive"]), ("negatives", negative),
                         ("  same category", negative["same_category"]),
                         ("  other category", negative["other_category"]), ("  category unknown", negative["unknown"])):
        table.add_row(label, str(group["rows"]), str(group["correct"]), _percent(group["accuracy"]))
    table.add_row("balanced (mean of the two)", "", "", _percent(section["balanced_accuracy"]))
    table.add_row("all rows", str(section["rows"]), str(section["correct"]), _percent(section["accuracy"]))
    return table, note


def _caption_table(section: dict[str, Any]) -> tuple[Table, str]:
    absent = section["absent_names"]
    table = _table(f"caption names, {section['rows']} captions ({section['with_concepts']} with concepts)")
    note = (f"captions naming a database concept not in the image: {absent['captions']} "
            f"({_percent(absent['rate'])} %); abstained: {section['abstained']}; skipped: {section['skipped']}\n")
    table.add_column("mode", no_wrap=True)
    for header in ("P %", "R %", "F1 %", "correct", "MISS", "none", "total"):
        table.add_column(header, justify="right")
    for label in ("official", "strict"):
        scores = section[label]
        if scores is None:
            continue
        name = f"official ({scores['variant']})" if label == "official" else label
        table.add_row(name, *(_percent(scores[key]) for key in ("precision", "recall", "f1")),
                      *(str(scores[key]) for key in ("correct", "miss", "none", "total")))
    return table, note


def _choice_table(section: dict[str, Any]) -> tuple[Table, str]:
    table = _table(f"multiple choice, {section['rows']} rows")
    note = (f"options shown in a per-row order, answers mapped back; unparseable (no letter; counted wrong): "
            f"{section['unparseable']}, of which abstained {section['abstained']}; skipped: {section['skipped']}\n")
    for header in ("", "correct", "accuracy %"):
        table.add_column(header, justify="left" if not header else "right")
    table.add_row("model", str(section["correct"]), _percent(section["accuracy"]))
    prior = section["answer_prior"]
    for label, key in (("always {letter}, source's order", "source_order"),
                       ("always {letter}, order shown", "shown_order")):
        baseline = prior[key]
        table.add_row(label.format(letter=baseline["letter"]), str(baseline["correct"]), _percent(baseline["accuracy"]))
    return table, note


def _open_table(section: dict[str, Any]) -> tuple[Table, str]:
    table = _table(f"open questions, {section['rows']} rows")
    note = (f"normalised exact match; empty answers (never match): {section['empty_answers']}; abstained: "
            f"{section['abstained']}; skipped: {section['skipped']}\n")
    for header in ("", "correct", "accuracy %"):
        table.add_column(header, justify="left" if not header else "right")
    table.add_row("model", str(section["correct"]), _percent(section["accuracy"]))
    return table, note


def _table(title: str, caption: str | None = None) -> Table:
    return Table(title=title, caption=caption, box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f}"
