"""``repic merge``: fold a LoRA adapter into its base, save a standard model folder, and check it.

A thin layer over ``repic.models.merge.merge_adapter``: it parses the options, prints what was merged and a
table comparing the merged folder with base+adapter (largest logit difference, positions whose most likely
token differs, equal greedy answers, per check prompt and in all), and exits with status 1 when the check
fails, after saying why, so a script cannot ship a merge that lost what the adapter learned. The library
and torch are imported inside the command, so other ``repic`` commands start without paying for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from .console import console, err_console, say

if TYPE_CHECKING:
    from ..models.merge_check import MergeCheck


def merge_command(
    adapter: Annotated[
        Path,
        typer.Argument(
            help="The LoRA adapter folder (PEFT save_pretrained output: adapter_config.json + weights).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write the merged model to.", show_default=False)
    ],
    base: Annotated[
        str | None,
        typer.Option(
            "--base", help="Base model folder or hub id (default: the one adapter_config.json names)."
        ),
    ] = None,
    dtype: Annotated[
        str, typer.Option("--dtype", help="Dtype to save the merged weights in: float32, bf16 or fp16.")
    ] = "float32",
    merge_dtype: Annotated[
        str,
        typer.Option("--merge-dtype", help="Dtype to compute the merge in (bf16 reproduces a bf16 merge)."),
    ] = "float32",
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="Compare the merged folder with base+adapter.")
    ] = True,
    prompts: Annotated[
        Path | None,
        typer.Option(
            "--prompts",
            help='JSONL check prompts, one {"text": ..., "images": [...]} per line, images relative to the '
            "file (default: built-in captioning, yes/no and box prompts with drawn images).",
        ),
    ] = None,
    tolerance: Annotated[
        float | None, typer.Option("--tolerance", help="Largest allowed |logit difference| (default 0.01).")
    ] = None,
    max_new_tokens: Annotated[
        int | None,
        typer.Option("--max-new-tokens", help="Length of each greedy check answer, in tokens (default 32)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out folder.")] = False,
) -> None:
    """Merge a LoRA adapter into its base model and check the merged model against base+adapter."""
    from transformers.utils import logging

    from ..models.merge import DEFAULT_NEW_TOKENS, DEFAULT_TOLERANCE, RECORD_NAME, merge_adapter

    logging.disable_progress_bar()  # per-file loading bars would interleave with the report
    report = merge_adapter(
        adapter,
        out,
        base=base,
        dtype=dtype,
        merge_dtype=merge_dtype,
        check=check,
        check_prompts=prompts,
        tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance,
        max_new_tokens=DEFAULT_NEW_TOKENS if max_new_tokens is None else max_new_tokens,
        overwrite=overwrite,
    )
    say(
        f"merged {report.adapter} into {report.base} -> {report.out_dir} "
        f"(merged in {report.merge_dtype}, saved in {report.dtype}, {report.seconds:.1f} s)",
        style="bold",
    )
    weights = report.weights
    rounding = "n/a" if weights.rounding_error is None else f"{100 * weights.rounding_error:.2f} %"
    say(f"  LoRA layers merged: {weights.layers}; rounding next to the adapter's update: {rounding}")
    for note in report.notes:
        say(f"warning: {note}", style="yellow")
    say(f"  record: {Path(report.out_dir) / RECORD_NAME}")
    if report.check is None:
        say("no check run (--no-check)")
        return

    console.print(_check_table(report.check))
    if report.check.passed:
        say("check passed: the merged model matches base+adapter", style="bold green")
        for cause in report.check.causes:  # within the tolerance, but worth knowing where they come from
            say(f"  differences come from: {cause}")
        return
    err_console.print(
        Text.assemble(
            ("error:", "bold red"),
            " the merged model does not match base+adapter: ",
            "; ".join(report.check.failures),
            ". Likely cause: ",
            "; ".join(report.check.causes),
            f'. The folder was written with "passed": false in its {RECORD_NAME}.',
        ),
        soft_wrap=True,
    )
    raise typer.Exit(1)


def _check_table(check: MergeCheck) -> Table:
    """One row per check prompt and one for all of them."""
    table = Table(
        title="merged vs base+adapter",
        caption=f"logits compared along base+adapter's greedy answers; tolerance {check.tolerance:g}",
        box=box.SIMPLE,
    )
    table.add_column("prompt", no_wrap=True)
    for header in ("max |logit diff|", "argmax differs", "greedy equal"):
        table.add_column(header, justify="right")
    for prompt in check.prompts:
        table.add_row(
            prompt.label,
            f"{prompt.max_abs_logit_diff:.2e}",
            f"{prompt.argmax_mismatches} / {prompt.positions}",
            "yes" if prompt.greedy_equal else "NO",
        )
    positions = sum(prompt.positions for prompt in check.prompts)
    table.add_row(
        "all",
        f"{check.max_abs_logit_diff:.2e}",
        f"{check.argmax_mismatches} / {positions}",
        f"{check.greedy_equal} / {len(check.prompts)}",
        style="bold",
    )
    return table
