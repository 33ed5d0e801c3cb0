"""The embedded world's commands, added to ``repic`` through the ``repic.commands`` entry point.

The library's command line never imports the world: ``repic.cli`` loads every function registered under the
``repic.commands`` entry-point group (this package's ``register`` is declared in ``pyproject.toml``) and hands
it the command groups to extend. The world adds ``repic demo``, ``repic data synth`` and ``repic models
build-tiny | pretrain-tiny | probe``.
"""

from __future__ import annotations

import typer

from . import demo_cmd, models_cmd, synth_cmd


def register(groups: dict[str, typer.Typer]) -> None:
    """Add the world's commands to the ``repic`` app (``groups[""]``) and its ``data`` and ``models`` groups."""
    groups[""].command("demo")(demo_cmd.demo_command)
    groups["data"].registered_commands.extend(synth_cmd.commands.registered_commands)
    groups["models"].registered_commands.extend(models_cmd.commands.registered_commands)
