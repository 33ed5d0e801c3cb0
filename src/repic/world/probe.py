"""Measure a model on a synthetic world's held-out concepts: what a base knows before personalization.

``probe_model(model_dir, world_dir)`` loads the model (timed), asks it, greedily, what the pretraining
tasks ask, but about held-out concepts and scenes it never saw, and returns a dict (``PROBE_KEYS``):
generic ``captions`` compared word by word with the world's own descriptions, ``zero_shot`` (the demo's
RAP prompt: does the caption hold the name? GRPO needs this above zero), ``copy_accuracy`` (fresh,
held-out and multiple names), ``object_category_accuracy``, ``matching_accuracy``,
``oct_matching_accuracy``, ``category_yes_no_accuracy``, ``box_accuracy`` (IoU >= 0.5), and size and
speed (``parameters``, ``checkpoint_bytes``, ``load_seconds``, ``tokens_per_second``).

The prompts are built by the pretraining row builders on a pool of the held-out split, so nothing differs
from pretraining but the concepts. Answers, and the reward-scored accuracies, come from the evaluation
engine (``repic.evaluate.engine``); the caption, copy and category measures are the probe's own. Yes/no
sets are balanced, so always answering "yes" scores 0.5. A model pretrained on another world is still
probed (``same_world_as_pretraining`` False, ``heldout_known_from_pretraining`` counting the held-out
concepts that look like one it trained on). Each phase is reported through ``progress`` (``repic.progress``).

In full: docs/notes/base-probe.md
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.collection import Collection, load_collection
from ..errors import RepicError
from ..evaluate import engine
from ..evaluate.engine import EvalTask, evaluate
from ..inference.generate import Generated, GenerationSettings
from ..progress import Progress, say_nothing
from ..prompts import eval_question, inference_messages
from .pretrain_data import (
    ImagePool,
    Row,
    category_box_row,
    category_yes_no_row,
    describe_row,
    echo_multi_row,
    echo_row,
    matching_row,
    object_row,
    split_pool,
)
from .synthetic import ATTRIBUTE_VALUES, CATEGORIES, PROP_CATEGORIES, make_world
from .world_config import WorldConfig

PROBE_KEYS: tuple[str, ...] = (
    "model",
    "world",
    "same_world_as_pretraining",
    "heldout_known_from_pretraining",
    "captions",
    "zero_shot",
    "copy_accuracy",
    "copy_accuracy_heldout_names",
    "copy_accuracy_multi",
    "object_category_accuracy",
    "matching_accuracy",
    "oct_matching_accuracy",
    "category_yes_no_accuracy",
    "box_accuracy",
    "parameters",
    "checkpoint_bytes",
    "load_seconds",
    "tokens_per_second",
    "examples",
    "probe_seconds",
)
_CATEGORY_WORDS = frozenset(CATEGORIES + PROP_CATEGORIES)
_ATTRIBUTE_WORDS = frozenset(v for values in ATTRIBUTE_VALUES.values() for v in values if v != "plain")
_WORD = re.compile(r"[a-z]+")
_NUMBER = re.compile(r"\d+")
_NAME = re.compile(r"<[a-z]+>")


@dataclass(frozen=True)
class ProbeConfig:
    """How many prompts each measurement uses and how long answers may be."""

    captions: int = 48
    copies: int = 64
    matching: int = 64
    category_questions: int = 64
    boxes: int = 48
    caption_tokens: int = 96  # the longest held-out descriptions are about 90 tokens
    answer_tokens: int = 24
    speed_tokens: int = 32
    batch_size: int = 8
    seed: int = 0


def _settings(max_new_tokens: int, batch_size: int, min_new_tokens: int | None = None) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=max_new_tokens, batch_size=batch_size, min_new_tokens=min_new_tokens, cache="dynamic"
    )


def generate(
    model,
    processor,
    rows: Sequence[Row],
    max_new_tokens: int,
    *,
    batch_size: int = 8,
    min_new_tokens: int | None = None,
) -> list[Generated]:
    """Greedy answers to the rows' prompts (``repic.evaluate.engine.answer``, dynamic cache), the model's
    mode left as it is: the pretraining skill checks call this in the middle of training."""
    tasks = [EvalTask.from_row(row) for row in rows]
    return engine.answer(model, processor, tasks, _settings(max_new_tokens, batch_size, min_new_tokens))


# ------------------------------------------------------------------------------------------ prompt sets
def heldout_rows(
    pool: ImagePool, build: Callable[[ImagePool, random.Random], Row], count: int, *, seed: int, balanced: bool = False
) -> list[Row]:
    """``count`` distinct rows from ``build`` on ``pool``; ``balanced`` yes/no rows are half yes, half no."""
    rng = random.Random(f"{seed}:probe:{getattr(build, '__name__', 'rows')}")
    rows: list[Row] = []
    seen: set[tuple] = set()
    wanted = {"yes": count // 2, "no": count - count // 2} if balanced else None
    for _ in range(count * 50):
        if len(rows) == count:
            break
        row = build(pool, rng)
        key = (tuple(row["images"]), str(row["prompt"]))
        answer = _expected(row)
        if key in seen or (wanted is not None and wanted.get(answer, 0) == 0):
            continue
        seen.add(key)
        if wanted is not None:
            wanted[answer] -= 1
        rows.append(row)
    return rows


def _expected(row: Row) -> str:
    return row["completion"][0]["content"][0]["text"]


def _zero_shot_rows(collection: Collection, count: int) -> list[tuple[Row, str]]:
    """The demo's RAP prompt on single-concept held-out scenes: the true concept as the reference."""
    rows = []
    for scene in [s for s in collection.scenes_in("heldout") if len(s.concepts) == 1][:count]:
        concept = collection.concepts[scene.concepts[0]]
        messages = inference_messages([(concept.tag, concept.info)], eval_question(len(rows)))
        images = [str(concept.images[0]), str(collection.image_path(scene.image))]
        rows.append(({"prompt": messages, "images": images}, concept.tag))
    return rows


