"""The one row format every imported benchmark is written in, and its folder: what ``repic bench`` reads.

A benchmark folder (``repic bench import FORMAT SRC --out DIR``) holds:

- ``database.json``: the concepts (a RAP / RePIC concept database, ``repic.concepts``), their reference
  images copied under ``references/<name>/``;
- ``tasks/<kind>.jsonl``: one ``BenchRow`` per line, for each kind that the source has (``KINDS``);
- ``images/``: the query images the rows name (paths in rows are relative to the folder);
- ``manifest.json`` (``Manifest``): the format, where it came from, counts per kind, the query images the
  source names but does not hold (listed, never silently dropped), and the SHA-256 of every annotation
  file read, so two imports of the same source can be told apart from two of different versions.

Kinds and their fields (``answer`` is the truth; every row has ``id``, ``kind`` and ``question``):

- ``recognition``: is ``concepts[0]`` in ``image``? ``answer`` ``"yes"`` / ``"no"``; a negative says
  whether its image shows a concept of the same category (``negative: "same_category"``) or another
  (``"other_category"``), or ``None`` when the source does not say.
- ``caption``: a caption of ``image`` naming ``concepts`` (the concepts in it; ``answer`` holds the
  reference captions, possibly empty).
- ``choice``: multiple choice; ``options`` the texts in the source's order, ``answer`` the index of the
  right one. ``image`` is ``None`` for a text-only question.
- ``open``: a free answer compared with ``answer`` (a text) after normalisation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json, atomic_write_jsonl
from ..errors import RepicError

KINDS = ("recognition", "caption", "choice", "open")
NEGATIVE_KINDS = ("same_category", "other_category")
TASKS_DIR, MANIFEST = "tasks", "manifest.json"
MANIFEST_FORMAT = "repic-bench/1"


@dataclass(frozen=True)
class BenchRow:
    """One question of a benchmark (see the module for each kind's fields)."""

    id: str
    kind: str
    question: str
    answer: Any
    image: str | None = None  # relative to the benchmark folder; None for a text-only question
    concepts: Sequence[str] = ()  # bracketed tags, as in the database
    options: Sequence[str] = ()  # ``choice`` only
    negative: str | None = None  # ``recognition`` negatives only: NEGATIVE_KINDS, or None when unknown
    source: str = ""  # where in the source the row came from (file and key), for a reader's check
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"row {self.id!r}"
        if not self.id:
            raise RepicError("a benchmark row needs an id")
        if self.kind not in KINDS:
            raise RepicError(f"{where}: unknown kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.kind == "recognition":
            if self.answer not in ("yes", "no") or len(self.concepts) != 1:
                raise RepicError(f"{where}: a recognition row asks about one concept and answers 'yes' or 'no'")
            if self.negative is not None and (self.answer != "no" or self.negative not in NEGATIVE_KINDS):
                raise RepicError(f"{where}: 'negative' is for 'no' rows: one of {', '.join(NEGATIVE_KINDS)}")
        if self.kind == "choice" and not (len(self.options) >= 2 and isinstance(self.answer, int)
                                          and 0 <= self.answer < len(self.options)):
            raise RepicError(f"{where}: a choice row needs two or more options and the index of the right one")
        if self.kind == "open" and not isinstance(self.answer, str):
            raise RepicError(f"{where}: an open row's answer is a text")
        if self.kind in ("recognition", "caption") and self.image is None:
            raise RepicError(f"{where}: a {self.kind} row needs its image")

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        row["concepts"], row["options"] = list(self.concepts), list(self.options)
        return row

    @classmethod
    def from_json(cls, raw: Any, where: str) -> BenchRow:
        if not isinstance(raw, dict):
            raise RepicError(f"{where}: a benchmark row is a JSON object, found {type(raw).__name__}")
        known = {name: raw[name] for name in cls.__dataclass_fields__ if name in raw}
        try:
            return cls(**known)
        except TypeError as exc:
            raise RepicError(f"{where}: {exc}") from None
        except RepicError as exc:
            raise RepicError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class Manifest:
    """What a benchmark folder holds and where it came from (``manifest.json``)."""

    format: str  # the source format's name (``repic bench import FORMAT``)
    source: str  # the SRC folder or file imported
    counts: dict[str, int]  # rows per kind
    concepts: int
    missing_images: Sequence[str] = ()  # query or reference images the source names but does not hold
    hashes: dict[str, str] = field(default_factory=dict)  # annotation file (relative to SRC) -> SHA-256
    notes: Sequence[str] = ()  # what the import decided that a reader should know (e.g. a label fixed)

    def to_json(self) -> dict[str, Any]:
        return {"manifest": MANIFEST_FORMAT, **asdict(self), "missing_images": list(self.missing_images),
                "notes": list(self.notes)}


def write_rows(folder: str | os.PathLike, rows: Iterable[BenchRow]) -> dict[str, int]:
    """Write ``rows`` into ``folder/tasks/<kind>.jsonl`` (ids unique across the folder); the count per kind."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    for row in rows:
        if row.id in seen:
            raise RepicError(f"benchmark row id {row.id!r} is used twice; every row needs its own id")
        seen.add(row.id)
        by_kind.setdefault(row.kind, []).append(row.to_json())
    for kind, kind_rows in by_kind.items():
        atomic_write_jsonl(Path(folder) / TASKS_DIR / f"{kind}.jsonl", kind_rows)
    return {kind: len(kind_rows) for kind, kind_rows in by_kind.items()}


def write_manifest(folder: str | os.PathLike, manifest: Manifest) -> Path:
    """Write ``manifest.json`` into ``folder``."""
    return atomic_write_json(Path(folder) / MANIFEST, manifest.to_json())


def read_rows(folder: str | os.PathLike, kinds: Sequence[str] = KINDS) -> list[BenchRow]:
    """Every row of a benchmark folder's task files of ``kinds``, in file order."""
    tasks = Path(folder) / TASKS_DIR
    if not (Path(folder) / MANIFEST).is_file():
        raise RepicError(f"{folder} holds no {MANIFEST}, so it is not a benchmark folder; make one with "
                         "`repic bench import FORMAT SRC --out DIR`")
    rows = []
    for kind in kinds:
        path = tasks / f"{kind}.jsonl"
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RepicError(f"{path}, line {number}: not JSON ({exc.msg})") from None
                rows.append(BenchRow.from_json(raw, f"{path}, line {number}"))
    return rows


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RepicError(f"cannot read {path} ({exc}); import the benchmark again") from None
