"""The demo's run folder: its layout, its stage records, and the names of its stages.

``DemoPaths`` says where each stage writes (``repic.world.demo.pipeline`` lists them). ``StageBook`` runs a
stage unless a record of it with the same key exists: a stage that completes writes
``OUT/stages/<stage>.json`` with the settings it ran with (its *key*) and a fresh token; a stage's key holds
the tokens of the stages it reads, so redoing a stage redoes everything downstream of it, and a stage
interrupted half-way has no record and runs again from the start (its folder is cleared first). Paths inside
the run folder are written into keys as ``$OUT/...``, so a run folder moved or copied elsewhere keeps its
finished stages. ``open_run_folder`` guards the folder: new, empty or an earlier demo.

A model trained once per training seed has a stage per seed, named ``<kind>-s<seed>`` (``run_name``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ...atomic import atomic_write_json
from ...errors import RepicError
from ...progress import Progress
from .claims import FAITHFUL, ONCE, SEEDED
from .settings import DemoSettings

DEMO_FILE = "demo.json"
DEMO_FORMAT = "repic-demo/1"
STAGES_DIR = "stages"
RUN_FOLDER_MARK = "$OUT"  # the run folder in a stage's key, so a moved run folder keeps its stages


class DemoInterrupted(Exception):
    """A training stage was stopped with Ctrl-C; a re-run continues from the stages already finished."""


@dataclass(frozen=True)
class StageRecord:
    """A finished stage: its key, the token that identifies this making of it, and how long it took."""

    name: str
    key: dict[str, Any]
    token: str
    seconds: float
    reused: bool


class StageBook:
    """Runs the stages of one run folder, skipping those finished earlier with the same key."""

    def __init__(self, folder: Path, *, say: Progress) -> None:
        self.folder = folder
        self.say = say
        self.records: dict[str, StageRecord] = {}

    def _record_path(self, name: str) -> Path:
        return self.folder / STAGES_DIR / f"{name}.json"

    def _portable(self, key: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``key`` as it reads back from a record, with the run folder written as ``$OUT``; and as it is."""
        text = json.dumps(key, sort_keys=True, default=str)
        folder = json.dumps(str(self.folder))[1:-1]  # as JSON escapes it inside a string
        portable = re.sub(re.escape(folder) + r'(?=/|")', lambda _: RUN_FOLDER_MARK, text)
        return json.loads(portable), json.loads(text)

    def _write_record(self, record: StageRecord, finished: str) -> None:
        atomic_write_json(
            self._record_path(record.name),
            {"stage": record.name, "key": record.key, "token": record.token, "seconds": record.seconds,
             "finished": finished},
        )

    def _finished(
        self, name: str, key: dict[str, Any], absolute: dict[str, Any], *, rewrite: bool = True
    ) -> StageRecord | None:
        path = self._record_path(name)
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None  # absent, or damaged by hand: the stage runs again
        if saved.get("key") not in (key, absolute) or not isinstance(saved.get("token"), str):
            return None
        record = StageRecord(name, key, saved["token"], float(saved.get("seconds", 0.0)), reused=True)
        if saved["key"] != key and rewrite:  # a record from before keys were portable: kept in the new form
            self._write_record(record, str(saved.get("finished", "")))
        return record

    def reusable(self, name: str, key: dict[str, Any]) -> StageRecord | None:
        """The record ``run`` would reuse for the stage ``name`` and this ``key``, if any (it runs nothing)."""
        return self._finished(name, *self._portable(key), rewrite=False)

    def run(self, name: str, key: dict[str, Any], output: Path, action: Callable[[], None]) -> StageRecord:
        """Run ``action`` (which writes ``output``) unless a record with this ``key`` exists."""
        key, absolute = self._portable(key)
        record = self._finished(name, key, absolute)
        if record is not None:
            self.say(f"{name}: reused (made earlier in {record.seconds:.1f} s)")
        else:
            self._record_path(name).unlink(missing_ok=True)  # first: a cleared stage never looks finished
            if output.exists():
                shutil.rmtree(output)
            self.say(f"{name}: started")
            started = time.perf_counter()
            action()
            seconds = round(
                time.perf_counter() - started, 3
            )  # as the record keeps it, so reruns report the same
            record = StageRecord(name, key, uuid.uuid4().hex, seconds, reused=False)
            self._write_record(record, datetime.now().astimezone().isoformat(timespec="seconds"))
            self.say(f"{name}: done in {record.seconds:.1f} s")
        self.records[name] = record
        return record


def open_run_folder(out: Path, *, fresh: bool) -> None:
    """Make ``out`` ready: new, empty or an earlier demo (cleared when ``fresh``); anything else is refused."""
    if out.exists() and not out.is_dir():
        raise RepicError(f"{out} is a file; --out takes a folder for the demo run")
    is_demo = (out / DEMO_FILE).is_file()
    if out.is_dir() and any(out.iterdir()) and not is_demo:
        raise RepicError(
            f"{out} is not empty and holds no earlier demo ({DEMO_FILE}); choose a new or empty folder with --out"
        )
    if fresh and is_demo:
        (out / DEMO_FILE).unlink()  # first: a half-cleared folder is not taken for a demo
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    atomic_write_json(out / DEMO_FILE, {"format": DEMO_FORMAT})


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (the identity of a model's weights)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class DemoPaths:
    """Where each stage writes (layout in the module docstring)."""

    out: Path

    @property
    def world(self) -> Path:
        return self.out / "world"

    @property
    def data(self) -> Path:
        return self.out / "data"

    @property
    def faithful_data(self) -> Path:
        return self.out / "data-faithful"

    def run(self, stage: str) -> Path:
        """The training run folder of ``start`` or a seeded run (``repic-s0``)."""
        return self.out / "runs" / stage

    def model(self, name: str) -> Path:
        """The model folder of ``base``, ``start`` or a seeded run (``repic-s0``)."""
        from ...shipped import shipped_base_path

        return shipped_base_path() if name == "base" else self.run(name) / "final"

    def evaluation(self, model: str) -> Path:
        return self.out / "eval" / model

    @property
    def report(self) -> Path:
        return self.out / "report"


def run_name(kind: str, seed: int) -> str:
    """The stage and folder name of a model trained once per seed: ``repic-s1``."""
    return f"{kind}-s{seed}"


def kind_of(name: str) -> str:
    """The model a stage name makes: ``repic-s1`` -> ``repic``; ``base`` and ``start`` are their own.

    >>> kind_of("repic-s12"), kind_of("base")
    ('repic', 'base')
    """
    return name if name in ONCE else name.rsplit("-s", 1)[0]


def seeded_kinds(settings: DemoSettings) -> tuple[str, ...]:
    """The models trained once per training seed, in table order."""
    return SEEDED + (FAITHFUL,) if settings.faithful else SEEDED


def model_labels(settings: DemoSettings) -> tuple[str, ...]:
    """Every compared model, in table order."""
    return ONCE + seeded_kinds(settings)
