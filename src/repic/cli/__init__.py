"""The ``repic`` command's entry point: ``main`` here, the commands in ``repic.cli.application``.

This module imports nothing heavy on purpose. The console script runs ``from repic.cli import main``
before any code of ours can catch anything, and importing typer, rich and every command module takes
about a second: a Ctrl-C in that second would end in a traceback. Here the commands are imported
inside ``main``, so an interrupt at any moment from then on ends with one line and exit status 130
(128 + SIGINT, what shells report for a command stopped with Ctrl-C).
"""

from __future__ import annotations

import sys  # built in: importing it costs nothing; nothing else is imported before ``main`` runs

INTERRUPTED_EXIT = 130  # 128 + SIGINT


def main(argv: list[str] | None = None) -> None:
    """Console entry point: import the commands and run them; Ctrl-C ends with one line and status 130."""
    try:
        from .application import run

        run(argv)
    except KeyboardInterrupt:
        interrupted()


def interrupted() -> None:
    """Say that the command was interrupted (one line, no traceback) and exit with status 130."""
    try:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed or gone with the terminal: the status still says it
        pass
    sys.exit(INTERRUPTED_EXIT)


def __getattr__(name: str) -> object:
    """``repic.cli.app`` (the typer app), imported on first use so that importing ``main`` stays cheap."""
    if name == "app":
        from .application import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
