"""The run folder: its layout, the JSONL metrics and completion logs, the final save, and Ctrl-C handling.

Layout of ``RUN/``::

    config.yaml         the resolved configuration (what ``--resume`` reads back)
    run.json            status (running / interrupted / failed / finished), steps, times, how to resume
    metrics.jsonl       one JSON object per logged step: TRL's metrics (reward, rewards/<task>/mean, kl,
                        completions/mean_length, learning_rate, loss, ...) plus step timings
    completions.jsonl   sample completions now and then: step, task, prompt, completion, reward
    heldout.json        mean held-out reward per task before and after training (when asked)
    warmup/             the SFT warm-up stage, a run folder of its own (when asked)
    ranks/rank-N.json   under several processes: each one's steps, batch share and a checksum of its
                        trainable weights (equal on every rank when data parallelism kept them in sync)
    checkpoints/checkpoint-N/   Trainer checkpoints: weights, optimizer, scheduler, RNG, trainer state
    final/              the trained model (PEFT adapter or full weights) and its processor
    tensorboard/        TensorBoard events (when asked)

A run folder is never half-written, and a checkpoint counts only once its ``trainer_state.json`` exists.
``--overwrite`` keeps the earlier run in ``RUN.previous`` until the new one has finished. Ctrl-C
(``stop_requests``): the first one lets the step finish, saves a checkpoint and stops with the resume
command; a second one stops at once.

In full: docs/notes/run-folder.md
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..atomic import append_jsonl, atomic_write_json, atomic_write_jsonl, log_lines
from ..errors import RepicError
from ..progress import Progress
from ..rewards import completion_text
from .config import CONFIG_FILE
from .processes import is_main_process

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
COMPLETIONS_FILE = "completions.jsonl"
HELDOUT_FILE = "heldout.json"
CHECKPOINTS_DIR = "checkpoints"
FINAL_DIR = "final"
WARMUP_DIR = "warmup"
TENSORBOARD_DIR = "tensorboard"
RANKS_DIR = "ranks"
CHECKPOINT_PREFIX = "checkpoint-"
TRAINER_STATE = "trainer_state.json"
PREVIOUS_SUFFIX = ".previous"  # the earlier run an overwrite keeps until the new one finishes
DDP_TIMEOUT_S = 1800  # transformers' TrainingArguments.ddp_timeout default, so the group is the trainer's


@contextmanager
def main_process_first(device: str) -> Iterator[None]:
    """Under several processes, run the block on the main process first and on the others once it is done.

    The run folder is claimed this way: a process that went on at once would create files in it (its
    trainer's ``checkpoints/``, the warm-up's ``warmup/``) before the main process checked that the folder is
    empty, which then refused it. The processes meet through the group TRL's trainer uses (accelerate's
    ``PartialState``, made here with the trainer's own settings: CPU or not, its 30-minute timeout). One
    process: just the block.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield
        return
    from datetime import timedelta

    from accelerate import PartialState

    state = PartialState(cpu=device == "cpu", timeout=timedelta(seconds=DDP_TIMEOUT_S))
    with state.main_process_first():
        yield


