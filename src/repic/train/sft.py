"""The SFT baseline on TRL's ``SFTTrainer``: ``train_sft(config) -> RunResult``.

What the RePIC paper compares against: supervised fine-tuning on captions that name the concepts
(RAP-style), with the same sample files, prompts, recipes and run folder as GRPO. Each row is the GRPO
prompt plus the answer (``repic.train.dataset.sft_target``: the sample's reference caption, or the yes/no
or box of OCT / VLT samples). The loss is on the answer tokens only (TRL's ``completion_only_loss`` on
prompt-completion rows): the prompt, its images and the reference names are context, not targets.

Rows are never cut: TRL would truncate a row over ``max_length`` from the end, possibly through image
tokens, so ``sft.max_length`` is checked up front and longer rows are refused (``repic.train.guards``).
The GRPO run's optional warm-up stage is this trainer, run for a few steps.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from transformers import PrinterCallback
from trl import SFTConfig, SFTTrainer

from ..errors import RepicError
from ..progress import Progress, say_nothing
from ..records import Sample
from .config import TrainConfig
from .dataset import sft_rows, to_dataset
from .guards import batch_layout, check_lengths, check_rows
from .run_folder import MetricsCallback
from .session import (
    RunResult,
    begin_run,
    ends_recorded,
    finish_run,
    heldout_before,
    load_trainable,
    prepare_process,
    trainer_arguments,
    training_samples,
    world_size,
)


def sft_arguments(config: TrainConfig, common: dict[str, Any]) -> SFTConfig:
    """TRL's ``SFTConfig`` for ``config`` on top of the shared trainer arguments."""
    return SFTConfig(
        **common,
        max_length=None,  # lengths are checked up front; TRL would cut rows through their image tokens
        completion_only_loss=True,
        remove_unused_columns=False,
    )


def train_sft(
    config: TrainConfig,
    *,
    policy: Any = None,
    samples: Sequence[Sample] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    merge_adapter: bool = False,
    progress: Progress | None = None,
) -> RunResult:
    """Fine-tune a policy on the samples' reference answers as ``config`` says (run folder ``run.output_dir``).

    ``policy``, ``resume`` and ``progress`` work as in ``train_grpo``; ``samples`` replaces reading
    ``data.train_file``; ``merge_adapter`` folds a LoRA adapter into the saved ``final/`` model (a plain
    model folder, as a later stage needs).
    """
    say = progress or say_nothing
    if config.method != "sft":
        raise RepicError(f"train_sft got a {config.method} configuration; use train_{config.method}")
    started = time.perf_counter()
    device = prepare_process(config)
    layout = batch_layout(config.sft.rows_per_step, config.sft.rows_per_device_batch, world_size(), what="sft")
    if samples is None:
        samples, source = training_samples(config)
    else:
        source = "the given samples"
    rows = sft_rows(samples, prompt_seed=config.data.prompt_seed, box_style=config.data.box_style)
    policy, peft_config = load_trainable(config, policy=policy)
    processor = policy.processor
    check_rows(rows, processor, source=source)
    max_positions = getattr(policy.model.config.get_text_config(), "max_position_embeddings", None)
    check_lengths(rows, processor, source=source, max_prompt_length=None, max_total_length=config.sft.max_length,
                  max_positions=max_positions)
    say(f"data: {len(rows)} samples from {source}; {layout.per_step} rows per step")

    opened = begin_run(config, say, resume=resume, overwrite=overwrite)
    with ends_recorded(opened, config.method, say):
        before = heldout_before(config, policy, say, opened)
        trainer = SFTTrainer(
            model=policy.model,
            args=sft_arguments(config, trainer_arguments(config, opened, layout, device)),
            train_dataset=to_dataset(rows),
            processing_class=processor,
            peft_config=peft_config,
            callbacks=[MetricsCallback(opened.log(opened.folder.metrics_path), stage="sft", progress=say)],
        )
        trainer.remove_callback(PrinterCallback)
        return finish_run(config, trainer, processor, opened, say, started, before, merge_adapter=merge_adapter,
                          rank_record=lambda: vars(layout))
