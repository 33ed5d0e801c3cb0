"""Typed records that cross layers: concepts, scenes with boxes, and RePIC training samples.

Data flows one way through the project: concepts (``Concept``) and photos of them (``Scene``) become
training samples (``Sample``) in the official RePIC file format, which become TRL dataset rows. Each
record has a ``to_json`` / ``from_json`` pair for the file format it lives in; unknown fields are kept
in ``extra`` so a read-then-write round trip loses nothing.

Boxes are ``(x1, y1, x2, y2)`` in pixels of the image they belong to, x1 < x2 and y1 < y2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Box = tuple[float, float, float, float]  # (x1, y1, x2, y2), pixels


def concept_tag(name: str) -> str:
    """The bracketed tag for a concept name: ``bo`` -> ``<bo>``; a tag is returned unchanged."""
    name = name.strip()
    return name if name.startswith("<") and name.endswith(">") else f"<{name}>"


MAX_TAG_LENGTH = 64
TAG_RULE = (
    f"a concept name is 1 to {MAX_TAG_LENGTH} characters: letters, digits, spaces, '_', '-', '.' or \"'\", "
    "starting with a letter or digit (e.g. 'bo', written <bo>)"
)
_TAG_CHARACTERS = frozenset(" _-.'")


def tag_problem(name: str) -> str | None:
    """What breaks the one rule for a concept's bare name (``TAG_RULE``), or ``None`` when it is valid.

    The tag is a key in files, URLs (``/v1/concepts/<name>``), folder names and prompts, so it may hold
    no path separator, no ``..``, no control character, no ``%`` escape and no angle bracket.
    """
    if not name:
        return "is empty"
    if len(name) > MAX_TAG_LENGTH:
        return f"is {len(name):,} characters long"
    if not name[0].isalnum():
        return f"starts with {name[0]!r}"
    if name != name.rstrip():
        return "ends with a space"
    bad = next((ch for ch in name if not (ch.isalnum() or ch in _TAG_CHARACTERS)), None)
    return None if bad is None else f"holds {bad!r}"


def checked_tag(raw: str) -> str:
    """The bracketed tag of a new concept's name (``bo`` or ``<bo>``); ``RepicError`` saying the rule if invalid."""
    from .errors import RepicError

    name = strip_tag(raw) if isinstance(raw, str) else raw
    problem = "is not text" if not isinstance(name, str) else tag_problem(name)
    if problem is not None:
        raise RepicError(f"the concept name {raw!r} {problem}; {TAG_RULE}")
    return f"<{name}>"


def strip_tag(tag: str) -> str:
    """The bare name inside a tag: ``<bo>`` -> ``bo``; a bare name is returned unchanged."""
    return tag[1:-1] if len(tag) >= 2 and tag.startswith("<") and tag.endswith(">") else tag


@dataclass
class Concept:
    """A personal concept: ``<bo>``, a dog, with a description and one or more reference images.

    ``tag`` is the bracketed key of the RAP database (``"<bo>"``); ``name`` the display name stored in
    the database's ``name`` field (often the bare tag, sometimes a different spelling such as
    ``"Iron Man"`` for ``<ironman>``). ``images`` are absolute (resolved) paths, the first one being the
    reference image the official format stores.
    """

    tag: str
    name: str
    category: str
    info: str = ""
    images: list[Path] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def bare_name(self) -> str:
        """The tag without angle brackets (``<bo>`` -> ``bo``)."""
        return strip_tag(self.tag)


@dataclass
class SceneObject:
    """One object drawn in a scene: a personal concept (``concept`` set) or a distractor (``None``)."""

    category: str
    box: Box
    concept: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"concept": self.concept, "category": self.category, "box": [round(v, 2) for v in self.box]}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> SceneObject:
        return cls(category=row["category"], box=tuple(float(v) for v in row["box"]), concept=row.get("concept"))


@dataclass
class Scene:
    """A photo with every object's box known. ``image`` is relative to the collection's folder."""

    image: str
    width: int
    height: int
    objects: list[SceneObject] = field(default_factory=list)
    split: str = "train"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def concepts(self) -> list[str]:
        """Tags of the personal concepts visible in the scene, in drawing order."""
        return [o.concept for o in self.objects if o.concept is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "size": [self.width, self.height],
            "split": self.split,
            "objects": [o.to_json() for o in self.objects],
            **self.extra,
        }

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Scene:
        known = {"image", "size", "split", "objects"}
        width, height = row["size"]
        return cls(
            image=row["image"],
            width=int(width),
            height=int(height),
            objects=[SceneObject.from_json(o) for o in row.get("objects", [])],
            split=row.get("split", "train"),
            extra={k: v for k, v in row.items() if k not in known},
        )


@dataclass
class Sample:
    """One RePIC training sample in the official format.

    ``images`` are stored in files relative to the file's image root and held here as resolved paths
    once loaded (``repic.data.samples.load_samples``); the last image is the query, the ones before it
    are references. ``solution`` is ``"yes"``/``"no"`` (oct), a box (vlt), a tag
    (ict) or a list of tags (ict_multi). ``task`` is the project's task name (``repic.tasks``).
    """

    task: str
    images: list[str]
    problem: str
    solution: Any
    extra: dict[str, Any] = field(default_factory=dict)
