"""`repic caption` checks every input and output before loading a model, and fails when nothing was captioned."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from repic.shipped import shipped_base_path

MISSING_MODEL = "no-such-org/no-such-model"  # reaching the model load would fail with another message


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def query(tmp_path):
    Image.new("RGB", (56, 56), (200, 20, 20)).save(tmp_path / "q.png")
    return tmp_path / "q.png"


@pytest.fixture
def database(tmp_path, query, run_cli):
    path = tmp_path / "db" / "database.json"
    assert run_cli("db", "init", path).exit_code == 0
    assert run_cli("db", "add", path, "bo", "--image", query, "--category", "dog").exit_code == 0
    return path


def test_an_unknown_concept_fails_before_the_model_loads(run_cli, tmp_path, query, database):
    result = run_cli("caption", MISSING_MODEL, "--images", query, "--concepts", "bq", "--database", database,
                     "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "no concept <bq>" in _flat(result.stderr) and "did you mean <bo>" in _flat(result.stderr)


def test_an_unwritable_out_fails_before_the_model_loads(run_cli, tmp_path, query, database):
    (tmp_path / "file.txt").write_text("x")
    result = run_cli("caption", MISSING_MODEL, "--images", query, "--concepts", "bo", "--database", database,
                     "--out", tmp_path / "file.txt" / "out")
    assert result.exit_code == 2 and "is a file, not a folder" in _flat(result.stderr)


def test_an_output_that_is_the_input_is_refused(run_cli, tmp_path):
    eval_file = tmp_path / "captions.json"
    eval_file.write_text(json.dumps([["q.png", ["<bo>"], "", "Who is it?"]]))
    result = run_cli("caption", MISSING_MODEL, "--eval", eval_file, "--out", tmp_path, "--overwrite")
    assert result.exit_code == 2 and "is also an input" in _flat(result.stderr)


def test_a_missing_query_image_fails_before_the_model_loads(run_cli, tmp_path):
    result = run_cli("caption", MISSING_MODEL, "--images", tmp_path / "nope.png", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "nope.png: not found" in _flat(result.stderr)


def test_a_truncated_checkpoint_is_refused_naming_the_file(run_cli, tmp_path, query, database, truncated_base):
    result = run_cli("caption", truncated_base, "--images", query, "--concepts", "bo", "--database", database,
                     "--out", tmp_path / "out")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    said = _flat(result.stderr)
    assert f"{truncated_base / 'model.safetensors'} is truncated or damaged" in said
    assert "re-download or re-save the checkpoint" in said and not (tmp_path / "out" / "captions.json").exists()


def test_nothing_captioned_is_a_failure(run_cli, tmp_path, database):
    (tmp_path / "notes.png").write_text("not an image")
    result = run_cli("caption", shipped_base_path(), "--images", tmp_path / "notes.png", "--concepts", "bo",
                     "--database", database, "--out", tmp_path / "out", "--max-new-tokens", "2", "--threads", "1")
    assert result.exit_code == 1
    assert "no query could be answered" in _flat(result.stderr) and "does not decode" in _flat(result.stderr)
