"""Choose the top-K concepts of a database for a query image: the retrieval step of RAP / RePIC captioning.

``Retriever.retrieve(image, question)`` embeds *views* of the query (the whole image, optional grid crops,
optional detector crops), searches the concept index with each, and ranks concepts by their best
cosine similarity over every (view, reference image) pair. What it chose and why:

- **Max over views and reference images**: a concept is as close as its closest reference image to its
  closest view, so a crop showing one object finds that object's concept in a crowded frame.
- **Exact top-K from a bounded search**: each view searches ``(K + named) x m`` rows (``m``, the most
  reference images any concept has), enough for that view's exact top K and so for the overall top K.
- **Grid crops** (on by default): nine overlapping half-size windows, a cheap stand-in for a detector.
- **Detector crops** (``repic.concepts.detect``): prompted with the database's categories, off unless a
  detector is given.
- **Token views**: an embedder with token embeddings (``tower:MODEL``, ``repic.concepts.tower``) scores a
  concept by its best visual token (or 2 x 2 block of tokens) of the query; with grid crops on, it also
  embeds 81 half-size windows (a 9 x 9 grid) the way it embeds references. ``use_grid_crops=False`` keeps
  the token views alone.
- **Concepts named in the question are always included**, first and in the order they are named, looked
  up by dictionary (the cost does not grow with the database); retrieval fills the places left up to K.
- K must be between 1 and the number of concepts in the index; anything else is a ``RepicError``.

Measurements and history: docs/notes/retrieval-views.md
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import RepicError
from .database import ConceptDatabase
from .detect import ObjectDetector
from .embed import BUILTIN_EMBEDDER, Embedder, load_embedder
from .index import ConceptIndex, OpenedIndex, open_index

DEFAULT_TOP_K = 2  # the paper's choice
_TAG = re.compile(r"<[^<>]+>")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class RetrievedConcept:
    """One concept chosen for a query.

    ``score`` is the cosine similarity of the best (view, reference image) pair, ``None`` for a concept
    taken because the question names it; ``image`` is the reference image to show for it (the best
    matching one, or the concept's first image when named); ``view`` says which view matched
    (``"image"``, ``"grid 1"``..``"grid 9"``, ``"token view 1"``..., ``"crop 1 (cat)"``...) or ``"named in the
    question"``.
    """

    tag: str
    score: float | None
    image: Path
    view: str

    def to_json(self) -> dict[str, object]:
        score = None if self.score is None else round(self.score, 6)
        return {"tag": self.tag, "score": score, "image": str(self.image), "view": self.view}


NAMED_VIEW = "named in the question"
TOKEN_WINDOW_STEPS = 9  # half-size windows beside token views: 81, at sixteenth steps (see the top)


def grid_crops(image: Image.Image, steps: int = 3) -> list[Image.Image]:
    """Half-size windows of ``image`` on a ``steps`` x ``steps`` grid, evenly spaced from one edge to the
    other, row by row: nine at quarter steps by default.

    >>> [crop.size for crop in grid_crops(Image.new("RGB", (8, 4)))][:2]
    [(4, 2), (4, 2)]
    >>> [crop.getbbox() for crop in grid_crops(Image.new("RGB", (8, 4), "red"), steps=5)][:3]
    [(0, 0, 4, 2), (0, 0, 4, 2), (0, 0, 4, 2)]
    """
    width, height = image.size
    half_w, half_h = max(1, width // 2), max(1, height // 2)
    xs = [round(i * (width - half_w) / (steps - 1)) for i in range(steps)] if steps > 1 else [0]
    ys = [round(i * (height - half_h) / (steps - 1)) for i in range(steps)] if steps > 1 else [0]
    return [image.crop((x, y, x + half_w, y + half_h)) for y in ys for x in xs]


class Retriever:
    """Top-K concepts of one database for query images (see the module docstring)."""

    def __init__(
        self,
        database: ConceptDatabase,
        index: ConceptIndex,
        embedder: Embedder,
        *,
        k: int = DEFAULT_TOP_K,
        use_grid_crops: bool = True,
        detector: ObjectDetector | None = None,
    ) -> None:
        if index.embedder_id != embedder.id:
            raise RepicError(
                f"the index was built with {index.embedder_id} but queries would be embedded with "
                f"{embedder.id}; rebuild the index with the query embedder"
            )
        check_top_k(k, len(index.concepts), database.path or "the database")
        self.database, self.index, self.embedder = database, index, embedder
        self.k, self.use_grid_crops, self.detector = k, use_grid_crops, detector
        self.categories = sorted({concept.category for concept in database if concept.category.strip()})
        # Lookups by tag and by display name (its words, lower-cased), so naming costs the same for ten
        # concepts or ten thousand.
        self._by_tag = {concept.tag.lower(): concept.tag for concept in database}
        self._by_name = {_words_key(concept.name): concept.tag for concept in database if _words_key(concept.name)}
        self._longest_name = max((len(key.split()) for key in self._by_name), default=0)

    def named_in(self, question: str) -> list[str]:
        """Tags of the database's concepts that ``question`` names, in the order it names them."""
        found: dict[str, int] = {}
        for match in _TAG.finditer(question):
            tag = self._by_tag.get(match.group(0).lower())
            if tag is not None:
                found.setdefault(tag, match.start())
        words = list(_WORD.finditer(question))
        for start in range(len(words)):
            for length in range(1, min(self._longest_name, len(words) - start) + 1):
                key = " ".join(word.group(0).lower() for word in words[start : start + length])
                tag = self._by_name.get(key)
                if tag is not None:
                    found.setdefault(tag, words[start].start())
        return sorted(found, key=lambda tag: (found[tag], tag))

    def query_vectors(self, image: Image.Image) -> tuple[np.ndarray, list[str]]:
        """The query's vectors and their view names: an embedder with token embeddings (``tower:``) gives
        one per visual token, in place of grid crops; detector crops are added either way."""
        embed_tokens = getattr(self.embedder, "embed_tokens", None)
        if embed_tokens is None:
            views = self.views(image)
            return self.embedder.embed([view for _, view in views]), [name for name, _ in views]
        image = image.convert("RGB")
        tokens = embed_tokens(image)
        names = [f"token view {number}" for number in range(1, len(tokens) + 1)]
        if self.use_grid_crops:
            windows = grid_crops(image, steps=TOKEN_WINDOW_STEPS)
            tokens = np.concatenate([tokens, self.embedder.embed(windows)])
            names += [f"window {number}" for number in range(1, len(windows) + 1)]
        crops = self._detector_views(image)
        if crops:
            tokens = np.concatenate([tokens, self.embedder.embed([crop for _, crop in crops])])
            names += [name for name, _ in crops]
        return tokens, names

    def views(self, image: Image.Image) -> list[tuple[str, Image.Image]]:
        """The query's views: the whole image, then grid crops and detector crops when enabled."""
        image = image.convert("RGB")
        views = [("image", image)]
        if self.use_grid_crops:
            views += [(f"grid {number}", crop) for number, crop in enumerate(grid_crops(image), start=1)]
        return views + self._detector_views(image)

    def _detector_views(self, image: Image.Image) -> list[tuple[str, Image.Image]]:
        if self.detector is None:
            return []
        return [
            (f"crop {number} ({found.label})", image.crop(tuple(round(v) for v in found.box)))
            for number, found in enumerate(self.detector.detect(image, self.categories), start=1)
        ]

    def retrieve(self, image: Image.Image, question: str = "") -> list[RetrievedConcept]:
        """The concepts named in ``question``, then the most similar others, K in all (or more if named)."""
        named = self.named_in(question)
        chosen = [
            RetrievedConcept(tag, None, self.database.get(tag).images[0], NAMED_VIEW) for tag in named
        ]
        wanted = self.k - len(named)
        if wanted <= 0:
            return chosen
        vectors, view_names = self.query_vectors(image)
        ranked = self.rank(vectors, view_names, exclude=set(named))
        return chosen + ranked[:wanted]

    def rank(
        self, vectors: np.ndarray, view_names: Sequence[str], *, exclude: set[str] = frozenset()
    ) -> list[RetrievedConcept]:
        """Concepts by their best similarity to any view, for the top ``K`` places (exact, see above)."""
        rows = (self.k + len(exclude)) * self.index.max_images_per_concept
        scores, numbers = self.index.search(vectors, rows)
        best: dict[str, RetrievedConcept] = {}
        for view_name, view_scores, view_rows in zip(view_names, scores, numbers, strict=True):
            for score, row in zip(view_scores.tolist(), view_rows.tolist(), strict=True):
                if row < 0:  # FAISS pads with -1 when asked for more rows than it holds
                    continue
                tag = self.index.tags[row]
                if tag in exclude or (tag in best and best[tag].score >= score):
                    continue
                best[tag] = RetrievedConcept(tag, float(score), Path(self.index.images[row]), view_name)
        return sorted(best.values(), key=lambda found: (-found.score, found.tag))


def check_top_k(k: int, available: int, where: object) -> None:
    """Raise ``RepicError`` unless 1 <= ``k`` <= ``available`` concepts."""
    if not 1 <= k <= available:
        raise RepicError(
            f"cannot retrieve the top {k} concepts: {where} has {available} concept(s); "
            f"choose --top-k between 1 and {max(1, available)}"
            + ("" if available else " after adding concepts with `repic db add`")
        )


def _words_key(name: str) -> str:
    """A display name as lower-case words joined by single spaces: ``"Iron  Man"`` -> ``"iron man"``."""
    return " ".join(word.lower() for word in _WORD.findall(name))


def open_retriever(
    database: ConceptDatabase,
    *,
    embedder: str | os.PathLike | Embedder = BUILTIN_EMBEDDER,
    k: int = DEFAULT_TOP_K,
    use_grid_crops: bool = True,
    detector: str | os.PathLike | ObjectDetector | None = None,
    index_path: str | os.PathLike | None = None,
    rebuild_index: bool = False,
    device: str = "cpu",
) -> tuple[Retriever, OpenedIndex]:
    """A ``Retriever`` over ``database``, its index opened (or rebuilt) next to it or at ``index_path``.

    ``embedder`` and ``detector`` are instances or what ``load_embedder`` / ``ObjectDetector`` load.
    """
    if len(database):  # an empty database gets its own message from the index
        check_top_k(k, len(database), database.path or "the database")
    if not isinstance(embedder, Embedder):
        embedder = load_embedder(embedder, device=device)
    if detector is not None and not isinstance(detector, ObjectDetector):
        detector = ObjectDetector(detector, device=device)
    opened = open_index(database, embedder, index_path, rebuild=rebuild_index)
    retriever = Retriever(
        database, opened.index, embedder, k=k, use_grid_crops=use_grid_crops, detector=detector
    )
    return retriever, opened
