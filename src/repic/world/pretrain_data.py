"""Pretraining data for the tiny base model: generic tasks on a synthetic world's training split, as TRL rows.

The base plays the "zero-shot MLLM" of the demo, so it must see nothing of the concepts it will later be
personalized on and learn nothing personal: it learns to see (describe, find categories, box them, tell
whether an object is the one in a reference image) and to copy the names given in its prompt. Eight tasks:
**object** (a single-object view -> one attribute: answers only the pixels give), **scene_objects** (a
scene's categories, left to right; off in the shipped mixes), **describe** (a generic caption of a scene or
a view, some in the RAP inference layout), **category yes/no**, **category box** (``[x1, y1, x2, y2]`` in
the image's own pixels, which the VLT reward parses), **echo** (copy a FRESH name, never a concept's, given
as ``Name: <x>, Info: ...``), **echo_multi** (two to four fresh names, in order) and **matching** (is that
very object in the scene? what RePIC's OCT reward trains, without names). Matching, category yes/no and
box rows also carry ``grounding`` targets (``grounding_targets``) for the grounding loss
(``repic.world.grounding``).

Choices, and why:

- Only the training split is read, joined by extra training-split scenes and views rendered with the
  world's own generator: thousands of layouts, while held-out concepts stay unseen.
- **Distractor views**: the distractors of training scenes are also rendered alone, reference-style, so
  describing and matching learn attributes over thousands of looks, not 48 identities.
- Rows hold image PATHS, opened when their batch is collated (``repic.train.dataset.to_dataset``), in TRL's
  conversational prompt-completion format with one ``{"type": "image"}`` placeholder per image.
- Each row's task is drawn by the mix's weights from one seeded ``random.Random``: the same seed and
  phase give the same rows.

Measurements and history: docs/notes/tiny-base-pretraining-data.md
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes
from ..data.collection import Collection
from ..data.describe import describe_object, describe_scene
from ..errors import RepicError
from ..prompts import (
    EVAL_CAPTION_QUESTIONS,
    ICT_SUFFIX_ROLL,
    INFERENCE_SYSTEM_PROMPT,
    OCT_QUESTIONS,
    PRETRAIN_BOX_QUESTIONS,
    PRETRAIN_CATEGORY_QUESTIONS,
    PRETRAIN_DESCRIBE_QUESTIONS,
    PRETRAIN_ECHO_ANSWERS,
    PRETRAIN_ECHO_MULTI_ANSWERS,
    PRETRAIN_ECHO_MULTI_QUESTIONS,
    PRETRAIN_ECHO_QUERY_QUESTIONS,
    PRETRAIN_ECHO_QUESTIONS,
    PRETRAIN_MATCH_QUESTIONS,
    PRETRAIN_OBJECT_QUESTIONS,
    PRETRAIN_SCENE_OBJECT_QUESTIONS,
    TRAIN_CAPTION_QUESTIONS,
    VLT_ANSWER_INSTRUCTIONS,
    VLT_QUESTIONS,
    format_box_answer,
    ict_problem,
    inference_messages,
    named_references_text,
    oct_problem,
    task_text,
    vlt_problem,
)
from ..records import Concept, Scene
from .render import png_bytes
from .synthetic import (
    ATTRIBUTE_VALUES,
    CATEGORIES,
    PROP_CATEGORIES,
    SYLLABLES,
    World,
    WorldConfig,
    build_object_view,
    build_reference,
    build_scene,
    make_world,
)
from .tiny import TOKEN_CELL

Row = dict[str, Any]
PRETRAIN_TASKS: tuple[str, ...] = (
    "object", "scene_objects", "describe", "category_yes_no", "category_box", "echo", "echo_multi", "matching"
)
_EXTRA_SCENE_KINDS = {"single": 0.4, "two": 0.2, "four": 0.1, "negative": 0.3}
_HARD_NEGATIVE_SHARE = 0.75  # matching negatives with a same-category object in the scene, when one exists
# Pretraining's matching rows asked as RePIC's OCT task asks (``oct_problem``, a fresh name for the object):
# the demo's OCT evaluation and reward use that prompt, so the base meets it before GRPO does.
_OCT_PHRASED_SHARE = 0.5


@dataclass(frozen=True)
class PretrainMix:
    """Relative weights of the eight tasks (normalised when drawn); the defaults sum to 1."""

    object: float = 0.15
    scene_objects: float = 0.0  # off: see the task in docs/notes/tiny-base-pretraining-data.md
    describe: float = 0.21
    category_yes_no: float = 0.10
    category_box: float = 0.10
    echo: float = 0.12
    echo_multi: float = 0.12  # 0.08 gave several-name copy 0.94 and 2-concept demo F1 77.5; 0.12: 1.00, 79.2
    matching: float = 0.20

    def __post_init__(self) -> None:
        values = [getattr(self, f.name) for f in fields(self)]
        if any(isinstance(v, bool) or not isinstance(v, int | float) or v < 0 for v in values):
            raise RepicError(f"PretrainMix weights must be numbers >= 0, got {self.to_dict()}")
        if sum(values) <= 0:
            raise RepicError(f"PretrainMix needs at least one positive weight, got {self.to_dict()}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def shares(self) -> dict[str, float]:
        """Each task's share of the rows (the weights normalised to sum 1)."""
        total = sum(self.to_dict().values())
        return {task: weight / total for task, weight in self.to_dict().items()}


