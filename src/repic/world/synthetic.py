"""A seeded synthetic world of personal concepts and photo-like scenes, with every box known exactly.

``generate_world(out_dir, WorldConfig(...))`` writes a collection folder (``repic.data.collection``):
named concepts with reference images, and scenes that show 1, 2 or 4 of them among distractors. It is
what the tiny model is trained and evaluated on, and what the tests of every later stage run on.

Choices, and why:

- Names are ``<`` + two consonant-vowel syllables + ``>`` (``<bako>``) from the fixed inventory
  ``SYLLABLES``; held-out names are new combinations of the same syllables, so a model meets no unseen
  token, only an unseen name.
- Concepts of one category differ in at least two of five attributes (kept in
  ``Concept.extra["attributes"]``): telling them apart needs the fine details, as with a user's own dog.
- Splits are by concept: a held-out concept is in no training scene, not even as a distractor. Distractors
  (lookalikes, others, props) are generated fresh for each scene and never equal any concept's look.
- Every scene is drawn from its own random stream, keyed by (seed, split, kind, index), and can be
  re-drawn on its own (``build_scene``); a layout that hides a concept too much is redrawn.
- Sizes default to 112 px queries and 56 px references, multiples of 28, so Qwen's processor does not
  resize them.

The settings live in ``world_config``, the looks in ``silhouettes``, the pixels in ``render`` and the
words in ``describe``; this module is the world's logic and its public face (``WorldConfig`` and the
text helpers are re-exported here).

In full: docs/notes/synthetic-world.md
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes
from ..data.collection import COLLECTION_FILE, Collection, load_collection, save_collection
from ..data.describe import describe_object
from ..data.describe import describe_scene as describe_scene
from ..data.describe import position_phrase as position_phrase
from ..errors import RepicError
from ..outputs import replace_folder
from ..records import Concept, Scene, SceneObject
from .render import (
    BACKDROP_COLORS,
    BACKDROP_KINDS,
    LIGHT_BACKDROPS,
    Backdrop,
    Lighting,
    Picture,
    Placement,
    Rendered,
    png_bytes,
    render,
)
from .silhouettes import ACCESSORIES, CATEGORY_SKETCHES, COLORS, PROP_SKETCHES, SHAPES
from .world_config import WorldConfig as WorldConfig

CONSONANTS = "bcdfghjklmnprstvz"
VOWELS = "aeiou"
SYLLABLES: tuple[str, ...] = tuple(c + v for c in CONSONANTS for v in VOWELS)
NAME_PATTERN = re.compile(rf"<(?:[{CONSONANTS}][{VOWELS}]){{2}}>")

CATEGORIES: tuple[str, ...] = tuple(CATEGORY_SKETCHES)
PROP_CATEGORIES: tuple[str, ...] = tuple(PROP_SKETCHES)
PATTERNS: tuple[str, ...] = ("plain", "stripes", "dots", "checks")
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "shape": tuple(SHAPES),
    "color": tuple(COLORS),
    "pattern": PATTERNS,
    "accent": tuple(COLORS),
    "accessory": ACCESSORIES,
}
ATTRIBUTES: tuple[str, ...] = tuple(ATTRIBUTE_VALUES)
SPLITS: tuple[str, ...] = ("train", "heldout")
KINDS: tuple[str, ...] = ("single", "two", "four", "negative")
_CONCEPTS_PER_KIND = {"single": 1, "two": 2, "four": 4, "negative": 0}

# Names that are words of the world's own text ("a cone") or of the RAP prompt ("Name: <x>") would read
# as those words; they are never given to a concept.
_RESERVED_NAMES = frozenset(
    word
    for word in (
        "name",
        *CATEGORIES,
        *PROP_CATEGORIES,
        *(v for values in ATTRIBUTE_VALUES.values() for v in values),
    )
    if NAME_PATTERN.fullmatch(f"<{word}>")
)
_MIN_ACCENT_DISTANCE = 110.0  # RGB distance between body and accent colours, so patterns stay visible
_MIN_VISIBLE = {"concept": 0.6, "distractor": 0.35}  # share of an object's pixels that must stay visible
_LAYOUT_ATTEMPTS = 40

Attributes = dict[str, str]


# --------------------------------------------------------------------------------------- names, concepts
def _syllable_stream(rng: np.random.Generator):
    while True:  # whole permutations first, so the first 85 syllables drawn are all different
        yield from (SYLLABLES[i] for i in rng.permutation(len(SYLLABLES)))


def make_names(config: WorldConfig) -> tuple[list[str], list[str]]:
    """Tags of the training and held-out concepts; held-out names recombine training syllables."""
    rng = np.random.default_rng([config.seed, 0])
    stream = _syllable_stream(rng)
    train: list[str] = []
    while len(train) < config.n_train_concepts:
        tag = f"<{next(stream)}{next(stream)}>"
        if tag not in train and tag[1:-1] not in _RESERVED_NAMES:
            train.append(tag)
    known = sorted({tag[i : i + 2] for tag in train for i in (1, 3)})
    taken = set(train) | {f"<{word}>" for word in _RESERVED_NAMES}
    candidates = [f"<{a}{b}>" for a in known for b in known if f"<{a}{b}>" not in taken]
    if len(candidates) < config.n_heldout_concepts:
        raise RepicError(
            f"only {len(candidates)} new names can be made from the training syllables {', '.join(known)}; "
            "raise n_train_concepts or lower n_heldout_concepts"
        )
    picks = rng.choice(len(candidates), size=config.n_heldout_concepts, replace=False)
    return train, [candidates[i] for i in sorted(picks)]


def _distance(a: Attributes, b: Attributes) -> int:
    return sum(a.get(k) != b.get(k) for k in ATTRIBUTES)


def _accent_ok(attributes: Attributes) -> bool:
    body, accent = np.array(COLORS[attributes["color"]]), np.array(COLORS[attributes["accent"]])
    return float(np.linalg.norm(body - accent)) >= _MIN_ACCENT_DISTANCE


def _random_attributes(rng: np.random.Generator, keys: tuple[str, ...] = ATTRIBUTES) -> Attributes:
    while True:
        attributes = {k: str(rng.choice(ATTRIBUTE_VALUES[k])) for k in keys}
        if _accent_ok(attributes):
            return attributes


@dataclass
class World:
    """The concepts of a world (tag -> ``Concept``, attributes in ``extra``) and its concept splits."""

    config: WorldConfig
    concepts: dict[str, Concept]
    splits: dict[str, list[str]]

    def is_taken(self, category: str, attributes: Attributes) -> bool:
        """Whether an object would look exactly like one of the world's concepts."""
        return any(
            c.category == category and _distance(c.extra["attributes"], attributes) == 0
            for c in self.concepts.values()
        )


