"""What to caption or ask: query images from files and folders, or the rows of an evaluation file.

A ``Query`` is one question about one query image. Three sources make them:

- ``image_queries(paths)``: image files, and folders searched recursively for image files (sorted, so a
  run is reproducible). Each gets the caption question given, else the first official evaluation
  question, and the concepts given (``--concepts``), else none: the captioner then retrieves them.
- ``read_eval_file(path)``, by the content of each row:

  * caption rows as ``repic data build`` writes them (``eval/single.jsonl``, ``two.jsonl``,
    ``four.jsonl``): ``{"image", "task", "concepts", "question", "references", "reference_concepts"}``;
    ``task``, ``question`` and the references are optional (a missing question gets the official one
    for its row, cycling the three as the official scripts do);
  * OCT and VLT samples in the official training format (``eval/oct.jsonl``, ``eval/vlt.jsonl``):
    ``{"image": [refs..., query] | query, "problem", "solution", "accu_reward_method": "yes_no" | "iou"}``,
    the concept asked about in ``concepts`` or, failing that, the first tag of the problem;
  * the official RePIC query files, one JSON object mapping each query image to its concepts
    (``{"photos/a.jpg": ["<bo>", "<kim>"], ...}``).

  Image paths resolve as ``repic.data.samples`` resolves them (``--image-root``, else a ``build.json``
  beside the file or one folder up, else the file's folder). Malformed rows raise ``RepicError`` naming
  the file and row; missing or unreadable *images* do not: the captioner reports and skips those
  queries and goes on with the rest.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.samples import check_solution, read_rows, resolve_image_root
from ..errors import RepicError
from ..prompts import eval_question
from ..records import concept_tag
from ..tasks import normalize_task

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
CAPTION_TASKS = ("ict", "ict_multi")
_TAG = re.compile(r"<[^<>\s/][^<>]*>")


@dataclass
class Query:
    """One question about one query image.

    ``concepts`` are the concepts truly in the image when the source says so (evaluation files) or the
    ones the user gave; empty means "retrieve them". ``references`` are ``(tag, image)`` pairs to show
    before the query when the source fixes them (evaluation caption rows, OCT reference images).
    ``question`` is the caption question, or the OCT / VLT problem text. ``label`` is how the query
    image is written in outputs (the path as the source spelled it).
    """

    source: str
    row: int
    image: Path
    label: str
    task: str = "ict"
    question: str = field(default_factory=lambda: eval_question(0))
    concepts: list[str] = field(default_factory=list)
    references: list[tuple[str, Path]] | None = None
    solution: Any = None

    @property
    def where(self) -> str:
        return f"{self.source}, row {self.row}"

    @property
    def is_caption(self) -> bool:
        return self.task in CAPTION_TASKS


def collect_images(paths: list[str | os.PathLike]) -> list[Path]:
    """The image files among ``paths``: files as given, folders searched recursively for image suffixes.

    A path that does not exist is kept (the captioner reports it as missing and goes on); a folder
    without any image file raises ``RepicError``.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not inside:
                suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
                raise RepicError(f"folder {path} holds no image files ({suffixes}); pass images or another folder")
            found += inside
        else:
            found.append(path)
    return found


def image_queries(
    paths: list[str | os.PathLike], *, question: str | None = None, concepts: list[str] | tuple[str, ...] = ()
) -> list[Query]:
    """Queries for image files and folders (see ``collect_images``), all with the same question/concepts."""
    tags = [concept_tag(name) for name in concepts]
    images = collect_images(paths)
    if not images:
        raise RepicError("no query images given; pass image files or folders (--images PATH ...)")
    return [
        Query(
            source="--images",
            row=number,
            image=image.absolute(),
            label=str(image),
            task="ict_multi" if len(tags) > 1 else "ict",
            question=question or eval_question(0),
            concepts=list(tags),
        )
        for number, image in enumerate(images, start=1)
    ]


