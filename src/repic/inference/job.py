"""What ``repic caption`` does, as a library call: queries in, a folder of captions and answers out.

``caption_job(CaptionJob(model, out, images=[...], database=...))`` reads the queries (an evaluation file or
image files; ``repic.inference.queries``), opens the concept database and, when a query needs retrieval,
its index (``repic.concepts.retrieve.open_retriever``), loads the model, answers every query in batches
(``Captioner``) and writes ``captions.json`` / ``captions.jsonl`` / ``answers.jsonl`` / ``summary.json``
(``write_outputs``). It runs in two steps, ``prepare_job`` and ``run_job``, so a caller can show progress
against the number of queries. Every input is checked in ``prepare_job``, before the model loads: a wrong
path fails in a second, not after loading 15 GB. Outputs already in ``out`` are replaced only with
``overwrite``; a kind of file this run did not write is removed then, so it cannot pass for this run's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..concepts.database import ConceptDatabase, load_database
from ..errors import RepicError
from ..outputs import check_output_file
from ..prompts import BOX_STYLES
from .caption import (
    ANSWERS_JSONL,
    CAPTIONS_JSON,
    CAPTIONS_JSONL,
    MODES,
    SUMMARY_JSON,
    CaptionRun,
    caption_mode,
)
from .generate import BatchDone, GenerationSettings
from .inputs import check_text
from .queries import Query, image_queries, read_eval_file

OUTPUT_FILES = (CAPTIONS_JSON, CAPTIONS_JSONL, ANSWERS_JSONL, SUMMARY_JSON)


@dataclass(frozen=True)
class CaptionJob:
    """One ``repic caption`` run: the model, the queries (``eval_file`` or ``images``) and how to answer."""

    model: str
    out: Path
    eval_file: Path | None = None
    images: Sequence[Path] = ()
    database: Path | None = None
    database_image_root: Path | None = None
    mode: str = "auto"
    concepts: Sequence[str] = ()  # of the ``images`` queries: tags, or comma-separated lists of them
    question: str | None = None
    top_k: int = 2
    embedder: str = "builtin"
    detector: str | None = None
    grid_crops: bool = True
    index: Path | None = None
    rebuild_index: bool = False
    image_root: Path | None = None  # where the evaluation file's image paths start
    base: str | None = None
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    max_pixels: int | None = None
    box_style: str | None = None  # None: the style the model's training recorded, else json
    dtype: str = "auto"
    attn: str = "sdpa"
    device: str = "auto"
    limit: int | None = None
    overwrite: bool = False


@dataclass
class PreparedJob:
    """A job whose inputs were checked: its queries, database and retriever; the model is not loaded yet."""

    job: CaptionJob
    mode: str
    queries: list[Query]
    database: ConceptDatabase | None
    retriever: Any
    index_info: dict[str, Any] | None
    existing: list[str]


@dataclass
class CaptionOutcome:
    """What a job answered and skipped (``run``) and the files it wrote."""

    run: CaptionRun
    written: dict[str, Path]


def caption_job(job: CaptionJob, *, on_batch: Callable[[BatchDone], None] | None = None) -> CaptionOutcome:
    """Run ``job`` end to end (see the module)."""
    return run_job(prepare_job(job), on_batch=on_batch)


def prepare_job(job: CaptionJob) -> PreparedJob:
    """Check every input of ``job`` and open what it needs, before any model loads."""
    if job.question is not None:  # a control token would break every batch it shares
        check_text(job.question, what="--question")
    try:
        mode = caption_mode(job.mode)
    except RepicError:
        raise RepicError(f"--mode must be one of {', '.join(MODES)}, not {job.mode!r}") from None
    if job.box_style is not None and job.box_style not in BOX_STYLES:
        raise RepicError(f"--box-style must be one of {', '.join(BOX_STYLES)}, not {job.box_style!r}")
    if job.limit is not None and job.limit < 1:
        raise RepicError(f"--limit must be at least 1 (got {job.limit})")
    existing = _existing_outputs(job.out, job.overwrite, inputs=[job.eval_file, job.database])
    queries = _queries(job)[: job.limit]
    database = _database(job)
    if database is not None:  # its reference images, before the model loads (the captioner checks them too)
        from ..concepts.index import check_database

        check_database(database)
    _check_concepts(queries, database, mode)
    retriever, index_info = None, None
    if _needs_retrieval(queries, mode):
        if database is None:
            raise RepicError("retrieval needs a concept database: pass --database, or give --concepts")
        from ..concepts.retrieve import open_retriever

        retriever, opened = open_retriever(
            database, embedder=job.embedder, k=job.top_k, use_grid_crops=job.grid_crops, detector=job.detector,
            index_path=job.index, rebuild_index=job.rebuild_index, device=_retrieval_device(job.device),
        )
        index_info = {"path": str(opened.path) if opened.path else None, "rebuilt": opened.rebuilt,
                      "reason": opened.reason, "embedder": opened.index.embedder_id,
                      "images": len(opened.index.tags), "concepts": len(opened.index.concepts)}
    return PreparedJob(job, mode, queries, database, retriever, index_info, existing)


def run_job(prepared: PreparedJob, *, on_batch: Callable[[BatchDone], None] | None = None) -> CaptionOutcome:
    """Load the model, answer the prepared queries, write the outputs."""
    from .caption import Captioner, load_for_captioning, trained_box_style, write_outputs

    job = prepared.job
    policy = load_for_captioning(job.model, base=job.base, dtype=job.dtype, device=job.device,
                                 max_pixels=job.max_pixels, attn_implementation=job.attn)
    captioner = Captioner(policy.model, policy.processor, database=prepared.database, retriever=prepared.retriever,
                          settings=job.generation, box_style=job.box_style or trained_box_style(job.model) or "json")
    run = captioner.run(prepared.queries, mode=prepared.mode, on_batch=on_batch)
    database = prepared.database
    summary = {
        "model": policy.info.to_dict(),
        "database": str(database.path) if database is not None and database.path else None,
        "inputs": str(job.eval_file) if job.eval_file is not None else [str(path) for path in job.images],
        "mode": prepared.mode,
        "top_k": job.top_k if prepared.retriever is not None else None,
        "index": prepared.index_info,
        "generation": asdict(job.generation),
        "queries": len(prepared.queries),
    }
    written = write_outputs(job.out, run, summary)
    for name in prepared.existing:  # a previous run's file of a kind this run did not write
        if name not in written:
            (job.out / name).unlink()
    return CaptionOutcome(run, written)


def _existing_outputs(out: Path, overwrite: bool, inputs: list[Path | None]) -> list[str]:
    """Output files already in ``out``; an error unless ``overwrite``, or when one is an input or unwritable."""
    if out.exists() and not out.is_dir():
        raise RepicError(f"{out} is a file; --out takes a folder for the outputs")
    for name in OUTPUT_FILES:  # before the model loads: a late refusal would cost every answer generated
        check_output_file(out / name, inputs=inputs, overwrite=True, option="output")
    existing = [name for name in OUTPUT_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise RepicError(f"{out} already holds {', '.join(existing)}; pass --overwrite or choose another --out")
    return existing


def _check_concepts(queries: list[Query], database: ConceptDatabase | None, mode: str) -> None:
    """Every concept a prompt will show must be in the database, checked before the model loads."""
    if mode == "retrieve":  # the prompts show retrieved concepts, which come from the database
        return
    named = sorted({tag for query in queries if query.references is None for tag in query.concepts})
    if not named:
        return
    if database is None:
        raise RepicError(f"each prompt needs the Info of {', '.join(named)} from a concept database; pass --database")
    for tag in named:
        database.get(tag)  # an unknown tag raises, naming close matches


def _queries(job: CaptionJob) -> list[Query]:
    images = list(job.images)
    if (job.eval_file is None) == (not images):
        raise RepicError("give either --eval FILE or --images PATH (one of the two)")
    if job.eval_file is not None:
        if job.concepts or job.question:
            raise RepicError("--concepts and --question are for --images; an evaluation file brings its own")
        return read_eval_file(job.eval_file, job.image_root)
    missing = [str(path) for path in images if not Path(path).expanduser().exists()]
    if missing:
        raise RepicError(f"--images {', '.join(missing)}: not found; give existing image files or folders")
    tags = [tag.strip() for value in job.concepts for tag in value.split(",") if tag.strip()]
    return image_queries(images, question=job.question, concepts=tags)


def _database(job: CaptionJob) -> ConceptDatabase | None:
    database = job.database
    if database is None and job.eval_file is not None and (job.eval_file.parent / "database.json").is_file():
        database = job.eval_file.parent / "database.json"
    if database is None:
        if job.database_image_root is not None:
            raise RepicError("--database-image-root is for the concept database; pass --database too")
        return None
    return load_database(database, job.database_image_root)


def _needs_retrieval(queries: list[Query], mode: str) -> bool:
    captions = [query for query in queries if query.is_caption]
    if mode == "retrieve":
        return bool(captions)
    return mode == "auto" and any(not query.concepts and query.references is None for query in captions)


def _retrieval_device(device: str) -> str:
    """The embedder's and detector's device: the captioning device (a CLIP ViT-L on a CPU is slow)."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
