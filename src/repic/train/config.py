"""Training configuration: typed defaults, YAML recipes over them, ``--set key=value`` overrides over those.

``TrainConfig`` is the one place every training default lives. A run's configuration is built in three
layers, each overriding the one before: the dataclass defaults, a YAML recipe (a shipped one by name, such
as ``demo-tiny``, or any file), then ``key=value`` overrides from the command line (``grpo.beta=0``,
``model.lora.r=16``; values are read as YAML, so ``1e-5``, ``true``, ``[a, b]`` and ``null`` work). The
resolved configuration is validated before anything is loaded and saved as ``config.yaml`` in the run folder,
where ``--resume`` reads it back.

What it chose and why:

- **Plain nested dataclasses**, read by one small typed reader (``config_from_dict``) instead of a config
  framework: the fields are the documentation, and a wrong key or type fails with the dotted key, what was
  given, what is expected and, for a misspelt key, the closest valid one.
- **Global batch semantics.** ``grpo.prompts_per_step`` prompts x ``grpo.num_generations`` completions make
  one optimizer step whatever the number of processes; ``completions_per_device_batch`` only sets how the
  step is cut into per-device micro-batches (gradient accumulation is derived). So a recipe means the same
  training on one CPU, one GPU or 8 GPUs; see ``batch_layout``.
- **Rewards reuse ``RewardOptions``** as the ``rewards`` section, so the rules have one set of defaults
  and checks.
- Every recipe names its ``method`` (``grpo`` or ``sft``) so a GRPO recipe cannot start an SFT run by
  mistake.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..atomic import atomic_write_text
from ..errors import RepicError
from ..prompts import BOX_STYLES
from ..rewards import RewardOptions
from ..shipped import SHIPPED_BASE_NAME
from ..tasks import normalize_task

METHODS = ("grpo", "sft")
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo")
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")  # "sequence" is GSPO
SCALE_REWARDS = ("group", "batch", "none")
GENERATION_BACKENDS = ("transformers", "vllm")
VLLM_MODES = ("colocate", "server")
CACHE_IMPLEMENTATIONS = ("dynamic", "static")
FINETUNE_MODES = ("lora", "full")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DEVICES = ("auto", "cpu", "cuda")
REPORTERS = ("tensorboard", "wandb")
LR_SCHEDULERS = ("constant", "linear", "cosine", "constant_with_warmup")
CONFIG_FILE = "config.yaml"


def _choices(*values: str) -> dict[str, tuple[str, ...]]:
    return {"choices": values}


# ------------------------------------------------------------------------------------------ sections
@dataclass
class LoraSection:
    """LoRA hyper-parameters (used when ``model.finetune`` is ``lora``); the defaults are the paper's."""

    r: int = 64
    alpha: int = 128
    dropout: float = 0.05
    target_modules: list[str] | None = None  # None: every linear layer of the language model


@dataclass
class ModelSection:
    """Which policy to train and how: a folder or hub id, precision, LoRA or full fine-tuning."""

    name_or_path: str = SHIPPED_BASE_NAME
    dtype: str = "auto"  # auto: bf16 on GPU, fp32 on CPU
    attn_implementation: str = field(default="sdpa", metadata=_choices("sdpa", "eager", "flash_attention_2"))
    min_pixels: int | None = None
    max_pixels: int | None = None
    finetune: str = field(default="lora", metadata=_choices(*FINETUNE_MODES))
    lora: LoraSection = field(default_factory=LoraSection)
    freeze_vision: bool = True
    # GRPO with a frozen tower: how many images' features are kept for reuse (repic.models.vision_cache);
    # each image of a step is then encoded once instead of once per completion and pass. 0 turns it off.
    vision_cache: int = 64
    gradient_checkpointing: bool = False


@dataclass
class DataSection:
    """Training samples (official RePIC format) and where their images are."""

    train_file: str | None = None
    image_root: str | None = None  # default: build.json beside the file, else the file's folder
    tasks: list[str] | None = None  # keep only these tasks (either spelling); None: all
    max_samples: int | None = None  # the first N samples after the task filter
    box_style: str = field(default="json", metadata=_choices(*BOX_STYLES))
    prompt_seed: int = 0  # seeds the randomized ICT suffix of each prompt


