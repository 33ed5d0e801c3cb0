"""Answer every row of a benchmark folder with a model: batched, resumable, one line per row.

``run_benchmark(model, bench_dir, out_dir)`` writes into ``out_dir``:

- ``predictions.jsonl``: one line per row, ``{"id", "kind", "answer", ...}`` with the raw answer text; a
  choice row adds ``"permutation"`` (shown position -> index in the source's option order: the letter
  ``A`` showed ``options[permutation[0]]``); every line says which concepts' references it showed and
  how many tokens the answer took. A row that could not be asked (its image or a reference image missing
  or unreadable, a concept not in the database) gets ``"answer": null`` and ``"skipped": <why>``; the
  scorer counts it wrong.
- ``run.json``: the model, the benchmark folder, the settings, and counts and speed of the last call.

Prompts, per kind (strings in ``repic.prompts``):

- ``recognition``: RePIC's OCT prompt, as RePIC trains it: the concept's first reference image from the
  folder's ``database.json``, then the query image, then ``oct_problem`` with the first OCT question and
  the yes/no instruction. The row's own question wording is not used, so every source is asked alike.
- ``caption``: the RAP / RePIC inference layout with the row's concepts' references (the *given* mode;
  no concepts: the query image alone). The question is the row's, else one of the three official ones (by id).
- ``choice``: the options in an order permuted per row (``random.Random(f"{seed}:{id}")``), lettered A,
  B, C..., after the concepts' references (when the row has concepts) and the image (when it has one).
  Sources put the right answer mostly first (Yo'LLaVA's text QA: 390 of 400 are "A"); the permutation
  keeps a model's letter preference from scoring as knowledge.
- ``open``: the question with a short-answer instruction, with the image and references as for choice.

Batching and resuming: pending rows are read a window at a time (``batch_size`` x 4 rows), sorted by
kind (a batch runs as long as its longest answer) and prompt size within the window so a batch pads and
waits little, and answered ``batch_size`` per ``generate`` call
(``repic.inference.generate_batched``). After each batch its lines are appended to ``predictions.jsonl``,
flushed and fsynced, so an interrupt loses at most the batch that was running. A later call with
``resume=True`` reads the file, drops a torn last line (and any line that is not a prediction), and
answers only the rows without an answer; rows skipped before are tried again. ``resume=False`` starts
the file over. Resuming with another model, folder, seed or token limit than ``run.json`` records is
refused: the file would mix two runs. ``one_at_a_time=True`` answers one row per ``generate`` call (the
baseline ``benchmarks/bench_run.py`` compares against).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ..atomic import atomic_write_json, atomic_write_jsonl, write_target
from ..errors import RepicError
from ..prompts import (
    CHOICE_LETTERS,
    OCT_QUESTIONS,
    choice_text,
    eval_question,
    inference_messages,
    oct_problem,
    open_text,
    question_messages,
    training_messages,
)
from .rows import KINDS, BenchRow, read_manifest, read_rows

PREDICTIONS, RUN_JSON = "predictions.jsonl", "run.json"
DATABASE = "database.json"
RUN_FORMAT = "repic-bench-run/1"
DEFAULT_MAX_NEW_TOKENS = 128  # the paper's caption evaluation; short answers end at their EOS long before
WINDOW_BATCHES = 4  # rows read and sorted by size at a time, in batches
RECOGNITION_QUESTION = OCT_QUESTIONS[0]
# What a resumed run must share with the run that started the file (the batch size may change).
_SAME_RUN = ("model", "bench_dir", "seed", "max_new_tokens")
# Kinds by the usual length of their answers, longest first: batches group them (see ``_batches``).
_ANSWER_LENGTH_ORDER = {"caption": 3, "open": 2, "choice": 1, "recognition": 0}


@dataclass(frozen=True)
class RunProgress:
    """After each batch: rows answered in this call, of how many pending, and seconds so far."""

    done: int
    total: int
    seconds: float


@dataclass(frozen=True)
class RunResult:
    """What one ``run_benchmark`` call did."""

    predictions: Path
    run_json: Path
    rows: int  # rows of the folder this run covers (after ``limit``)
    resumed: int  # rows already answered in predictions.jsonl, not asked again
    answered: int  # rows answered in this call
    skipped: int  # rows that could not be asked in this call (their line says why)
    seconds: float  # generation and prompt building in this call
    skipped_rows: tuple[tuple[str, str], ...] = ()  # (row id, why) of the rows skipped in this call

    @property
    def rows_per_second(self) -> float | None:
        return self.answered / self.seconds if self.seconds > 0 else None


@dataclass
class _Prompt:
    row: BenchRow
    references: list[str]
    messages: list[dict[str, Any]]
    images: list[Image.Image]
    permutation: list[int] | None


def choice_permutation(row_id: str, n_options: int, seed: int) -> list[int]:
    """The option order shown for a choice row: shown position -> index in the source's order.

    Seeded by ``seed`` and the row id only (string seeds hash with SHA-512), so a resumed or repeated run
    shows every row the same order, whatever rows came before it.

    >>> choice_permutation("q1", 4, 0) == choice_permutation("q1", 4, 0)
    True
    >>> sorted(choice_permutation("q1", 4, 0))
    [0, 1, 2, 3]
    """
    order = list(range(n_options))
    random.Random(f"{seed}:{row_id}").shuffle(order)
    return order


def read_predictions(path: str | os.PathLike) -> tuple[dict[str, dict[str, Any]], int]:
    """The last prediction line per row id in ``path``, and how many lines were dropped as torn or not
    predictions (a crash can leave a partial last line). A missing file has none."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, 0
    except (OSError, UnicodeDecodeError) as exc:
        raise RepicError(f"cannot read {path} ({exc}); choose another --out or start over with --restart") from None
    found: dict[str, dict[str, Any]] = {}
    dropped = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        if isinstance(record, dict) and isinstance(record.get("id"), str) and record.get("kind") in KINDS:
            found[record["id"]] = record
        else:
            dropped += 1
    return found, dropped


