"""Words for the synthetic world: generic descriptions of objects and scenes, never naming a concept.

Concept descriptions (the database's ``info``), generic captions for pretraining a captioner, and the
neutral half of personalized captions all come from here, so every text about the world uses the same
words for the same attributes: shape variant, body colour, accent-coloured pattern and accessory.

Choices, and why:

- Attributes are read from plain dicts (``{"shape": "round", "color": "red", ...}``); a missing key just
  drops its words, so props (no shape, no accessory) and imported objects (maybe nothing but a category)
  are described with what is known.
- Positions are thirds of the image ("on the left", "at the top right", "in the middle"): coarse enough
  to be right whatever the exact box, fine enough to tell two objects apart.
- Scene captions list objects left to right, the order a reader scans in, so the same scene always gets
  the same caption.
"""

from __future__ import annotations

from ..records import Box, Concept, Scene

Attributes = dict[str, str]


def _article(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def describe_object(attributes: Attributes, category: str) -> str:
    """A generic phrase for an object, without any name.

    >>> describe_object({"shape": "round", "color": "red", "pattern": "stripes", "accent": "yellow",
    ...                  "accessory": "hat"}, "bear")
    'a round red bear with yellow stripes and a yellow hat'
    >>> describe_object({"color": "orange", "pattern": "plain", "accent": "blue"}, "ball")
    'an orange ball'
    """
    head = _article(" ".join(w for w in (attributes.get("shape"), attributes.get("color"), category) if w))
    accent = attributes.get("accent", "")
    features = []
    if attributes.get("pattern", "plain") != "plain":
        features.append(f"{accent} {attributes['pattern']}".strip())
    if attributes.get("accessory"):
        features.append(_article(f"{accent} {attributes['accessory']}".strip()))
    return head + (" with " + " and ".join(features) if features else "")


def position_phrase(box: Box, width: int, height: int) -> str:
    """Where a box sits, in thirds of the image: 'on the left', 'at the top right', 'in the middle'."""
    cx, cy = (box[0] + box[2]) / 2 / width, (box[1] + box[3]) / 2 / height
    column = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else ""
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else ""
    if row and column:
        return f"at the {row} {column}"
    if column:
        return f"on the {column}"
    return f"at the {row}" if row else "in the middle"


def describe_scene(scene: Scene, concepts: dict[str, Concept], names: dict[int, str] | None = None) -> str:
    """A generic caption of a scene: every object's category, attributes and rough position, left to right.

    Attributes come from the scene's ``object_details`` when it has them, else from the concept; an
    object with neither is described by its category alone. No concept name appears, except those given
    in ``names`` (object index -> name), each written before its object's phrase ("<bo>, a red cat ...").
    """
    names = names or {}
    details = scene.extra.get("object_details") or [{} for _ in scene.objects]
    phrases = []
    order = sorted(
        range(len(scene.objects)), key=lambda i: (sum(scene.objects[i].box[0::2]), scene.objects[i].box[1])
    )
    for i in order:
        obj = scene.objects[i]
        attributes = details[i].get("attributes") if i < len(details) else None
        if attributes is None and obj.concept in concepts:
            attributes = concepts[obj.concept].extra.get("attributes", {})
        phrase = f"{describe_object(attributes or {}, obj.category)} {position_phrase(obj.box, scene.width, scene.height)}"
        phrases.append(f"{names[i]}, {phrase}" if i in names else phrase)
    if not phrases:
        return "A photo with no objects."
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + ", and " + phrases[-1]
    return f"A photo of {listed}."
