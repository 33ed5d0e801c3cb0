"""Evaluate any model on a ``repic data build`` evaluation folder, as the demo does: predictions, scores,
per-query outcomes and gallery rows that ``repic report`` (``repic.report``) turns into a report.

``evaluate_model`` answers, with greedy decoding:

- the caption files ``eval/single.jsonl``, ``two.jsonl`` and ``four.jsonl`` in *given* mode (the true
  concepts' references are shown), and ``single`` and ``two`` again in *retrieval* mode (the top-K
  concepts retrieved from the evaluation ``database.json`` with ``EvalSettings.embedder``; the demo uses
  the tiny base's own vision tower; K = 2 as in the paper), so a reference shown may be of a concept that
  is not in the image; how often the first retrieved concept is in the image, and how many true concepts
  the top K hold, are counted too;
- the OCT and VLT files (``eval/oct.jsonl``, ``eval/vlt.jsonl``), asked as RePIC trains them, boxes in the
  model's box style (``EvalSettings.box_style``; by default the style its training recorded).

It writes one predictions file per evaluation (``<evaluation>.jsonl``, the JSONL rows ``repic eval``
reads, plus the query's and the shown references' image paths for the gallery; every image path is
written relative to the predictions' folder, so a moved run folder still finds them) and a
``ModelResult`` (``model_result.json``), and ``evaluation.json`` naming the model, the build and its
database. What it chose and why:

- **Scores come from the files just written**, read back with ``repic.evaluate.load_predictions`` and
  scored by the evaluation engine as ``repic eval`` scores them (``repic.evaluate.score_predictions``:
  official variant chosen by concepts per row, strict mode with the database's display names as aliases):
  running ``repic eval`` on a predictions file prints the numbers the report shows. ``query_outcomes``
  reads the same files into the per-query outcomes behind each number, for intervals over training seeds
  and queries (``repic.evaluate.intervals``).
- **Absent named** counts captions that name a concept the prompt offered (a reference shown) that is not
  in the image, by the strict scorer's whole-name matching. In skip-retrieval files every reference is a
  true concept, so nothing can be counted there and the count is left empty rather than reported as 0.
- **A query that cannot be answered is an error**, not a skipped row: a missing image means a broken
  build, and a silently shorter evaluation would change the numbers.
- **Answers are as long as the captioner's default allows** (``GenerationSettings().max_new_tokens``, 128
  tokens, greedy), the same for every model and longer than the 48 tokens the demo recipe trains with: a
  caption that names four concepts with a phrase each needs about 60 tokens, and an evaluation cut at the
  training length would score the length limit rather than the model (measured: RePIC's 4-concept
  captions all hit 48 tokens before naming the fourth concept).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json, atomic_write_jsonl
from ..concepts.database import ConceptDatabase, load_database
from ..errors import RepicError
from ..inference.generate import GenerationSettings
from ..progress import Progress
from ..report import CaptionResult, Count, GalleryReference, GalleryRow, ModelResult, Results
from . import (
    CaptionRow,
    LoadedPredictions,
    QueryOutcomes,
    caption_outcomes,
    choose_official_variant,
    display_names,
    load_predictions,
    localization_hits,
    named_concepts,
    official_row_outcomes,
    rate_outcomes,
    recognition_hits,
    score_predictions,
    strict_row_outcomes,
)

EVAL_DIR = "eval"
RESULT_FILE = "model_result.json"
SOURCE_FILE = "evaluation.json"  # what was evaluated on what: the model, the build, its database
# Caption evaluations (the report's keys) -> (evaluation file, captioner mode).
CAPTION_EVALUATIONS: dict[str, tuple[str, str]] = {
    "single": ("single.jsonl", "given"),
    "two": ("two.jsonl", "given"),
    "four": ("four.jsonl", "given"),
    "single_retrieval": ("single.jsonl", "retrieve"),
    "two_retrieval": ("two.jsonl", "retrieve"),
}
ANSWER_EVALUATIONS = ("oct", "vlt")
_GENERATION_DEFAULTS = GenerationSettings()


@dataclass(frozen=True)
class EvalSettings:
    """How answers are generated and concepts retrieved."""

    max_new_tokens: int = _GENERATION_DEFAULTS.max_new_tokens
    batch_size: int = 16
    top_k: int = 2
    embedder: str = "builtin"
    box_style: str | None = None  # how VLT asks for the box; None: the style the model's training recorded


def predictions_path(out_dir: str | os.PathLike, evaluation: str) -> Path:
    """The predictions file of one evaluation (a ``CAPTION_EVALUATIONS`` key, ``oct`` or ``vlt``)."""
    return Path(out_dir) / f"{evaluation}.jsonl"


def evaluate_model(
    model: str | os.PathLike,
    build_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    label: str,
    description: str,
    settings: EvalSettings,
    progress: Progress | None = None,
) -> ModelResult:
    """Answer every evaluation of ``build_dir`` with ``model``; write predictions and result to ``out_dir``."""
    from ..concepts.retrieve import open_retriever
    from ..inference import Captioner, load_for_captioning, read_eval_file
    from ..inference.caption import trained_box_style

    say = progress or (lambda line: None)
    eval_dir = Path(build_dir) / EVAL_DIR
    database = load_database(eval_dir / "database.json")
    retriever, _ = open_retriever(database, embedder=settings.embedder, k=settings.top_k)
    policy = load_for_captioning(model)
    generation = GenerationSettings(max_new_tokens=settings.max_new_tokens, batch_size=settings.batch_size)
    captioner = Captioner(
        policy.model, policy.processor, database=database, retriever=retriever, settings=generation,
        box_style=settings.box_style or trained_box_style(model) or "json",
    )
    out = Path(out_dir)
    runs = [(key, file, mode) for key, (file, mode) in CAPTION_EVALUATIONS.items()]
    runs += [(key, f"{key}.jsonl", "auto") for key in ANSWER_EVALUATIONS]
    for key, file, mode in runs:
        started = time.perf_counter()
        queries = read_eval_file(eval_dir / file)
        run = captioner.run(queries, mode=mode)
        if run.skipped:
            first = run.skipped[0]
            raise RepicError(
                f"{len(run.skipped)} of {len(queries)} queries of {eval_dir / file} could not be answered "
                f"({first.query.where}: {first.reason}); rebuild the evaluation data (`repic data build`)"
            )
        atomic_write_jsonl(predictions_path(out, key), [_prediction_row(result, out) for result in run.results])
        say(f"{label}: {key} ({mode}), {len(run.results)} answers in {time.perf_counter() - started:.1f} s")
    result = score_model(out, label=label, description=description, database=database)
    atomic_write_json(out / SOURCE_FILE, {"model": str(model), "build": str(Path(build_dir).absolute()),
                                          "database": _relative_to(eval_dir / "database.json", out)})
    atomic_write_json(out / RESULT_FILE, Results(models=[result], title=label).to_json())
    return result


def evaluation_database(out_dir: str | os.PathLike) -> ConceptDatabase:
    """The concept database an ``evaluate_model`` folder was scored with (named in its ``evaluation.json``)."""
    path = Path(out_dir) / SOURCE_FILE
    try:
        source = json.loads(path.read_text(encoding="utf-8"))
        return load_database(_resolved(out_dir, source["database"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RepicError(f"cannot read {path} ({exc}); evaluate the model again (`repic eval model`), or name "
                         "the evaluation's database.json with --database") from None


def _prediction_row(result: Any, folder: Path) -> dict[str, Any]:
    """The captioner's prediction row, plus the query's path and the references it showed (see the top)."""
    if result.mode == "retrieval":
        shown = [(found.tag, found.image) for found in result.retrieved]
    else:
        shown = list(result.query.references or [])
    row = result.to_json()
    for found in row.get("retrieved", []):
        found["image"] = _relative_to(found["image"], folder)
    return {
        **row,
        "image_path": _relative_to(result.query.image, folder),
        "references": [{"tag": tag, "image": _relative_to(image, folder)} for tag, image in shown],
    }


def _relative_to(path: str | os.PathLike, folder: Path) -> str:
    try:
        return os.path.relpath(Path(path).absolute(), folder.absolute())
    except ValueError:  # another drive (Windows): no relative path exists
        return str(Path(path).absolute())


def _resolved(folder: str | os.PathLike, path: str) -> Path:
    """A path a predictions row holds, relative to its folder (absolute in files written before)."""
    return Path(os.path.normpath(Path(folder) / path))


def score_model(
    out_dir: str | os.PathLike, *, label: str, description: str, database: ConceptDatabase
) -> ModelResult:
    """The ``ModelResult`` of the predictions files in ``out_dir`` (scored as ``repic eval`` scores them)."""
    aliases = display_names(database)
    captions = {}
    for key in CAPTION_EVALUATIONS:
        loaded = _loaded(predictions_path(out_dir, key), "captions")  # read once, typed
        scores = score_predictions(loaded, aliases).captions
        top1, recall = retrieval_hits(loaded.captions)
        captions[key] = CaptionResult(
            rows=scores.rows,
            official=scores.official,
            strict=scores.strict,
            absent_named=absent_named(loaded.captions, aliases),
            retrieval_top1=top1,
            retrieval_recall=recall,
        )
    return ModelResult(
        label=label,
        description=description,
        captions=captions,
        recognition=_scores(predictions_path(out_dir, "oct"), aliases, "recognition"),
        localization=_scores(predictions_path(out_dir, "vlt"), aliases, "localization"),
    )


def query_outcomes(out_dir: str | os.PathLike, database: ConceptDatabase) -> dict[str, QueryOutcomes]:
    """The per-query outcomes behind ``score_model``'s numbers, read from the same predictions files.

    Keys: ``<evaluation>.official`` and ``<evaluation>.strict`` (F1) for each caption evaluation,
    ``<evaluation>.absent_named`` (a rate, one query per caption) where ``absent_named`` counts it, and
    ``oct`` and ``vlt`` (accuracy). Each one's ``value()`` is the number ``score_model`` reports.
    """
    aliases = display_names(database)
    outcomes: dict[str, QueryOutcomes] = {}
    for key in CAPTION_EVALUATIONS:
        rows = _loaded(predictions_path(out_dir, key), "captions").captions
        variant = choose_official_variant(rows)  # as score_predictions chooses it
        outcomes[f"{key}.official"] = caption_outcomes(official_row_outcomes(rows, variant))
        outcomes[f"{key}.strict"] = caption_outcomes(strict_row_outcomes(rows, aliases))
        named = absent_named_hits(rows, aliases)
        if named is not None:
            outcomes[f"{key}.absent_named"] = rate_outcomes(named)
    oct_rows = _loaded(predictions_path(out_dir, "oct"), "recognition").recognition
    vlt_rows = _loaded(predictions_path(out_dir, "vlt"), "localization").localization
    outcomes["oct"] = rate_outcomes(recognition_hits(oct_rows))
    outcomes["vlt"] = rate_outcomes(localization_hits(vlt_rows))
    return outcomes


def _scores(path: Path, aliases: Mapping[str, Sequence[str]], kind: str) -> Any:
    """One kind of scores (``captions``, ``recognition`` or ``localization``) of a predictions file, scored
    by the engine as ``repic eval`` scores it."""
    return getattr(score_predictions(_loaded(path, kind), aliases), kind)


def _loaded(path: Path, kind: str) -> LoadedPredictions:
    """A predictions file read as ``repic eval`` reads it; a file without rows of ``kind`` is an error."""
    loaded = load_predictions(path, on_error="fail")
    if not getattr(loaded, kind):
        rows = {"captions": "caption", "recognition": "OCT", "localization": "VLT"}[kind]
        raise RepicError(f"{path} holds no {rows} rows; evaluate the model again")
    return loaded


def absent_named(rows: Sequence[CaptionRow], aliases: Mapping[str, Sequence[str]]) -> Count | None:
    """Captions naming a shown concept that is not in the image (``shown`` but not in ``concepts``).

    ``None`` when no row showed such a concept: then nothing could be named wrongly.

    >>> offered = dict(image="q.png", concepts=("<bo>",), shown=("<bo>", "<kim>"))
    >>> absent_named([CaptionRow(caption="<bo> and Kim", **offered), CaptionRow(caption="<bo> alone", **offered)], {})
    Count(hits=1, total=2)
    >>> print(absent_named([CaptionRow("q.png", ("<bo>",), "<bo>", shown=("<bo>",))], {}))
    None
    """
    hits = absent_named_hits(rows, aliases)
    return None if hits is None else Count(sum(hits), len(hits))


def absent_named_hits(rows: Sequence[CaptionRow], aliases: Mapping[str, Sequence[str]]) -> list[bool] | None:
    """Per caption: does it name a shown concept that is not in its image? ``None`` when no row showed
    such a concept (see ``absent_named``).

    >>> rows = [CaptionRow("q.png", ("<bo>",), "<bo> and Kim", shown=("<bo>", "<kim>")),
    ...         CaptionRow("q.png", ("<bo>",), "<bo> and Kim", shown=("<bo>",))]
    >>> absent_named_hits(rows, {})
    [True, False]
    """
    shown_absent = [[tag for tag in row.shown if tag not in row.concepts] for row in rows]
    if not any(shown_absent):
        return None
    return [
        bool(absent) and bool(named_concepts(row.caption, absent, aliases))
        for row, absent in zip(rows, shown_absent, strict=True)
    ]


def retrieval_hits(rows: Sequence[CaptionRow]) -> tuple[Count | None, Count | None]:
    """Queries whose first retrieved concept is in the image, and true concepts among those retrieved;
    ``(None, None)`` for rows that were not retrieved for.

    >>> rows = [CaptionRow("a.png", ("<a>",), "", retrieved=("<a>", "<b>")),
    ...         CaptionRow("b.png", ("<a>", "<c>"), "", retrieved=("<b>", "<c>"))]
    >>> retrieval_hits(rows)
    (Count(hits=1, total=2), Count(hits=2, total=3))
    """
    retrieved = [row for row in rows if row.retrieved]
    if not retrieved:
        return None, None
    first = sum(row.retrieved[0] in row.concepts for row in retrieved)
    found = sum(len(set(row.retrieved) & set(row.concepts)) for row in retrieved)
    return Count(first, len(retrieved)), Count(found, sum(len(row.concepts) for row in retrieved))


def read_model_result(out_dir: str | os.PathLike) -> ModelResult:
    """The ``ModelResult`` an earlier ``evaluate_model`` wrote to ``out_dir``."""
    path = Path(out_dir) / RESULT_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RepicError(
            f"cannot read {path} ({exc}); evaluate the model again (`repic eval model`)"
        ) from None
    return Results.from_json(document, str(path)).models[0]


def _query_of(row: CaptionRow) -> str:
    return row.image or row.image_path


def gallery_rows(outputs: Mapping[str, str | os.PathLike], per_evaluation: int) -> list[GalleryRow]:
    """Gallery rows: the first ``per_evaluation`` queries of each caption evaluation, every model's caption.

    ``outputs`` maps model label to its ``evaluate_model`` folder, in the order the gallery shows them.
    The references shown are the first model's (retrieval does not depend on the model).
    """
    rows = []
    for key in CAPTION_EVALUATIONS:
        by_model = {label: _loaded(predictions_path(folder, key), "captions").captions
                    for label, folder in outputs.items()}
        first_folder, first = next(iter(outputs.values())), next(iter(by_model.values()))
        for index, row in enumerate(first[:per_evaluation]):
            for label, predictions in by_model.items():
                # the query as the evaluation file names it: predictions written before their paths were
                # relative hold the absolute paths of the folder they were made in
                if len(predictions) <= index or _query_of(predictions[index]) != _query_of(row):
                    raise RepicError(
                        f"the {key} predictions of {label} ({outputs[label]}) do not answer the same queries in "
                        "the same order as the other models'; evaluate the models again (`repic eval model`)"
                    )
            rows.append(
                GalleryRow(
                    query=_resolved(first_folder, row.image_path),
                    concepts=list(row.concepts),
                    references=[GalleryReference(_resolved(first_folder, image), tag) for tag, image in row.references],
                    captions={label: predictions[index].caption for label, predictions in by_model.items()},
                    evaluation=key,
                    question=row.question,
                )
            )
    return rows
