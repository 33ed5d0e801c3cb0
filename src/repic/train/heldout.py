"""Mean RePIC reward per task on held-out samples, greedy: the before/after numbers of a training run.

``heldout_samples(build)`` reads a ``repic data build`` folder's held-out files (concepts never seen in
training) as training-layout samples:

- ``eval/oct.jsonl`` and ``eval/vlt.jsonl`` are already RePIC samples;
- the caption evaluation rows become caption samples: ``eval/single.jsonl`` -> ``ict``, ``eval/two.jsonl``
  and ``eval/four.jsonl`` -> ``ict_multi``. Their references are the concepts present (skip-retrieval), so
  the solution is every reference's name; the ``Name: <x>, Info: ...`` lines take each concept's info from
  the build's ``eval/database.json``, and the question is the row's own (an official evaluation phrasing,
  never a training one).

With ``per_task`` set, each task keeps that many samples drawn with a fixed seed (the files are ordered
by label), so every run on a build measures the same, balanced samples. Prompts are built exactly as
training builds them (``repic.train.dataset``), so the numbers measure the trained skill on new concepts
and not a change of layout. ``heldout_rewards(model, samples)`` answers each prompt greedily
(deterministic, so before/after differences are the model's) and scores the answers with the same
``RewardOptions`` as training, both through the evaluation engine (``repic.evaluate.engine``).
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..concepts.database import ConceptDatabase
from ..data.samples import load_samples, read_rows, resolve_image_root
from ..errors import RepicError
from ..evaluate.engine import EvalTask, Evaluation, evaluate
from ..inference.generate import BatchDone, GenerationSettings
from ..progress import Progress
from ..prompts import ict_problem
from ..records import Sample
from ..rewards import RewardOptions
from ..tasks import TASKS, normalize_task
from .dataset import grpo_rows

CAPTION_FILES = {"single.jsonl": "ict", "two.jsonl": "ict_multi", "four.jsonl": "ict_multi"}
SAMPLE_FILES = ("oct.jsonl", "vlt.jsonl")
EVAL_DIR = "eval"


def heldout_samples(build: str | os.PathLike, *, per_task: int | None = None) -> list[Sample]:
    """The held-out samples of a build folder (see the module docstring), at most ``per_task`` per task."""
    folder = Path(build).expanduser().resolve() / EVAL_DIR
    if not folder.is_dir():
        raise RepicError(
            f"{folder.parent} has no {EVAL_DIR}/ folder: point heldout.build at a `repic data build` output "
            "built from a world with held-out concepts"
        )
    samples: list[Sample] = []
    for name in SAMPLE_FILES:
        if (folder / name).is_file():
            samples += load_samples(folder / name)
    database_path = folder / "database.json"
    captions = [name for name in CAPTION_FILES if (folder / name).is_file()]
    if captions and not database_path.is_file():
        raise RepicError(f"{database_path} is missing; the caption rows need it for each concept's info")
    database = ConceptDatabase.load(database_path) if captions else None
    for name in captions:
        samples += _caption_samples(folder / name, CAPTION_FILES[name], database)
    if not samples:
        raise RepicError(f"{folder} holds none of {', '.join((*SAMPLE_FILES, *CAPTION_FILES))}")
    return _cap_per_task(samples, per_task)


def _caption_samples(path: Path, task: str, database: ConceptDatabase) -> list[Sample]:
    root = resolve_image_root(path)
    samples = []
    for number, row in read_rows(path):
        where = f"{path} row {number}"
        try:
            tags = list(row["reference_concepts"])
            images = [str(root / image) for image in row["references"]] + [str(root / row["image"])]
            question = row["question"]
        except (KeyError, TypeError) as exc:
            raise RepicError(
                f"{where}: a caption evaluation row needs image, references, reference_concepts and question ({exc})"
            ) from exc
        missing = [tag for tag in tags if tag not in database]
        if missing:
            raise RepicError(f"{where}: {', '.join(missing)} not in the build's eval/database.json")
        problem = ict_problem([(tag, database.get(tag).info) for tag in tags], question)
        solution: Any = tags[0] if task == "ict" else tags
        samples.append(Sample(task, images, problem, solution, {"concepts": tags}))
    absent = sorted({image for sample in samples for image in sample.images if not Path(image).is_file()})
    if absent:
        raise RepicError(f"{path}: {len(absent)} image(s) not found under {root}, e.g. {absent[0]}")
    return samples


def _cap_per_task(samples: Sequence[Sample], per_task: int | None) -> list[Sample]:
    """At most ``per_task`` samples of each task, drawn with a fixed seed (files are ordered by label, so
    taking the first ones would keep only positives), in canonical task order."""
    by_task: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_task[normalize_task(sample.task)].append(sample)
    kept = []
    for task in TASKS:
        group = by_task[task]
        if per_task is not None and len(group) > per_task:
            group = random.Random(f"heldout:{task}").sample(group, per_task)
        kept += group
    return kept


def _resolve(model: Any, processor: Any) -> tuple[Any, Any]:
    """(model, processor) from a model folder, a loaded policy, or a model plus its processor."""
    if isinstance(model, str | os.PathLike):
        from ..models import load_policy

        policy = load_policy(model)
        return policy.model, policy.processor
    if hasattr(model, "model") and hasattr(model, "processor"):
        return model.model, model.processor
    if processor is None:
        raise RepicError("heldout_rewards needs the processor with a bare model (or pass a model folder)")
    return model, processor


def heldout_evaluation(
    model: Any,
    samples: Sequence[Sample],
    *,
    processor: Any = None,
    options: RewardOptions | None = None,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    box_style: str = "json",
    prompt_seed: int = 0,
    progress: Progress | None = None,
) -> Evaluation:
    """The model's greedy answers to ``samples`` (training prompts) and their rewards, through
    ``repic.evaluate.engine`` (the model's mode is restored). ``progress`` receives a line per batch."""
    model, processor = _resolve(model, processor)
    rows = grpo_rows(samples, prompt_seed=prompt_seed, box_style=box_style)
    # The truth and the shown concepts as the samples hold them (the rows carry them as JSON strings).
    tasks = [
        EvalTask.from_row(row, task=row["task"], solution=sample.solution, shown=sample.extra.get("concepts"))
        for row, sample in zip(rows, samples, strict=True)
    ]
    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size, cache="dynamic")

    def report(done: BatchDone) -> None:
        if progress is not None:
            progress(f"held-out: {done.done}/{done.total} answered")

    return evaluate(model, processor, tasks, settings, options=options, on_batch=report)


def heldout_rewards(
    model: Any,
    samples: Sequence[Sample],
    *,
    processor: Any = None,
    options: RewardOptions | None = None,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    box_style: str = "json",
    prompt_seed: int = 0,
    progress: Progress | None = None,
    quiet: bool = True,
) -> dict[str, float]:
    """Mean reward per task (tasks in canonical order) of the model's greedy answers to ``samples``.

    ``model`` is a model folder, a loaded policy (``.model`` and ``.processor``) or a model with
    ``processor``. ``progress`` receives a line per batch unless ``quiet``.
    """
    return heldout_evaluation(
        model, samples, processor=processor, options=options, max_new_tokens=max_new_tokens,
        batch_size=batch_size, box_style=box_style, prompt_seed=prompt_seed, progress=None if quiet else progress,
    ).mean_rewards()