def run_benchmark(
    model: Any,
    bench_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    batch_size: int = 16,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    seed: int = 0,
    resume: bool = True,
    limit: int | None = None,
    progress: Callable[[RunProgress], None] | None = None,
    one_at_a_time: bool = False,
    device: str = "auto",
    dtype: str = "auto",
    cache: str = "auto",
) -> RunResult:
    """Answer the rows of the benchmark folder ``bench_dir`` with ``model`` into ``out_dir`` (see the module).

    ``model`` is a model folder, hub id, ``tiny-base`` / ``tiny-repic`` or LoRA adapter folder (loaded with
    ``repic.inference.load_for_captioning``), or a policy already loaded by it. ``limit`` keeps the first N
    rows of the folder (in ``KINDS`` order, then file order).
    """
    from ..inference.generate import GenerationSettings

    bench = Path(bench_dir)
    rows = read_rows(bench)  # refuses a folder without manifest.json
    manifest = read_manifest(bench)
    if limit is not None:
        if limit < 1:
            raise RepicError(f"--limit must be at least 1 (got {limit})")
        rows = rows[:limit]
    if not rows:
        raise RepicError(f"{bench} holds no benchmark rows (tasks/*.jsonl are missing or empty); import it again")
    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=1 if one_at_a_time else batch_size,
                                  seed=seed, cache=cache)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RepicError(f"{out} is a file; --out takes a folder for the predictions")
    predictions_path, run_path = out / PREDICTIONS, out / RUN_JSON
    model_name = _model_name(model)
    record = {
        "run": RUN_FORMAT,
        "model": model_name,
        "bench_dir": str(bench.resolve()),
        "format": manifest.get("format"),
        "seed": seed,
        "max_new_tokens": max_new_tokens,
        "batch_size": settings.batch_size,
        "one_at_a_time": one_at_a_time,
        "limit": limit,
        "cache": cache,
        "recognition_question": RECOGNITION_QUESTION,
    }
    done: dict[str, dict[str, Any]] = {}
    dropped = 0
    if resume:
        _check_same_run(run_path, record)
        done, dropped = read_predictions(predictions_path)
    ids = {row.id for row in rows}
    finished = {key for key, line in done.items() if key in ids and line.get("answer") is not None}
    pending = [row for row in rows if row.id not in finished]
    policy = _load(model, device=device, dtype=dtype) if pending else None  # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    if not resume or dropped or not _ends_with_newline(predictions_path) or not predictions_path.exists():
        # A fresh file, or the old one without its torn line, so the next append does not glue onto it.
        atomic_write_jsonl(predictions_path, list(done.values()))
    atomic_write_json(run_path, {**record, "status": "running", "rows": len(rows), "resumed": len(finished)})

    answered = 0
    skipped_rows: list[tuple[str, str]] = []
    seconds = 0.0
    if policy is not None:
        asker = _Asker(policy, bench, seed)
        window = 1 if one_at_a_time else settings.batch_size * WINDOW_BATCHES
        for start in range(0, len(pending), window):
            started = time.perf_counter()
            prompts, unusable = asker.prepare(pending[start : start + window])
            lines = [_skipped_line(row, reason) for row, reason in unusable]
            seconds += time.perf_counter() - started
            if lines:
                _append(predictions_path, lines)
                skipped_rows += [(row.id, reason) for row, reason in unusable]
            for batch in _batches(prompts, settings.batch_size):
                started = time.perf_counter()
                answers = _generate(policy, batch, settings)
                seconds += time.perf_counter() - started
                _append(predictions_path, [_answer_line(p, a) for p, a in zip(batch, answers, strict=True)])
                answered += len(batch)
                if progress is not None:
                    progress(RunProgress(answered + len(skipped_rows), len(pending), seconds))
            if progress is not None and not prompts:
                progress(RunProgress(answered + len(skipped_rows), len(pending), seconds))
    skipped = len(skipped_rows)
    result = RunResult(predictions_path, run_path, len(rows), len(finished), answered, skipped, seconds,
                       tuple(skipped_rows))
    atomic_write_json(run_path, {
        **record, "status": "finished", "rows": len(rows), "resumed": len(finished), "answered": answered,
        "skipped": skipped, "seconds": round(seconds, 3),
        "rows_per_second": round(result.rows_per_second, 3) if result.rows_per_second else None,
    })
    return result