@dataclass
class RunFolder:
    """A run folder (layout in the module docstring)."""

    path: Path
    previous: Path | None = None  # where ``create`` kept the run it replaces (main process only)

    @classmethod
    def create(cls, path: str | os.PathLike, *, overwrite: bool = False) -> RunFolder:
        """A new run folder; an existing non-empty one is refused unless ``overwrite``, which keeps the
        earlier run in ``RUN.previous`` until the new one finishes (overwriting: docs/notes/run-folder.md)."""
        folder = Path(path).expanduser().resolve()
        if folder.exists() and not folder.is_dir():
            raise RepicError(f"{folder} is a file; give a folder for the run (run.output_dir / --out)")
        if not is_main_process():  # the main process has checked and prepared it (``main_process_first``)
            folder.mkdir(parents=True, exist_ok=True)
            return cls(folder)
        if folder.is_dir() and any(folder.iterdir()):
            is_run = (folder / CONFIG_FILE).is_file()
            if not overwrite:
                hint = f"resume it with --resume {folder}, " if is_run else ""
                raise RepicError(f"run folder {folder} is not empty: {hint}choose another --out, or pass --overwrite")
            if not is_run:
                raise RepicError(
                    f"{folder} is not empty and holds no earlier run ({CONFIG_FILE}); --overwrite only replaces "
                    "run folders: choose another --out"
                )
            previous = _set_aside(folder)
            folder.mkdir(parents=True, exist_ok=True)
            return cls(folder, previous)
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder)

    @classmethod
    def existing(cls, path: str | os.PathLike) -> RunFolder:
        """A run folder to resume: it must hold the ``config.yaml`` of an earlier run."""
        folder = Path(path).expanduser().resolve()
        if not folder.is_dir():
            what = "is a file" if folder.exists() else "does not exist"
            raise RepicError(f"run folder {folder} {what}: give --resume the --out folder of an earlier repic train run")
        if not (folder / CONFIG_FILE).is_file():
            lacks = f"its {CONFIG_FILE} is missing" if (folder / RUN_FILE).is_file() else f"no {CONFIG_FILE} or {RUN_FILE}"
            raise RepicError(
                f"{folder} is not a repic run folder ({lacks}): give --resume the --out folder of an earlier "
                "repic train run"
            )
        return cls(folder)

    # paths
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def completions_path(self) -> Path:
        return self.path / COMPLETIONS_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def final_dir(self) -> Path:
        return self.path / FINAL_DIR

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints (their trainer state was written), oldest first."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = []
        for child in self.checkpoints_dir.iterdir():
            step = child.name.removeprefix(CHECKPOINT_PREFIX)
            if child.name.startswith(CHECKPOINT_PREFIX) and step.isdigit() and (child / TRAINER_STATE).is_file():
                found.append((int(step), child))
        return [path for _, path in sorted(found)]

    def drop_incomplete_checkpoints(self) -> list[Path]:
        """Delete the checkpoints a failed save left without their trainer state, which resuming skips
        (main process only); returns them."""
        if not is_main_process() or not self.checkpoints_dir.is_dir():
            return []
        complete = set(self.checkpoints())
        dropped = [child for child in self.checkpoints_dir.iterdir() if child.is_dir() and child not in complete
                   and child.name.startswith(CHECKPOINT_PREFIX) and child.name[len(CHECKPOINT_PREFIX):].isdigit()]
        for child in dropped:
            shutil.rmtree(child, ignore_errors=True)
        return dropped

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint, or None."""
        complete = self.checkpoints()
        return complete[-1] if complete else None

    def read_status(self) -> dict[str, Any]:
        path = self.path / RUN_FILE
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}  # written atomically, so only a hand edit can break it; the run itself is intact

    def write_status(self, **fields: Any) -> None:
        """Merge ``fields`` into ``run.json`` (main process only)."""
        if is_main_process():
            atomic_write_json(self.path / RUN_FILE, {**self.read_status(), **fields})

    def previous_run(self) -> Path | None:
        """The earlier run this one replaces, kept until it finishes (recorded in ``run.json``), or None."""
        recorded = self.read_status().get("previous_run")
        return Path(recorded) if recorded and Path(recorded).is_dir() else None

    def drop_previous_run(self) -> None:
        """Delete the earlier run this one replaced (call once it has finished; main process only)."""
        previous = self.previous_run()
        if not is_main_process() or previous is None:
            return
        shutil.rmtree(previous)
        self.write_status(previous_run=None)


def previous_path(folder: Path) -> Path:
    """The sibling an overwrite keeps the earlier run of ``folder`` in: ``RUN.previous``."""
    return folder.with_name(folder.name + PREVIOUS_SUFFIX)


def _set_aside(folder: Path) -> Path:
    """Keep the run in ``folder`` as ``RUN.previous``, or drop it for an older finished one kept there;
    ``folder`` is gone afterwards. Returns the backup (overwriting: docs/notes/run-folder.md)."""
    previous = previous_path(folder)
    if previous.exists() or previous.is_symlink():
        if previous.is_symlink() or not (previous / CONFIG_FILE).is_file():
            raise RepicError(
                f"--overwrite keeps the earlier run in {previous}, which exists and is not a run folder "
                f"(no {CONFIG_FILE}); move or delete it, or choose another --out"
            )
        if RunFolder(folder).read_status().get("status") != "finished":
            # An interrupted overwrite's run: the run kept aside is the last finished one, or older than this.
            _remove_run(folder)
            return previous
        _remove_run(previous)  # this finished run is newer than the one kept aside
    folder.rename(previous)
    return previous


def _remove_run(folder: Path) -> None:
    # The run.json marker goes first, so a half-deleted folder never looks like a finished run.
    (folder / RUN_FILE).unlink(missing_ok=True)
    shutil.rmtree(folder)


def checkpoint_step(checkpoint: Path) -> int:
    return int(checkpoint.name.removeprefix(CHECKPOINT_PREFIX))


def _plain(value: Any) -> Any:
    """A metric value JSON can hold: NaN and infinities (a task absent from a step) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class JsonlLog:
    """A JSONL log appended one line at a time (``repic.atomic.append_jsonl``), so a long run costs O(rows).

    ``keep_until`` (a step) keeps the rows of an earlier run up to that step: on resume, the rows a crash
    left after the checkpoint are dropped, since the resumed run logs those steps again. The kept rows are
    written back once, atomically, before the first new row; a line torn by a crash is dropped on reading.
    """

    def __init__(self, path: Path, *, keep_until: int | None = None) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        self._started = False
        if keep_until is not None and path.is_file():
            for line in log_lines(path.read_text(encoding="utf-8")):
                if line.strip():
                    row = json.loads(line)
                    if row.get("step", 0) <= keep_until:
                        self.rows.append(row)

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append({key: _plain(value) for key, value in row.items()})
        if is_main_process():
            if not self._started:  # start over from the kept rows (an earlier run's file, or nothing)
                atomic_write_jsonl(self.path, self.rows[:-1])
                self._started = True
            append_jsonl(self.path, self.rows[-1])


