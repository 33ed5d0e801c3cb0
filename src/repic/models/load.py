"""Load any Hugging Face image-text-to-text model as a RePIC policy: weights, processor, trainable parts.

``load_policy`` goes through ``AutoModelForImageTextToText`` and ``AutoProcessor`` and so takes Qwen2.5-VL
(the paper's model), Qwen3-VL, the built-in tiny model and other image-text-to-text models whose chat
template accepts several images, from a local ``save_pretrained`` folder or a hub id.

What it chose and why:

- **Where the model comes from**: an existing local path wins, else an ``org/name`` hub id, from the hub
  cache first; a missing model, or a cut download, is a ``RepicError`` that names what was looked for.
- **dtype "auto"** means bfloat16 when CUDA is available and float32 otherwise (CPUs lack fast bf16
  matmuls). **Attention** defaults to PyTorch's ``sdpa``.
- **Three training modes**: LoRA (``lora=LoraSettings()``), full fine-tuning (``full_finetune=True``) or,
  with neither, a frozen model for inference and reference log-probabilities.
- **LoRA as in the paper**: r 64, alpha 128, dropout 0.05 on every linear layer of the language model and
  none in the vision side or the ``lm_head``, the parts found by the family table (``repic.models.families``).
- **Frozen vision** (the default) in every mode; with LoRA and ``freeze_vision=False`` the vision side is
  trained in full and saved with the adapter.
- Batched generation pads on the left, so the processor's tokenizer is set to left padding.

In full: docs/notes/policy-loading.md
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import huggingface_hub
import jinja2
import torch
from huggingface_hub import constants as hub_constants
from peft import LoraConfig, get_peft_model
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING

from ..errors import RepicError
from ..shipped import SHIPPED_BASE_NAME, resolve_model_name
from .families import family_of
from .weight_files import DamagedWeights, check_weight_files, damaged_message

ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "fp32": torch.float32,
    "float32": torch.float32,
}
ALL_LINEAR_LANGUAGE = "all-linear-language"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyper-parameters; the defaults are the RePIC paper's (r 64, alpha 128, dropout 0.05).

    ``target_modules`` is ``"all-linear-language"`` (every linear layer of the language model) or an
    explicit list of module names in PEFT's sense, used as given.
    """

    r: int = 64
    alpha: int = 128
    dropout: float = 0.05
    target_modules: str | tuple[str, ...] = ALL_LINEAR_LANGUAGE

    def __post_init__(self) -> None:
        if self.r <= 0 or self.alpha <= 0:
            raise RepicError(f"LoRA r and alpha must be positive (got r={self.r}, alpha={self.alpha})")
        if not 0 <= self.dropout < 1:
            raise RepicError(f"LoRA dropout must be in [0, 1) (got {self.dropout})")
        targets = self.target_modules
        if isinstance(targets, str):
            if targets != ALL_LINEAR_LANGUAGE:
                raise RepicError(
                    f"LoRA target_modules {targets!r} is not understood: use {ALL_LINEAR_LANGUAGE!r} "
                    "or a list of module names such as ['q_proj', 'v_proj']"
                )
        else:
            targets = tuple(targets)
            if not targets or not all(isinstance(name, str) and name for name in targets):
                raise RepicError("LoRA target_modules must be a non-empty list of module names")
            object.__setattr__(self, "target_modules", targets)


@dataclass
class PolicyInfo:
    """What was loaded and how: source, dtype, training mode, the parts found and their parameters."""

    source: str
    location: str  # the folder or hub id handed to from_pretrained
    from_hub: bool
    architecture: str
    model_type: str
    dtype: str
    attn_implementation: str
    mode: str  # "lora", "full" or "frozen"
    vision_modules: list[str]
    lora_targets: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedPolicy:
    """A policy ready for training or inference: the (possibly PEFT-wrapped) model and its processor."""

    model: torch.nn.Module
    processor: Any
    info: PolicyInfo


@dataclass(frozen=True)
class _Location:
    source: str
    target: str  # what from_pretrained receives
    from_hub: bool
    local_files_only: bool


