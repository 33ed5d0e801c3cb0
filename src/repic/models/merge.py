"""Merge a LoRA adapter into its base model, save a standard folder, and check it against base+adapter.

``merge_adapter(adapter_dir, out_dir)`` loads the base named in the adapter's ``adapter_config.json`` (or
``base=``), applies the adapter with PEFT, folds every LoRA layer into its base weight, and writes an
ordinary ``save_pretrained`` folder (model, processor, tokenizer, generation config) that loads without
PEFT, plus ``merge_record.json`` (adapter, base, dtypes, what rounding did to the weights, the check).
``check_merge(adapter_dir, merged_dir)`` runs the same check on a merged folder made any other way.

Why a check at all: the official RePIC release lost 6-8 % caption recall between its adapter and its
merged checkpoint. Rounding ``W + BA`` to bfloat16 can erase much of a small GRPO update, so the merged
folder is compared with base+adapter on real prompts (``repic.models.merge_check``), and the report says
why they differ.

What it chose and why:

- **Arithmetic**: the merge is computed in float32 on the CPU (``merge_dtype``) and saved in ``dtype``,
  float32 by default (equal to base+adapter up to summation order); ``bf16`` halves the size.
- **Weight-level measure**: layers are merged one at a time with PEFT's own ``merge``; ``rounding_error``
  is ``||saved - exact|| / ||exact - W||``, the rounding next to the adapter's update.
- **Output-level check**: the folder, reloaded from disk in float32, must match base+adapter on the check
  prompts within ``tolerance`` (1e-2 on logits), with equal argmaxes and greedy answers.
- **Writes** go through ``atomic_folder``; a folder whose check failed is still written, marked
  ``"passed": false``, and ``merge_adapter`` returns the verdict without raising on it.

Measurements and history: docs/notes/lora-merge-check.md
"""

from __future__ import annotations

import copy
import gc
import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import peft
import torch
import transformers
from peft import PeftModel
from peft.tuners.lora import LoraLayer

from ..atomic import atomic_folder, atomic_write_json
from ..errors import RepicError
from .load import LoadedPolicy, load_policy, resolve_dtype
from .merge_check import CheckPrompt, MergeCheck, compare, reference_outputs, resolve_prompts
from .weight_files import DamagedWeights, check_weight_files

DEFAULT_TOLERANCE = 1e-2
DEFAULT_NEW_TOKENS = 32
RECORD_NAME = "merge_record.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
EVALUATION_DTYPE = torch.float32  # base+adapter and the merged folder are both run in float32
PromptsArgument = Sequence[CheckPrompt] | str | os.PathLike | None


@dataclass
class WeightChange:
    """What the merge did to the LoRA layers' weights, measured layer by layer (Frobenius norms)."""

    layers: int
    update_norm: float  # ||exact merge - W|| over all layers: the adapter's update
    rounding_norm: float  # ||saved - exact merge|| over all layers
    worst_layer: str | None
    worst_layer_error: float  # that layer's ||saved - exact|| / ||exact - W||

    @property
    def rounding_error(self) -> float | None:
        """Rounding next to the adapter's update (0: none); None for an adapter that changes nothing."""
        return self.rounding_norm / self.update_norm if self.update_norm > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rounding_error": self.rounding_error}


@dataclass
class MergeReport:
    """Everything ``merge_adapter`` did; ``to_dict`` is what ``merge_record.json`` holds."""

    adapter: str
    base: str
    out_dir: str
    merge_dtype: str
    dtype: str
    adapter_settings: dict[str, Any]
    weights: WeightChange
    check: MergeCheck | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool | None:
        """The check's verdict, or None when no check ran."""
        return None if self.check is None else self.check.passed

    def to_dict(self) -> dict[str, Any]:
        versions = {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        }
        return {
            "adapter": self.adapter,
            "base": self.base,
            "out_dir": self.out_dir,
            "merge_dtype": self.merge_dtype,
            "dtype": self.dtype,
            "adapter_settings": self.adapter_settings,
            "weights": self.weights.to_dict(),
            "check": None if self.check is None else self.check.to_dict(),
            "notes": self.notes,
            "seconds": round(self.seconds, 2),
            "versions": versions,
        }


