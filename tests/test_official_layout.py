"""An official RePIC database works as it ships: image paths from the repository root, used from there."""

from __future__ import annotations

import json

import pytest
from PIL import Image


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def repo(tmp_path):
    """RePIC's layout: data/database.json naming ./__assets__/multi/bengio.jpg (relative to the repo root)."""
    root = tmp_path / "RePIC"
    (root / "__assets__" / "multi").mkdir(parents=True)
    Image.new("RGB", (56, 56), (120, 80, 40)).save(root / "__assets__" / "multi" / "bengio.jpg")
    (root / "data").mkdir()
    entry = {"name": "bengio", "image": "./__assets__/multi/bengio.jpg", "info": "a professor", "category": "person"}
    (root / "data" / "database.json").write_text(json.dumps({
        "concept_dict": {"<bengio>": entry}, "path_to_concept": {"./__assets__/multi/bengio.jpg": "<bengio>"},
    }))  # fmt: skip
    return root


def test_from_the_repository_root_the_database_is_valid_and_round_trips(repo, run_cli, monkeypatch):
    monkeypatch.chdir(repo)
    assert run_cli("db", "validate", "data/database.json").exit_code == 0
    Image.new("RGB", (8, 8)).save(repo / "kim.png")
    assert run_cli("db", "add", "data/database.json", "kim", "--image", "kim.png", "--category", "person").exit_code == 0
    saved = json.loads((repo / "data" / "database.json").read_text())
    assert saved["concept_dict"]["<bengio>"]["image"] == "./__assets__/multi/bengio.jpg"  # spelled as shipped


def test_from_elsewhere_the_message_names_both_folders_tried(repo, run_cli, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    result = run_cli("db", "validate", repo / "data" / "database.json")
    assert result.exit_code == 1
    message = _flat(result.stdout)
    assert f"looked up from the database's folder {repo / 'data'} and from the working directory" in message
    assert "pass --database-image-root" in message
    assert run_cli("db", "validate", repo / "data" / "database.json", "--database-image-root", repo).exit_code == 0
    assert run_cli("db", "validate", repo / "data" / "database.json", "--image-root", repo).exit_code == 0  # older name


def test_caption_uses_the_official_database_and_the_shipped_base_by_name(repo, run_cli, monkeypatch):
    monkeypatch.chdir(repo)
    result = run_cli("caption", "tiny-base", "--images", "__assets__/multi/bengio.jpg", "--concepts", "bengio",
                     "--database", "data/database.json", "--out", "out", "--max-new-tokens", "2", "--threads", "1")
    assert result.exit_code == 0, result.stderr
    assert "answered 1 queries, skipped 0" in _flat(result.stdout)