@dataclass
class RolloutSection:
    """How completions are generated; none of these change the algorithm, only its speed."""

    backend: str = field(default="transformers", metadata=_choices(*GENERATION_BACKENDS))
    cache_implementation: str = field(default="dynamic", metadata=_choices(*CACHE_IMPLEMENTATIONS))
    compile: bool = False  # compile the decoding step (needs the static cache and a GPU)
    pad_prompts_to_multiple_of: int | None = None  # bounds recompilations of the compiled decoder
    vllm_mode: str = field(default="colocate", metadata=_choices(*VLLM_MODES))
    vllm_server_base_url: str | None = None
    vllm_gpu_memory_utilization: float = 0.3
    vllm_tensor_parallel_size: int = 1
    generation_kwargs: dict[str, Any] = field(default_factory=dict)  # extra GenerationConfig fields


@dataclass
class WarmupSection:
    """An optional short SFT stage on captions that name the concepts, run before GRPO (``steps`` 0: off).

    A base that never writes a name gives every GRPO group the same zero reward, hence no gradient; a few
    supervised steps give it a non-zero success rate to start from (the tiny base needs it, Qwen2.5-VL-7B
    does not).
    """

    steps: int = 0
    samples: int = 64
    batch_size: int = 8
    learning_rate: float = 1e-3
    train_file: str | None = None  # default: sft.jsonl beside data.train_file


@dataclass
class GrpoSection:
    """GRPO: group size, global batch, sampling, the loss and its KL term (TRL's ``GRPOConfig`` beneath)."""

    num_generations: int = 8
    prompts_per_step: int = 16  # global: summed over processes and accumulation
    completions_per_device_batch: int | None = None  # per forward pass; None: the whole step at once
    max_prompt_length: int | None = None  # longer prompts are refused, never cut
    max_completion_length: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    beta: float = 0.04
    loss_type: str = field(default="grpo", metadata=_choices(*LOSS_TYPES))
    importance_sampling_level: str = field(default="token", metadata=_choices(*IMPORTANCE_SAMPLING_LEVELS))
    scale_rewards: str = field(default="group", metadata=_choices(*SCALE_REWARDS))
    epsilon: float = 0.2
    epsilon_high: float | None = None
    num_iterations: int = 1
    mask_truncated_completions: bool = False
    rollout: RolloutSection = field(default_factory=RolloutSection)
    warmup: WarmupSection = field(default_factory=WarmupSection)


@dataclass
class SftSection:
    """Supervised fine-tuning on the samples' reference answers (captions for ICT), loss on the answer only."""

    rows_per_step: int = 16  # global
    rows_per_device_batch: int | None = None
    max_length: int | None = None  # longer rows are refused, never cut


@dataclass
class OptimSection:
    """Optimizer and schedule (AdamW through the Hugging Face Trainer)."""

    learning_rate: float = 1e-5
    lr_scheduler: str = field(default="linear", metadata=_choices(*LR_SCHEDULERS))
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    epochs: float = 2.0
    max_steps: int | None = None  # when set, wins over epochs


@dataclass
class HeldoutSection:
    """Mean reward per task on held-out samples, greedy, before and after training (``build`` unset: off)."""

    build: str | None = None  # a `repic data build` folder; its eval/ files are the held-out samples
    per_task: int | None = 64  # samples per task; None: all
    max_new_tokens: int = 64
    batch_size: int = 16


@dataclass
class RunSection:
    """The run folder, seeds, devices, logging and checkpoints."""

    output_dir: str | None = None
    seed: int = 42
    device: str = field(default="auto", metadata=_choices(*DEVICES))
    precision: str = field(default="auto", metadata=_choices(*PRECISIONS))
    threads: int | None = None  # torch CPU threads; None: torch's default
    logging_steps: int = 1
    save_steps: int = 100
    save_total_limit: int | None = None
    report_to: list[str] = field(default_factory=list)  # tensorboard, wandb; metrics.jsonl is always written
    sample_every: int = 10  # write sample completions every N steps (0: never)
    samples_per_log: int = 4


