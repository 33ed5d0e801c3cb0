"""The retrieval index of a concept database: one embedding per reference image, in FAISS, cached on disk.

``open_index(database, embedder)`` returns an index that matches the database *now*: it reads the index
saved next to the database when that one was built from the same content with the same embedder, and
otherwise embeds every reference image and saves the result. What it chose and why:

- **Exact inner-product search** (``faiss.IndexFlatIP``) on L2-normalised rows, i.e. cosine similarity,
  the ranking RAP / RePIC get from ``IndexFlatL2`` on normalised CLIP embeddings (for unit vectors
  ``|a - b|^2 = 2 - 2 a.b``), but with scores that read as similarities. A flat index is exact and,
  for personal databases (tens to thousands of images), fast: 10,000 rows answer in well under a
  millisecond (``benchmarks/retrieval_latency.py``).
- **Staleness by content, not by time**: the saved index records the database's ``content_hash`` (every
  concept's fields and image bytes, see ``ConceptDatabase.content_hash``) and the embedder's ``id``;
  either differing means a rebuild. Moving the database folder does not (a current index takes its rows'
  image paths from the database as it is now, so retrieval hands out images that exist); editing an info
  or replacing an image does.
- **Files**: ``database.json`` gets ``database.index.faiss`` (FAISS's own serialisation) and
  ``database.index.json`` (format, embedder id, database hash, one ``[tag, image]`` per row and the
  SHA-256 of the ``.faiss`` bytes, so a pair written by two different builds is detected). Both writes are
  atomic and the ``.json`` comes last, so an interrupted build leaves an index that is rebuilt next time.
- **Problems are the user's to fix**: an empty database or one whose images are missing or unreadable
  raises ``RepicError`` listing them; a folder that cannot hold the index says to pass another path.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from PIL import Image

from ..atomic import atomic_write_bytes, atomic_write_json
from ..errors import RepicError
from ..locking import locked
from .database import ConceptDatabase, image_problem
from .embed import Embedder

INDEX_FORMAT = "repic-concept-index/1"
_SHOWN_PROBLEMS = 5


@dataclass
class ConceptIndex:
    """Embeddings of every reference image of a database, row ``i`` belonging to ``tags[i]``."""

    embedder_id: str
    database_hash: str
    tags: list[str]
    images: list[str]
    vectors: np.ndarray  # [rows, dim], L2-normalised float32

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        self._faiss = faiss.IndexFlatIP(self.vectors.shape[1])
        self._faiss.add(self.vectors)

    @property
    def concepts(self) -> list[str]:
        """The tags with at least one row, in row order."""
        return list(dict.fromkeys(self.tags))

    @property
    def max_images_per_concept(self) -> int:
        counts: dict[str, int] = {}
        for tag in self.tags:
            counts[tag] = counts.get(tag, 0) + 1
        return max(counts.values(), default=0)

    def search(self, queries: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``rows`` most similar rows for each query: ``(scores [Q, rows], row numbers [Q, rows])``."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.vectors.shape[1]:
            raise RepicError(
                f"query embeddings have shape {queries.shape}, the index holds {self.vectors.shape[1]}-d "
                f"rows of {self.embedder_id}; embed queries with the embedder that built the index"
            )
        return self._faiss.search(queries, min(rows, len(self.tags)))

    def serialize(self) -> bytes:
        return faiss.serialize_index(self._faiss).tobytes()


@dataclass(frozen=True)
class OpenedIndex:
    """An index ready to search, where it lives (None: not saved) and whether this call built it, and why."""

    index: ConceptIndex
    path: Path | None
    rebuilt: bool
    reason: str


def index_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The ``.faiss`` and ``.json`` files of an index: ``database.json`` -> ``database.index.faiss/.json``.

    >>> [p.name for p in index_paths("dbs/database.json")]
    ['database.index.faiss', 'database.index.json']
    """
    path = Path(path)
    stem = path.name
    for suffix in (".json", ".faiss", ".index"):  # the database file itself or either index file
        stem = stem.removesuffix(suffix)
    return path.with_name(f"{stem}.index.faiss"), path.with_name(f"{stem}.index.json")


def check_database(database: ConceptDatabase) -> None:
    """Raise ``RepicError`` unless every concept has at least one reference image that decodes."""
    where = database.path or "the database"
    if not len(database):
        raise RepicError(f"{where} has no concepts to retrieve; add some with `repic db add {where} ...`")
    problems = [f"{concept.tag} has no reference image" for concept in database if not concept.images]
    looked = ""  # for a relative path found nowhere: the folders tried and the flag that names another
    for concept in database:
        for image in concept.images:
            found = image_problem(image)
            if found is not None:
                problems.append(f"image {image} of {concept.tag} {found[1]}")
                looked = looked or database.where_looked(image)
    if problems:
        more = f"; and {len(problems) - _SHOWN_PROBLEMS} more" if len(problems) > _SHOWN_PROBLEMS else ""
        raise RepicError(
            f"{where}: {len(problems)} reference image problem(s): {'; '.join(problems[:_SHOWN_PROBLEMS])}"
            f"{more}. {looked[:1].upper() + looked[1:] + '. ' if looked else ''}Restore the images or fix the "
            f"paths (`repic db validate {where}` lists them all)"
        )