# ------------------------------------------------------------------------------------------ scores
def _words(text: str, vocabulary: frozenset[str]) -> set[str]:
    return {word for word in _WORD.findall(text.lower()) if word in vocabulary}


def caption_scores(references: Sequence[str], answers: Sequence[Generated]) -> dict[str, float]:
    """Word-level agreement of generated captions with the world's descriptions (see the module doc).

    >>> caption_scores(["A photo of a red bear on the left."], [Generated("A photo of a red cat.", 6, True)])["category_precision"]
    0.0
    """
    named_any, recalls, attribute_recalls, right, named_total = 0, [], [], 0, 0
    for reference, answer in zip(references, answers, strict=True):
        shown, said = _words(reference, _CATEGORY_WORDS), _words(answer.text, _CATEGORY_WORDS)
        named_any += bool(shown & said)
        recalls.append(len(shown & said) / len(shown) if shown else 1.0)
        right += len(shown & said)
        named_total += len(said)
        true_attributes = _words(reference, _ATTRIBUTE_WORDS)
        if true_attributes:
            attribute_recalls.append(len(true_attributes & _words(answer.text, _ATTRIBUTE_WORDS)) / len(true_attributes))
    n = max(1, len(answers))
    return {
        "category_mention_rate": named_any / n,
        "category_recall": sum(recalls) / n,
        "category_precision": right / named_total if named_total else 0.0,
        "attribute_recall": sum(attribute_recalls) / max(1, len(attribute_recalls)),
        "exact_rate": sum(a.text == r for r, a in zip(references, answers, strict=True)) / n,
        "mean_chars": sum(len(a.text) for a in answers) / n,
        "format_ok_rate": sum(a.ended and a.clean for a in answers) / n,
    }


def reward_tasks(task: str, rows: Sequence[Row]) -> list[EvalTask]:
    """The rows as tasks the engine scores with ``task``'s reward, the row's completion being the truth
    (a box is parsed back to its numbers)."""
    tasks = []
    for row in rows:
        truth: Any = _expected(row)
        if task == "vlt":
            truth = [int(v) for v in _NUMBER.findall(truth)]
        tasks.append(EvalTask.from_row(row, task=task, solution=truth))
    return tasks


def category_accuracy(rows: Sequence[Row], answers: Sequence[Generated]) -> float:
    """Share of answers naming the expected category ("a cat") and no other category."""
    right = 0
    for row, answer in zip(rows, answers, strict=True):
        said = _words(answer.text, _CATEGORY_WORDS)
        right += said == _words(_expected(row), _CATEGORY_WORDS)
    return right / max(1, len(rows))


def copy_accuracy(rows: Sequence[Row], answers: Sequence[Generated]) -> float:
    """Share of answers that contain every name their echo row's expected answer gives."""
    names = [_NAME.findall(_expected(row)) for row in rows]
    return sum(all(n in a.text for n in row_names) for row_names, a in zip(names, answers, strict=True)) / max(
        1, len(rows)
    )


# ------------------------------------------------------------------------------------------ the probe
def _same_world(model_dir: Path, collection: Collection) -> bool | None:
    from .pretrain import read_record

    record = read_record(model_dir)
    if record is None:
        return None
    return record.get("world", {}).get("config") == collection.meta.get("config")