# ------------------------------------------------------------------------------------------ prompts
class _Asker:
    """Builds each row's prompt; reference images are decoded once per concept."""

    def __init__(self, policy: Any, bench: Path, seed: int):
        from ..inference.inputs import special_tokens

        self.bench, self.seed = bench, seed
        self.reserved = special_tokens(policy.processor)
        self._database = None
        self._references: dict[str, tuple[Image.Image, str]] = {}

    @property
    def database(self):
        if self._database is None:
            from ..concepts.database import load_database

            path = self.bench / DATABASE
            if not path.is_file():
                raise _Unusable(f"the benchmark folder has no {DATABASE} to take the concepts' references from")
            self._database = load_database(path)
        return self._database

    def prepare(self, rows: Sequence[BenchRow]) -> tuple[list[_Prompt], list[tuple[BenchRow, str]]]:
        prompts, unusable = [], []
        for row in rows:
            try:
                prompts.append(self.prompt(row))
            except (_Unusable, RepicError) as exc:
                unusable.append((row, str(exc)))
        return prompts, unusable

    def prompt(self, row: BenchRow) -> _Prompt:
        from ..inference.inputs import check_text

        for text in [row.question, *row.options]:
            check_text(text, what="the question or an option", reserved=self.reserved)
        if row.kind == "recognition":
            tag = row.concepts[0]
            reference, tag = self.reference(tag)
            problem = oct_problem(tag, 1, RECOGNITION_QUESTION)
            messages = training_messages("oct", problem, 2, random.Random(0))
            return _Prompt(row, [tag], messages, [reference, self.image(row)], None)
        references = [self.reference(tag) for tag in row.concepts]
        tags = [tag for _, tag in references]
        infos = [(tag, self.database.get(tag).info) for tag in tags]
        images = [image for image, _ in references]
        if row.kind == "caption":
            question = row.question.strip() or eval_question(_index(row))  # one of the official three
            return _Prompt(row, tags, inference_messages(infos, question), [*images, self.image(row)], None)
        permutation = None
        if row.kind == "choice":
            if len(row.options) > len(CHOICE_LETTERS):
                raise _Unusable(f"{len(row.options)} options are more than the {len(CHOICE_LETTERS)} letters")
            permutation = choice_permutation(row.id, len(row.options), self.seed)
            text = choice_text(row.question, [row.options[i] for i in permutation])
        else:
            text = open_text(row.question)
        with_image = row.image is not None
        messages = question_messages(infos, text, with_image=with_image)
        return _Prompt(row, tags, messages, [*images, *([self.image(row)] if with_image else [])], permutation)

    def reference(self, tag: str) -> tuple[Image.Image, str]:
        """The first reference image of ``tag`` and its tag as the database spells it."""
        if tag not in self._references:
            try:
                concept = self.database.get(tag)
            except RepicError as exc:
                raise _Unusable(str(exc)) from None
            if not concept.images:
                raise _Unusable(f"{concept.tag} has no reference image in {DATABASE}")
            self._references[tag] = (_open(concept.images[0], f"reference image of {concept.tag}"), concept.tag)
        return self._references[tag]

    def image(self, row: BenchRow) -> Image.Image:
        return _open(self.bench / str(row.image), "query image")


