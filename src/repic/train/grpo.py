"""RePIC post-training with GRPO on TRL's ``GRPOTrainer``: ``train_grpo(config) -> RunResult``.

``train_warmup(config)`` runs only the recipe's SFT warm-up stage, as a run of its own.

The run, as named phases: open the run folder (or resume it), read the samples, run the optional SFT
warm-up stage, load the policy, check every row before any compute (``repic.train.guards``), measure the
held-out reward, train, save ``final/``, measure again. Everything is stock TRL; ``RepicGRPOTrainer`` only
adds timings of the phases to the logged metrics and turns on compiled decoding when asked.

The algorithm is TRL's GRPO, configured as RePIC:

- **Rewards**: the four RePIC rewards (``repic.rewards.make_reward_funcs``) are passed together; each
  scores the rows of its own task, and TRL logs ``rewards/<task>/mean`` per task beside the total.
- **Prompts**: references and query images first, then the problem text (official layout).
- **The loss that reproduces the paper** is ``loss_type: grpo`` with ``scale_rewards: group`` and
  ``beta: 0.04``, one policy update per generation batch (``num_iterations: 1``); ``dr_grpo``, ``dapo``,
  ``bnpo`` and GSPO (``importance_sampling_level: sequence``) are TRL's alternatives.
- **Batch**: ``prompts_per_step`` prompts x ``num_generations`` completions per optimizer step, summed over
  processes and accumulation steps; generation happens once per step for the whole step.

Speed: rollouts dominate a GRPO step. ``rollout.compile: true`` with ``rollout.cache_implementation:
static`` compiles the decoding step (CUDA only, opt-in); ``rollout.backend: vllm`` generates with vLLM
where it is installed.

Measurements and history: docs/notes/grpo-loss-and-rollouts.md
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from transformers import PrinterCallback
from trl import GRPOConfig

from ..data.samples import load_samples
from ..errors import RepicError
from ..models.vision_cache import cache_vision_features
from ..progress import Progress, say_nothing
from ..records import Sample
from ..rewards import make_reward_funcs
from ..tasks import TASKS, normalize_task
from .config import OptimSection, SftSection, TrainConfig
from .dataset import grpo_rows, to_dataset
from .guards import BatchLayout, batch_layout, check_lengths, check_rollout, check_rows, check_sample_count
from .run_folder import FINAL_DIR, WARMUP_DIR, CompletionSampler, MetricsCallback
from .session import (
    OpenedRun,
    RunResult,
    begin_run,
    ends_recorded,
    finish_run,
    heldout_before,
    load_trainable,
    measure_heldout,
    prepare_process,
    trainer_arguments,
    training_samples,
    world_size,
)
from .trl_compat import PhaseTimedGRPOTrainer, enable_compiled_generation


class RepicGRPOTrainer(PhaseTimedGRPOTrainer):
    """``GRPOTrainer`` plus phase timings in its logs, a frozen tower's features reused, compiled decoding.

    Logged per step: ``time/generation`` (rollouts), ``time/rewards`` (the reward functions) and
    ``time/generate_and_score`` (rollouts, rewards, reference log-probabilities and advantages), from
    ``repic.train.trl_compat``; the metrics callback adds ``time/step`` and ``time/update`` (the rest:
    forward, backward, optimizer).

    ``vision_cache`` images' features are kept (``repic.models.vision_cache``) in the policy and the
    reference model: a frozen tower then encodes each image of a step once, not once per completion and
    pass; the share of encodings saved is logged as ``vision_cache/hit_rate``. Not with DeepSpeed or FSDP,
    whose sharded towers need every process in every forward.
    """

    def __init__(self, *args: Any, compile_generation: bool = False, vision_cache: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vision_caches = []
        if vision_cache and not (self.is_deepspeed_enabled or self.is_fsdp_enabled):
            if self.ref_model is not None:
                # TRL loads the reference model with trainable parameters it never updates; frozen, its
                # tower's features may be reused too
                self.ref_model.requires_grad_(False)
            models = [self.model] + ([self.ref_model] if self.ref_model is not None else [])
            self.vision_caches = [c for m in models if (c := cache_vision_features(m, vision_cache)) is not None]
        if compile_generation:
            enable_compiled_generation(self)

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        # The share of image encodings the cache saved so far (7 of 8 when each prompt is sampled 8 times).
        lookups = sum(cache.hits + cache.misses for cache in self.vision_caches)
        if lookups and "train_runtime" not in logs:
            logs["vision_cache/hit_rate"] = sum(cache.hits for cache in self.vision_caches) / lookups
        super().log(logs, *args, **kwargs)


class SampledReward:
    """A RePIC task reward that also hands what it scored to a ``CompletionSampler`` (completions.jsonl)."""

    def __init__(self, reward: Any, sampler: CompletionSampler) -> None:
        self.reward = reward
        self.sampler = sampler
        self.__name__ = reward.__name__  # TRL logs rewards/<name>/mean

    def __call__(self, completions: list, **columns: Any) -> list[float | None]:
        rewards = self.reward(completions, **columns)
        self.sampler.count(rewards)
        state = columns.get("trainer_state")
        if state is not None and self.sampler.wants(state.global_step):
            self.sampler.record(
                state.global_step, self.__name__, columns.get("prompts", []), completions, rewards,
                columns.get("solution", []),
            )
        return rewards


def grpo_arguments(config: TrainConfig, common: dict[str, Any]) -> GRPOConfig:
    """TRL's ``GRPOConfig`` for ``config`` on top of the shared trainer arguments."""
    grpo, rollout = config.grpo, config.grpo.rollout
    return GRPOConfig(
        **common,
        num_generations=grpo.num_generations,
        max_completion_length=grpo.max_completion_length,
        temperature=grpo.temperature,
        top_p=grpo.top_p,
        top_k=grpo.top_k,
        beta=grpo.beta,
        loss_type=grpo.loss_type,
        importance_sampling_level=grpo.importance_sampling_level,
        scale_rewards=grpo.scale_rewards,
        epsilon=grpo.epsilon,
        epsilon_high=grpo.epsilon_high,
        num_iterations=grpo.num_iterations,
        mask_truncated_completions=grpo.mask_truncated_completions,
        cache_implementation="static" if rollout.cache_implementation == "static" else None,
        pad_to_multiple_of=rollout.pad_prompts_to_multiple_of,
        use_vllm=rollout.backend == "vllm",
        vllm_mode=rollout.vllm_mode,
        vllm_server_base_url=rollout.vllm_server_base_url,
        vllm_gpu_memory_utilization=rollout.vllm_gpu_memory_utilization,
        vllm_tensor_parallel_size=rollout.vllm_tensor_parallel_size,
        generation_kwargs=dict(rollout.generation_kwargs) or None,
        log_completions=False,  # repic writes its own completions.jsonl
        remove_unused_columns=False,  # the rewards read the task and solution columns
    )


