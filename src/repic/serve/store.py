"""The concept database behind the app and the server: shared by threads and processes, nothing lost.

``ConceptStore(path)`` serves reads from an in-memory snapshot of ``database.json`` and makes every edit a
read-modify-write of the file under a file lock. What it chose and why:

- **The database's lock around each read-modify-write** (``repic.concepts.database.edit_database``,
  ``repic.locking``): the file is re-read inside the lock, edited and saved atomically, so two writers
  (two requests, the app and a server, or ``repic db add`` on the same file) never overwrite each
  other's concepts, and a reader never sees half a file.
- **Snapshots by file stamp**: a read first compares the file's modification time and size with the
  snapshot's and reloads when they differ, so edits made by another process show up without a restart.
- **The retrieval index follows the content hash** (``repic.concepts.index.open_index``): it is rebuilt
  at the first retrieval after an edit (``open_index`` holds the index's own lock) and reused
  otherwise; a burst of edits costs one rebuild.
- **Uploaded reference images** are written into a temporary folder and copied by
  ``ConceptDatabase.add`` into the database's ``images/<tag>/``, which records them as its copies.
  Removing a concept deletes those copies only (``discard_images(owned_only=True)``), never a file the
  database merely points at.
- **Reference images are served** (``reference_image``) only when they are images inside a folder the
  server owns or was told to allow: a database can name any path (an imported one ``/etc/passwd``).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from PIL import Image

from ..atomic import write_target
from ..concepts.database import ConceptDatabase, edit_database, image_problem, load_database
from ..concepts.embed import BUILTIN_EMBEDDER, Embedder, load_embedder
from ..errors import RepicError
from ..inference.inputs import check_text
from ..records import Concept, checked_tag, concept_tag, strip_tag
from .uploads import ALLOWED_FORMATS, ServiceError, inside_roots

T = TypeVar("T")


@dataclass(frozen=True)
class _Snapshot:
    stamp: tuple[int, int]
    database: ConceptDatabase


class ConceptStore:
    """One ``database.json``: snapshot reads, locked edits, and the retrieval index kept current."""

    def __init__(
        self, path: str | Path, *, embedder: str | Embedder = BUILTIN_EMBEDDER, image_root: str | Path | None = None
    ):
        self.path = Path(path).absolute()
        self.image_root = image_root  # where relative image paths start (``ConceptDatabase.load``)
        if not self.path.is_file():
            raise RepicError(f"database {self.path} does not exist; create it with `repic db init {self.path}`")
        self._memory_lock = threading.RLock()
        self._embedder_spec = embedder
        self._embedder: Embedder | None = embedder if isinstance(embedder, Embedder) else None
        self._snapshot: _Snapshot | None = None
        self._index = None  # (database hash, ConceptIndex)
        self.database()  # a malformed file fails at start-up, not at the first request

    # ------------------------------------------------------------------------------------------ reading
    def _stamp(self) -> tuple[int, int]:
        stat = self.path.stat()
        return stat.st_mtime_ns, stat.st_size

    def database(self) -> ConceptDatabase:
        """The database as the file holds it now (a snapshot: do not edit it, use ``add`` / ``update`` / ...)."""
        with self._memory_lock:
            stamp = self._stamp()
            if self._snapshot is None or self._snapshot.stamp != stamp:
                self._snapshot = _Snapshot(stamp, load_database(self.path, self.image_root))
            return self._snapshot.database

    def get(self, tag: str) -> Concept:
        """The concept ``bo`` / ``<bo>``; 404 naming close matches when unknown."""
        database = self.database()
        if tag not in database:
            try:
                database.get(tag)
            except RepicError as exc:
                raise ServiceError(404, str(exc)) from None
        return database.get(tag)

    def image_roots(self) -> list[Path]:
        """The folders the database's own images live in: its file's folder and the image root, if any."""
        roots = [write_target(self.path).parent]
        if self.image_root is not None:
            roots.append(Path(self.image_root).absolute())
        return roots

    def reference_image(self, tag: str, number: int, allowed: Sequence[Path] = ()) -> tuple[Path, str]:
        """The file and format of ``tag``'s reference image ``number`` (1 = the first), if it may be served.

        Only an image file inside the database's folders (``image_roots``) or ``allowed`` is: a database
        may name any path (``/etc/passwd``, ``../../x``, a link out), and the client sees none of them.
        """
        concept = self.get(tag)
        images = concept.images
        if not 1 <= number <= len(images):
            raise ServiceError(404, f"{concept.tag} has {len(images)} reference image(s); ask for 1 to {len(images)}")
        refusal = f"reference image {number} of {concept.tag} is not served"
        resolved = inside_roots(images[number - 1], [*self.image_roots(), *allowed])
        if resolved is None:
            raise ServiceError(403, f"{refusal}: it is outside the folders this server serves images from")
        kind = _image_format(resolved)
        if kind is None:
            raise ServiceError(404, f"{refusal}: it is missing or not an image; `repic db validate` lists such files")
        return resolved, kind

    def servable(self, path: Path, allowed: Sequence[Path] = ()) -> Path | None:
        """``path`` resolved when ``reference_image`` would serve it (an image inside the roots), else ``None``."""
        resolved = inside_roots(path, [*self.image_roots(), *allowed])
        return resolved if resolved is not None and _image_format(resolved) is not None else None

    def index(self):
        """The retrieval index of the current database (rebuilt after edits)."""
        from ..concepts.index import open_index

        database = self.database()
        if not len(database):
            raise ServiceError(409, f"{self.path} has no concepts yet; add one before asking for retrieval")
        with self._memory_lock:
            if self._index is not None and self._index[0] is database:
                return self._index[1]
            if self._embedder is None:
                self._embedder = load_embedder(self._embedder_spec)
            opened = open_index(database, self._embedder)
            self._index = (database, opened.index)
            return opened.index

    def retriever(self, k: int):
        """A ``Retriever`` of the current database for the top ``k`` concepts (``k`` capped at its size)."""
        from ..concepts.retrieve import Retriever

        index = self.index()
        database = self.database()
        if self._index is None or self._index[0] is not database:  # changed between the two reads
            index = self.index()
            database = self.database()
        return Retriever(database, index, self._embedder, k=max(1, min(k, len(database))))

    # ------------------------------------------------------------------------------------------ editing
    def _modify(self, edit: Callable[[ConceptDatabase], T], *, dropped: Callable[[], list[Concept]] = list) -> T:
        """Run ``edit`` on the file under its lock and save; then delete the image copies of the concepts
        ``dropped()`` names that this database made itself, in the same lock (after the save, so a failed
        save loses no image, and before the next edit forgets which files were its copies)."""
        with edit_database(self.path, self.image_root) as database:
            result = edit(database)
            database.save()
            for concept in dropped():
                database.discard_images(concept, owned_only=True)
        with self._memory_lock:
            self._snapshot = None
        return result

    def add(self, tag: str, *, category: str, images: Sequence[Image.Image], name: str = "", info: str = "") -> Concept:
        """Add a concept with uploaded reference images; 409 when the tag is taken, 400 for empty fields."""
        tag = _checked_new_tag(tag)
        _check_fields(name=name, category=category, info=info)
        if not images:
            raise ServiceError(400, f"concept {tag} needs at least one reference image; upload one")
        if not category.strip():
            raise ServiceError(400, f"concept {tag} needs a category (dog, mug, person...); give one")

        def edit(database: ConceptDatabase) -> Concept:
            if tag in database:
                raise ServiceError(409, f"concept {tag} is already in the database; choose another name or edit it")
            with tempfile.TemporaryDirectory(prefix="repic-upload-") as folder:
                files = _write_uploads(Path(folder), strip_tag(tag), images)
                concept = Concept(tag, (name or strip_tag(tag)).strip(), category.strip(), info.strip(), files)
                return database.add(concept, store="copy")

        return self._modify(edit)

    def update(
        self, tag: str, *, name: str | None = None, category: str | None = None, info: str | None = None,
        images: Sequence[Image.Image] | None = None,
    ) -> Concept:
        """Change a concept's fields, or replace its reference images; 404 when unknown."""
        if category is not None and not category.strip():
            raise ServiceError(400, f"the category of {concept_tag(tag)} cannot be empty; give one")
        if name is not None and not name.strip():
            raise ServiceError(400, f"the name of {concept_tag(tag)} cannot be empty; give one")
        if images is not None and not images:
            raise ServiceError(400, "an update with images needs at least one; upload one or leave images out")
        if name is None and category is None and info is None and images is None:
            raise ServiceError(400, f"nothing to change for {concept_tag(tag)}: send name, category, info or images")
        _check_fields(name=name, category=category, info=info)
        old: list[Concept] = []

        def edit(database: ConceptDatabase) -> Concept:
            current = _existing(database, tag)
            changed = replace(
                current,
                name=current.name if name is None else name.strip(),
                category=current.category if category is None else category.strip(),
                info=current.info if info is None else info.strip(),
            )
            if images is None:
                database.concepts[current.tag] = changed
                return changed
            old.append(database.remove(current.tag))
            with tempfile.TemporaryDirectory(prefix="repic-upload-") as folder:
                files = _write_uploads(Path(folder), strip_tag(current.tag), images)
                return database.add(replace(changed, images=files), store="copy")

        return self._modify(edit, dropped=lambda: old)

    def remove(self, tag: str) -> Concept:
        """Remove a concept and the image copies the database made of it (never a user's own file); 404 when unknown."""
        removed: list[Concept] = []

        def edit(database: ConceptDatabase) -> Concept:
            removed.append(database.remove(_existing(database, tag).tag))
            return removed[0]

        return self._modify(edit, dropped=lambda: removed)


