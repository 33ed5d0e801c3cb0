"""Outputs never destroy what was there: overwrites swap in whole, outputs are never inputs, OS errors are one line."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from PIL import Image

from repic.data import tasks as tasks_module
from repic.data.collection import load_collection
from repic.data.importers import ImportOptions, import_folders
from repic.data.tasks import BuildConfig, build
from repic.errors import RepicError

SMALL = BuildConfig(counts={"oct": 2, "vlt": 0, "ict": 2, "ict_multi": 0}, eval_counts={"oct": 1, "vlt": 0})


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def collection(tmp_path):
    """An imported collection of three concepts (one held out), its photos in place."""
    root = tmp_path / "photos"
    for n, name in enumerate(("bo", "kim", "rex")):
        for i in range(3):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (56, 56), (60 * n, 30 * i, 90)).save(root / name / f"{i}.png")
    import_folders(root, tmp_path / "col", category="toy", options=ImportOptions(heldout=["kim"]))
    return load_collection(tmp_path / "col")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_interrupted_rebuild_keeps_the_previous_build(collection, tmp_path, monkeypatch):
    out = tmp_path / "build"
    build(collection, out, SMALL)
    before = _snapshot(out)

    def interrupted(path, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tasks_module, "write_samples", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build(collection, out, SMALL, overwrite=True)
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_a_rebuild_from_a_broken_collection_fails_and_keeps_the_previous_build(collection, tmp_path, run_cli):
    out = tmp_path / "build"
    build(collection, out, SMALL)
    before = _snapshot(out)
    collection.concepts["<kim>"].images[0].unlink()  # the held-out reference the eval database copies
    result = run_cli("data", "build", "--concepts", tmp_path / "col", "--out", out, "--overwrite")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert _snapshot(out) == before


def test_a_build_into_its_own_collection_is_refused(collection, tmp_path):
    for out in (tmp_path / "col", tmp_path):  # the collection itself, or a folder that holds it
        with pytest.raises(RepicError, match="is also an input|holds an input"):
            build(collection, out, SMALL, overwrite=True)
    assert load_collection(tmp_path / "col").concepts  # untouched


def test_an_interrupted_import_overwrite_keeps_the_previous_import(collection, tmp_path, monkeypatch):
    from repic.data import importers

    before = _snapshot(tmp_path / "col")
    monkeypatch.setattr(importers, "save_collection", lambda collection: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        import_folders(tmp_path / "photos", tmp_path / "col", category="toy", options=ImportOptions(overwrite=True))
    assert _snapshot(tmp_path / "col") == before
    with pytest.raises(RepicError, match="pass --overwrite"):
        import_folders(tmp_path / "photos", tmp_path / "col", category="toy")


def test_eval_refuses_to_write_its_scores_over_an_input_or_an_existing_file(tmp_path, run_cli):
    captions = tmp_path / "caps.json"
    captions.write_text(json.dumps([["q.jpg", ["<bo>"], "A photo of <bo> on a sofa.", "q"]]), encoding="utf-8")
    original = captions.read_bytes()
    same = run_cli("eval", captions, "--json", tmp_path / "." / "caps.json")
    assert same.exit_code == 2 and "is also an input" in _flat(same.stderr)
    assert captions.read_bytes() == original
    link = tmp_path / "scores.json"
    link.symlink_to(captions)  # an output that resolves to the input is the input
    assert "is also an input" in _flat(run_cli("eval", captions, "--json", link).stderr)
    scores = tmp_path / "other.json"
    assert run_cli("eval", captions, "--json", scores).exit_code == 0
    again = run_cli("eval", captions, "--json", scores)
    assert again.exit_code == 2 and "pass --overwrite" in _flat(again.stderr)
    assert run_cli("eval", captions, "--json", scores, "--overwrite").exit_code == 0
    assert captions.read_bytes() == original


def test_an_os_error_is_one_line_naming_the_path(collection, tmp_path, run_cli, monkeypatch):
    denied = tmp_path / "build" / "train.jsonl"

    def refuse(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(denied))

    monkeypatch.setattr(tasks_module, "write_samples", refuse)
    result = run_cli("data", "build", "--concepts", tmp_path / "col", "--out", tmp_path / "build")
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    message = _flat(result.stderr)
    assert f"error: {denied}: permission denied; check its permissions" in message


def test_an_output_below_a_file_fails_before_any_work(collection, tmp_path, run_cli):
    (tmp_path / "notes.txt").write_text("mine")
    result = run_cli("data", "build", "--concepts", tmp_path / "col", "--out", tmp_path / "notes.txt" / "build")
    assert result.exit_code == 2 and "is a file, not a folder" in _flat(result.stderr)