def reference_path(tag: str, index: int) -> str:
    """Where reference ``index`` of a concept lives, relative to the collection folder."""
    return f"references/{tag[1:-1]}/{index}.png"


def scene_path(split: str, kind: str, index: int) -> str:
    return f"scenes/{split}/{kind}_{index:04d}.png"


def make_world(config: WorldConfig, root: Path) -> World:
    """Name the concepts, give each a category and an appearance distinct within its category."""
    rng = np.random.default_rng([config.seed, 1])
    train, heldout = make_names(config)
    order = [CATEGORIES[i] for i in rng.permutation(len(CATEGORIES))]
    concepts: dict[str, Concept] = {}
    for position, tag in enumerate(train + heldout):
        category = order[position % len(order)]  # round robin: every split covers every category
        same = [c.extra["attributes"] for c in concepts.values() if c.category == category]
        for _ in range(1000):
            attributes = _random_attributes(rng)
            if all(_distance(attributes, other) >= 2 for other in same):
                break
        else:
            raise RepicError(
                f"cannot give {len(same) + 1} {category} concepts distinct looks; use fewer concepts"
            )
        images = [root / reference_path(tag, k) for k in range(config.refs_per_concept)]
        info = describe_object(attributes, category)
        concepts[tag] = Concept(tag, tag[1:-1], category, info, images, {"attributes": attributes})
    return World(config, concepts, {"train": train, "heldout": heldout})


