"""Build RePIC samples from a collection: OCT, VLT, ICT training samples, SFT captions, held-out eval sets.

Each builder draws from a ``Source`` (one split of a synthetic or imported ``Collection``, the
``BuildConfig``, a seeded ``random.Random``) and returns records; ``build`` runs them all and writes::

    OUT/train.jsonl       training samples, official format, images relative to the image root
    OUT/sft.jsonl         the ICT samples with a reference caption in "caption" (SFT baseline targets)
    OUT/eval/single.jsonl, two.jsonl, four.jsonl   caption evaluation rows (held-out concepts)
    OUT/eval/oct.jsonl, vlt.jsonl                  held-out OCT / VLT samples, official format
    OUT/eval/database.json, eval/images/           the held-out concepts' database, for retrieval
    OUT/build.json        config, counts, caption lengths, notices and ``image_root`` (the collection
                          folder, relative to OUT); it marks a complete build

The folder is built beside OUT and swapped in at the end (``repic.outputs.replace_folder``): a rebuild
with ``overwrite`` that fails or is interrupted leaves the previous build as it was.

Training samples use the ``train`` split only, evaluation sets ``heldout`` only, and a row that names or
shows anything of another split is refused (``split_leaks``). OCT negatives are the hard ones first (an
object of the concept's category); VLT boxes are in the pixels the model sees (``BoxSpace``), and a concept
without a box is skipped, never given a made-up one; multi-concept ICT always shows an absent concept's
reference. Each task draws from its own random stream, and no (concept, scene) pair is repeated to fill a
count.

In full: docs/notes/sample-building.md
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from numbers import Real
from pathlib import Path
from typing import Any

from .. import prompts
from ..atomic import atomic_write_json, atomic_write_jsonl
from ..concepts.database import ConceptDatabase
from ..errors import RepicError
from ..outputs import check_output_folder, replace_folder
from ..records import Box, Concept, Sample, Scene
from ..tasks import normalize_task
from .collection import Collection, check_images
from .describe import describe_object, describe_scene, position_phrase
from .samples import task_mix, write_samples

UNBOXED_KEY = "unboxed_concepts"  # Scene.extra: concepts present in a photo whose box is unknown
PARTIAL_KEY = "partial_annotation"  # Scene.extra: only the concepts are annotated, other objects unknown
CAPTION_SETS: tuple[str, ...] = ("single", "two", "four")
BUILD_FILE, TRAIN_FILE, SFT_FILE, EVAL_DIR = "build.json", "train.jsonl", "sft.jsonl", "eval"
DEFAULT_COUNTS: dict[str, int] = {"oct": 600, "vlt": 400, "ict": 500, "ict_multi": 500}  # 2K, as the paper
DEFAULT_EVAL_COUNTS: dict[str, int] = {"oct": 200, "vlt": 100}
_PATCH = 28  # Qwen2-VL / Qwen2.5-VL: 14 px patches merged 2 x 2
_SHOWN = 10  # leaks listed in full in one error message


# ------------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class BoxSpace:
    """The pixel space VLT boxes are written in: the image as the model's processor presents it.

    ``mode``: ``"resized"`` (Qwen2.5-VL: pixels of the ``smart_resize``-d image; the limits must be the
    processor's), ``"original"`` (pixels of the file) or ``"relative1000"`` (Qwen2-VL, Qwen3-VL: 0..1000).
    """

    mode: str = "resized"
    min_pixels: int = 3136
    max_pixels: int = 12845056

    def __post_init__(self) -> None:
        if self.mode not in ("resized", "original", "relative1000"):
            raise RepicError(f"unknown box space {self.mode!r}; use resized, original or relative1000")
        if not 0 < self.min_pixels <= self.max_pixels:
            limits = f"{self.min_pixels}..{self.max_pixels}"
            raise RepicError(f"pixel limits {limits} are not a range; use 0 < min_pixels <= max_pixels")

    def model_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` of the image as the model sees it."""
        if self.mode == "relative1000":
            return 1000, 1000
        if self.mode == "original":
            return width, height
        if width % _PATCH == 0 == height % _PATCH and self.min_pixels <= width * height <= self.max_pixels:
            return width, height  # what smart_resize returns here, without importing transformers
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        new_height, new_width = smart_resize(height, width, _PATCH, self.min_pixels, self.max_pixels)
        return new_width, new_height

    def convert(self, box: Box, width: int, height: int) -> tuple[int, int, int, int]:
        """A box in pixels of the file, as whole pixels of the model's space (never empty)."""
        new_width, new_height = self.model_size(width, height)
        sx, sy = new_width / width, new_height / height
        x1, y1 = round(box[0] * sx), round(box[1] * sy)
        return x1, y1, max(x1 + 1, round(box[2] * sx)), max(y1 + 1, round(box[3] * sy))


@dataclass(frozen=True)
class BuildConfig:
    """What a build makes: samples per task, held-out OCT / VLT samples, ratios, references, box space."""

    seed: int = 0
    counts: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_COUNTS))
    eval_counts: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_EVAL_COUNTS))
    oct_positive_ratio: float = 0.5
    oct_references: int = 1  # reference images of the concept in an OCT sample
    vlt_category_ratio: float = 0.3
    multi_references: tuple[int, int] = (2, 4)
    min_caption_chars: int = 100  # the ICT reward's minimum; shorter SFT captions get the scene description
    box_space: BoxSpace = BoxSpace()
    ict_absent_references: float = 0.0  # share of single ICT samples also showing an absent concept

    def __post_init__(self) -> None:
        for name in ("counts", "eval_counts"):
            where = f"BuildConfig.{name}"
            table = {normalize_task(task, where=where): n for task, n in getattr(self, name).items()}
            if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in table.values()):
                raise RepicError(f"BuildConfig.{name} must map tasks to whole numbers >= 0, got {table}")
            object.__setattr__(self, name, table)
        for name in ("oct_positive_ratio", "vlt_category_ratio", "ict_absent_references"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= value <= 1.0:
                raise RepicError(f"BuildConfig.{name} is {value!r}; a ratio is between 0 and 1")
        if not 2 <= self.multi_references[0] <= self.multi_references[1] <= 4:
            raise RepicError(
                f"BuildConfig.multi_references is {self.multi_references}; use 2 <= low <= high <= 4"
            )
        if self.oct_references < 1 or self.min_caption_chars < 0:
            raise RepicError("BuildConfig: oct_references must be >= 1 and min_caption_chars >= 0")

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if not self.ict_absent_references:  # off, the paper's: left out, so build.json and cache keys stay
            del values["ict_absent_references"]
        return {**values, "counts": dict(self.counts), "eval_counts": dict(self.eval_counts),
                "multi_references": list(self.multi_references), "box_space": vars(self.box_space)}


_DEFAULT = BuildConfig()


def present_concepts(scene: Scene) -> list[str]:
    """Every concept a scene shows: those with boxes, in drawing order, then those without."""
    return scene.concepts + [tag for tag in scene.extra.get(UNBOXED_KEY, []) if tag not in scene.concepts]


@dataclass
class Source:
    """What a builder draws from: one split of a collection, the settings, a seeded generator, and the
    list that collects notices (what could not be built, and why)."""

    collection: Collection
    split: str
    config: BuildConfig = _DEFAULT
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    notices: list[str] = field(default_factory=list)

    def scenes(self) -> list[Scene]:
        return self.collection.scenes_in(self.split)

    def image(self, path: str | os.PathLike) -> str:
        """An image path as sample files store it: relative to the collection folder when inside it."""
        absolute = Path(os.path.abspath(self.collection.image_path(str(path))))
        try:
            return absolute.relative_to(self.collection.root).as_posix()
        except ValueError:
            return str(absolute)  # an image kept outside the collection: absolute works under any root

    def reference(self, concept: Concept) -> str:
        return self.image(self.rng.choice(concept.images))

    def draw(self, pool: Sequence[Any], count: int) -> list[Any]:
        return self.rng.sample(list(pool), min(count, len(pool)))

    def shortfall(self, task: str, asked: int, built: int, why: str) -> None:
        if built < asked:
            self.notices.append(f"{task} ({self.split}): built {built} of {asked} asked ({why})")


# ------------------------------------------------------------------------------------------ builders
def build_oct(source: Source, count: int) -> list[Sample]:
    """Object-consistency samples: references of a concept + a scene -> "yes" / "no"."""
    concepts = source.collection.concepts
    positives, hard, easy = [], [], []
    for scene in source.scenes():
        present = set(present_concepts(scene))
        categories = {obj.category for obj in scene.objects} | {concepts[tag].category for tag in present}
        for concept in source.collection.concepts_in(source.split):
            if concept.tag in present:
                positives.append((concept, scene))
            else:
                (hard if concept.category in categories else easy).append((concept, scene))
    n_positive = round(count * source.config.oct_positive_ratio)
    chosen = [(c, s, "yes") for c, s in source.draw(positives, n_positive)]
    source.rng.shuffle(hard)
    source.rng.shuffle(easy)
    chosen += [(c, s, "no") for c, s in (hard + easy)[: count - n_positive]]
    source.shortfall("oct", count, len(chosen), "not enough distinct (concept, scene) pairs")
    samples = []
    for concept, scene, answer in chosen:
        drawn = source.draw(concept.images, source.config.oct_references)
        references = [source.image(image) for image in drawn]
        problem = prompts.oct_problem(concept.tag, len(references), source.rng.choice(prompts.OCT_QUESTIONS))
        images = [*references, source.image(scene.image)]
        samples.append(Sample("oct", images, problem, answer, {"concepts": [concept.tag]}))
    return samples


def build_vlt(source: Source, count: int) -> list[Sample]:
    """Visual-localization samples: a scene + "where is <x>" (or "the <category>") -> its box."""
    concepts, candidates, unboxed = source.collection.concepts, [], 0
    for scene in source.scenes():
        candidates += [(concepts[o.concept], scene, o.box) for o in scene.objects if o.concept is not None]
        unboxed += len(present_concepts(scene)) - len(scene.concepts)
    if unboxed:
        source.notices.append(f"vlt ({source.split}): skipped {unboxed} concept appearance(s) without a box")
    chosen = source.draw(candidates, count)
    source.shortfall("vlt", count, len(chosen), "not enough boxed concept appearances")
    samples = []
    for concept, scene, box in chosen:
        unambiguous = sum(obj.category == concept.category for obj in scene.objects) == 1
        question = source.rng.choice(prompts.VLT_QUESTIONS)
        if unambiguous and source.rng.random() < source.config.vlt_category_ratio:
            problem = prompts.vlt_problem(question, f"the {concept.category}")
        else:
            problem = prompts.vlt_problem(question, concept.tag, tag=concept.tag, info=concept.info)
        solution = list(source.config.box_space.convert(box, scene.width, scene.height))
        extra = {"concepts": [concept.tag]}
        samples.append(Sample("vlt", [source.image(scene.image)], problem, solution, extra))
    return samples


def _absent_references(source: Source, chosen: Sequence[tuple[Concept, Scene]]) -> list[Any]:
    """Per chosen (concept, scene): ``None``, or ``(absent concept, its reference, shown first)``.

    ``ict_absent_references`` of the samples get one; the absent concept is of the present one's category
    where the split has one absent from the scene (the lookalike retrieval confuses), else any concept of
    the split absent from it. Drawn from a stream of its own, so the rest of the build is the same as
    with the share at 0.
    """
    ratio = source.config.ict_absent_references
    if not ratio or not chosen:
        return [None] * len(chosen)
    rng = random.Random(f"{source.config.seed}:ict-absent")
    picked = set(rng.sample(range(len(chosen)), round(len(chosen) * ratio)))
    pool = source.collection.concepts_in(source.split)
    shown: list[Any] = []
    for index, (concept, scene) in enumerate(chosen):
        present = set(present_concepts(scene))
        absent = [other for other in pool if other.tag not in present]
        candidates = [other for other in absent if other.category == concept.category] or absent
        if index not in picked or not candidates:
            shown.append(None)
            continue
        other = rng.choice(candidates)
        shown.append((other, source.image(rng.choice(other.images)), rng.random() < 0.5))
    alone = sum(i in picked and s is None for i, s in enumerate(shown))
    if alone:
        source.notices.append(
            f"ict ({source.split}): {alone} sample(s) picked to show an absent concept show one reference, "
            "as their scene holds every concept of the split"
        )
    return shown


def build_ict(source: Source, count: int) -> list[Sample]:
    """Single-concept captions: one present concept's reference + the scene -> a caption naming it.

    With ``ict_absent_references`` some also show an absent concept's reference, before or after the
    present one at random as retrieval orders them; the solution is still the present concept.
    """
    concepts = source.collection.concepts
    pairs = [(concepts[tag], scene) for scene in source.scenes() for tag in present_concepts(scene)]
    chosen = source.draw(pairs, count)
    source.shortfall("ict", count, len(chosen), "not enough (concept, scene) pairs")
    samples = []
    for (concept, scene), extra in zip(chosen, _absent_references(source, chosen), strict=True):
        question = source.rng.choice(prompts.TRAIN_CAPTION_QUESTIONS)
        shown, references = [concept], [source.reference(concept)]
        if extra is not None:
            other, reference, first = extra
            shown.insert(0 if first else 1, other)
            references.insert(0 if first else 1, reference)
        problem = prompts.ict_problem([(c.tag, c.info) for c in shown], question)
        images = [*references, source.image(scene.image)]
        samples.append(Sample("ict", images, problem, concept.tag, {"concepts": [c.tag for c in shown]}))
    return samples


def build_ict_multi(source: Source, count: int) -> list[Sample]:
    """Multi-concept captions: 2-4 references, at least one absent from the scene -> the present ones."""
    rng, (low, high) = source.rng, source.config.multi_references
    pool = source.collection.concepts_in(source.split)
    scenes = [scene for scene in source.scenes() if len(present_concepts(scene)) >= 2]
    rng.shuffle(scenes)
    samples: list[Sample] = []
    seen: set[tuple[str, frozenset[str]]] = set()
    # Scenes are visited round robin; a (scene, reference set) pair is never used twice.
    for attempt in range(count * 5 if scenes else 0):
        if len(samples) == count:
            break
        scene = scenes[attempt % len(scenes)]
        present = present_concepts(scene)
        absent = [concept for concept in pool if concept.tag not in present]
        n_references = rng.randint(low, high)
        n_present = min(len(present), n_references - 1)
        n_absent = min(len(absent), n_references - n_present)
        if n_absent < 1:
            continue
        shown = [source.collection.concepts[t] for t in rng.sample(present, n_present)]
        shown += rng.sample(absent, n_absent)
        rng.shuffle(shown)
        key = (scene.image, frozenset(c.tag for c in shown))
        if key in seen:
            continue
        seen.add(key)
        question = rng.choice(prompts.TRAIN_CAPTION_QUESTIONS)
        problem = prompts.ict_problem([(c.tag, c.info) for c in shown], question)
        images = [source.reference(c) for c in shown] + [source.image(scene.image)]
        solution = [c.tag for c in shown if c.tag in present]
        samples.append(Sample("ict_multi", images, problem, solution, {"concepts": [c.tag for c in shown]}))
    source.shortfall("ict_multi", count, len(samples), "not enough distinct multi-concept scenes")
    return samples


BUILDERS = {"oct": build_oct, "vlt": build_vlt, "ict": build_ict, "ict_multi": build_ict_multi}


# ------------------------------------------------------------------------------------------ captions
def _join(phrases: Sequence[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def reference_caption(scene: Scene, concepts: Mapping[str, Concept], named: Sequence[str]) -> str:
    """A caption naming the ``named`` concepts with their look and position; other objects without names.

    >>> from repic.records import SceneObject
    >>> bear = Concept("<bako>", "bako", "bear", extra={"attributes": {"color": "red", "accessory": "hat",
    ...                                                                 "accent": "blue"}})
    >>> scene = Scene("s.png", 90, 90, [SceneObject("bear", (0, 30, 30, 60), "<bako>"),
    ...                                 SceneObject("cone", (60, 60, 90, 90))])
    >>> reference_caption(scene, {"<bako>": bear}, ["<bako>"])
    '<bako> the red bear with a blue hat is on the left. There is also a cone at the bottom right.'
    """
    details = scene.extra.get("object_details") or []
    named_phrases, other_phrases = [], []
    left_to_right = sorted(range(len(scene.objects)), key=lambda i: sum(scene.objects[i].box[0::2]))
    for i in left_to_right:
        obj = scene.objects[i]
        attributes = details[i].get("attributes") if i < len(details) else None
        if attributes is None and obj.concept in concepts:
            attributes = concepts[obj.concept].extra.get("attributes")
        look = describe_object(attributes or {}, obj.category)
        where = position_phrase(obj.box, scene.width, scene.height)
        if obj.concept in named:
            named_phrases.append(f"{obj.concept} the {look.split(' ', 1)[1]} is {where}")  # without "a"/"an"
        else:
            other_phrases.append(f"{look} {where}")
    unboxed = [tag for tag in scene.extra.get(UNBOXED_KEY, []) if tag in named]
    named_phrases += [f"{tag} the {concepts[tag].category} is in the picture" for tag in unboxed]
    if not named_phrases:
        raise RepicError(f"scene {scene.image} shows none of {', '.join(named)}; a caption must name them")
    if scene.extra.get(PARTIAL_KEY):  # other objects are unknown: say nothing about them
        return f"{_join(named_phrases)}."
    others = f"There is also {_join(other_phrases)}." if other_phrases else "Nothing else is in the picture."
    return f"{_join(named_phrases)}. {others}"


def build_sft(source: Source, samples: Iterable[Sample]) -> list[Sample]:
    """The ICT samples with a reference caption in ``extra["caption"]`` (the SFT baseline's targets).

    A caption shorter than ``min_caption_chars`` (the ICT reward's minimum) is followed by the scene's
    generic description, which restates the objects without names: longer and still true. Partially
    annotated (imported) scenes get no such description, which would claim to list every object.
    """
    concepts = source.collection.concepts
    by_image = {source.image(scene.image): scene for scene in source.collection.scenes}
    rows = []
    for sample in samples:
        if sample.task not in ("ict", "ict_multi"):
            continue
        scene = by_image[sample.images[-1]]
        named = [sample.solution] if sample.task == "ict" else sample.solution
        caption = reference_caption(scene, concepts, named)
        if len(caption) < source.config.min_caption_chars and not scene.extra.get(PARTIAL_KEY):
            caption = f"{caption} {describe_scene(scene, concepts)}"
        rows.append(replace(sample, images=list(sample.images), extra={**sample.extra, "caption": caption}))
    return rows


def caption_set_of(scene: Scene) -> str | None:
    """The caption evaluation set of a scene: its kind, else by concept count; None without concepts."""
    if scene.extra.get("kind") in CAPTION_SETS:
        return scene.extra["kind"]
    count = len(present_concepts(scene))
    return None if count == 0 else "single" if count == 1 else "two" if count == 2 else "four"


def build_caption_eval(source: Source, which: str) -> list[dict[str, Any]]:
    """Caption evaluation rows (skip-retrieval: the true concepts are the references), in scorer shape."""
    rows = []
    for scene in source.scenes():
        if caption_set_of(scene) == which:
            tags = present_concepts(scene)
            rows.append({
                "image": source.image(scene.image),
                "task": "ict" if len(tags) == 1 else "ict_multi",
                "concepts": tags,
                "question": prompts.eval_question(len(rows)),
                "references": [source.image(source.collection.concepts[tag].images[0]) for tag in tags],
                "reference_concepts": tags,
            })
    return rows


# ------------------------------------------------------------------------------------------ leaks
def _row_parts(row: Sample | Mapping[str, Any]) -> tuple[list[str], str]:
    """The image paths and the text of a sample or an evaluation row."""
    if isinstance(row, Sample):
        return list(row.images), json.dumps([row.problem, row.solution, row.extra], ensure_ascii=False)
    image = row.get("image")
    images = [image] if isinstance(image, str) else list(image or [])
    return images + list(row.get("references", [])), json.dumps(row, ensure_ascii=False)


def split_leaks(collection: Collection, rows: Iterable[Sample | Mapping[str, Any]], split: str) -> list[str]:
    """Rows that name a concept, or show an image, of a split other than ``split``; one line per leak."""
    allowed = set(collection.splits.get(split, []))
    foreign = [tag for tag in collection.concepts if tag not in allowed]

    def key(path: str | os.PathLike) -> str:
        return os.path.normpath(collection.image_path(str(path)))

    foreign_images = {key(s.image): f"a {s.split} scene" for s in collection.scenes if s.split != split}
    for tag in foreign:
        foreign_images.update({key(p): f"a reference of {tag}" for p in collection.concepts[tag].images})
    leaks = []
    for number, row in enumerate(rows, start=1):
        images, text = _row_parts(row)
        names = [tag for tag in foreign if tag in text]
        if names:
            leaks.append(f"row {number} names {', '.join(names)} (not in split {split!r})")
        shown = [p for p in images if key(p) in foreign_images]
        leaks += [f"row {number} shows {foreign_images[key(p)]}: {p}" for p in shown]
    return leaks


def check_no_leaks(
    collection: Collection, rows: Iterable[Sample | Mapping[str, Any]], split: str, what: str
) -> None:
    """Raise ``RepicError`` listing the leaks of ``rows`` (see ``split_leaks``)."""
    leaks = split_leaks(collection, rows, split)
    if leaks:
        more = f"; and {len(leaks) - _SHOWN} more" if len(leaks) > _SHOWN else ""
        raise RepicError(
            f"{what} would leak concepts across splits: {'; '.join(leaks[:_SHOWN])}{more}. "
            f"Fix the collection's splits in {collection.root / 'collection.json'}"
        )


# ------------------------------------------------------------------------------------------ the build
@dataclass
class Built:
    """Everything a build made, before or after it is written."""

    train: list[Sample]
    sft: list[Sample]
    evaluation: dict[str, list[Any]]  # eval file stem -> rows (caption dicts, or OCT / VLT samples)
    notices: list[str]
    caption_chars: tuple[int, int]  # shortest and longest SFT caption: the ICT reward minimum to train with


def build_samples(collection: Collection, config: BuildConfig = _DEFAULT) -> Built:
    """Every sample of a build, leak-checked, without writing anything."""
    notices: list[str] = []

    def source(split: str, stream: str) -> Source:
        return Source(collection, split, config, random.Random(f"{config.seed}:{stream}"), notices)

    train = []
    for task, build_task in BUILDERS.items():
        train += build_task(source("train", task), config.counts.get(task, 0))
    random.Random(f"{config.seed}:order").shuffle(train)
    sft = build_sft(source("train", "sft"), train)
    evaluation: dict[str, list[Any]] = {}
    if collection.splits.get("heldout"):
        evaluation = {which: build_caption_eval(source("heldout", which), which) for which in CAPTION_SETS}
        for task in ("oct", "vlt"):
            count = config.eval_counts.get(task, 0)
            evaluation[task] = BUILDERS[task](source("heldout", f"eval-{task}"), count)
    else:
        notices.append("no held-out concepts: no evaluation sets were built")
    check_no_leaks(collection, train + sft, "train", "the training samples")
    for name, rows in evaluation.items():
        check_no_leaks(collection, rows, "heldout", f"evaluation set {name}")
    lengths = [len(row.extra["caption"]) for row in sft] or [0]
    short = sum(n < config.min_caption_chars for n in lengths)
    if sft and short:
        notices.append(
            f"sft: {short} caption(s) are shorter than min_caption_chars={config.min_caption_chars} "
            f"(shortest {min(lengths)}); train with RewardOptions(min_caption_chars={min(lengths)})"
        )
    return Built(train, sft, evaluation, notices, (min(lengths), max(lengths)))


def build(collection: Collection, out_dir: str | os.PathLike, config: BuildConfig = _DEFAULT, *,
          overwrite: bool = False) -> Built:
    """Build every sample of ``collection`` and write the build folder (layout in the module docstring).

    Every image of the collection is decoded first: a build refers to its images by path, so one that is
    deleted or broken is refused here, naming the file, rather than failing in training.
    """
    out_dir = Path(out_dir).absolute()
    check_output_folder(out_dir, marker=BUILD_FILE, inputs=[collection.root], overwrite=overwrite)
    check_images(collection)
    built = build_samples(collection, config)
    try:
        image_root = os.path.relpath(collection.root, out_dir)
    except ValueError:  # another drive: only an absolute path reaches it
        image_root = str(collection.root)
    # Built beside OUT and swapped in at the end: a failed or interrupted rebuild keeps the previous build.
    with replace_folder(out_dir, marker=BUILD_FILE, inputs=[collection.root], overwrite=overwrite) as staging:
        write_samples(staging / TRAIN_FILE, built.train, image_root=collection.root)
        write_samples(staging / SFT_FILE, built.sft, image_root=collection.root)
        for name, rows in built.evaluation.items():
            if name in CAPTION_SETS:
                atomic_write_jsonl(staging / EVAL_DIR / f"{name}.jsonl", rows)
            else:
                write_samples(staging / EVAL_DIR / f"{name}.jsonl", rows, image_root=collection.root)
        if built.evaluation:  # the held-out database, with copies of its reference images, for retrieval
            database = ConceptDatabase(staging / EVAL_DIR / "database.json")
            for concept in collection.concepts_in("heldout"):
                database.add(concept, store="copy", images_dir=staging / EVAL_DIR / "images")
            database.save()
        counts = {
            "train": {row.task: row.count for row in task_mix(built.train)},
            "sft": len(built.sft),
            "eval": {name: len(rows) for name, rows in built.evaluation.items()},
        }
        atomic_write_json(staging / BUILD_FILE, {
            "format": "repic-build/1", "image_root": image_root, "seed": config.seed,
            "config": config.to_dict(), "counts": counts,
            "caption_chars": {"min": built.caption_chars[0], "max": built.caption_chars[1]},
            "notices": built.notices,
        })
    return built
