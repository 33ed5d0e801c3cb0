"""The RePIC verifiable rewards, as plain functions TRL's ``GRPOTrainer`` can call.

One reward per task, with the official RePIC semantics by default (``accuracy_reward`` of the paper's
code, arXiv 2506.18369):

- ``oct`` (``yes_no``): 1 if the first ``yes``/``no`` in the output equals the label, else 0. The search is
  case-insensitive and, like the official regex ``(yes|no)``, finds the first occurrence even inside a
  word ("I know..." answers "no").
- ``vlt`` (``iou``): the first ``[x1, y1, x2, y2]`` of integers in the output; 1 if its IoU with the true
  box is at least ``iou_threshold`` (0.5), else 0. The IoU is the official arithmetic, see ``box_iou``.
- ``ict`` (``yes_no_name``): 1 if the output has at least ``min_caption_chars`` characters (100) and
  contains the concept name as an exact, case-sensitive substring; 0 if it also contains the closing
  form (``<bo>`` -> ``</bo>``), which the model otherwise learns to farm. A bare name (no brackets) has
  no closing form, as in the official code.
- ``ict_multi`` (``yes_no_name_multi``): the fraction of names present, 0 under the character minimum, 0
  for an empty name list. Unlike the official code, the closing-form rule also applies here, per name:
  a name counts only if its ``</x>`` form is absent, so the hack the single-concept reward closes is not
  left open with several concepts.

Options beyond the paper live in ``RewardOptions`` and are all off by default:

- ``word_boundary``: ``yes``/``no`` must be whole words ("know" no longer says "no"), and a name must not
  be glued into a longer word. The check applies only at an edge of the name that is itself a word
  character: ``<bo>`` matches in "<bo>," and "my<bo>" (its brackets already delimit it), while the bare
  name ``bo`` matches "bo's" but not "bob" or "abo".
- ``max_caption_chars``: an upper bound on the caption length (0 above it).
- ``degeneration_gate``: caption rewards are 0 when the output repeats itself. The measure is the share of
  repeated word 4-grams (``repetition_rate``); a caption says each thing once, so its rate is near 0,
  while the known GRPO collapse (the name farmed in runaway repetition) drives it towards 1. The default
  threshold 0.5 tolerates one verbatim repeat of a passage (rate just under 1/2) and flags a third copy.
- ``continuous_iou``: the VLT reward is the IoU itself instead of the thresholded 0/1.
- ``absent_name_penalty``: caption rewards lose ``penalty x`` the share of shown-but-absent concepts the
  caption names (floored at 0). The paper's multi-concept reward counts present names only, so naming
  every reference shown is never worse than telling which ones are in the picture; this makes it so.
  The absent concepts are the shown ones (the ``concepts`` column, or ``shown=``) not in the solution.
- ``absent_name_cost`` (after Omni-Persona, arXiv 2605.09996; one or the other with the penalty): a
  caption earns 1 per true name credited and pays ``cost`` per shown-but-absent name it names, divided by
  the number of true names and not floored, so naming an absent concept is worse than naming nothing
  (one present and one absent shown, cost 0.5: present only 1, both 0.5, neither 0, absent only -0.5).
- ``lenient_boxes``: boxes may hold floats and negative numbers and spaces inside the brackets, and in Qwen
  grounding JSON (``{"bbox_2d": [...]}`` or a list of such objects) the box after ``"bbox_2d"`` wins.

Where this package differs from the official code on purpose: malformed ground truth (a label that is not
yes/no, a box that is not 4 numbers or is inverted, an empty name) raises ``RepicError`` naming the row
instead of silently scoring 0 (or 1, for an empty name) forever; an unknown task raises instead of scoring
0; names are stripped of surrounding whitespace; and a completion made of several chat messages is judged
on all of their text, not only the first. Model output never raises: empty, ``None``, huge, unicode or
malformed outputs just score 0, and every pattern runs in linear time so a megabyte of output is cheap.

The TRL functions (``oct_reward`` ... ``make_reward_funcs``) take ``(completions, **columns)``, read the
task from the ``task`` or ``accu_reward_method`` column and the truth from ``solution``, and return
``None`` for rows of other tasks, so the four can be passed together and each row is scored once. When
TRL offers ``log_metric``, the reward's breakdown (``explain``) is logged as ``reward_parts/<task>/<part>``.

Layout: ``options`` (``RewardOptions``), ``output`` (reading model output: text, yes/no, boxes, IoU,
repetition), ``score`` (ground truth and the per-task rules: ``explain``, ``compute``) and ``trl_funcs``
(the batch functions TRL calls).
"""

from __future__ import annotations

from .options import DEGENERATION_THRESHOLD, RewardOptions
from .output import box_iou, completion_text, first_yes_no, is_degenerate, parse_box, repetition_rate
from .score import compute, explain
from .trl_funcs import TaskReward, ict_multi_reward, ict_reward, make_reward_funcs, oct_reward, vlt_reward

__all__ = [
    "DEGENERATION_THRESHOLD",
    "RewardOptions",
    "TaskReward",
    "box_iou",
    "completion_text",
    "compute",
    "explain",
    "first_yes_no",
    "ict_multi_reward",
    "ict_reward",
    "is_degenerate",
    "make_reward_funcs",
    "oct_reward",
    "parse_box",
    "repetition_rate",
    "vlt_reward",
]