def load_policy(
    model: str | os.PathLike,
    *,
    dtype: str | torch.dtype = "auto",
    attn_implementation: str = "sdpa",
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    lora: LoraSettings | None = None,
    freeze_vision: bool = True,
    full_finetune: bool = False,
    gradient_checkpointing: bool = False,
    device_map: str | dict | None = None,
) -> LoadedPolicy:
    """Load ``model`` (a local folder or hub id) with its processor, set up for LoRA, full or no training.

    ``min_pixels`` / ``max_pixels`` override the image processor's pixel budget per image (Qwen-style
    processors). Raises ``RepicError`` for a model that cannot be found, is not image-text-to-text, or
    options that contradict each other.
    """
    if lora is not None and full_finetune:
        raise RepicError("choose either LoRA or full fine-tuning, not both: drop `lora` or `full_finetune`")
    torch_dtype = resolve_dtype(dtype)
    _check_attention(attn_implementation)
    pixel_kwargs = _pixel_kwargs(min_pixels, max_pixels)
    location = _locate(model)
    config = _load_config(location)
    architecture = _image_text_to_text_class(config, location)

    hub_kwargs = {"local_files_only": location.local_files_only}
    try:
        policy = AutoModelForImageTextToText.from_pretrained(
            location.target,
            dtype=torch_dtype,
            attn_implementation=attn_implementation,
            device_map=device_map,
            **hub_kwargs,
        )
        processor = AutoProcessor.from_pretrained(location.target, **hub_kwargs)
    except OSError as exc:
        raise RepicError(
            _unreadable_message(
                location, f"its weights or processor files could not be read ({_first_line(exc)})"
            )
        ) from exc
    except SafetensorError as exc:  # a hub download cut short (local folders are checked in ``_locate``)
        raise DamagedWeights(damaged_message(f"a weight file of {location.source}", exc)) from exc
    _prepare_processor(processor, location, pixel_kwargs)

    vision = vision_module_names(policy)  # before any PEFT wrapping prefixes the module names
    policy, mode, lora_targets = prepare_policy(
        policy,
        lora=lora,
        freeze_vision=freeze_vision,
        full_finetune=full_finetune,
        gradient_checkpointing=gradient_checkpointing,
    )

    info = PolicyInfo(
        source=str(model),
        location=location.target,
        from_hub=location.from_hub,
        architecture=architecture,
        model_type=config.model_type,
        dtype=str(next(policy.parameters()).dtype).removeprefix("torch."),
        attn_implementation=attn_implementation,
        mode=mode,
        vision_modules=vision,
        lora_targets=lora_targets,
        parameters=describe_trainable(policy),
    )
    return LoadedPolicy(model=policy, processor=processor, info=info)


def prepare_policy(
    policy: torch.nn.Module,
    *,
    lora: LoraSettings | None = None,
    freeze_vision: bool = True,
    full_finetune: bool = False,
    gradient_checkpointing: bool = False,
) -> tuple[torch.nn.Module, str, list[str]]:
    """Set up an already built model for LoRA, full or no training; return (model, mode, LoRA targets).

    ``load_policy`` calls this after loading; it is public so a model built another way (for example
    with random weights straight on a GPU, to check memory at real scale) goes through the same setup.
    """
    if lora is not None and full_finetune:
        raise RepicError("choose either LoRA or full fine-tuning, not both: drop `lora` or `full_finetune`")
    architecture = type(policy).__name__
    vision = vision_module_names(policy)
    needs_vision = (full_finetune and freeze_vision) or (
        lora is not None and (freeze_vision or lora.target_modules == ALL_LINEAR_LANGUAGE)
    )
    if not vision and needs_vision:
        raise RepicError(
            f"could not find the vision tower of {architecture}: looked for submodules named "
            f"{', '.join(family_of(policy).vision + family_of(policy).projector)}. Pass freeze_vision=False "
            "and explicit LoRA target_modules for this model, or add its family to repic.models.families"
        )

    lora_targets: list[str] = []
    if lora is not None:
        peft_config = build_lora_config(policy, lora, train_vision=not freeze_vision)
        lora_targets = sorted(peft_config.target_modules)
        policy = get_peft_model(policy, peft_config)
        mode = "lora"
    elif full_finetune:
        policy.requires_grad_(True)
        set_vision_trainable(policy, not freeze_vision)
        mode = "full"
    else:
        policy.requires_grad_(False)
        policy.eval()
        mode = "frozen"
    if gradient_checkpointing:
        _enable_activation_checkpointing(policy)

    return policy, mode, lora_targets


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"auto"`` -> bfloat16 with CUDA, float32 without; names such as ``"bf16"`` map to torch dtypes."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    if dtype not in DTYPES:
        raise RepicError(f"unknown dtype {dtype!r}: use 'auto' or one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def vision_module_names(model: torch.nn.Module) -> list[str]:
    """Qualified names of the vision side: the vision tower(s) and the projector into the language model.

    The attribute names are the model family's (``repic.models.families``). Only the outermost match
    counts, so ``model.visual`` is returned and not its blocks.
    """
    family = family_of(model)
    found: list[str] = []
    for name, _module in model.named_modules():
        if name.rsplit(".", 1)[-1] in family.vision + family.projector and not _under_any(name, found):
            found.append(name)
    return found


def lm_head_name(model: torch.nn.Module) -> str | None:
    """Qualified name of the output embedding (``lm_head``), or None when the model has none."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        return None
    return next((name for name, module in model.named_modules() if module is head), None)


def language_linear_names(model: torch.nn.Module) -> list[str]:
    """The distinct leaf names of the language model's linear layers (``q_proj``, ``down_proj``...)."""
    excluded = vision_module_names(model) + [name for name in [lm_head_name(model)] if name]
    leaves = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not _under_any(name, excluded)
    }
    return sorted(leaves)


