"""The ``repic`` command's typer app: thin subcommands over the library.

Each subcommand group lives in its own module (``db_cmd``, ``data_cmd``, ``eval_cmd``, ``models_cmd``) and only
parses arguments, calls the library and prints. User errors (``RepicError``) and file-system errors
(``OSError``) are printed as one red message and exit with status 2, never as a traceback. The entry point
(``repic.cli.main``) imports this module inside its Ctrl-C handling, so this module may import what it needs.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer
from rich.console import Console
from rich.text import Text

from ..errors import RepicError, os_error_message
from . import (
    INTERRUPTED_EXIT,
    bench_cmd,
    caption_cmd,
    data_cmd,
    db_cmd,
    interrupted,
    judge_cmd,
    merge_cmd,
    models_cmd,
    report_cmd,
    serve_cmd,
    train_cmd,
)

app = typer.Typer(
    name="repic",
    help="Personalized image captioning for multi-modal LLMs with RePIC verifiable-reward RL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db_cmd.app, name="db")
app.add_typer(data_cmd.app, name="data")
app.add_typer(models_cmd.app, name="models")
app.add_typer(train_cmd.app, name="train")
app.add_typer(judge_cmd.app, name="eval")
app.add_typer(bench_cmd.app, name="bench")  # `repic eval FILE...` scores; `repic eval judge A B`
app.command("caption")(caption_cmd.caption_command)
app.command("merge")(merge_cmd.merge_command)
app.command("report")(report_cmd.report_command)
app.command("serve")(serve_cmd.serve_command)
app.command("app")(serve_cmd.app_command)

COMMAND_PLUGINS = "repic.commands"  # entry-point group: functions that add commands (the embedded world's)


def _load_command_plugins() -> None:
    """Let installed packages add commands; the library itself never imports them (``repic.world`` is one)."""
    groups = {"": app, "data": data_cmd.app, "models": models_cmd.app, "train": train_cmd.app, "db": db_cmd.app}
    for entry_point in entry_points(group=COMMAND_PLUGINS):
        try:
            entry_point.load()(groups)
        except Exception as exc:  # a broken plugin must not take the library's own commands down with it
            print(f"warning: the {entry_point.name!r} commands ({entry_point.value}) did not load: {exc}",
                  file=sys.stderr)


_load_command_plugins()

_err = Console(stderr=True)


def run(argv: list[str] | None = None) -> None:
    """Run the app, turning ``RepicError`` into a clear message and exit code 2.

    Typer/click run in standalone mode, so usage errors print click's own message (exit 2) and
    ``typer.Exit(code)`` sets the exit status; the project's own errors and file-system errors
    (``OSError``, printed with the path) are handled here, so no command ends in a traceback.
    """
    try:
        app(args=argv, prog_name="repic")
    except SystemExit as exc:
        if _typer_stopped_an_interrupt(exc):  # typer turns Ctrl-C into a silent exit 130: say why it ended
            interrupted()
        raise
    except RepicError as exc:
        # Text, not markup: messages quote user data such as "[x1, y1, x2, y2]", which markup would eat.
        _err.print(Text.assemble(("error:", "bold red"), " ", str(exc)), soft_wrap=True)
        sys.exit(2)
    except OSError as exc:
        # Any file-system failure (permission, read-only, full disk) as one line naming the path.
        _err.print(Text.assemble(("error:", "bold red"), " ", os_error_message(exc)), soft_wrap=True)
        sys.exit(2)


def _typer_stopped_an_interrupt(exc: SystemExit) -> bool:
    """Whether typer ended the command because of Ctrl-C (it raises ``Exit(130)`` from the interrupt).

    Commands that handle Ctrl-C themselves (``repic train``, ``repic demo``) print their own line and exit
    130 directly; their exit is not typer's ``Exit``, so it is not announced twice.
    """
    stopped = exc.__context__
    return (exc.code == INTERRUPTED_EXIT and isinstance(stopped, typer.Exit)
            and isinstance(stopped.__cause__, KeyboardInterrupt))
