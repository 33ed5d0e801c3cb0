"""The four RePIC tasks and their names.

The project names tasks ``oct`` (object consistency, yes/no), ``vlt`` (visual localization, a box),
``ict`` (identity-consistent caption, one concept) and ``ict_multi`` (caption naming several
concepts). The official RePIC data files name the same tasks by their reward method
(``accu_reward_method``): ``yes_no``, ``iou``, ``yes_no_name`` and ``yes_no_name_multi``. Both
spellings are accepted everywhere; ``normalize_task`` is the single place that maps them.

>>> normalize_task("yes_no_name")
'ict'
>>> normalize_task(" OCT ")
'oct'
>>> official_name("vlt")
'iou'
"""

from __future__ import annotations

from .errors import RepicError

TASKS: tuple[str, ...] = ("oct", "vlt", "ict", "ict_multi")

OFFICIAL_NAMES: dict[str, str] = {
    "oct": "yes_no",
    "vlt": "iou",
    "ict": "yes_no_name",
    "ict_multi": "yes_no_name_multi",
}

_ALIASES: dict[str, str] = {**{t: t for t in TASKS}, **{v: k for k, v in OFFICIAL_NAMES.items()}}


def normalize_task(name: object, *, where: str = "") -> str:
    """Return the project's name for a task given either spelling; raise ``RepicError`` if unknown.

    ``where`` names the place the task came from (a file and row) so the error can point at it.
    """
    key = str(name).strip().lower() if name is not None else ""
    if key in _ALIASES:
        return _ALIASES[key]
    known = ", ".join(f"{t} ({OFFICIAL_NAMES[t]})" for t in TASKS)
    place = f" in {where}" if where else ""
    raise RepicError(f"unknown task {name!r}{place}; known tasks: {known}")


def official_name(task: str) -> str:
    """The official RePIC ``accu_reward_method`` for a task given in either spelling."""
    return OFFICIAL_NAMES[normalize_task(task)]
