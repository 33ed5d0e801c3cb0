"""End-to-end training runs on the shipped tiny base and a small world: GRPO (full and LoRA), resume,
Ctrl-C, SFT, the guard rails through ``train_grpo``, the held-out measure and the CLI.

Runs are tiny (a few samples, 2-3 steps, 4 completions of 12 tokens, one thread) so the file stays fast;
the GRPO run is shared by the tests that inspect it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file

from repic.data.samples import load_samples, write_samples
from repic.data.tasks import BuildConfig, build
from repic.errors import RepicError
from repic.evaluate import engine as engine_module
from repic.inference import Generated
from repic.models import load_policy
from repic.records import Sample
from repic.shipped import shipped_base_path
from repic.tasks import TASKS
from repic.train import failures, load_config, train_grpo, train_sft
from repic.train.heldout import heldout_rewards, heldout_samples
from repic.train.run_folder import RunFolder, StopRequests
from repic.world.synthetic import generate_world
from repic.world.world_config import WorldConfig

SMALL_WORLD = WorldConfig(
    n_train_concepts=4, n_heldout_concepts=2, scenes_per_train_concept=2, n_train_two=2, n_train_four=1,
    n_train_negative=2, n_eval_single=2, n_eval_two=1, n_eval_four=0, n_eval_negative=1,
)
FAST = [
    "grpo.num_generations=4", "grpo.prompts_per_step=2", "grpo.max_completion_length=12", "grpo.warmup.steps=0",
    "run.threads=1", "run.logging_steps=1", "run.save_steps=1", "run.sample_every=1", "heldout.per_task=2",
    "heldout.max_new_tokens=8", "data.max_samples=12",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    world = generate_world(root / "world", SMALL_WORLD)
    build(world, root / "build", BuildConfig(counts={"oct": 4, "vlt": 4, "ict": 4, "ict_multi": 4},
                                             eval_counts={"oct": 4, "vlt": 2}))
    return root / "build"


def grpo_config(data, out, *extra):
    return load_config("demo-tiny", [*FAST, f"data.train_file={data / 'train.jsonl'}", f"run.output_dir={out}",
                                     f"heldout.build={data}", *extra])


@pytest.fixture(scope="module")
def grpo_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "grpo"
    # OCT prompts: the base answers yes or no about half the time each, so groups differ in reward and the
    # policy gets a gradient (a group whose completions all score the same teaches nothing)
    return train_grpo(grpo_config(data, out, "optim.max_steps=2", "data.tasks=[oct]"))


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


# ------------------------------------------------------------------------------------------ GRPO
def test_grpo_run_finishes_and_writes_the_run_folder(grpo_run):
    assert grpo_run.finished and grpo_run.steps == 2
    folder = grpo_run.run_dir
    assert json.loads((folder / "run.json").read_text())["status"] == "finished"
    assert sorted(path.name for path in (folder / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert load_config(folder / "config.yaml").optim.max_steps == 2  # the resolved config is saved
    assert (folder / "final" / "repic_run.json").is_file()
    assert load_policy(grpo_run.final_dir).info.architecture == "Qwen2_5_VLForConditionalGeneration"
    assert not list(folder.glob(".final*"))  # no staging folder left behind


def test_metrics_log_each_tasks_reward_kl_length_and_learning_rate(grpo_run):
    rows = [json.loads(line) for line in grpo_run.metrics_path.read_text().splitlines()]
    steps = [row for row in rows if not row.get("summary")]
    assert [row["step"] for row in steps] == [1, 2]
    for row in steps:
        for key in ("reward", "kl", "completions/mean_length", "learning_rate", "time/generation", "time/rewards",
                    "time/generate_and_score", "time/step", "time/update"):
            assert row[key] is not None, key
        # the rollouts and the rewards are two parts of generating and scoring, itself a part of the step
        assert row["time/generation"] + row["time/rewards"] <= row["time/generate_and_score"] <= row["time/step"]
        assert {f"rewards/{task}/mean" for task in TASKS} <= set(row)  # null when a step had no such prompt
        assert row["rewards/oct/mean"] is not None and row["rewards/ict/mean"] is None
    assert steps[0]["learning_rate"] == pytest.approx(1e-4)  # the demo's constant rate


def test_grpo_changes_the_language_model_and_not_the_frozen_vision_tower(grpo_run):
    before, after = weights(shipped_base_path()), weights(grpo_run.final_dir)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert any(name.startswith("model.layers.") for name in changed)  # checkpoint names: model.*, visual.*
    assert not any(name.startswith("visual.") for name in changed) and any(n.startswith("visual.") for n in before)
    assert grpo_run.trainable["parts"]["vision"]["trainable"] == 0


def test_the_vision_cache_saves_most_encodings_and_changes_no_weight(grpo_run, data, tmp_path):
    rows = [json.loads(line) for line in grpo_run.metrics_path.read_text().splitlines()]
    # each image is shown 4 times (4 completions) in 3 passes: 12 lookups, of which the policy (rollout and
    # loss) and the reference model (its own copy in full fine-tuning) encode one each
    assert all(row["vision_cache/hit_rate"] == pytest.approx(10 / 12) for row in rows if not row.get("summary"))
    without = train_grpo(grpo_config(data, tmp_path / "plain", "optim.max_steps=2", "data.tasks=[oct]",
                                     "model.vision_cache=0"))
    plain_rows = [json.loads(line) for line in without.metrics_path.read_text().splitlines()]
    assert not any("vision_cache/hit_rate" in row for row in plain_rows)
    cached, plain = weights(grpo_run.final_dir), weights(without.final_dir)
    assert cached.keys() == plain.keys() and all(torch.equal(cached[n], plain[n]) for n in cached)


def test_sampled_completions_and_heldout_rewards_are_recorded(grpo_run):
    completions = [json.loads(line) for line in (grpo_run.run_dir / "completions.jsonl").read_text().splitlines()]
    assert completions and {"step", "task", "prompt", "completion", "reward", "solution"} <= set(completions[0])
    heldout = json.loads((grpo_run.run_dir / "heldout.json").read_text())
    assert set(heldout["before"]) == set(heldout["after"]) == set(TASKS)
    assert grpo_run.heldout_after == heldout["after"]


def test_resume_continues_at_the_step_after_the_checkpoint(grpo_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(grpo_run.run_dir, run)
    shutil.rmtree(run / "checkpoints" / "checkpoint-2")  # as if the run died during step 2's save
    (run / "checkpoints" / "checkpoint-2").mkdir()  # ... leaving an incomplete folder
    shutil.rmtree(run / "final")
    config = load_config(run / "config.yaml", ["optim.max_steps=3"], values={"run.output_dir": str(run)})
    result = train_grpo(config, resume=True)
    assert result.finished and result.steps == 3
    state = json.loads((run / "checkpoints" / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if not row.get("summary")] == [1, 2, 3]  # step 2 logged once, again
    status = json.loads((run / "run.json").read_text())
    assert status["resumed_from"].endswith("checkpoint-1") and status["status"] == "finished"
    assert "before" in json.loads((run / "heldout.json").read_text())  # kept from the first run


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(data, tmp_path, monkeypatch):
    monkeypatch.setattr(StopRequests, "agreed", lambda self: True)  # as if Ctrl-C came during step 1
    lines = []
    result = train_grpo(grpo_config(data, tmp_path / "run", "optim.max_steps=3", "heldout.build=null"),
                        progress=lines.append)
    assert not result.finished and result.steps == 1 and result.final_dir is None
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-1" / "trainer_state.json").is_file()
    status = json.loads((tmp_path / "run" / "run.json").read_text())
    assert status["status"] == "interrupted" and status["resume"] == f"repic train grpo --resume {tmp_path / 'run'}"
    assert any("interrupted at step 1: saved a checkpoint" in line for line in lines)


def files_of(folder):
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_an_interrupted_overwrite_keeps_the_earlier_run_and_a_finished_one_removes_it(grpo_run, data, tmp_path,
                                                                                     monkeypatch):
    run, kept = tmp_path / "run", tmp_path / "run.previous"
    shutil.copytree(grpo_run.run_dir, run)
    earlier = files_of(run)

    def second_ctrl_c(self):  # as if Ctrl-C came twice during step 1: the run stops at once, unsaved
        raise KeyboardInterrupt

    monkeypatch.setattr(StopRequests, "agreed", second_ctrl_c)
    lines = []
    with pytest.raises(KeyboardInterrupt):
        train_grpo(grpo_config(data, run, "optim.max_steps=3", "heldout.build=null"), overwrite=True,
                   progress=lines.append)
    assert files_of(kept) == earlier  # the finished run, byte for byte
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "interrupted" and status["previous_run"] == str(kept)
    assert any(f"the earlier run this one replaces is kept in {kept}" in line for line in lines)

    monkeypatch.undo()  # a second overwrite: the interrupted run goes, the finished one kept aside stays ...
    result = train_grpo(grpo_config(data, run, "optim.max_steps=1", "heldout.build=null"), overwrite=True)
    assert result.finished and result.steps == 1 and result.previous_run is None
    assert not kept.exists()  # ... until the new run has finished
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "finished" and status["previous_run"] is None
    checkpoints = sorted(path.name for path in (run / "checkpoints").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-1"]  # nothing of the old run (its checkpoint-2) is left in the new one


def test_lora_trains_only_the_adapter(data, tmp_path):
    result = train_grpo(grpo_config(data, tmp_path / "run", "optim.max_steps=1", "model.finetune=lora",
                                    "model.lora.r=4", "model.lora.alpha=8", "heldout.build=null"))
    parts = result.trainable["parts"]
    assert parts["vision"]["trainable"] == parts["lm_head"]["trainable"] == 0
    assert 0 < parts["language"]["trainable"] < parts["language"]["total"]
    adapter = json.loads((result.final_dir / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and not any("visual" in name for name in adapter["target_modules"])


# ------------------------------------------------------------------------------------------ guards
def write_file(tmp_path, samples, name="train.jsonl"):
    return write_samples(tmp_path / name, samples)


def test_guards_stop_a_run_before_any_compute(data, tmp_path, monkeypatch):
    config = grpo_config(data, tmp_path / "a", "grpo.max_prompt_length=20", "optim.max_steps=1")
    with pytest.raises(RepicError, match="longer than max_prompt_length=20"):
        train_grpo(config)
    monkeypatch.setenv("WORLD_SIZE", "3")  # 2 prompts x 4 completions = 8 do not split over 3 processes
    with pytest.raises(RepicError, match="= 8 cannot be split evenly over 3 processes"):
        train_grpo(grpo_config(data, tmp_path / "b"))


def test_placeholder_mismatch_in_the_data_is_refused(data, tmp_path):
    sample = load_samples(data / "train.jsonl")[0]
    bad = Sample(sample.task, sample.images, "<|image_pad|> " + sample.problem, sample.solution)
    path = write_file(tmp_path, [sample, bad])
    n = len(sample.images)
    with pytest.raises(RepicError, match=f"sample 2 of .*: {n} image.s. but {n + 1} image placeholder"):
        train_grpo(grpo_config(data, tmp_path / "run", f"data.train_file={path}"))


def test_a_data_file_without_its_image_root_is_refused(data, tmp_path):
    shutil.copy(data / "train.jsonl", tmp_path / "train.jsonl")  # no build.json beside it: root unknown
    with pytest.raises(RepicError, match="not found under the image root .* pass the folder these paths are"):
        train_grpo(grpo_config(data, tmp_path / "run", f"data.train_file={tmp_path / 'train.jsonl'}"))


def test_an_unknown_task_in_the_data_is_refused(data, tmp_path):
    row = json.loads((data / "train.jsonl").read_text().splitlines()[0])
    row["accu_reward_method"] = "caption"
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
    config = grpo_config(data, tmp_path / "run", f"data.train_file={tmp_path / 'train.jsonl'}",
                         f"data.image_root={data.parent / 'world'}")
    with pytest.raises(RepicError, match="unknown task 'caption' in .*train.jsonl row 1"):
        train_grpo(config)


# ------------------------------------------------------------------------------------------ SFT
@pytest.fixture(scope="module")
def sft_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "sft"
    config = load_config("sft-demo-tiny", [f"data.train_file={data / 'sft.jsonl'}", f"run.output_dir={out}",
                                           "optim.max_steps=2", "sft.rows_per_step=4", "run.threads=1",
                                           "run.logging_steps=1"])
    return train_sft(config)


def test_sft_run_finishes_and_trains_the_language_model_only(sft_run):
    assert sft_run.finished and sft_run.steps == 2
    rows = [json.loads(line) for line in sft_run.metrics_path.read_text().splitlines() if "summary" not in line]
    assert [(row["stage"], row["step"]) for row in rows] == [("sft", 1), ("sft", 2)] and rows[0]["loss"] > 0
    before, after = weights(shipped_base_path()), weights(sft_run.final_dir)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and not any(name.startswith("visual.") for name in changed)


def test_sft_puts_the_loss_on_the_answer_tokens_only(data, tmp_path, monkeypatch):
    from repic.train import sft as sft_module

    captured = {}
    monkeypatch.setattr(sft_module, "finish_run", lambda config, trainer, *args, **kwargs: captured.update(t=trainer))
    config = load_config("sft-demo-tiny", [f"data.train_file={data / 'sft.jsonl'}", f"run.output_dir={tmp_path}",
                                           "data.max_samples=1", "sft.rows_per_step=1"])
    train_sft(config)
    trainer = captured["t"]
    batch = trainer.data_collator([trainer.train_dataset[0]])
    labels = batch["labels"][0]
    answer = trainer.processing_class.tokenizer.decode(labels[labels != -100])
    caption = load_samples(data / "sft.jsonl")[0].extra["caption"]
    assert answer == caption + "<|im_end|>\n"  # the answer and the end of its turn, nothing of the prompt


# ------------------------------------------------------------------------------------------ held-out
def test_heldout_samples_use_the_training_layout_and_the_databases_info(data):
    samples = heldout_samples(data)
    by_task = {task: [s for s in samples if s.task == task] for task in TASKS}
    assert [len(by_task[task]) for task in TASKS] == [4, 2, 2, 1]  # eval oct 4, vlt 2; 2 single, 1 two-concept
    ict = by_task["ict"][0]
    assert ict.problem.startswith(f"Name: {ict.solution}, Info: ") and len(ict.images) == 2
    multi = by_task["ict_multi"][0]
    assert isinstance(multi.solution, list) and len(multi.images) == len(multi.solution) + 1
    assert len(heldout_samples(data, per_task=1)) == 4


def test_heldout_rewards_average_each_tasks_rewards(data, monkeypatch):
    samples = [s for s in heldout_samples(data) if s.task in ("oct", "ict")]
    answers = ["yes" if s.task == "oct" else f"{s.solution} sits in the middle of the bright room." for s in samples]
    answers[0] = "no" if samples[0].solution == "yes" else "yes"  # one OCT answer of four is wrong
    monkeypatch.setattr(engine_module, "answer", lambda *args, **kwargs: [Generated(a, 8, True) for a in answers])
    means = heldout_rewards(shipped_base_path(), samples, options=load_config("demo-tiny").rewards)
    expected_oct = sum(a == s.solution for a, s in zip(answers, samples, strict=True) if s.task == "oct") / 4
    assert means == {"oct": expected_oct, "ict": 1.0}  # both ICT answers name the concept in >= 40 characters


# ------------------------------------------------------------------------------------------ CLI
def test_cli_trains_and_prints_the_summary(data, tmp_path, run_cli):
    result = run_cli("train", "grpo", "--data", data / "train.jsonl", "--out", tmp_path / "run", "--max-steps", "1",
                     "--heldout", data, *[arg for item in FAST for arg in ("--set", item)])
    assert result.exit_code == 0, result.stderr
    assert "step 1/1" in result.stdout and f"model: {tmp_path / 'run' / 'final'}" in result.stdout
    assert "held-out mean reward per task (before -> after):" in result.stdout


def test_cli_says_where_an_interrupted_overwrite_keeps_the_earlier_run(grpo_run, data, tmp_path, run_cli,
                                                                       monkeypatch):
    shutil.copytree(grpo_run.run_dir, tmp_path / "run")
    monkeypatch.setattr(StopRequests, "agreed", lambda self: True)  # as if Ctrl-C came during step 1
    result = run_cli("train", "grpo", "--data", data / "train.jsonl", "--out", tmp_path / "run", "--max-steps", "3",
                     "--overwrite", "--quiet", *[arg for item in FAST for arg in ("--set", item)],
                     "--set", "heldout.build=null")
    assert result.exit_code == 130
    said = " ".join(result.stdout.split())  # the console wraps long lines
    assert f"resume with: repic train grpo --resume {tmp_path / 'run'}" in said
    assert f"the earlier run this one replaces is kept in {tmp_path / 'run.previous'} until this one finishes" in said
    assert (tmp_path / "run.previous" / "final" / "model.safetensors").is_file()


def test_cli_reports_guard_errors_without_traceback(data, tmp_path, run_cli):
    result = run_cli("train", "grpo", "--data", data / "train.jsonl", "--out", tmp_path / "run",
                     "--set", "grpo.num_generations=1")
    assert result.exit_code == 2 and "num_generations must be at least 2" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("train", "grpo", "--recipe", "sft-demo-tiny", "--data", data / "train.jsonl")
    assert result.exit_code == 2 and "is for `repic train sft`" in result.stderr


def fast_options(*extra):
    return [arg for item in [*FAST, *extra] for arg in ("--set", item)]


FULL_DISK = {  # what the libraries raise when a checkpoint finds no space: Python / safetensors, and torch.save
    "oserror": (OSError(errno.ENOSPC, "No space left on device", "checkpoint-1/model.safetensors"), None),
    "torch-short-write": (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"), 0),
}


@pytest.mark.parametrize("kind", FULL_DISK)
def test_a_full_disk_fails_the_run_in_one_line_and_run_json_says_so(data, tmp_path, run_cli, monkeypatch, kind):
    error, free = FULL_DISK[kind]

    def full_disk(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(transformers.Trainer, "save_model", full_disk)  # the checkpoint's and final/'s save
    if free is not None:
        monkeypatch.setattr(failures, "free_bytes", lambda folder: free)
    run = tmp_path / "run"
    result = run_cli("train", "grpo", "--data", data / "train.jsonl", "--out", run, "--max-steps", "2", "--quiet",
                     *fast_options("heldout.build=null"))
    said = " ".join(result.stderr.split())
    assert result.exit_code == 2 and "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert f"the disk holding {run} is full" in said and "free some space" in said
    assert "run.json marks it failed; once fixed, resuming continues from" in said
    assert f"repic train grpo --resume {run}" in said
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "failed" and "is full" in status["error"] and "ended" in status
    assert not (run / "final").exists()
    monkeypatch.undo()  # space freed: the run resumes as the message says, and is no longer a failure
    assert run_cli("train", "grpo", "--resume", run, "--quiet").exit_code == 0
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "finished" and status["error"] is None


def test_fewer_samples_than_one_step_are_refused_before_training(data, tmp_path, run_cli):
    path = write_file(tmp_path, load_samples(data / "train.jsonl")[:1])  # one step takes 2 prompts here
    run = tmp_path / "run"
    result = run_cli("train", "grpo", "--data", path, "--image-root", data.parent / "world", "--out", run,
                     "--max-steps", "1", *fast_options())
    said = " ".join(result.stderr.split())
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert f"{path} gives 1 training sample(s), but one GRPO step takes 2 (grpo.prompts_per_step" in said
    assert "add samples, or lower grpo.prompts_per_step to 1 or fewer" in said
    assert not run.exists()  # refused before the run folder, let alone an untrained final/


def test_ctrl_c_before_the_training_steps_says_what_was_kept_and_how_to_resume(data, tmp_path):
    """A real Ctrl-C (SIGINT) during the held-out measure before training, into an --overwrite of a run."""
    run, kept = tmp_path / "run", tmp_path / "run.previous"
    run.mkdir()
    (run / "config.yaml").write_text("method: grpo\n")  # the earlier run --overwrite replaces
    command = [str(Path(sys.executable).with_name("repic")), "train", "grpo", "--data", str(data / "train.jsonl"),
               "--out", str(run), "--overwrite", "--heldout", str(data), "--max-steps", "3",
               *fast_options("heldout.per_task=4", "heldout.max_new_tokens=48")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "400"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in process.stdout:  # the measure starts right after this line, with run.json saying "running"
        lines.append(line)
        if line.startswith("held-out (before):"):
            process.send_signal(signal.SIGINT)
            break
    lines.extend(process.stdout)
    assert process.wait(timeout=120) == 130, "".join(lines)
    said = " ".join("".join(lines).split())
    assert "interrupted before the first training step: stopped at once; resuming continues from no checkpoint" in said
    assert f"repic train grpo --resume {run}" in said
    assert f"the earlier run this one replaces is kept in {kept} until this one finishes" in said
    assert "Traceback" not in said and (kept / "config.yaml").is_file()
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "interrupted" and status["previous_run"] == str(kept) and status["step"] == 0
    assert status["resume"] == f"repic train grpo --resume {run}"


def test_ctrl_c_while_the_run_folder_is_claimed_waits_for_the_claim(data, tmp_path, monkeypatch):
    run, kept = tmp_path / "run", tmp_path / "run.previous"
    run.mkdir()
    (run / "config.yaml").write_text("method: grpo\n")
    create = RunFolder.create.__func__

    def ctrl_c_during_the_claim(cls, path, **kwargs):  # as the earlier run is moved aside
        os.kill(os.getpid(), signal.SIGINT)
        return create(cls, path, **kwargs)

    monkeypatch.setattr(RunFolder, "create", classmethod(ctrl_c_during_the_claim))
    with pytest.raises(KeyboardInterrupt, match="interrupted before the first training step"):
        train_grpo(grpo_config(data, run, "optim.max_steps=1", "heldout.build=null"), overwrite=True)
    status = json.loads((run / "run.json").read_text())  # a whole claim: resumable, the earlier run recorded
    assert status["status"] == "interrupted" and status["previous_run"] == str(kept)
    assert (run / "config.yaml").read_text() != "method: grpo\n" and (kept / "config.yaml").is_file()


@pytest.mark.parametrize("folder", ["empty", "missing"])
def test_resume_of_a_folder_that_is_not_a_run_says_what_to_give(tmp_path, run_cli, folder):
    target = tmp_path / folder
    if folder == "empty":
        target.mkdir()
    result = run_cli("train", "grpo", "--resume", target)
    said = " ".join(result.stderr.split())
    assert result.exit_code == 2 and "recipe" not in said
    expected = "is not a repic run folder (no config.yaml or run.json)" if folder == "empty" else "does not exist"
    assert f"{target}" in said and expected in said and "give --resume the --out folder of an earlier" in said


def test_cli_lists_recipes_and_prints_a_resolved_config(run_cli):
    listed = run_cli("train", "recipes")
    assert listed.exit_code == 0 and "paper-qwen2.5-vl-7b" in listed.stdout and "qwen3-vl-8b-gspo" in listed.stdout
    shown = run_cli("train", "config", "--recipe", "paper-qwen2.5-vl-7b", "--set", "grpo.beta=0.1")
    assert shown.exit_code == 0 and "beta: 0.1" in shown.stdout and "loss_type: grpo" in shown.stdout


# ------------------------------------------------------------------------------------------ warm-up
def test_warmup_samples_take_every_trained_task_in_turn(data, tmp_path):
    from repic.train.grpo import warmup_config, warmup_samples

    config = grpo_config(data, tmp_path / "run", "grpo.warmup.steps=2", "grpo.warmup.samples=6")
    samples = warmup_samples(config, warmup_config(config, tmp_path / "run"))
    # captions (ict, ict_multi) from sft.jsonl, OCT and VLT answers from train.jsonl, in canonical task order
    assert [s.task for s in samples] == ["oct", "vlt", "ict", "ict_multi", "oct", "vlt"]
    assert all("caption" in s.extra for s in samples if s.task.startswith("ict"))


def test_cli_runs_the_warmup_alone_and_refuses_recipes_without_one(data, tmp_path, run_cli):
    fast = [arg for item in FAST if item != "grpo.warmup.steps=0" for arg in ("--set", item)]
    warmup = ["--set", "grpo.warmup.steps=1", "--set", "grpo.warmup.samples=4", "--set", "grpo.warmup.batch_size=4"]
    result = run_cli("train", "warmup", "--data", data / "train.jsonl", "--out", tmp_path / "start", *fast, *warmup)
    assert result.exit_code == 0, result.stderr
    final = tmp_path / "start" / "final"
    assert (final / "model.safetensors").is_file() and f"model: {final}" in result.stdout
    assert "method: sft" in (tmp_path / "start" / "config.yaml").read_text()  # the stage is an SFT run
    refused = run_cli("train", "warmup", "--data", data / "train.jsonl", "--out", tmp_path / "none", *fast,
                      "--set", "grpo.warmup.steps=0")
    assert refused.exit_code == 2 and "this recipe has no warm-up" in refused.stderr
    refused = run_cli("train", "warmup", "--recipe", "sft-demo-tiny", "--data", data / "train.jsonl")
    assert refused.exit_code == 2 and "is for `repic train sft`" in refused.stderr
    refused = run_cli("train", "warmup", "--resume", tmp_path / "start")
    assert refused.exit_code == 2 and "cannot be resumed" in refused.stderr


def test_cli_warmup_stops_after_max_steps(data, tmp_path, run_cli):
    fast = [arg for item in FAST if item != "grpo.warmup.steps=0" for arg in ("--set", item)]
    # the recipe's warm-up has 40 steps; --max-steps is the one to honour
    result = run_cli("train", "warmup", "--data", data / "train.jsonl", "--out", tmp_path / "start", "--max-steps", "2",
                     *fast, "--set", "grpo.warmup.samples=4", "--set", "grpo.warmup.batch_size=2")
    assert result.exit_code == 0, result.stderr
    assert "(2 steps," in result.stdout
    assert json.loads((tmp_path / "start" / "final" / "repic_run.json").read_text())["steps"] == 2
    rows = [json.loads(line) for line in (tmp_path / "start" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if not row.get("summary")] == [1, 2]
    refused = run_cli("train", "warmup", "--data", data / "train.jsonl", "--out", tmp_path / "none", "--max-steps", "0")
    assert refused.exit_code == 2 and "--max-steps must be at least 1" in refused.stderr


def test_warmup_stage_runs_before_grpo_and_is_measured(data, tmp_path):
    result = train_grpo(grpo_config(data, tmp_path / "run", "grpo.warmup.steps=1", "grpo.warmup.samples=4",
                                    "grpo.warmup.batch_size=4", "optim.max_steps=1"))
    assert (tmp_path / "run" / "warmup" / "final" / "model.safetensors").is_file()
    heldout = json.loads((tmp_path / "run" / "heldout.json").read_text())
    assert {"before", "after_warmup", "after"} <= set(heldout)
    assert json.loads((result.final_dir / "repic_run.json").read_text())["steps"] == 1
