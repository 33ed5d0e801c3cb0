"""Checks that run before any compute, so a training run fails in seconds with a fix, not an hour in.

Each guard raises ``RepicError`` naming the sample (``sample N``, 1-based in the training file's order)
and saying how to fix it, and reports every offending sample of a kind at once:

- ``check_rows``: every row has an image, a known task, and exactly as many image placeholders in its
  rendered chat template as it has images. The count is taken on the text the processor will expand, so
  a problem text that itself contains the model's image token (``<|image_pad|>``) is caught too; a
  mismatch otherwise surfaces deep inside the model as "image features and image tokens do not match".
- ``check_lengths``: prompts (and SFT answers) fit the limits. repic never cuts a prompt: the official
  trainer cut prompts from the left, through the image tokens (images come first in RePIC prompts), which
  desynchronises images and tokens. Lengths count each image's expanded tokens, computed from the image
  size alone (``_get_num_multimodal_tokens``, the function vLLM relies on) where the processor offers it,
  else by running the processor.
- ``check_reporters`` / ``check_rollout``: logging and generation backends that are asked for are installed.

- ``batch_layout``: how a step's completions (GRPO) or rows (SFT) split over the processes and
  accumulation steps; a step that does not split evenly is refused.
- ``check_sample_count``: GRPO has samples for at least one step. TRL's sampler drops an incomplete batch
  of prompts, so fewer samples than ``grpo.prompts_per_step`` would train no step at all and still save an
  untrained ``final/``.

Unknown tasks are refused by ``repic.tasks.normalize_task``; a training file whose images are not under
its image root by ``repic.data.samples.load_samples``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from ..errors import RepicError
from ..prompts import count_image_placeholders
from ..tasks import normalize_task
from .config import RolloutSection

_LISTED = 8  # offending samples listed in full in one message


@dataclass(frozen=True)
class PromptLength:
    """Token counts of one prompt once its image placeholders are expanded."""

    total: int
    image_tokens: int
    first_image_token: int  # position of the first image token (the start of a left cut's damage)


def _listing(problems: Sequence[str]) -> str:
    shown = "\n  ".join(problems[:_LISTED])
    more = f"\n  ... and {len(problems) - _LISTED} more" if len(problems) > _LISTED else ""
    return f"\n  {shown}{more}"


def _render(processor: Any, prompt: list[dict]) -> str:
    return processor.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)


def check_rows(rows: Sequence[dict], processor: Any, *, source: str) -> None:
    """Every row has an image, a known task, and one image placeholder per image (see the module docstring)."""
    token = getattr(processor, "image_token", None)
    problems = []
    for row in rows:
        where = f"sample {row['sample_index'] + 1} of {source}"
        normalize_task(row["task"], where=where)
        n_images = len(row["images"])
        if n_images == 0:
            problems.append(f"{where}: no image (every RePIC prompt needs at least one)")
            continue
        placeholders = count_image_placeholders(row["prompt"])
        rendered = _render(processor, row["prompt"]).count(token) if token else placeholders
        if placeholders != n_images or rendered != n_images:
            problems.append(
                f"{where}: {n_images} image(s) but {rendered} image placeholder(s) in the rendered prompt"
                + (f" (its text contains {token!r}: remove it)" if rendered > placeholders else "")
            )
    if problems:
        raise RepicError(
            f"{len(problems)} sample(s) of {source} do not have one image placeholder per image:"
            f"{_listing(problems)}\nfix these rows of the training file"
        )


def prompt_lengths(rows: Sequence[dict], processor: Any) -> list[PromptLength]:
    """Tokens of each row's prompt with every image placeholder expanded to the image's tokens."""
    tokenizer = processor.tokenizer
    image_id = tokenizer.convert_tokens_to_ids(processor.image_token) if hasattr(processor, "image_token") else None
    counter = getattr(processor, "_get_num_multimodal_tokens", None)
    texts = [_render(processor, row["prompt"]) for row in rows]
    if counter is None or image_id is None:
        return [_expanded_length(row, text, processor, image_id) for row, text in zip(rows, texts, strict=True)]
    sizes = []
    for row in rows:
        for path in row["images"]:
            with Image.open(path) as image:  # reads the header only
                sizes.append((image.height, image.width))
    per_image = iter(counter(image_sizes=sizes)["num_image_tokens"]) if sizes else iter(())
    lengths = []
    for row, ids in zip(rows, tokenizer(texts, add_special_tokens=False)["input_ids"], strict=True):
        positions = [i for i, token_id in enumerate(ids) if token_id == image_id]
        image_tokens = sum(next(per_image) for _ in row["images"])
        first = positions[0] if positions else len(ids)
        lengths.append(PromptLength(len(ids) - len(positions) + image_tokens, image_tokens, first))
    return lengths


def _expanded_length(row: dict, text: str, processor: Any, image_id: int | None) -> PromptLength:
    """A prompt's length from running the processor for real (processors without a size-only count)."""
    images = [Image.open(path).convert("RGB") for path in row["images"]]
    expanded = list(processor(text=[text], images=images)["input_ids"][0])
    positions = [i for i, token_id in enumerate(expanded) if token_id == image_id]
    return PromptLength(len(expanded), len(positions), positions[0] if positions else len(expanded))


def _answer_tokens(row: dict, processor: Any) -> int:
    text = "".join(part.get("text") or "" for part in row["completion"][0]["content"])
    return len(processor.tokenizer(text, add_special_tokens=False)["input_ids"]) + 2  # end of turn, newline


