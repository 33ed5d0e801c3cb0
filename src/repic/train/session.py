"""What every training run does around its trainer, for GRPO and SFT alike.

The phases, in order: ``prepare_process`` (device, reporters, threads), ``training_samples`` (the sample
file, filtered), ``load_trainable`` (the policy with its trainable parts set), ``begin_run`` (``open_run``:
a new run folder, or the one to resume and its newest complete checkpoint; ``start_run``), then, inside
``ends_recorded``, ``heldout_before``, ``trainer_arguments`` (what both TRL configs share), ``run_trainer``
(train with Ctrl-C handling), ``save_final`` and the held-out measurement after. ``grpo`` and ``sft`` add
only what is their own.

Choices, and why:

- **Devices and precision.** ``run.device: auto`` is CUDA when available, else the CPU; ``precision:
  auto`` is bf16 on CUDA and fp32 on the CPU (CPUs lack fast bf16 matrix products).
- **LoRA is applied by TRL** (``peft_config``) onto a frozen base, so the reference model of the KL term is
  the base with the adapter disabled (no second copy of the weights), as in the paper. Full fine-tuning
  trains every language-model weight (``repic.models.prepare_policy``), vision frozen unless asked.
- **The final model** is written into a hidden sibling of ``final/`` and renamed into place; every rank
  takes part in the save (ZeRO-3 and FSDP gather the weights) but only the main one writes.
- **Every early end is recorded.** From the moment ``run.json`` says "running", whatever stops the run
  goes through ``ends_recorded``: Ctrl-C, during a step or not (loading, the held-out measure, the save),
  leaves "interrupted" and a ``RunInterrupted`` saying what was kept and how to resume; a failure leaves
  "failed" with its reason, and a full disk or an unwritable folder (``repic.train.failures``) becomes one
  line that says so, not a traceback.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_folder, atomic_write_json
from ..data.samples import load_samples
from ..errors import RepicError
from ..locking import hold
from ..progress import Progress
from ..records import Sample
from ..shipped import resolve_model_name
from .config import TrainConfig, save_config
from .dataset import select_samples
from .failures import failure_reason
from .guards import check_reporters
from .heldout import heldout_rewards, heldout_samples
from .run_folder import (
    HELDOUT_FILE,
    RANKS_DIR,
    TENSORBOARD_DIR,
    JsonlLog,
    RunFolder,
    RunInterrupted,
    StopOnRequest,
    checkpoint_step,
    interrupts_held_back,
    is_main_process,
    main_process_first,
    stop_requests,
)

RUN_META_FILE = "repic_run.json"  # in final/: what the model is and how it was made


@dataclass
class RunResult:
    """What a training run produced."""

    run_dir: Path
    final_dir: Path | None  # None when the run was interrupted before the end
    metrics_path: Path
    wall_seconds: float
    steps: int
    finished: bool
    heldout_before: dict[str, float] | None = None
    heldout_after: dict[str, float] | None = None
    resume_command: str = ""
    trainable: dict[str, Any] = field(default_factory=dict)
    previous_run: Path | None = None  # the earlier run an overwrite keeps until this one finishes


@dataclass
class OpenedRun:
    """A run folder ready for a trainer: where it resumes from, and the logs carried over."""

    folder: RunFolder
    checkpoint: Path | None
    resumed_step: int | None
    lock: Any = None  # the run folder's lock (``repic.locking.hold``), held by the main process until the end

    def log(self, path: Path) -> JsonlLog:
        return JsonlLog(path, keep_until=self.resumed_step if self.resumed_step is not None else -1)


def open_run(config: TrainConfig, *, resume: bool, overwrite: bool) -> OpenedRun:
    """The run folder: new (refusing a non-empty one unless ``overwrite``) or resumed from its newest checkpoint."""
    if config.run.output_dir is None:
        raise RepicError("no run folder: set run.output_dir (--out DIR)")
    # Before anything is read or cleared: two runs into one folder would delete or mix each other's files.
    lock = hold(config.run.output_dir, what="run folder") if is_main_process() else None
    # The main process claims the folder before the others touch it (they would make it look non-empty).
    with main_process_first(resolve_device(config)):
        if resume:
            folder = RunFolder.existing(config.run.output_dir)
            checkpoint = folder.latest_checkpoint()
            step = checkpoint_step(checkpoint) if checkpoint is not None else 0
            return OpenedRun(folder, checkpoint, step, lock)
        folder = RunFolder.create(config.run.output_dir, overwrite=overwrite)
        return OpenedRun(folder, None, None, lock)


def start_run(opened: OpenedRun, config: TrainConfig, command: str) -> None:
    """Save the resolved configuration and mark the run as running."""
    if is_main_process():
        save_config(config, opened.folder.config_path)
    kept = opened.folder.previous  # set by an overwrite; a resumed run keeps what run.json recorded
    opened.folder.write_status(
        status="running",
        method=config.method,
        command=command,
        resumed_from=str(opened.checkpoint) if opened.checkpoint else None,
        world_size=world_size(),
        error=None,  # a resumed run is no longer the failure it was
        **({"previous_run": str(kept)} if kept is not None else {}),
    )


def prepare_process(config: TrainConfig) -> str:
    """Checks and settings before any data or model is read: the device (returned), the reporters, threads."""
    device = resolve_device(config)
    check_reporters(config.run.report_to)
    if config.run.threads:
        import torch

        torch.set_num_threads(config.run.threads)
    return device


def begin_run(config: TrainConfig, say: Progress, *, resume: bool, overwrite: bool) -> OpenedRun:
    """Open the run folder and mark it running; what follows belongs inside ``ends_recorded``.

    A Ctrl-C while the folder is claimed waits for the claim to be whole, then ends the run as any other.
    """
    with interrupts_held_back() as held:
        opened = open_run(config, resume=resume, overwrite=overwrite)
        start_run(opened, config, command_line())
    if held.pending:
        with ends_recorded(opened, config.method, say):
            raise KeyboardInterrupt
    return opened


def heldout_before(config: TrainConfig, policy: Any, say: Progress, opened: OpenedRun) -> dict[str, float] | None:
    """The held-out reward of a run that starts fresh (None on resume: the first run measured it)."""
    if opened.checkpoint is not None:
        return None
    return measure_heldout(config, policy.model, policy.processor, "before", say, opened)


@contextmanager
def ends_recorded(opened: OpenedRun, method: str, say: Progress) -> Iterator[None]:
    """Record in ``run.json`` and explain whatever ends the running run inside the block, then re-raise.

    Ctrl-C: "interrupted", and a ``RunInterrupted`` whose message (also said) tells what was kept and how to
    resume. A failure: "failed" with its reason; a full disk or an unwritable folder is re-raised as a
    ``RepicError`` that says so, other errors as they are. ``method`` names the run in the resume command.
    """
    try:
        yield
    except KeyboardInterrupt as exc:
        if isinstance(exc, RunInterrupted) and opened.folder.read_status().get("status") == "interrupted":
            _release(opened)
            raise  # stopped during a step: ``run_trainer`` recorded and said it
        step = _last_step(opened)
        recorded = _record_end(opened, status="interrupted", step=step, resume=resume_command(opened, method))
        message = interrupted_message(opened, step, saved=False, method=method) + _unrecorded(recorded)
        say(message)
        _release(opened)
        raise RunInterrupted(message) from exc
    except Exception as exc:
        reason = failure_reason(exc, opened.folder.path)
        recorded = _record_end(opened, status="failed", error=reason or _first_line(exc))
        _release(opened)
        if reason is None:
            raise
        raise RepicError(failed_message(opened, reason, method, recorded=recorded)) from exc


def failed_message(opened: OpenedRun, reason: str, method: str, *, recorded: bool = True) -> str:
    """The line for a run a full disk or an unwritable folder stopped: why, what is kept, how to go on."""
    latest = opened.folder.latest_checkpoint()
    where = f"checkpoint {latest.name}" if latest is not None else "no checkpoint yet (it restarts from step 0)"
    marked = "run.json marks it failed" if recorded else _unrecorded(recorded).strip(" ()")
    return (
        f"the run stopped: {reason}. {marked}; once fixed, resuming continues from {where}: "
        f"{resume_command(opened, method)}{kept_message(opened.folder.previous_run())}"
    )


def _last_step(opened: OpenedRun) -> int:
    """The step a run stopped outside the training steps stands at: its newest checkpoint's, else 0."""
    latest = opened.folder.latest_checkpoint()
    return checkpoint_step(latest) if latest is not None else 0


