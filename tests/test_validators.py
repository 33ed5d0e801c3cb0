"""Validators validate: `repic data inspect` opens every image it checks, and an empty input is an error."""

from __future__ import annotations

import json

import pytest
from PIL import Image


def _flat(text: str) -> str:
    return " ".join(text.split())


def _samples(tmp_path, image_name: str):
    path = tmp_path / "train.jsonl"
    row = {"image": image_name, "problem": "Is <bo> in the image?", "solution": "yes", "accu_reward_method": "yes_no"}
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    return path


def _truncated(path):
    Image.new("RGB", (64, 64), (10, 200, 10)).save(path)
    path.write_bytes(path.read_bytes()[:60])


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_truncated, id="truncated png"),
        pytest.param(lambda path: path.write_text("not an image"), id="text named .png"),
        pytest.param(lambda path: path.write_bytes(b""), id="empty file"),
    ],
)
def test_inspect_reports_images_that_do_not_decode(tmp_path, run_cli, make):
    make(tmp_path / "bad.png")
    result = run_cli("data", "inspect", _samples(tmp_path, "bad.png"))
    assert result.exit_code == 2, result.stdout
    assert "1 image(s) cannot be used" in _flat(result.stderr) and "bad.png" in result.stderr


def test_inspect_passes_a_good_image(tmp_path, run_cli):
    Image.new("RGB", (8, 8)).save(tmp_path / "good.png")
    result = run_cli("data", "inspect", _samples(tmp_path, "good.png"))
    assert result.exit_code == 0 and "every image decodes" in _flat(result.stdout)


@pytest.mark.parametrize("content", ["", "[]"])
def test_inspect_of_an_empty_file_is_an_error(tmp_path, run_cli, content):
    path = tmp_path / ("train.jsonl" if not content else "train.json")
    path.write_text(content, encoding="utf-8")
    result = run_cli("data", "inspect", path)
    assert result.exit_code == 2 and "holds no samples" in _flat(result.stderr)


def test_inspect_of_a_folder_says_it_is_a_folder(tmp_path, run_cli):
    result = run_cli("data", "inspect", tmp_path)
    assert result.exit_code == 2 and "is a folder" in _flat(result.stderr)
