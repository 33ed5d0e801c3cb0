"""TRL beyond its public API lives in ``repic.train.trl_compat`` only, and what it relies on still exists.

The source walk finds any private name of TRL's trainers (methods and the attributes they set) used or
overridden outside the compat module, and any import of a TRL submodule; the other tests run the shims
on a real ``GRPOTrainer`` built over the shipped tiny base, so a TRL release that renames what they reach
fails here.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
import transformers
from datasets import Dataset
from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback
from trl import GRPOConfig, GRPOTrainer, SFTTrainer

import repic
from repic.shipped import shipped_base_path
from repic.train.grpo import RepicGRPOTrainer
from repic.train.trl_compat import ColumnKeepingSFTTrainer, PhaseTimedGRPOTrainer, record_metric

PACKAGE_ROOT = Path(repic.__file__).resolve().parent
COMPAT = PACKAGE_ROOT / "train" / "trl_compat.py"
TRL_TRAINERS = (GRPOTrainer, SFTTrainer, transformers.Trainer)  # TRL's trainers and the Trainer they extend


def private_trainer_names() -> set[str]:
    """Single-underscore names of TRL's trainers: their methods, and the attributes their code sets."""
    names = {name for cls in TRL_TRAINERS for name in dir(cls) if name.startswith("_") and not name.startswith("__")}
    for cls in TRL_TRAINERS:
        names |= set(re.findall(r"self\.(_[A-Za-z]\w*)\s*=", inspect.getsource(cls)))
    return names


def private_uses(source: str, names: set[str]) -> list[str]:
    """``line: what`` for each private name read, assigned or overridden, and each TRL submodule imported."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in names:
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ClassDef):
            found += [f"{item.lineno}: def {item.name}" for item in node.body
                      if isinstance(item, ast.FunctionDef) and item.name in names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trl."):
            found.append(f"{node.lineno}: from {node.module}")
        elif isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {alias.name}" for alias in node.names if alias.name.startswith("trl.")]
    return found


def test_private_trl_names_are_used_in_the_compat_module_only():
    names = private_trainer_names()
    assert {"_generate_single_turn", "_calculate_rewards", "_metrics", "_signature_columns"} <= names
    offenders = {}
    for path in PACKAGE_ROOT.rglob("*.py"):
        if path != COMPAT and (uses := private_uses(path.read_text(encoding="utf-8"), names)):
            offenders[str(path.relative_to(PACKAGE_ROOT))] = uses
    assert offenders == {}
    assert private_uses(COMPAT.read_text(encoding="utf-8"), names)  # the walk sees what the compat module does


def test_the_walk_catches_overrides_attributes_and_submodule_imports():
    source = (
        "from trl.trainer.utils import selective_log_softmax\n"
        "import trl.models\n"
        "class T:\n"
        "    def _calculate_rewards(self):\n"
        "        return self._metrics\n"
    )
    assert sorted(private_uses(source, private_trainer_names())) == [
        "1: from trl.trainer.utils", "2: import trl.models", "4: def _calculate_rewards", "5: ._metrics"
    ]


@pytest.mark.parametrize("shim, base", [(PhaseTimedGRPOTrainer, GRPOTrainer), (ColumnKeepingSFTTrainer, SFTTrainer)])
def test_every_method_a_shim_overrides_is_still_trls(shim, base):
    overridden = [name for name, value in vars(shim).items()
                  if inspect.isfunction(value) and name.startswith("_") and not name.startswith("__") and name != "_timed"]
    assert overridden  # each shim overrides something, or it would not be here
    for name in overridden:
        owner = next((cls for cls in base.__mro__ if name in vars(cls)), None)
        assert owner is not None, f"TRL's {base.__name__} no longer has {name}: update repic.train.trl_compat"
        assert owner.__module__.startswith(("trl.", "transformers.")), (name, owner)


class KeepLogs(TrainerCallback):
    def __init__(self) -> None:
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs or {}))


def tiny_trainer(tmp_path, **kwargs) -> tuple[RepicGRPOTrainer, KeepLogs]:
    """A real ``RepicGRPOTrainer`` over the shipped tiny base on the CPU; nothing is trained."""
    folder = shipped_base_path()
    keep = KeepLogs()
    args = GRPOConfig(output_dir=str(tmp_path / "trainer"), per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=4, use_cpu=True, bf16=False, report_to="none", disable_tqdm=True)
    prompt = [{"role": "user", "content": [{"type": "text", "text": "Describe the image."}]}]
    trainer = RepicGRPOTrainer(
        model=AutoModelForImageTextToText.from_pretrained(folder),
        reward_funcs=[lambda completions, **_: [0.0] * len(completions)],
        args=args,
        train_dataset=Dataset.from_list([{"prompt": prompt}] * 2),
        processing_class=AutoProcessor.from_pretrained(folder),
        callbacks=[keep],
        **kwargs,
    )
    return trainer, keep


def test_a_recorded_metric_is_averaged_into_the_next_log_and_then_cleared(tmp_path):
    trainer, keep = tiny_trainer(tmp_path)
    trainer.model.train()
    record_metric(trainer, "time/generation", 1.0)
    record_metric(trainer, "time/generation", 3.0)
    trainer.log({})
    trainer.log({})
    assert keep.logs[0]["time/generation"] == 2.0  # (1 + 3) / 2
    assert "time/generation" not in keep.logs[1]
    trainer.model.eval()  # an evaluation's metrics are logged under eval_
    record_metric(trainer, "time/generation", 5.0)
    trainer.log({})
    assert keep.logs[2]["eval_time/generation"] == 5.0


@pytest.mark.parametrize("compile_generation", [False, True])
def test_compiled_decoding_is_turned_back_on_only_when_asked(tmp_path, compile_generation):
    trainer, _ = tiny_trainer(tmp_path, compile_generation=compile_generation)
    assert trainer.generation_config.disable_compile is not compile_generation  # TRL disables it by default
