"""``DemoSettings``: every size, count and seed of ``repic demo``, for the full run and the quick one.

The demo is a fixed recipe with knobs a user may turn (``--steps``, ``--world-size``, ``--out``, ``--seeds``,
``--faithful``, and ``--set key=value`` over the GRPO recipe, to try a recipe over seeds) and
two sizes: *full* (the default: the default concept world with larger evaluation sets, the ``demo-tiny``
GRPO recipe, about 7-8 minutes of stages on a quiet 2-core CPU) and *quick* (a world of 12 concepts and a few steps of
everything, for tests and a first look, 15-20 s). What it chose and why:

- **The recipes stay the source of the training settings.** The demo trains with the shipped recipes
  ``demo-tiny`` (GRPO) and ``sft-demo-tiny`` (SFT) and only overrides what a demo must decide itself: the
  paths, the step counts, one CPU thread and, in quick mode, smaller rollouts. The overrides are dotted
  config keys, so the report can show them and ``repic train --set`` takes the same.
- **The warm-up runs once, as its own stage.** ``demo-tiny`` asks for a short SFT warm-up before GRPO (the
  tiny base never writes a name otherwise, so every GRPO group scores 0 and nothing is learned). The demo
  runs it once to make the *start* model; GRPO (its own warm-up off) and the SFT baseline both continue from
  that start, so the comparison between them is fair.
- **400 GRPO steps** in the full demo, twice the recipe's ``optim.max_steps``: the rewards were still
  climbing at 200 (numbers at ``FULL_STEPS``). They take most of the run: 411 of the 445 s of stages
  measured on a quiet 2-core machine with two lanes (2026-12-07).
- **SFT sees as many samples as GRPO saw prompts** (steps x prompts per step), rounded up to whole steps.
- **``--world-size`` is the number of concepts**: a quarter of them (at least 4, the four-concept
  evaluation needs 4) are held out; scene counts that are totals scale with the number of concepts, those
  per concept stay. The full demo's world has 64 concepts (48 training, 16 held out).
- **Larger held-out evaluation sets than the default world's** (96 / 64 / 32 scenes with 1 / 2 / 4
  concepts instead of 48 / 24 / 12): answering is cheap (a few seconds per model) and with 12 four-concept
  scenes one caption moves F1 by several points. Scenes are drawn per (seed, split, kind, index), so the
  training scenes are exactly the default world's, the ones the shipped base was pretrained on.
- **One torch thread**: the tiny model's matrices are small, and on a busy 2-core machine a second thread
  made training steps many times slower (measured for the ``demo-tiny`` recipe).
- **Training seeds are an axis** (``--seeds 0,1,2``): the world, the data, the base and the start model
  are made once (``seed``); RePIC's GRPO and the SFT baseline are trained once per training seed, each
  run a stage of its own, and the report gives every seed's numbers with their mean, spread and interval.
  GRPO's sampling takes another path under another seed, as it does on another CPU, and the gaps the
  paper's claims rest on are often smaller than that spread. The default trains once, with ``seed``.
- **Faithful naming, beside the paper** (``--faithful``): one more GRPO run per seed, trained with the
  ``absent_name_cost`` reward (naming a shown concept that is absent costs what a present name earns) on the
  same data plus single-concept captions that show an absent lookalike's reference
  (``ict_absent_references``, built into ``OUT/data-faithful``). The paper's row stays as it defines it.
- **Two lanes where there are two cores.** With one thread per stage, a second core would idle through
  GRPO, so the trained models and their evaluations are shared between this process and a second one by
  their cost (``repic.world.demo.lanes``, ``pipeline.share_lanes``); ``--lanes 1`` runs every stage in
  turn. Results do not depend on it: every stage is seeded and keeps its own record.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ...data.tasks import BuildConfig
from ...errors import RepicError
from ..world_config import WorldConfig

GRPO_RECIPE = "demo-tiny"
SFT_RECIPE = "sft-demo-tiny"
DEFAULT_OUT = Path("repic-demo")
MIN_WORLD_SIZE = 8  # 4 held-out concepts (the four-concept evaluation) and 4 to train on
MIN_HELDOUT = 4
MAX_LANES = 2  # GRPO, and beside it everything that does not wait for it
# The faithful-naming row (``--faithful``): what its GRPO run and its data change against the paper's.
# What naming an absent shown concept costs the faithful row, against 1 per present name. Omni-Persona charges
# 0.5, but then naming a shown concept pays as soon as it is present with probability 1 / 3 (naming both of
# two references earns 1 - c, choosing one right with probability p earns p - c (1 - p)), and the demo's model
# kept naming both in two of three seeds; at 1 a name pays when its concept is more likely present than not.
# Measured over training seeds 0-2 (docs/notes/seeds-and-faithful-naming.md): absent named in 1-concept
# retrieval captions 43.1 % at 0.5, 19.4 % at 0.75, 11.8 % at 1.0 (RePIC 64.2 %).
FAITHFUL_COST = 1.0
FAITHFUL_ABSENT_REFERENCES = 0.5  # share of single-concept captions that also show an absent lookalike

# GRPO steps of the full demo: twice the recipe's 200, because the rewards were still climbing there.
# Measured on the default world, one thread: with the first shipped base, held-out single-concept F1 0.69
# after 200 steps and 0.91 after 400; with the re-pretrained base, the ICT-multi training reward was 0.28
# around step 200 and 0.55 around step 400. With the base that sees objects, 600 steps instead of 400 gave
# held-out F1 99.5 / 78.1 / 40.0 (1 / 2 / 4 concepts) against 96.8 / 77.5 / 29.3: not worth 50 % more time.
FULL_STEPS = 400
# The full world: the default world with larger held-out evaluation sets (see the module docstring).
FULL_WORLD = WorldConfig(n_eval_single=96, n_eval_two=64, n_eval_four=32)
# The quick world: every kind of scene exists, a handful of each.
QUICK_WORLD = WorldConfig(
    n_train_concepts=8,
    n_heldout_concepts=4,
    scenes_per_train_concept=2,
    n_train_two=4,
    n_train_four=2,
    n_train_negative=2,
    n_eval_single=4,
    n_eval_two=4,
    n_eval_four=2,
    n_eval_negative=2,
)
QUICK_BUILD = BuildConfig(
    counts={"oct": 8, "vlt": 8, "ict": 8, "ict_multi": 8}, eval_counts={"oct": 8, "vlt": 4}
)
# Scene counts of a world that are totals (scaled with --world-size); scenes_per_train_concept is per concept.
_SCENE_TOTALS = (
    "n_train_two",
    "n_train_four",
    "n_train_negative",
    "n_eval_single",
    "n_eval_two",
    "n_eval_four",
    "n_eval_negative",
)


@dataclass(frozen=True)
class DemoSettings:
    """What one demo run does; build one with ``demo_settings``.

    ``grpo_overrides`` / ``sft_overrides`` / ``warmup_overrides`` are dotted keys over the shipped recipes
    (``grpo.num_generations``...); the pipeline adds the paths and step counts.
    """

    out: Path
    quick: bool
    world: WorldConfig
    build: BuildConfig
    grpo_steps: int
    seed: int = 0
    threads: int = 1
    grpo_overrides: dict[str, Any] = field(default_factory=dict)
    sft_overrides: dict[str, Any] = field(default_factory=dict)
    warmup_overrides: dict[str, Any] = field(default_factory=dict)
    eval_batch_size: int = 16
    top_k: int = 2  # retrieved concepts per query, the paper's K
    gallery_per_evaluation: int = 4  # gallery rows per caption evaluation
    lanes: int = 1  # 2: the models to make and evaluate are shared with a second process by their cost
    seeds: tuple[int, ...] = (0,)  # training seeds of GRPO and SFT (the world, data and start use ``seed``)
    faithful: bool = False  # also train RePIC + faithful naming, once per seed
    faithful_cost: float = FAITHFUL_COST  # the faithful row's ``rewards.absent_name_cost``

    @property
    def faithful_overrides(self) -> dict[str, Any]:
        """What the faithful row's GRPO recipe sets beyond the paper's row."""
        return {"rewards.absent_name_cost": self.faithful_cost}

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"

    def describe(self) -> dict[str, Any]:
        """The settings as plain values, for the report and the stage records."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**values, "out": str(self.out), "world": self.world.to_dict(), "build": self.build.to_dict()}