def _record_end(opened: OpenedRun, **fields: Any) -> bool:
    """Merge ``fields`` and the end time into ``run.json``; False when even that write failed.

    A full disk may refuse this small file too. The checkpoint whose save filled it is incomplete (no trainer
    state), so resuming would skip it anyway: it is removed to make room, and the write tried once more.
    """
    for attempt in range(2):
        try:
            opened.folder.write_status(**fields, ended=time.time())
            return True
        except OSError:
            if attempt or not opened.folder.drop_incomplete_checkpoints():
                return False
    return False


def _unrecorded(recorded: bool) -> str:
    if recorded:
        return ""
    return " (run.json could not be updated, even with the incomplete checkpoints removed: it may still say running)"


def _release(opened: OpenedRun) -> None:
    if opened.lock is not None:
        opened.lock.release()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_device(config: TrainConfig) -> str:
    """``cpu`` or ``cuda`` for ``run.device``; asking for CUDA without it is an error."""
    import torch

    wanted = config.run.device
    if wanted == "cuda" and not torch.cuda.is_available():
        raise RepicError("run.device is cuda but no CUDA device is available; use run.device: cpu or auto")
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return wanted


def precision_flags(config: TrainConfig, device: str) -> dict[str, bool]:
    """``bf16`` / ``fp16`` flags of the trainer for ``run.precision`` on ``device``."""
    precision = config.run.precision
    if precision == "auto":
        precision = "bf16" if device == "cuda" else "fp32"
    if device == "cpu" and precision != "fp32":
        raise RepicError(f"run.precision {precision} needs a GPU; use fp32 (or auto) on a CPU")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def training_samples(config: TrainConfig, train_file: str | None = None) -> tuple[list[Sample], str]:
    """The training samples (task filter and cap applied) and the file they came from."""
    path = train_file or config.data.train_file
    if not path:
        raise RepicError("no training data: set data.train_file (--data FILE), a RePIC sample file")
    samples = load_samples(path, config.data.image_root)
    return select_samples(samples, config.data.tasks, config.data.max_samples), str(path)


