"""The personal-concept database: read, edit, check and write RAP / RePIC ``database.json`` files.

The format, as RAP defined it and RePIC kept it::

    {"concept_dict": {"<bo>": {"name": "bo", "image": "./bo.jpg", "info": "a brown dog", "category": "dog"}},
     "path_to_concept": {"./bo.jpg": "<bo>"}}

Choices, and why:

- Several reference images per concept: ``image`` stays the first (official readers keep working) and a
  field ``images`` lists all of them, written only where needed, so single-image databases keep the
  official shape.
- Paths. Relative image paths resolve against ``image_root`` when given, else against the database file's
  folder, else against the working directory (the official files' paths are relative to their repository
  root). A load/save round trip rewrites no path the user did not touch.
- Nothing is lost silently: unknown fields are kept and written back, a key defined twice is an error, and
  ``path_to_concept`` is regenerated from the concepts on save.
- Images are checked by decoding them with Pillow, because a file that exists but does not decode fails
  later, in the middle of a run.
- Writes are atomic (``repic.atomic``), and ``edit_database`` holds the file's lock from load to save, so
  concurrent edits queue instead of losing each other's concepts.

In full: docs/notes/concept-database.md
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from ..atomic import atomic_write_bytes, atomic_write_json, write_target
from ..errors import RepicError
from ..locking import locked
from ..records import TAG_RULE, Concept, checked_tag, concept_tag, strip_tag, tag_problem

StoreMode = Literal["copy", "link", "reference"]
STORE_MODES: tuple[str, ...] = ("copy", "link", "reference")

# Problem kinds reported by ``ConceptDatabase.validate``.
PROBLEM_KINDS: tuple[str, ...] = (
    "missing_image",  # an image file that does not exist
    "unreadable_image",  # exists, but is a folder or does not decode as an image
    "duplicate_image",  # one image file used by two concepts
    "dangling_link",  # a path_to_concept entry naming an unknown tag, or a path none of the tag's images
    "conflicting_link",  # a path_to_concept entry naming another tag than the concept that has the image
    "no_images",  # a concept without any reference image
    "empty_name",
    "empty_category",
    "bad_tag",  # a tag that breaks the one rule for concept names (``repic.records.TAG_RULE``)
)

_CONCEPT_FIELDS = ("name", "image", "images", "info", "category")
_TOP_FIELDS = ("concept_dict", "path_to_concept", "repic_copies")
# The image files this database copied or linked in itself (``add``), as written in the file: the only
# files ``discard_images(owned_only=True)`` (the server's DELETE) may remove. A user's own photo inside the
# database's folder, or a world's reference image that its scenes still use, is never on it.
COPIES_FIELD = "repic_copies"
_FORMAT_EXAMPLE = (
    '{"concept_dict": {"<bo>": {"name": "bo", "image": "bo.jpg", ...}}, "path_to_concept": {...}}'
)
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a database: its kind (see ``PROBLEM_KINDS``), where, and what to do."""

    kind: str
    tag: str | None
    path: Path | None
    message: str


def _absolute(path_string: str | os.PathLike, base: Path) -> Path:
    """An absolute, normalized path; relative ones resolve against ``base``. Symlinks are kept as links."""
    path = Path(path_string)
    return Path(os.path.abspath(path if path.is_absolute() else base / path))


def image_problem(path: Path) -> tuple[str, str] | None:
    """``(kind, reason)`` when ``path`` is not a usable image, ``None`` when it decodes."""
    if not path.exists():
        if path.is_symlink():
            return "missing_image", f"is a link to {os.readlink(path)}, which does not exist"
        return "missing_image", "does not exist"
    if not path.is_file():
        return "unreadable_image", "is a folder, not an image file"
    try:
        with Image.open(path) as image:
            image.draft(None, (64, 64))  # JPEG only: decode at reduced scale, still reading every byte
            image.load()
    except Exception as exc:  # Pillow reports broken files with many types (OSError, SyntaxError, ...)
        return "unreadable_image", f"does not decode as an image ({exc})"
    return None