def warmup_config(config: TrainConfig, run_dir: Path) -> TrainConfig:
    """The SFT warm-up stage's configuration: the GRPO run's model and data, the warm-up's steps and rate."""
    warmup = config.grpo.warmup
    train_file = warmup.train_file
    if train_file is None:
        if config.data.train_file is None:
            raise RepicError("grpo.warmup needs grpo.warmup.train_file, or data.train_file to find sft.jsonl beside")
        train_file = str(Path(config.data.train_file).parent / "sft.jsonl")
        if not Path(train_file).is_file():
            raise RepicError(
                f"grpo.warmup looks for {train_file} (captions that name the concepts, written by "
                "`repic data build`); set grpo.warmup.train_file, or grpo.warmup.steps: 0 to skip the warm-up"
            )
    return replace(
        config,
        method="sft",
        data=replace(config.data, train_file=train_file, max_samples=warmup.samples),
        sft=SftSection(rows_per_step=warmup.batch_size),
        optim=OptimSection(learning_rate=warmup.learning_rate, lr_scheduler="constant", max_steps=warmup.steps),
        heldout=replace(config.heldout, build=None),
        run=replace(config.run, output_dir=str(run_dir / WARMUP_DIR), report_to=[], sample_every=0,
                    save_steps=max(1, warmup.steps)),
    )