def load_trainable(config: TrainConfig, source: str | None = None, policy: Any = None) -> tuple[Any, Any]:
    """(policy, LoRA config for TRL or None): the model with what trains set, loaded unless ``policy`` is given.

    ``policy`` is anything with ``.model`` and ``.processor`` (a ``LoadedPolicy``): a model built another way,
    such as random weights made straight on a GPU.
    """
    from peft import PeftModel

    from ..models import LoraSettings, build_lora_config, load_policy, prepare_policy

    model_config = config.model
    if policy is None:
        policy = load_policy(
            source or resolve_model_name(model_config.name_or_path),
            dtype=model_config.dtype,
            attn_implementation=model_config.attn_implementation,
            min_pixels=model_config.min_pixels,
            max_pixels=model_config.max_pixels,
        )
    model = policy.model
    if model_config.finetune == "full":
        policy.model, _, _ = prepare_policy(model, full_finetune=True, freeze_vision=model_config.freeze_vision)
        return policy, None
    if isinstance(model, PeftModel):
        return policy, None  # an adapter already attached is trained as it is
    lora = model_config.lora
    settings = LoraSettings(
        r=lora.r,
        alpha=lora.alpha,
        dropout=lora.dropout,
        **({"target_modules": tuple(lora.target_modules)} if lora.target_modules else {}),
    )
    model.requires_grad_(False)  # the adapter is the only trainable part
    return policy, build_lora_config(model, settings, train_vision=not model_config.freeze_vision)