@dataclass(frozen=True)
class PoolScene:
    """A training-split scene and the absolute path of its image."""

    scene: Scene
    path: Path


@dataclass(frozen=True)
class ObjectView:
    """A reference-style view of a distractor object of a training scene, that scene's pool index and the
    object's index in the scene."""

    category: str
    attributes: dict[str, str]
    path: Path
    scene_index: int
    object_index: int = -1


@dataclass
class ImagePool:
    """What the rows are made of: training concepts, their reference views, training-split scenes, views
    of the scenes' distractor objects, and the names a fresh name must never be (every concept of the
    world, and words of the world's text)."""

    concepts: dict[str, Concept]
    references: dict[str, list[Path]]
    scenes: list[PoolScene]
    reserved_names: frozenset[str]
    objects: list[ObjectView] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_concept: dict[str, list[int]] = {tag: [] for tag in self.concepts}
        self.by_category: dict[str, list[int]] = {}
        for index, item in enumerate(self.scenes):
            for obj in item.scene.objects:
                if obj.concept is not None:
                    self.by_concept[obj.concept].append(index)
            for category in {obj.category for obj in item.scene.objects}:
                self.by_category.setdefault(category, []).append(index)
        self.categories = sorted(self.by_category)


# ------------------------------------------------------------------------------------------ the pool
def _world_of(collection: Collection) -> World:
    """The generator's ``World`` behind a synthetic collection, checked against the collection's concepts."""
    settings = collection.meta.get("config")
    if collection.meta.get("generator") != "repic.world.synthetic" or not isinstance(settings, dict):
        raise RepicError(
            f"{collection.root} is not a synthetic world (no generator config in collection.json); the tiny "
            "base is pretrained on one: create it with `repic data synth DIR`"
        )
    world = make_world(WorldConfig.from_dict(settings, where=str(collection.root)), collection.root)
    if world.splits != collection.splits:
        raise RepicError(
            f"{collection.root}: its concepts or splits differ from what its config generates; regenerate "
            "the world with `repic data synth DIR --overwrite`"
        )
    return world


def _world_words() -> set[str]:
    """Words of the world's own text; a fresh name spelling one (``<cone>``) would read as that word."""
    words = {"name", *CATEGORIES, *PROP_CATEGORIES}
    return words | {value for values in ATTRIBUTE_VALUES.values() for value in values}


def reserved_names(collection: Collection) -> frozenset[str]:
    """Names a fresh name must never be: every concept of the collection (all splits) and world words."""
    return frozenset(set(collection.concepts) | {f"<{word}>" for word in _world_words()})


def split_pool(collection: Collection, split: str) -> ImagePool:
    """The concepts, reference images and scenes of one split of ``collection``, nothing rendered."""
    concepts = {concept.tag: concept for concept in collection.concepts_in(split)}
    references = {tag: list(concept.images) for tag, concept in concepts.items()}
    scenes = [PoolScene(s, collection.image_path(s.image)) for s in collection.scenes_in(split)]
    return ImagePool(concepts, references, scenes, reserved_names(collection))


