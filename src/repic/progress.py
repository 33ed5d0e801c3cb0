"""The progress sink every long-running library call reports through: one line of text at a time.

``Progress`` is the type of a ``progress=`` argument (training, held-out measures, the demo): a callable
that takes one line. The CLI passes ``repic.cli.console.say``; library callers pass ``print``, a list's
``append`` or nothing, in which case ``say_nothing`` stands in. ``counted_stages`` turns a sink into the
``(stage, done, total)`` callback of calls that count their items (``repic data synth``'s images).
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]
StageProgress = Callable[[str, int, int], None]


def say_nothing(message: str) -> None:
    """The default progress sink: drops the line."""


def counted_stages(say: Progress, lines_per_stage: int = 10) -> StageProgress:
    """A ``(stage, done, total)`` callback that says ``stage: done/total`` about ``lines_per_stage`` times
    per stage, always at its end: enough to see a run move, few enough to read in a log."""
    said: dict[str, int] = {}

    def report(stage: str, done: int, total: int) -> None:
        step = max(1, -(-total // lines_per_stage))  # ceiling: at most lines_per_stage lines
        if done >= total or done // step > said.get(stage, 0) // step:
            said[stage] = done
            say(f"{stage}: {done}/{total}")

    return report
