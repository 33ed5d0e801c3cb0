"""Personalized captioning as a library: a loaded policy and queries in, captions (or OCT / VLT answers) out.

``load_for_captioning(model)`` loads a base model, a merged checkpoint, or a LoRA adapter folder (base from
its ``adapter_config.json`` or ``base=``). ``Captioner(model, processor, ...)`` turns ``Query`` records
(``repic.inference.queries``) into prompts and answers them in batches (``repic.inference.generate``);
``write_outputs`` writes what ``repic eval`` scores. What it chose and why:

- **Prompt layouts** come from ``repic.prompts``: captions in the RAP / RePIC inference layout, OCT and VLT
  rows exactly as RePIC trains them, so each is measured in the form the policy learned.
- **Modes** for caption queries: ``"given"`` (the paper's *skip-retrieval*; ``"skip"`` is its older name)
  shows the concepts the query comes with, ``"retrieve"`` the top-K concepts a ``Retriever`` picks, and
  ``"auto"`` skips retrieval exactly when the query has concepts.
- **Truth** is only what the query's source says is in the image: a photo captioned with retrieved concepts
  records ``"concepts": []``, so ``repic eval`` cannot score retrieval against itself.
- **Robustness**: a query whose image, reference image or question cannot be used is skipped with its
  reason and counted; the run goes on.
- **LoRA adapters are merged** into the base after loading (``merge_and_unload``), for the base's speed.
- **Pixel budget**: without ``max_pixels``, images get at most the official evaluation scripts'
  ``1024 * 28 * 28`` pixels, unless the processor's own budget is smaller.
- **Timing**: each answered query records its retrieval time plus an equal share of the generation time.

In full: docs/notes/captioning-choices.md
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..atomic import atomic_write_json, atomic_write_jsonl
from ..errors import RepicError
from ..prompts import BOX_STYLES, inference_messages, training_messages
from ..shipped import resolve_model_name
from .generate import BatchDone, GenerationSettings, PromptInput, generate_batched
from .inputs import check_image, check_text, special_tokens
from .queries import Query

if TYPE_CHECKING:  # retrieval pulls in FAISS, which captioning with given concepts does not need
    from ..concepts.database import ConceptDatabase
    from ..concepts.retrieve import RetrievedConcept, Retriever
    from ..models.load import LoadedPolicy

MODES: tuple[str, ...] = ("auto", "given", "retrieve")
MODE_ALIASES = {"skip": "given"}  # the older name of "given", still accepted
OFFICIAL_MAX_PIXELS = 1024 * 28 * 28
CAPTIONS_JSON, CAPTIONS_JSONL, ANSWERS_JSONL, SUMMARY_JSON = (
    "captions.json", "captions.jsonl", "answers.jsonl", "summary.json"
)


# ------------------------------------------------------------------------------------------ loading
def load_for_captioning(
    model: str | os.PathLike,
    *,
    base: str | os.PathLike | None = None,
    dtype: str = "auto",
    device: str = "auto",
    max_pixels: int | None = None,
    min_pixels: int | None = None,
    attn_implementation: str = "sdpa",
) -> LoadedPolicy:
    """Load a model folder, hub id or LoRA adapter folder for inference, on ``device`` (auto: CUDA if any).

    ``attn_implementation="flash_attention_2"`` (flash-attn installed) matters for Qwen2.5-VL on GPUs:
    with it the vision tower attends over all its windows in one call, with ``sdpa`` one window at a time,
    which makes the vision tower most of the prefill of a batch.

    The tower's features are cached per image (``repic.models.vision_cache``): references shown with many
    queries are encoded once.
    """
    import torch

    from ..models.load import load_policy
    from ..models.vision_cache import cache_vision_features

    folder = Path(resolve_model_name(str(model))).expanduser()
    adapter_config = folder / "adapter_config.json"
    is_adapter = folder.is_dir() and adapter_config.is_file() and not (folder / "config.json").is_file()
    if base is not None and not is_adapter:
        raise RepicError(f"--base is for LoRA adapter folders, and {model} is a full model; drop --base")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RepicError(f"--device {device} asks for a GPU, but torch sees none here; use --device cpu or auto")
    options = {
        "dtype": dtype, "max_pixels": max_pixels, "min_pixels": min_pixels, "attn_implementation": attn_implementation,
        # Straight onto the device: a 7B model is not staged in CPU memory first.
        "device_map": None if device == "cpu" else device,
    }
    if is_adapter:
        policy = _load_adapter(folder, base, options)
    else:
        policy = load_policy(model, **options)
    policy.model.eval()
    cache_vision_features(policy.model)
    if max_pixels is None:
        cap_pixel_budget(policy.processor, OFFICIAL_MAX_PIXELS)
    return policy


def trained_box_style(model: str | os.PathLike) -> str | None:
    """The box answer style a model was trained with (``repic.prompts.BOX_STYLES``), or ``None`` if unknown.

    Read from the ``repic_run.json`` that training writes into ``final/``, else (a model trained before the
    style was recorded there) from the run's ``config.yaml`` beside ``final/``. A model asked for boxes in
    another style than it learned answers in its own, which the other style's parser does not read.
    """
    import json

    import yaml

    folder = Path(resolve_model_name(str(model))).expanduser()
    try:
        record = json.loads((folder / "repic_run.json").read_text(encoding="utf-8"))
        style = record.get("box_style") if isinstance(record, dict) else None
        if style is None and (folder.parent / "config.yaml").is_file():
            config = yaml.safe_load((folder.parent / "config.yaml").read_text(encoding="utf-8"))
            style = ((config or {}).get("data") or {}).get("box_style")
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return style if style in BOX_STYLES else None


def _load_adapter(folder: Path, base, options: dict[str, Any]) -> LoadedPolicy:
    from ..models.merge import load_with_adapter, read_adapter_config

    adapter, config = read_adapter_config(folder)
    policy, _ = load_with_adapter(adapter, config, base, **options)
    # Merged in the base's dtype: in bf16 the rounding can undo part of a small update; `repic merge`
    # merges in float32 and measures what a lower-precision copy costs.
    policy.model = policy.model.merge_and_unload()
    policy.info.source, policy.info.mode = str(folder), "lora-merged"
    return policy


def cap_pixel_budget(processor: Any, cap: int) -> None:
    """Lower a Qwen-style image processor's per-image pixel budget to ``cap`` when it allows more."""
    image_processor = getattr(processor, "image_processor", None)
    size = getattr(image_processor, "size", None)
    longest = getattr(size, "longest_edge", None)
    shortest = getattr(size, "shortest_edge", None)
    if isinstance(longest, int) and isinstance(shortest, int) and longest > cap >= shortest:
        image_processor.size = {"shortest_edge": shortest, "longest_edge": cap}


