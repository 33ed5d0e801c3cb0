"""Ctrl-C ends ``repic`` with one line and status 130 (128 + SIGINT), never a traceback, whenever it comes.

The console script imports ``repic.cli`` before any code of ours runs, and the commands' imports (typer, rich,
every command module, then torch inside the command) take seconds: an interrupt in that time must not print
a traceback. Tested on the real ``repic`` script with SIGINT at several moments of its start-up, and in-process
for an interrupt inside a command (which typer itself turns into a silent exit 130).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from repic.cli import INTERRUPTED_EXIT
from repic.concepts import ConceptDatabase
from repic.inference import job as caption_job_module
from repic.records import Concept
from repic.shipped import shipped_base_path


def _repic() -> list[str]:
    """The installed ``repic`` script beside this interpreter, else the same entry point through ``-m``."""
    script = Path(sys.executable).parent / "repic"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "repic.cli"]


@pytest.fixture(scope="module")
def caption_args(tmp_path_factory) -> list[str]:
    """A whole ``repic caption`` run (it imports torch and loads a model: seconds, more than any delay here)."""
    folder = tmp_path_factory.mktemp("interrupt")
    Image.new("RGB", (56, 56), (220, 30, 30)).save(folder / "bo.png")
    database = ConceptDatabase(folder / "database.json")
    database.add(Concept("bo", "bo", "toy", "a red toy", [folder / "bo.png"]), images_dir=folder / "images")
    database.save()
    return ["caption", str(shipped_base_path()), "--images", str(folder / "bo.png"), "--concepts", "bo",
            "--database", str(folder / "database.json"), "--out", str(folder / "out"), "--overwrite"]


# Python's own start-up (about 50 ms, more on a busy machine) comes first and is no code of ours; from
# then until well past 0.5 s the commands are being imported.
@pytest.mark.parametrize("delay", [0.15, 0.25, 0.35, 0.5])
def test_sigint_during_start_up_ends_with_one_line_and_status_130(caption_args, delay):
    process = subprocess.Popen([*_repic(), *caption_args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == INTERRUPTED_EXIT, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "interrupted"


def test_an_interrupt_inside_a_command_is_said_too(run_cli, monkeypatch, caption_args):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(caption_job_module, "_queries", interrupted)
    result = run_cli(*caption_args)
    assert result.exit_code == INTERRUPTED_EXIT
    assert result.stderr.strip() == "interrupted" and "Traceback" not in result.stderr
