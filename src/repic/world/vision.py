"""Pretrain the tiny model's vision tower on its own, from the synthetic world's exact ground truth.

Real MLLMs do not learn to see through their language model's loss: their towers are pretrained first
(CLIP, SigLIP), then aligned to the LM. ``pretrain_vision(model_dir, VisionPretrainConfig())`` does the same
for the tiny Qwen2.5-VL model: it trains ``model.visual`` (patch embedding, blocks and the merger that
writes the LM's input tokens) directly, with no language model, and writes the trained weights back into the
model folder. Losses, summed, all on the merger's output tokens (the very vectors the LM reads): **dense**
(per 28 x 28 cell, the category, colour and pattern of the object covering it, or background), **object**
(every attribute, from an object's mask-pooled tokens), **identity** (InfoNCE: an object in a scene against
a fresh reference-style view of it), **token matching** (a view against each scene token plus a "not here"
slot: present vs absent, token by token) and **geometry** (each token's cell centre and its object's box:
the tower has no absolute position embedding). Identity and matching compare the raw merger outputs by
cosine (no projection head), so the tokens the LM reads are themselves comparable.

What it chose and why:

- **A larger pretraining world** (``pretraining_world``): the evaluation world's training concepts plus
  ``extra_concepts`` new ones and views of every distractor, thousands of identities instead of 48.
  Held-out concepts are never drawn, not even as distractors.
- **Rendered up front, reused**: ``scenes`` training scenes with a view of every object, rendered once.
- Only ``model.visual`` changes; the heads used for the losses are thrown away after training.
- ``evaluate_vision`` measures, on held-out concepts, what the tower alone can tell: identity rank-1,
  present vs absent by the best token, per-token category accuracy.

Measurements and history: docs/notes/vision-tower-pretraining.md
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..atomic import atomic_write_json
from ..concepts.detect import standard_box_iou
from ..errors import RepicError
from ..progress import Progress, say_nothing
from ..records import Concept
from .synthetic import (
    _CONCEPTS_PER_KIND,
    ATTRIBUTE_VALUES,
    ATTRIBUTES,
    CATEGORIES,
    KINDS,
    PROP_CATEGORIES,
    World,
    WorldConfig,
    _accent_ok,
    _random_attributes,
    build_object_view,
    build_scene,
    make_world,
)
from .tiny import TOKEN_CELL

VISION_RECORD_FILE = "vision_record.json"
OBJECT_CATEGORIES: tuple[str, ...] = CATEGORIES + PROP_CATEGORIES
OBJECT_ATTRIBUTES: tuple[str, ...] = ("category", *ATTRIBUTES)
TOKEN_ATTRIBUTES: tuple[str, ...] = ("category", "color", "pattern")  # the dense per-token targets
IGNORE = -100  # cross-entropy's ignore index: an attribute the object does not have (props lack shapes)



@dataclass(frozen=True)
class VisionPretrainConfig:
    """Every setting of a vision pretraining run; the defaults made the shipped base's tower."""

    seed: int = 0
    steps: int = 1500
    batch_size: int = 32  # scenes per step
    learning_rate: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    extra_concepts: int = 352  # training concepts added to the world's own (400 in all with the default world)
    scenes: int = 6000  # training scenes rendered up front
    temperature: float = 0.1
    cell_cover: float = 0.25  # share of a token's cell an object must cover to be that token's dense target
    # The geometry loss's weight: each token's own cell centre and its object's box, as fractions of the side
    # (``token_geometry``). The tower's tokens otherwise hardly say where they are (a linear probe read a
    # token's row of 4 right 0.33 of the time, chance 0.25), and a box is then not in what the LM reads.
    geometry_weight: float = 4.0
    threads: int = 1
    eval_scenes: int = 200  # held-out scenes for evaluate_vision

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be at least 1 (got {getattr(self, name)})"
            for name in ("steps", "batch_size", "scenes", "threads", "eval_scenes")
            if getattr(self, name) < 1
        ]
        if self.extra_concepts < 0 or self.warmup_steps < 0 or self.geometry_weight < 0:
            problems.append("extra_concepts, warmup_steps and geometry_weight cannot be negative")
        if not 0 < self.learning_rate < 1 or not 0 < self.temperature <= 1 or not 0 < self.cell_cover <= 1:
            problems.append("learning_rate must be in (0, 1), temperature and cell_cover in (0, 1]")
        if problems:
            raise RepicError("invalid VisionPretrainConfig: " + "; ".join(problems))


