"""Policies for RePIC: load any image-text-to-text model (``load``), merge LoRA adapters (``merge``).

``load_policy`` is the one entry point the trainers, the captioner and the evaluation use; the built-in tiny
model (``repic.world.tiny``) is an ordinary Qwen2.5-VL folder, so it loads through the same function as
Qwen2.5-VL-7B.
"""

from __future__ import annotations

from .families import FAMILIES, Family, family_of
from .load import (
    LoadedPolicy,
    LoraSettings,
    PolicyInfo,
    build_lora_config,
    describe_trainable,
    inspect_model,
    load_policy,
    prepare_policy,
    resolve_dtype,
    vision_module_names,
)

__all__ = [
    "FAMILIES",
    "Family",
    "family_of",
    "LoadedPolicy",
    "LoraSettings",
    "PolicyInfo",
    "build_lora_config",
    "describe_trainable",
    "inspect_model",
    "load_policy",
    "prepare_policy",
    "resolve_dtype",
    "vision_module_names",
]