def build_index(
    database: ConceptDatabase, embedder: Embedder, *, batch_size: int = 64, database_hash: str | None = None
) -> ConceptIndex:
    """Embed every reference image of ``database`` (checked first, see ``check_database``).

    ``database_hash`` is the database's ``content_hash()`` when the caller has it already.
    """
    check_database(database)
    rows = [(concept.tag, image) for concept in database for image in concept.images]
    vectors = []
    for start in range(0, len(rows), batch_size):
        images = []
        for _, path in rows[start : start + batch_size]:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        vectors.append(embedder.embed(images))
    return ConceptIndex(
        embedder_id=embedder.id,
        database_hash=database_hash or database.content_hash(),
        tags=[tag for tag, _ in rows],
        images=[str(path) for _, path in rows],
        vectors=np.concatenate(vectors),
    )


def save_index(index: ConceptIndex, path: str | os.PathLike) -> Path:
    """Write the index pair for ``path`` (see ``index_paths``) atomically; returns the ``.json`` path."""
    faiss_path, meta_path = index_paths(path)
    data = index.serialize()
    meta = {
        "format": INDEX_FORMAT,
        "embedder": index.embedder_id,
        "database_hash": index.database_hash,
        "dim": int(index.vectors.shape[1]),
        "faiss_sha256": hashlib.sha256(data).hexdigest(),
        "rows": [[tag, image] for tag, image in zip(index.tags, index.images, strict=True)],
    }
    try:
        atomic_write_bytes(faiss_path, data)
        atomic_write_json(meta_path, meta, indent=None)
    except OSError as exc:
        raise RepicError(
            f"cannot write the retrieval index {faiss_path}: {exc.strerror or exc}; make its folder writable "
            "or keep the index elsewhere (--index PATH)"
        ) from None
    return meta_path


def read_index(path: str | os.PathLike) -> tuple[ConceptIndex | None, str]:
    """The saved index for ``path`` and ``""``, or ``None`` and why it cannot be used."""
    faiss_path, meta_path = index_paths(path)
    if not meta_path.is_file() or not faiss_path.is_file():
        return None, "no saved index"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        data = faiss_path.read_bytes()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"the saved index could not be read ({exc})"
    if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT:
        return None, f"{meta_path} is not a {INDEX_FORMAT} file"
    if hashlib.sha256(data).hexdigest() != meta.get("faiss_sha256"):
        return None, f"{faiss_path} does not belong to {meta_path}"
    stored = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    rows = meta.get("rows", [])
    if stored.ntotal != len(rows) or stored.ntotal == 0:
        return None, f"{faiss_path} holds {stored.ntotal} rows, its description {len(rows)}"
    vectors = stored.reconstruct_n(0, stored.ntotal)
    index = ConceptIndex(
        embedder_id=str(meta.get("embedder")),
        database_hash=str(meta.get("database_hash")),
        tags=[row[0] for row in rows],
        images=[row[1] for row in rows],
        vectors=vectors,
    )
    return index, ""


def _images_now(index: ConceptIndex, database: ConceptDatabase) -> list[str] | None:
    """The image path of each saved row as ``database`` names it now, or ``None`` when they do not pair up.

    The content hash covers each concept's images in order but not their paths, so the k-th row of a tag
    is that concept's k-th image wherever the folder has moved since the index was saved.
    """
    seen: dict[str, int] = {}
    images = []
    for tag in index.tags:
        concept, k = database.concepts.get(tag), seen.get(tag, 0)
        if concept is None or k >= len(concept.images):
            return None
        seen[tag] = k + 1
        images.append(str(concept.images[k]))
    return images if seen == {concept.tag: len(concept.images) for concept in database if concept.images} else None


def open_index(
    database: ConceptDatabase,
    embedder: Embedder,
    path: str | os.PathLike | None = None,
    *,
    rebuild: bool = False,
) -> OpenedIndex:
    """An index matching ``database`` and ``embedder``: the saved one when current, else a fresh build.

    ``path`` defaults to the database file (the index lives next to it); a database without a file and no
    ``path`` gets an index that is not saved.
    """
    target = Path(path) if path is not None else database.path
    if target is None:
        return _open_index(database, embedder, None, rebuild=rebuild)
    # Two runs opening one stale index would both rebuild it and interleave the pair's two files.
    with locked(index_paths(target)[1], what="retrieval index"):
        return _open_index(database, embedder, target, rebuild=rebuild)


def _open_index(
    database: ConceptDatabase, embedder: Embedder, target: Path | None, *, rebuild: bool
) -> OpenedIndex:
    current_hash = None
    if not rebuild and target is not None:
        saved, reason = read_index(target)
        if saved is not None:
            current_hash = database.content_hash()
            if saved.embedder_id != embedder.id:
                reason = f"the saved index was built with {saved.embedder_id}, not {embedder.id}"
            elif saved.database_hash != current_hash:
                reason = "the database changed since the index was built"
            elif (images := _images_now(saved, database)) is None:
                reason = "the saved index's rows do not match the database's reference images"
            else:
                saved.images = images
                return OpenedIndex(saved, target, rebuilt=False, reason="up to date")
    else:
        reason = "rebuild requested" if rebuild else "the database has no file"
    index = build_index(database, embedder, database_hash=current_hash)
    if target is not None:
        save_index(index, target)
    return OpenedIndex(index, target, rebuilt=True, reason=reason)