def check_lengths(
    rows: Sequence[dict],
    processor: Any,
    *,
    source: str,
    max_prompt_length: int | None,
    max_completion_length: int = 0,
    max_total_length: int | None = None,
    max_positions: int | None = None,
) -> list[PromptLength]:
    """Refuse prompts over ``max_prompt_length`` and sequences over ``max_total_length`` / the model's context.

    ``max_completion_length`` is what generation may add to a prompt (GRPO); SFT rows count their answer.
    Returns every prompt's lengths.
    """
    lengths = prompt_lengths(rows, processor)
    too_long, over_total = [], []
    for row, length in zip(rows, lengths, strict=True):
        where = f"sample {row['sample_index'] + 1}"
        if max_prompt_length is not None and length.total > max_prompt_length:
            cut = length.total - max_prompt_length
            lost = min(length.image_tokens, max(0, cut - length.first_image_token))
            too_long.append(
                f"{where}: {length.total} tokens ({length.image_tokens} of them image tokens); cutting it to "
                f"{max_prompt_length} would remove {lost} image token(s)"
            )
        answer = _answer_tokens(row, processor) if "completion" in row else max_completion_length
        sequence = length.total + answer
        for limit, name in ((max_total_length, "the length limit"), (max_positions, "the model's context")):
            if limit is not None and sequence > limit:
                over_total.append(f"{where}: prompt + answer = {sequence} tokens > {limit} ({name})")
                break
    if too_long:
        longest = max(length.total for length in lengths)
        raise RepicError(
            f"{len(too_long)} prompt(s) of {source} are longer than max_prompt_length={max_prompt_length}:"
            f"{_listing(too_long)}\nrepic never cuts a prompt (a cut through image tokens breaks the image/text "
            f"alignment): raise grpo.max_prompt_length to at least {longest}, or lower model.max_pixels so "
            "images take fewer tokens"
        )
    if over_total:
        raise RepicError(
            f"{len(over_total)} sample(s) of {source} do not fit:{_listing(over_total)}\nraise the limit "
            "(sft.max_length), shorten grpo.max_completion_length, or lower model.max_pixels"
        )
    return lengths


def check_reporters(report_to: Sequence[str]) -> None:
    """Each logger asked for in ``run.report_to`` is installed."""
    packages = {"tensorboard": "tensorboard", "wandb": "wandb"}
    for reporter in report_to:
        if importlib.util.find_spec(packages[reporter]) is None:
            raise RepicError(
                f"run.report_to asks for {reporter}, which is not installed: `pip install {packages[reporter]}` "
                "(or `pip install 'repic[" + reporter + "]'`), or drop it; metrics.jsonl is written either way"
            )


def check_rollout(rollout: RolloutSection, *, on_gpu: bool) -> None:
    """The generation backend asked for can run here."""
    if rollout.backend == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise RepicError(
                "grpo.rollout.backend is vllm, which is not installed: `pip install 'repic[vllm]'` on a GPU "
                "machine, or use backend: transformers"
            )
        if not on_gpu:
            raise RepicError("grpo.rollout.backend vllm needs a GPU; use backend: transformers on a CPU")


@dataclass(frozen=True)
class BatchLayout:
    """How one optimizer step is cut across processes and accumulation steps (see the module docstring)."""

    world_size: int
    per_step: int  # completions (GRPO) or rows (SFT) per optimizer step, all processes together
    per_device_batch: int  # per forward pass on one process
    accumulation: int  # forward passes per optimizer step on each process


def batch_layout(per_step: int, per_device_batch: int | None, world_size: int, *, what: str) -> BatchLayout:
    """Split ``per_step`` items over ``world_size`` processes in micro-batches of ``per_device_batch``.

    ``what`` names the setting in errors (``"grpo"`` or ``"sft"``). With ``per_device_batch`` unset each
    process takes its whole share in one pass.

    >>> batch_layout(32, None, 2, what="grpo")
    BatchLayout(world_size=2, per_step=32, per_device_batch=16, accumulation=1)
    >>> batch_layout(128, 8, 1, what="grpo").accumulation
    16
    """
    names = {
        "grpo": ("grpo.prompts_per_step x grpo.num_generations", "grpo.completions_per_device_batch"),
        "sft": ("sft.rows_per_step", "sft.rows_per_device_batch"),
    }[what]
    if per_step % world_size:
        raise RepicError(
            f"{names[0]} = {per_step} cannot be split evenly over {world_size} processes; make it a multiple "
            f"of {world_size} or launch a number of processes that divides it"
        )
    share = per_step // world_size
    micro = per_device_batch or share
    if share % micro:
        raise RepicError(
            f"each of the {world_size} process(es) takes {share} of the {per_step} items of a step, which "
            f"{names[1]} = {micro} does not divide; choose a divisor of {share}"
        )
    return BatchLayout(world_size, per_step, micro, share // micro)


def check_sample_count(
    count: int, source: str, *, per_step: int, num_generations: int, max_samples: int | None = None,
    tasks: Sequence[str] | None = None,
) -> None:
    """Refuse GRPO training data that cannot fill one step (``per_step`` prompts, see the module docstring)."""
    if count >= per_step:
        return
    limits = [f"data.max_samples {max_samples}" if max_samples is not None and max_samples < per_step else "",
              f"data.tasks {list(tasks)}" if tasks else ""]
    kept = " and ".join(limit for limit in limits if limit)
    fixes = ["add samples" + (f" (or loosen {kept})" if kept else "")]
    if count:
        fixes.append(f"lower grpo.prompts_per_step to {count} or fewer")
    raise RepicError(
        f"{source} gives {count} training sample(s){f' with {kept}' if kept else ''}, but one GRPO step takes "
        f"{per_step} (grpo.prompts_per_step, each answered {num_generations} times): no step would run; "
        + ", or ".join(fixes)
    )