def build_lora_config(
    model: torch.nn.Module, settings: LoraSettings, *, train_vision: bool = False
) -> LoraConfig:
    """The PEFT ``LoraConfig`` that ``settings`` mean for ``model`` (also usable as TRL's ``peft_config``).

    With ``"all-linear-language"`` it targets the language model's linear layer names and excludes the
    vision side and the ``lm_head`` by prefix. ``train_vision`` trains the vision side in full alongside.
    """
    vision = vision_module_names(model)
    head = lm_head_name(model)
    if settings.target_modules == ALL_LINEAR_LANGUAGE:
        targets = language_linear_names(model)
        if not targets:
            raise RepicError(
                f"{type(model).__name__} has no linear layers outside its vision side to put LoRA on"
            )
        prefixes = vision + ([head] if head else [])
        exclude = (
            "^(?:" + "|".join(re.escape(prefix) for prefix in prefixes) + r")(?:\..*)?$" if prefixes else None
        )
    else:
        targets, exclude = list(settings.target_modules), None
    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        exclude_modules=exclude,
        modules_to_save=[name.rsplit(".", 1)[-1] for name in vision] if train_vision and vision else None,
        task_type="CAUSAL_LM",
    )


def describe_trainable(model: torch.nn.Module) -> dict[str, Any]:
    """Total and trainable parameter counts, overall and by part (vision / language / lm_head).

    Shared (tied) weights count once, under the part that names them first. LoRA weights count under the
    part they adapt.
    """
    vision = vision_module_names(model)
    head = lm_head_name(model)
    parts = {part: {"total": 0, "trainable": 0} for part in ("vision", "language", "lm_head")}
    for name, param in model.named_parameters():
        if _under_any(name, vision):
            part = "vision"
        elif head and _under_any(name, [head]):
            part = "lm_head"
        else:
            part = "language"
        parts[part]["total"] += param.numel()
        if param.requires_grad:
            parts[part]["trainable"] += param.numel()
    return {
        "total": sum(counts["total"] for counts in parts.values()),
        "trainable": sum(counts["trainable"] for counts in parts.values()),
        "parts": parts,
    }


def inspect_model(model: str | os.PathLike) -> dict[str, Any]:
    """Describe a model folder or hub id without loading its weights (the model is built on ``meta``).

    Reports the architecture, the parts found, parameter counts, the LoRA targets the paper's recipe would
    use, the checkpoint size, and whether the chat template places several images.
    """
    location = _locate(model)
    config = _load_config(location)
    architecture = _image_text_to_text_class(config, location)
    with torch.device("meta"):
        skeleton = AutoModelForImageTextToText.from_config(config)
    try:
        processor = AutoProcessor.from_pretrained(location.target, local_files_only=location.local_files_only)
    except OSError as exc:
        raise RepicError(
            _unreadable_message(location, f"its processor files could not be read ({_first_line(exc)})")
        ) from exc
    folder = Path(location.target) if not location.from_hub else None
    counts = describe_trainable(skeleton)
    image_processor = getattr(processor, "image_processor", None)
    size = getattr(image_processor, "size", None)
    return {
        "source": str(model),
        "location": location.target,
        "architecture": architecture,
        "model_type": config.model_type,
        "family": family_of(config).name,
        "image_tokens": family_of(config).image_tokens,
        "vision_modules": vision_module_names(skeleton),
        "lm_head": lm_head_name(skeleton),
        "lora_targets": language_linear_names(skeleton),
        "parameters": {
            "total": counts["total"],
            "parts": {part: n["total"] for part, n in counts["parts"].items()},
        },
        "vocab_size": len(processor.tokenizer) if hasattr(processor, "tokenizer") else None,
        "image_processor": type(image_processor).__name__ if image_processor is not None else None,
        "min_pixels": getattr(size, "shortest_edge", None) if size is not None else None,
        "max_pixels": getattr(size, "longest_edge", None) if size is not None else None,
        "images_per_turn_ok": _template_places_images(processor, count=3),
        "checkpoint_bytes": _checkpoint_bytes(folder) if folder else None,
    }


