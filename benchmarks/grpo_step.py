"""GRPO step speed of repic's trainer on the CPU: steps/s, completions/s and peak memory.

Runs ``repic.train.train_grpo`` with the demo recipe on the shipped tiny base, over a small synthetic world
built in a temporary folder, with completions forced to their full length (``min_new_tokens``) so every
step does the same work. The first steps are dropped as warm-up; the rest are timed from ``metrics.jsonl``
(``time/step`` = the whole optimizer step, ``time/generation`` = the rollouts). Two shapes by default:

- ``8x64``: one prompt, 8 completions of 64 tokens (the "a step in well under a second" target);
- ``demo``: the demo recipe's step, 4 prompts x 8 completions of 48 tokens (200 of them make the demo).

``--vision-cache 0 256`` measures each shape without and with the frozen tower's feature cache
(``model.vision_cache``), the runs interleaved over ``--rounds`` rounds so the machine's load hits both alike;
the last line then gives, per shape, the median step time of each setting and their ratio.

Usage: python benchmarks/grpo_step.py [--steps 12] [--warmup 2] [--threads 1] [--shape 8x64 demo]
       [--vision-cache 64] [--rounds 1]
Prints one JSON line per shape, setting and round.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
from pathlib import Path

from repic.data.tasks import BuildConfig, build
from repic.train import load_config, train_grpo
from repic.world.synthetic import generate_world
from repic.world.world_config import WorldConfig

SHAPES = {
    "8x64": {"grpo.prompts_per_step": 1, "grpo.max_completion_length": 64},
    "demo": {"grpo.prompts_per_step": 4, "grpo.max_completion_length": 48},
}
WORLD = WorldConfig(n_train_concepts=8, n_heldout_concepts=2, scenes_per_train_concept=3, n_train_two=6,
                    n_train_four=2, n_train_negative=2, n_eval_single=2, n_eval_two=1, n_eval_four=0,
                    n_eval_negative=1)


def peak_rss_gib() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_shape(name: str, data: Path, out: Path, args: argparse.Namespace, vision_cache: int) -> dict:
    values = {
        "model.vision_cache": vision_cache,
        **SHAPES[name],
        "data.train_file": str(data / "train.jsonl"),
        "run.output_dir": str(out / name),
        "run.threads": args.threads,
        "run.logging_steps": 1,
        "run.save_steps": 10**6,  # no checkpoint inside the timed steps
        "run.sample_every": 0,
        "optim.max_steps": args.steps,
        "grpo.warmup.steps": 0,
        "heldout.build": None,
    }
    length = values["grpo.max_completion_length"]
    config = load_config("demo-tiny", [f"grpo.rollout.generation_kwargs={{min_new_tokens: {length}}}"],
                         values=values)
    result = train_grpo(config, overwrite=True)
    rows = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    timed = [row for row in rows if not row.get("summary") and row["step"] > args.warmup]
    step = statistics.median(row["time/step"] for row in timed)
    completions = config.grpo.prompts_per_step * config.grpo.num_generations
    return {
        "shape": name,
        "vision_cache": vision_cache,
        "completions_per_step": completions,
        "completion_tokens": length,
        "mean_completion_length": statistics.mean(row["completions/mean_length"] for row in timed),
        "timed_steps": len(timed),
        "seconds_per_step": round(step, 3),
        "steps_per_s": round(1 / step, 2),
        "completions_per_s": round(completions / step, 1),
        "generation_seconds": round(statistics.median(row["time/generation"] for row in timed), 3),
        "update_seconds": round(statistics.median(row["time/update"] for row in timed), 3),
        "peak_rss_gib": round(peak_rss_gib(), 2),
        "threads": args.threads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the timing")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shape", nargs="+", choices=sorted(SHAPES), default=["8x64", "demo"])
    parser.add_argument("--vision-cache", nargs="+", type=int, default=[64],
                        help="model.vision_cache values to compare (0: off)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repetitions of every run")
    args = parser.parse_args()
    if args.steps <= args.warmup:
        sys.exit("--steps must be larger than --warmup")
    if args.rounds < 1:
        sys.exit("--rounds must be at least 1")
    with tempfile.TemporaryDirectory(prefix="repic-bench-") as scratch:
        root = Path(scratch)
        world = generate_world(root / "world", WORLD)
        build(world, root / "data", BuildConfig(counts={"oct": 24, "vlt": 16, "ict": 20, "ict_multi": 20}))
        seconds: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for name in args.shape:
                for cache in args.vision_cache:
                    result = run_shape(name, root / "data", root / "runs", args, cache)
                    seconds.setdefault((name, cache), []).append(result["seconds_per_step"])
                    print(json.dumps(result), flush=True)
        if len(args.vision_cache) > 1:
            first = args.vision_cache[0]
            summary = {}
            for name in args.shape:
                medians = {cache: statistics.median(seconds[name, cache]) for cache in args.vision_cache}
                summary[name] = {
                    "median_seconds_per_step": {str(c): round(m, 3) for c, m in medians.items()},
                    f"ratio_to_vision_cache_{first}": {str(c): round(m / medians[first], 3) for c, m in medians.items()},
                }
            print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    main()
