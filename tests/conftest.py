"""Shared test fixtures: running the CLI in-process and capturing what it prints."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys):
    """Run ``repic ARGS...`` in-process through the real entry point; return exit code and output."""

    from repic.cli import main  # imported here so library tests do not depend on every CLI module

    def run(*args: str) -> CliResult:
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run