# ------------------------------------------------------------------------------------------ records
@dataclass
class AnsweredQuery:
    """One answered query: what was shown, what came back and what it cost.

    Not ``repic.report.CaptionResult``, which is one model's *scores* on a whole caption evaluation; this
    is one row of a run (a caption or an OCT / VLT answer), the line a predictions file holds.
    """

    query: Query
    mode: str  # "skip-retrieval", "retrieval", or "given" (OCT / VLT rows name their concept)
    prompt_concepts: list[str]
    retrieved: list[RetrievedConcept]
    prediction: str
    new_tokens: int
    ended: bool
    seconds: float

    @property
    def concepts(self) -> list[str]:
        """The concepts truly in the image, as the query's source says; empty when it says nothing.

        Never the concepts the prompt showed: retrieval's choice recorded as the truth would let
        ``repic eval`` score retrieval against itself (those are in ``prompt_concepts``).
        """
        return list(self.query.concepts)

    @property
    def task(self) -> str:
        if not self.query.is_caption or self.query.concepts:
            return self.query.task
        return "ict_multi" if len(self.prompt_concepts) > 1 else "ict"

    def official_row(self) -> list[Any]:
        """``[image, ["<a>", ...], caption, question]``, the official RePIC / RAP caption row."""
        return [self.query.label, self.concepts, self.prediction, self.query.question]

    def to_json(self) -> dict[str, Any]:
        """The project's prediction row (``repic.evaluate.predictions``), plus retrieval and timing."""
        row: dict[str, Any] = {
            "image": self.query.label,
            "task": self.task,
            "concepts": self.concepts,
            "prediction": self.prediction,
            "question": self.query.question,
            "mode": self.mode,
            "prompt_concepts": self.prompt_concepts,
            "retrieved": [found.to_json() for found in self.retrieved],
            "new_tokens": self.new_tokens,
            "ended": self.ended,
            "seconds": round(self.seconds, 4),
        }
        if not self.query.is_caption:
            row["solution"] = self.query.solution
        return row


