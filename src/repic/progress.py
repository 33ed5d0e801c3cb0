"""The progress sink every long-running library call reports through: one line of text at a time.

``Progress`` is the type of a ``progress=`` argument (training, held-out measures, the demo): a callable
that takes one line. The CLI passes ``repic.cli.console.say``; library callers pass ``print``, a list's
``append`` or nothing, in which case ``say_nothing`` stands in.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


def say_nothing(message: str) -> None:
    """The default progress sink: drops the line."""