def warmup_samples(config: TrainConfig, stage: TrainConfig) -> list[Sample]:
    """The warm-up's samples: every trained task in turn, ``grpo.warmup.samples`` in all.

    Captions come from the warm-up file (``sft.jsonl``); tasks it lacks whose answer is verifiable (OCT's
    yes/no, VLT's box) come from the training file, so the warm-up teaches every task's answer format and
    no task's prompts learn to be answered with a caption. Each task's samples are drawn with a fixed seed.
    """
    pool: dict[str, list[Sample]] = defaultdict(list)
    for sample in load_samples(stage.data.train_file, stage.data.image_root):
        pool[normalize_task(sample.task)].append(sample)
    in_warmup_file = set(pool)
    for sample in load_samples(config.data.train_file, config.data.image_root) if config.data.train_file else []:
        task = normalize_task(sample.task)
        if task in ("oct", "vlt") and task not in in_warmup_file:
            pool[task].append(sample)
    kept = {normalize_task(task) for task in config.data.tasks} if config.data.tasks else set(TASKS)
    groups = [random.Random(f"warmup:{task}").sample(pool[task], len(pool[task])) for task in TASKS
              if task in kept and pool[task]]
    if not groups:
        raise RepicError(f"the warm-up found no samples of the trained tasks in {stage.data.train_file}")
    drawn = [sample for round_ in itertools.zip_longest(*groups) for sample in round_ if sample is not None]
    return drawn[: config.grpo.warmup.samples]


def train_warmup(
    config: TrainConfig, *, overwrite: bool = False, progress: Progress | None = None
) -> RunResult:
    """Run only the SFT warm-up of GRPO recipe ``config``, as a run of its own in ``run.output_dir``.

    Its ``final/`` is the model a GRPO run of ``config`` would start from (pass it as the model, with
    ``grpo.warmup.steps: 0``): what ``repic demo`` calls the *start*, shared by its GRPO and SFT stages.
    """
    from .sft import train_sft

    if config.method != "grpo":
        raise RepicError(
            f"the warm-up belongs to a GRPO recipe; this configuration is for `repic train {config.method}`"
        )
    if config.grpo.warmup.steps < 1:
        raise RepicError("grpo.warmup.steps is 0: this recipe has no warm-up; set grpo.warmup.steps to 1 or more")
    stage = warmup_stage(config)
    return train_sft(stage, samples=warmup_samples(config, stage), overwrite=overwrite, merge_adapter=True,
                     progress=progress)


def warmup_stage(config: TrainConfig) -> TrainConfig:
    """The configuration of the run ``train_warmup`` makes: the warm-up, in ``config``'s own run folder."""
    out = Path(config.run.output_dir)
    stage = warmup_config(config, out)
    return replace(stage, run=replace(stage.run, output_dir=str(out)))


def warmed_up_model(config: TrainConfig, run_dir: Path, base: Any, say: Progress) -> str:
    """The model folder GRPO starts from after the SFT warm-up of ``base`` (trained now, or reused on resume)."""
    from .sft import train_sft

    stage = warmup_config(config, run_dir)
    final = Path(stage.run.output_dir) / FINAL_DIR
    if (final / "config.json").is_file():
        say(f"warm-up: reusing {final}")
        return str(final)
    samples = warmup_samples(config, stage)
    tasks = ", ".join(f"{task} {n}" for task, n in Counter(normalize_task(s.task) for s in samples).items())
    say(f"warm-up: {stage.optim.max_steps} SFT steps on {len(samples)} samples ({tasks})")
    result = train_sft(stage, policy=base, samples=samples, overwrite=True, merge_adapter=True,
                       progress=lambda line: say(f"warm-up: {line}"))
    if result.final_dir is None:  # Ctrl-C stopped the warm-up: the GRPO run around it records the interruption
        raise KeyboardInterrupt("the warm-up stage was interrupted")
    return str(result.final_dir)


