"""The ``repic demo`` pipeline: concept world -> data -> start model -> RePIC and SFT -> evaluation -> report.

Stages, in order, each writing into its own place in the run folder ``OUT``::

    world           OUT/world/            the synthetic concept world (``repic data synth``)
    data            OUT/data/             RePIC training data, held-out evaluation sets (``repic data build``)
    data-faithful   OUT/data-faithful/    the same, plus captions showing absent references (``--faithful``)
    start           OUT/runs/start/       the shipped tiny base after the demo-tiny recipe's SFT warm-up
    repic-s<S>      OUT/runs/repic-s<S>/  start + RePIC GRPO with training seed S (its own warm-up off)
    sft-s<S>        OUT/runs/sft-s<S>/    start + the SFT baseline on as many samples, seed S
    faithful-s<S>   OUT/runs/faithful-s<S>/  start + RePIC GRPO with faithful naming, seed S (``--faithful``)
    eval-<model>    OUT/eval/<model>/     predictions and scores of base, start and each seeded run
    report          OUT/report/           report.md, results.json, plots, gallery.html

What it chose and why:

- **Finished stages are reused** (``repic.world.demo.stages``: a stage with a record of the same key is
  skipped, and redoing a stage redoes what reads it). The base model's key is a digest of its weights, so
  replacing the shipped base invalidates the start model. The report is always rewritten: it describes
  this run.
- **The run folder is guarded**: ``OUT`` must be new, empty or an earlier demo (``OUT/demo.json``);
  ``--fresh`` clears an earlier demo and nothing else.
- **The start model is made once.** GRPO and SFT both continue from it, so they differ only in how they
  are trained (see ``repic.world.demo.settings``).
- **Work is shared between two lanes by its cost** (``share_lanes``): each trained model with its
  evaluation is one unit; units finished earlier are read back first, then the costliest of the rest go
  first, each to the lane with less work so far (adding ``--faithful`` or a seed to a finished run trains
  only what is new, on both cores).
- **The claim is checked, not assumed**, over the training seeds: ``repic.world.demo.claims`` compares
  RePIC with the base on every task and with SFT on 2- and 4-concept F1, in both scorer modes, and the
  faithful-naming row with RePIC on absent names; each check's verdict is
  ``repic.evaluate.intervals.claim_verdict``'s (holds / within noise / does not hold).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from ...evaluate.models import EvalSettings, evaluate_model, gallery_rows
from ...progress import Progress
from ...report import Results, RewardKeys, WrittenReport, describe_machine, write_report
from ...report.compare import collect
from ...tasks import TASKS
from .claims import FAITHFUL, ONCE, REPIC, SEEDED, SFT, claim_checks, seed_summaries
from .commands import equivalent_commands
from .lanes import LaneInterrupted, SecondLane
from .settings import FAITHFUL_ABSENT_REFERENCES, GRPO_RECIPE, SFT_RECIPE, DemoSettings, sft_steps_for
from .stages import (
    DemoInterrupted,
    DemoPaths,
    StageBook,
    StageRecord,
    file_digest,
    kind_of,
    model_labels,
    open_run_folder,
    run_name,
    seeded_kinds,
)

MODELS = (*ONCE, *SEEDED)  # table order: where each model comes from, then the two methods
REWARD_KEYS = RewardKeys(tasks={task: f"rewards/{task}/mean" for task in TASKS})  # TRL's per-reward means


@dataclass(frozen=True)
class DemoOutcome:
    """What a demo run produced."""

    results: Results
    report: WrittenReport
    stages: dict[str, StageRecord]


def training_configs(settings: DemoSettings, paths: DemoPaths) -> dict[str, Any]:
    """The resolved ``TrainConfig`` of each training stage: ``start`` (the warm-up, an SFT run), then one per
    seeded run (``repic-s0``, ``sft-s0``, ``faithful-s0``...), plus ``with_warmup``, the GRPO recipe the
    warm-up comes from (it picks its samples)."""
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
    configs: dict[str, Any] = {"with_warmup": with_warmup, "start": warmup_stage(with_warmup)}
    for seed in settings.seeds:
        seeded = {"run.threads": settings.threads, "run.seed": seed, "model.name_or_path": str(paths.model("start"))}
        grpo = {**settings.grpo_overrides, **seeded, "optim.max_steps": settings.grpo_steps, "grpo.warmup.steps": 0}
        repic = load_config(
            GRPO_RECIPE,
            values={**grpo, "data.train_file": train_file, "run.output_dir": str(paths.run(run_name(REPIC, seed)))},
            method="grpo",
        )
        configs[run_name(REPIC, seed)] = repic
        if settings.faithful:
            configs[run_name(FAITHFUL, seed)] = load_config(
                GRPO_RECIPE,
                values={
                    **grpo,
                    **settings.faithful_overrides,
                    "data.train_file": str(paths.faithful_data / "train.jsonl"),
                    "run.output_dir": str(paths.run(run_name(FAITHFUL, seed))),
                },
                method="grpo",
            )
        sft = load_config(
            SFT_RECIPE,
            values={
                **settings.sft_overrides,
                **seeded,
                "data.train_file": sft_file,
                "run.output_dir": str(paths.run(run_name(SFT, seed))),
            },
            method="sft",
        )
        grpo_samples = repic.grpo.prompts_per_step * settings.grpo_steps
        steps = sft_steps_for(grpo_samples, sft.sft.rows_per_step)
        configs[run_name(SFT, seed)] = replace(sft, optim=replace(sft.optim, max_steps=steps))
    return configs


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

    from ...concepts.database import load_database
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
    seeds = ", ".join(map(str, settings.seeds))
    say(f"{settings.mode} demo in {paths.out}, training seed{'s' if len(settings.seeds) > 1 else ''} {seeds} ({load})")
    book = StageBook(paths.out, say=say)
    configs = training_configs(settings, paths)
    # Retrieval uses the base's own pretrained tower (frozen in every later model, so the same for all).
    # VLT is asked in the box style the models were trained with (the GRPO recipe's).
    evaluation = EvalSettings(batch_size=settings.eval_batch_size, top_k=settings.top_k,
                              embedder=f"tower:{paths.model('base')}",
                              box_style=configs[run_name(REPIC, settings.seeds[0])].data.box_style)
    descriptions = model_descriptions(configs, settings)
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
        tokens = {"data": data.token}
        if settings.faithful:
            faithful_build = replace(settings.build, ict_absent_references=FAITHFUL_ABSENT_REFERENCES)
            tokens["data-faithful"] = book.run(
                "data-faithful",
                {"build": faithful_build.to_dict(), "world": world.token},
                paths.faithful_data,
                lambda: build(load_collection(paths.world), paths.faithful_data, faithful_build),
            ).token
        made = {"base": file_digest(paths.model("base") / "model.safetensors")}  # what each model is
        start = configs["start"]
        made["start"] = book.run(
            "start",
            {"config": config_to_dict(start), "base": made["base"], "data": data.token},
            paths.run("start"),
            _Trainer("start", start, say, warmup_of=configs["with_warmup"]),
        ).token
        plan = StagePlan(paths, configs, evaluation, descriptions, tokens)
        units = work_units(settings)
        if settings.lanes > 1:
            # finished units are only read back; the rest is shared by its cost
            finished = [unit for unit in units if _units_reusable(book, plan, made, [unit])]
            run_units(book, plan, made, finished, say)
            pending = [unit for unit in units if unit not in finished]
            _two_lanes(book, plan, made, share_lanes(settings, pending), settings.threads, say)
        else:
            run_units(book, plan, made, units, say)
    finally:
        torch.set_num_threads(threads)
    # With two lanes the stages overlap: the wall clock says how long they took (a run that reused stages
    # took less than their records say, so it has none)
    overlapped = settings.lanes > 1 and not any(record.reused for record in book.records.values())
    wall_seconds = round(time.perf_counter() - stages_started, 3) if overlapped else None

    say("report: started")
    started = time.perf_counter()
    database = load_database(paths.data / "eval" / "database.json")
    runs = {label: [paths.evaluation(name) for name in evaluated_runs(settings, label)] for label in model_labels(settings)}
    collected = collect(runs, database)  # what `repic report` reads, read the same way
    per_label, outcomes = collected.results, collected.outcomes
    results = Results(
        models=[per_label[label][0] for label in model_labels(settings)],
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
                for name in ("start", *(run_name(kind, settings.seeds[0]) for kind in seeded_kinds(settings)))
            },
        },
        machine=f"{describe_machine()}, {load} at the start",
        seeds=settings.seeds,
        per_seed={label: per_label[label] for label in seeded_kinds(settings)},
        summaries=seed_summaries(outcomes),
    )
    results = replace(results, checks=claim_checks(outcomes))
    first = {label: runs[label][0] for label in model_labels(settings)}
    written = write_report(
        paths.report,
        results,
        metrics_path=paths.run(run_name(REPIC, settings.seeds[0])) / "metrics.jsonl",
        reward_keys=REWARD_KEYS,
        gallery_rows=gallery_rows(first, settings.gallery_per_evaluation),
    )
    say(f"report: done in {time.perf_counter() - started:.1f} s")
    return DemoOutcome(results, written, book.records)


def evaluated_runs(settings: DemoSettings, label: str) -> list[str]:
    """The evaluation folders (names under ``OUT/eval``) of one model: one per seed for a seeded model."""
    if label in ONCE:
        return [label]
    return [run_name(label, seed) for seed in settings.seeds]


@dataclass(frozen=True)
class StagePlan:
    """What the stages after the start model need, as plain data (the second lane gets it pickled).

    ``data_tokens``: the token of each data stage (``data``; ``data-faithful`` with the faithful row)."""

    paths: DemoPaths
    configs: dict[str, Any]
    evaluation: EvalSettings
    descriptions: dict[str, str]
    data_tokens: dict[str, str]

    def data_token_of(self, name: str) -> str:
        """The token of the data a model was trained on (the held-out files are the same for every model)."""
        if kind_of(name) == FAITHFUL:  # trained on the faithful build, started from a model of the paper's
            return f"{self.data_tokens['data']}+{self.data_tokens['data-faithful']}"
        return self.data_tokens["data"]


# A unit of work: the name of a model (``base``, ``repic-s1``...); a trained one is trained, then evaluated.
def work_units(settings: DemoSettings) -> list[str]:
    """Every model to make and evaluate after the start model, GRPO runs first (they take longest)."""
    grpo = [run_name(kind, seed) for seed in settings.seeds for kind in seeded_kinds(settings) if kind != SFT]
    return grpo + [run_name(SFT, seed) for seed in settings.seeds] + list(ONCE)


def unit_cost(settings: DemoSettings, name: str) -> float:
    """A rough cost of a unit in seconds on one thread, to share units between lanes (measured on the full
    demo: a GRPO step about 1.1 s, the SFT baseline about 55 s, an evaluation about 20 s)."""
    if name in ONCE:
        return 20.0
    if name.startswith(f"{SFT}-"):
        return 75.0
    return 1.1 * settings.grpo_steps + 20.0


def share_lanes(settings: DemoSettings, units: list[str]) -> tuple[list[str], list[str]]:
    """The units of the first lane (this process) and the second: each unit, costliest first, goes to the
    lane with less work so far, so the two end at about the same time.

    >>> from pathlib import Path
    >>> settings = DemoSettings(Path("x"), False, None, None, 400, seeds=(0, 1, 2))
    >>> share_lanes(settings, work_units(settings))
    (['repic-s0', 'repic-s2'], ['repic-s1', 'sft-s0', 'sft-s1', 'sft-s2', 'base', 'start'])
    """
    lanes: tuple[list[str], list[str]] = ([], [])
    loads = [0.0, 0.0]
    for name in sorted(units, key=lambda unit: -unit_cost(settings, unit)):  # stable: ties keep their order
        lane = 0 if loads[0] <= loads[1] else 1
        lanes[lane].append(name)
        loads[lane] += unit_cost(settings, name)
    return lanes


def train_stage(book: StageBook, plan: StagePlan, made: dict[str, str], name: str, say: Progress) -> None:
    """Train a seeded run (``repic-s0``...) from the start model; its token goes into ``made``."""
    key = _train_key(plan, made, name)
    made[name] = book.run(name, key, plan.paths.run(name), _Trainer(name, plan.configs[name], say)).token


def _train_key(plan: StagePlan, made: dict[str, str], name: str) -> dict[str, Any]:
    from ...train.config import config_to_dict

    return {"config": config_to_dict(plan.configs[name]), "start": made["start"], "data": plan.data_token_of(name)}


def _eval_key(plan: StagePlan, made: dict[str, str], name: str) -> dict[str, Any]:
    return {"settings": asdict(plan.evaluation), "model": made[name], "data": plan.data_tokens["data"]}


def evaluate_stage(book: StageBook, plan: StagePlan, made: dict[str, str], name: str, say: Progress) -> None:
    """Evaluate one model (``base``, ``start`` or a seeded run) on every held-out file."""
    book.run(
        f"eval-{name}",
        _eval_key(plan, made, name),
        plan.paths.evaluation(name),
        lambda: evaluate_model(
            plan.paths.model(name),
            plan.paths.data,
            plan.paths.evaluation(name),
            label=kind_of(name),
            description=plan.descriptions[kind_of(name)],
            settings=plan.evaluation,
            progress=lambda line: say(f"eval {line}"),
        ),
    )


def run_units(
    book: StageBook, plan: StagePlan, made: dict[str, str], units: list[str], say: Progress | None = None
) -> dict[str, str]:
    """Make (train) and evaluate each unit in turn; the tokens of what was made come back."""
    say = say or book.say
    for name in units:
        if name not in ONCE:
            train_stage(book, plan, made, name, say)
        evaluate_stage(book, plan, made, name, say)
    return made


def _units_reusable(book: StageBook, plan: StagePlan, made: dict[str, str], units: list[str]) -> bool:
    """Whether every stage of ``units`` would be reused (then they are only read back)."""
    tokens = dict(made)
    for name in units:
        if name not in ONCE:
            trained = book.reusable(name, _train_key(plan, tokens, name))
            if trained is None:
                return False
            tokens[name] = trained.token
        if book.reusable(f"eval-{name}", _eval_key(plan, tokens, name)) is None:
            return False
    return True


def _two_lanes(
    book: StageBook, plan: StagePlan, made: dict[str, str], lanes: tuple[list[str], list[str]], threads: int,
    say: Progress,
) -> None:
    """The units shared between this process and a second one (``repic.world.demo.lanes``); the units are
    those still to make (``run_demo`` reads finished ones back first), so none is started without work."""
    mine, theirs = lanes
    if not theirs:
        run_units(book, plan, made, mine, say)
        return
    lane = SecondLane(book.folder, run_units, (plan, dict(made), theirs), threads=threads, say=say).start()
    try:
        run_units(book, plan, made, mine, say)
    except BaseException as exc:
        lane.stop(wait=isinstance(exc, DemoInterrupted | KeyboardInterrupt))
        raise
    try:
        records, lane_made = lane.join()
    except LaneInterrupted as exc:
        raise DemoInterrupted(str(exc)) from None
    book.records.update(records)
    made.update(lane_made)


def model_descriptions(configs: dict[str, Any], settings: DemoSettings) -> dict[str, str]:
    """What each compared model is, in one line each."""
    first = settings.seeds[0]
    start, repic, sft = configs["start"], configs[run_name(REPIC, first)], configs[run_name(SFT, first)]
    warmup = f"{start.optim.max_steps}-step SFT warm-up on {start.data.max_samples} samples of all four tasks"
    rollouts = f"{repic.grpo.prompts_per_step} prompts x {repic.grpo.num_generations} completions"
    seeds = f"trained once per seed ({', '.join(map(str, settings.seeds))})" if len(settings.seeds) > 1 else (
        f"training seed {first}")
    descriptions = {
        "base": "the shipped tiny base (pretrained on generic tasks), no post-training",
        "start": f"base + {warmup} (the {GRPO_RECIPE} recipe's warm-up); SFT and RePIC both start here",
        SFT: f"start + SFT baseline: {sft.optim.max_steps} steps x {sft.sft.rows_per_step} reference captions "
        f"of the training concepts; {seeds}",
        REPIC: f"start + RePIC GRPO: {repic.optim.max_steps} steps x {rollouts}, verifiable rewards "
        f"(the paper's); {seeds}",
    }
    if settings.faithful:
        cost = settings.faithful_cost
        descriptions[FAITHFUL] = (
            f"start + RePIC GRPO as above with faithful naming: an absent shown concept named costs {cost:g} of a "
            f"present one, and {FAITHFUL_ABSENT_REFERENCES:.0%} of the single-concept captions also show an absent "
            f"lookalike; {seeds}"
        )
    return descriptions



def describe_load() -> str:
    """The load average, written next to the timings (on a shared machine it explains slow stages)."""
    try:
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        load = "unknown"
    return f"load average {load}"
