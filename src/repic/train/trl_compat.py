"""Every use of TRL beyond its public API, in one place; each shim names the TRL versions that need it.

repic supports ``trl>=1.16,<2`` (``pyproject.toml``). Everywhere else repic imports only TRL's public
names (``GRPOConfig``, ``GRPOTrainer``, ``SFTConfig``, ``SFTTrainer``) and takes anything private from here
(``tests/test_trl_compat.py`` walks the sources to keep it so). A TRL release that renames a private method
then breaks this module's test, not a training run. The shims were read against the sources of TRL 0.24,
1.0, 1.10 and 1.16.

Why private names at all: the phase timings and one kept column. TRL's public hooks are the
``TrainerCallback`` events, which bracket whole optimizer steps and micro-batches (``on_step_begin``,
``on_substep_end``, ``on_step_end``). GRPO's rollouts, rewards and scoring all run inside the first
micro-batch's ``training_step`` (``_prepare_inputs``), so no event falls between them: ``time/step``, and
``time/update`` from it, come from a callback (``repic.train.run_folder.MetricsCallback``), the three phase
timings need the methods that run the phases. Timing the reward functions from outside (they are public)
would miss TRL's own work around them and could only be logged per function, not as one ``time/rewards``.
"""

from __future__ import annotations

import time
from typing import Any

from trl import GRPOTrainer, SFTTrainer


def record_metric(trainer: GRPOTrainer, name: str, value: float) -> None:
    """Add one value to the metrics ``trainer`` averages into its next log (``logs[name]``).

    TRL 0.24-1.16: ``GRPOTrainer._metrics[mode][name]`` lists, averaged and cleared by ``GRPOTrainer.log``;
    ``mode`` is ``"train"`` or ``"eval"`` by ``trainer.model.training``. TRL offers no public way in: reward
    functions get a ``log_metric`` keyword (TRL >= 1.0), but nothing else does.
    """
    trainer._metrics["train" if trainer.model.training else "eval"][name].append(value)


class PhaseTimedGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` logging the wall time of its phases with each step's metrics.

    ``time/generation``: the rollouts. ``time/rewards``: the reward functions, with TRL's bookkeeping
    around them. ``time/generate_and_score``: rollouts, rewards, reference log-probabilities and
    advantages, the whole of a generation batch before the update.
    """

    def _timed(self, name: str, run: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = run(*args, **kwargs)
        record_metric(self, name, time.perf_counter() - started)
        return result

    # TRL 0.24-1.16 generate a batch's rollouts in ``_generate_single_turn`` (the transformers and vLLM
    # paths alike). Its arguments differ across the releases read (0.24: prompts and images; 1.0: token
    # ids and multimodal fields; 1.10 adds has_tool_images, 1.16 num_generations), so they pass through.
    def _generate_single_turn(self, *args: Any, **kwargs: Any):
        return self._timed("time/generation", super()._generate_single_turn, *args, **kwargs)

    # TRL 0.24-1.16: ``_calculate_rewards(inputs, prompts, completions, completion_ids_list)`` calls every
    # reward function and gathers their results across processes.
    def _calculate_rewards(self, *args: Any, **kwargs: Any):
        return self._timed("time/rewards", super()._calculate_rewards, *args, **kwargs)

    # TRL 0.24-1.16: ``_generate_and_score_completions(inputs)`` is everything ``_prepare_inputs`` does
    # once per generation batch: rollouts, rewards, old and reference log-probabilities, advantages.
    def _generate_and_score_completions(self, *args: Any, **kwargs: Any):
        return self._timed("time/generate_and_score", super()._generate_and_score_completions, *args, **kwargs)


def enable_compiled_generation(trainer: GRPOTrainer) -> bool:
    """Let transformers compile the rollouts' decoding step; False where TRL left no config to change.

    TRL 1.0-1.16 build ``trainer.generation_config`` with ``disable_compile=True`` for rollouts through
    transformers (vLLM rollouts have none). TRL 0.24 passed ``disable_compile=True`` to each ``generate``
    call instead, which no setting undoes.
    """
    config = getattr(trainer, "generation_config", None)
    if config is None:
        return False
    config.disable_compile = False
    return True


class ColumnKeepingSFTTrainer(SFTTrainer):
    """``SFTTrainer`` that hands ``keep_columns`` of the dataset to its collator.

    With ``remove_unused_columns`` on, transformers' ``Trainer`` drops every dataset column not in
    ``_signature_columns``, which ``_set_signature_columns_if_needed`` fills; TRL 0.24-1.16 override it
    with the columns TRL's own collators read (for vision rows ``messages``, ``prompt``, ``completion``,
    ``image``, ``images``). Neither is public.
    """

    keep_columns: tuple[str, ...] = ()

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        missing = [column for column in self.keep_columns if column not in self._signature_columns]
        if missing:
            self._signature_columns = [*self._signature_columns, *missing]
