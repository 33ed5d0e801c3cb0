"""What every importer shares: reading annotation files (hashed), mapping names to valid tags, copying
images (a missing one is listed, and the rows that need it are left out and counted), and writing the
benchmark folder (``database.json``, ``references/``, ``images/``, ``tasks/``, ``manifest.json``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ...concepts.database import ConceptDatabase, image_problem
from ...errors import RepicError
from ...records import MAX_TAG_LENGTH, Concept, strip_tag, tag_problem
from ..rows import BenchRow, Manifest, write_manifest, write_rows

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")
_BAD_NAME = re.compile(r"[^\w \-.']+")
_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])\s*[.):]\s*(.+?)\s*$")
_LETTER = re.compile(r"^\(?([A-Z])(?:[.):]|\s*$)")  # "B", "B.", "(B)", "B) text"; not "A cup"


def images_in(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (not in sub-folders), sorted by name, numbers in order."""
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=natural_key)


def natural_key(path: Path | str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", Path(path).name)]


def folders_in(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=natural_key)


def letter_index(answer: Any, count: int) -> int | None:
    """``"B"``, ``"B."``, ``"(B) text"`` or ``1`` -> 1; ``None`` when it names no option."""
    if isinstance(answer, int) and not isinstance(answer, bool):
        index = answer
    else:
        match = _LETTER.match(str(answer).strip().upper()) if isinstance(answer, str) else None
        if match is None:
            return None
        index = ord(match.group(1)) - ord("A")
    return index if 0 <= index < count else None


def options_in_text(question: str) -> tuple[str, list[str]]:
    """Split a question that lists its options as ``A. ...`` lines into the stem and the option texts."""
    stem, options = [], []
    for line in question.splitlines():
        match = _OPTION_LINE.match(line)
        if match and ord(match.group(1)) - ord("A") == len(options):
            options.append(match.group(2))
        elif not options:
            stem.append(line)
    return "\n".join(stem).strip(), options


class Importer:
    """Collects one benchmark's concepts and rows, then writes the folder (``finish``)."""

    def __init__(self, format: str, src: Path, out: Path, root: Path | None = None):
        self.format, self.src, self.out = format, Path(src), Path(out)
        self.root = Path(root) if root is not None else self.src  # annotation paths are named from here
        self.rows: list[BenchRow] = []
        self.concepts: dict[str, Concept] = {}  # tag -> concept, images still at the source
        self.missing: list[str] = []
        self.notes: list[str] = []
        self.hashes: dict[str, str] = {}
        self.left_out: Counter[str] = Counter()  # rows per kind left out for a missing image
        self._tags: dict[str, str] = {}  # source name -> tag
        self._copied: dict[Path, str | None] = {}

    # ------------------------------------------------------------------------------------- reading
    def rel(self, path: Path) -> str:
        path = Path(path)
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)

    def read_bytes(self, path: Path) -> bytes:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise RepicError(f"cannot read {path} ({exc.strerror or exc}); is this a {self.format} source?") from None
        self.hashes[self.rel(path)] = hashlib.sha256(data).hexdigest()
        return data

    def read_json(self, path: Path, shape: type = dict, expect: str = "") -> Any:
        """The JSON in ``path`` (hashed into the manifest); ``RepicError`` naming the file and its shape."""
        data = self.read_bytes(path)
        try:
            raw = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise RepicError(f"{path} is not JSON ({exc}); the {self.format} layout has {expect or 'JSON'} there") from None
        if not isinstance(raw, shape):
            raise RepicError(
                f"{path}: expected a JSON {'object' if shape is dict else 'list'}"
                f"{' (' + expect + ')' if expect else ''}, found {type(raw).__name__}"
            )
        return raw

    def read_text(self, path: Path) -> str:
        return self.read_bytes(path).decode("utf-8-sig")

    @staticmethod
    def field(record: Any, key: str, where: str, kind: type | tuple[type, ...] = str) -> Any:
        """``record[key]``, of type ``kind``; ``RepicError`` naming the file, record and key otherwise."""
        if not isinstance(record, dict) or key not in record:
            raise RepicError(f"{where}: expected the key {key!r}; this file does not have the expected layout")
        value = record[key]
        if not isinstance(value, kind):
            raise RepicError(f"{where}: {key!r} should be {getattr(kind, '__name__', kind)}, found {value!r}")
        return value

    def require(self, path: Path, what: str) -> Path:
        if not path.exists():
            raise RepicError(f"{self.src} is not a {self.format} source: expected {what} at {path}")
        return path

    def locate(self, raw: str, *bases: Path) -> Path:
        """Where an image path written in an annotation file lives: relative to one of ``bases``, or (for an
        absolute path from the authors' machine) the longest tail of it that exists under one of them."""
        text = raw.strip().replace("\\", "/")
        path = Path(text)
        bases = bases or (self.root,)
        if path.is_absolute() and path.exists():
            return path
        parts = [p for p in path.parts if p not in ("/", ".")]
        for base in bases:
            for start in range(len(parts)):
                candidate = base.joinpath(*parts[start:])
                if candidate.exists():
                    return candidate
        return bases[0].joinpath(*parts) if parts else bases[0]

    # ---------------------------------------------------------------------------------------- names
    def tag(self, name: str) -> str:
        """The bracketed tag for a source name; a name that breaks the tag rule is mapped (and noted)."""
        name = strip_tag(str(name))
        if name in self._tags:
            return self._tags[name]
        valid = name
        if tag_problem(name) is not None:
            valid = _BAD_NAME.sub("-", name).strip()
            valid = re.sub(r"^[^0-9A-Za-z]+", "", valid)[:MAX_TAG_LENGTH].rstrip() or "concept"
            base, counter = valid, 2
            while f"<{valid}>" in self._tags.values():
                suffix = f"-{counter}"
                valid, counter = base[: MAX_TAG_LENGTH - len(suffix)] + suffix, counter + 1
            self.notes.append(f"concept name {name!r} breaks the tag rule ({tag_problem(name)}); imported as <{valid}>")
        self._tags[name] = f"<{valid}>"
        return self._tags[name]

    def concept(self, name: str, category: str, images: Iterable[Path], info: str = "",
                extra: dict[str, Any] | None = None) -> str:
        """Add (or extend) a concept; its reference images are copied by ``finish``. Its tag."""
        tag = self.tag(name)
        usable = []
        for image in images:
            if image_problem(Path(image)) is None:
                usable.append(Path(image))
            else:
                self._missing(Path(image))
        if tag in self.concepts:
            known = self.concepts[tag]
            known.images.extend(p for p in usable if p not in known.images)
        else:
            self.concepts[tag] = Concept(tag=tag, name=strip_tag(tag), category=category or "object", info=info or "",
                                         images=usable, extra=dict(extra or {}))
        return tag

    # --------------------------------------------------------------------------------------- images
    def _missing(self, path: Path) -> None:
        rel = self.rel(path)
        if rel not in self.missing:
            self.missing.append(rel)

    def image(self, path: Path) -> str | None:
        """Copy a query image under ``images/`` once and return its path in the folder, or ``None`` (listed
        as missing) when it is absent or does not decode (an annotation-only download, a Git LFS pointer)."""
        path = Path(path)
        if path in self._copied:
            return self._copied[path]
        if image_problem(path) is not None:
            self._missing(path)
            self._copied[path] = None
            return None
        rel = self.rel(path)
        if Path(rel).is_absolute():
            rel = f"external/{len(self._copied)}-{path.name}"
        target = self.out / "images" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        self._copied[path] = f"images/{rel}"
        return self._copied[path]

    # ----------------------------------------------------------------------------------------- rows
    def row(self, *, image: Path | None = None, **fields: Any) -> BenchRow | None:
        """Add a row; one whose ``image`` is missing is left out and counted. The row, or ``None``."""
        stored = None
        if image is not None:
            stored = self.image(image)
            if stored is None:
                self.left_out[fields["kind"]] += 1
                return None
        fields.setdefault("id", f"{fields['kind']}-{len(self.rows) + 1:06d}")
        row = BenchRow(image=stored, **fields)
        self.rows.append(row)
        return row

    def choice(self, *, question: str, options: Sequence[str], answer: Any, source: str,
               image: Path | None = None, **fields: Any) -> BenchRow | None:
        """A ``choice`` row from option texts and a letter or index answer; ``RepicError`` when they disagree."""
        index = letter_index(answer, len(options))
        if len(options) < 2 or index is None:
            raise RepicError(f"{source}: the answer {answer!r} names none of the {len(options)} options {list(options)!r}")
        return self.row(kind="choice", question=question, options=list(options), answer=index, source=source,
                        image=image, **fields)

    # --------------------------------------------------------------------------------------- finish
    def finish(self) -> Manifest:
        """Write ``database.json`` (references copied under ``references/``), the task files and the manifest."""
        self.out.mkdir(parents=True, exist_ok=True)
        database = ConceptDatabase(self.out / "database.json")
        without = []
        for tag, concept in self.concepts.items():
            if not concept.images:
                without.append(tag)
                continue
            database.add(concept, store="copy", images_dir=self.out / "references")
        database.save()
        if without:
            self.notes.append(f"{len(without)} concept(s) have no readable reference image and are not in "
                              f"database.json: {', '.join(without)}")
        for kind, count in sorted(self.left_out.items()):
            self.notes.append(f"{count} {kind} row(s) left out because their image is missing")
        self._answer_prior()
        counts = write_rows(self.out, self.rows)
        manifest = Manifest(format=self.format, source=os.path.abspath(self.src), counts=counts, concepts=len(database.concepts),
                            missing_images=list(self.missing), hashes=dict(sorted(self.hashes.items())),
                            notes=list(self.notes))
        write_manifest(self.out, manifest)
        return manifest

    def _answer_prior(self) -> None:
        """Note how far a constant answer gets on the choice rows (their answer-prior baseline)."""
        answers = Counter(row.answer for row in self.rows if row.kind == "choice")
        if answers:
            index, top = answers.most_common(1)[0]
            total = sum(answers.values())
            self.notes.append(f"choice: option {chr(ord('A') + index)} is right in {top} of {total} rows "
                              f"({100 * top / total:.1f} %), so always answering it scores that")
