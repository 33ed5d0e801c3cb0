"""The collection folder: concepts, their reference images, and scenes with boxes, as plain files.

A collection is what sample builders read and what generators and importers write::

    DIR/collection.json   {"format": "repic-collection/1", "name": ..., "splits": {"train": [tags],
                           "heldout": [tags]}, "categories": [...], "config": {...}, ...}
    DIR/database.json     the RAP / RePIC concept database of all concepts (repic.concepts.database)
    DIR/references/...    reference images;   DIR/scenes/<split>/...  scene images
    DIR/scenes.jsonl      one repic.records.Scene a line, image paths relative to DIR

Choices, and why:

- Splits are by concept, and a scene of split S shows only concepts of S; loading checks this, so a
  held-out concept cannot leak into training through a hand-edited file.
- The concept database is the RAP format, read and written by ``repic.concepts.database``, so the
  official tools and ``repic db`` open it as it is.
- ``collection.json`` is written last: a folder without it is an unfinished collection, and loading says
  so instead of reading half a folder.
- Loading checks everything a later stage would trip over (unknown tags, boxes outside their image,
  missing image files) and reports the file, the line and the fix; keys it does not know are kept in
  ``meta`` and in each scene's ``extra`` and written back.
- ``check_images`` decodes every reference and scene image (the concept database's ``image_problem``).
  Loading does not, as it is read often; a sample build does, before it writes anything: samples that
  point at a deleted or broken image would only fail later, in training.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json, atomic_write_jsonl
from ..concepts.database import ConceptDatabase, image_problem
from ..errors import RepicError
from ..records import Concept, Scene

FORMAT = "repic-collection/1"
COLLECTION_FILE = "collection.json"
DATABASE_FILE = "database.json"
SCENES_FILE = "scenes.jsonl"
_SHOWN = 5  # problems listed in full in one error message, then counted


@dataclass
class Collection:
    """Concepts (tag -> ``Concept``), scenes and concept splits of one collection folder."""

    root: Path
    concepts: dict[str, Concept]
    scenes: list[Scene]
    splits: dict[str, list[str]]
    meta: dict[str, Any] = field(default_factory=dict)

    def _check_split(self, split: str) -> None:
        if split not in self.splits:
            raise RepicError(
                f"no split {split!r} in collection {self.root}; its splits: {', '.join(self.splits)}"
            )

    def concepts_in(self, split: str) -> list[Concept]:
        """The concepts of ``split``, in the collection's order."""
        self._check_split(split)
        return [self.concepts[tag] for tag in self.splits[split]]

    def scenes_in(self, split: str, kind: str | None = None) -> list[Scene]:
        """The scenes of ``split``; only those of ``kind`` (``single``, ``two``, ``four``, ``negative``) if given."""
        self._check_split(split)
        return [s for s in self.scenes if s.split == split and (kind is None or s.extra.get("kind") == kind)]

    def image_path(self, rel: str) -> Path:
        """The file of an image path stored relative to the collection folder."""
        return self.root / rel


# ------------------------------------------------------------------------------------------------ checks
def _summarize(problems: list[str]) -> str:
    shown = "; ".join(problems[:_SHOWN])
    return shown + (f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else "")


def _check(collection: Collection, *, check_files: bool) -> None:
    """Raise ``RepicError`` listing what makes the collection inconsistent."""
    owner: dict[str, str] = {}
    problems = []
    for split, tags in collection.splits.items():
        for tag in tags:
            if tag not in collection.concepts:
                problems.append(f"split {split!r} lists {tag}, which is not in {DATABASE_FILE}")
            elif tag in owner:
                problems.append(f"{tag} is in both splits {owner[tag]!r} and {split!r}")
            owner.setdefault(tag, split)
    if problems:
        raise RepicError(
            f"{collection.root / COLLECTION_FILE}: {_summarize(problems)}; fix the 'splits' lists"
        )
    unassigned = [tag for tag in collection.concepts if tag not in owner]
    if unassigned:
        raise RepicError(
            f"{collection.root / COLLECTION_FILE}: concept(s) {', '.join(unassigned[:_SHOWN])} are in no split; "
            "add each to one split's list"
        )
    problems, missing = [], []
    for line, scene in enumerate(collection.scenes, start=1):
        where = f"line {line} ({scene.image})"
        if scene.split not in collection.splits:
            problems.append(f"{where}: split {scene.split!r} is not one of {', '.join(collection.splits)}")
            continue
        for obj in scene.objects:
            x1, y1, x2, y2 = obj.box
            if not (0 <= x1 < x2 <= scene.width and 0 <= y1 < y2 <= scene.height):
                problems.append(
                    f"{where}: box {list(obj.box)} is not inside the {scene.width}x{scene.height} image"
                )
            if obj.concept is None:
                continue
            if obj.concept not in owner:
                problems.append(f"{where}: concept {obj.concept} is not in {DATABASE_FILE}")
            elif owner[obj.concept] != scene.split:
                problems.append(
                    f"{where}: a {scene.split!r} scene shows {obj.concept} of split {owner[obj.concept]!r}"
                )
        if check_files and not collection.image_path(scene.image).is_file():
            missing.append(scene.image)
    if problems:
        raise RepicError(
            f"{collection.root / SCENES_FILE}: {_summarize(problems)}; fix or remove those lines"
        )
    if missing:
        raise RepicError(
            f"{collection.root}: {len(missing)} scene image(s) missing ({_summarize(missing)}); "
            "restore them or regenerate the collection"
        )