# ------------------------------------------------------------------------------------------- distractors
@dataclass
class _Planned:
    role: str  # "concept" | "lookalike" | "other" | "prop"
    category: str
    attributes: Attributes
    concept: str | None = None  # the concept shown (role "concept") or imitated (role "lookalike")


def _lookalike(rng: np.random.Generator, world: World, concept: Concept) -> _Planned:
    """Same category as ``concept``, one or two attributes changed, looking like no concept at all."""
    while True:
        attributes = dict(concept.extra["attributes"])
        for key in rng.choice(ATTRIBUTES, size=1 if rng.random() < 0.6 else 2, replace=False):
            attributes[key] = str(rng.choice([v for v in ATTRIBUTE_VALUES[key] if v != attributes[key]]))
        if _accent_ok(attributes) and not world.is_taken(concept.category, attributes):
            return _Planned("lookalike", concept.category, attributes, concept.tag)


def _distractor(rng: np.random.Generator, world: World, near: list[Concept]) -> _Planned:
    if near and rng.random() < world.config.lookalike_prob:
        return _lookalike(rng, world, near[int(rng.integers(len(near)))])
    if rng.random() < 0.5:
        category = str(rng.choice(PROP_CATEGORIES))
        return _Planned("prop", category, _random_attributes(rng, ("color", "pattern", "accent")))
    category = str(rng.choice(CATEGORIES))
    while True:
        attributes = _random_attributes(rng)
        if not world.is_taken(category, attributes):
            return _Planned("other", category, attributes)


# ------------------------------------------------------------------------------------------------ layout
def _size_range(n_objects: int) -> tuple[float, float]:
    """Object size as a fraction of the image side: smaller when more objects share the picture."""
    high = 0.62 * n_objects**-0.4
    return 0.75 * high, high


