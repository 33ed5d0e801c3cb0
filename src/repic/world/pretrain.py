"""Pretrain the built-in tiny model on generic tasks of a synthetic world: the demo's "zero-shot MLLM".

``pretrain_tiny(out_dir, PretrainConfig())`` runs every phase and writes an ordinary Hugging Face folder
(model, processor, tokenizer, ``pretrain_record.json``, ``vision_record.json``) that loads with the Auto
classes, like the real models do. Phases: the world, the image pool, the rows (``repic.world.pretrain_data``),
the tokenizer and the randomly initialised model (``build_tiny_model``), the vision tower's own pretraining
(``repic.world.vision``), supervised training of the LM with TRL's ``SFTTrainer`` plus a grounding loss
(``repic.world.grounding``), the save, and the probe (``repic.world.probe``) on held-out concepts.

What it chose and why:

- **TRL's ``SFTTrainer``** on conversational prompt-completion rows with images, so the processor and chat
  template run as for Qwen2.5-VL-7B; CPU and fp32; every row is seen once (no memorising by repetition).
- **The vision tower is pretrained first, on its own**, then frozen for the whole LM curriculum, as real
  MLLMs are built (trained through the LM's loss, it turned into a constant marker).
- **A four-phase curriculum**: copying names, object questions only the pixels answer, decisions about the
  query's objects, then the main mix; then ``final_stages``, each with its own schedule. ``finish_from``
  runs the stages alone on an already pretrained model.
- **A grounding loss** (``grounding_weight``): a linear probe on every decoder layer's hidden states learns
  which query tokens show the object asked about; without it the LM never learned the matching yes/no.
- **Size and schedule**: 2 layers, hidden 128; AdamW at 1e-3, warm-up then cosine; ``skill_checks`` records
  when a skill emerges or is lost. The folder, with its record, is assembled in a staging sibling.

Measurements and history: docs/notes/tiny-base-curriculum.md
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
import trl
from torch import nn
from transformers import AutoModelForImageTextToText, AutoProcessor, PrinterCallback, TrainerCallback
from trl import SFTConfig

from ..atomic import atomic_folder, atomic_write_json
from ..data.collection import COLLECTION_FILE, Collection, load_collection
from ..errors import RepicError
from ..models.load import set_vision_trainable
from ..progress import Progress, say_nothing
from ..train.dataset import to_dataset
from .grounding import GroundedSFTTrainer
from .pretrain_data import (
    PretrainMix,
    build_image_pool,
    echo_row,
    object_row,
    pretraining_rows,
    split_pool,
    tokenizer_corpus,
)
from .probe import ProbeConfig, category_accuracy, copy_accuracy, generate, heldout_rows, probe_model
from .synthetic import WorldConfig, generate_world
from .tiny import TinyModelConfig, build_tiny_model
from .vision import VISION_RECORD_FILE, VisionPretrainConfig, check_tower_source, copy_tower, pretrain_vision

RECORD_FILE = "pretrain_record.json"
PHASES = ("copy", "vision", "decision", "main")
# Copy-heavy first phase: copying a name emerges suddenly once enough echo rows were seen (~11k in a
# measurement here), so they come first and the later phases only have to keep the skill.
# Single names only: with 15 % of several-name rows in place of single ones (55 % echo), copying had not
# emerged after 1,100 steps, where 70 % single-name rows gave 0.88 at step 500.
COPY_PHASE_MIX = PretrainMix(object=0.0, scene_objects=0.0, describe=0.1, category_yes_no=0.05, category_box=0.05,
                             echo=0.7, echo_multi=0.0, matching=0.1)
# Then vision: object questions only, whose answers only the pixels give. Measured (held-out views, greedy):
# this phase took object category accuracy from 0.00 to 0.78 in 500 steps; a phase of 50 % object rows
# mixed with echo, matching, boxes and captions left it at 0.09-0.19. Copying is lost during the phase
# (no echo rows) and back at 0.97-1.00 within 100 steps of the main mix.
VISION_PHASE_MIX = PretrainMix(object=1.0, scene_objects=0.0, describe=0.0, category_yes_no=0.0, category_box=0.0,
                               echo=0.0, echo_multi=0.0, matching=0.0)
# Then decisions about the query's objects, each row with grounding targets (``repic.world.grounding``):
# is this very object here, is there a <category>, where is the <category>.
DECISION_PHASE_MIX = PretrainMix(object=0.0, scene_objects=0.0, describe=0.0, category_yes_no=0.2, category_box=0.2,
                                 echo=0.0, echo_multi=0.0, matching=0.6)
# A last stage with a schedule of its own: half matching rows (with grounding targets), half the main tasks
# so that no skill is forgotten. Measured from the curriculum's model: matching rows alone lifted held-out
# matching from 0.48 to 0.85 in 400 steps but erased every other skill (captions of 11 characters, copying
# 0.00); see the stage's notes in docs/notes/tiny-base-vision.md.
FINAL_STAGE_MIX = PretrainMix(object=0.08, scene_objects=0.0, describe=0.10, category_yes_no=0.05, category_box=0.07,
                              echo=0.10, echo_multi=0.10, matching=0.5)
MATCHING_STAGE_MIX = PretrainMix(object=0.0, scene_objects=0.0, describe=0.0, category_yes_no=0.0, category_box=0.0,
                                 echo=0.0, echo_multi=0.0, matching=1.0)
# After matching alone: the skills it erased come back within 200 steps of the half mix while matching
# mostly stays (0.85 -> 0.77), but several-name copying did not (0.02), hence more of those rows here.
RECOVERY_STAGE_MIX = PretrainMix(object=0.08, scene_objects=0.0, describe=0.10, category_yes_no=0.05,
                                 category_box=0.07, echo=0.10, echo_multi=0.20, matching=0.4)


@dataclass(frozen=True)
class FinalStage:
    """One stage after the curriculum: ``steps`` rows of its own ``mix``, a fresh warm-up and cosine schedule
    from ``learning_rate``. ``name`` keys its rows' stream (and names it in the record)."""

    name: str
    steps: int
    mix: PretrainMix
    learning_rate: float = 1e-3

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "steps": self.steps, "mix": self.mix.to_dict(), "learning_rate": self.learning_rate}