def _checked_tag(raw: object, *, where: str, bracketed: bool) -> str:
    """The ``<name>`` tag for ``raw``; ``RepicError`` for spaces at the ends, an empty name, stray brackets."""
    if not isinstance(raw, str):
        raise RepicError(f"{where}: a concept tag must be text like '<bo>', found {raw!r}")
    name = strip_tag(concept_tag(raw))
    faults = [
        (raw != raw.strip(), f"has spaces at its ends; write it as {raw.strip()!r}"),
        (bracketed and not (raw.startswith("<") and raw.endswith(">")), f"needs angle brackets: '<{raw}>'"),
        (not name.strip(), "has an empty name; name the concept, e.g. '<bo>'"),
        (name != name.strip(), f"has spaces inside its brackets; write it as '<{name.strip()}>'"),
        ("<" in name or ">" in name, "has angle brackets inside its name; write it as '<bo>' or 'bo'"),
    ]
    for failed, fix in faults:
        if failed:
            raise RepicError(f"{where}: tag {raw!r} {fix}")
    return concept_tag(raw)


def _json_object_without_duplicates(where: Path) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """A ``json`` hook that refuses keys defined twice (plain ``json`` silently keeps only the last one)."""

    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                raise RepicError(f"{where} defines the key {key!r} twice; merge the two or rename one")
            obj[key] = value
        return obj

    return build


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RepicError(f"database {path} does not exist; create it with `repic db init {path}`") from None
    except UnicodeDecodeError:
        raise RepicError(f"{path} is not UTF-8 text; a database is a UTF-8 JSON file") from None
    except OSError as exc:
        raise RepicError(f"cannot read database {path}: {exc.strerror or exc}; check the path") from None
    try:
        return json.loads(text, object_pairs_hook=_json_object_without_duplicates(path))
    except json.JSONDecodeError as exc:
        place = f"line {exc.lineno}, column {exc.colno}"
        raise RepicError(f"{path} is not valid JSON ({exc.msg} at {place}); fix the syntax there") from None


def _file_sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


