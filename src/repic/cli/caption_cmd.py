"""``repic caption``: personalized captions (and OCT / VLT answers) for images or an evaluation file.

The command parses options into a ``repic.inference.job.CaptionJob`` and runs it (``prepare_job``: every
input checked before the model loads; ``run_job``: the batched ``Captioner`` under a progress bar, the
outputs written), then says what it wrote and how to score it. torch and transformers are imported inside
the job, so other ``repic`` commands start fast.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from ..errors import RepicError
from ..inference.caption import ANSWERS_JSONL, CAPTIONS_JSON, SUMMARY_JSON
from ..inference.generate import CACHES, BatchDone, GenerationSettings
from ..inference.job import CaptionJob, prepare_job, run_job
from .console import err_console, say
from .options import DatabaseImageRootOpt, MaxNewTokensOpt

_SHOWN_SKIPS = 5
_DEFAULTS = GenerationSettings()  # one place for the generation defaults

ModelArg = Annotated[str, typer.Argument(
    help="A model folder or hub id, a merged checkpoint, a LoRA adapter folder, tiny-repic or tiny-base.",
    show_default=False)]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for the outputs.", show_default=False)]
EvalOpt = Annotated[Path | None, typer.Option(
    "--eval", help="An evaluation file: caption rows (eval/single.jsonl ...), OCT / VLT samples, or an official "
                   "RePIC query file.")]
ImagesOpt = Annotated[list[Path] | None, typer.Option(
    "--images", help="Query image files or folders (repeat the option for several).")]
DatabaseOpt = Annotated[Path | None, typer.Option(
    "--database", help="The concept database.json (default for --eval: database.json beside it).")]
ModeOpt = Annotated[str, typer.Option(
    "--mode", metavar="auto|given|retrieve",
    help="given: show the concepts each query comes with (an evaluation row's, or --concepts; 'skip' is accepted "
         "as its older name); retrieve: choose the top-K by image similarity; auto: given when a query has "
         "concepts, else retrieve.")]
ConceptsOpt = Annotated[list[str] | None, typer.Option(
    "--concepts", help="Concepts in the --images queries: repeat, or separate with commas (bo,kim). Skips "
                       "retrieval in auto mode.")]
QuestionOpt = Annotated[str | None, typer.Option(
    "--question", help="Caption question for --images (default: the first official one). Concepts it names are "
                       "always shown.")]
TopKOpt = Annotated[int, typer.Option("--top-k", help="Concepts to retrieve per query.")]
EmbedderOpt = Annotated[str, typer.Option(
    "--embedder", help="Retrieval embedder: 'builtin' (offline colour embedder), 'tower:MODEL_DIR' (a Qwen-VL-family "
                       "model's own vision tokens) or a CLIP / SigLIP hub id or folder (official: "
                       "openai/clip-vit-large-patch14-336).")]
DetectorOpt = Annotated[str | None, typer.Option(
    "--detector", help="Open-vocabulary detector for crops (OWLv2 or Grounding DINO id or folder); none by default.")]
GridOpt = Annotated[bool, typer.Option("--grid-crops/--no-grid-crops",
                                       help="Also retrieve with nine grid crops of the query.")]
IndexOpt = Annotated[Path | None, typer.Option(
    "--index", help="Where the retrieval index lives (default: beside the database).")]
RebuildOpt = Annotated[bool, typer.Option("--rebuild-index", help="Rebuild the index even if current.")]
ImageRootOpt = Annotated[Path | None, typer.Option(
    "--image-root", help="Folder the evaluation file's image paths start from.")]
BaseOpt = Annotated[str | None, typer.Option(
    "--base", help="Base model of a LoRA adapter (default: from adapter_config.json).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Queries per generate call.")]
SampleOpt = Annotated[bool, typer.Option("--sample", help="Sample instead of greedy decoding.")]
TemperatureOpt = Annotated[float, typer.Option("--temperature", help="Sampling temperature.")]
TopPOpt = Annotated[float, typer.Option("--top-p", help="Sampling nucleus.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Sampling seed.")]
CacheOpt = Annotated[str, typer.Option(
    "--cache", metavar="auto|dynamic|static",
    help="KV cache; auto: static with compiled decoding on CUDA, dynamic elsewhere.")]
PixelsOpt = Annotated[int | None, typer.Option(
    "--max-pixels", help="Per-image pixel budget; larger images are resized (default: the processor's, at most "
                         "802816 = 1024*28*28 as the official scripts).")]
BoxStyleOpt = Annotated[str | None, typer.Option(
    "--box-style", metavar="json|list", show_default=False,
    help="VLT answer instruction (default: the style the model was trained with, recorded by `repic train`; else "
         "json, the official one).")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto (bf16 on GPU, fp32 on CPU), bf16, fp16, fp32.")]
AttnOpt = Annotated[str, typer.Option(
    "--attn", metavar="sdpa|eager|flash_attention_2",
    help="Attention implementation; flash_attention_2 (flash-attn installed) speeds up Qwen2.5-VL's vision tower "
         "on GPUs.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1 ...")]
ThreadsOpt = Annotated[int | None, typer.Option(
    "--threads", help="CPU threads for torch (default: torch's). On a busy machine or for a small model, 1 is "
                      "often fastest.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="Only the first N queries.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace outputs already in --out.")]


def caption_command(
    model: ModelArg, out: OutOpt, eval_file: EvalOpt = None, images: ImagesOpt = None, database: DatabaseOpt = None,
    database_image_root: DatabaseImageRootOpt = None, mode: ModeOpt = "auto", concepts: ConceptsOpt = None,
    question: QuestionOpt = None, top_k: TopKOpt = 2, embedder: EmbedderOpt = "builtin", detector: DetectorOpt = None,
    grid_crops: GridOpt = True, index: IndexOpt = None, rebuild_index: RebuildOpt = False,
    image_root: ImageRootOpt = None, base: BaseOpt = None, batch_size: BatchOpt = _DEFAULTS.batch_size,
    max_new_tokens: MaxNewTokensOpt = _DEFAULTS.max_new_tokens, sample: SampleOpt = False,
    temperature: TemperatureOpt = _DEFAULTS.temperature, top_p: TopPOpt = _DEFAULTS.top_p, seed: SeedOpt = _DEFAULTS.seed,
    cache: CacheOpt = _DEFAULTS.cache, max_pixels: PixelsOpt = None, box_style: BoxStyleOpt = None,
    dtype: DtypeOpt = "auto", attn: AttnOpt = "sdpa", device: DeviceOpt = "auto", threads: ThreadsOpt = None,
    limit: LimitOpt = None, overwrite: OverwriteOpt = False,
) -> None:
    """Write personalized captions (and OCT / VLT answers) that `repic eval` scores."""
    if cache not in CACHES:
        raise RepicError(f"--cache must be one of {', '.join(CACHES)}, not {cache!r}")
    if threads is not None:
        if threads < 1:
            raise RepicError(f"--threads must be at least 1 (got {threads})")
        import torch

        torch.set_num_threads(threads)
    generation = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size, do_sample=sample,
                                    temperature=temperature, top_p=top_p, seed=seed, cache=cache)
    prepared = prepare_job(CaptionJob(
        model, out, eval_file, images or [], database, database_image_root, mode, concepts or [], question, top_k,
        embedder, detector, grid_crops, index, rebuild_index, image_root, base, generation, max_pixels, box_style,
        dtype, attn, device, limit, overwrite))
    if prepared.index_info is not None:
        info = prepared.index_info
        say(f"index: {'built' if info['rebuilt'] else 'reused'} ({info['reason']}), {info['images']} reference "
            f"images of {info['concepts']} concepts")
    with _progress_bar(len(prepared.queries)) as advance:
        outcome = run_job(prepared, on_batch=advance)
    _report(outcome.run, outcome.written)
    if not outcome.run.results:  # nothing captioned is a failure, so scripts notice
        err_console.print(Text(f"error: no query could be answered: all {len(outcome.run.skipped)} were skipped "
                               f"(reasons above, and in {outcome.written[SUMMARY_JSON]}); fix the inputs and run "
                               "again", style="bold red"), soft_wrap=True)
        raise typer.Exit(1)


@contextmanager
def _progress_bar(total: int):
    """A captioning progress bar on stderr; yields the ``on_batch`` callback that advances it."""
    columns = (
        TextColumn("[bold]captioning"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task("captioning", total=total, rate="")
        elapsed = [0.0]

        def advance(done: BatchDone) -> None:
            elapsed[0] += done.batch_seconds
            progress.update(task, completed=done.done, rate=f"{done.done / max(elapsed[0], 1e-9):.1f} captions/s")

        yield advance
        progress.update(task, completed=total)


def _report(run, written: dict[str, Path]) -> None:
    from ..inference.caption import run_summary

    numbers: dict[str, Any] = run_summary(run)
    speed = numbers["answers_per_second"]
    say(f"answered {numbers['answered']} queries, skipped {numbers['skipped']}"
         + (f"; {speed:.2f} answers/s, {numbers['tokens_per_second']} tokens/s" if speed else ""))
    if numbers["retrieval_recall"] is not None:
        say(f"retrieval found {numbers['retrieval_recall']:.1%} of the true concepts")
    for skipped in run.skipped[:_SHOWN_SKIPS]:
        err_console.print(Text(f"skipped {skipped.query.where}: {skipped.reason}", style="yellow"), soft_wrap=True)
    if len(run.skipped) > _SHOWN_SKIPS:
        err_console.print(Text(f"... and {len(run.skipped) - _SHOWN_SKIPS} more (see summary.json)", style="yellow"))
    for path in written.values():
        say(f"wrote {path}")
    # Only files with truth are worth scoring: captions of unlabeled images record no true concepts.
    labeled = any(result.query.is_caption and result.query.concepts for result in run.results)
    scored = [str(written[name]) for name in (CAPTIONS_JSON, ANSWERS_JSONL)
              if name in written and (labeled or name != CAPTIONS_JSON)]
    if scored:
        say(f"score with `repic eval {' '.join(scored)}`")
    if CAPTIONS_JSON in written and not labeled:
        say("the images came without their concepts, so the captions have nothing to be scored against "
            "(give --concepts, or caption an evaluation file with --eval)")