def known_heldout_concepts(model_dir: Path, collection: Collection) -> int | None:
    """How many held-out concepts of ``collection`` look like a training concept of the model's pretraining
    world (``None`` when the model has no record of that world)."""
    from .pretrain import read_record

    record = read_record(model_dir)
    config = (record or {}).get("world", {}).get("config")
    if not isinstance(config, dict):
        return None
    # The concepts alone are drawn (names, categories, looks): nothing is rendered.
    pretraining = make_world(WorldConfig.from_dict(config, where=f"{model_dir}: world"), Path())
    trained = {(pretraining.concepts[tag].category, pretraining.concepts[tag].info) for tag in pretraining.splits["train"]}
    return sum((concept.category, concept.info) in trained for concept in collection.concepts_in("heldout"))


def _tokens_per_second(model, processor, rows: Sequence[Row], batch: int, tokens: int) -> float:
    """New tokens per second generating exactly ``tokens`` for ``batch`` prompts (after one warm-up)."""
    chosen = list(rows[:batch])
    generate(model, processor, chosen, 2, batch_size=batch)
    started = time.perf_counter()
    generate(model, processor, chosen, tokens, batch_size=batch, min_new_tokens=tokens)
    return batch * tokens / (time.perf_counter() - started)


_MEASUREMENTS = 11  # the generating phases of ``probe_model``, for its "[k/11]" progress lines


def _phases(say: Progress) -> Callable[[str, int], None]:
    """A callback that says ``[k/11] what: N prompts`` as each measurement starts."""
    done = [0]

    def start(what: str, prompts: int) -> None:
        done[0] += 1
        say(f"[{done[0]}/{_MEASUREMENTS}] {what}: {prompts} prompts")

    return start