class _Unusable(RepicError):
    """A row that cannot be asked (its line in predictions.jsonl says why)."""


def _open(path: Path, what: str) -> Image.Image:
    from ..inference.inputs import check_image

    try:
        with Image.open(path) as image:
            decoded = image.convert("RGB")
    except FileNotFoundError:
        raise _Unusable(f"{what} {path} does not exist") from None
    except Exception as exc:  # Pillow reports broken files with many types
        raise _Unusable(f"{what} {path} does not decode as an image ({exc})") from None
    try:
        check_image(decoded, what=f"{what} {path}")
    except RepicError as exc:
        raise _Unusable(str(exc)) from None
    return decoded


def _index(row: BenchRow) -> int:
    """A stable small number for a row without a question (which official question it gets)."""
    return sum(row.id.encode("utf-8"))


# ------------------------------------------------------------------------------------------ running
def _model_name(model: Any) -> str:
    info = getattr(model, "info", None)
    if info is not None and hasattr(model, "processor"):
        return str(getattr(info, "source", model))
    return str(model)


def _load(model: Any, *, device: str, dtype: str) -> Any:
    if hasattr(model, "model") and hasattr(model, "processor"):
        return model
    from ..inference.caption import load_for_captioning

    return load_for_captioning(model, device=device, dtype=dtype)


def _batches(prompts: list[_Prompt], size: int) -> list[list[_Prompt]]:
    """``prompts`` grouped by kind (a batch runs as long as its longest answer: captions are long, yes/no
    answers two tokens), then by size, largest first (images, pixels, text), cut into batches of ``size``."""

    def key(prompt: _Prompt) -> tuple[int, int, int, int]:
        text = sum(len(part.get("text", "")) for message in prompt.messages for part in message["content"])
        pixels = sum(image.width * image.height for image in prompt.images)
        return (_ANSWER_LENGTH_ORDER[prompt.row.kind], len(prompt.images), pixels, text)

    ordered = sorted(prompts, key=key, reverse=True)
    return [ordered[start : start + size] for start in range(0, len(ordered), size)]


def _generate(policy: Any, batch: list[_Prompt], settings: Any) -> list[Any]:
    from ..inference.generate import PromptInput, generate_batched

    prompts = [PromptInput(prompt.messages, prompt.images) for prompt in batch]
    # At most batch_size prompts: one generate call (a static cache fills a short batch to its compiled size).
    return generate_batched(policy.model, policy.processor, prompts, settings)


def _answer_line(prompt: _Prompt, answer: Any) -> dict[str, Any]:
    line: dict[str, Any] = {"id": prompt.row.id, "kind": prompt.row.kind, "answer": answer.text}
    if prompt.permutation is not None:
        line["permutation"] = prompt.permutation
    line.update(references=prompt.references, new_tokens=answer.new_tokens, ended=answer.ended)
    return line


def _skipped_line(row: BenchRow, reason: str) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "answer": None, "skipped": reason}


def _append(path: Path, lines: list[dict[str, Any]]) -> None:
    """Append whole lines, flushed and fsynced: an interrupt can tear only the lines being written."""
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    with write_target(path).open("a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _ends_with_newline(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            if handle.seek(0, os.SEEK_END) == 0:
                return True
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"
    except FileNotFoundError:
        return True


def _check_same_run(run_path: Path, record: dict[str, Any]) -> None:
    """Refuse to resume a file another model, folder, seed or token limit started."""
    try:
        before = json.loads(run_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        return  # an unreadable run.json is rewritten; the predictions are checked line by line
    if not isinstance(before, dict):
        return
    differ = [name for name in _SAME_RUN if name in before and before[name] != record[name]]
    if differ:
        said = "; ".join(f"{name} was {before[name]!r}, now {record[name]!r}" for name in differ)
        raise RepicError(f"{run_path.parent} holds predictions of another run ({said}); resume with the same "
                         "settings, choose another --out, or start over with --restart")
