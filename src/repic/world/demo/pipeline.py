"""The ``repic demo`` pipeline: concept world -> data -> start model -> RePIC and SFT -> evaluation -> report.

Stages, in order, each writing into its own place in the run folder ``OUT``::

    world           OUT/world/            the synthetic concept world (``repic data synth``)
    data            OUT/data/             RePIC training data, held-out evaluation sets (``repic data build``)
    start           OUT/runs/start/       the shipped tiny base after the demo-tiny recipe's SFT warm-up
    repic           OUT/runs/repic/       start + RePIC GRPO (``repic train grpo``, its own warm-up off)
    sft             OUT/runs/sft/         start + the SFT baseline on as many samples (``repic train sft``)
    eval-<model>    OUT/eval/<model>/     predictions and scores of base, start, sft and repic
    report          OUT/report/           report.md, results.json, plots, gallery.html

What it chose and why:

- **Finished stages are reused.** A stage that completes writes ``OUT/stages/<stage>.json`` with the
  settings it ran with (its *key*) and a fresh token; a later run skips a stage whose record exists and
  whose key is unchanged. A stage's key holds the tokens of the stages it reads, so redoing a stage redoes
  everything downstream of it, and a stage interrupted half-way has no record and runs again from the
  start (its folder is cleared first). The base model's key is a digest of its weights, so replacing the
  shipped base invalidates the start model. Paths inside the run folder are written into keys as
  ``$OUT/...``, so a run folder moved or copied elsewhere keeps its finished stages. The report is always
  rewritten: it describes this run.
- **The run folder is guarded**: ``OUT`` must be new, empty or an earlier demo (``OUT/demo.json``);
  ``--fresh`` clears an earlier demo and nothing else.
- **The start model is made once.** GRPO and SFT both continue from it, so they differ only in how they
  are trained (see ``repic.world.demo.settings``).
- **The claim is checked, not assumed**: ``claim_checks`` compares RePIC with the base on every task and
  with SFT on 2- and 4-concept F1, in both scorer modes; the CLI prints whether each comparison holds, and
  an OCT or VLT comparison that holds by less than twice its standard error says so (``within_noise``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ...atomic import atomic_write_json
from ...errors import RepicError
from ...progress import Progress
from ...report import ClaimCheck, Results, RewardKeys, WrittenReport, describe_machine, percent, write_report
from ...tasks import TASKS
from .evaluate import EvalSettings, evaluate_model, gallery_rows, read_model_result
from .lanes import LaneInterrupted, SecondLane
from .settings import GRPO_RECIPE, SFT_RECIPE, DemoSettings, sft_steps_for

DEMO_FILE = "demo.json"
DEMO_FORMAT = "repic-demo/1"
STAGES_DIR = "stages"
RUN_FOLDER_MARK = "$OUT"  # the run folder in a stage's key, so a moved run folder keeps its stages
MODELS = ("base", "start", "sft", "repic")  # table order: where each model comes from, then the two methods
SIDE_EVALUATIONS = ("base", "start", "sft")  # evaluated beside RePIC's GRPO (``side_stages``)
REWARD_KEYS = RewardKeys(tasks={task: f"rewards/{task}/mean" for task in TASKS})  # TRL's per-reward means


class DemoInterrupted(Exception):
    """A training stage was stopped with Ctrl-C; a re-run continues from the stages already finished."""


# ------------------------------------------------------------------------------------------ stages
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


# ------------------------------------------------------------------------------------------ the run
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

    def run(self, stage: str) -> Path:
        """The training run folder of ``start``, ``repic`` or ``sft``."""
        return self.out / "runs" / stage

    def model(self, name: str) -> Path:
        """The model folder of one of ``MODELS``."""
        from ...shipped import shipped_base_path

        return shipped_base_path() if name == "base" else self.run(name) / "final"

    def evaluation(self, model: str) -> Path:
        return self.out / "eval" / model

    @property
    def report(self) -> Path:
        return self.out / "report"


@dataclass(frozen=True)
class DemoOutcome:
    """What a demo run produced."""

    results: Results
    report: WrittenReport
    stages: dict[str, StageRecord]


def training_configs(settings: DemoSettings, paths: DemoPaths) -> dict[str, Any]:
    """The resolved ``TrainConfig`` of each training stage: ``start`` (the warm-up, an SFT run), ``repic``
    (GRPO) and ``sft``, plus ``with_warmup``, the GRPO recipe the warm-up comes from (it picks its samples)."""
    from ...train import load_config
    from ...train.grpo import warmup_stage

    common = {"run.threads": settings.threads, "run.seed": settings.seed}
    train_file, sft_file = str(paths.data / "train.jsonl"), str(paths.data / "sft.jsonl")
    with_warmup = load_config(
        GRPO_RECIPE,
        values={
            **settings.grpo_overrides,
            **settings.warmup_overrides,
            **common,
            "data.train_file": train_file,
            "grpo.warmup.train_file": sft_file,
            "run.output_dir": str(paths.run("start")),
        },
        method="grpo",
    )
    start = warmup_stage(with_warmup)
    repic = load_config(
        GRPO_RECIPE,
        values={
            **settings.grpo_overrides,
            **common,
            "model.name_or_path": str(paths.model("start")),
            "data.train_file": train_file,
            "run.output_dir": str(paths.run("repic")),
            "optim.max_steps": settings.grpo_steps,
            "grpo.warmup.steps": 0,
        },
        method="grpo",
    )
    sft = load_config(
        SFT_RECIPE,
        values={
            **settings.sft_overrides,
            **common,
            "model.name_or_path": str(paths.model("start")),
            "data.train_file": sft_file,
            "run.output_dir": str(paths.run("sft")),
        },
        method="sft",
    )
    grpo_samples = repic.grpo.prompts_per_step * settings.grpo_steps
    sft = replace(sft, optim=replace(sft.optim, max_steps=sft_steps_for(grpo_samples, sft.sft.rows_per_step)))
    return {"with_warmup": with_warmup, "start": start, "repic": repic, "sft": sft}


class _Trainer:
    """Runs one training stage with the demo's progress lines; Ctrl-C becomes ``DemoInterrupted``.

    ``warmup_of`` (the GRPO recipe's config) makes it that recipe's warm-up stage (``train_warmup``, the
    same run as ``repic train warmup``); its samples are read when the stage runs (the data stage writes
    them).
    """

    def __init__(self, name: str, config: Any, say: Progress, *, warmup_of: Any = None) -> None:
        self.name, self.config, self.say, self.warmup_of = name, config, say, warmup_of

    def __call__(self) -> None:
        from ...train import train_grpo, train_sft, train_warmup

        def progress(line: str) -> None:
            self.say(f"{self.name}: {line}")

        if self.warmup_of is not None:
            result = train_warmup(self.warmup_of, overwrite=True, progress=progress)
        elif self.config.method == "grpo":
            result = train_grpo(self.config, overwrite=True, progress=progress)
        else:
            # merged: a later stage loads the result as its base model, whatever the recipe's finetune mode
            result = train_sft(self.config, overwrite=True, merge_adapter=True, progress=progress)
        if not result.finished:
            raise DemoInterrupted(f"stage {self.name} was interrupted")


def run_demo(
    settings: DemoSettings,
    *,
    fresh: bool = False,
    progress: Progress | None = None,
    command: str = "repic demo",
) -> DemoOutcome:
    """Run (or continue) the demo in ``settings.out`` and write its report; see the module docstring."""
    import torch

    from ...data.collection import load_collection
    from ...data.tasks import build
    from ...train.config import config_to_dict
    from ..synthetic import generate_world

    clock = time.perf_counter()
    sink = progress or (lambda line: None)

    def say(line: str) -> None:
        sink(f"[{time.perf_counter() - clock:7.1f} s] {line}")

    paths = DemoPaths(settings.out.expanduser().absolute())
    open_run_folder(paths.out, fresh=fresh)
    load = describe_load()
    say(f"{settings.mode} demo in {paths.out} ({load})")
    book = StageBook(paths.out, say=say)
    configs = training_configs(settings, paths)
    # Retrieval uses the base's own pretrained tower (frozen in every later model, so the same for all).
    # VLT is asked in the box style the models were trained with (the GRPO recipe's).
    evaluation = EvalSettings(batch_size=settings.eval_batch_size, top_k=settings.top_k,
                              embedder=f"tower:{paths.model('base')}", box_style=configs["repic"].data.box_style)
    descriptions = model_descriptions(configs)
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    stages_started = time.perf_counter()
    try:
        world = book.run(
            "world",
            {"world": settings.world.to_dict()},
            paths.world,
            lambda: generate_world(paths.world, settings.world),
        )
        data = book.run(
            "data",
            {"build": settings.build.to_dict(), "world": world.token},
            paths.data,
            lambda: build(load_collection(paths.world), paths.data, settings.build),
        )
        made = {"base": file_digest(paths.model("base") / "model.safetensors")}  # what each model is
        start = configs["start"]
        made["start"] = book.run(
            "start",
            {"config": config_to_dict(start), "base": made["base"], "data": data.token},
            paths.run("start"),
            _Trainer("start", start, say, warmup_of=configs["with_warmup"]),
        ).token
        plan = StagePlan(paths, configs, evaluation, descriptions, data.token)
        if settings.lanes > 1:
            _two_lanes(book, plan, made, settings.threads, say)
        else:
            train_stage(book, plan, made, "repic", say)
            side_stages(book, plan, made, say)
        evaluate_stage(book, plan, made, "repic", say)
    finally:
        torch.set_num_threads(threads)
    # With two lanes the stages overlap: the wall clock says how long they took (a run that reused stages
    # took less than their records say, so it has none)
    overlapped = settings.lanes > 1 and not any(record.reused for record in book.records.values())
    wall_seconds = round(time.perf_counter() - stages_started, 3) if overlapped else None

    say("report: started")
    started = time.perf_counter()
    results = Results(
        models=[read_model_result(paths.evaluation(name)) for name in MODELS],
        title=f"RePIC demo ({settings.mode}): tiny Qwen2.5-VL on held-out concepts of the synthetic world",
        timings={name: record.seconds for name, record in book.records.items()},
        wall_seconds=wall_seconds,
        commands=equivalent_commands(settings, paths, configs, evaluation, command),
        configs={
            "demo": {
                **settings.describe(),
                "reused_stages": [n for n, r in book.records.items() if r.reused],
            },
            "evaluation": asdict(evaluation),
            **{
                f"{name} ({configs[name].method})": config_to_dict(configs[name])
                for name in ("start", "repic", "sft")
            },
        },
        machine=f"{describe_machine()}, {load} at the start",
    )
    results = replace(results, checks=claim_checks(results))
    written = write_report(
        paths.report,
        results,
        metrics_path=paths.run("repic") / "metrics.jsonl",
        reward_keys=REWARD_KEYS,
        gallery_rows=gallery_rows(
            {name: paths.evaluation(name) for name in MODELS}, settings.gallery_per_evaluation
        ),
    )
    say(f"report: done in {time.perf_counter() - started:.1f} s")
    return DemoOutcome(results, written, book.records)


@dataclass(frozen=True)
class StagePlan:
    """What the stages after the start model need, as plain data (the second lane gets it pickled)."""

    paths: DemoPaths
    configs: dict[str, Any]
    evaluation: EvalSettings
    descriptions: dict[str, str]
    data_token: str


def train_stage(book: StageBook, plan: StagePlan, made: dict[str, str], name: str, say: Progress) -> None:
    """Train ``repic`` or ``sft`` from the start model; its token goes into ``made``."""
    key = _train_key(plan, made, name)
    made[name] = book.run(name, key, plan.paths.run(name), _Trainer(name, plan.configs[name], say)).token


def _train_key(plan: StagePlan, made: dict[str, str], name: str) -> dict[str, Any]:
    from ...train.config import config_to_dict

    return {"config": config_to_dict(plan.configs[name]), "start": made["start"], "data": plan.data_token}


def _eval_key(plan: StagePlan, made: dict[str, str], name: str) -> dict[str, Any]:
    return {"settings": asdict(plan.evaluation), "model": made[name], "data": plan.data_token}


def evaluate_stage(book: StageBook, plan: StagePlan, made: dict[str, str], name: str, say: Progress) -> None:
    """Evaluate one of ``MODELS`` on every held-out file."""
    book.run(
        f"eval-{name}",
        _eval_key(plan, made, name),
        plan.paths.evaluation(name),
        lambda: evaluate_model(
            plan.paths.model(name),
            plan.paths.data,
            plan.paths.evaluation(name),
            label=name,
            description=plan.descriptions[name],
            settings=plan.evaluation,
            progress=lambda line: say(f"eval {line}"),
        ),
    )


def side_stages(book: StageBook, plan: StagePlan, made: dict[str, str], say: Progress | None = None) -> dict[str, str]:
    """The stages that do not wait for RePIC: the SFT baseline, then the evaluations of base, start and sft."""
    say = say or book.say
    train_stage(book, plan, made, "sft", say)
    for name in SIDE_EVALUATIONS:
        evaluate_stage(book, plan, made, name, say)
    return made


def _side_stages_reusable(book: StageBook, plan: StagePlan, made: dict[str, str]) -> bool:
    """Whether every stage of ``side_stages`` would be reused (then a second lane has nothing to do)."""
    sft = book.reusable("sft", _train_key(plan, made, "sft"))
    if sft is None:
        return False
    tokens = {**made, "sft": sft.token}
    return all(book.reusable(f"eval-{name}", _eval_key(plan, tokens, name)) for name in SIDE_EVALUATIONS)


def _two_lanes(book: StageBook, plan: StagePlan, made: dict[str, str], threads: int, say: Progress) -> None:
    """GRPO here while ``side_stages`` run in a second process (``repic.world.demo.lanes``); none is
    started when they are all finished already."""
    if _side_stages_reusable(book, plan, made):
        train_stage(book, plan, made, "repic", say)
        side_stages(book, plan, made, say)
        return
    lane = SecondLane(book.folder, side_stages, (plan, dict(made)), threads=threads, say=say).start()
    try:
        train_stage(book, plan, made, "repic", say)
    except BaseException as exc:
        lane.stop(wait=isinstance(exc, DemoInterrupted | KeyboardInterrupt))
        raise
    try:
        records, lane_made = lane.join()
    except LaneInterrupted as exc:
        raise DemoInterrupted(str(exc)) from None
    book.records.update(records)
    made.update(lane_made)


def model_descriptions(configs: dict[str, Any]) -> dict[str, str]:
    """What each compared model is, in one line each."""
    start, repic, sft = configs["start"], configs["repic"], configs["sft"]
    warmup = f"{start.optim.max_steps}-step SFT warm-up on {start.data.max_samples} samples of all four tasks"
    rollouts = f"{repic.grpo.prompts_per_step} prompts x {repic.grpo.num_generations} completions"
    return {
        "base": "the shipped tiny base (pretrained on generic tasks), no post-training",
        "start": f"base + {warmup} (the {GRPO_RECIPE} recipe's warm-up); SFT and RePIC both start here",
        "sft": f"start + SFT baseline: {sft.optim.max_steps} steps x {sft.sft.rows_per_step} reference captions "
        "of the training concepts",
        "repic": f"start + RePIC GRPO: {repic.optim.max_steps} steps x {rollouts}, verifiable rewards",
    }


SCENE_COUNTS = (
    "scenes_per_train_concept", "n_train_two", "n_train_four", "n_train_negative", "n_eval_single", "n_eval_two",
    "n_eval_four", "n_eval_negative",
)  # fmt: skip


def equivalent_commands(
    settings: DemoSettings, paths: DemoPaths, configs: dict[str, Any], evaluation: EvalSettings, command: str
) -> list[str]:
    """The command that ran, then the ``repic`` commands that make each stage's output on their own."""
    world, build_config = settings.world, settings.build
    scenes = ",".join(f"{name}={getattr(world, name)}" for name in SCENE_COUNTS)
    counts = ",".join(f"{task}={n}" for task, n in build_config.counts.items())
    eval_counts = ",".join(f"{task}={n}" for task, n in build_config.eval_counts.items())

    def sets(values: dict[str, Any]) -> str:
        return " ".join(f"--set {key}={value}" for key, value in values.items())

    repic, sft = configs["repic"], configs["sft"]
    common = {"run.threads": settings.threads, "run.seed": settings.seed}
    start, eval_dir = paths.model("start"), paths.data / "eval"
    return [
        command,
        f"repic data synth --out {paths.world} --seed {world.seed} --train-concepts {world.n_train_concepts} "
        f"--heldout-concepts {world.n_heldout_concepts} --scenes {scenes}",
        f"repic data build --concepts {paths.world} --out {paths.data} --seed {build_config.seed} "
        f"--counts {counts} --eval-counts {eval_counts}",
        f"repic train warmup --recipe {GRPO_RECIPE} --data {paths.data / 'train.jsonl'} --out {paths.run('start')} "
        + sets({**settings.grpo_overrides, **settings.warmup_overrides, **common,
                "grpo.warmup.train_file": paths.data / "sft.jsonl"}),
        f"repic train grpo --recipe {GRPO_RECIPE} --model {start} --data {paths.data / 'train.jsonl'} "
        f"--out {paths.run('repic')} --max-steps {repic.optim.max_steps} "
        + sets({**settings.grpo_overrides, **common, "grpo.warmup.steps": 0}),
        f"repic train sft --recipe {SFT_RECIPE} --model {start} --data {paths.data / 'sft.jsonl'} "
        f"--out {paths.run('sft')} --max-steps {sft.optim.max_steps} "
        + sets({**settings.sft_overrides, **common}),
        f"repic caption MODEL --eval {eval_dir}/FILE.jsonl --mode skip|retrieve --top-k {settings.top_k} "
        f"--embedder {evaluation.embedder} --max-new-tokens {evaluation.max_new_tokens} "
        f"--box-style {evaluation.box_style} --out DIR"
        "   # per model and evaluation file",
        f"repic eval {paths.out / 'eval'}/MODEL/EVALUATION.jsonl --database {eval_dir / 'database.json'}",
    ]


# ------------------------------------------------------------------------------------------ the claim
def claim_checks(results: Results) -> list[ClaimCheck]:
    """RePIC against the base on every task, and against SFT on 2- and 4-concept F1 (both scorer modes)."""
    models = {model.label: model for model in results.models}
    repic, base, sft = models["repic"], models["base"], models["sft"]
    checks = []

    def f1s(model: Any, key: str) -> tuple[float, float]:
        result = model.captions[key]
        return result.official.f1, result.strict.f1

    def add(statement: str, mine: tuple[float, ...], theirs: tuple[float, ...], counts: tuple[int, int] | None = None
            ) -> None:
        shown = " / ".join
        holds = all(a > b for a, b in zip(mine, theirs, strict=True))
        checks.append(
            ClaimCheck(
                statement,
                shown(percent(v) for v in mine),
                shown(percent(v) for v in theirs),
                holds,
                within_noise(mine[0], theirs[0], counts) if holds and counts else "",
            )
        )

    for key in repic.captions:
        add(f"RePIC > base, {key} F1 (official / strict)", f1s(repic, key), f1s(base, key))
    add(
        "RePIC > base, OCT accuracy",
        (repic.recognition.accuracy or 0.0,),
        (base.recognition.accuracy or 0.0,),
        (repic.recognition.total, base.recognition.total),
    )
    add(
        "RePIC > base, VLT accuracy (IoU >= 0.5)",
        (repic.localization.accuracy or 0.0,),
        (base.localization.accuracy or 0.0,),
        (repic.localization.total, base.localization.total),
    )
    for key in ("two", "four"):
        add(f"RePIC > SFT, {key} F1 (official / strict)", f1s(repic, key), f1s(sft, key))
    return checks


def within_noise(mine: float, theirs: float, counts: tuple[int, int]) -> str:
    """A note when the gap between two accuracies is under twice its standard error (``""`` otherwise).

    The error is the unpaired one of two proportions, ``sqrt(p1 (1 - p1) / n1 + p2 (1 - p2) / n2)``. Both
    models answer the same questions, which makes the true error of the gap smaller, so this errs towards
    calling a gap noise: 76.0 vs 75.5 % on 200 answers each (one answer) is, 85 vs 75 % is not.

    >>> within_noise(0.76, 0.755, (200, 200))
    'within noise: a gap of 0.5 points, under twice its standard error (8.6 points; 200 and 200 answers)'
    >>> within_noise(0.85, 0.75, (200, 200))
    ''
    """
    mine_n, theirs_n = counts
    if min(mine_n, theirs_n) < 1:
        return ""
    error = math.sqrt(mine * (1 - mine) / mine_n + theirs * (1 - theirs) / theirs_n)
    gap = mine - theirs
    if gap >= 2 * error:
        return ""
    return (f"within noise: a gap of {100 * gap:.1f} points, under twice its standard error "
            f"({200 * error:.1f} points; {mine_n} and {theirs_n} answers)")


def describe_load() -> str:
    """The load average, written next to the timings (on a shared machine it explains slow stages)."""
    try:
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        load = "unknown"
    return f"load average {load}"
