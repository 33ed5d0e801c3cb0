"""Policies for RePIC: load any image-text-to-text model (``load``) or build the tiny built-in one (``tiny``).

``load_policy`` is the one entry point the trainers, the captioner and the evaluation use; the tiny model
is an ordinary Qwen2.5-VL folder, so it loads through the same function as Qwen2.5-VL-7B.
"""

from __future__ import annotations

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
from .tiny import TinyModelConfig, build_tiny_model
from .tokenizer import TINY_NAME_PATTERN, check_name_tokenization, train_tiny_tokenizer

__all__ = [
    "TINY_NAME_PATTERN",
    "LoadedPolicy",
    "LoraSettings",
    "PolicyInfo",
    "TinyModelConfig",
    "build_lora_config",
    "build_tiny_model",
    "check_name_tokenization",
    "describe_trainable",
    "inspect_model",
    "load_policy",
    "prepare_policy",
    "resolve_dtype",
    "train_tiny_tokenizer",
    "vision_module_names",
]