# ------------------------------------------------------------------------------------------ merge
def merge_adapter(
    adapter_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    base: str | os.PathLike | None = None,
    dtype: str | torch.dtype = "float32",
    merge_dtype: str | torch.dtype = "float32",
    check: bool = True,
    check_prompts: PromptsArgument = None,
    tolerance: float = DEFAULT_TOLERANCE,
    max_new_tokens: int = DEFAULT_NEW_TOKENS,
    overwrite: bool = False,
) -> MergeReport:
    """Merge the LoRA adapter in ``adapter_dir`` into its base and save the result to ``out_dir``.

    ``base`` overrides the base named in ``adapter_config.json``; ``dtype`` is the saved dtype and
    ``merge_dtype`` the one the merge is computed in. With ``check`` the saved folder is compared with
    base+adapter on ``check_prompts`` (None: the default prompts; a JSONL path; or ``CheckPrompt``
    objects), answers of up to ``max_new_tokens``. Raises ``RepicError`` for a missing or malformed
    adapter, a base that cannot be loaded or does not fit it, or an ``out_dir`` that would overwrite
    something; a failed check is returned in the report, not raised.
    """
    started = time.perf_counter()
    save_dtype, merged_in = resolve_dtype(dtype), resolve_dtype(merge_dtype)
    _check_settings(tolerance, max_new_tokens)
    adapter, config = read_adapter_config(adapter_dir)
    out = _output_folder(out_dir, adapter, overwrite)
    prompts = resolve_prompts(check_prompts) if check else []  # bad prompts fail before any loading
    policy, base_source = load_with_adapter(adapter, config, base)
    if not policy.info.from_hub and _replaces(out, Path(policy.info.location)):
        raise RepicError(
            f"--out {out} would replace the base model folder {policy.info.location}: choose another"
        )
    references = reference_outputs(policy, prompts, max_new_tokens)

    weights = _merge_layers(policy.model, merged_in, save_dtype)
    model = policy.model.unload().to(save_dtype)  # the layers hold their merged weights; drop the wrappers
    report = MergeReport(
        adapter=str(adapter),
        base=base_source,
        out_dir=str(out),
        merge_dtype=_dtype_name(merged_in),
        dtype=_dtype_name(save_dtype),
        adapter_settings=_adapter_settings(config),
        weights=weights,
        notes=weight_notes(weights),
    )
    with atomic_folder(out) as staging:
        model.save_pretrained(staging)
        policy.processor.save_pretrained(staging)
        del model, policy  # free the in-memory copy before the saved one is loaded
        gc.collect()
        if check:
            merged = load_policy(staging, dtype=EVALUATION_DTYPE)
            report.check = compare(merged, references, tolerance)
            report.check.causes = mismatch_causes(report.check, merged_in, save_dtype)
            del merged
        report.seconds = time.perf_counter() - started
        atomic_write_json(staging / RECORD_NAME, report.to_dict())
    return report


def check_merge(
    adapter_dir: str | os.PathLike,
    merged_dir: str | os.PathLike,
    *,
    base: str | os.PathLike | None = None,
    check_prompts: PromptsArgument = None,
    tolerance: float = DEFAULT_TOLERANCE,
    max_new_tokens: int = DEFAULT_NEW_TOKENS,
) -> MergeCheck:
    """Compare a merged model folder, however it was made, with base+adapter (as ``merge_adapter`` does)."""
    _check_settings(tolerance, max_new_tokens)
    adapter, config = read_adapter_config(adapter_dir)
    prompts = resolve_prompts(check_prompts)
    policy, _ = load_with_adapter(adapter, config, base)
    references = reference_outputs(policy, prompts, max_new_tokens)
    del policy
    gc.collect()
    result = compare(load_policy(merged_dir, dtype=EVALUATION_DTYPE), references, tolerance)
    result.causes = mismatch_causes(result, _recorded_merge_dtype(merged_dir), _stored_dtype(merged_dir))
    return result


