"""The run folder: creation rules, complete checkpoints, logs kept on resume, sampled completions, Ctrl-C."""

from __future__ import annotations

import doctest
import json
import os
import signal
from types import SimpleNamespace

import pytest
from transformers import TrainerControl

from repic.errors import RepicError
from repic.train import run_folder as run_folder_module
from repic.train.run_folder import (
    CompletionSampler,
    JsonlLog,
    MetricsCallback,
    RunFolder,
    StopOnRequest,
    StopRequests,
    stop_requests,
)


def test_doctests():
    assert doctest.testmod(run_folder_module).failed == 0


def test_a_non_empty_folder_is_refused_unless_overwritten(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("method: grpo\n")
    (run / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    with pytest.raises(RepicError, match=f"resume it with --resume {run}, choose another --out, or pass --overwrite"):
        RunFolder.create(run)
    created = RunFolder.create(run, overwrite=True)
    assert created.path == run and created.previous == tmp_path / "run.previous"
    assert list(run.iterdir()) == []  # nothing of the old run (checkpoints, warm-up) can leak into the new one
    assert (tmp_path / "run.previous" / "checkpoints" / "checkpoint-5").is_dir()  # kept until the new run finishes


def earlier_run(folder, status):
    folder.mkdir()
    (folder / "config.yaml").write_text("method: grpo\n")
    (folder / "run.json").write_text(json.dumps({"status": status}))
    return folder


def test_a_second_overwrite_keeps_the_last_finished_run(tmp_path):
    run, kept = tmp_path / "run", tmp_path / "run.previous"
    earlier_run(kept, "finished")
    earlier_run(run, "interrupted")  # an overwrite of the finished run, interrupted
    assert RunFolder.create(run, overwrite=True).previous == kept
    assert json.loads((kept / "run.json").read_text())["status"] == "finished" and list(run.iterdir()) == []

    run.rmdir()
    earlier_run(run, "finished")  # a finished overwrite whose backup was not deleted yet: it is the newer run
    (run / "mine.txt").write_text("newer")
    RunFolder.create(run, overwrite=True)
    assert (kept / "mine.txt").read_text() == "newer"


def test_the_earlier_run_is_deleted_only_when_recorded_as_this_runs_backup(tmp_path):
    run, kept = tmp_path / "run", tmp_path / "run.previous"
    earlier_run(kept, "finished")
    folder = RunFolder.create(run)  # not an overwrite: a run.previous there is not this run's to delete
    folder.drop_previous_run()
    assert kept.is_dir()
    folder.write_status(previous_run=str(kept))
    assert folder.previous_run() == kept
    folder.drop_previous_run()
    assert not kept.exists() and folder.read_status()["previous_run"] is None


def test_overwrite_refuses_a_previous_that_is_not_a_run(tmp_path):
    run = earlier_run(tmp_path / "run", "finished")
    (tmp_path / "run.previous").mkdir()
    (tmp_path / "run.previous" / "notes.txt").write_text("mine")
    with pytest.raises(RepicError, match="keeps the earlier run in .*run.previous, which exists and is not a run folder"):
        RunFolder.create(run, overwrite=True)
    assert (tmp_path / "run.previous" / "notes.txt").read_text() == "mine" and (run / "config.yaml").is_file()


def test_overwrite_only_replaces_run_folders(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RepicError, match="holds no earlier run .config.yaml.; --overwrite only replaces run folders"):
        RunFolder.create(tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_only_run_folders_can_be_resumed(tmp_path):
    with pytest.raises(RepicError, match="is not a repic run folder .no config.yaml."):
        RunFolder.existing(tmp_path)


def test_latest_checkpoint_skips_one_cut_short(tmp_path):
    folder = RunFolder.create(tmp_path / "run")
    for step, complete in ((5, True), (10, True), (15, False)):  # 15: a crash before its trainer state
        checkpoint = folder.checkpoints_dir / f"checkpoint-{step}"
        checkpoint.mkdir(parents=True)
        if complete:
            (checkpoint / "trainer_state.json").write_text("{}")
    (folder.checkpoints_dir / "checkpoint-x").mkdir()  # not a step: ignored
    assert [path.name for path in folder.checkpoints()] == ["checkpoint-5", "checkpoint-10"]
    assert folder.latest_checkpoint().name == "checkpoint-10"
    # a full disk cut checkpoint-15's save: it is what goes to make room for run.json
    assert [path.name for path in folder.drop_incomplete_checkpoints()] == ["checkpoint-15"]
    assert sorted(path.name for path in folder.checkpoints_dir.iterdir()) == ["checkpoint-10", "checkpoint-5",
                                                                             "checkpoint-x"]


def test_status_is_merged(tmp_path):
    folder = RunFolder.create(tmp_path / "run")
    folder.write_status(status="running", method="grpo")
    folder.write_status(status="finished", step=3)
    assert folder.read_status() == {"status": "finished", "method": "grpo", "step": 3}


def test_log_keeps_rows_up_to_the_resumed_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = JsonlLog(path)
    for step in (1, 2, 3, 4):
        log.append({"step": step, "reward": float("nan") if step == 2 else step / 10})
    assert json.loads(path.read_text().splitlines()[1]) == {"step": 2, "reward": None}  # NaN is not JSON
    resumed = JsonlLog(path, keep_until=2)  # rows 3 and 4 came after the checkpoint: the run logs them again
    assert [row["step"] for row in resumed.rows] == [1, 2]
    resumed.append({"step": 3, "reward": 0.5})
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3]


def test_metrics_callback_adds_step_and_update_times(tmp_path):
    log = JsonlLog(tmp_path / "metrics.jsonl")
    lines = []
    callback = MetricsCallback(log, stage="grpo", progress=lines.append)
    state = SimpleNamespace(global_step=1, epoch=0.5, max_steps=2, is_world_process_zero=True)
    callback.times.seconds = [3.0, 5.0]  # two steps since the last log: mean 4 s
    callback.on_log(None, state, None, logs={"reward": 0.25, "time/generate_and_score": 2.5})
    row = log.rows[0]
    assert (row["stage"], row["step"], row["time/step"], row["time/update"]) == ("grpo", 1, 4.0, 1.5)
    assert lines == ["step 1/2  reward 0.250  4.00 s/step"]
    callback.on_log(None, state, None, logs={"train_runtime": 9.0})  # the end-of-training totals
    assert log.rows[1]["summary"] is True and len(lines) == 1


def test_sampler_keeps_the_first_completion_of_the_first_prompts(tmp_path):
    log = JsonlLog(tmp_path / "completions.jsonl")
    sampler = CompletionSampler(log, every=10, per_step=2, num_generations=3)
    prompts = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"q{i // 3}"}]}]
               for i in range(9)]
    completions = [[{"role": "assistant", "content": f"c{i}"}] for i in range(9)]
    rewards = [1.0, 0.0, 0.0, None, None, None, 0.5, 0.0, 0.0]  # prompt 1 belongs to another task
    sampler.record(20, "ict", prompts, completions, rewards, ["<bo>"] * 9)
    sampler.record(25, "ict", prompts, completions, rewards, ["<bo>"] * 9)  # not a sampling step
    # completions 0 and 3 are the first of prompts 0 and 1; 3 is another task's (None), 6 is prompt 2's
    assert [(row["step"], row["prompt"], row["completion"], row["reward"]) for row in log.rows] == [
        (20, "q0", "c0", 1.0)
    ]


