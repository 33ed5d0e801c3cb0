"""One word per idea on the command line: the shared options of ``repic.cli.options`` and the names commands use.

``--port`` takes 1-65535 (``PortOpt``); ``--image-root`` is where an input file's image paths start in every
command that shows it, the database's folder being ``--database-image-root``; the captioning mode that shows
the query's own concepts is ``given``; ``repic caption --max-new-tokens`` defaults to the paper's 128.
"""

from __future__ import annotations

import inspect
import re

import pytest
import typer
from typer.testing import CliRunner

from repic.cli.caption_cmd import caption_command
from repic.cli.options import CAPTION_MAX_NEW_TOKENS, PortOpt, check_port
from repic.concepts import ConceptDatabase
from repic.inference import GenerationSettings


def flat(text: str) -> str:
    """Help or error output with rich's box drawing and line wrapping undone."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.fixture(autouse=True)
def wide_help(monkeypatch):
    """Help tables wide enough that no option name or metavar is broken across lines."""
    monkeypatch.setenv("COLUMNS", "250")


def _listener() -> typer.Typer:
    """A command with the shared ``--port``, as ``repic serve`` and ``repic app`` declare it."""
    app = typer.Typer()

    @app.command()
    def listen(port: PortOpt = 8000) -> None:
        print(f"port {port}")

    return app


@pytest.mark.parametrize("port", ["1", "8000", "65535"])
def test_port_accepts_every_tcp_port(port):
    result = CliRunner().invoke(_listener(), ["--port", port])
    assert result.exit_code == 0 and f"port {port}" in result.output


@pytest.mark.parametrize("port", ["0", "-1", "65536", "70000"])
def test_port_refuses_what_is_no_tcp_port_before_the_command_runs(port):
    result = CliRunner().invoke(_listener(), ["--port", port])
    said = flat(result.output)
    assert result.exit_code == 2 and "port " + port not in result.output.splitlines()
    assert f"{port} is not a TCP port; give a number from 1 to 65535, e.g. 8000" in said
    with pytest.raises(typer.BadParameter):
        check_port(int(port))


def test_the_mode_that_shows_the_querys_concepts_is_called_given(run_cli):
    said = flat(run_cli("caption", "--help").stdout)
    assert "auto|given|retrieve" in said and "given: show the concepts each query comes with" in said


@pytest.mark.parametrize("command", [["caption"], ["data", "inspect"], ["data", "import", "samples"],
                                     ["eval", "judge"], ["train", "grpo"]])
def test_image_root_is_where_an_input_files_image_paths_start(run_cli, command):
    said = flat(run_cli(*command, "--help").stdout)
    help_text = said[said.index("--image-root"):][:120]
    assert "image paths start from" in help_text and "database" not in help_text


@pytest.mark.parametrize("command", ["add", "list", "show", "remove", "validate"])
def test_database_commands_show_only_database_image_root(run_cli, command):
    said = flat(run_cli("db", command, "--help").stdout)
    assert "--database-image-root" in said and "--image-root" not in said.replace("--database-image-root", "")


def test_the_older_image_root_of_database_commands_still_works(run_cli, tmp_path):
    database = tmp_path / "database.json"
    ConceptDatabase(database).save()
    assert run_cli("db", "list", database, "--image-root", tmp_path).exit_code == 0
    both = run_cli("db", "list", database, "--image-root", tmp_path, "--database-image-root", tmp_path)
    assert both.exit_code == 2 and "are the same; pass one" in flat(both.stderr)


def test_captioning_answers_up_to_the_papers_128_tokens_by_default(run_cli):
    default = inspect.signature(caption_command).parameters["max_new_tokens"].default
    assert default == CAPTION_MAX_NEW_TOKENS == GenerationSettings().max_new_tokens == 128
    assert "the paper's evaluation" in flat(run_cli("caption", "--help").stdout)
