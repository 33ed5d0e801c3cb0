"""RePIC samples -> the ``datasets.Dataset`` rows TRL's trainers read.

GRPO rows (``grpo_rows`` / ``grpo_dataset``)::

    {"prompt": [{"role": "user", "content": [{"type": "image"}, ..., {"type": "text", "text": ...}]}],
     "images": ["/abs/ref.png", ..., "/abs/query.png"],
     "task": "ict", "solution": "<bo>", "concepts": "[\"<bo>\"]", "sample_index": 17}

SFT rows (``sft_rows`` / ``sft_dataset``) add ``"completion": [{"role": "assistant", "content": [...]}]``.

Choices, and why:

- **Conversational prompts, one ``{"type": "image"}`` placeholder per image**, images in an ``images``
  column: TRL's VLM path, in the official training layout (``repic.prompts.training_messages``). A
  sample's ICT suffix is drawn from ``random.Random(f"{prompt_seed}:{index}")``, so it keeps its prompt.
- **Images as paths**, decoded when a batch reads them (``datasets.Image``).
- **``solution`` is always a string** (Arrow cannot hold mixed types): lists become JSON, which the rewards
  read back. **``task``** is what the rewards route on; **``concepts``** lists, as JSON, every concept the
  prompt shows, for ``absent_name_penalty``.
- **SFT targets**: the sample's ``caption``, else the verifiable answer for OCT and VLT; an ICT sample
  without a caption is refused, naming the row.

In full: docs/notes/trl-rows.md
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

from ..errors import RepicError
from ..prompts import format_box_answer, training_messages
from ..records import Sample
from ..tasks import normalize_task

Row = dict[str, Any]
CAPTION_KEY = "caption"


def solution_text(solution: Any) -> str:
    """A solution as the string the ``solution`` column holds: strings unchanged, anything else as JSON.

    >>> solution_text("<bo>"), solution_text(["<bo>", "<kim>"]), solution_text([1, 2, 30, 40])
    ('<bo>', '["<bo>", "<kim>"]', '[1, 2, 30, 40]')
    """
    return solution if isinstance(solution, str) else json.dumps(solution, ensure_ascii=False)


def sample_prompt(sample: Sample, index: int, *, prompt_seed: int = 0, box_style: str = "json") -> list[dict]:
    """The training chat prompt of the ``index``-th sample (its ICT suffix drawn from a per-sample seed)."""
    rng = random.Random(f"{prompt_seed}:{index}")
    return training_messages(sample.task, sample.problem, len(sample.images), rng, box_style=box_style)


def grpo_rows(samples: Sequence[Sample], *, prompt_seed: int = 0, box_style: str = "json") -> list[Row]:
    """One GRPO row per sample (layout in the module docstring)."""
    rows = []
    for index, sample in enumerate(samples):
        task = normalize_task(sample.task, where=f"sample {index}")
        if not sample.images:
            raise RepicError(f"sample {index} ({task}) has no image; every RePIC sample needs at least one")
        rows.append({
            "prompt": sample_prompt(sample, index, prompt_seed=prompt_seed, box_style=box_style),
            "images": [str(image) for image in sample.images],
            "task": task,
            "solution": solution_text(sample.solution),
            "concepts": json.dumps(list(sample.extra.get("concepts", [])), ensure_ascii=False),
            "sample_index": index,
        })
    return rows


def sft_target(sample: Sample, index: int, *, box_style: str = "json") -> str:
    """The answer SFT trains on: the caption, else the yes/no or the box; ICT without a caption is refused."""
    caption = sample.extra.get(CAPTION_KEY)
    if isinstance(caption, str) and caption.strip():
        return caption.strip()
    task = normalize_task(sample.task)
    if task == "oct":
        return str(sample.solution).strip().rstrip(".").lower()
    if task == "vlt":
        concepts = sample.extra.get("concepts") or [""]
        return format_box_answer(sample.solution, str(concepts[0]), style=box_style)
    raise RepicError(
        f"sample {index} ({task}) has no '{CAPTION_KEY}' to train on; SFT needs reference captions for caption "
        "tasks: use the sft.jsonl written by `repic data build`, or add a caption field to each caption sample"
    )


def sft_rows(samples: Sequence[Sample], *, prompt_seed: int = 0, box_style: str = "json") -> list[Row]:
    """One SFT row per sample: the GRPO row plus the assistant's ``completion``."""
    rows = grpo_rows(samples, prompt_seed=prompt_seed, box_style=box_style)
    for index, (row, sample) in enumerate(zip(rows, samples, strict=True)):
        answer = sft_target(sample, index, box_style=box_style)
        row["completion"] = [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    return rows


def to_dataset(rows: Sequence[Row]):
    """A ``datasets.Dataset`` of the rows whose ``images`` are opened only when a batch reads them.

    The one way rows of this layout become a dataset: GRPO and SFT here, and the tiny base's pretraining."""
    from datasets import Dataset, Image, List

    if not rows:
        raise RepicError("no training samples are left: check data.train_file, data.tasks and data.max_samples")
    return Dataset.from_list(list(rows)).cast_column("images", List(Image()))


def grpo_dataset(samples: Sequence[Sample], *, prompt_seed: int = 0, box_style: str = "json"):
    """The GRPO training set of ``samples``."""
    return to_dataset(grpo_rows(samples, prompt_seed=prompt_seed, box_style=box_style))


def sft_dataset(samples: Sequence[Sample], *, prompt_seed: int = 0, box_style: str = "json"):
    """The SFT training set of ``samples``."""
    return to_dataset(sft_rows(samples, prompt_seed=prompt_seed, box_style=box_style))


def select_samples(samples: Sequence[Sample], tasks: Sequence[str] | None, limit: int | None) -> list[Sample]:
    """The samples of the given tasks (either spelling; None: all), the first ``limit`` of them."""
    keep = {normalize_task(task, where="data.tasks") for task in tasks} if tasks else None
    chosen = [sample for sample in samples if keep is None or normalize_task(sample.task) in keep]
    return chosen[:limit] if limit is not None else chosen
