"""Data parallelism on the CPU: two processes under ``torchrun`` (gloo) train one GRPO run together.

The documented semantics: a step is ``prompts_per_step`` x ``num_generations`` completions in total, split
evenly over the processes; both processes take every step; data parallelism keeps their weights equal;
only the main process writes the shared files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repic.data.tasks import BuildConfig, build
from repic.world.synthetic import generate_world
from repic.world.world_config import WorldConfig

WORLD = WorldConfig(
    n_train_concepts=4, n_heldout_concepts=2, scenes_per_train_concept=2, n_train_two=2, n_train_four=1,
    n_train_negative=2, n_eval_single=2, n_eval_two=1, n_eval_four=0, n_eval_negative=1,
)


@pytest.mark.slow
def test_two_processes_step_together(tmp_path):
    world = generate_world(tmp_path / "world", WORLD)
    build(world, tmp_path / "build", BuildConfig(counts={"oct": 8, "vlt": 0, "ict": 0, "ict_multi": 0}))
    out = tmp_path / "run"
    settings = ["grpo.num_generations=4", "grpo.prompts_per_step=2", "grpo.max_completion_length=8",
                "grpo.warmup.steps=0", "run.threads=1", "run.save_steps=1", "run.logging_steps=1", "optim.max_steps=2"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(Path(sys.executable).with_name("repic")), "train", "grpo", "--data",
               str(tmp_path / "build" / "train.jsonl"), "--out", str(out), "--quiet",
               *[arg for item in settings for arg in ("--set", item)]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]

    ranks = [json.loads((out / "ranks" / f"rank-{rank}.json").read_text()) for rank in (0, 1)]
    for rank, record in enumerate(ranks):
        assert (record["rank"], record["world_size"], record["steps"]) == (rank, 2, 2)
        # 2 prompts x 4 completions = 8 a step, 4 on each process in one pass; 2 steps -> 8 scored each
        assert (record["per_device_batch"], record["accumulation"], record["completions_scored"]) == (4, 1, 8)
    assert ranks[0]["trainable_checksum"] == ranks[1]["trainable_checksum"]  # replicas stayed in sync
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if not row.get("summary")] == [1, 2]  # written once, by rank 0
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    assert (out / "final" / "model.safetensors").is_file()