# ------------------------------------------------------------------------------------------ the world
def pretraining_world(world: World, extra_concepts: int, seed: int = 0) -> World:
    """``world`` with ``extra_concepts`` more training concepts, each looking like no other concept: none of
    ``world``'s (held-out ones included) and none added before it."""
    rng = np.random.default_rng([world.config.seed, 101, seed])
    grown = World(world.config, dict(world.concepts),
                  {"train": list(world.splits["train"]), "heldout": list(world.splits.get("heldout", []))})
    for index in range(extra_concepts):
        tag = f"<pretrain{index:04d}>"  # never a name the LM sees: the tower reads pixels only
        category = CATEGORIES[index % len(CATEGORIES)]
        for _ in range(200):
            attributes = _random_attributes(rng)
            if _accent_ok(attributes) and not grown.is_taken(category, attributes):
                break
        else:
            raise RepicError(f"cannot find {extra_concepts} distinct extra concepts; lower extra_concepts")
        grown.concepts[tag] = Concept(tag, tag[1:-1], category, "", [], {"attributes": attributes})
        grown.splits["train"].append(tag)
    return grown


@dataclass
class VisionSample:
    """One rendered scene with its targets, and a view of each object that has an identity."""

    image: np.ndarray  # [H, W, 3] uint8
    token_targets: np.ndarray  # [T, len(TOKEN_ATTRIBUTES)] int64, IGNORE-free (background is its own class)
    weights: np.ndarray  # [O, T] float32: each object's share of its pixels in each token cell
    object_targets: np.ndarray  # [O, len(OBJECT_ATTRIBUTES)] int64, IGNORE where an object lacks one
    identities: list[str | None]  # per object: a key equal for the same look, None for props
    views: list[np.ndarray | None]  # per object: a reference-style view (None for props)
    # [T, 6] float32: the token's own cell centre (x, y) and the box (x1, y1, x2, y2) of the object that is its
    # dense target, all as fractions of the image side; the box is NaN where the token is background.
    token_geometry: np.ndarray


def _value_index(attribute: str, value: str | None) -> int:
    if value is None:
        return IGNORE
    values = OBJECT_CATEGORIES if attribute == "category" else ATTRIBUTE_VALUES[attribute]
    return values.index(value)


def classes(attribute: str) -> int:
    """Classes of an attribute's object head; the token heads have one more (background, the last)."""
    return len(OBJECT_CATEGORIES if attribute == "category" else ATTRIBUTE_VALUES[attribute])


