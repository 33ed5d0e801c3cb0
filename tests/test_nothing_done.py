"""Doing nothing is a failure: `repic eval` exits non-zero when no row could be scored."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize(
    "content",
    [pytest.param([], id="empty list"), pytest.param({"rows": 1}, id="a dict"), pytest.param([1, "x", None], id="junk")],
)
def test_eval_with_nothing_to_score_fails(tmp_path, run_cli, content):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    result = run_cli("eval", path, "--json", tmp_path / "scores.json")
    assert result.exit_code == 2
    assert "has no row to score" in " ".join(result.stderr.split())
    assert not (tmp_path / "scores.json").exists()


def test_eval_of_one_good_row_succeeds(tmp_path, run_cli):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps([["q.jpg", ["<bo>"], "A photo of <bo>.", "q"]]), encoding="utf-8")
    assert run_cli("eval", path).exit_code == 0
