"""Every command and flag that a message of the program names exists (no advice pointing at nothing).

The messages are collected from the source: every string literal (f-string parts included) under
``src/repic``. A backticked ``repic ...`` command must be a real command path, and the flags written
inside it must be options of that command; any other ``--flag`` in a message must be an option of some
command, unless it belongs to another program (listed in ``OTHER_PROGRAMS``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import typer

from repic.cli import app

SOURCE = Path(__file__).resolve().parents[1] / "src" / "repic"
# Flags of other programs that messages quote on purpose (torchrun, accelerate, pip).
OTHER_PROGRAMS = {
    "--nproc_per_node", "--num_processes", "--standalone", "--cpu", "--config_file",  # torchrun, accelerate
    "--local-dir",  # hf download
    "--no-build-isolation",  # pip
}
_BACKTICKED = re.compile(r"`(repic [^`]*)`")
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*[a-z0-9]")


def _commands() -> dict[tuple[str, ...], set[str]]:
    """Each command path (``("db", "add")``) and its option names."""
    found: dict[tuple[str, ...], set[str]] = {}

    def walk(command, path: tuple[str, ...]) -> None:
        found[path] = {
            name for param in command.params for name in [*param.opts, *getattr(param, "secondary_opts", [])]
        }
        for name, sub in getattr(command, "commands", {}).items():  # typer bundles its own click: duck-type
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def _strings() -> list[tuple[str, str]]:
    """(where, text) of every string literal in the package; f-strings give their literal parts joined."""
    found = []
    for file in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            else:
                continue
            found.append((f"{file.relative_to(SOURCE)}:{node.lineno}", text))
    return found


def _wrong_advice(strings: list[tuple[str, str]], commands: dict[tuple[str, ...], set[str]]) -> list[str]:
    every_flag = set().union(*commands.values(), {"--help"})  # click adds --help to every command
    wrong = []
    for where, text in strings:
        quoted = set()
        for match in _BACKTICKED.finditer(text):
            words = match.group(1).split()[1:]
            path: tuple[str, ...] = ()
            while words and (*path, words[0]) in commands:
                path = (*path, words.pop(0))
            # A group's flag (`repic train --set`) is one of its subcommands'.
            known = set().union(*(flags for sub, flags in commands.items() if sub[: len(path)] == path))
            for flag in _FLAG.findall(match.group(1)):
                quoted.add(flag)
                if flag not in known:
                    wrong.append(f"{where}: `{match.group(1)}`: repic {' '.join(path)} has no {flag}")
            is_group = any(len(sub) == len(path) + 1 and sub[: len(path)] == path for sub in commands)
            # A lower-case word after a group must be one of its commands (METHOD, X are placeholders).
            if words and is_group and words[0].islower() and words[0].isidentifier():
                wrong.append(f"{where}: `{match.group(1)}`: no command {words[0]!r} under {' '.join(path) or 'repic'}")
        for flag in set(_FLAG.findall(text)) - quoted - OTHER_PROGRAMS:
            if flag not in every_flag:
                wrong.append(f"{where}: {flag} is no option of any command")
    return wrong


def test_every_named_command_and_flag_exists():
    wrong = _wrong_advice(_strings(), _commands())
    assert not wrong, "\n".join(wrong)


def test_the_check_finds_wrong_advice():
    wrong = _wrong_advice(
        [
            ("a", "fix it first (`repic db check`)"),
            ("b", "run `repic db add DB bo --store reference`"),
            ("c", "pass --no-such-flag"),
            ("d", "run `repic db validate DB --image-root ROOT` or `repic train grpo --set a=1`"),
        ],
        _commands(),
    )
    assert [line.split(":")[0] for line in wrong] == ["a", "b", "c"], wrong
