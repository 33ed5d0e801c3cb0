"""Import concept collections from the layouts users already have, as a collection folder.

Three sources:

* ``import_folders``: one folder per concept (Yo'LLaVA, MyVLM and DreamBooth style)::

      ROOT/<name>/*.jpg|jpeg|png|webp|bmp   the concept's photos, sorted by file name
      ROOT/<name>/info.txt                  optional description (default: "a <category>")
      ROOT/<name>/category.txt              optional category (default: --category)

  The first ``references`` photos (default 1) become reference images, the others query scenes that
  show the concept.
* ``import_database``: a RAP / RePIC ``database.json``; a concept's first ``references`` images are
  references, the rest scenes.
* ``import_samples``: an official RePIC training file (JSON list or JSONL), checked and written as a
  build folder (``train.jsonl`` + ``build.json``), so it trains like a build of ours.

Boxes are optional, from a JSON list (``{"image", "concept", "box": [x1, y1, x2, y2]}``) or a CSV with the
header ``image,concept,x1,y1,x2,y2``, image paths relative to the import root; a concept shown without a
box is recorded as unboxed and never given a made-up one. Splits are by concept (``heldout``, else a seeded
``heldout_ratio``), and a scene showing concepts of both splits is left out and counted. Every problem of
one kind is reported at once, with the fix, before anything is written.

In full: docs/notes/concept-import.md
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ..atomic import atomic_write_bytes, atomic_write_json
from ..concepts.database import ConceptDatabase, image_problem
from ..errors import RepicError
from ..outputs import check_output_folder, replace_folder
from ..records import Box, Concept, Sample, Scene, SceneObject, concept_tag, strip_tag
from .collection import COLLECTION_FILE, Collection, load_collection, save_collection
from .samples import load_samples, resolve_image_root, task_mix, write_samples
from .tasks import BUILD_FILE, PARTIAL_KEY, TRAIN_FILE, UNBOXED_KEY

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class ImportResult:
    """The collection written and what the import had to leave out or could not know."""

    collection: Collection
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImportOptions:
    """What a concept import (``import_folders``, ``import_database``) takes besides its source.

    ``references`` images per concept are its reference images, the rest become scenes; ``boxes`` is a box
    file (see the module docstring); ``heldout`` names the held-out concepts, else ``heldout_ratio`` of
    them are drawn with ``seed``; ``copy`` copies the images into the collection; ``overwrite`` replaces
    an earlier import in the output folder.
    """

    references: int = 1
    boxes: str | os.PathLike | None = None
    heldout: Sequence[str] | None = None
    heldout_ratio: float = 0.25
    seed: int = 0
    copy: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.references < 1:
            raise RepicError(f"references is {self.references}; each concept needs at least one reference image")


def _fail_all(what: str, problems: Sequence[str], fix: str) -> None:
    """Raise one error listing every problem of a kind, the fix first so a long list does not bury it."""
    if problems:
        listed = "\n  ".join(problems)
        raise RepicError(f"{len(problems)} {what}. {fix}\n  {listed}")


def _check_images(paths: Sequence[Path]) -> None:
    problems = [f"{path} {found[1]}" for path in paths if (found := image_problem(path))]
    fix = "Restore or replace these files, or remove them from the input."
    _fail_all("image(s) cannot be used", problems, fix)


def _prepare(out_dir: str | os.PathLike, source: str | os.PathLike, overwrite: bool) -> Path:
    """The output folder, checked before anything is read: new, empty, or an earlier import to replace."""
    out = Path(out_dir).absolute()
    return check_output_folder(out, marker=COLLECTION_FILE, inputs=[source], overwrite=overwrite)


# ------------------------------------------------------------------------------------------ boxes
@dataclass(frozen=True)
class BoxRow:
    """One line of a boxes file: a concept in an image, with its box when known."""

    image: Path
    tag: str
    box: Box | None
    where: str


def read_boxes(path: str | os.PathLike, base: Path) -> list[BoxRow]:
    """Read a JSON or CSV boxes file; image paths resolve against ``base``."""
    path = Path(path)
    if not path.is_file():
        raise RepicError(f"boxes file {path} {'is a folder' if path.is_dir() else 'does not exist'}; give a .json or .csv file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        needed = ["image", "concept", "x1", "y1", "x2", "y2"]
        if reader.fieldnames is None or any(name not in reader.fieldnames for name in needed):
            raise RepicError(f"{path}: the CSV header must be {','.join(needed)}; found {reader.fieldnames}")
        raw = [
            (f"{path} line {n}", row, [row[k] for k in needed[2:]]) for n, row in enumerate(reader, start=2)
        ]
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RepicError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise RepicError(f'{path} must be a JSON list of {{"image", "concept", "box": [x1, y1, x2, y2]}}')
        raw = [(f"{path} item {n}", row, row.get("box")) for n, row in enumerate(data, start=1)]
    rows = []
    for where, row, coords in raw:
        if not str(row.get("image") or "").strip() or not str(row.get("concept") or "").strip():
            raise RepicError(f"{where}: every row needs an image and a concept")
        rows.append(
            BoxRow(
                Path(os.path.abspath(base / str(row["image"]).strip())),
                concept_tag(str(row["concept"])),
                _box(coords, where),
                where,
            )
        )
    return rows


def _box(coords: Any, where: str) -> Box | None:
    if coords is None or (isinstance(coords, list) and all(str(v).strip() == "" for v in coords)):
        return None  # the concept is there; its box is unknown
    try:
        box = tuple(float(v) for v in coords)
    except (TypeError, ValueError):
        box = ()
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise RepicError(
            f"{where}: a box is four numbers x1, y1, x2, y2 (or all empty when unknown); got {coords!r}"
        )
    return box  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ assembling
def _split_concepts(
    tags: list[str], heldout: Sequence[str] | None, ratio: float, seed: int
) -> dict[str, list[str]]:
    if heldout:
        chosen = {concept_tag(t) for t in heldout}
        unknown = sorted(chosen - set(tags))
        if unknown:
            raise RepicError(
                f"held-out concept(s) {', '.join(unknown)} are not imported; known: {', '.join(tags)}"
            )
    else:
        if not 0.0 <= ratio < 1.0:
            raise RepicError(f"heldout ratio {ratio} must be at least 0 and below 1")
        count = max(1, round(ratio * len(tags))) if len(tags) >= 2 and ratio > 0 else 0
        chosen = set(random.Random(seed).sample(tags, count))
    return {"train": [t for t in tags if t not in chosen], "heldout": [t for t in tags if t in chosen]}


def _assemble(
    out: Path,
    concepts: dict[str, Concept],
    shown_in: dict[Path, list[str]],
    box_root: Path,
    options: ImportOptions,
    *,
    source: str,
) -> ImportResult:
    """Scenes from photos and boxes, splits, optional copies; then the collection is checked and saved."""
    box_rows = read_boxes(options.boxes, box_root) if options.boxes else []
    notices: list[str] = []
    references = {image for concept in concepts.values() for image in concept.images}
    boxes: dict[Path, dict[str, Box | None]] = {
        image: dict.fromkeys(tags) for image, tags in shown_in.items()
    }
    unknown, on_references = [], 0
    for row in box_rows:
        if row.tag not in concepts:
            unknown.append(f"{row.where}: concept {row.tag}")
        elif row.image in references:
            on_references += 1
        else:
            boxes.setdefault(row.image, {})[row.tag] = row.box
    _fail_all("box row(s) name unknown concepts", unknown, f"Known concepts: {', '.join(concepts)}.")
    if on_references:
        notices.append(f"ignored {on_references} box row(s) on reference images (boxes are for query photos)")
    _check_images([*references, *boxes])
    splits = _split_concepts(list(concepts), options.heldout, options.heldout_ratio, options.seed)
    split_of = {tag: split for split, tags in splits.items() for tag in tags}
    scenes, outside, mixed = [], [], 0
    for image, present in boxes.items():
        splits_shown = {split_of[tag] for tag in present}
        if len(splits_shown) > 1:
            mixed += 1
            continue
        with Image.open(image) as opened:
            width, height = opened.size
        objects, unboxed = [], []
        for tag, box in present.items():
            if box is None:
                unboxed.append(tag)
            elif not (0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height):
                outside.append(f"{image}: box {list(box)} of {tag} (image is {width}x{height})")
            else:
                objects.append(SceneObject(concepts[tag].category, box, tag))
        extra: dict[str, Any] = {PARTIAL_KEY: True}  # only the concepts are annotated, not other objects
        if unboxed:
            extra[UNBOXED_KEY] = unboxed
        scenes.append(Scene(str(image), width, height, objects, splits_shown.pop(), extra))
    _fail_all(
        "box(es) outside their image",
        outside,
        "Boxes are [x1, y1, x2, y2] in pixels with 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height.",
    )
    if mixed:
        notices.append(f"left out {mixed} scene(s) showing both training and held-out concepts")
    if not scenes:
        notices.append("no query scenes: add photos beyond the references, or list photos in a boxes file")
    unboxed_count = sum(len(s.extra.get(UNBOXED_KEY, [])) for s in scenes)
    if unboxed_count:
        notices.append(f"{unboxed_count} concept appearance(s) have no box: VLT samples will skip them")
    categories = sorted({c.category for c in concepts.values()})
    meta = {"name": out.name, "source": source, "categories": categories}
    # Built beside OUT and swapped in at the end: an import that fails half-way leaves nothing behind.
    with replace_folder(out, marker=COLLECTION_FILE, inputs=[source], overwrite=options.overwrite) as staging:
        if options.copy:
            _copy_images(staging, concepts, scenes)
        save_collection(Collection(staging, concepts, scenes, splits, meta))
    return ImportResult(load_collection(out), notices)


def _copy_images(out: Path, concepts: dict[str, Concept], scenes: list[Scene]) -> None:
    """Copy references to ``references/<name>/`` and scenes to ``scenes/<split>/``, keeping names unique."""
    for concept in concepts.values():
        folder = Path("references") / (_UNSAFE.sub("_", concept.bare_name) or "concept")
        copies = []
        for number, image in enumerate(concept.images):
            target = out / folder / f"{number:03d}_{image.name}"
            atomic_write_bytes(target, image.read_bytes())
            copies.append(target)
        concept.images = copies
    for number, scene in enumerate(scenes):
        source = Path(scene.image)
        rel = f"scenes/{scene.split}/{number:05d}_{source.name}"
        atomic_write_bytes(out / rel, source.read_bytes())
        scene.image = rel


# ------------------------------------------------------------------------------------------ sources
def import_folders(
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    category: str | None = None,
    options: ImportOptions = ImportOptions(),
) -> ImportResult:
    """A collection from ``ROOT/<concept>/`` photo folders (see the module docstring)."""
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise RepicError(f"{root} is not a folder; give the folder that holds one sub-folder per concept")
    references = options.references
    out = _prepare(out_dir, root, options.overwrite)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise RepicError(f"{root} has no sub-folders; put each concept's photos in ROOT/<concept name>/")
    empty, uncategorized, seen = [], [], {}
    concepts: dict[str, Concept] = {}
    shown_in: dict[Path, list[str]] = {}
    for folder in folders:
        tag = concept_tag(folder.name)
        if tag.lower() in seen:
            raise RepicError(
                f"folders {seen[tag.lower()]} and {folder} give the same concept name {tag}; rename one"
            )
        seen[tag.lower()] = folder
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not photos:
            empty.append(str(folder))
            continue
        kind = _text_file(folder / "category.txt") or category
        if not kind:
            uncategorized.append(str(folder))
            continue
        info = _text_file(folder / "info.txt") or f"a {kind}"
        concepts[tag] = Concept(tag, strip_tag(tag), kind, info, photos[:references])
        for photo in photos[references:]:
            shown_in[photo] = [tag]
    _fail_all(
        "concept folder(s) hold no image", empty, f"Add photos ({', '.join(IMAGE_SUFFIXES)}) or remove them."
    )
    _fail_all(
        "concept folder(s) have no category", uncategorized, "Add a category.txt to each or pass --category."
    )
    return _assemble(out, concepts, shown_in, root, options, source=str(root))


def _text_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() if path.is_file() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise RepicError(f"cannot read {path} ({exc}); it must be UTF-8 text") from None


def import_database(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    image_root: str | os.PathLike | None = None,
    options: ImportOptions = ImportOptions(),
) -> ImportResult:
    """A collection from a RAP / RePIC ``database.json`` (see the module docstring); relative image paths
    start from ``image_root`` as ``ConceptDatabase.load`` resolves them."""
    references = options.references
    out = _prepare(out_dir, path, options.overwrite)
    database = ConceptDatabase.load(path, image_root)
    problems = database.validate()
    images = [p.message for p in problems if p.kind in ("missing_image", "unreadable_image")]
    _fail_all(
        "image(s) of the database cannot be used",
        images,
        f"Pass --database-image-root with the folder the database's paths start from (now {database.base_dir}).",
    )
    other = [
        p.message
        for p in problems
        if p.kind in ("no_images", "empty_category", "empty_name", "duplicate_image")
    ]
    _fail_all(
        "concept(s) are incomplete", other, "Fix these entries of the database first (`repic db validate`)."
    )
    names: dict[str, str] = {}
    for concept in database:
        key = concept.name.strip().lower()
        if key in names:
            raise RepicError(
                f"{names[key]} and {concept.tag} share the name {concept.name!r}; give each its own"
            )
        names[key] = concept.tag
    concepts: dict[str, Concept] = {}
    shown_in: dict[Path, list[str]] = {}
    for concept in database:
        concepts[concept.tag] = Concept(
            concept.tag,
            concept.name,
            concept.category,
            concept.info,
            concept.images[:references],
            dict(concept.extra),
        )
        for image in concept.images[references:]:
            shown_in[image] = [concept.tag]
    return _assemble(out, concepts, shown_in, database.base_dir, options, source=str(Path(path).absolute()))


def import_samples(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    image_root: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> tuple[Path, list[Sample]]:
    """Check an official RePIC training file and write it as a build folder; returns the folder and samples.

    The image root stays the file's (``--image-root``, a ``build.json`` beside it, or its folder), so
    ``train.jsonl`` keeps the original relative paths.
    """
    out = check_output_folder(Path(out_dir).absolute(), marker=BUILD_FILE, inputs=[path], overwrite=overwrite)
    samples = load_samples(path, image_root)
    if not samples:
        raise RepicError(f"{path} holds no samples; nothing to import")
    root = resolve_image_root(path, image_root)
    try:
        recorded = os.path.relpath(root, out)
    except ValueError:  # another drive: only an absolute path reaches it
        recorded = str(root)
    with replace_folder(out, marker=BUILD_FILE, inputs=[path], overwrite=overwrite) as staging:
        write_samples(staging / TRAIN_FILE, samples, image_root=root)
        atomic_write_json(
            staging / BUILD_FILE,
            {
                "format": "repic-build/1",
                "image_root": recorded,
                "source": str(Path(path).absolute()),
                "counts": {"train": {row.task: row.count for row in task_mix(samples)}},
            },
        )
    return out, samples
