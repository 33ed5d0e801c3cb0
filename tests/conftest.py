"""Shared test fixtures: running the CLI in-process and capturing what it prints; the noisy tiny model."""

from __future__ import annotations

import signal
from dataclasses import dataclass

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """The test models are tiny: one thread avoids thread start-up and contention costs that dominate
    their matrix work (measured: a merge plus its check took 0.75 s instead of 7 s on a busy 2-core box)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


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


@pytest.fixture(scope="module")
def noisy_policy():
    """The shipped tiny base with seeded noise on every weight: answers then differ from image to image and
    prompt to prompt, so a padding or position mistake in batching shows up as a different answer."""
    from repic.inference import load_for_captioning
    from repic.shipped import shipped_base_path

    loaded = load_for_captioning(shipped_base_path(), device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in loaded.model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return loaded


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_as_in_a_terminal():
    """Ctrl-C handled as in a terminal, also when the suite runs in a background job.

    A shell starts a background job with SIGINT ignored, and an ignored signal stays ignored in every
    child, where Python then never raises ``KeyboardInterrupt``: the tests of what Ctrl-C does would test
    nothing. With a handler here, children start with the default action, as under a terminal.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def truncated_base(tmp_path):
    """A copy of the shipped tiny base whose model.safetensors was cut in half, as by a download cut short."""
    import shutil

    from repic.shipped import shipped_base_path

    folder = tmp_path / "truncated-base"
    shutil.copytree(shipped_base_path(), folder)
    weights = folder / "model.safetensors"
    with weights.open("r+b") as file:
        file.truncate(weights.stat().st_size // 2)
    return folder
