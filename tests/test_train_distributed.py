"""Data parallelism on the CPU: two processes under ``torchrun`` (gloo) train one GRPO run together.

The documented semantics: a step is ``prompts_per_step`` x ``num_generations`` completions in total, split
evenly over the processes; both processes take every step; data parallelism keeps their weights equal;
only the main process writes the shared files, and it claims the run folder before the others touch it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repic.data.tasks import BuildConfig, build
from repic.world.synthetic import generate_world
from repic.world.world_config import WorldConfig
from serving import free_port

WORLD = WorldConfig(
    n_train_concepts=4, n_heldout_concepts=2, scenes_per_train_concept=2, n_train_two=2, n_train_four=1,
    n_train_negative=2, n_eval_single=2, n_eval_two=1, n_eval_four=0, n_eval_negative=1,
)


def _open_run_as(rank: int, out: str, port: int, results) -> None:
    """Rank ``rank`` of two opening one new run folder, then making a folder in it at once, as its trainer
    does; the main process is slow to claim the folder (as when it loads a model first)."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    from repic.train import load_config
    from repic.train.run_folder import RunFolder
    from repic.train.session import open_run

    create = RunFolder.create.__func__

    def slow_create(cls, path, **kwargs):
        time.sleep(2)
        return create(cls, path, **kwargs)

    if rank == 0:
        RunFolder.create = classmethod(slow_create)
    try:
        opened = open_run(load_config("demo-tiny", [f"run.output_dir={out}", "run.device=cpu"]), resume=False,
                          overwrite=False)
        (opened.folder.path / "checkpoints").mkdir(exist_ok=True)
        results.put((rank, "claimed"))
    except Exception as exc:  # reported to the test, which names the rank
        results.put((rank, f"{type(exc).__name__}: {exc}"))


def test_the_main_process_claims_the_run_folder_before_the_others_write_in_it(tmp_path):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    port = free_port()
    ranks = [context.Process(target=_open_run_as, args=(rank, str(tmp_path / "run"), port, results)) for rank in (0, 1)]
    for process in ranks:
        process.start()
    outcome = dict(results.get(timeout=300) for _ in ranks)
    for process in ranks:
        process.join(timeout=60)
    # rank 1 used to make checkpoints/ at once, and rank 0 then refused the folder as "not empty"
    assert outcome == {0: "claimed", 1: "claimed"}
    assert (tmp_path / "run" / "checkpoints").is_dir()


@pytest.mark.slow
def test_two_processes_step_together(tmp_path):
    world = generate_world(tmp_path / "world", WORLD)
    build(world, tmp_path / "build", BuildConfig(counts={"oct": 8, "vlt": 0, "ict": 0, "ict_multi": 0}))
    out = tmp_path / "run"
    # A one-step warm-up, as the default recipe's: both processes make their way into warmup/ at once
    settings = ["grpo.num_generations=4", "grpo.prompts_per_step=2", "grpo.max_completion_length=8",
                "grpo.warmup.steps=1", "grpo.warmup.samples=2", "grpo.warmup.batch_size=2", "run.threads=1",
                "run.save_steps=1", "run.logging_steps=1", "optim.max_steps=2"]
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
    assert json.loads((out / "warmup" / "run.json").read_text())["status"] == "finished"