def read_eval_file(path: str | os.PathLike, image_root: str | os.PathLike | None = None) -> list[Query]:
    """Queries for every row of an evaluation file (formats in the module docstring)."""
    path = Path(path)
    root = resolve_image_root(path, image_root)
    document = _read_json_document(path) if path.suffix.lower() == ".json" else None
    if isinstance(document, dict):
        return _official_query_map(path, document, root)
    rows = list(enumerate(document, start=1)) if isinstance(document, list) else read_rows(path)
    if not rows:
        raise RepicError(f"{path} has no rows; an evaluation file needs at least one query")
    return [_query_from_row(path, number, row, root, position) for position, (number, row) in enumerate(rows)]


def _read_json_document(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RepicError(f"evaluation file {path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RepicError(f"cannot read evaluation file {path}: {exc}; it must be UTF-8 JSON or JSONL") from None


def _official_query_map(path: Path, document: dict[str, Any], root: Path) -> list[Query]:
    queries = []
    for number, (image, concepts) in enumerate(document.items(), start=1):
        where = f"{path}, entry {image!r}"
        tags = _tags(concepts, where)
        queries.append(
            Query(str(path), number, root / image, image, "ict_multi" if len(tags) > 1 else "ict",
                  eval_question(number - 1), tags)
        )
    if not queries:
        raise RepicError(f"{path} maps no query image to concepts; an evaluation file needs at least one")
    return queries


def _query_from_row(path: Path, number: int, row: Any, root: Path, position: int) -> Query:
    where = f"{path}, row {number}"
    if not isinstance(row, dict):
        raise RepicError(f"{where}: expected a JSON object, found {type(row).__name__}")
    method = row.get("accu_reward_method", row.get("task"))
    task = normalize_task(method, where=where) if method is not None else None
    if task in ("oct", "vlt"):
        return _sample_query(path, number, row, root, task)
    image = row.get("image")
    if not isinstance(image, str) or not image.strip():
        raise RepicError(
            f"{where}: a caption row needs 'image', one query image path (OCT / VLT rows need "
            "'accu_reward_method': 'yes_no' or 'iou')"
        )
    tags = _tags(row.get("concepts"), where)
    question = row.get("question") or eval_question(position)
    if not isinstance(question, str):
        raise RepicError(f"{where}: 'question' must be a string, found {question!r}")
    return Query(
        source=str(path),
        row=number,
        image=root / image,
        label=image,
        task=task or ("ict_multi" if len(tags) > 1 else "ict"),
        question=question,
        concepts=tags,
        references=_references(row, where, root),
    )


def _sample_query(path: Path, number: int, row: dict[str, Any], root: Path, task: str) -> Query:
    where = f"{path}, row {number}"
    missing = [key for key in ("image", "problem", "solution") if key not in row]
    if missing:
        raise RepicError(f"{where}: an {task} row needs image, problem and solution; missing {', '.join(missing)}")
    images = [row["image"]] if isinstance(row["image"], str) else row["image"]
    if not isinstance(images, list) or not images or not all(isinstance(i, str) and i.strip() for i in images):
        raise RepicError(f"{where}: 'image' must be a path or a non-empty list of paths, found {row['image']!r}")
    problem = row["problem"]
    if not isinstance(problem, str) or not problem.strip():
        raise RepicError(f"{where}: 'problem' must be a non-empty string")
    solution = check_solution(task, row["solution"], where)
    named = row.get("concepts") or _TAG.findall(problem)[:1]
    tags = _tags(named, where)
    references = [(tags[0], root / image) for image in images[:-1]]
    return Query(str(path), number, root / images[-1], images[-1], task, problem, tags, references, solution)


def _references(row: dict[str, Any], where: str, root: Path) -> list[tuple[str, Path]] | None:
    images = row.get("references")
    if images is None:
        return None
    tags = _tags(row.get("reference_concepts"), f"{where} (reference_concepts)")
    if not isinstance(images, list) or not all(isinstance(i, str) and i.strip() for i in images):
        raise RepicError(f"{where}: 'references' must be a list of image paths, found {images!r}")
    if len(images) != len(tags):
        raise RepicError(
            f"{where}: {len(images)} references but {len(tags)} reference_concepts; give one tag per image"
        )
    return [(tag, root / image) for tag, image in zip(tags, images, strict=True)]


def _tags(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(t, str) and t.strip() for t in value):
        raise RepicError(f'{where}: concepts must be a non-empty list of tags like ["<bo>", "<kim>"], found {value!r}')
    return [concept_tag(tag) for tag in value]
