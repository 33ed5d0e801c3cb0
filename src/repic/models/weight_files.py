"""Whether a model or adapter folder's weight files are whole, checked before anything loads them.

A download or copy cut short leaves a ``.safetensors`` file shorter than its header says. transformers then
fails deep inside loading ("incomplete metadata, file not fully covered"), and a command that reads only
the config (``repic models info``) would not notice at all. ``check_weight_files`` opens each file's header
(safetensors memory-maps the rest, so a 7B checkpoint costs milliseconds) and refuses a file that is cut,
padded or not safetensors, naming it; a sharded checkpoint must also hold every shard its index lists.
``repic.models.load`` (loading and ``repic models info``) and ``repic.models.merge`` (adapters) call it,
so ``repic merge``, ``repic caption`` and ``repic models info`` say the same thing about the same file.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError, safe_open

from ..errors import RepicError

SHARD_INDEX_SUFFIX = ".safetensors.index.json"  # model.safetensors.index.json: which shard holds which tensor
_FIX = "re-download or re-save the checkpoint"


class DamagedWeights(RepicError):
    """A weight file that is not whole: its own fix (fetch or save it again), whatever loaded it."""


def check_weight_files(folder: Path) -> None:
    """Raise ``DamagedWeights`` (a ``RepicError``) naming the first ``.safetensors`` file of ``folder`` that is not whole."""
    for index in sorted(folder.glob(f"*{SHARD_INDEX_SUFFIX}")):
        _check_shards_present(index)
    for path in sorted(folder.glob("*.safetensors")):
        check_safetensors_file(path)


def check_safetensors_file(path: Path) -> None:
    """Raise ``DamagedWeights`` when ``path`` is not a whole safetensors file (its header must cover it exactly)."""
    try:
        with safe_open(str(path), framework="pt"):
            pass
    except SafetensorError as exc:
        raise DamagedWeights(damaged_message(path, exc)) from exc


def damaged_message(path: Path | str, exc: Exception) -> str:
    """One line for a weight file the safetensors reader refused: which file, why, what to do."""
    reason = str(exc).removeprefix("Error while deserializing header: ").strip() or type(exc).__name__
    return f"{path} is truncated or damaged ({reason}): {_FIX}"


def _check_shards_present(index: Path) -> None:
    """Every shard a sharded checkpoint's index names must be in the folder (a partial download lacks some)."""
    try:
        shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, KeyError, TypeError) as exc:
        raise DamagedWeights(f"{index} is truncated or damaged (no weight_map): {_FIX}") from exc
    missing = sorted(str(name) for name in shards if not (index.parent / str(name)).is_file())
    if missing:
        raise DamagedWeights(
            f"{index.parent} lacks {len(missing)} weight shard(s) its {index.name} lists ({', '.join(missing[:3])}"
            f"{', ...' if len(missing) > 3 else ''}): the checkpoint is incomplete; {_FIX}"
        )