def _overlap(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    """Overlap of two objects' nominal squares (cx, cy, side), as a share of the smaller one."""
    dx = min(a[0] + a[2] / 2, b[0] + b[2] / 2) - max(a[0] - a[2] / 2, b[0] - b[2] / 2)
    dy = min(a[1] + a[2] / 2, b[1] + b[2] / 2) - max(a[1] - a[2] / 2, b[1] - b[2] / 2)
    return max(dx, 0) * max(dy, 0) / min(a[2], b[2]) ** 2


def _layout(rng: np.random.Generator, sizes: list[float], canvas: int) -> list[tuple[float, float]]:
    """Centres with little overlap: the least-overlapping of a few random tries for each object."""
    placed: list[tuple[float, float, float]] = []
    for size in sizes:
        best, best_overlap = None, math.inf
        for _ in range(30):
            # An object may hang over the edge by up to 15 % of its size.
            cx, cy = rng.uniform(0.35 * size, canvas - 0.35 * size, size=2)
            worst = max((_overlap((cx, cy, size), other) for other in placed), default=0.0)
            if worst < best_overlap:
                best, best_overlap = (float(cx), float(cy), size), worst
            if worst <= 0.15:
                break
        placed.append(best)
    return [(x, y) for x, y, _ in placed]


def _backdrop(rng: np.random.Generator, plain: bool) -> Backdrop:
    names = LIGHT_BACKDROPS if plain else tuple(BACKDROP_COLORS)
    kind = str(rng.choice(("plain", "gradient"))) if plain else str(rng.choice(BACKDROP_KINDS))
    first, second = rng.choice(len(names), size=2, replace=False)
    return Backdrop(
        kind, names[first], names[second], float(rng.uniform(0, 2 * math.pi)), int(rng.integers(2**31))
    )


def _plan_objects(
    rng: np.random.Generator, world: World, shown: list[Concept], split: str
) -> tuple[list[_Planned], int | None]:
    """Objects in drawing order, and the index of a concept a distractor should partly cover (or None)."""
    config = world.config
    objects = [_Planned("concept", c.category, dict(c.extra["attributes"]), c.tag) for c in shown]
    if shown:
        with_distractors = rng.random() < config.distractor_prob
        count = int(rng.integers(1, config.max_distractors + 1)) if with_distractors else 0
        near = shown
    else:  # a negative scene: only distractors, lookalikes of the split's concepts among them
        count = int(rng.integers(1, config.max_distractors + 2))
        near = [world.concepts[t] for t in world.splits[split]]
    objects += [_distractor(rng, world, near) for _ in range(count)]
    objects = [objects[i] for i in rng.permutation(len(objects))]
    concepts = [i for i, o in enumerate(objects) if o.role == "concept"]
    distractors = [i for i, o in enumerate(objects) if o.role != "concept"]
    if not (concepts and distractors and rng.random() < config.occlusion_prob):
        return objects, None
    # Partial occlusion: a distractor is drawn last, over part of a concept.
    target = objects[int(rng.choice(concepts))]
    objects.append(objects.pop(int(rng.choice(distractors))))
    return objects, objects.index(target)


def _placements(
    rng: np.random.Generator, config: WorldConfig, objects: list[_Planned], covered: int | None
) -> list[Placement]:
    """Sizes, centres, angles and mirroring; the last object overlaps object ``covered`` when given."""
    low, high = _size_range(len(objects))
    sizes = [float(rng.uniform(low, high)) * config.query_size for _ in objects]
    centres = _layout(rng, sizes, config.query_size)
    if covered is not None:
        angle = rng.uniform(0, 2 * math.pi)
        reach = 0.5 * (sizes[covered] + sizes[-1]) * rng.uniform(0.5, 0.75)
        cx, cy = centres[covered]
        centres[-1] = (cx + reach * math.cos(angle), cy + reach * math.sin(angle))
    return [
        Placement(
            o.category,
            o.attributes,
            centres[i],
            sizes[i],
            float(rng.uniform(-config.max_rotation, config.max_rotation)),
            bool(rng.random() < 0.5),
        )
        for i, o in enumerate(objects)
    ]


def _lighting(rng: np.random.Generator, jitter: float, ramp: float, noise: float) -> Lighting:
    return Lighting(
        brightness=float(1 + rng.uniform(-jitter, jitter)),
        ramp=float(rng.uniform(0, ramp)),
        ramp_angle=float(rng.uniform(0, 2 * math.pi)),
        noise=float(rng.uniform(0, noise)),
        noise_seed=int(rng.integers(2**31)),
    )


# ------------------------------------------------------------------------------------------------ scenes
def scene_keys(config: WorldConfig) -> list[tuple[str, str, int]]:
    """Every scene of a world as (split, kind, index), in the order they are written."""
    counts = {
        "train": (
            config.n_train_concepts * config.scenes_per_train_concept,
            config.n_train_two,
            config.n_train_four,
            config.n_train_negative,
        ),
        "heldout": (config.n_eval_single, config.n_eval_two, config.n_eval_four, config.n_eval_negative),
    }
    return [
        (split, kind, i)
        for split in SPLITS
        for kind, n in zip(KINDS, counts[split], strict=True)
        for i in range(n)
    ]


def build_scene(world: World, split: str, kind: str, index: int) -> tuple[Scene, Picture, Rendered]:
    """Draw one scene; the same (world seed, split, kind, index) always gives the same scene and pixels."""
    config = world.config
    rng = np.random.default_rng([config.seed, 2, SPLITS.index(split), KINDS.index(kind), index])
    pool = world.splits[split]
    if kind == "single":
        shown = [pool[index % len(pool)]]  # round robin: every concept gets its share of single scenes
    else:
        shown = [pool[i] for i in rng.choice(len(pool), size=_CONCEPTS_PER_KIND[kind], replace=False)]
    shown_concepts = [world.concepts[t] for t in shown]
    for _ in range(_LAYOUT_ATTEMPTS):
        objects, covered = _plan_objects(rng, world, shown_concepts, split)
        picture = Picture(
            config.query_size,
            config.query_size,
            _backdrop(rng, plain=False),
            tuple(_placements(rng, config, objects, covered)),
            _lighting(rng, config.brightness_jitter, 0.2, config.noise_std),
        )
        rendered = render(picture)
        needed = [_MIN_VISIBLE["concept" if o.role == "concept" else "distractor"] for o in objects]
        if all(v >= n for v, n in zip(rendered.visible, needed, strict=True)):
            break
    else:
        raise RepicError(
            f"could not lay out {split} scene {kind} {index} without hiding an object; "
            "lower max_distractors or raise query_size"
        )
    scene_objects, details = [], []
    for i, planned in enumerate(objects):
        shown_tag = planned.concept if planned.role == "concept" else None
        scene_objects.append(SceneObject(planned.category, rendered.box(i), shown_tag))
        detail = {
            "role": planned.role,
            "attributes": planned.attributes,
            "visible": round(rendered.visible[i], 3),
        }
        if planned.role == "lookalike":
            detail["like"] = planned.concept
        details.append(detail)
    scene = Scene(
        scene_path(split, kind, index),
        config.query_size,
        config.query_size,
        scene_objects,
        split,
        {"kind": kind, "object_details": details},
    )
    return scene, picture, rendered


def build_reference(world: World, tag: str, index: int) -> np.ndarray:
    """Reference view ``index`` of a concept: the concept alone, nearly upright, on a light plain background."""
    config = world.config
    position = list(world.concepts).index(tag)
    rng = np.random.default_rng([config.seed, 3, position, index])
    concept = world.concepts[tag]
    size = config.reference_size
    jitter = rng.uniform(-0.03, 0.03, size=2) * size
    placement = Placement(
        concept.category,
        concept.extra["attributes"],
        (size / 2 + float(jitter[0]), size / 2 + float(jitter[1])),
        float(rng.uniform(0.68, 0.8)) * size,
        float(rng.uniform(-8, 8)),
        bool(rng.random() < 0.5),
    )
    lighting = _lighting(rng, 0.05, 0.05, 2.0)
    return render(Picture(size, size, _backdrop(rng, plain=True), (placement,), lighting)).image


def build_object_view(config: WorldConfig, category: str, attributes: Attributes, index: int) -> np.ndarray:
    """Reference view ``index`` of any object (a distractor's look, say), drawn exactly as a concept's
    reference is: on a world holding just that object."""
    stand_in = Concept("<object>", "", category, "", [], {"attributes": dict(attributes)})
    return build_reference(World(config, {stand_in.tag: stand_in}, {"train": [stand_in.tag]}), stand_in.tag, index)


# ----------------------------------------------------------------------------------------------- writing
_COLLECTION_PARTS = ("references", "scenes", "scenes.jsonl", "database.json", COLLECTION_FILE)


def generate_world(
    out_dir: str | Path,
    config: WorldConfig | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    *,
    overwrite: bool = False,
) -> Collection:
    """Generate the world of ``config`` into ``out_dir`` and return it as a ``Collection``.

    ``progress(stage, done, total)`` is called after each image (stages ``references`` and ``scenes``).
    ``out_dir`` must be new or empty, or an earlier collection when ``overwrite`` is set. ``config``
    defaults to ``WorldConfig()``. The world is written beside ``out_dir`` and swapped in at the end
    (``repic.outputs.replace_folder``): an interrupted or failed overwrite leaves the earlier world intact.
    """
    config = config if config is not None else WorldConfig()
    root = Path(out_dir).absolute()
    with replace_folder(root, marker=COLLECTION_FILE, overwrite=overwrite) as staging:
        _write_world(staging, config, progress, name=root.name)
    return load_collection(root)


def _write_world(root: Path, config: WorldConfig, progress: Callable[[str, int, int], None] | None, *,
                 name: str) -> None:
    world = make_world(config, root)
    references = [(tag, k) for tag in world.concepts for k in range(config.refs_per_concept)]
    for done, (tag, k) in enumerate(references, start=1):
        atomic_write_bytes(root / reference_path(tag, k), png_bytes(build_reference(world, tag, k)))
        if progress:
            progress("references", done, len(references))
    scenes = []
    keys = scene_keys(config)
    for done, (split, kind, index) in enumerate(keys, start=1):
        scene, _, rendered = build_scene(world, split, kind, index)
        atomic_write_bytes(root / scene.image, png_bytes(rendered.image))
        scenes.append(scene)
        if progress:
            progress("scenes", done, len(keys))
    meta = {
        "name": name,
        "generator": "repic.world.synthetic",
        "config": config.to_dict(),
        "categories": list(CATEGORIES),
        "distractor_categories": list(PROP_CATEGORIES),
    }
    save_collection(Collection(root, world.concepts, scenes, world.splits, meta))