FINAL_STAGES: tuple[FinalStage, ...] = (
    FinalStage("decision-stage", 600, FINAL_STAGE_MIX),  # the name keys the rows the shipped base's stage drew
    FinalStage("matching", 400, MATCHING_STAGE_MIX),
    FinalStage("recovery", 300, RECOVERY_STAGE_MIX, learning_rate=5e-4),
)
DEFAULT_PROBE = ProbeConfig()
_CORPUS_ROWS = 4000  # rows whose text trains the tokenizer: every phrasing and attribute word many times



@dataclass(frozen=True)
class PretrainConfig:
    """Everything a pretraining run depends on; the defaults made the shipped ``tiny-base``."""

    seed: int = 0
    steps: int = 2900  # all phases together
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_ratio: float = 0.03
    copy_phase_steps: int = 900  # drawn from copy_phase_mix
    vision_phase_steps: int = 500  # drawn from vision_phase_mix; the main phase (mix) has the rest
    decision_phase_steps: int = 400  # drawn from decision_phase_mix
    phase_order: tuple[str, ...] = ("copy", "vision", "decision", "main")  # the order the phases are trained in
    vision_only_in_vision_phase: bool = True  # the vision tower is trainable in the vision phase only
    # The tower's own pretraining before any LM step (``repic.world.vision``); with it the tower stays
    # frozen for the whole LM curriculum. None: the tower learns through the LM's loss in the vision phase.
    vision: VisionPretrainConfig | None = field(default_factory=VisionPretrainConfig)
    vision_tower_from: str | None = None  # a model folder whose pretrained tower to reuse instead of ``vision``
    # The stages after the curriculum, in order, each with its own warm-up and cosine schedule.
    final_stages: tuple[FinalStage, ...] = FINAL_STAGES
    grounding_weight: float = 1.0  # the grounding loss's weight (``repic.world.grounding``); 0: off
    # Phases whose rows carry grounding targets. Not the copy phase: with grounding targets on its rows (20 %
    # of them) and the pretrained tower frozen, copy accuracy was still 0.00 at step 800 (the curriculum
    # before the tower's own stage: 1.00 from step 600).
    grounding_phases: tuple[str, ...] = ("decision", "main")
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    extra_scenes: int = 3000  # training-split scenes rendered beyond the collection's
    extra_references: int = 6  # more views per training concept
    object_views: int = 3000  # reference-style views of the training scenes' distractor objects
    # One thread: the tiny model's matrices gain little from a second one, and on a busy 2-core machine
    # two threads that wait for each other ran a step 30x slower (7 s instead of 0.2 s) here.
    threads: int = 1
    skill_checks: int = 0  # greedy copy and object checks during training (evenly spaced); 0: none
    vision_phase_mix: PretrainMix = field(default_factory=lambda: VISION_PHASE_MIX)
    decision_phase_mix: PretrainMix = field(default_factory=lambda: DECISION_PHASE_MIX)
    copy_phase_mix: PretrainMix = field(default_factory=lambda: COPY_PHASE_MIX)
    mix: PretrainMix = field(default_factory=PretrainMix)
    model: TinyModelConfig = field(default_factory=TinyModelConfig)
    world: WorldConfig = field(default_factory=WorldConfig)

    def __post_init__(self) -> None:
        problems = []
        for name in ("steps", "batch_size", "threads"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1 (got {getattr(self, name)})")
        if not 0 < self.learning_rate < 1:
            problems.append(f"learning_rate must be in (0, 1) (got {self.learning_rate}); the default is 2e-3")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1) (got {self.warmup_ratio})")
        phases = (self.vision_phase_steps, self.copy_phase_steps, self.decision_phase_steps)
        if min(phases) < 0 or sum(phases) > self.steps:
            problems.append(
                f"vision_phase_steps ({self.vision_phase_steps}), copy_phase_steps ({self.copy_phase_steps}) and "
                f"decision_phase_steps ({self.decision_phase_steps}) must be >= 0 and fit in steps ({self.steps}); "
                "the defaults are 500, 900 and 400 of 2900"
            )
        if set(self.grounding_phases) - set(PHASES):
            problems.append(f"grounding_phases must be among {', '.join(PHASES)} (got {list(self.grounding_phases)})")
        if self.grounding_weight < 0:
            problems.append(f"grounding_weight cannot be negative (got {self.grounding_weight})")
        if sorted(self.phase_order) != sorted(PHASES):
            problems.append(f"phase_order must name each of {', '.join(PHASES)} once (got {list(self.phase_order)})")
        if self.mix.echo <= 0 or (self.copy_phase_steps and self.copy_phase_mix.echo <= 0):
            problems.append(
                "the main and copy mixes need a positive echo weight: without copy rows the base never writes "
                "a name and GRPO gets no reward (the study's share is 0.3)"
            )
        if min(self.skill_checks, self.extra_scenes, self.extra_references, self.object_views) < 0:
            problems.append("skill_checks, extra_scenes, extra_references and object_views cannot be negative")
        names = [stage.name for stage in self.final_stages]
        if len(set(names)) < len(names) or any(stage.steps < 1 or not 0 < stage.learning_rate < 1
                                               for stage in self.final_stages):
            problems.append("final_stages need distinct names, at least 1 step and a learning rate in (0, 1) each")
        if problems:
            raise RepicError("invalid PretrainConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["mix"] = self.mix.to_dict()
        values["vision_phase_mix"] = self.vision_phase_mix.to_dict()
        values["copy_phase_mix"] = self.copy_phase_mix.to_dict()
        values["decision_phase_mix"] = self.decision_phase_mix.to_dict()
        values["final_stages"] = [stage.to_dict() for stage in self.final_stages]
        values["world"] = self.world.to_dict()
        values["phase_order"] = list(self.phase_order)
        values["grounding_phases"] = list(self.grounding_phases)
        return values

    def phases(self) -> list[tuple[str, int, PretrainMix]]:
        """(name, steps, mix) of each phase, in training order."""
        main = self.steps - self.vision_phase_steps - self.copy_phase_steps - self.decision_phase_steps
        phases = {"copy": (self.copy_phase_steps, self.copy_phase_mix),
                  "vision": (self.vision_phase_steps, self.vision_phase_mix),
                  "decision": (self.decision_phase_steps, self.decision_phase_mix), "main": (main, self.mix)}
        return [(name, *phases[name]) for name in self.phase_order]

    def vision_window(self) -> tuple[int, int]:
        """First and end step of the vision phase (the steps in which the tower is trainable)."""
        start = 0
        for name, steps, _ in self.phases():
            if name == "vision":
                return start, start + steps
            start += steps
        raise AssertionError("phase_order lacks the vision phase")  # __post_init__ refuses such configs


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise RepicError(f"{out} exists and is a file: choose a folder path for the model (--out DIR)")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise RepicError(f"{out} already exists and is not empty: remove it, choose another --out, or pass --overwrite")


def _world(world_dir: str | os.PathLike | None, config: WorldConfig, work: Path, say: Progress) -> Collection:
    if world_dir is not None:
        say(f"world: reading {world_dir}")
        return load_collection(world_dir)
    generated = work / "world"
    if (generated / COLLECTION_FILE).is_file():  # a --work folder used before: its world, if it is the same one
        try:
            earlier = load_collection(generated)
        except RepicError:
            earlier = None  # damaged: an intermediate file, so it is made again
        if earlier is not None and earlier.meta.get("config") == config.to_dict():
            say(f"world: reusing WorldConfig(seed={config.seed}) generated earlier in {generated}")
            return earlier
    say(f"world: generating WorldConfig(seed={config.seed}) in {generated}")
    return generate_world(generated, config, overwrite=generated.is_dir() and any(generated.iterdir()))


def _curriculum(pool, config: PretrainConfig) -> list[dict]:
    """The rows in training order, phase after phase (training reads them in order); rows of phases outside
    ``grounding_phases`` lose their grounding targets."""
    rows = []
    for name, steps, mix in config.phases():
        for row in pretraining_rows(pool, steps * config.batch_size, mix=mix, seed=config.seed, phase=name):
            rows.append(row if name in config.grounding_phases else {**row, "grounding": []})
    return rows


def _vision_schedule_callback(start: int, end: int, say: Progress):
    """A ``TrainerCallback`` keeping the vision tower trainable only for steps ``start`` to ``end``.

    The optimizer is built with every parameter; a frozen one gets no gradient and AdamW skips it, so the
    tower keeps its weights outside the window and learns inside it.
    """

    class VisionSchedule(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if start > 0:
                set_vision_trainable(model, False)
                say(f"step 0: vision tower frozen until step {start}")

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == start:
                set_vision_trainable(model, True)
                say(f"step {state.global_step}: vision tower trainable")
            elif state.global_step == end:
                set_vision_trainable(model, False)
                say(f"step {state.global_step}: vision phase over, vision tower frozen")

    return VisionSchedule()


def _frozen_tower_callback(say: Progress):
    """A ``TrainerCallback`` keeping a pretrained vision tower frozen for the whole LM curriculum."""

    class FrozenTower(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            set_vision_trainable(model, False)
            say("step 0: the pretrained vision tower stays frozen")

    return FrozenTower()


def _skill_check_callback(processor, world: Collection, checks: int, steps: int, seed: int, say: Progress):
    """A ``TrainerCallback`` measuring, every ``steps // checks`` steps, greedy copy accuracy on fresh names
    and object category accuracy, on held-out reference views (evaluation only: no gradient sees them), so
    the moment each skill emerges, or is lost, shows in the record."""
    heldout = split_pool(world, "heldout")
    echo_rows = heldout_rows(heldout, echo_row, 32, seed=seed)
    object_rows = heldout_rows(heldout, lambda pool, rng: object_row(pool, rng, attribute="category"), 32, seed=seed)
    every = max(1, steps // checks)

    class SkillCheck(TrainerCallback):
        def __init__(self) -> None:
            self.history: list[dict[str, float]] = []

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % every and state.global_step != steps:
                return
            model.eval()
            copied = copy_accuracy(echo_rows, generate(model, processor, echo_rows, 12))
            recognised = category_accuracy(object_rows, generate(model, processor, object_rows, 8))
            model.train()
            self.history.append({"step": state.global_step, "copy_accuracy": copied, "object_accuracy": recognised})
            say(f"step {state.global_step}: copy accuracy {copied:.2f} on fresh names, "
                f"object category {recognised:.2f} on held-out views")

    return SkillCheck()


def _loss_callback(steps: int, say: Progress):
    class LossLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                accuracy = logs.get("mean_token_accuracy", float("nan"))
                say(f"step {state.global_step}/{steps}: loss {logs['loss']:.3f}, token accuracy {accuracy:.3f}")

    return LossLog()


def _train(base: Path | Any, rows: list[dict], config: PretrainConfig, work: Path, callbacks: list, processor,
           *, steps: int | None = None, learning_rate: float | None = None) -> Any:
    """Run ``SFTTrainer`` on ``rows`` (``steps`` of them, default ``config.steps``) from the model in folder
    ``base`` (or the model object itself), with a fresh warm-up and cosine schedule from ``learning_rate``
    (default ``config.learning_rate``); returns the trainer."""
    steps = steps or config.steps
    learning_rate = learning_rate or config.learning_rate
    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32) if isinstance(base, Path) else base
    args = SFTConfig(
        output_dir=str(work / "trainer"),
        max_steps=steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=round(config.warmup_ratio * steps),
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        logging_steps=max(1, steps // 30),
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        fp16=False,
        activation_checkpointing=False,
        max_length=None,  # never cut image placeholders; the rows are short anyway
        completion_only_loss=True,
        dataloader_num_workers=0,
        train_sampling_strategy="sequential",  # the rows are drawn at random already, in curriculum order
        disable_tqdm=True,
        seed=config.seed,
        data_seed=config.seed,
    )
    probe = nn.Linear(model.config.text_config.hidden_size, 1)  # the grounding probe, not saved
    optimizer = torch.optim.AdamW([*model.parameters(), *probe.parameters()], lr=learning_rate,
                                  weight_decay=config.weight_decay)
    trainer = GroundedSFTTrainer(
        model=model,
        args=args,
        train_dataset=to_dataset(rows),
        processing_class=processor,
        callbacks=callbacks,
        optimizers=(optimizer, None),
        grounding_probe=probe,
        grounding_weight=config.grounding_weight,
    )
    trainer.remove_callback(PrinterCallback)  # progress goes through the caller's ``progress`` instead
    trainer.train()
    return trainer


def pretrain_tiny(
    out_dir: str | os.PathLike,
    config: PretrainConfig = PretrainConfig(),
    *,
    world_dir: str | os.PathLike | None = None,
    work_dir: str | os.PathLike | None = None,
    probe: ProbeConfig | None = DEFAULT_PROBE,
    overwrite: bool = False,
    command: str = "",
    progress: Progress | None = None,
    finish_from: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Pretrain the tiny model and save it to ``out_dir``; returns the record also written there.

    ``world_dir`` is an existing synthetic collection (else ``config.world`` is generated in the work
    folder); ``work_dir`` keeps the intermediate files (else a temporary folder is removed at the end).
    With a ``probe`` config the saved model is measured on the world's held-out concepts
    (``repic.world.probe``) and the numbers join the record; ``None`` skips it.

    ``finish_from`` is a pretrained model folder: its tower and curriculum are kept (the tower replaced by
    ``config.vision_tower_from``'s when that is set) and only ``config.final_stages`` run on it; its record
    is carried over, with these stages added.
    """
    say = progress or say_nothing
    out = Path(out_dir).expanduser().resolve()
    _check_out(out, overwrite)
    if config.vision_tower_from is not None:  # before anything is rendered or trained
        check_tower_source(config.vision_tower_from)
    earlier = _finish_source(finish_from, config) if finish_from is not None else None
    torch.set_num_threads(config.threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="repic-pretrain-") as scratch:
        work = Path(work_dir).expanduser().resolve() if work_dir is not None else Path(scratch)
        collection = _world(world_dir, config.world, work, say)
        say(f"pool: rendering {config.extra_scenes} extra training scenes")
        pool = build_image_pool(
            collection,
            work / "pool",
            extra_scenes=config.extra_scenes,
            extra_references=config.extra_references,
            object_views=config.object_views,
        )
        if earlier is not None:
            base = work / "initial"
            shutil.copytree(Path(finish_from), base, dirs_exist_ok=True)
            vision_record = None
            if config.vision_tower_from is not None:
                say(f"vision: the tower of {config.vision_tower_from}")
                vision_record = copy_tower(config.vision_tower_from, base)
            processor = AutoProcessor.from_pretrained(base)
            model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)
            record = {**earlier, "finished_from": {"folder": str(Path(finish_from).resolve()), "command": command,
                                                   "curriculum_command": earlier.get("command", "")}}
            record.pop("probe", None)
        else:
            model, processor, base, record, vision_record = _tower_and_curriculum(
                config, collection, world_dir, pool, work, command, say, started
            )
        model, stages = _final_stages(model, pool, config, work, processor, say)

        with atomic_folder(out) as staging:
            model.save_pretrained(staging)
            processor.save_pretrained(staging)
            shutil.copy2(base / "repic_tiny_config.json", staging / "repic_tiny_config.json")
            record["final_stages"] = [*_earlier_stages(earlier), *stages] if earlier else stages
            record.pop("final_stage", None)  # the one-stage key of older records, now in final_stages
            if vision_record is not None:
                record["vision"] = vision_record
                atomic_write_json(staging / VISION_RECORD_FILE, vision_record)
            elif (Path(base) / VISION_RECORD_FILE).is_file():
                shutil.copy2(Path(base) / VISION_RECORD_FILE, staging / VISION_RECORD_FILE)
            atomic_write_json(staging / RECORD_FILE, record)
        if probe is not None and collection.splits.get("heldout"):
            say("probe: measuring the saved model on the held-out concepts")
            record["probe"] = probe_model(out, collection.root, probe, progress=lambda line: say(f"probe: {line}"))
        wall = round(time.perf_counter() - started, 1)
        if earlier is None:
            record["wall_seconds"] = wall
        else:  # the earlier run's own wall time stays; this one's is the finishing run's
            record["finished_from"]["wall_seconds"] = wall
        atomic_write_json(out / RECORD_FILE, record)
    return record


def _finish_source(folder: str | os.PathLike, config: PretrainConfig) -> dict[str, Any]:
    """The record of the model ``finish_from`` names, checked before anything is rendered: it must be a
    pretrained tiny model of the same world (its rows and held-out concepts are that world's)."""
    if not Path(folder).is_dir():
        raise RepicError(f"{folder} is not a folder: --finish-from takes a model folder `repic models pretrain-tiny` wrote")
    record = read_record(folder)
    if record is None:
        raise RepicError(f"{folder} has no {RECORD_FILE}: --finish-from takes a folder `repic models pretrain-tiny` wrote")
    missing = [name for name in ("config.json", "repic_tiny_config.json") if not (Path(folder) / name).is_file()]
    if missing or not any(Path(folder).glob("*.safetensors")):
        raise RepicError(f"{folder} lacks {', '.join(missing) or 'its *.safetensors weights'}: --finish-from needs "
                         "the whole model folder `repic models pretrain-tiny` wrote")
    made_in = (record.get("world") or {}).get("config") or {}
    if made_in.get("seed", config.world.seed) != config.world.seed:
        raise RepicError(f"{folder} was pretrained on the world of seed {made_in.get('seed')}, not "
                         f"{config.world.seed}: pass --world-seed {made_in.get('seed')}")
    return record


def _earlier_stages(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The final stages a record lists (older records name their one stage ``final_stage``)."""
    if "final_stages" in record:
        return list(record["final_stages"])
    return [{"name": "decision-stage", **record["final_stage"]}] if "final_stage" in record else []


def _tower_and_curriculum(config: PretrainConfig, collection: Collection, world_dir, pool, work: Path, command: str,
                          say: Progress, started: float):
    """The tokenizer and fresh model, the tower's stage and the curriculum: (model, processor, the initial
    folder, the record, the vision record)."""
    rows = _curriculum(pool, config)
    say(f"rows: {len(rows)} ({dict(sorted(Counter(r['task'] for r in rows).items()))})")
    base = build_tiny_model(
        work / "initial", texts=tokenizer_corpus(pool, rows[:_CORPUS_ROWS], seed=config.seed),
        config=config.model, overwrite=True,
    )
    vision_record = None
    if config.vision_tower_from is not None:
        say(f"vision: the tower of {config.vision_tower_from}")
        vision_record = copy_tower(config.vision_tower_from, base)
    elif config.vision is not None:
        world_config = WorldConfig.from_dict(collection.meta["config"], where=str(collection.root))
        vision_record = pretrain_vision(base, config.vision, world=world_config, progress=say)
    processor = AutoProcessor.from_pretrained(base)
    callbacks = [_loss_callback(config.steps, say)]
    if config.vision is not None or config.vision_tower_from is not None:
        callbacks.append(_frozen_tower_callback(say))
    elif config.vision_only_in_vision_phase and config.vision_phase_steps:
        callbacks.append(_vision_schedule_callback(*config.vision_window(), say))
    if config.skill_checks and collection.splits.get("heldout"):
        callbacks.append(
            _skill_check_callback(processor, collection, config.skill_checks, config.steps, config.seed, say)
        )
    prepared = time.perf_counter()
    trainer = _train(base, rows, config, work, callbacks, processor)
    record = _record(config, collection, world_dir, rows, trainer, command,
                     prepare_s=prepared - started, train_s=time.perf_counter() - prepared)
    return trainer.model, processor, base, record, vision_record


def _final_stages(model: Any, pool, config: PretrainConfig, work: Path, processor, say: Progress):
    """Run ``config.final_stages`` in order on ``model``: (the model, a record per stage)."""
    records = []
    for stage in config.final_stages:
        say(f"final stage {stage.name}: {stage.steps} steps from lr {stage.learning_rate:g}")
        # Each stage its own stream of rows (seed + 1, its name as the phase).
        rows = list(pretraining_rows(pool, stage.steps * config.batch_size, mix=stage.mix, seed=config.seed + 1,
                                     phase=stage.name))
        callbacks = [_loss_callback(stage.steps, say), _frozen_tower_callback(say)]
        began = time.perf_counter()
        trainer = _train(model, rows, config, work / "stages" / stage.name, callbacks, processor,
                         steps=stage.steps, learning_rate=stage.learning_rate)
        model = trainer.model
        records.append({**stage.to_dict(), **_stage_record(trainer, rows, time.perf_counter() - began)})
    return model, records


def _record(
    config: PretrainConfig,
    collection: Collection,
    world_dir: str | os.PathLike | None,
    rows: list[dict],
    trainer: Any,
    command: str,
    *,
    prepare_s: float,
    train_s: float,
) -> dict[str, Any]:
    """What the run was and what it measured during training (the probe's numbers are added later)."""
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    skill_check = next((c for c in trainer.callback_handler.callbacks if hasattr(c, "history")), None)
    counts = Counter(row["task"] for row in rows)
    return {
        "format": "repic-pretrain-record/1",
        "command": command,
        "seed": config.seed,
        "config": config.to_dict(),
        "world": {
            "source": str(world_dir) if world_dir is not None else "generated",
            "config": collection.meta.get("config"),
            "train_concepts": len(collection.splits.get("train", [])),
            "heldout_concepts": len(collection.splits.get("heldout", [])),
        },
        "data": {
            "rows": len(rows),
            "rows_per_task": {task: counts.get(task, 0) for task in config.mix.to_dict()},
            "phases": [{"name": name, "steps": steps, "mix": mix.to_dict()} for name, steps, mix in config.phases()],
            "vision_trainable_steps": (
                list(config.vision_window()) if config.vision_only_in_vision_phase else [0, config.steps]
            ),
            "images_per_row": round(sum(len(r["images"]) for r in rows) / len(rows), 3),
        },
        "training": {
            "steps": trainer.state.global_step,
            "batch_size": config.batch_size,
            "prepare_seconds": round(prepare_s, 1),
            "train_seconds": round(train_s, 1),
            "seconds_per_step": round(train_s / max(1, trainer.state.global_step), 4),
            "loss_curve": [
                {"step": e["step"], "loss": round(e["loss"], 4),
                 "token_accuracy": round(e.get("mean_token_accuracy", float("nan")), 4)}
                for e in logs
            ],
            "checks_by_step": skill_check.history if skill_check is not None else [],
            "grounding_loss_curve": _chunk_means(getattr(trainer, "grounding_history", []), 30),
        },
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "software": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
        },
    }


def _stage_record(trainer: Any, rows: list[dict], seconds: float) -> dict[str, Any]:
    """Steps, rows per task, time and loss curves of a final stage."""
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    return {
        "steps": trainer.state.global_step,
        "rows_per_task": dict(sorted(Counter(row["task"] for row in rows).items())),
        "train_seconds": round(seconds, 1),
        "loss_curve": [{"step": e["step"], "loss": round(e["loss"], 4)} for e in logs],
        "grounding_loss_curve": _chunk_means(trainer.grounding_history, 30),
    }


def _chunk_means(values: list[float], chunks: int) -> list[float]:
    """``values`` averaged over ``chunks`` consecutive, equal stretches (fewer when there are fewer values)."""
    size = max(1, -(-len(values) // chunks))
    return [round(sum(values[i:i + size]) / len(values[i:i + size]), 4) for i in range(0, len(values), size)]


def read_record(model_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The ``pretrain_record.json`` of a model folder, or None when it has none."""
    path = Path(model_dir) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RepicError(f"{path} is not valid JSON ({exc}); re-run `repic models pretrain-tiny`") from exc