def _existing(database: ConceptDatabase, tag: str) -> Concept:
    try:
        return database.get(tag)
    except RepicError as exc:
        raise ServiceError(404, str(exc)) from None


def _image_format(path: Path) -> str | None:
    """The format of the image file at ``path`` when it decodes as one of ``ALLOWED_FORMATS``, else ``None``."""
    if image_problem(path) is not None:
        return None
    with Image.open(path) as image:
        return image.format if image.format in ALLOWED_FORMATS else None


FIELD_LIMITS = {"name": 200, "category": 200, "info": 2_000}  # characters; each goes into every prompt


def _check_fields(**fields: str | None) -> None:
    """400 for a field that is too long or holds what a prompt must not (control characters or tokens)."""
    for field, value in fields.items():
        if value is not None:
            try:
                check_text(value, what=f"the {field}", max_chars=FIELD_LIMITS[field])
            except RepicError as exc:
                raise ServiceError(400, str(exc)) from None


def _checked_new_tag(tag: str) -> str:
    try:
        return checked_tag(tag)
    except RepicError as exc:
        raise ServiceError(400, str(exc)) from None


def _write_uploads(folder: Path, stem: str, images: Sequence[Image.Image]) -> list[Path]:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem) or "concept"
    files = []
    for number, image in enumerate(images, start=1):
        path = folder / f"{safe}_{number}.png"
        image.convert("RGB").save(path, format="PNG")
        files.append(path)
    return files