@dataclass(frozen=True)
class SkippedQuery:
    """A query left out, and why (its image is missing or does not decode)."""

    query: Query
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"source": self.query.source, "row": self.query.row, "image": self.query.label, "reason": self.reason}


@dataclass
class CaptionRun:
    """Everything one ``Captioner.run`` produced."""

    results: list[AnsweredQuery] = field(default_factory=list)
    skipped: list[SkippedQuery] = field(default_factory=list)
    retrieval_seconds: float = 0.0
    generation_seconds: float = 0.0

    @property
    def new_tokens(self) -> int:
        return sum(result.new_tokens for result in self.results)


@dataclass
class PreparedQuery:
    """A query made ready to answer: its prompt, the references it shows and how they were chosen."""

    query: Query
    mode: str
    references: list[tuple[str, Path]]
    retrieved: list[RetrievedConcept]
    prompt: PromptInput
    retrieval_seconds: float


class UnusableQuery(RepicError):
    """A query whose image, question or reference image cannot be used; the message says which and why.

    ``Captioner.run`` skips such a query and goes on; ``part`` is ``"query"`` (the query's own image or
    question) or ``"reference"`` (a concept's reference image, a fault of the database).
    """

    def __init__(self, message: str, part: str = "query"):
        super().__init__(message)
        self.part = part


def caption_mode(mode: str) -> str:
    """The captioning mode ``mode`` names (``MODES``, or an older name in ``MODE_ALIASES``); else ``RepicError``."""
    mode = MODE_ALIASES.get(mode, mode)
    if mode not in MODES:
        raise RepicError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    return mode


