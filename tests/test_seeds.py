"""Seeds are validated where they are parsed: a negative or too large seed is a usage error, not a traceback."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("seed", ["-5", str(2**32)])
@pytest.mark.parametrize("command", [("data", "build", "--concepts", "c"), ("data", "import", "folders", "r")])
def test_a_bad_seed_is_a_usage_error(run_cli, tmp_path, command, seed):
    result = run_cli(*command, "--out", tmp_path / "out", "--seed", seed)
    assert result.exit_code == 2
    assert "Invalid value for '--seed'" in result.stderr and "Traceback" not in result.stderr