@dataclass
class TrainConfig:
    """Everything a training run depends on; ``method`` says which trainer the recipe is for."""

    method: str = field(default="grpo", metadata=_choices(*METHODS))
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    rewards: RewardOptions = field(default_factory=RewardOptions)
    grpo: GrpoSection = field(default_factory=GrpoSection)
    sft: SftSection = field(default_factory=SftSection)
    optim: OptimSection = field(default_factory=OptimSection)
    heldout: HeldoutSection = field(default_factory=HeldoutSection)
    run: RunSection = field(default_factory=RunSection)


# ------------------------------------------------------------------------------------------ reading
def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked against the type ``hint``; numbers written as YAML strings ("1e-5") are read."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [option for option in options if option is not type(None)]
        return _coerce(value, inner, key)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise RepicError(f"config key {key} must be a mapping of its fields, got {value!r}")
        return _build(hint, value, key + ".")
    if hint is Any:
        return value
    if origin is list:
        (inner,) = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise RepicError(f"config key {key} must be a list, got {value!r}")
        return [_coerce(item, inner, f"{key}[{index}]") for index, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RepicError(f"config key {key} must be a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise RepicError(f"config key {key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RepicError(f"config key {key} must be a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):
            try:
                value = float(value)  # YAML 1.1 reads 1e-5 (no dot) as a string
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise RepicError(f"config key {key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise RepicError(f"config key {key} must be a string, got {value!r}")
        return value
    raise RepicError(f"config key {key}: unsupported type {_type_name(hint)}")  # a field type added carelessly


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = [name for name in values if name not in known]
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(str(name), list(known), n=1)
        hint = f"; did you mean {prefix}{close[0]}?" if close else f"; valid keys: {', '.join(known)}"
        raise RepicError(f"unknown config key {prefix}{name}{hint}")
    kwargs = {}
    for name, value in values.items():
        key = prefix + name
        kwargs[name] = _coerce(value, hints[name], key)
        choices = known[name].metadata.get("choices")
        if choices and kwargs[name] not in choices:
            raise RepicError(f"config key {key} is {kwargs[name]!r}; choose one of: {', '.join(choices)}")
    return cls(**kwargs)


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """A ``TrainConfig`` from nested mappings (a parsed recipe); missing keys keep their defaults."""
    if not isinstance(values, dict):
        raise RepicError(f"a training recipe must be a YAML mapping of sections, got {type(values).__name__}")
    return _build(TrainConfig, values, "")


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Nested plain values (``config_from_dict`` reads them back to an equal config)."""
    return dataclasses.asdict(config)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# ------------------------------------------------------------------------------------------ recipes
def shipped_recipes() -> dict[str, Path]:
    """The recipes shipped with repic, by name (file stem)."""
    folder = resources.files("repic") / "recipes"
    return {Path(entry.name).stem: Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".yaml")}


def recipe_path(recipe: str | os.PathLike) -> Path:
    """A recipe file: an existing path, else a shipped recipe's name."""
    path = Path(recipe).expanduser()
    if path.is_file():
        return path
    shipped = shipped_recipes()
    if str(recipe) in shipped:
        return shipped[str(recipe)]
    raise RepicError(
        f"recipe {recipe!r} is neither a file nor a shipped recipe; shipped recipes: {', '.join(sorted(shipped))}"
    )


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from ``path``, with a clear error for anything else."""
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RepicError(f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise RepicError(f"{path} is not valid YAML: {exc}") from exc
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise RepicError(f"{path} must hold a YAML mapping of sections (model:, grpo:, ...)")
    return values


def parse_override(text: str) -> dict[str, Any]:
    """``"grpo.beta=0.0"`` -> ``{"grpo": {"beta": 0.0}}``; the value is read as YAML."""
    return nest(*split_override(text))


def split_override(text: str) -> tuple[str, Any]:
    """``"grpo.beta=0.0"`` -> ``("grpo.beta", 0.0)``: the dotted key and the value read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep:
        raise RepicError(f"override {text!r} must look like section.key=value, e.g. grpo.beta=0.04")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise RepicError(f"override {text!r}: the value is not valid YAML ({exc})") from exc
    nest(key, value)  # the key's shape is checked here, before it is used
    return key.strip(), value


def nest(dotted_key: str, value: Any) -> dict[str, Any]:
    """``nest("grpo.beta", 0.0)`` -> ``{"grpo": {"beta": 0.0}}``."""
    parts = dotted_key.strip().split(".")
    if not all(parts):
        raise RepicError(f"config key {dotted_key!r} must look like section.key, e.g. grpo.beta")
    nested: dict[str, Any] = {}
    cursor = nested
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def load_config(
    recipe: str | os.PathLike | None = None,
    overrides: typing.Sequence[str] = (),
    *,
    values: typing.Mapping[str, Any] | None = None,
    method: str | None = None,
) -> TrainConfig:
    """Defaults, then the recipe (a shipped name or a file), then ``values``, then ``key=value`` overrides.

    ``values`` maps dotted keys to typed values (``{"optim.max_steps": 10}``), for callers that already hold
    them; ``overrides`` are ``key=value`` strings whose values are read as YAML. ``method`` ("grpo" / "sft")
    is the trainer about to run: a recipe written for the other one is refused. The result is validated.
    """
    merged: dict[str, Any] = {}
    if recipe is not None:
        path = recipe_path(recipe)
        merged = read_yaml(path)
        if method is not None and merged.get("method", "grpo") != method:
            raise RepicError(
                f"recipe {path.name} is for `repic train {merged.get('method', 'grpo')}`, not `repic train {method}`"
            )
    elif method is not None:
        merged = {"method": method}
    for key, value in (values or {}).items():
        merged = _merge(merged, nest(key, value))
    for override in overrides:
        merged = _merge(merged, parse_override(override))
    config = config_from_dict(merged)
    validate(config)
    return config


def save_config(config: TrainConfig, path: str | os.PathLike) -> Path:
    """Write the resolved configuration as YAML, atomically."""
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False, allow_unicode=True)
    return atomic_write_text(path, text)


# ------------------------------------------------------------------------------------------ checks
def validate(config: TrainConfig) -> None:
    """Raise ``RepicError`` for values that are each well-typed but cannot work (all problems at once)."""
    problems = list(_problems(config))
    if problems:
        raise RepicError("invalid training configuration:\n  " + "\n  ".join(problems))


def _problems(config: TrainConfig) -> typing.Iterator[str]:
    grpo, optim, run = config.grpo, config.optim, config.run
    positive = {
        "grpo.prompts_per_step": grpo.prompts_per_step,
        "grpo.max_completion_length": grpo.max_completion_length,
        "grpo.num_iterations": grpo.num_iterations,
        "sft.rows_per_step": config.sft.rows_per_step,
        "run.logging_steps": run.logging_steps,
        "run.save_steps": run.save_steps,
        "model.lora.r": config.model.lora.r,
        "model.lora.alpha": config.model.lora.alpha,
        "heldout.max_new_tokens": config.heldout.max_new_tokens,
        "heldout.batch_size": config.heldout.batch_size,
        "grpo.warmup.samples": grpo.warmup.samples,
        "grpo.warmup.batch_size": grpo.warmup.batch_size,
    }
    optional_positive = {
        "grpo.completions_per_device_batch": grpo.completions_per_device_batch,
        "grpo.max_prompt_length": grpo.max_prompt_length,
        "grpo.rollout.pad_prompts_to_multiple_of": grpo.rollout.pad_prompts_to_multiple_of,
        "sft.rows_per_device_batch": config.sft.rows_per_device_batch,
        "sft.max_length": config.sft.max_length,
        "optim.max_steps": optim.max_steps,
        "data.max_samples": config.data.max_samples,
        "model.min_pixels": config.model.min_pixels,
        "model.max_pixels": config.model.max_pixels,
        "run.threads": run.threads,
        "run.save_total_limit": run.save_total_limit,
        "heldout.per_task": config.heldout.per_task,
    }
    if config.model.vision_cache < 0:
        yield f"model.vision_cache must be 0 (off) or a number of images, got {config.model.vision_cache}"
    for key, value in positive.items():
        if value < 1:
            yield f"{key} must be at least 1, got {value}"
    for key, value in optional_positive.items():
        if value is not None and value < 1:
            yield f"{key} must be at least 1 or null, got {value}"
    if grpo.num_generations < 2:
        yield f"grpo.num_generations must be at least 2 (advantages compare completions of one prompt), got {grpo.num_generations}"
    completions = grpo.prompts_per_step * grpo.num_generations
    micro = grpo.completions_per_device_batch
    if micro is not None and completions % micro:
        yield (
            f"grpo.completions_per_device_batch ({micro}) must divide the completions of one step "
            f"(prompts_per_step {grpo.prompts_per_step} x num_generations {grpo.num_generations} = {completions})"
        )
    if config.sft.rows_per_device_batch is not None and config.sft.rows_per_step % config.sft.rows_per_device_batch:
        yield f"sft.rows_per_device_batch ({config.sft.rows_per_device_batch}) must divide sft.rows_per_step ({config.sft.rows_per_step})"
    if grpo.temperature <= 0:
        yield f"grpo.temperature must be above 0 (GRPO samples its completions), got {grpo.temperature}"
    if not 0 < grpo.top_p <= 1:
        yield f"grpo.top_p must be in (0, 1], got {grpo.top_p}"
    if grpo.top_k < 0:
        yield f"grpo.top_k must be 0 (off) or more, got {grpo.top_k}"
    if grpo.beta < 0:
        yield f"grpo.beta must be 0 or more, got {grpo.beta}; the paper uses 0.04"
    if grpo.epsilon <= 0 or (grpo.epsilon_high is not None and grpo.epsilon_high < grpo.epsilon):
        yield "grpo.epsilon must be above 0 and grpo.epsilon_high (if set) at least epsilon"
    if grpo.warmup.steps < 0:
        yield f"grpo.warmup.steps must be 0 (off) or more, got {grpo.warmup.steps}"
    if grpo.warmup.learning_rate <= 0 or optim.learning_rate <= 0:
        yield "learning rates (optim.learning_rate, grpo.warmup.learning_rate) must be above 0"
    if not 0 <= optim.warmup_ratio < 1:
        yield f"optim.warmup_ratio must be in [0, 1), got {optim.warmup_ratio}"
    if optim.epochs <= 0 and optim.max_steps is None:
        yield "optim.epochs must be above 0 (or set optim.max_steps)"
    if optim.max_grad_norm <= 0 or optim.weight_decay < 0:
        yield "optim.max_grad_norm must be above 0 and optim.weight_decay at least 0"
    if not 0 <= config.model.lora.dropout < 1:
        yield f"model.lora.dropout must be in [0, 1), got {config.model.lora.dropout}"
    if run.sample_every < 0 or run.samples_per_log < 0:
        yield "run.sample_every and run.samples_per_log must be 0 or more"
    for reporter in run.report_to:
        if reporter not in REPORTERS:
            yield f"run.report_to holds {reporter!r}; choose from: {', '.join(REPORTERS)} (metrics.jsonl is always written)"
    rollout = grpo.rollout
    if rollout.compile and rollout.cache_implementation != "static":
        yield "grpo.rollout.compile needs grpo.rollout.cache_implementation: static (only a static cache compiles)"
    if rollout.backend == "vllm" and rollout.vllm_mode == "server" and not rollout.vllm_server_base_url:
        yield "grpo.rollout.vllm_mode server needs grpo.rollout.vllm_server_base_url (e.g. http://localhost:8000)"
    if not 0 < rollout.vllm_gpu_memory_utilization <= 1:
        yield "grpo.rollout.vllm_gpu_memory_utilization must be in (0, 1]"
    for task in config.data.tasks or []:
        try:
            normalize_task(task, where="data.tasks")
        except RepicError as exc:
            yield str(exc)
    if config.data.tasks is not None and not config.data.tasks:
        yield "data.tasks is an empty list; give the tasks to keep, or null for all"