# ------------------------------------------------------------------------------------------ the captioner
class Captioner:
    """Answers queries with a loaded policy, retrieving concepts when a query comes without them."""

    def __init__(
        self,
        model,
        processor,
        *,
        database: ConceptDatabase | None = None,
        retriever: Retriever | None = None,
        settings: GenerationSettings | None = None,
        box_style: str = "json",
    ) -> None:
        if box_style not in BOX_STYLES:
            raise RepicError(f"unknown box answer style {box_style!r}; use one of: {', '.join(BOX_STYLES)}")
        if database is not None:
            from ..concepts.index import check_database

            check_database(database)
        self.model, self.processor = model, processor
        self.database = database if database is not None else getattr(retriever, "database", None)
        self.retriever, self.settings, self.box_style = retriever, settings or GenerationSettings(), box_style
        self._reserved = special_tokens(processor)

    def run(
        self, queries: Sequence[Query], *, mode: str = "auto", on_batch: Callable[[BatchDone], None] | None = None
    ) -> CaptionRun:
        """Answer every usable query; unusable ones are listed in ``CaptionRun.skipped`` with the reason."""
        mode = caption_mode(mode)
        run = CaptionRun()
        prepared: list[PreparedQuery] = []
        for query in queries:
            try:
                prepared.append(self.prepare(query, mode))
            except UnusableQuery as exc:
                run.skipped.append(SkippedQuery(query, str(exc)))
        run.retrieval_seconds = sum(item.retrieval_seconds for item in prepared)

        def record(done: BatchDone) -> None:
            run.generation_seconds += done.batch_seconds
            if on_batch is not None:
                on_batch(done)

        answers = generate_batched(
            self.model, self.processor, [item.prompt for item in prepared], self.settings, on_batch=record
        )
        share = run.generation_seconds / len(prepared) if prepared else 0.0
        for item, answer in zip(prepared, answers, strict=True):
            run.results.append(
                AnsweredQuery(
                    query=item.query,
                    mode=item.mode,
                    prompt_concepts=[tag for tag, _ in item.references],
                    retrieved=item.retrieved,
                    prediction=answer.text,
                    new_tokens=answer.new_tokens,
                    ended=answer.ended,
                    seconds=item.retrieval_seconds + share,
                )
            )
        return run

    def prepare(self, query: Query, mode: str = "auto", *, image: Image.Image | None = None) -> PreparedQuery:
        """The prompt for one query (retrieving its concepts when the mode says so).

        ``image`` is the query image in memory (a server's upload); without it, ``query.image`` is read.
        ``UnusableQuery`` when an image or the question cannot go into a prompt.
        """
        query_image = _open(query.image, "query image") if image is None else _usable(image, "query image")
        try:
            check_text(query.question, what=f"{query.where}: the question", reserved=self._reserved)
        except RepicError as exc:
            raise UnusableQuery(str(exc)) from None
        if not query.is_caption:
            references = query.references or []
            images = [_open(path, f"reference image of {tag}") for tag, path in references]
            # OCT and VLT prompts draw nothing at random (only ICT suffixes do): any generator gives the same.
            messages = training_messages(
                query.task, query.question, len(images) + 1, random.Random(0), box_style=self.box_style
            )
            return PreparedQuery(query, "given", references, [], PromptInput(messages, [*images, query_image]), 0.0)
        retrieve = mode == "retrieve" or (mode == "auto" and not query.concepts and not query.references)
        started = time.perf_counter()
        retrieved: list[RetrievedConcept] = []
        if retrieve:
            if self.retriever is None:
                raise RepicError(f"{query.where}: retrieval needs a concept database (--database)")
            retrieved = self.retriever.retrieve(query_image, query.question)
            references = [(found.tag, found.image) for found in retrieved]
        else:
            references = self._given_references(query)
        retrieval_seconds = time.perf_counter() - started if retrieve else 0.0
        images = [self._reference(tag, path) for tag, path in references]
        infos = [(tag, self._concept(tag, query).info) for tag, _ in references]
        messages = inference_messages(infos, query.question)
        prompt = PromptInput(messages, [*images, query_image])
        return PreparedQuery(
            query, "retrieval" if retrieve else "skip-retrieval", references, retrieved, prompt, retrieval_seconds
        )

    def _given_references(self, query: Query) -> list[tuple[str, Path]]:
        if query.references is not None:
            return list(query.references)
        if not query.concepts:
            raise RepicError(
                f"{query.where}: mode 'given' needs the query's concepts (--concepts or an evaluation file); "
                "or let retrieval choose them (--mode retrieve)"
            )
        return [(tag, self._concept(tag, query).images[0]) for tag in query.concepts]

    def _reference(self, tag: str, path: Path) -> Image.Image:
        """A concept's reference image; a missing one says where the database looked for it."""
        hint = self.database.where_looked(path) if self.database is not None else ""
        return _open(path, f"reference image of {tag}", hint)

    def _concept(self, tag: str, query: Query):
        if self.database is None:
            raise RepicError(
                f"{query.where}: the prompt needs the Info of {tag} from a concept database; pass --database"
            )
        try:
            return self.database.get(tag)
        except RepicError as exc:
            raise RepicError(f"{query.where}: {exc}") from None