# ------------------------------------------------------------------------------------------ callbacks
@dataclass
class StepTimes:
    """Wall time of the optimizer steps since the last log (the trainer's phases are timed elsewhere)."""

    started: float | None = None
    seconds: list[float] = field(default_factory=list)

    def take_mean(self) -> float | None:
        mean = sum(self.seconds) / len(self.seconds) if self.seconds else None
        self.seconds.clear()
        return mean


class MetricsCallback(TrainerCallback):
    """Writes each log of the trainer to ``metrics.jsonl`` with the mean step time, and reports progress."""

    def __init__(self, log: JsonlLog, *, stage: str, progress: Progress | None = None) -> None:
        self.log = log
        self.stage = stage
        self.progress = progress
        self.times = StepTimes()
        self.started = time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self.times.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.times.started is not None:
            self.times.seconds.append(time.perf_counter() - self.times.started)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        row: dict[str, Any] = {"stage": self.stage, "step": state.global_step, "epoch": state.epoch}
        row.update(logs)
        step_seconds = self.times.take_mean()
        if step_seconds is not None:
            row["time/step"] = step_seconds
            if "time/generate_and_score" in logs:
                row["time/update"] = max(0.0, step_seconds - logs["time/generate_and_score"])
        row["wall_seconds"] = time.perf_counter() - self.started
        summary = "train_runtime" in logs  # the Trainer's end-of-training totals, not a step
        if summary:
            row["summary"] = True
        self.log.append(row)
        if self.progress is not None and not summary:
            self.progress(progress_line(row, state.max_steps))


def progress_line(row: dict[str, Any], max_steps: int) -> str:
    """One line per log for the terminal: the step and the metrics a reader watches.

    >>> progress_line({"step": 10, "reward": 0.5, "rewards/ict/mean": 0.75, "kl": 0.01}, 200)
    'step 10/200  reward 0.500  ict 0.750  kl 0.0100'
    """
    parts = [f"step {row['step']}/{max_steps}"]
    for key, label, digits in (("reward", "reward", 3), ("loss", "loss", 4)):
        if row.get(key) is not None and not (key == "loss" and "reward" in row):
            parts.append(f"{label} {row[key]:.{digits}f}")
    for key, value in row.items():
        if key.startswith("rewards/") and key.endswith("/mean") and value is not None:
            parts.append(f"{key.split('/')[1]} {value:.3f}")
    if row.get("kl") is not None:
        parts.append(f"kl {row['kl']:.4f}")
    if row.get("completions/mean_length") is not None:
        parts.append(f"len {row['completions/mean_length']:.0f}")
    if row.get("time/step") is not None:
        parts.append(f"{row['time/step']:.2f} s/step")
    return "  ".join(parts)


