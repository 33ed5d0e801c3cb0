"""``repic eval judge A B``: an LLM judge's preference between two caption files; and the ``repic eval`` group.

``repic eval`` holds two commands: ``score`` (the default: ``repic eval FILE...`` scores prediction files,
``repic.cli.eval_cmd``) and ``judge`` (``repic.evaluate.judge``: position-swapped verdicts through any
OpenAI-compatible endpoint, with retries and a per-run cache). A first argument that names no command is
read as a file to score, so ``repic eval captions.json`` works as it always has.

``judge`` writes ``--out``: ``summary.json`` (counts, score, interval, settings), ``judgements.jsonl`` (both
answers per pair) and ``cache.jsonl`` (every answer by request; a second run into the same folder asks
nothing twice). It exits with status 1 when the judge gave no usable verdict on any pair.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from ..atomic import atomic_write_json, atomic_write_jsonl
from ..errors import RepicError
from ..outputs import check_output_folder
from . import eval_cmd, report_cmd
from .console import console, err_console, say

CACHE, SUMMARY, JUDGEMENTS = "cache.jsonl", "summary.json", "judgements.jsonl"


class _ScoreByDefault(TyperGroup):
    """``repic eval FILE...`` means ``repic eval score FILE...``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["score", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_ScoreByDefault, no_args_is_help=True,
    help="Score prediction files (repic eval FILE...), or compare two caption files with an LLM judge "
         "(repic eval judge A B).",
)
app.command("score")(eval_cmd.eval_command)
app.command("model")(report_cmd.eval_model_command)


@app.command("judge")
def judge_command(
    file_a: Annotated[Path, typer.Argument(help="Caption file A (official rows or repic JSONL).", show_default=False)],
    file_b: Annotated[Path, typer.Argument(help="Caption file B, for the same images.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="Folder for summary.json, judgements.jsonl, cache.jsonl.")],
    model: Annotated[str, typer.Option("--model", help="The judge model's name at the endpoint.")],
    base_url: Annotated[str | None, typer.Option(
        "--base-url", envvar="OPENAI_BASE_URL", help="The OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1.",
        show_default=False)] = None,
    api_key_env: Annotated[str, typer.Option(
        "--api-key-env", help="The environment variable that holds the endpoint's API key.")] = "OPENAI_API_KEY",
    image_root: Annotated[Path | None, typer.Option(
        "--image-root", help="Folder the rows' image paths start from (default: file A's folder).")] = None,
    no_images: Annotated[bool, typer.Option("--no-images", help="Send the captions without the image.")] = False,
    temperature: Annotated[float, typer.Option("--temperature", help="The judge's sampling temperature.")] = 0.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Tokens of the judge's answer.")] = 8,
    retries: Annotated[int, typer.Option("--retries", help="Retries of a failed request.")] = 3,
    workers: Annotated[int, typer.Option("--workers", help="Requests in flight at once.")] = 4,
    limit: Annotated[int | None, typer.Option("--limit", help="Judge only the first N pairs.")] = None,
) -> None:
    """Compare two caption files for the same images with an LLM judge (position-swapped, cached)."""
    from ..evaluate.judge import ChatJudge, JudgeCache, judge_pairs, read_pairs, resolve_images, summarize

    if base_url is None:
        raise RepicError("give the judge's endpoint with --base-url (or OPENAI_BASE_URL), e.g. http://127.0.0.1:8000/v1")
    if retries < 0 or workers < 1 or max_tokens < 1:
        raise RepicError("--retries must be >= 0, --workers and --max-tokens >= 1")
    check_output_folder(out, marker=CACHE, inputs=[file_a, file_b], overwrite=True)
    pairs = read_pairs(file_a, file_b)
    pairs = pairs[:limit] if limit is not None else pairs
    images = None if no_images else resolve_images(pairs, image_root or file_a.parent)
    out.mkdir(parents=True, exist_ok=True)
    cache = JudgeCache(out / CACHE)
    reused = len(cache.answers)
    judge = ChatJudge(base_url, model, api_key=os.environ.get(api_key_env), temperature=temperature,
                      max_tokens=max_tokens, retries=retries, cache=cache)
    say(f"judging {len(pairs)} pairs twice each (positions swapped) with {model} at {base_url}"
         + (f"; {reused} answers cached" if reused else ""))
    judgements = judge_pairs(pairs, judge, images=images, workers=workers)
    summary = summarize(judgements)
    record = {"file_a": str(file_a), "file_b": str(file_b), "model": model, "base_url": base_url,
              "images": not no_images, "temperature": temperature, "pairs": len(pairs),
              "wins": summary.wins, "ties": summary.ties, "losses": summary.losses, "invalid": summary.invalid,
              "score": summary.score, "ci95": [summary.low, summary.high], "consistency": summary.consistency,
              "requests": judge.requests}
    atomic_write_jsonl(out / JUDGEMENTS, [judgement.to_json() for judgement in judgements])
    atomic_write_json(out / SUMMARY, record)
    _report(file_a, file_b, summary, judge.requests, out)
    if not summary.judged:
        example = next((j.answer_ab for j in judgements if j.answer_ab), "")
        err_console.print(Text(
            f"error: the judge gave no usable verdict (A, B or tie) on any of the {len(pairs)} pairs, e.g. "
            f"{example[:80]!r}; use a model that follows the instruction (see {out / JUDGEMENTS})", style="red"),
            soft_wrap=True)
        raise typer.Exit(1)


def _report(file_a: Path, file_b: Path, summary, requests: int, out: Path) -> None:
    table = Table(title=f"A = {file_a}  vs  B = {file_b}")
    for column in ("A wins", "ties", "B wins", "invalid", "score of A (95% CI)", "consistency"):
        table.add_column(column, justify="right")
    score = "n/a" if summary.score is None else f"{summary.score:.3f} [{summary.low:.3f}, {summary.high:.3f}]"
    consistency = "n/a" if summary.consistency is None else f"{summary.consistency:.0%}"
    table.add_row(str(summary.wins), str(summary.ties), str(summary.losses), str(summary.invalid), score, consistency)
    console.print(table)
    say(f"{requests} requests to the judge; wrote {out / SUMMARY} and {out / JUDGEMENTS}")