def build_image_pool(
    collection: Collection,
    out_dir: str | Path,
    *,
    extra_scenes: int = 3000,
    extra_references: int = 6,
    object_views: int = 3000,
    progress: Callable[[str, int, int], None] | None = None,
) -> ImagePool:
    """The training split of ``collection`` plus ``extra_scenes`` newly rendered training-split scenes,
    ``extra_references`` more views of each training concept and up to ``object_views`` reference-style
    views of the scenes' distractor objects, written under ``out_dir``."""
    if min(extra_scenes, extra_references, object_views) < 0:
        raise RepicError("extra_scenes, extra_references and object_views must be >= 0")
    world = _world_of(collection)
    config = world.config
    out_dir = Path(out_dir)
    train = collection.splits["train"]
    if not train:
        raise RepicError(f"{collection.root} has no training concepts to pretrain on; raise n_train_concepts")
    pool = split_pool(collection, "train")
    references, scenes = pool.references, list(pool.scenes)
    for done, (tag, k) in enumerate(((tag, k) for tag in train for k in range(extra_references)), start=1):
        index = config.refs_per_concept + k  # past the collection's own views
        path = out_dir / "references" / tag[1:-1] / f"{index}.png"
        atomic_write_bytes(path, png_bytes(build_reference(world, tag, index)))
        references[tag].append(path)
        if progress:
            progress("references", done, len(train) * extra_references)

    start = {
        "single": config.n_train_concepts * config.scenes_per_train_concept,
        "two": config.n_train_two,
        "four": config.n_train_four,
        "negative": config.n_train_negative,
    }
    needed = {"two": 2, "four": 4}
    kinds = [
        kind
        for kind, share in _EXTRA_SCENE_KINDS.items()
        if len(train) >= needed.get(kind, 1)
        for _ in range(round(share * extra_scenes))
    ]
    drawn = dict.fromkeys(_EXTRA_SCENE_KINDS, 0)
    for done, kind in enumerate(kinds, start=1):
        index = start[kind] + drawn[kind]
        drawn[kind] += 1
        scene, _, rendered = build_scene(world, "train", kind, index)
        path = out_dir / "scenes" / f"{kind}_{index:05d}.png"
        atomic_write_bytes(path, png_bytes(rendered.image))
        scenes.append(PoolScene(scene, path))
        if progress:
            progress("scenes", done, len(kinds))
    objects = _object_views(config, scenes, out_dir / "objects", object_views)
    return ImagePool(pool.concepts, references, scenes, pool.reserved_names, objects)


def _object_views(config: WorldConfig, scenes: list[PoolScene], out_dir: Path, limit: int) -> list[ObjectView]:
    """Reference-style views of the scenes' distractor objects, rendered by the world's own reference
    renderer (on a world holding just that object), so they look exactly like concept references.

    Distractors never look like any concept of the world (the generator ensures it), and there are
    thousands of them: describing and matching them teaches attributes instead of 48 identities, which
    is what held-out concepts need.
    """
    views: list[ObjectView] = []
    for scene_index, item in enumerate(scenes):
        details = item.scene.extra.get("object_details") or []
        for object_index, (obj, detail) in enumerate(zip(item.scene.objects, details, strict=False)):
            if len(views) == limit:
                return views
            if obj.concept is not None or "attributes" not in detail:
                continue
            path = out_dir / f"{len(views):05d}.png"
            atomic_write_bytes(path, png_bytes(build_object_view(config, obj.category, detail["attributes"], len(views))))
            views.append(ObjectView(obj.category, dict(detail["attributes"]), path, scene_index, object_index))
    return views


# ------------------------------------------------------------------------------------------ names
def fresh_name(rng: random.Random, reserved: Iterable[str]) -> str:
    """A random ``<` + two syllables + `>`` name that is none of ``reserved``.

    >>> fresh_name(random.Random(0), reserved=["<bako>"]).startswith("<")
    True
    """
    taken = set(reserved)
    while True:
        name = f"<{rng.choice(SYLLABLES)}{rng.choice(SYLLABLES)}>"
        if name not in taken:
            return name


# ------------------------------------------------------------------------------------------ rows
def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _object_answer(attribute: str, attributes: dict[str, str], category: str) -> str | None:
    """The short answer about one attribute of an object, or None when the object does not have it."""
    if attribute == "category":
        return f"{_article(category)} {category}"
    if attribute == "pattern":
        pattern = attributes.get("pattern")
        if pattern is None:
            return None
        return "plain" if pattern == "plain" else f"{attributes.get('accent', '')} {pattern}".strip()
    if attribute == "accessory":
        accessory = attributes.get("accessory")
        if not accessory:
            return None
        phrase = f"{attributes.get('accent', '')} {accessory}".strip()
        return f"{_article(phrase)} {phrase}"
    return attributes.get(attribute)