def probe_model(
    model_dir: str | os.PathLike, world_dir: str | os.PathLike, config: ProbeConfig = ProbeConfig(),
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Measure the model in ``model_dir`` on the held-out concepts of the world in ``world_dir``.

    ``progress`` receives a line when the model loads and as each measurement starts.
    """
    from ..models.load import load_policy

    say = progress or say_nothing
    started = time.perf_counter()
    collection = load_collection(world_dir)
    if not collection.splits.get("heldout"):
        raise RepicError(f"{collection.root} has no held-out concepts to probe on; generate a world with some")
    model_path = Path(model_dir).expanduser().resolve()
    say(f"loading {model_path}")
    loading = time.perf_counter()
    policy = load_policy(model_path, dtype="float32")
    load_seconds = time.perf_counter() - loading
    say(f"loaded in {load_seconds:.1f} s; probing on {len(collection.splits['heldout'])} held-out concepts")
    model, processor = policy.model, policy.processor
    pool = split_pool(collection, "heldout")
    seed, batch = config.seed, config.batch_size
    phase = _phases(say)

    def ask(what, rows, tokens):  # answers only: the probe's own measures score them
        phase(what, len(rows))
        return evaluate(model, processor, [EvalTask.from_row(row) for row in rows], _settings(tokens, batch)).answers

    def accuracy(what, task, rows, tokens):  # mean reward, scored by the engine
        phase(what, len(rows))
        return evaluate(model, processor, reward_tasks(task, rows), _settings(tokens, batch)).mean_reward()

    def speed():  # new tokens per second, greedy, at batch 1 and 8
        phase("speed at batch 1 and 8", len(describe[:8]))
        return {f"batch_{n}": round(_tokens_per_second(model, processor, describe, n, config.speed_tokens), 1)
                for n in (1, 8)}

    describe = heldout_rows(pool, lambda p, r: describe_row(p, r, view_share=0.0, rap_share=0.0), config.captions, seed=seed)
    captions = ask("captions", describe, config.caption_tokens)
    zero_shot = _zero_shot_rows(collection, config.captions)
    zero_answers = ask("zero-shot RAP prompt", [row for row, _ in zero_shot], config.caption_tokens)
    copies = heldout_rows(pool, echo_row, config.copies, seed=seed)
    own = heldout_rows(pool, lambda p, r: echo_row(p, r, own_name=True), config.copies, seed=seed)
    several = heldout_rows(pool, echo_multi_row, config.copies, seed=seed)
    objects = heldout_rows(pool, lambda p, r: object_row(p, r, attribute="category"), config.matching, seed=seed)
    matching = heldout_rows(pool, matching_row, config.matching, seed=seed, balanced=True)
    oct_form = heldout_rows(pool, lambda p, r: matching_row(p, r, oct_share=1.0), config.matching, seed=seed,
                            balanced=True)
    categories = heldout_rows(pool, category_yes_no_row, config.category_questions, seed=seed, balanced=True)
    boxes = heldout_rows(pool, category_box_row, config.boxes, seed=seed)

    result = {
        "model": str(model_path),
        "world": str(collection.root),
        "same_world_as_pretraining": _same_world(model_path, collection),
        "heldout_known_from_pretraining": known_heldout_concepts(model_path, collection),
        "captions": {"count": len(describe), **caption_scores([_expected(r) for r in describe], captions)},
        "zero_shot": {
            "count": len(zero_shot),
            "name_rate": sum(name in a.text for (_, name), a in zip(zero_shot, zero_answers, strict=True))
            / max(1, len(zero_shot)),
            "format_ok_rate": sum(a.ended and a.clean for a in zero_answers) / max(1, len(zero_answers)),
            "mean_chars": sum(len(a.text) for a in zero_answers) / max(1, len(zero_answers)),
        },
        "copy_accuracy": copy_accuracy(copies, ask("copy, fresh names", copies, config.answer_tokens)),
        "copy_accuracy_heldout_names": copy_accuracy(own, ask("copy, held-out names", own, config.answer_tokens)),
        "copy_accuracy_multi": copy_accuracy(several, ask("copy, 2-4 names", several, 2 * config.answer_tokens)),
        "object_category_accuracy": category_accuracy(objects, ask("object category", objects, config.answer_tokens)),
        "matching_accuracy": accuracy("same-object matching", "oct", matching, config.answer_tokens),
        "oct_matching_accuracy": accuracy("matching as OCT", "oct", oct_form, config.answer_tokens),
        "category_yes_no_accuracy": accuracy("category yes/no", "oct", categories, config.answer_tokens),
        "box_accuracy": accuracy("category box", "vlt", boxes, config.answer_tokens),
        "parameters": sum(p.numel() for p in model.parameters()),
        "checkpoint_bytes": sum(p.stat().st_size for p in model_path.glob("*.safetensors")),
        "load_seconds": round(load_seconds, 3),
        "tokens_per_second": speed(),
        "examples": [
            {"reference": _expected(r), "caption": a.text} for r, a in list(zip(describe, captions, strict=True))[:3]
        ]
        + [{"zero_shot_prompt_name": name, "caption": a.text} for (_, name), a in list(zip(zero_shot, zero_answers, strict=True))[:2]],
    }
    result["probe_seconds"] = round(time.perf_counter() - started, 1)
    return result


def probe_table(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The probe's numbers as (measure, value) lines for a printed table."""
    captions, zero = result["captions"], result["zero_shot"]
    speed = result["tokens_per_second"]
    return [
        ("caption: category mention rate", f"{captions['category_mention_rate']:.2f}"),
        ("caption: category recall / precision", f"{captions['category_recall']:.2f} / {captions['category_precision']:.2f}"),
        ("caption: attribute recall", f"{captions['attribute_recall']:.2f}"),
        ("caption: exact description", f"{captions['exact_rate']:.2f}"),
        ("caption: mean length (chars)", f"{captions['mean_chars']:.0f}"),
        ("caption: chat format + EOS", f"{captions['format_ok_rate']:.2f}"),
        ("zero-shot RAP prompt: name written", f"{zero['name_rate']:.2f}"),
        ("copy accuracy, fresh names", f"{result['copy_accuracy']:.2f}"),
        ("copy accuracy, held-out names", f"{result['copy_accuracy_heldout_names']:.2f}"),
        ("copy accuracy, 2-4 fresh names", f"{result.get('copy_accuracy_multi', float('nan')):.2f}"),
        ("object category (held-out views)", f"{result['object_category_accuracy']:.2f}"),
        ("same-object matching (balanced)", f"{result['matching_accuracy']:.2f}"),
        ("  the same, asked as RePIC's OCT", f"{result.get('oct_matching_accuracy', float('nan')):.2f}"),
        ("category yes/no (balanced)", f"{result['category_yes_no_accuracy']:.2f}"),
        ("category box, IoU >= 0.5", f"{result['box_accuracy']:.2f}"),
        ("parameters", f"{result['parameters']:,}"),
        ("checkpoint", f"{result['checkpoint_bytes'] / 1e6:.1f} MB"),
        ("load time", f"{result['load_seconds']:.2f} s"),
        ("tokens/s at batch 1 / 8", f"{speed['batch_1']:.0f} / {speed['batch_8']:.0f}"),
    ]
