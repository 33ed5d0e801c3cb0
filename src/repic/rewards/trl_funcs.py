"""The batch reward functions TRL's ``GRPOTrainer`` calls: ``(completions, **columns) -> list[float | None]``.

TRL passes every dataset column as a keyword list aligned with ``completions`` (plus its own keywords such
as ``prompts`` and ``trainer_state``, ignored here). Each function scores the rows of its own task, read
from the ``task`` or ``accu_reward_method`` column in either spelling, against the ``solution`` column
(and, for captions, the optional ``concepts`` column: every concept the prompt showed, which
``absent_name_penalty`` and ``absent_name_cost`` need), and returns ``None`` for the other rows; TRL skips
``None``, so passing all four scores every row once and logs each task's mean as ``rewards/<name>/mean``.
When TRL offers ``log_metric``, the mean of each part of the breakdown (``explain``) is logged too, as
``reward_parts/<task>/<part>``. Rows are named by their 0-based position in the batch in ground-truth errors.

``make_reward_funcs`` returns ``TaskReward`` objects rather than closures: they carry the task as
``__name__`` for TRL's logs and stay picklable for multi-process launchers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import RepicError
from ..tasks import TASKS, normalize_task
from .options import DEFAULT_OPTIONS, RewardOptions
from .score import explain_row


def _task_column(columns: Mapping[str, Any]) -> list[Any]:
    has_task, has_method = "task" in columns, "accu_reward_method" in columns
    if not (has_task or has_method):
        raise RepicError(
            "the rewards need a 'task' (or 'accu_reward_method') column in the training dataset, naming each "
            f"row's task; got columns: {', '.join(sorted(columns)) or 'none'}"
        )
    tasks = list(columns["task"] if has_task else columns["accu_reward_method"])
    if has_task and has_method:
        methods = list(columns["accu_reward_method"])
        if len(methods) != len(tasks):
            raise RepicError(
                f"the reward got {len(tasks)} tasks but {len(methods)} accu_reward_method values"
            )
        for row, (ours, official) in enumerate(zip(tasks, methods, strict=True)):
            where = f"row {row} of the batch"
            if normalize_task(ours, where=where) != normalize_task(official, where=where):
                raise RepicError(
                    f"{where}: task {ours!r} disagrees with accu_reward_method {official!r}; keep one column "
                    "or make them agree"
                )
    return tasks


def _score_batch(
    task: str, completions: Sequence[Any], columns: Mapping[str, Any], options: RewardOptions
) -> list[float | None]:
    tasks = _task_column(columns)
    if "solution" not in columns:
        raise RepicError(
            "the rewards need a 'solution' column in the training dataset holding each row's truth"
        )
    solutions = list(columns["solution"])
    if not len(tasks) == len(solutions) == len(completions):
        raise RepicError(
            f"the reward got {len(completions)} completions but {len(tasks)} tasks and {len(solutions)} "
            "solutions; pass one value per completion"
        )
    shown = list(columns["concepts"]) if "concepts" in columns else [None] * len(completions)
    if len(shown) != len(completions):
        raise RepicError(f"the reward got {len(completions)} completions but {len(shown)} concepts values")
    rewards: list[float | None] = []
    breakdowns: list[dict[str, float]] = []
    rows = zip(completions, tasks, solutions, shown, strict=True)
    for row, (completion, row_task, solution, row_shown) in enumerate(rows):
        where = f"row {row} of the batch"
        if normalize_task(row_task, where=where) != task:
            rewards.append(None)
            continue
        parts = explain_row(task, completion, solution, options, where, row_shown)
        breakdowns.append(parts)
        rewards.append(parts["overall"])
    log_metric = columns.get("log_metric")
    if callable(log_metric) and breakdowns:
        for part in dict.fromkeys(key for b in breakdowns for key in b):  # rows may lack a part
            if part != "overall":
                values = [b[part] for b in breakdowns if part in b]
                log_metric(f"reward_parts/{task}/{part}", sum(values) / len(values))
    return rewards


def oct_reward(completions: Sequence[Any], **columns: Any) -> list[float | None]:
    """TRL reward for object consistency (``yes_no``); ``None`` for rows of other tasks.

    >>> oct_reward([[{"role": "assistant", "content": "yes"}], "No."], solution=["Yes", "no"], task=["oct", "iou"])
    [1.0, None]
    """
    return _score_batch("oct", completions, columns, DEFAULT_OPTIONS)


def vlt_reward(completions: Sequence[Any], **columns: Any) -> list[float | None]:
    """TRL reward for visual localization (``iou``); ``None`` for rows of other tasks.

    >>> vlt_reward(["[10, 10, 50, 50]", "[0, 0, 5, 5]"], solution=[[12, 8, 50, 52]] * 2,
    ...            accu_reward_method=["iou", "iou"])
    [1.0, 0.0]
    """
    return _score_batch("vlt", completions, columns, DEFAULT_OPTIONS)


def ict_reward(completions: Sequence[Any], **columns: Any) -> list[float | None]:
    """TRL reward for identity-consistent captions (``yes_no_name``); ``None`` for rows of other tasks.

    >>> caption = "<bo> sits on the sofa" + " and looks at the window" * 4
    >>> ict_reward([caption, "<bo> sits."], solution=["<bo>", "<bo>"], task=["ict", "ict"])
    [1.0, 0.0]
    """
    return _score_batch("ict", completions, columns, DEFAULT_OPTIONS)


def ict_multi_reward(completions: Sequence[Any], **columns: Any) -> list[float | None]:
    """TRL reward for multi-concept captions (``yes_no_name_multi``); ``None`` for rows of other tasks.

    >>> caption = "<bo> and <kim> walk in the park" + " under the tall trees" * 4
    >>> ict_multi_reward([caption], solution=[["<bo>", "<kim>", "<ann>", "<max>"]], task=["ict_multi"])
    [0.5]
    """
    return _score_batch("ict_multi", completions, columns, DEFAULT_OPTIONS)


class TaskReward:
    """The TRL reward function of one task bound to options, named after the task.

    >>> reward = TaskReward("yes_no", RewardOptions(word_boundary=True))
    >>> reward.__name__, reward(["I know: yes"], solution=["yes"], task=["oct"])
    ('oct', [1.0])
    """

    def __init__(self, task: str, options: RewardOptions) -> None:
        self.task = normalize_task(task)
        self.options = options
        self.__name__ = self.task  # TRL names the logged metric after it

    def __call__(self, completions: Sequence[Any], **columns: Any) -> list[float | None]:
        return _score_batch(self.task, completions, columns, self.options)

    def __repr__(self) -> str:
        return f"TaskReward({self.task!r}, {self.options!r})"


def make_reward_funcs(options: RewardOptions | None = None) -> list[Callable[..., list[float | None]]]:
    """The four TRL reward functions bound to ``options``, named ``oct``, ``vlt``, ``ict``, ``ict_multi``.

    >>> funcs = make_reward_funcs(RewardOptions(min_caption_chars=40))
    >>> [f.__name__ for f in funcs]
    ['oct', 'vlt', 'ict', 'ict_multi']
    >>> funcs[2](["<bo> naps on the sofa by the big window."], solution=["<bo>"], task=["ict"])
    [1.0]
    """
    return [TaskReward(task, options or DEFAULT_OPTIONS) for task in TASKS]