def _single_view(pool: ImagePool, rng: random.Random) -> tuple[Path, dict[str, str], str]:
    """A single-object view (path, attributes, category): a distractor object's view for 3/4 of the draws
    when the pool has them (thousands of looks), else a reference view of a training concept."""
    if pool.objects and rng.random() < 0.75:
        view = rng.choice(pool.objects)
        return view.path, view.attributes, view.category
    concept = pool.concepts[rng.choice(list(pool.concepts))]
    return rng.choice(pool.references[concept.tag]), concept.extra.get("attributes", {}), concept.category


def object_row(pool: ImagePool, rng: random.Random, *, attribute: str | None = None) -> Row:
    """A single-object view -> one short attribute: its category (half the rows), else its colour,
    pattern, shape or accessory (or always ``attribute``, as the probe asks). Views are mostly distractor
    objects (thousands of looks), the rest references of training concepts."""
    path, attributes, category = _single_view(pool, rng)
    if attribute is not None:
        if _object_answer(attribute, attributes, category) is None:
            attribute = "category"
    elif rng.random() < 0.5:
        attribute = "category"
    else:
        known = [a for a in PRETRAIN_OBJECT_QUESTIONS if a != "category" and _object_answer(a, attributes, category)]
        attribute = rng.choice(known) if known else "category"
    question = rng.choice(PRETRAIN_OBJECT_QUESTIONS[attribute]).format(category=category)
    answer = _object_answer(attribute, attributes, category)
    return _row("object", [path], _images_then(1, question), str(answer))


def scene_objects_row(pool: ImagePool, rng: random.Random) -> Row:
    """A scene -> the categories of its objects, left to right ("a cat, a cup and a car"): the scene-scale
    counterpart of ``object_row``, with none of the caption template to lean on."""
    item = rng.choice(pool.scenes)
    objects = sorted(item.scene.objects, key=lambda obj: (obj.box[0] + obj.box[2], obj.box[1]))
    phrases = [f"{_article(obj.category)} {obj.category}" for obj in objects] or ["nothing"]
    question = rng.choice(PRETRAIN_SCENE_OBJECT_QUESTIONS)
    return _row("scene_objects", [item.path], _images_then(1, question), _and_list(phrases))


