"""The RePIC verifiable rewards, as plain functions TRL's ``GRPOTrainer`` can call.

One reward per task, with the official RePIC semantics by default (the paper's ``accuracy_reward``,
arXiv 2506.18369):

- ``oct`` (``yes_no``): 1 if the first ``yes``/``no`` in the output (any case, even inside a word, as the
  official regex finds it) equals the label, else 0.
- ``vlt`` (``iou``): 1 if the first ``[x1, y1, x2, y2]`` of integers in the output has an IoU of at least
  ``iou_threshold`` (0.5) with the true box, else 0. The IoU is the official arithmetic: ``official_box_iou``.
- ``ict`` (``yes_no_name``): 1 if the output has at least ``min_caption_chars`` characters (100) and
  contains the concept name exactly, case-sensitive; 0 if it also contains the closing form (``</bo>``).
- ``ict_multi`` (``yes_no_name_multi``): the fraction of names present; unlike the official code, the
  closing-form rule applies here too, per name.

Options beyond the paper live in ``RewardOptions``, all off by default: ``word_boundary`` (whole-word
yes/no and names), ``max_caption_chars``, ``degeneration_gate`` (0 for a caption that repeats itself),
``continuous_iou`` (the IoU itself), ``absent_name_penalty`` or ``absent_name_cost`` (naming a shown but
absent concept costs) and ``lenient_boxes`` (floats, Qwen's ``bbox_2d`` JSON). Malformed ground truth
raises ``RepicError`` naming the row, where the official code scores 0; model output never raises, and
every pattern runs in linear time. The TRL functions (``oct_reward`` ... ``make_reward_funcs``) take
``(completions, **columns)``, read the task from the ``task`` or ``accu_reward_method`` column and the truth
from ``solution``, and return ``None`` for rows of other tasks, so the four can be passed together.

Layout: ``options``, ``output`` (reading model output), ``score`` (the per-task rules: ``explain``,
``compute``) and ``trl_funcs`` (the batch functions TRL calls).

In full: docs/notes/reward-semantics.md
"""

from __future__ import annotations

from .options import DEGENERATION_THRESHOLD, RewardOptions
from .output import completion_text, first_yes_no, is_degenerate, official_box_iou, parse_box, repetition_rate
from .score import compute, explain
from .trl_funcs import TaskReward, ict_multi_reward, ict_reward, make_reward_funcs, oct_reward, vlt_reward

__all__ = [
    "DEGENERATION_THRESHOLD",
    "RewardOptions",
    "TaskReward",
    "completion_text",
    "compute",
    "explain",
    "first_yes_no",
    "ict_multi_reward",
    "ict_reward",
    "is_degenerate",
    "make_reward_funcs",
    "oct_reward",
    "official_box_iou",
    "parse_box",
    "repetition_rate",
    "vlt_reward",
]
