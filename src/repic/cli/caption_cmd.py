"""``repic caption``: personalized captions (and OCT / VLT answers) for images or an evaluation file.

Parses options, reads the queries (``repic.inference.queries``), opens the concept database and, when
some query needs retrieval, its index (``repic.concepts.retrieve.open_retriever``), loads the model
(``repic.inference.load_for_captioning``), runs the batched ``Captioner`` under a progress bar and writes
``captions.json`` / ``captions.jsonl`` / ``answers.jsonl`` / ``summary.json``
(``repic.inference.write_outputs``). Inputs are checked before the model loads, so a wrong path fails in
a second, not after loading 15 GB. Existing outputs in ``--out`` are replaced only with ``--overwrite``.
torch and transformers are imported inside the command, so other ``repic`` commands start fast.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from ..concepts.database import ConceptDatabase, load_database
from ..errors import RepicError
from ..inference.caption import (
    ANSWERS_JSONL,
    CAPTIONS_JSON,
    CAPTIONS_JSONL,
    MODES,
    SUMMARY_JSON,
    caption_mode,
)
from ..inference.generate import CACHES, BatchDone, GenerationSettings
from ..inference.inputs import check_text
from ..inference.queries import Query, image_queries, read_eval_file
from ..outputs import check_output_file
from ..prompts import BOX_STYLES
from .console import err_console, say
from .options import DatabaseImageRootOpt, MaxNewTokensOpt

_SHOWN_SKIPS = 5
_DEFAULTS = GenerationSettings()  # one place for the generation defaults


def caption_command(
    model: Annotated[
        str,
        typer.Argument(help="A model folder or hub id, a merged checkpoint, or a LoRA adapter folder.", show_default=False),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for the outputs.", show_default=False)],
    eval_file: Annotated[
        Path | None,
        typer.Option("--eval", help="An evaluation file: caption rows (eval/single.jsonl ...), OCT / VLT samples, "
                     "or an official RePIC query file."),
    ] = None,
    images: Annotated[
        list[Path] | None,
        typer.Option("--images", help="Query image files or folders (repeat the option for several)."),
    ] = None,
    database: Annotated[
        Path | None,
        typer.Option("--database", help="The concept database.json (default for --eval: database.json beside it)."),
    ] = None,
    database_image_root: DatabaseImageRootOpt = None,
    mode: Annotated[
        str,
        typer.Option("--mode", metavar="auto|given|retrieve",
                     help="given: show the concepts each query comes with (an evaluation row's, or --concepts; "
                     "'skip' is accepted as its older name); retrieve: choose the top-K by image similarity; "
                     "auto: given when a query has concepts, else retrieve."),
    ] = "auto",
    concepts: Annotated[
        list[str] | None,
        typer.Option("--concepts", help="Concepts in the --images queries: repeat, or separate with commas "
                     "(bo,kim). Skips retrieval in auto mode."),
    ] = None,
    question: Annotated[
        str | None,
        typer.Option("--question", help="Caption question for --images (default: the first official one). "
                     "Concepts it names are always shown."),
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Concepts to retrieve per query.")] = 2,
    embedder: Annotated[
        str,
        typer.Option("--embedder", help="Retrieval embedder: 'builtin' (offline colour embedder), "
                     "'tower:MODEL_DIR' (a Qwen-VL-family model's own vision tokens) or a CLIP / "
                     "SigLIP hub id or folder (official: openai/clip-vit-large-patch14-336)."),
    ] = "builtin",
    detector: Annotated[
        str | None,
        typer.Option("--detector", help="Open-vocabulary detector for crops (OWLv2 or Grounding DINO id or "
                     "folder); none by default."),
    ] = None,
    grid_crops: Annotated[
        bool, typer.Option("--grid-crops/--no-grid-crops", help="Also retrieve with nine grid crops of the query.")
    ] = True,
    index: Annotated[
        Path | None,
        typer.Option("--index", help="Where the retrieval index lives (default: beside the database)."),
    ] = None,
    rebuild_index: Annotated[bool, typer.Option("--rebuild-index", help="Rebuild the index even if current.")] = False,
    image_root: Annotated[
        Path | None, typer.Option("--image-root", help="Folder the evaluation file's image paths start from.")
    ] = None,
    base: Annotated[
        str | None, typer.Option("--base", help="Base model of a LoRA adapter (default: from adapter_config.json).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Queries per generate call.")] = _DEFAULTS.batch_size,
    max_new_tokens: MaxNewTokensOpt = _DEFAULTS.max_new_tokens,
    sample: Annotated[bool, typer.Option("--sample", help="Sample instead of greedy decoding.")] = False,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature.")] = _DEFAULTS.temperature,
    top_p: Annotated[float, typer.Option("--top-p", help="Sampling nucleus.")] = _DEFAULTS.top_p,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed.")] = _DEFAULTS.seed,
    cache: Annotated[
        str, typer.Option("--cache", metavar="auto|dynamic|static",
                          help="KV cache; auto: static with compiled decoding on CUDA, dynamic elsewhere.")
    ] = _DEFAULTS.cache,
    max_pixels: Annotated[
        int | None,
        typer.Option("--max-pixels", help="Per-image pixel budget; larger images are resized "
                     "(default: the processor's, at most 802816 = 1024*28*28 as the official scripts)."),
    ] = None,
    box_style: Annotated[
        str | None, typer.Option("--box-style", metavar="json|list", show_default=False,
                                 help="VLT answer instruction (default: the style the model was trained with, "
                                      "recorded by `repic train`; else json, the official one).")
    ] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="auto (bf16 on GPU, fp32 on CPU), bf16, fp16, fp32.")] = "auto",
    attn: Annotated[
        str, typer.Option("--attn", metavar="sdpa|eager|flash_attention_2",
                          help="Attention implementation; flash_attention_2 (flash-attn installed) speeds up "
                          "Qwen2.5-VL's vision tower on GPUs.")
    ] = "sdpa",
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    threads: Annotated[
        int | None,
        typer.Option("--threads", help="CPU threads for torch (default: torch's). On a busy machine or for a "
                     "small model, 1 is often fastest."),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N queries.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace outputs already in --out.")] = False,
) -> None:
    """Write personalized captions (and OCT / VLT answers) that `repic eval` scores."""
    from ..inference.caption import Captioner, load_for_captioning, trained_box_style, write_outputs

    if question is not None:  # a control token would break every batch it shares: refused before the model loads
        check_text(question, what="--question")
    try:
        mode = caption_mode(mode)
    except RepicError:
        raise RepicError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}") from None
    if cache not in CACHES:
        raise RepicError(f"--cache must be one of {', '.join(CACHES)}, not {cache!r}")
    if box_style is not None and box_style not in BOX_STYLES:
        raise RepicError(f"--box-style must be one of {', '.join(BOX_STYLES)}, not {box_style!r}")
    if limit is not None and limit < 1:
        raise RepicError(f"--limit must be at least 1 (got {limit})")
    if threads is not None:
        if threads < 1:
            raise RepicError(f"--threads must be at least 1 (got {threads})")
        import torch

        torch.set_num_threads(threads)
    settings = GenerationSettings(
        max_new_tokens=max_new_tokens, batch_size=batch_size, do_sample=sample, temperature=temperature,
        top_p=top_p, seed=seed, cache=cache,
    )
    existing = _existing_outputs(out, overwrite, inputs=[eval_file, database])
    queries = _queries(eval_file, images, concepts, question, image_root)[:limit]
    db = _database(database, eval_file, database_image_root)
    if db is not None:  # its reference images, before the model loads (the captioner checks them too)
        from ..concepts.index import check_database

        check_database(db)
    _check_concepts(queries, db, mode)
    retriever, index_info = None, None
    if _needs_retrieval(queries, mode):
        if db is None:
            raise RepicError("retrieval needs a concept database: pass --database, or give --concepts")
        from ..concepts.retrieve import open_retriever

        retriever, opened = open_retriever(
            db, embedder=embedder, k=top_k, use_grid_crops=grid_crops, detector=detector, index_path=index,
            rebuild_index=rebuild_index, device=_retrieval_device(device),
        )
        index_info = {"path": str(opened.path) if opened.path else None, "rebuilt": opened.rebuilt,
                      "reason": opened.reason, "embedder": opened.index.embedder_id}
        say(f"index: {'built' if opened.rebuilt else 'reused'} ({opened.reason}), {len(opened.index.tags)} "
             f"reference images of {len(opened.index.concepts)} concepts")

    policy = load_for_captioning(
        model, base=base, dtype=dtype, device=device, max_pixels=max_pixels, attn_implementation=attn
    )
    captioner = Captioner(policy.model, policy.processor, database=db, retriever=retriever, settings=settings,
                          box_style=box_style or trained_box_style(model) or "json")
    run = _run_with_progress(captioner, queries, mode)
    summary = {
        "model": policy.info.to_dict(),
        "database": str(db.path) if db is not None and db.path else None,
        "inputs": str(eval_file) if eval_file is not None else [str(p) for p in images or []],
        "mode": mode,
        "top_k": top_k if retriever is not None else None,
        "index": index_info,
        "generation": asdict(settings),
        "queries": len(queries),
    }
    written = write_outputs(out, run, summary)
    for name in existing:  # a previous run's file of a kind this run did not write would look like its own
        if name not in written:
            (out / name).unlink()
    _report(run, written)
    if not run.results:  # nothing captioned is a failure, so scripts notice
        err_console.print(Text(f"error: no query could be answered: all {len(run.skipped)} were skipped (reasons above, "
                        f"and in {written[SUMMARY_JSON]}); fix the inputs and run again", style="bold red"),
                   soft_wrap=True)
        raise typer.Exit(1)


def _existing_outputs(out: Path, overwrite: bool, inputs: list[Path | None]) -> list[str]:
    """Output files already in ``out``; an error unless ``overwrite``, or when one is an input or unwritable."""
    if out.exists() and not out.is_dir():
        raise RepicError(f"{out} is a file; --out takes a folder for the outputs")
    names = (CAPTIONS_JSON, CAPTIONS_JSONL, ANSWERS_JSONL, SUMMARY_JSON)
    for name in names:  # before the model loads: a late refusal would cost every answer generated
        check_output_file(out / name, inputs=inputs, overwrite=True, option="output")
    existing = [name for name in names if (out / name).exists()]
    if existing and not overwrite:
        raise RepicError(f"{out} already holds {', '.join(existing)}; pass --overwrite or choose another --out")
    return existing


def _check_concepts(queries: list[Query], db: ConceptDatabase | None, mode: str) -> None:
    """Every concept a prompt will show must be in the database, checked before the model loads."""
    if mode == "retrieve":  # the prompts show retrieved concepts, which come from the database
        return
    named = sorted({tag for query in queries if query.references is None for tag in query.concepts})
    if not named:
        return
    if db is None:
        raise RepicError(f"each prompt needs the Info of {', '.join(named)} from a concept database; pass --database")
    for tag in named:
        db.get(tag)  # an unknown tag raises, naming close matches


def _queries(eval_file, images, concepts, question, image_root) -> list[Query]:
    if (eval_file is None) == (not images):
        raise RepicError("give either --eval FILE or --images PATH (one of the two)")
    if eval_file is not None:
        if concepts or question:
            raise RepicError("--concepts and --question are for --images; an evaluation file brings its own")
        return read_eval_file(eval_file, image_root)
    missing = [str(path) for path in images if not Path(path).expanduser().exists()]
    if missing:
        raise RepicError(f"--images {', '.join(missing)}: not found; give existing image files or folders")
    tags = [tag.strip() for value in concepts or [] for tag in value.split(",") if tag.strip()]
    return image_queries(list(images), question=question, concepts=tags)


def _database(database: Path | None, eval_file: Path | None, image_root: Path | None) -> ConceptDatabase | None:
    if database is None and eval_file is not None and (eval_file.parent / "database.json").is_file():
        database = eval_file.parent / "database.json"
    if database is None:
        if image_root is not None:
            raise RepicError("--database-image-root is for the concept database; pass --database too")
        return None
    return load_database(database, image_root)


def _needs_retrieval(queries: list[Query], mode: str) -> bool:
    captions = [query for query in queries if query.is_caption]
    if mode == "retrieve":
        return bool(captions)
    return mode == "auto" and any(not query.concepts and query.references is None for query in captions)


def _run_with_progress(captioner, queries: list[Query], mode: str):
    columns = (
        TextColumn("[bold]captioning"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task("captioning", total=len(queries), rate="")
        elapsed = [0.0]

        def advance(done: BatchDone) -> None:
            elapsed[0] += done.batch_seconds
            progress.update(task, completed=done.done, rate=f"{done.done / max(elapsed[0], 1e-9):.1f} captions/s")

        run = captioner.run(queries, mode=mode, on_batch=advance)
        progress.update(task, completed=len(queries))
    return run


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


def _retrieval_device(device: str) -> str:
    """The embedder's and detector's device: the captioning device (a CLIP ViT-L on a CPU is slow)."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