def _under_any(name: str, prefixes: list[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def set_vision_trainable(model: torch.nn.Module, trainable: bool) -> None:
    """Make the vision tower and projector trainable or frozen (``requires_grad``)."""
    vision = vision_module_names(model)
    for name, param in model.named_parameters():
        if _under_any(name, vision):
            param.requires_grad_(trainable)


def _enable_activation_checkpointing(model: torch.nn.Module) -> None:
    """Recompute activations in the backward pass; non-reentrant, which reaches LoRA layers as is.

    transformers renamed ``gradient_checkpointing_enable`` to ``activation_checkpointing_enable`` during
    5.x; the older name is used only where the new one does not exist yet.
    """
    options = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)


def _check_attention(attn_implementation: str) -> None:
    if attn_implementation not in ATTENTION_IMPLEMENTATIONS:
        raise RepicError(
            f"unknown attention implementation {attn_implementation!r}: use one of "
            f"{', '.join(ATTENTION_IMPLEMENTATIONS)}"
        )
    if attn_implementation == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise RepicError(
            "flash_attention_2 needs the flash-attn package, which is not installed: "
            "`pip install flash-attn --no-build-isolation` (CUDA only), or use attn_implementation='sdpa'"
        )


def _pixel_kwargs(min_pixels: int | None, max_pixels: int | None) -> dict[str, int]:
    kwargs = {
        key: value for key, value in {"min_pixels": min_pixels, "max_pixels": max_pixels}.items() if value
    }
    if min_pixels is not None and min_pixels <= 0 or max_pixels is not None and max_pixels <= 0:
        raise RepicError(f"min_pixels and max_pixels must be positive (got {min_pixels}, {max_pixels})")
    if min_pixels and max_pixels and min_pixels > max_pixels:
        raise RepicError(
            f"min_pixels {min_pixels} is larger than max_pixels {max_pixels}: swap or adjust them"
        )
    return kwargs


def _prepare_processor(processor: Any, location: _Location, pixel_kwargs: dict[str, int]) -> None:
    """Check the processor can build RePIC prompts and set it up for batched generation."""
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None or getattr(processor, "chat_template", None) is None:
        raise RepicError(
            f"the processor of {location.source} has no tokenizer or no chat template; RePIC builds its "
            "multi-image prompts with the chat template. Use the model's instruct/chat variant"
        )
    if pixel_kwargs:
        _set_pixel_budget(processor, location, **pixel_kwargs)
    tokenizer.padding_side = "left"  # generation continues every row at the same last position
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def _set_pixel_budget(
    processor: Any, location: _Location, min_pixels: int | None = None, max_pixels: int | None = None
):
    """Override a Qwen-style image processor's pixel budget (its ``size`` holds pixel counts, not sides)."""
    image_processor = getattr(processor, "image_processor", None)
    budget_keys = getattr(getattr(type(image_processor), "valid_kwargs", None), "__annotations__", {})
    if "max_pixels" not in budget_keys:
        raise RepicError(
            f"{type(image_processor).__name__} of {location.source} has no per-image pixel budget; "
            "drop min_pixels / max_pixels for this model"
        )
    size = image_processor.size
    new_min = min_pixels if min_pixels is not None else size.shortest_edge
    new_max = max_pixels if max_pixels is not None else size.longest_edge
    if new_min > new_max:
        raise RepicError(
            f"min_pixels {new_min} would exceed max_pixels {new_max} of {location.source}: pass both, min <= max"
        )
    image_processor.size = {"shortest_edge": new_min, "longest_edge": new_max}


def _template_places_images(processor: Any, *, count: int) -> bool | None:
    """Whether the chat template renders ``count`` image placeholders for ``count`` images in one turn."""
    token = getattr(processor, "image_token", None)
    if token is None or getattr(processor, "chat_template", None) is None:
        return None
    content = [{"type": "image"} for _ in range(count)] + [{"type": "text", "text": "?"}]
    try:
        text = processor.apply_chat_template([{"role": "user", "content": content}], tokenize=False)
    except jinja2.TemplateError:  # templates that refuse this layout, e.g. one image per turn only
        return False
    return text.count(token) == count


def _checkpoint_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir() if path.suffix in (".safetensors", ".bin"))


