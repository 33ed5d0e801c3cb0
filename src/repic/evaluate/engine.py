"""One evaluation engine: prompts in, answers out, scored the way ``repic eval`` and the rewards score them.

Every place that measures a model goes through here: the held-out rewards of a training run
(``repic.train.heldout``), the demo's evaluation and the tiny model's probe (``repic.world``), and the
``repic eval`` command. Two halves:

- **Answering prompts.** An ``EvalTask`` is one chat prompt with its image paths (the layout of the
  training rows, ``{"prompt": [...], "images": [...]}``) and, when a RePIC reward scores it, its task,
  truth and the concepts it shows. ``evaluate(model, processor, tasks, settings)`` answers them with
  ``repic.inference.generate_batched`` (the code ``repic caption`` generates with: left padding, sorted
  by length) and scores each scored task with ``repic.rewards.compute``, the training reward, so a
  held-out number means what the reward means. Tasks with no ``task`` are answered only: the caller
  scores them with measures of its own (the probe's word counts, say).
- **Scoring prediction files.** ``score_predictions(loaded, aliases)`` scores the rows of a predictions
  file (what ``repic caption`` writes, read by ``repic.evaluate.load_predictions``) exactly as
  ``repic eval`` prints them: concept names in the official mode (script variant chosen by the most
  concepts in a row unless given) and the strict mode (with ``aliases``, e.g. ``display_names`` of a
  concept database), recognition accuracy for OCT rows and localization accuracy for VLT rows.

What it chose and why:

- **Greedy by default** (``GenerationSettings``' defaults, the paper's evaluation): before/after
  differences are then the model's, not the sampler's.
- **The model's mode is restored.** ``evaluate`` switches the model to eval mode (no dropout) for the
  answers and back to what it was, so a measurement in the middle of training leaves training as it was.
- **Means in the order given.** ``Evaluation.mean_rewards`` averages each task's rewards in the tasks'
  order (sums are then bit-for-bit those of a plain loop over the same answers) and lists tasks in the
  canonical order of ``repic.tasks.TASKS``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..inference.generate import (
    BatchDone,
    Generated,
    GenerationSettings,
    Message,
    PromptInput,
    generate_batched,
)
from ..rewards import RewardOptions, compute
from ..tasks import TASKS, normalize_task
from .metrics import (
    LocalizationScores,
    NameScores,
    RecognitionScores,
    choose_official_variant,
    localization_accuracy,
    official_scores,
    recognition_accuracy,
    strict_scores,
)

if TYPE_CHECKING:
    from ..concepts.database import ConceptDatabase
    from .predictions import LoadedPredictions

OnBatch = Callable[[BatchDone], None]


# ------------------------------------------------------------------------------------------ prompts
@dataclass(frozen=True)
class EvalTask:
    """One prompt to answer and, when a RePIC reward scores it, what the answer is scored against.

    ``prompt`` holds chat messages with one ``{"type": "image"}`` per image, ``images`` the image paths in
    that order. ``task`` (``oct``, ``vlt``, ``ict``, ``ict_multi``, either spelling) routes the reward;
    ``None`` leaves the answer to the caller's own measures. ``solution`` is the truth the reward reads
    (a yes/no, a box, a name or a list of names); ``shown`` the concepts the prompt shows, which the caption
    reward's absent-name penalty reads.
    """

    prompt: list[Message]
    images: list[str]
    task: str | None = None
    solution: Any = None
    shown: list[str] | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any], **scoring: Any) -> EvalTask:
        """The task of a training-layout row (``prompt`` and ``images``), with ``task`` / ``solution`` /
        ``shown`` given by keyword when it is scored."""
        return cls(row["prompt"], [str(image) for image in row["images"]], **scoring)


@dataclass(frozen=True)
class Evaluation:
    """The answers to a list of tasks, in their order, and the reward of each scored one (else ``None``)."""

    tasks: list[EvalTask]
    answers: list[Generated]
    rewards: list[float | None]

    def mean_rewards(self) -> dict[str, float]:
        """Mean reward per task, tasks in canonical order (``repic.tasks.TASKS``), unscored tasks left out."""
        by_task: dict[str, list[float]] = defaultdict(list)
        for task, reward in zip(self.tasks, self.rewards, strict=True):
            if reward is not None:
                by_task[normalize_task(task.task)].append(reward)
        return {task: sum(by_task[task]) / len(by_task[task]) for task in TASKS if by_task[task]}

    def mean_reward(self) -> float:
        """Mean reward of every scored task; 0.0 when none was scored (an empty measurement)."""
        scored = [reward for reward in self.rewards if reward is not None]
        return sum(scored) / len(scored) if scored else 0.0


def answer(
    model, processor, tasks: Sequence[EvalTask], settings: GenerationSettings, *, on_batch: OnBatch | None = None
) -> list[Generated]:
    """The model's answers to ``tasks``, in their order (images opened as RGB; the model's mode untouched)."""
    from PIL import Image

    prompts = []
    for task in tasks:
        images = []
        for path in task.images:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        prompts.append(PromptInput(task.prompt, images))
    return generate_batched(model, processor, prompts, settings, on_batch=on_batch)


def score(tasks: Sequence[EvalTask], answers: Sequence[Generated], options: RewardOptions | None = None) -> list[float | None]:
    """The RePIC reward of each answer whose task is scored (``None`` for the others).

    >>> tasks = [EvalTask([], [], "oct", "yes"), EvalTask([], [], "vlt", [0, 0, 10, 10]), EvalTask([], [])]
    >>> score(tasks, [Generated("Yes.", 2, True), Generated("[0, 0, 10, 20]", 9, True), Generated("hi", 1, True)])
    [1.0, 1.0, None]
    """
    return [
        None if task.task is None else compute(task.task, answer.text, task.solution, options, shown=task.shown)
        for task, answer in zip(tasks, answers, strict=True)
    ]


def evaluate(
    model,
    processor,
    tasks: Sequence[EvalTask],
    settings: GenerationSettings | None = None,
    *,
    options: RewardOptions | None = None,
    on_batch: OnBatch | None = None,
) -> Evaluation:
    """Answer ``tasks`` in eval mode (the model's mode is restored after) and score the scored ones;
    ``settings`` default to greedy ``GenerationSettings()``."""
    was_training = model.training
    model.eval()
    try:
        answers = answer(model, processor, tasks, settings or GenerationSettings(), on_batch=on_batch)
    finally:
        model.train(was_training)
    return Evaluation(list(tasks), answers, score(tasks, answers, options))


# ------------------------------------------------------------------------------------------ prediction files
@dataclass(frozen=True)
class CaptionScores:
    """The caption rows of one predictions file scored in both name modes (``repic.evaluate.metrics``)."""

    rows: int
    variant: str  # the official script the official scores follow
    official: NameScores
    strict: NameScores


@dataclass(frozen=True)
class PredictionScores:
    """Everything ``repic eval`` scores in one predictions file; ``None`` where the file has no such rows."""

    captions: CaptionScores | None
    recognition: RecognitionScores | None
    localization: LocalizationScores | None


def display_names(database: ConceptDatabase) -> dict[str, list[str]]:
    """Each concept's display name as an alias of its tag (``"<ironman>": ["Iron Man"]``) for the strict mode."""
    return {tag: [concept.name] for tag, concept in database.concepts.items() if concept.name.strip()}


def score_predictions(
    loaded: LoadedPredictions, aliases: Mapping[str, Sequence[str]] | None = None, variant: str | None = None
) -> PredictionScores:
    """The scores of a read predictions file (official ``variant`` chosen from the rows when not given)."""
    captions = None
    if loaded.captions:
        chosen = variant or choose_official_variant(loaded.captions)
        captions = CaptionScores(
            rows=len(loaded.captions),
            variant=chosen,
            official=official_scores(loaded.captions, chosen),
            strict=strict_scores(loaded.captions, aliases),
        )
    return PredictionScores(
        captions=captions,
        recognition=recognition_accuracy(loaded.recognition) if loaded.recognition else None,
        localization=localization_accuracy(loaded.localization) if loaded.localization else None,
    )