def check_policy_and_rows(config: TrainConfig, policy: Any, rows: list[dict], source: str, *, warmed_up: bool) -> None:
    """Every check that needs the policy: its reference model, then each row against its processor."""
    grpo = config.grpo
    if config.model.finetune == "full" and grpo.beta > 0 and not warmed_up:
        if not Path(policy.model.name_or_path).is_dir():
            raise RepicError(
                "full fine-tuning with grpo.beta > 0 loads the reference model from the policy's folder, and this "
                "policy has none: pass the model as a folder (model.name_or_path), use LoRA, or set grpo.beta: 0"
            )
    check_rows(rows, policy.processor, source=source)
    max_positions = getattr(policy.model.config.get_text_config(), "max_position_embeddings", None)
    check_lengths(rows, policy.processor, source=source, max_prompt_length=grpo.max_prompt_length,
                  max_completion_length=grpo.max_completion_length, max_positions=max_positions)


def train_grpo(
    config: TrainConfig,
    *,
    policy: Any = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> RunResult:
    """Post-train a policy with RePIC GRPO as ``config`` says; the run folder is ``config.run.output_dir``.

    ``policy`` (anything with ``.model`` and ``.processor``) replaces loading ``config.model.name_or_path``.
    ``resume`` continues the run in that folder from its newest complete checkpoint. ``progress`` receives
    one line per logged step and per phase. A run stopped by Ctrl-C returns ``finished=False`` with the
    command that resumes it.
    """
    say = progress or say_nothing
    if config.method != "grpo":
        raise RepicError(f"train_grpo got a {config.method} configuration; use train_{config.method}")
    started = time.perf_counter()
    device = prepare_process(config)
    check_rollout(config.grpo.rollout, on_gpu=device == "cuda")
    grpo = config.grpo
    layout = batch_layout(grpo.prompts_per_step * grpo.num_generations, grpo.completions_per_device_batch,
                          world_size(), what="grpo")
    samples, source = training_samples(config)
    check_sample_count(len(samples), source, per_step=grpo.prompts_per_step, num_generations=grpo.num_generations,
                       max_samples=config.data.max_samples, tasks=config.data.tasks)
    rows = grpo_rows(samples, prompt_seed=config.data.prompt_seed, box_style=config.data.box_style)
    policy, peft_config = load_trainable(config, policy=policy)
    check_policy_and_rows(config, policy, rows, source, warmed_up=bool(grpo.warmup.steps))
    say(f"data: {len(rows)} samples from {source}; {layout.per_step} completions per step "
        f"({layout.world_size} process(es) x {layout.accumulation} pass(es) x {layout.per_device_batch})")

    opened = begin_run(config, say, resume=resume, overwrite=overwrite)
    with ends_recorded(opened, config.method, say):
        return _train_opened(config, policy, peft_config, rows, opened, layout, device, say, started)


def _train_opened(config: TrainConfig, policy: Any, peft_config: Any, rows: list[dict], opened: OpenedRun,
                  layout: BatchLayout, device: str, say: Progress, started: float) -> RunResult:
    """The part of ``train_grpo`` that runs with the run folder marked running: measures, warm-up, training."""
    grpo = config.grpo
    before = heldout_before(config, policy, say, opened)
    if grpo.warmup.steps:
        policy, peft_config = load_trainable(config, warmed_up_model(config, opened.folder.path, policy, say))
        if opened.checkpoint is None:
            measure_heldout(config, policy.model, policy.processor, "after_warmup", say, opened)
    processor = policy.processor

    args = grpo_arguments(config, trainer_arguments(config, opened, layout, device))
    sampler = CompletionSampler(opened.log(opened.folder.completions_path), every=config.run.sample_every,
                                per_step=config.run.samples_per_log, num_generations=grpo.num_generations)
    trainer = RepicGRPOTrainer(
        model=policy.model,
        reward_funcs=[SampledReward(reward, sampler) for reward in make_reward_funcs(config.rewards)],
        args=args,
        train_dataset=to_dataset(rows),
        processing_class=processor,
        peft_config=peft_config,
        callbacks=[MetricsCallback(opened.log(opened.folder.metrics_path), stage="grpo", progress=say)],
        compile_generation=grpo.rollout.compile,
        vision_cache=config.model.vision_cache if config.model.freeze_vision else 0,
    )
    trainer.remove_callback(PrinterCallback)  # progress goes through ``progress`` and metrics.jsonl
    return finish_run(config, trainer, processor, opened, say, started, before,
                      rank_record=lambda: {**vars(layout), "completions_scored": sampler.scored})
