"""RePIC post-training: GRPO on verifiable rewards (``train_grpo``) and the SFT baseline (``train_sft``).

Both take a ``TrainConfig`` (``load_config(recipe, overrides)``: typed defaults, a YAML recipe, then
``key=value`` overrides) and return a ``RunResult`` (run folder, final model folder, metrics file, wall
time). ``train_warmup`` runs only a GRPO recipe's SFT warm-up stage. ``heldout_rewards`` measures a
model's mean reward per task on held-out samples. Modules:
``config`` (settings and recipes), ``dataset`` (samples -> TRL rows), ``guards`` (checks before compute),
``run_folder`` (layout, logs, Ctrl-C), ``session`` (what both trainers share), ``grpo``, ``sft``,
``heldout``, ``trl_compat`` (every use of TRL beyond its public API).

The trainers pull in TRL and torch, so they are imported on first use: reading a recipe stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .config import TrainConfig, load_config, save_config

_LAZY = {
    "train_grpo": "grpo",
    "train_sft": "sft",
    "train_warmup": "grpo",
    "RunResult": "session",
    "heldout_rewards": "heldout",
    "heldout_samples": "heldout",
}

__all__ = ["RunResult", "TrainConfig", "heldout_rewards", "heldout_samples", "load_config", "save_config",
           "train_grpo", "train_sft", "train_warmup"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