def sample_from_scene(world: World, split: str, kind: str, index: int, *, cell: int = TOKEN_CELL,
                      cell_cover: float = 0.25, view_index: int = 0) -> VisionSample:
    """Render scene (split, kind, index) of ``world`` with its token, object and identity targets."""
    scene, picture, rendered = build_scene(world, split, kind, index)
    labels = rendered.labels
    rows, cols = labels.shape[0] // cell, labels.shape[1] // cell
    n_objects = len(picture.placements)
    cells = labels[: rows * cell, : cols * cell].reshape(rows, cell, cols, cell).transpose(0, 2, 1, 3)
    cells = cells.reshape(rows * cols, cell * cell)  # raster order: token r * cols + c is cell (r, c)
    counts = np.stack([(cells == o).sum(axis=1) for o in range(n_objects)]).astype(np.float32)  # [O, T]
    totals = counts.sum(axis=1, keepdims=True)
    weights = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    token_targets = np.empty((rows * cols, len(TOKEN_ATTRIBUTES)), dtype=np.int64)
    geometry = np.full((rows * cols, 6), np.nan, dtype=np.float32)
    side = float(max(labels.shape))
    for t in range(rows * cols):
        owner = int(counts[:, t].argmax()) if n_objects else -1
        covered = n_objects and counts[owner, t] >= cell_cover * cell * cell
        geometry[t, :2] = ((t % cols + 0.5) * cell / side, (t // cols + 0.5) * cell / side)
        if covered:
            geometry[t, 2:] = np.asarray(scene.objects[owner].box, dtype=np.float32) / side
        for a, attribute in enumerate(TOKEN_ATTRIBUTES):
            if not covered:
                token_targets[t, a] = classes(attribute)  # background
                continue
            placement = picture.placements[owner]
            value = placement.category if attribute == "category" else placement.attributes.get(attribute)
            token_targets[t, a] = _value_index(attribute, value) if value is not None else classes(attribute)
    object_targets = np.full((n_objects, len(OBJECT_ATTRIBUTES)), IGNORE, dtype=np.int64)
    identities: list[str | None] = []
    views: list[np.ndarray | None] = []
    for o, (placement, obj) in enumerate(zip(picture.placements, scene.objects, strict=True)):
        for a, attribute in enumerate(OBJECT_ATTRIBUTES):
            value = placement.category if attribute == "category" else placement.attributes.get(attribute)
            object_targets[o, a] = _value_index(attribute, value)
        if placement.category in PROP_CATEGORIES or totals[o, 0] == 0:
            identities.append(None)
            views.append(None)
            continue
        identities.append(obj.concept or f"{placement.category}:{sorted(placement.attributes.items())}")
        views.append(build_object_view(world.config, placement.category, placement.attributes, view_index + o))
    return VisionSample(rendered.image, token_targets, weights, object_targets, identities, views, geometry)


def render_samples(world: World, count: int, *, seed: int, split: str = "train", cell_cover: float = 0.25,
                   progress: Callable[[int, int], None] | None = None) -> list[VisionSample]:
    """``count`` scenes of one split, kinds drawn at random (seeded), each with a fresh view per object."""
    rng = random.Random(f"{seed}:vision-scenes:{split}")
    concepts = len(world.splits[split])
    kinds = [kind for kind in KINDS if _CONCEPTS_PER_KIND[kind] <= concepts]  # what the split can fill
    samples = []
    for i in range(count):
        kind = rng.choice(kinds)
        # Indices far past the world's own scenes: these scenes are new draws of the same generator.
        samples.append(sample_from_scene(world, split, kind, 100_000 + i, cell_cover=cell_cover,
                                         view_index=rng.randrange(1_000_000)))
        if progress and (i + 1) % 500 == 0:
            progress(i + 1, count)
    return samples


# ------------------------------------------------------------------------------------------ the model
class VisionHeads(nn.Module):
    """Linear heads on the merger's output tokens; used for the losses only, never saved with the model."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.token = nn.ModuleDict({a: nn.Linear(width, classes(a) + 1) for a in TOKEN_ATTRIBUTES})
        self.object = nn.ModuleDict({a: nn.Linear(width, classes(a)) for a in OBJECT_ATTRIBUTES})
        self.geometry = nn.Linear(width, 6)  # the token's cell centre and its object's box (``token_geometry``)
        self.absent = nn.Parameter(torch.tensor(0.5))  # the "not here" slot's similarity in token matching


class TowerInput:
    """Images -> (pixel_values, grid_thw) through the model's own image processor, as the LM path does."""

    def __init__(self, image_processor: Any) -> None:
        self.image_processor = image_processor

    def __call__(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.image_processor(images=list(images), return_tensors="pt")
        return batch["pixel_values"], batch["image_grid_thw"]


def encode(visual: nn.Module, tower_input: TowerInput, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """The merger's output tokens of each image: a list of [T_i, width] tensors (raster order)."""
    pixel_values, grid = tower_input(images)
    out = visual(pixel_values, grid_thw=grid)
    tokens = out.pooler_output if hasattr(out, "pooler_output") else out
    sizes = (grid.prod(-1) // visual.spatial_merge_size**2).tolist()
    return list(torch.split(tokens, sizes))


def _same_identity(keys: list[str]) -> torch.Tensor:
    return torch.tensor([[a == b for b in keys] for a in keys])


def geometry_loss(heads: VisionHeads, tokens: torch.Tensor, geometry: torch.Tensor) -> torch.Tensor:
    """L1 error of the geometry head: every token's cell centre, and its object's box where it has one."""
    predicted = heads.geometry(tokens)
    known = ~torch.isnan(geometry)
    return F.l1_loss(predicted[known], geometry[known])


def batch_losses(visual: nn.Module, heads: VisionHeads, tower_input: TowerInput, batch: Sequence[VisionSample],
                 temperature: float, rng: random.Random, geometry_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """The losses of one batch of scenes (see the module docstring); ``geometry`` only with a weight."""
    scene_tokens = encode(visual, tower_input, [s.image for s in batch])
    identity_objects = [(i, o) for i, s in enumerate(batch) for o, key in enumerate(s.identities) if key is not None]
    views = [batch[i].views[o] for i, o in identity_objects]
    view_tokens = encode(visual, tower_input, views) if views else []

    tokens = torch.cat(scene_tokens)  # [sum T, width]
    token_targets = torch.from_numpy(np.concatenate([s.token_targets for s in batch]))
    dense = sum(F.cross_entropy(heads.token[a](tokens), token_targets[:, k]) for k, a in enumerate(TOKEN_ATTRIBUTES))

    pooled, object_targets = [], []
    for s, toks in zip(batch, scene_tokens, strict=True):
        if len(s.weights):
            pooled.append(torch.from_numpy(s.weights) @ toks)  # [O, width]: mask-pooled
            object_targets.append(torch.from_numpy(s.object_targets))
    pooled_all, object_all = torch.cat(pooled), torch.cat(object_targets)
    objects = sum(
        F.cross_entropy(heads.object[a](pooled_all), object_all[:, k], ignore_index=IGNORE)
        for k, a in enumerate(OBJECT_ATTRIBUTES)
        if (object_all[:, k] != IGNORE).any()
    )
    losses = {"dense": dense / len(TOKEN_ATTRIBUTES), "object": objects / len(OBJECT_ATTRIBUTES)}
    if geometry_weight:
        geometry = torch.from_numpy(np.concatenate([s.token_geometry for s in batch]))
        losses["geometry"] = geometry_weight * geometry_loss(heads, tokens, geometry)
    if not identity_objects:
        return losses

    offsets = np.cumsum([0] + [len(s.weights) for s in batch])
    z_objects = F.normalize(pooled_all[[offsets[i] + o for i, o in identity_objects]], dim=-1)  # [N, width]
    z_views = F.normalize(torch.stack([v.mean(0) for v in view_tokens]), dim=-1)  # [N, width]
    keys = [batch[i].identities[o] for i, o in identity_objects]
    same = _same_identity(keys) & ~torch.eye(len(keys), dtype=torch.bool)  # the same look twice: not a negative
    logits = (z_views @ z_objects.T / temperature).masked_fill(same, float("-inf"))
    target = torch.arange(len(keys))
    losses["identity"] = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    # Token matching: each view against its own scene (positive) and one other scene of the batch.
    match_losses = []
    for n, (i, o) in enumerate(identity_objects):
        others = [j for j in range(len(batch)) if keys[n] not in batch[j].identities]
        for j, positive in ((i, True), *(((rng.choice(others), False),) if others else ())):
            sims = F.normalize(scene_tokens[j], dim=-1) @ z_views[n]  # [T]
            logits_t = torch.cat([sims, heads.absent.view(1)]) / temperature
            if positive:
                target_t = torch.cat([torch.from_numpy(batch[i].weights[o]), torch.zeros(1)])
            else:
                target_t = torch.cat([torch.zeros(len(sims)), torch.ones(1)])
            match_losses.append(-(target_t * F.log_softmax(logits_t, dim=0)).sum())
    losses["matching"] = torch.stack(match_losses).mean()
    return losses


# ------------------------------------------------------------------------------------------ evaluation
def _auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """ROC AUC: the chance a random positive scores above a random negative (ties count half)."""
    pos, neg = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


@torch.no_grad()
def evaluate_vision(visual: nn.Module, tower_input: TowerInput, samples: Sequence[VisionSample],
                    threshold: float | None = None, seed: int = 0) -> dict[str, float]:
    """What the tower alone tells on ``samples`` (held-out scenes, views of their objects).

    ``identity_rank1``: a view's mask-pooled scene object is the most similar of its scene's objects;
    ``present_auc`` / ``present_accuracy``: the view's best token in a scene holding it vs in a scene
    holding a same-category object but not it (balanced; accuracy at ``threshold``, else at the best one).
    The heads' accuracies are ``head_accuracy``'s.
    """
    rng = random.Random(f"{seed}:vision-eval")
    hits = total = 0
    positives, negatives = [], []
    scene_tokens = encode(visual, tower_input, [s.image for s in samples])
    unit_tokens = [F.normalize(tokens, dim=-1) for tokens in scene_tokens]
    for i, s in enumerate(samples):
        ids = [o for o, key in enumerate(s.identities) if key is not None]
        if not ids:
            continue
        pooled = F.normalize(torch.from_numpy(s.weights) @ scene_tokens[i], dim=-1)
        z = F.normalize(torch.stack([t.mean(0) for t in encode(visual, tower_input, [s.views[o] for o in ids])]), dim=-1)
        for k, o in enumerate(ids):
            hits += int(int((pooled @ z[k]).argmax()) == o)
            total += 1
            category = s.object_targets[o, 0]
            # A negative scene: another held-out scene with an object of this category that is not this look.
            candidates = [j for j, other in enumerate(samples) if j != i and s.identities[o] not in other.identities
                          and category in other.object_targets[:, 0]]
            if not candidates:
                continue
            j = rng.choice(candidates)
            positives.append(float((unit_tokens[i] @ z[k]).max()))
            negatives.append(float((unit_tokens[j] @ z[k]).max()))
    result = {"identity_rank1": hits / max(1, total), "identity_pairs": total}
    if positives:
        result["present_auc"] = _auc(positives, negatives)
        cut = threshold if threshold is not None else _best_threshold(positives, negatives)
        result["present_accuracy"] = (np.mean(np.array(positives) > cut) + np.mean(np.array(negatives) <= cut)) / 2
        result["present_threshold"] = float(cut)
    return {k: round(float(v), 4) if isinstance(v, float) else v for k, v in result.items()}


def _best_threshold(positive: Sequence[float], negative: Sequence[float]) -> float:
    cuts = sorted(set(positive) | set(negative))
    accuracy = [(np.mean(np.array(positive) > c) + np.mean(np.array(negative) <= c)) / 2 for c in cuts]
    return float(cuts[int(np.argmax(accuracy))])


@torch.no_grad()
def head_accuracy(visual: nn.Module, heads: VisionHeads, tower_input: TowerInput,
                  samples: Sequence[VisionSample]) -> dict[str, float]:
    """Per-token category, colour and pattern (objects' tokens only, background excluded) and per-object
    attribute accuracy of the heads."""
    scene_tokens = encode(visual, tower_input, [s.image for s in samples])
    tokens = torch.cat(scene_tokens)
    targets = torch.from_numpy(np.concatenate([s.token_targets for s in samples]))
    foreground = targets[:, 0] != classes("category")
    result = {
        f"token_{attribute}_accuracy": float((heads.token[attribute](tokens).argmax(-1) == targets[:, k])[foreground].float().mean())
        for k, attribute in enumerate(TOKEN_ATTRIBUTES)
    }
    # The geometry head on object tokens: the box it reads from one token, against the object's own.
    geometry = torch.from_numpy(np.concatenate([s.token_geometry for s in samples]))
    boxed = ~torch.isnan(geometry[:, 2])
    if boxed.any():
        predicted, truth = heads.geometry(tokens[boxed])[:, 2:].tolist(), geometry[boxed, 2:].tolist()
        overlaps = np.array([standard_box_iou(p, t) for p, t in zip(predicted, truth, strict=True)])
        result["token_box_iou"] = float(overlaps.mean())
        result["token_box_iou50"] = float((overlaps >= 0.5).mean())
    pooled = torch.cat([torch.from_numpy(s.weights) @ t for s, t in zip(samples, scene_tokens, strict=True) if len(s.weights)])
    object_targets = torch.cat([torch.from_numpy(s.object_targets) for s in samples if len(s.weights)])
    for k, attribute in enumerate(OBJECT_ATTRIBUTES):
        known = object_targets[:, k] != IGNORE
        guess = heads.object[attribute](pooled).argmax(-1)
        result[f"object_{attribute}_accuracy"] = float((guess == object_targets[:, k])[known].float().mean())
    return {k: round(v, 4) for k, v in result.items()}


# ------------------------------------------------------------------------------------------ training
def _schedule(step: int, config: VisionPretrainConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train_tower(visual: nn.Module, tower_input: TowerInput, train: Sequence[VisionSample],
                config: VisionPretrainConfig, say: Progress) -> tuple[VisionHeads, list[dict[str, float]]]:
    """Train ``visual`` in place on ``train``; returns the heads and the loss curve."""
    width = visual.merger.mlp[-1].out_features
    heads = VisionHeads(width)
    parameters = [*visual.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _schedule(step, config))
    rng = random.Random(f"{config.seed}:vision-batches")
    train = list(train)
    visual.train()
    curve: list[dict[str, float]] = []
    every = max(1, config.steps // 30)
    running: dict[str, float] = {}
    for step in range(config.steps):
        batch = rng.sample(train, min(config.batch_size, len(train)))
        losses = batch_losses(visual, heads, tower_input, batch, config.temperature, rng, config.geometry_weight)
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        scheduler.step()
        for name, value in losses.items():
            running[name] = running.get(name, 0.0) + float(value.detach())
        if (step + 1) % every == 0 or step + 1 == config.steps:
            entry = {"step": step + 1, **{k: round(v / every, 4) for k, v in running.items()}}
            curve.append(entry)
            running = {}
            say(f"vision step {step + 1}/{config.steps}: " + ", ".join(f"{k} {v:.3f}" for k, v in entry.items() if k != "step"))
    visual.eval()
    return heads, curve


def pretrain_vision(model_dir: str | os.PathLike, config: VisionPretrainConfig = VisionPretrainConfig(), *,
                    world: WorldConfig | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Pretrain the vision tower of the tiny model in ``model_dir`` and save it back there (whole folder
    rewritten atomically); returns the record, also written as ``vision_record.json`` in the folder."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    say = progress or say_nothing
    world = world or WorldConfig()
    folder = Path(model_dir)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(folder)
    tower_input = TowerInput(processor.image_processor)
    base_world = make_world(world, Path("."))
    train_world = pretraining_world(base_world, config.extra_concepts, seed=config.seed)
    say(f"vision: rendering {config.scenes} training scenes of {len(train_world.splits['train'])} concepts")
    train = render_samples(train_world, config.scenes, seed=config.seed, cell_cover=config.cell_cover,
                           progress=lambda done, total: say(f"vision: rendered {done}/{total}"))
    heldout = render_samples(base_world, config.eval_scenes, seed=config.seed, split="heldout",
                             cell_cover=config.cell_cover) if base_world.splits.get("heldout") else []
    rendered = time.perf_counter()
    visual = model.model.visual
    before = evaluate_vision(visual, tower_input, heldout, seed=config.seed) if heldout else {}
    heads, curve = train_tower(visual, tower_input, train, config, say)
    trained = time.perf_counter()
    fit = evaluate_vision(visual, tower_input, train[: config.eval_scenes], seed=config.seed)
    after = evaluate_vision(visual, tower_input, heldout, threshold=fit.get("present_threshold"), seed=config.seed) if heldout else {}
    if heldout:
        after.update(head_accuracy(visual, heads, tower_input, heldout))
    record = {
        "format": "repic-vision-record/1",
        "config": asdict(config),
        "world": world.to_dict(),
        "train_concepts": len(train_world.splits["train"]),
        "heldout_before": before,
        "heldout_after": after,
        "train_after": fit,
        "loss_curve": curve,
        "render_seconds": round(rendered - started, 1),
        "train_seconds": round(trained - rendered, 1),
    }
    say(f"vision: held-out identity rank-1 {before.get('identity_rank1')} -> {after.get('identity_rank1')}, "
        f"present AUC {before.get('present_auc')} -> {after.get('present_auc')}")
    _rewrite(folder, model, processor, record)
    return record


def check_tower_source(source: str | os.PathLike) -> list[Path]:
    """The weight files of the model folder ``source`` a tower is to be taken from; ``RepicError`` if none."""
    source = Path(source)
    weights = sorted(source.glob("*.safetensors")) if source.is_dir() else []
    if not weights:
        raise RepicError(
            f"{source} holds no *.safetensors weights to take a vision tower from; pass a model folder "
            "(a pretrain-tiny --out or its work folder's initial/)"
        )
    return weights


def copy_tower(source: str | os.PathLike, model_dir: str | os.PathLike) -> dict[str, Any]:
    """Put the vision tower (every ``visual.*`` weight) of the model in ``source`` into the model in
    ``model_dir`` (same sizes), rewriting that folder atomically; returns ``source``'s vision record (or a
    note that it has none), also written into ``model_dir``."""
    import json

    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText, AutoProcessor

    source, folder = Path(source), Path(model_dir)
    weights = check_tower_source(source)
    tower = {}
    for file in weights:
        tower.update({name.removeprefix("visual."): value for name, value in load_file(file).items()
                      if name.startswith("visual.")})
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32)
    try:
        model.model.visual.load_state_dict(tower, strict=True)
    except RuntimeError as exc:
        raise RepicError(f"the vision tower of {source} does not fit the model in {folder}: {str(exc)[:300]}") from None
    record_path = source / VISION_RECORD_FILE
    record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else {}
    record = {**record, "copied_from": str(source.resolve())}
    _rewrite(folder, model, AutoProcessor.from_pretrained(folder), record)
    return record


def _rewrite(folder: Path, model: Any, processor: Any, record: dict[str, Any]) -> None:
    """Save ``model`` and ``processor`` over ``folder`` atomically, keeping the folder's other files
    (records, configs) and adding the vision record."""
    from ..atomic import atomic_folder

    with atomic_folder(folder) as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        for extra in folder.iterdir():
            if extra.is_file() and not (staging / extra.name).exists():
                (staging / extra.name).write_bytes(extra.read_bytes())
        atomic_write_json(staging / VISION_RECORD_FILE, record)