class ConceptDatabase:
    """The concepts of one ``database.json`` by tag, in file order, and what is needed to write it back.

    Edits (``add``, ``remove``) change the object only; ``save`` writes the file.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, image_root: str | os.PathLike | None = None):
        self.path: Path | None = Path(path) if path is not None else None
        self.image_root: Path | None = _absolute(image_root, Path.cwd()) if image_root is not None else None
        self.concepts: dict[str, Concept] = {}
        self.extra: dict[str, Any] = {}
        self._spelled: dict[Path, str] = {}  # image -> the string the file wrote it as
        self._listed: set[str] = set()  # tags whose entry has an ``images`` list
        self._link_order: list[Path] = []  # path_to_concept images in file order, kept on save
        self._stray_links: dict[Path, str] = {}  # path_to_concept entries that name no image of their tag
        self._looked_up: dict[Path, str] = {}  # missing images of relative paths -> where they were looked for
        self.copies: set[Path] = set()  # image files ``add`` copied or linked in (see ``COPIES_FIELD``)

    # ----------------------------------------------------------------------------------------- reading
    @classmethod
    def load(cls, path: str | os.PathLike, image_root: str | os.PathLike | None = None) -> ConceptDatabase:
        """Read a RAP / RePIC ``database.json``; ``RepicError`` names the file and key of anything malformed."""
        db = cls(path, image_root=image_root)
        if db.image_root is not None and not db.image_root.is_dir():
            raise RepicError(f"image root {db.image_root} is not a folder; pass the folder paths start from")
        raw = _read_json(db.path)
        if not isinstance(raw, dict) or not isinstance(raw.get("concept_dict"), dict):
            raise RepicError(
                f"{db.path} has no 'concept_dict' object, so it is not a concept database; the format is "
                f"{_FORMAT_EXAMPLE} (`repic db init` creates an empty one)"
            )
        links = raw.get("path_to_concept", {})
        if not isinstance(links, dict) or not all(isinstance(t, str) for t in links.values()):
            raise RepicError(f"{db.path}: 'path_to_concept' must map image paths to tags: {_FORMAT_EXAMPLE}")
        db.extra = {k: v for k, v in raw.items() if k not in _TOP_FIELDS}
        for key, entry in raw["concept_dict"].items():
            tag = _checked_tag(key, where=f"{db.path}, concept_dict", bracketed=True)
            db.concepts[tag] = db._read_entry(tag, entry)
        db._read_links(links)
        copies = raw.get(COPIES_FIELD, [])
        if not isinstance(copies, list) or not all(isinstance(item, str) for item in copies):
            raise RepicError(f"{db.path}: '{COPIES_FIELD}' must be a list of image paths the database copied in")
        db.copies = {_absolute(item, db.base_dir) for item in copies}
        return db

    @property
    def base_dir(self) -> Path:
        """The folder relative image paths start from: ``image_root``, else the database file's folder."""
        if self.image_root is not None:
            return self.image_root
        return _absolute(write_target(self.path).parent if self.path is not None else ".", Path.cwd())

    def _read_entry(self, tag: str, entry: Any) -> Concept:
        where = f"{self.path}, concept {tag}"
        if not isinstance(entry, dict):
            raise RepicError(f"{where}: expected an object with name, image, info, category; found {entry!r}")
        texts = {}
        for key in ("name", "info", "category"):
            texts[key] = entry.get(key, "")
            if not isinstance(texts[key], str):
                raise RepicError(f"{where}: '{key}' must be a string, found {texts[key]!r}")
        spelled: list[str] = []
        if "image" in entry:
            if not isinstance(entry["image"], str) or not entry["image"].strip():
                raise RepicError(
                    f"{where}: 'image' must be one non-empty path, found {entry['image']!r} "
                    "(list several images in 'images')"
                )
            spelled.append(entry["image"])
        if "images" in entry:
            listed = entry["images"]
            if not isinstance(listed, list) or not all(isinstance(s, str) and s.strip() for s in listed):
                raise RepicError(f"{where}: 'images' must be a list of non-empty paths, found {listed!r}")
            self._listed.add(tag)
            spelled += listed
        images: list[Path] = []
        for string in spelled:
            image = self._resolve(string)
            if image not in images:  # ``image`` is normally repeated as the first of ``images``
                images.append(image)
                self._spelled.setdefault(image, string)
        extra = {k: v for k, v in entry.items() if k not in _CONCEPT_FIELDS}
        return Concept(tag, texts["name"], texts["category"], texts["info"], images, extra)

    def _read_links(self, links: dict[str, str]) -> None:
        owners = self._image_owners()
        for string, tag in links.items():
            image = self._resolve(string)
            self._spelled.setdefault(image, string)
            self._link_order.append(image)
            if owners.get(image) == tag:
                continue
            concept = self.concepts.get(tag)
            if concept is not None and image not in owners and tag not in self._listed:
                concept.images.append(image)  # RAP style: further reference images live only in this map
                owners[image] = tag
            else:
                self._stray_links[image] = tag

    def _resolve(self, string: str) -> Path:
        """An image path of the file as an absolute path: see "Paths" in docs/notes/concept-database.md."""
        image = _absolute(string, self.base_dir)
        if self.image_root is not None or Path(string).is_absolute() or image.exists() or image.is_symlink():
            return image
        from_cwd = _absolute(string, Path.cwd())
        if from_cwd.exists():  # the official files' paths start at their repository root, where users stand
            return from_cwd
        self._looked_up[image] = (
            f"the relative path {string!r} was looked up from the database's folder {self.base_dir} and from the "
            "working directory; pass --database-image-root with the folder it starts from"
        )
        return image

    def where_looked(self, image: Path) -> str:
        """For a missing image read from a relative path: which folders were tried and what to do, else ''."""
        return self._looked_up.get(image, "")

    def _image_owners(self) -> dict[Path, str]:
        """Each image's concept; the first one in file order when two concepts share an image."""
        owners: dict[Path, str] = {}
        for concept in self.concepts.values():
            for image in concept.images:
                owners.setdefault(image, concept.tag)
        return owners

    # ----------------------------------------------------------------------------------------- writing
    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the database (to ``path``, else where it was loaded from) atomically and return the path."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise RepicError(
                "this database has no file yet; pass the path to write, e.g. save('database.json')"
            )
        base = self.image_root if self.image_root is not None else _absolute(write_target(target).parent, Path.cwd())
        document = {
            "concept_dict": {tag: self._entry(concept, base) for tag, concept in self.concepts.items()},
            "path_to_concept": self._links(base),
            **self.extra,
        }
        in_use = self._image_owners()
        owned = sorted(self._spell(image, base) for image in self.copies if image in in_use)
        if owned:
            document[COPIES_FIELD] = owned
        try:
            atomic_write_json(target, document, indent=4)
        except OSError as exc:
            reason = exc.strerror or exc
            raise RepicError(
                f"could not write database {target}: {reason}; check the folder is writable"
            ) from None
        self.path = target
        self._spelled = {_absolute(s, base): s for s in document["path_to_concept"]}
        self._link_order = list(self._spelled)
        return target

    def _spell(self, image: Path, base: Path) -> str:
        """How to write ``image``: as the file spelled it when that still fits, else relative or absolute."""
        original = self._spelled.get(image)
        if original is not None and (
            _absolute(original, base) == image or (base == self.base_dir and self._resolve(original) == image)
        ):
            return original
        return image.relative_to(base).as_posix() if image.is_relative_to(base) else str(image)

    def _entry(self, concept: Concept, base: Path) -> dict[str, Any]:
        spelled = [self._spell(image, base) for image in concept.images]
        entry: dict[str, Any] = {"name": concept.name}
        if spelled:
            entry["image"] = spelled[0]
        if len(spelled) > 1 or concept.tag in self._listed:
            entry["images"] = spelled
        entry["info"] = concept.info
        entry["category"] = concept.category
        for key, value in concept.extra.items():
            entry.setdefault(key, value)  # the record's own fields win over a same-named extra
        return entry

    def _links(self, base: Path) -> dict[str, str]:
        """``path_to_concept``: file order first, then new images; concept images win over stray entries."""
        owners = self._image_owners()
        links: dict[str, str] = {}
        for image in [*self._link_order, *owners, *self._stray_links]:
            tag = owners.get(image) or self._stray_links.get(image)
            if tag is not None:
                links.setdefault(self._spell(image, base), tag)
        return links

    # ----------------------------------------------------------------------------------------- editing
    def add(
        self, concept: Concept, *, store: StoreMode = "copy", images_dir: str | os.PathLike | None = None
    ) -> Concept:
        """Add ``concept`` and return it as stored (bracketed tag, absolute image paths).

        ``store``: ``copy`` the images into ``images_dir/<tag>/`` (default ``images_dir``: the database
        folder's ``images``), ``link`` them there with symlinks, or ``reference`` them where they are.
        Images already inside ``images_dir`` stay where they are. Relative image paths are taken from the
        current directory. Nothing is added and no file is left behind when any check fails.
        """
        if store not in STORE_MODES:
            raise RepicError(f"unknown store mode {store!r}; use one of {', '.join(STORE_MODES)}")
        tag = checked_tag(concept.tag)
        if tag in self.concepts:
            raise RepicError(
                f"concept {tag} is already in {self._where()}; remove it first or use another tag"
            )
        for field in ("name", "category"):
            if not getattr(concept, field).strip():
                raise RepicError(f"concept {tag} has an empty {field}; give it one (e.g. --{field})")
        sources = [_absolute(image, Path.cwd()) for image in concept.images]
        if not sources:
            raise RepicError(f"concept {tag} has no images; give at least one reference image")
        for source in sources:
            if sources.count(source) > 1:
                raise RepicError(f"image {source} is given twice for {tag}; list each image once")
            problem = image_problem(source)
            if problem is not None:
                raise RepicError(f"image {source} {problem[1]}; give a readable image file for {tag}")
        placed = self._place(tag, sources, store, images_dir)
        owners = self._image_owners()
        for image in placed.values():
            if image in owners:
                raise RepicError(
                    f"image {image} is already a reference image of {owners[image]}; use another"
                )
        self._write_images(placed, store)
        stored = replace(concept, tag=tag, images=list(placed.values()), extra=dict(concept.extra))
        self.concepts[tag] = stored
        return stored

    def _place(
        self, tag: str, sources: list[Path], store: str, images_dir: str | os.PathLike | None
    ) -> dict[Path, Path]:
        """Where each image will live: in place for references, else a free name in the concept's folder."""
        if store == "reference":
            return {source: source for source in sources}
        if images_dir is None:
            if self.path is None:
                raise RepicError("this database has no file yet, so it has no images folder; pass images_dir")
            images_dir = write_target(self.path).parent / "images"
        root = _absolute(images_dir, Path.cwd())
        folder = root / (_UNSAFE_FILENAME.sub("_", strip_tag(tag)).strip("._") or "concept")
        placed: dict[Path, Path] = {}
        for source in sources:
            if source.is_relative_to(root):
                placed[source] = source
                continue
            target, counter = folder / source.name, 1
            while target.exists() or target.is_symlink() or target in placed.values():
                target, counter = folder / f"{source.stem}_{counter}{source.suffix}", counter + 1
            placed[source] = target
        return placed

    def _write_images(self, placed: dict[Path, Path], store: str) -> None:
        created: list[Path] = []
        try:
            for source, target in placed.items():
                if source == target:
                    continue
                if store == "copy":
                    atomic_write_bytes(target, source.read_bytes())
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.symlink_to(source)
                created.append(target)
            self.copies.update(created)
        except OSError as exc:
            for path in created:
                path.unlink(missing_ok=True)
            fix = "check the folder is writable, or keep the images in place (store='reference', `--reference`)"
            raise RepicError(
                f"could not {store} {source} to {target}: {exc.strerror or exc}; {fix}"
            ) from None

    def remove(self, tag: str) -> Concept:
        """Remove a concept (``bo`` or ``<bo>``) and return it; its image files are left alone."""
        concept = self.get(tag)
        del self.concepts[concept.tag]
        self._listed.discard(concept.tag)
        self._stray_links = {image: t for image, t in self._stray_links.items() if t != concept.tag}
        return concept

    def discard_images(self, concept: Concept, *, owned_only: bool = False) -> list[Path]:
        """Delete ``concept``'s image files inside the database folder that no concept here still uses.

        Copies and links (the link, not its target) are deleted; files elsewhere are never touched. With
        ``owned_only``, only the files this database copied or linked in itself (``add``) are: what a
        server may delete on a client's word. Returns the deleted paths. Call it after ``remove`` and
        ``save``, so a failed save loses no image.
        """
        if self.path is None:
            return []
        folder = _absolute(write_target(self.path).parent, Path.cwd())
        in_use = self._image_owners()
        deleted = []
        for image in concept.images:
            if (
                image.is_relative_to(folder)
                and image not in in_use
                and (image in self.copies or not owned_only)
                and (image.is_file() or image.is_symlink())
            ):
                image.unlink()
                deleted.append(image)
                if image.parent != folder and not any(image.parent.iterdir()):
                    image.parent.rmdir()  # e.g. the concept's folder under images/, emptied just now
        return deleted

    # ----------------------------------------------------------------------------------------- querying
    def get(self, tag: str) -> Concept:
        """The concept for ``bo`` or ``<bo>``; ``RepicError`` listing close matches when unknown."""
        key = concept_tag(tag)
        if key in self.concepts:
            return self.concepts[key]
        if not self.concepts:
            raise RepicError(f"no concept {key}: {self._where()} is empty; add one with `repic db add`")
        by_lower = {t.lower(): t for t in self.concepts}
        close = difflib.get_close_matches(key.lower(), list(by_lower), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(by_lower[c] for c in close)}?" if close else "none is close"
        raise RepicError(f"no concept {key} in {self._where()}; {hint} (`repic db list` shows every tag)")

    def validate(self) -> list[Problem]:
        """Every problem of the database: images missing, unreadable or shared, stray links, empty fields."""
        problems: list[Problem] = []
        checked: dict[Path, tuple[str, str] | None] = {}
        owners: dict[Path, str] = {}
        for concept in self.concepts.values():
            tag = concept.tag
            bad = tag_problem(strip_tag(tag))
            if bad is not None:
                problems.append(Problem("bad_tag", tag, None, f"tag {tag!r} {bad}; rename it: {TAG_RULE}"))
            if not concept.name.strip():
                problems.append(Problem("empty_name", tag, None, f"{tag} has an empty name; set its 'name'"))
            if not concept.category.strip():
                problems.append(
                    Problem("empty_category", tag, None, f"{tag} has an empty category; set its 'category'")
                )
            if not concept.images:
                problems.append(Problem("no_images", tag, None, f"{tag} has no image; add a reference image"))
            for image in concept.images:
                if image not in checked:
                    checked[image] = image_problem(image)
                if checked[image] is not None:
                    kind, reason = checked[image]
                    looked = f" ({self.where_looked(image)})" if self.where_looked(image) else ""
                    problems.append(Problem(kind, tag, image, f"image {image} of {tag} {reason}{looked}"))
                if image in owners and owners[image] != tag:
                    message = f"image {image} of {tag} is also an image of {owners[image]}; give each its own"
                    problems.append(Problem("duplicate_image", tag, image, message))
                owners.setdefault(image, tag)
        for image, tag in self._stray_links.items():
            lead = f"path_to_concept maps {image} to {tag}"
            if tag not in self.concepts:
                kind, message = "dangling_link", f"{lead}, which is not in concept_dict; remove the entry"
            elif image in owners:
                kind, message = (
                    "conflicting_link",
                    f"{lead}, an image of {owners[image]}; saving maps it there",
                )
            else:
                kind, message = "dangling_link", f"{lead}, which does not list it; add it to its 'images'"
            problems.append(Problem(kind, tag, image, message))
        return problems

    def content_hash(self) -> str:
        """SHA-256 over every concept's fields and image bytes, so indexes can tell the database changed.

        Concepts are taken in tag order and image paths are left out: reordering the file or moving the
        database folder does not change the hash; editing a description or an image does.
        """
        digest = hashlib.sha256()
        for tag in sorted(self.concepts):
            concept = self.concepts[tag]
            fields = {"tag": tag, "name": concept.name, "category": concept.category, "info": concept.info}
            encoded = json.dumps({**fields, "extra": concept.extra}, sort_keys=True, default=str).encode()
            digest.update(b"C" + len(encoded).to_bytes(8, "big") + encoded)
            for image in concept.images:
                # A missing image hashes as a marker, so the hash changes again once it is restored.
                digest.update(b"I" + (_file_sha256(image) if image.is_file() else b"missing"))
        return digest.hexdigest()

    def _where(self) -> str:
        return str(self.path) if self.path is not None else "the database"

    def __len__(self) -> int:
        return len(self.concepts)

    def __iter__(self) -> Iterator[Concept]:
        return iter(list(self.concepts.values()))

    def __contains__(self, tag: object) -> bool:
        return isinstance(tag, str) and concept_tag(tag) in self.concepts

    def __repr__(self) -> str:
        return f"ConceptDatabase({self._where()}, {len(self)} concepts)"


def load_database(path: str | os.PathLike, image_root: str | os.PathLike | None = None) -> ConceptDatabase:
    """Read a RAP / RePIC ``database.json`` (see ``ConceptDatabase.load``)."""
    return ConceptDatabase.load(path, image_root)


@contextmanager
def edit_database(
    path: str | os.PathLike, image_root: str | os.PathLike | None = None
) -> Iterator[ConceptDatabase]:
    """Load ``path`` under its lock (``repic.locking``) for an edit that ends with ``save``.

    Two edits at once (six ``repic db add`` on one file) then run one after the other instead of each
    writing back what it read and losing the others' concepts.
    """
    with locked(path, what="database"):
        yield ConceptDatabase.load(path, image_root)