def trainer_arguments(config: TrainConfig, opened: OpenedRun, layout, device: str) -> dict[str, Any]:
    """The ``TrainingArguments`` both trainers share (TRL's GRPO and SFT configs extend them)."""
    optim, run = config.optim, config.run
    if "tensorboard" in run.report_to:
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(opened.folder.path / TENSORBOARD_DIR))
    return {
        "output_dir": str(opened.folder.checkpoints_dir),
        "learning_rate": optim.learning_rate,
        "lr_scheduler_type": optim.lr_scheduler,
        "warmup_steps": optim.warmup_ratio,  # a float below 1 is a ratio of the steps
        "weight_decay": optim.weight_decay,
        "max_grad_norm": optim.max_grad_norm,
        "num_train_epochs": optim.epochs,
        "max_steps": optim.max_steps if optim.max_steps is not None else -1,
        "per_device_train_batch_size": layout.per_device_batch,
        "gradient_accumulation_steps": layout.accumulation,
        "logging_steps": run.logging_steps,
        "save_strategy": "steps",
        "save_steps": run.save_steps,
        "save_total_limit": run.save_total_limit,
        "report_to": list(run.report_to) or "none",
        "seed": run.seed,
        "data_seed": run.seed,
        "use_cpu": device == "cpu",
        **precision_flags(config, device),
        _checkpointing_argument(): config.model.gradient_checkpointing,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def _checkpointing_argument() -> str:
    """transformers renamed ``gradient_checkpointing`` to ``activation_checkpointing`` during 5.x."""
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    return "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"


def run_trainer(trainer: Any, opened: OpenedRun, say: Progress) -> bool:
    """Train, resuming from the run's checkpoint; True when it ran to the end, False when stopped by Ctrl-C."""
    with stop_requests(say) as requests:
        trainer.add_callback(StopOnRequest(requests))
        checkpoint = str(opened.checkpoint) if opened.checkpoint is not None else None
        try:
            trainer.train(resume_from_checkpoint=checkpoint)
        except KeyboardInterrupt as exc:  # a second Ctrl-C: stopped at once, without a checkpoint
            step = trainer.state.global_step
            opened.folder.write_status(status="interrupted", step=step, ended=time.time())
            message = interrupted_message(opened, step, saved=False)
            say(message)
            raise RunInterrupted(message) from exc
    return not requests.stopped


def resume_command(opened: OpenedRun, method: str) -> str:
    return f"repic train {method} --resume {opened.folder.path}"


def interrupted_message(opened: OpenedRun, step: int, *, saved: bool, method: str | None = None) -> str:
    """What a Ctrl-C did: where the run stopped, where resuming starts, the command, what an overwrite kept."""
    latest = opened.folder.latest_checkpoint()
    where = f"checkpoint {latest.name}" if latest is not None else "no checkpoint yet (it restarts from step 0)"
    state = "saved a checkpoint" if saved else "stopped at once"
    method = method or opened.folder.read_status().get("method", "grpo")
    when = f"at step {step}" if step or latest is not None else "before the first training step"
    message = f"interrupted {when}: {state}; resuming continues from {where}: {resume_command(opened, method)}"
    return message + kept_message(opened.folder.previous_run())


def kept_message(previous: Path | None) -> str:
    """What an interruption says about the run an overwrite replaces ('' when there is none)."""
    if previous is None:
        return ""
    return f"; the earlier run this one replaces is kept in {previous} until this one finishes"


def save_final(
    trainer: Any, processor: Any, opened: OpenedRun, meta: dict[str, Any], *, merge_adapter: bool = False
) -> Path:
    """Write ``final/`` (weights or adapter, processor, ``repic_run.json``) atomically.

    ``merge_adapter`` folds a LoRA adapter into the weights first, so ``final/`` is a plain model folder
    (what a later stage loads as its base).
    """
    from peft import PeftModel

    final = opened.folder.final_dir
    model = trainer.accelerator.unwrap_model(trainer.model)
    if is_main_process():
        with atomic_folder(final) as staging:
            if merge_adapter and isinstance(model, PeftModel):
                model.merge_and_unload().save_pretrained(str(staging))
            else:
                trainer.save_model(str(staging))
            processor.save_pretrained(str(staging))
            atomic_write_json(staging / RUN_META_FILE, meta)
    else:
        trainer.save_model(str(final))  # takes part in gathering the weights; only the main process writes
    trainer.accelerator.wait_for_everyone()
    return final


def measure_heldout(
    config: TrainConfig, policy: Any, processor: Any, when: str, say: Progress, opened: OpenedRun
) -> dict[str, float] | None:
    """Held-out mean reward per task (``heldout.build`` set), recorded under ``when`` in ``heldout.json``."""
    heldout = config.heldout
    if heldout.build is None or not is_main_process():
        return None
    samples = heldout_samples(heldout.build, per_task=heldout.per_task)
    say(f"held-out ({when}): {len(samples)} samples, greedy, {heldout.max_new_tokens} new tokens")
    started = time.perf_counter()
    means = heldout_rewards(
        policy, samples, processor=processor, options=config.rewards, max_new_tokens=heldout.max_new_tokens,
        batch_size=heldout.batch_size, box_style=config.data.box_style, prompt_seed=config.data.prompt_seed,
    )
    say(f"held-out ({when}): " + ", ".join(f"{task} {value:.3f}" for task, value in means.items()))
    path = opened.folder.path / HELDOUT_FILE
    record = _read_json(path)
    record[when] = means
    record["samples_per_task"] = heldout.per_task
    record[f"{when}_seconds"] = round(time.perf_counter() - started, 2)
    atomic_write_json(path, record)
    return means


def _read_json(path: Path) -> dict[str, Any]:
    import json

    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def write_rank_record(opened: OpenedRun, trainer: Any, extra: dict[str, Any]) -> None:
    """This process's ``ranks/rank-N.json``: its steps, its share of the batch, a checksum of its weights."""
    import torch

    rank = int(os.environ.get("RANK", "0"))
    with torch.no_grad():
        checksum = sum(float(p.double().sum()) for p in trainer.model.parameters() if p.requires_grad)
    atomic_write_json(opened.folder.path / RANKS_DIR / f"rank-{rank}.json", {
        "rank": rank, "world_size": world_size(), "steps": trainer.state.global_step,
        "trainable_checksum": checksum, **extra,
    })


def command_line() -> str:
    """The command that started this process, for the records."""
    return " ".join(sys.argv)


def finish_run(
    config: TrainConfig, trainer: Any, processor: Any, opened: OpenedRun, say: Progress, started: float,
    heldout_before: dict[str, float] | None, *, merge_adapter: bool = False,
    rank_record: Callable[[], dict[str, Any]] | None = None,
) -> RunResult:
    """Train, then save ``final/`` and measure the held-out reward again (``config.method`` names the run).

    ``rank_record`` gives what each process adds to its ``ranks/rank-N.json`` under several processes.
    """
    from ..models import describe_trainable

    trainable = describe_trainable(trainer.model)
    opened.folder.write_status(trainable=trainable)
    finished = run_trainer(trainer, opened, say)
    step = trainer.state.global_step
    if world_size() > 1:
        write_rank_record(opened, trainer, rank_record() if rank_record else {})
    result = RunResult(
        run_dir=opened.folder.path,
        final_dir=None,
        metrics_path=opened.folder.metrics_path,
        wall_seconds=time.perf_counter() - started,
        steps=step,
        finished=finished,
        heldout_before=heldout_before,
        resume_command=resume_command(opened, config.method),
        trainable=trainable,
        previous_run=opened.folder.previous_run(),
    )
    if not finished:
        opened.folder.write_status(status="interrupted", step=step, resume=result.resume_command)
        say(interrupted_message(opened, step, saved=True))
        _release(opened)
        return result
    meta = {"method": config.method, "base_model": config.model.name_or_path, "finetune": config.model.finetune,
            "steps": step, "run_dir": str(opened.folder.path),
            "box_style": config.data.box_style}  # how the model answers boxes: inference asks the same way
    result.final_dir = save_final(trainer, processor, opened, meta, merge_adapter=merge_adapter)
    result.heldout_after = measure_heldout(config, trainer.model, processor, "after", say, opened)
    result.wall_seconds = time.perf_counter() - started
    opened.folder.write_status(status="finished", step=step, final=str(result.final_dir),
                               wall_seconds=round(result.wall_seconds, 2))
    opened.folder.drop_previous_run()  # only now: until here a crash would have left neither run whole
    result.previous_run = None
    say(f"finished {step} steps in {result.wall_seconds:.1f} s; model in {result.final_dir}")
    _release(opened)
    return result