def test_stop_on_request_saves_and_stops():
    requests = StopRequests()
    callback, control = StopOnRequest(requests), TrainerControl()
    callback.on_step_end(None, None, control)
    assert not (control.should_save or control.should_training_stop)
    requests.requested = True
    callback.on_step_end(None, None, control)
    assert control.should_save and control.should_training_stop and requests.stopped


def test_first_ctrl_c_asks_to_stop_the_second_stops_at_once():
    said = []
    previous = signal.getsignal(signal.SIGINT)
    with stop_requests(said.append) as requests:
        os.kill(os.getpid(), signal.SIGINT)
        assert requests.requested and "stopping after this step" in said[0]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is previous  # the caller's handler is back


def test_log_appends_without_rewriting_and_drops_a_torn_tail(tmp_path, monkeypatch):
    from repic.train import run_folder

    path = tmp_path / "metrics.jsonl"
    log = JsonlLog(path)
    log.append({"step": 1})
    rewrites = []
    monkeypatch.setattr(run_folder, "atomic_write_jsonl", lambda *args: rewrites.append(args))
    for step in range(2, 50):
        log.append({"step": step})
    assert rewrites == []  # appended, not rewritten: a row costs the same at step 2 and at step 50 000
    with path.open("a") as handle:
        handle.write('{"step": 50, "rew')  # a crash in the middle of a write
    resumed = JsonlLog(path, keep_until=100)
    assert [row["step"] for row in resumed.rows] == list(range(1, 50))
    from repic.report.plots import RewardKeys, read_reward_series

    curves = read_reward_series(path, RewardKeys(step="step", total="step", tasks={}))  # the report reads it too
    assert len(next(iter(curves.values()))) == 49