def scaled_world(concepts: int, base: WorldConfig) -> WorldConfig:
    """``base`` resized to ``concepts`` concepts: a quarter held out (at least 4), scene totals scaled.

    >>> world = scaled_world(128, FULL_WORLD)
    >>> world.n_train_concepts, world.n_heldout_concepts, world.n_eval_two, world.scenes_per_train_concept
    (96, 32, 128, 6)
    """
    if isinstance(concepts, bool) or not isinstance(concepts, int) or concepts < MIN_WORLD_SIZE:
        raise RepicError(
            f"--world-size is the number of concepts and must be at least {MIN_WORLD_SIZE} (4 held out for the "
            f"four-concept evaluation, 4 to train on), got {concepts!r}"
        )
    heldout = max(MIN_HELDOUT, round(concepts / 4))
    scale = concepts / (base.n_train_concepts + base.n_heldout_concepts)
    totals = {
        name: max(1, round(getattr(base, name) * scale)) if getattr(base, name) else 0
        for name in _SCENE_TOTALS
    }
    return replace(base, n_train_concepts=concepts - heldout, n_heldout_concepts=heldout, **totals)


def demo_settings(
    *,
    quick: bool = False,
    steps: int | None = None,
    world_size: int | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    lanes: int | None = None,
    seeds: tuple[int, ...] | None = None,
    faithful: bool = False,
    recipe_overrides: dict[str, Any] | None = None,
    faithful_cost: float = FAITHFUL_COST,
) -> DemoSettings:
    """The settings of a full (default) or quick demo, with the user's steps, world size and folder.

    ``lanes``: 1 runs the stages one after the other, 2 shares the trained models and their evaluations
    between two processes; default 2 where this process may use 2 or more cores. ``seeds``:
    the training seeds (default: ``seed`` alone). ``recipe_overrides``: dotted keys over the GRPO recipe
    (``repic demo --set``), for RePIC, its warm-up and the faithful row alike."""
    seeds = check_seeds((seed,), "--seed") if seeds is None else check_seeds(seeds)
    extra = dict(recipe_overrides or {})
    from ...train import load_config

    # a bad key or value is refused now, before the run folder is touched
    load_config(GRPO_RECIPE, values={**extra, "rewards.absent_name_cost": faithful_cost}, method="grpo")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise RepicError(f"--steps is the number of GRPO steps and must be at least 1, got {steps!r}")
    if lanes is None:
        lanes = min(MAX_LANES, usable_cores())
    elif isinstance(lanes, bool) or lanes not in range(1, MAX_LANES + 1):
        raise RepicError(f"--lanes is 1 (stages in turn) or 2 (SFT and evaluations beside GRPO), got {lanes!r}")
    base_world = QUICK_WORLD if quick else FULL_WORLD
    world = scaled_world(world_size, base_world) if world_size is not None else base_world
    world = replace(world, seed=seed)
    folder = Path(out) if out is not None else DEFAULT_OUT
    if quick:
        return DemoSettings(
            out=folder,
            quick=True,
            world=world,
            build=replace(QUICK_BUILD, seed=seed),
            grpo_steps=steps or 3,
            seed=seed,
            # 2 prompts x 4 completions of 16 tokens: the full recipe's loop at a fraction of its cost.
            grpo_overrides={
                "grpo.num_generations": 4,
                "grpo.prompts_per_step": 2,
                "grpo.max_completion_length": 16,
                "run.logging_steps": 1,
                **extra,
            },
            sft_overrides={"sft.rows_per_step": 4, "run.logging_steps": 1},
            warmup_overrides={"grpo.warmup.steps": 4, "grpo.warmup.samples": 16, "grpo.warmup.batch_size": 4},
            eval_batch_size=16,
            gallery_per_evaluation=2,
            lanes=lanes,
            seeds=seeds,
            faithful=faithful,
            faithful_cost=faithful_cost,
        )
    return DemoSettings(
        out=folder,
        quick=False,
        world=world,
        build=BuildConfig(seed=seed),
        grpo_steps=steps or FULL_STEPS,
        seed=seed,
        lanes=lanes,
        seeds=seeds,
        faithful=faithful,
        faithful_cost=faithful_cost,
        grpo_overrides=extra,
    )


def check_seeds(seeds: tuple[int, ...], option: str = "--seeds") -> tuple[int, ...]:
    """``seeds`` as a tuple of distinct whole numbers >= 0, or a clear error naming ``option``.

    >>> check_seeds((0, 1, 2))
    (0, 1, 2)
    """
    seeds = tuple(seeds)
    if not seeds:
        raise RepicError("--seeds needs at least one training seed, e.g. --seeds 0,1,2")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise RepicError(f"{option} takes whole numbers from 0 to 2^32 - 1, got {seed!r}")
    if len(set(seeds)) != len(seeds):
        raise RepicError(f"--seeds lists a seed twice ({', '.join(map(str, seeds))}); give each once")
    return seeds


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def sft_steps_for(grpo_samples: int, rows_per_step: int) -> int:
    """SFT steps that show at least as many samples as GRPO saw prompts.

    >>> sft_steps_for(800, 16), sft_steps_for(6, 4)
    (50, 2)
    """
    return max(1, math.ceil(grpo_samples / rows_per_step))