def _row(task: str, images: list[Path], content: list[dict[str, str]], answer: str, *, system: str = "",
         grounding: list[float] | None = None) -> Row:
    """A TRL conversational prompt-completion row; ``content`` holds the user turn's images and texts.

    ``grounding`` (see ``grounding_targets``) marks, per visual token of the last image, whether it shows
    the object the question is about; rows without one get an empty list (the dataset needs one schema).
    """
    prompt = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
    prompt.append({"role": "user", "content": content})
    completion = [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    return {"task": task, "images": [str(p) for p in images], "prompt": prompt, "completion": completion,
            "grounding": grounding or []}


def grounding_targets(scene: Scene, objects: Iterable[int], *, cell: int = TOKEN_CELL, cover: float = 0.25) -> list[float]:
    """Per visual token of ``scene`` (raster order, one per ``cell`` x ``cell`` pixels): 1.0 where one of
    ``objects`` (indices into ``scene.objects``) covers at least ``cover`` of the token's cell (its exact
    box, a stand-in for its mask), else 0.0. No objects (an absent concept): every token 0.0."""
    rows, cols = scene.height // cell, scene.width // cell
    targets = [0.0] * (rows * cols)
    for index in objects:
        x1, y1, x2, y2 = scene.objects[index].box
        for r in range(rows):
            for c in range(cols):
                dx = min(x2, (c + 1) * cell) - max(x1, c * cell)
                dy = min(y2, (r + 1) * cell) - max(y1, r * cell)
                if dx > 0 and dy > 0 and dx * dy >= cover * cell * cell:
                    targets[r * cols + c] = 1.0
    return targets


def _images_then(n_images: int, text: str) -> list[dict[str, str]]:
    """The RePIC training layout: every image first, then one text."""
    return [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": text}]


def _maybe_yes_no_instruction(rng: random.Random, question: str) -> str:
    """Half the yes/no questions carry OCT's answer instruction, so both phrasings get short answers."""
    return task_text("oct", question, rng) if rng.random() < 0.5 else question


def describe_row(pool: ImagePool, rng: random.Random, *, view_share: float = 0.4, rap_share: float = 0.15,
                 name_share: float = 0.5) -> Row:
    """A scene or, for ``view_share`` of the rows, a single-object view -> its generic description.

    Views are mostly of distractor objects (thousands of looks), the rest references of training
    concepts. ``rap_share`` of the scene rows come in the RAP inference layout (one to four references with
    fresh names, then the query scene), so that a caption request gets a caption whatever the number of
    references (not the copy task's list of names): a referenced concept that is in the scene is named
    in its phrase with chance ``name_share``, one that is not never is. So the base names some of the
    concepts shown, as a zero-shot MLLM does, and GRPO has names to start from.
    """
    question = rng.choice(PRETRAIN_DESCRIBE_QUESTIONS)
    if rng.random() < view_share:
        path, attributes, category = _single_view(pool, rng)
        answer = f"A photo of {describe_object(attributes, category)}."
        return _row("describe", [path], _images_then(1, question), answer)
    item = rng.choice(pool.scenes)
    if rng.random() >= rap_share:
        return _row("describe", [item.path], _images_then(1, question), describe_scene(item.scene, pool.concepts))
    shown = [(i, obj.concept) for i, obj in enumerate(item.scene.objects) if obj.concept in pool.concepts]
    referenced = [(i, tag) for i, tag in shown if rng.random() < 0.7]
    others = [tag for tag in pool.concepts if tag not in {tag for _, tag in shown}]
    count = max(len(referenced), min(len(others) + len(referenced), rng.choice((1, 2, 3, 4))))
    tags = [tag for _, tag in referenced] + rng.sample(others, count - len(referenced))
    rng.shuffle(tags)
    names: dict[str, str] = {}
    for tag in tags:
        names[tag] = fresh_name(rng, set(pool.reserved_names) | set(names.values()))
    named = {i: names[tag] for i, tag in referenced if rng.random() < name_share}
    content = _rap_layout([(names[tag], pool.concepts[tag].info) for tag in tags], question)
    images = [rng.choice(pool.references[tag]) for tag in tags] + [item.path]
    caption = describe_scene(item.scene, pool.concepts, named)
    return _row("describe", images, content, caption, system=INFERENCE_SYSTEM_PROMPT)


def _rap_layout(references: list[tuple[str, str]], question: str) -> list[dict[str, str]]:
    """The RAP inference layout's user turn (``repic.prompts.inference_messages``): each reference's image and
    ``N. Name: <x>, Info: ...`` line, then the query image and question."""
    return inference_messages(references, question)[1]["content"]


def category_yes_no_row(pool: ImagePool, rng: random.Random) -> Row:
    """A scene + "Is there a <category>?" -> yes (half the rows) or no."""
    item = rng.choice(pool.scenes)
    shown = {obj.category for obj in item.scene.objects}
    absent = [c for c in pool.categories if c not in shown]
    answer = "yes" if not absent or rng.random() < 0.5 else "no"
    category = rng.choice(sorted(shown) if answer == "yes" else absent)
    question = rng.choice(PRETRAIN_CATEGORY_QUESTIONS).format(article=_article(category), category=category)
    grounding = grounding_targets(item.scene, [i for i, o in enumerate(item.scene.objects) if o.category == category])
    return _row("category_yes_no", [item.path], _images_then(1, _maybe_yes_no_instruction(rng, question)), answer,
                grounding=grounding)


def category_box_row(pool: ImagePool, rng: random.Random) -> Row:
    """A scene + "Where is the <category>?" for a category shown once -> its box ``[x1, y1, x2, y2]``.

    A third of the rows ask in the VLT task's own form about an object described in a reference line with
    a fresh name (``Name: <x>, Info: a tall red bear with ...``), any object of the scene: the look, not only
    the category, picks the object, as VLT asks it about a concept.
    """
    if rng.random() < 1 / 3:
        item = rng.choice(pool.scenes)
        details = item.scene.extra.get("object_details") or []
        described = [i for i, detail in enumerate(details) if detail.get("attributes") and i < len(item.scene.objects)]
        if described:
            index = rng.choice(described)
            obj = item.scene.objects[index]
            name = fresh_name(rng, pool.reserved_names)
            info = describe_object(details[index]["attributes"], obj.category)
            text = f"{vlt_problem(rng.choice(VLT_QUESTIONS), name, tag=name, info=info)} {VLT_ANSWER_INSTRUCTIONS['list']}"
            return _row("category_box", [item.path], _images_then(1, text), format_box_answer(obj.box, style="list"),
                        grounding=grounding_targets(item.scene, [index]))
    while True:
        item = rng.choice(pool.scenes)
        counts: dict[str, int] = {}
        for obj in item.scene.objects:
            counts[obj.category] = counts.get(obj.category, 0) + 1
        unique = [obj for obj in item.scene.objects if counts[obj.category] == 1]
        if unique:
            break
    obj = rng.choice(unique)
    if rng.random() < 0.5:
        question = rng.choice(PRETRAIN_BOX_QUESTIONS).format(category=obj.category)
    else:  # the VLT task's own phrasing, with the category as its target
        question = vlt_problem(rng.choice(VLT_QUESTIONS), f"the {obj.category}")
    text = f"{question} {VLT_ANSWER_INSTRUCTIONS['list']}"
    grounding = grounding_targets(item.scene, [item.scene.objects.index(obj)])
    return _row("category_box", [item.path], _images_then(1, text), format_box_answer(obj.box, style="list"),
                grounding=grounding)


def echo_row(pool: ImagePool, rng: random.Random, *, own_name: bool = False) -> Row:
    """A reference view with a fresh name -> the name, in the training layout (half) or the RAP layout.

    ``own_name`` gives the concept's own name instead: only the probe does, on held-out concepts, to
    measure copying of the very names personalization will need; pretraining never does.
    """
    tag = rng.choice(list(pool.concepts))
    reference = rng.choice(pool.references[tag])
    name = tag if own_name else fresh_name(rng, pool.reserved_names)
    answer = rng.choice(PRETRAIN_ECHO_ANSWERS).format(name=name)
    if rng.random() < 0.5:
        text = named_references_text([(name, pool.concepts[tag].info)], rng.choice(PRETRAIN_ECHO_QUESTIONS))
        return _row("echo", [reference], _images_then(1, text), answer)
    query = rng.choice(pool.scenes).path
    content = _rap_layout([(name, pool.concepts[tag].info)], rng.choice(PRETRAIN_ECHO_QUERY_QUESTIONS))
    return _row("echo", [reference, query], content, answer, system=INFERENCE_SYSTEM_PROMPT)


def _and_list(items: list[str]) -> str:
    """'<a>', '<a> and <b>', '<a>, <b> and <c>' (names, or phrases such as 'a cat')."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def echo_multi_row(pool: ImagePool, rng: random.Random) -> Row:
    """Two to four reference views, each with a fresh name -> all the names in order, in the training
    layout (half) or the RAP layout (numbered references, then a query scene)."""
    count = min(len(pool.concepts), rng.choice((2, 3, 4)))
    tags = rng.sample(list(pool.concepts), count)
    names: list[str] = []
    for _ in tags:
        names.append(fresh_name(rng, set(pool.reserved_names) | set(names)))
    references = [rng.choice(pool.references[tag]) for tag in tags]
    named = [(name, pool.concepts[tag].info) for name, tag in zip(names, tags, strict=True)]
    answer = rng.choice(PRETRAIN_ECHO_MULTI_ANSWERS).format(names=_and_list(names))
    question = rng.choice(PRETRAIN_ECHO_MULTI_QUESTIONS)
    if rng.random() < 0.5:
        return _row("echo_multi", references, _images_then(count, named_references_text(named, question)), answer)
    content = _rap_layout(named, question)
    query = rng.choice(pool.scenes).path
    return _row("echo_multi", [*references, query], content, answer, system=INFERENCE_SYSTEM_PROMPT)


def matching_row(pool: ImagePool, rng: random.Random, *, oct_share: float = 0.0) -> Row:
    """A single-object view + a scene -> whether that very object is in the scene; half yes, half no.

    ``oct_share`` of the rows are asked in RePIC's OCT form with a fresh name for the object, the others
    with the generic ``PRETRAIN_MATCH_QUESTIONS``.

    The object is a training concept (a reference view) or, for half the rows when the pool has them, a
    distractor object (its view; the scene it was drawn in is the positive). Negatives are mostly scenes
    holding another object of the same category.
    """
    if pool.objects and rng.random() < 0.5:
        view = rng.choice(pool.objects)
        reference, category = view.path, view.category
        positives = [view.scene_index]

        def shown_at(scene: Scene) -> list[int]:
            return [view.object_index] if view.object_index >= 0 else []
    else:
        tag = rng.choice([t for t, shown_in in pool.by_concept.items() if shown_in])
        reference, category = rng.choice(pool.references[tag]), pool.concepts[tag].category
        positives = pool.by_concept[tag]

        def shown_at(scene: Scene) -> list[int]:
            return [i for i, obj in enumerate(scene.objects) if obj.concept == tag]
    grounding: list[float] = []
    if rng.random() < 0.5:
        scene_index, answer = rng.choice(positives), "yes"
        grounding = grounding_targets(pool.scenes[scene_index].scene, shown_at(pool.scenes[scene_index].scene))
    else:
        excluded = set(positives)
        hard = [i for i in pool.by_category.get(category, []) if i not in excluded]
        if hard and rng.random() < _HARD_NEGATIVE_SHARE:
            scene_index = rng.choice(hard)
        else:
            while (scene_index := rng.randrange(len(pool.scenes))) in excluded:
                pass
        answer = "no"
        grounding = grounding_targets(pool.scenes[scene_index].scene, [])
    if oct_share and rng.random() < oct_share:  # RePIC's own OCT prompt, the object under a fresh name
        question = task_text("oct", oct_problem(fresh_name(rng, pool.reserved_names), 1, rng.choice(OCT_QUESTIONS)), rng)
    else:
        question = _maybe_yes_no_instruction(rng, rng.choice(PRETRAIN_MATCH_QUESTIONS))
    return _row("matching", [reference, pool.scenes[scene_index].path], _images_then(2, question), answer,
                grounding=grounding)


ROW_BUILDERS: dict[str, Callable[[ImagePool, random.Random], Row]] = {
    "object": object_row,
    "scene_objects": scene_objects_row,
    "describe": describe_row,
    "category_yes_no": category_yes_no_row,
    "category_box": category_box_row,
    "echo": echo_row,
    "echo_multi": echo_multi_row,
    "matching": lambda pool, rng: matching_row(pool, rng, oct_share=_OCT_PHRASED_SHARE),
}


def pretraining_rows(
    pool: ImagePool, count: int, *, mix: PretrainMix = PretrainMix(), seed: int = 0, phase: str = "main"
) -> Iterator[Row]:
    """``count`` rows, each task drawn by the mix's weights; the same seed and phase give the same rows."""
    if not pool.scenes:
        raise RepicError("the image pool has no training scenes; generate a world with training scenes")
    rng = random.Random(f"{seed}:pretrain-rows:{phase}")
    tasks, weights = zip(*mix.shares().items(), strict=True)
    for _ in range(count):
        yield ROW_BUILDERS[rng.choices(tasks, weights)[0]](pool, rng)


def row_text(row: Row) -> str:
    """Every text of a row (prompt and completion), one part a line."""
    return "\n".join(
        part["text"]
        for message in row["prompt"] + row["completion"]
        for part in message["content"]
        if part.get("type") == "text"
    )


# ------------------------------------------------------------------------------------------ tokenizer corpus
def tokenizer_corpus(pool: ImagePool, rows: Iterable[Row], *, seed: int = 0) -> list[str]:
    """Texts to train the tiny tokenizer on: the rows' texts, and every RePIC prompt filled with fresh
    names (so later stages' prompts tokenize into learnt pieces); no concept name of the world."""
    rng = random.Random(f"{seed}:tokenizer-corpus")
    texts = [row_text(row) for row in rows]
    texts += [INFERENCE_SYSTEM_PROMPT, *EVAL_CAPTION_QUESTIONS, *TRAIN_CAPTION_QUESTIONS, *ICT_SUFFIX_ROLL]
    for _ in range(64):
        name = fresh_name(rng, pool.reserved_names)
        info = rng.choice([c.info for c in pool.concepts.values()])
        texts.append(task_text("oct", oct_problem(name, 1, rng.choice(OCT_QUESTIONS)), rng))
        texts.append(vlt_problem(rng.choice(VLT_QUESTIONS), name, tag=name, info=info))
        texts.append(ict_problem([(name, info)], rng.choice(TRAIN_CAPTION_QUESTIONS)))
        texts.append(format_box_answer((rng.randrange(56), rng.randrange(56), 60, 100), name))
    return [text for text in texts if text]