def read_adapter_config(adapter_dir: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """The adapter folder (resolved) and its ``adapter_config.json``, checked to hold a LoRA adapter."""
    folder = Path(adapter_dir).expanduser().resolve()
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise RepicError(
            f"adapter folder {folder} {what}: pass the folder that PEFT's save_pretrained wrote "
            f"(it holds {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS[0]})"
        )
    config_path = folder / ADAPTER_CONFIG
    if not config_path.is_file():
        full_model = (folder / "config.json").is_file()
        hint = (
            " It holds a full model (config.json), not an adapter: there is nothing to merge."
            if full_model
            else ""
        )
        raise RepicError(
            f"{folder} has no {ADAPTER_CONFIG}, so it is not a PEFT adapter folder.{hint} Pass the folder "
            "the LoRA adapter was saved to"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RepicError(
            f"{config_path} is not valid JSON ({exc}); re-save the adapter with save_pretrained"
        ) from exc
    if not isinstance(config, dict) or str(config.get("peft_type", "")).upper() != "LORA":
        kind = config.get("peft_type") if isinstance(config, dict) else type(config).__name__
        raise RepicError(f"{config_path} describes a {kind!r} adapter; repic merge folds LoRA adapters only")
    if not any((folder / name).is_file() for name in ADAPTER_WEIGHTS):
        raise RepicError(
            f"{folder} has {ADAPTER_CONFIG} but no adapter weights ({' or '.join(ADAPTER_WEIGHTS)}): the "
            "save was interrupted or the weights were moved; copy them back or save the adapter again"
        )
    check_weight_files(folder)  # a cut adapter file would otherwise read as an adapter that does not fit
    return folder, config


# ------------------------------------------------------------------------------------------ loading
def _check_settings(tolerance: float, max_new_tokens: int) -> None:
    if not tolerance > 0:
        raise RepicError(
            f"the logit tolerance must be positive (got {tolerance}); the default is {DEFAULT_TOLERANCE}"
        )
    if max_new_tokens < 1:
        raise RepicError(f"max_new_tokens must be at least 1 (got {max_new_tokens})")


def _output_folder(out_dir: str | os.PathLike, adapter: Path, overwrite: bool) -> Path:
    out = Path(out_dir).expanduser().resolve()
    if out == adapter or out in adapter.parents:
        raise RepicError(
            f"--out {out} would replace the adapter folder {adapter}: choose another output folder"
        )
    if out.exists() and not out.is_dir():
        raise RepicError(f"{out} exists and is a file: choose a folder path for the merged model (--out DIR)")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise RepicError(
            f"{out} already exists and is not empty: remove it, choose another --out, or pass --overwrite"
        )
    return out


def load_with_adapter(
    adapter: Path, config: dict[str, Any], base: str | os.PathLike | None = None, **options: Any
) -> tuple[LoadedPolicy, str]:
    """The base with the adapter applied (not merged), in eval mode, and the base as named.

    ``adapter`` and ``config`` come from ``read_adapter_config``; ``base`` overrides the base the config
    names; ``options`` go to ``load_policy`` (float32 unless ``dtype`` says otherwise). ``repic merge``
    and ``repic caption`` (``repic.inference.load_for_captioning``) both load adapters through here.
    """
    options.setdefault("dtype", EVALUATION_DTYPE)
    named = config.get("base_model_name_or_path")
    source = str(base) if base is not None else named
    if not source:
        raise RepicError(
            f"{adapter / ADAPTER_CONFIG} names no base model (base_model_name_or_path): pass --base"
        )
    origin = "--base" if base is not None else f"{adapter / ADAPTER_CONFIG}"
    try:
        policy = load_policy(source, **options)
    except DamagedWeights:
        raise  # the base named is the right one; its files need fetching again, not another --base
    except RepicError as exc:
        raise RepicError(
            f"cannot load the base model {source!r} (from {origin}) for the adapter {adapter}: {exc}. "
            "Pass --base with the folder or hub id of the model the adapter was trained on"
        ) from exc
    try:
        with warnings.catch_warnings():
            # PEFT asks the model for the name transformers 5 deprecated; nothing for a user to act on.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            policy.model = PeftModel.from_pretrained(policy.model, adapter, is_trainable=False).eval()
    except (RuntimeError, ValueError, KeyError, OSError) as exc:
        raise RepicError(_adapter_mismatch_message(adapter, source, exc)) from exc
    return policy, source


def _adapter_mismatch_message(adapter: Path, base: str, exc: Exception) -> str:
    """The library's reason, shortened to the line that says what does not fit."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    shapes = [line for line in lines if line.startswith("size mismatch")]
    reason = (
        f"{shapes[0]} ({len(shapes)} tensors differ)"
        if shapes
        else (lines[0] if lines else type(exc).__name__)
    )
    return (
        f"the adapter {adapter} does not fit the base model {base}: {reason}. The adapter was trained on "
        "another model: pass --base with the model it was trained on"
    )


def _adapter_settings(config: dict[str, Any]) -> dict[str, Any]:
    keys = ("peft_type", "r", "lora_alpha", "target_modules", "modules_to_save", "base_model_name_or_path")
    settings = {key: config.get(key) for key in keys}
    if isinstance(settings["target_modules"], list):
        settings["target_modules"] = sorted(settings["target_modules"])
    return settings


def _stored_dtype(folder: str | os.PathLike) -> torch.dtype:
    """The dtype a model folder's weights are stored in (``dtype`` or ``torch_dtype`` of config.json)."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        return resolve_dtype(str(config.get("dtype") or config.get("torch_dtype")))
    except (OSError, json.JSONDecodeError, RepicError):
        return EVALUATION_DTYPE  # unknown: no dtype-based cause is claimed


def _recorded_merge_dtype(folder: str | os.PathLike) -> torch.dtype | None:
    """The dtype a folder was merged in, when ``repic merge`` wrote it (its record says); else None."""
    try:
        record = json.loads((Path(folder) / RECORD_NAME).read_text(encoding="utf-8"))
        return resolve_dtype(str(record["merge_dtype"]))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, RepicError):
        return None


def _replaces(out: Path, folder: Path) -> bool:
    """Whether writing ``out`` (which moves an existing ``out`` aside) would remove ``folder``."""
    folder = folder.resolve()
    return out == folder or out in folder.parents


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# ------------------------------------------------------------------------------------------ merging
ROUNDING_WARNING = 0.1  # rounding a tenth the size of the update already blurs what the adapter learned


def weight_notes(weights: WeightChange) -> list[str]:
    """Warnings the weight-level measure calls for, whatever the output check says.

    A few check prompts can miss a loss spread thinly over many outputs (a few points of recall), so a
    rounding that is large next to the adapter's update is reported on its own.
    """
    if weights.rounding_error is None:
        return [
            "the merge changed no weight: the adapter's update is zero, as when lora_B keeps the zeros PEFT "
            "starts it with, so the merged model equals the base. Was the adapter saved before training?"
        ]
    if weights.rounding_error > ROUNDING_WARNING:
        return [
            f"rounding changed the merged weights by {_share(weights.rounding_error)} the adapter's update "
            f"(worst layer: {weights.worst_layer}, {_share(weights.worst_layer_error)} its update): part of "
            "what the adapter learned may be lost; merge and save in float32"
        ]
    return []


def _share(value: float) -> str:
    return f"{value:.1f} times" if value >= 1 else f"{100 * value:.0f} % of"


def _merge_layers(model: PeftModel, merge_dtype: torch.dtype, save_dtype: torch.dtype) -> WeightChange:
    """Merge every LoRA layer into its base weight, one layer at a time, measuring what rounding does."""
    update_sq = rounding_sq = 0.0
    worst_layer, worst_error, layers = None, 0.0, 0
    for name, layer in model.named_modules():
        if not isinstance(layer, LoraLayer):
            continue
        holder = layer.get_base_layer()
        before = holder.weight.detach().float().clone()
        exact = None
        if merge_dtype != torch.float32:
            exact_copy = copy.deepcopy(layer)  # the exact float32 merge, to measure the lower-precision one
            exact_copy.merge()
            exact = exact_copy.get_base_layer().weight.detach().float()
            del exact_copy
            layer.to(merge_dtype)
        layer.merge()
        merged = holder.weight.detach()
        exact = merged.float() if exact is None else exact
        update = torch.linalg.vector_norm(exact - before).item()
        rounding = torch.linalg.vector_norm(merged.to(save_dtype).float() - exact).item()
        update_sq, rounding_sq, layers = update_sq + update**2, rounding_sq + rounding**2, layers + 1
        error = rounding / update if update > 0 else 0.0
        if worst_layer is None or error > worst_error:
            worst_layer, worst_error = name.removeprefix("base_model.model."), error
    if not layers:
        raise RepicError("the adapter put no LoRA layer on the base model: check its target_modules")
    return WeightChange(layers, update_sq**0.5, rounding_sq**0.5, worst_layer, worst_error)


def mismatch_causes(
    check: MergeCheck, merge_dtype: torch.dtype | None, saved_dtype: torch.dtype
) -> list[str]:
    """Why the merged model can differ from base+adapter, given the dtypes it was merged and saved in.

    With float32 throughout, only summation order differs, so a failed check has another cause.
    """
    causes = []
    if merge_dtype is not None and merge_dtype != torch.float32:
        causes.append(
            f"merged in {_dtype_name(merge_dtype)}: W + BA was rounded to {_dtype_name(merge_dtype)}, whose "
            "steps (about 0.4 % of a weight in bfloat16) can exceed a LoRA update; merge in float32 "
            "(the default)"
        )
    if saved_dtype != EVALUATION_DTYPE:
        causes.append(
            f"saved in {_dtype_name(saved_dtype)} but evaluated in float32: every merged weight was rounded "
            "on save; save in float32 (--dtype float32), or serve the adapter on its base"
        )
    if not causes and not check.passed:
        causes.append(
            "merged and saved in float32, so rounding cannot explain the difference: the folder does not "
            "hold base+adapter's weights (an edited or partly written checkpoint, another base or adapter, "
            "or modules the merge did not fold in); merge again from the adapter"
        )
    return causes