class StopOnRequest(TrainerCallback):
    """Saves a checkpoint and stops at the end of the step during which a stop was requested (Ctrl-C)."""

    def __init__(self, requests: StopRequests) -> None:
        self.requests = requests

    def on_step_end(self, args, state, control, **kwargs):
        if self.requests.agreed():
            control.should_save = True
            control.should_training_stop = True
            self.requests.stopped = True


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run at once; ``message`` says where, what was kept and how to resume (run.json agrees)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StopRequests:
    """The Ctrl-C state: ``requested`` after one, ``agreed`` once every rank has seen one, ``stopped`` when
    training was stopped for it."""

    def __init__(self) -> None:
        self.requested = False
        self.stopped = False

    def agreed(self) -> bool:
        """Whether to stop now; under several processes, true on every rank as soon as one rank asked."""
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self.requested
        flag = torch.tensor([1.0 if self.requested else 0.0])
        if dist.get_backend() == "nccl":
            flag = flag.cuda()
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self.requested = bool(flag.item())
        return self.requested


@contextmanager
def stop_requests(say: Progress) -> Iterator[StopRequests]:
    """Handle Ctrl-C while training: first press stops after the step with a checkpoint, second at once."""
    requests = StopRequests()
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if requests.requested:
            raise KeyboardInterrupt
        requests.requested = True
        say("stopping after this step and saving a checkpoint (Ctrl-C again to stop at once, unsaved)")

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave Ctrl-C to the caller
        previous = None
    try:
        yield requests
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


@dataclass
class HeldBack:
    """What ``interrupts_held_back`` saw: whether a Ctrl-C came during its block."""

    pending: bool = False


@contextmanager
def interrupts_held_back() -> Iterator[HeldBack]:
    """Hold a Ctrl-C back until the block is done, then let the caller act on ``pending``.

    For claiming a run folder: the earlier run is moved aside, then ``config.yaml`` and ``run.json`` are
    written; a Ctrl-C between those would leave a folder that is neither the earlier run nor a resumable one.
    """
    held = HeldBack()

    def handler(signum, frame):
        held.pending = True

    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None):  # an ignored Ctrl-C stays ignored; a handler set outside Python stays
        previous = None
    else:
        try:
            signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: nothing to hold back
            previous = None
    try:
        yield held
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


# ------------------------------------------------------------------------------------------ completions
class CompletionSampler:
    """Keeps a few completions now and then (``completions.jsonl``): one per prompt of the first few prompts.

    The reward functions hand it what they score (``record``); it keeps rows whose position is the first
    completion of one of the first ``per_step`` prompts, at steps that are multiples of ``every``.
    """

    def __init__(self, log: JsonlLog, *, every: int, per_step: int, num_generations: int) -> None:
        self.log = log
        self.every = every
        self.per_step = per_step
        self.num_generations = num_generations
        self.scored = 0  # completions this process scored, all steps together

    def count(self, rewards: Sequence[float | None]) -> None:
        self.scored += sum(reward is not None for reward in rewards)

    def wants(self, step: int) -> bool:
        return self.every > 0 and self.per_step > 0 and step % self.every == 0

    def record(
        self,
        step: int,
        task: str,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        rewards: Sequence[float | None],
        solutions: Sequence[Any],
    ) -> None:
        if not self.wants(step):
            return
        for index, reward in enumerate(rewards):
            first_of_prompt = index % self.num_generations == 0
            if reward is None or not first_of_prompt or index // self.num_generations >= self.per_step:
                continue
            self.log.append({
                "step": step,
                "task": task,
                "prompt": _last_text(prompts[index]) if index < len(prompts) else "",
                "completion": completion_text(completions[index]),
                "reward": reward,
                "solution": solutions[index],
            })


def _last_text(prompt: Any) -> str:
    """The text of a prompt's last message (the question), without image parts."""
    if isinstance(prompt, list) and prompt:
        return completion_text(prompt[-1])
    return completion_text(prompt)