def check_images(collection: Collection) -> None:
    """``RepicError`` listing every reference or scene image of ``collection`` that is missing or does not decode."""
    images = {image: f"reference image of {concept.tag}" for concept in collection.concepts.values()
              for image in concept.images}
    images.update({collection.image_path(scene.image): "scene image" for scene in collection.scenes})
    problems = []
    for image, what in images.items():
        found = image_problem(image)
        if found is not None:
            problems.append(f"{what} {_shown(image, collection.root)} {found[1]}")
    if problems:
        raise RepicError(
            f"collection {collection.root}: {len(problems)} image(s) cannot be used: {_summarize(problems)}; "
            "restore them, or regenerate or re-import the collection"
        )


def _shown(image: Path, root: Path) -> str:
    """``image`` relative to the collection folder when inside it (shorter), else as it is."""
    return str(image.relative_to(root)) if image.is_relative_to(root) else str(image)


# ------------------------------------------------------------------------------------------------ reading
def _read_meta(root: Path) -> dict[str, Any]:
    path = root / COLLECTION_FILE
    if not root.is_dir():
        raise RepicError(
            f"collection folder {root} does not exist; create one with `repic data synth --out {root}`"
        )
    if not path.is_file():
        raise RepicError(
            f"{root} has no {COLLECTION_FILE}, so it is not a collection (or its writing was interrupted); "
            f"generate one with `repic data synth --out {root} --overwrite`"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RepicError(f"{path} is not valid UTF-8 JSON ({exc}); fix the syntax or regenerate it") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise RepicError(
            f"{path}: 'format' is {found!r}, expected {FORMAT!r}; this file is not a repic collection"
        )
    splits = meta.get("splits")
    if not (
        isinstance(splits, dict)
        and splits
        and all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(t, str) for t in v)
            for k, v in splits.items()
        )
    ):
        raise RepicError(
            f"{path}: 'splits' must map split names to lists of concept tags, like "
            '{"train": ["<bako>"], "heldout": ["<tumi>"]}'
        )
    return meta


def _read_scenes(path: Path) -> list[Scene]:
    if not path.is_file():
        raise RepicError(f"{path} is missing; a collection lists its scenes there (it may be empty)")
    scenes = []
    for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
            scene = Scene.from_json(row)
            for obj in scene.objects:
                if len(obj.box) != 4:
                    raise ValueError(f"box {list(obj.box)} has {len(obj.box)} numbers, not 4")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise RepicError(
                f"{path} line {line} is not a scene ({detail}); each line needs image, size [w, h], split and "
                'objects [{"concept", "category", "box": [x1, y1, x2, y2]}]'
            ) from None
        scenes.append(scene)
    return scenes


def load_collection(root: str | os.PathLike) -> Collection:
    """Read a collection folder, checking that its files agree with each other."""
    root = Path(root).absolute()
    meta = _read_meta(root)
    database = ConceptDatabase.load(root / DATABASE_FILE)
    scenes = _read_scenes(root / SCENES_FILE)
    splits = {name: list(tags) for name, tags in meta["splits"].items()}
    collection = Collection(root, dict(database.concepts), scenes, splits, meta)
    _check(collection, check_files=True)
    return collection


# ------------------------------------------------------------------------------------------------ writing
def save_collection(collection: Collection) -> None:
    """Write ``database.json``, ``scenes.jsonl`` and then ``collection.json``, each atomically.

    Image files are not written here: they are the generator's or importer's, already in place.
    """
    _check(collection, check_files=False)
    root = collection.root
    database = ConceptDatabase(root / DATABASE_FILE)
    database.concepts = dict(collection.concepts)
    database.save()
    atomic_write_jsonl(root / SCENES_FILE, (scene.to_json() for scene in collection.scenes))
    categories = collection.meta.get("categories") or sorted(
        {c.category for c in collection.concepts.values()}
    )
    meta = {
        "format": FORMAT,
        "name": collection.meta.get("name", root.name),
        **{k: v for k, v in collection.meta.items() if k not in ("format", "name", "splits", "categories")},
        "splits": collection.splits,
        "categories": categories,
    }
    atomic_write_json(root / COLLECTION_FILE, meta)
    collection.meta = meta