def _open(path: Path, what: str, hint: str = "") -> Image.Image:
    """The image at ``path`` decoded to RGB, or ``UnusableQuery`` saying why not."""
    part = "query" if what == "query image" else "reference"
    if "\x00" in str(path):  # no file name holds one; the OS calls would fail with "embedded null byte"
        raise UnusableQuery(f"{what} path {str(path)!r} holds a NUL character; fix the path", part)
    try:
        with Image.open(path) as image:
            decoded = image.convert("RGB")
    except FileNotFoundError:
        raise UnusableQuery(f"{what} {path} does not exist" + (f" ({hint})" if hint else ""), part) from None
    except IsADirectoryError:
        raise UnusableQuery(f"{what} {path} is a folder", part) from None
    except Exception as exc:  # Pillow reports broken files with many types (OSError, SyntaxError, ...)
        raise UnusableQuery(f"{what} {path} does not decode as an image ({exc})", part) from None
    return _usable(decoded, f"{what} {path}", part)


def _usable(image: Image.Image, what: str, part: str = "query") -> Image.Image:
    """``image`` in RGB when its shape can go into a prompt, else ``UnusableQuery``."""
    try:
        check_image(image, what=what)
    except RepicError as exc:
        raise UnusableQuery(str(exc), part) from None
    return image if image.mode == "RGB" else image.convert("RGB")


# ------------------------------------------------------------------------------------------ outputs
def write_outputs(out_dir: str | os.PathLike, run: CaptionRun, summary: dict[str, Any]) -> dict[str, Path]:
    """Write the run's files into ``out_dir`` atomically and return them by name.

    ``captions.json``: official rows of the caption queries; ``captions.jsonl``: one project row per caption
    query (with retrieval and timing); ``answers.jsonl``: the OCT / VLT rows; ``summary.json``: ``summary``
    plus counts, skipped queries and speeds. Files without rows are not written; the summary always is.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RepicError(f"{out} is a file; --out takes a folder for the outputs")
    captions = [result for result in run.results if result.query.is_caption]
    answers = [result for result in run.results if not result.query.is_caption]
    written: dict[str, Path] = {}
    try:
        if captions:
            written[CAPTIONS_JSON] = atomic_write_json(out / CAPTIONS_JSON, [r.official_row() for r in captions], indent=1)
            written[CAPTIONS_JSONL] = atomic_write_jsonl(out / CAPTIONS_JSONL, [r.to_json() for r in captions])
        if answers:
            written[ANSWERS_JSONL] = atomic_write_jsonl(out / ANSWERS_JSONL, [r.to_json() for r in answers])
        written[SUMMARY_JSON] = atomic_write_json(out / SUMMARY_JSON, {**summary, **run_summary(run)})
    except OSError as exc:
        raise RepicError(f"cannot write the outputs to {out}: {exc.strerror or exc}; choose a writable --out") from None
    return written


def run_summary(run: CaptionRun) -> dict[str, Any]:
    """Counts, speeds, retrieval recall (where the truth is known) and the skipped queries of a run."""
    seconds = run.retrieval_seconds + run.generation_seconds
    retrieval = [result for result in run.results if result.mode == "retrieval" and result.query.concepts]
    found = sum(len(set(r.prompt_concepts) & set(r.query.concepts)) for r in retrieval)
    truth = sum(len(r.query.concepts) for r in retrieval)
    return {
        "answered": len(run.results),
        "skipped": len(run.skipped),
        "skipped_queries": [skipped.to_json() for skipped in run.skipped],
        "new_tokens": run.new_tokens,
        "seconds": {
            "retrieval": round(run.retrieval_seconds, 3),
            "generation": round(run.generation_seconds, 3),
            "total": round(seconds, 3),
        },
        "answers_per_second": round(len(run.results) / seconds, 3) if seconds else None,
        "tokens_per_second": round(run.new_tokens / run.generation_seconds, 1) if run.generation_seconds else None,
        "retrieval_recall": round(found / truth, 4) if truth else None,
    }