def _hub_offline() -> bool:
    """Offline when huggingface_hub says so or the variables are set now (they are read once at import)."""
    truthy = {"1", "ON", "YES", "TRUE"}
    from_env = any(
        os.environ.get(var, "").upper() in truthy for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    return huggingface_hub.is_offline_mode() or from_env


def _locate(model: str | os.PathLike) -> _Location:
    """Decide whether ``model`` is a local folder or a hub id, and fail early when it cannot be found.

    ``tiny-base`` names the tiny base shipped with repic, as in the recipes, wherever a model is loaded.
    """
    source = resolve_model_name(str(model))
    path = Path(source).expanduser()
    if path.exists():
        return _local_location(source, path.resolve())
    if isinstance(model, os.PathLike) or not _HUB_ID.match(source):
        raise RepicError(
            f"model folder not found: {path.resolve()} does not exist. Check the model path, give a hub id "
            f"(org/name), or {SHIPPED_BASE_NAME} for the tiny base shipped with repic"
        )
    offline = _hub_offline()
    cached = huggingface_hub.try_to_load_from_cache(source, "config.json")
    location = _Location(source=source, target=source, from_hub=True, local_files_only=offline)
    if offline and not isinstance(cached, str):
        raise RepicError(
            _unreadable_message(location, "the hub is offline (HF_HUB_OFFLINE) and it is not cached")
        )
    return location


def _local_location(source: str, folder: Path) -> _Location:
    if not folder.is_dir():
        raise RepicError(f"{folder} is a file; --model takes a model folder (the output of save_pretrained)")
    if not (folder / "config.json").is_file():
        if (folder / "adapter_config.json").is_file():
            raise RepicError(
                f"{folder} holds a LoRA adapter, not a full model: merge it into its base model first "
                "(the base model is named in its adapter_config.json) and pass the merged folder"
            )
        raise RepicError(
            f"{folder} has no config.json: --model takes a model folder written by save_pretrained"
        )
    check_weight_files(folder)  # here, so loading and `repic models info` refuse a cut file alike
    return _Location(source=source, target=str(folder), from_hub=False, local_files_only=True)


def _load_config(location: _Location):
    try:
        return AutoConfig.from_pretrained(location.target, local_files_only=location.local_files_only)
    except OSError as exc:
        raise RepicError(
            _unreadable_message(location, f"its config could not be read ({_first_line(exc)})")
        ) from exc
    except ValueError as exc:  # malformed JSON or an unknown model_type
        raise RepicError(
            f"cannot read the config of {location.target}: {exc}. Is transformers up to date?"
        ) from exc


def _image_text_to_text_class(config, location: _Location) -> str:
    if type(config) not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING:
        raise RepicError(
            f"{location.source} is a {config.model_type!r} model, which transformers cannot load as "
            "image-text-to-text; RePIC needs a multi-modal model such as Qwen2.5-VL or Qwen3-VL"
        )
    return MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING[type(config)].__name__


def _first_line(exc: Exception) -> str:
    """The library's own explanation, without its links and advice lines."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _unreadable_message(location: _Location, reason: str) -> str:
    """Why ``location`` could not be loaded, where it was looked for, and how to point at a local folder."""
    if not location.from_hub:
        return f"cannot load the model folder {location.target}: {reason}. Re-save it with save_pretrained"
    local = Path(location.source).expanduser().resolve()
    return (
        f"cannot load model {location.source!r}: {reason}. Looked for a local folder at {local} (none there) "
        f"and for the hub id in the hub cache {hub_constants.HF_HUB_CACHE}. Download it where the hub is "
        f"reachable (`hf download {location.source} --local-dir DIR`) and pass --model /path/to/DIR"
    )
