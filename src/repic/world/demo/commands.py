"""The ``repic`` commands that remake each stage of a demo run on their own, as its report lists them."""

from __future__ import annotations

from typing import Any

from ...evaluate.models import EvalSettings
from .claims import FAITHFUL, SFT
from .settings import FAITHFUL_ABSENT_REFERENCES, GRPO_RECIPE, SFT_RECIPE, DemoSettings
from .stages import DemoPaths, run_name, seeded_kinds

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

    common = {"run.threads": settings.threads, "run.seed": settings.seed}
    start, eval_dir = paths.model("start"), paths.data / "eval"
    data_build = (f"--counts {counts} --eval-counts {eval_counts}")
    commands = [
        command,
        f"repic data synth --out {paths.world} --seed {world.seed} --train-concepts {world.n_train_concepts} "
        f"--heldout-concepts {world.n_heldout_concepts} --scenes {scenes}",
        f"repic data build --concepts {paths.world} --out {paths.data} --seed {build_config.seed} {data_build}",
    ]
    if settings.faithful:
        commands.append(
            f"repic data build --concepts {paths.world} --out {paths.faithful_data} --seed {build_config.seed} "
            f"{data_build} --ict-absent-references {FAITHFUL_ABSENT_REFERENCES}"
        )
    commands.append(
        f"repic train warmup --recipe {GRPO_RECIPE} --data {paths.data / 'train.jsonl'} --out {paths.run('start')} "
        + sets({**settings.grpo_overrides, **settings.warmup_overrides, **common,
                "grpo.warmup.train_file": paths.data / "sft.jsonl"})
    )
    for seed in settings.seeds:
        seeded = {"run.threads": settings.threads, "run.seed": seed}
        for kind in seeded_kinds(settings):
            name = run_name(kind, seed)
            config = configs[name]
            if kind == SFT:
                commands.append(
                    f"repic train sft --recipe {SFT_RECIPE} --model {start} --data {paths.data / 'sft.jsonl'} "
                    f"--out {paths.run(name)} --max-steps {config.optim.max_steps} "
                    + sets({**settings.sft_overrides, **seeded})
                )
                continue
            data = (paths.faithful_data if kind == FAITHFUL else paths.data) / "train.jsonl"
            extra = settings.faithful_overrides if kind == FAITHFUL else {}
            commands.append(
                f"repic train grpo --recipe {GRPO_RECIPE} --model {start} --data {data} "
                f"--out {paths.run(name)} --max-steps {config.optim.max_steps} "
                + sets({**settings.grpo_overrides, **seeded, "grpo.warmup.steps": 0, **extra})
            )
    return commands + [
        f"repic caption MODEL --eval {eval_dir}/FILE.jsonl --mode given|retrieve --top-k {settings.top_k} "
        f"--embedder {evaluation.embedder} --max-new-tokens {evaluation.max_new_tokens} "
        f"--box-style {evaluation.box_style} --out DIR"
        "   # per model and evaluation file",
        f"repic eval {paths.out / 'eval'}/MODEL/EVALUATION.jsonl --database {eval_dir / 'database.json'}",
    ]
