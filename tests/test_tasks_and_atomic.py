"""Task-name aliases and atomic writes: the two small foundations every module leans on."""

from __future__ import annotations

import json
import os

import pytest

from repic.atomic import atomic_write_json, atomic_write_jsonl, atomic_write_text
from repic.errors import RepicError
from repic.tasks import TASKS, normalize_task, official_name


@pytest.mark.parametrize(
    "given, expected",
    [
        ("oct", "oct"),  # our own name
        ("yes_no", "oct"),  # official reward-method name
        ("iou", "vlt"),
        ("yes_no_name", "ict"),
        ("yes_no_name_multi", "ict_multi"),
        (" ICT_MULTI ", "ict_multi"),  # case and surrounding spaces do not matter
    ],
)
def test_normalize_task_accepts_both_spellings(given, expected):
    assert normalize_task(given) == expected


def test_official_name_round_trips_every_task():
    for task in TASKS:
        assert normalize_task(official_name(task)) == task


@pytest.mark.parametrize("bad", ["caption", "", None, "yes-no"])
def test_unknown_task_names_the_place_and_lists_known_tasks(bad):
    with pytest.raises(RepicError) as info:
        normalize_task(bad, where="train.jsonl row 7")
    message = str(info.value)
    assert "train.jsonl row 7" in message
    assert "yes_no_name_multi" in message and "ict_multi" in message


def test_atomic_writes_create_parents_and_content(tmp_path):
    target = tmp_path / "deep" / "out.json"
    atomic_write_json(target, {"name": "<bø>"})
    assert json.loads(target.read_text(encoding="utf-8")) == {"name": "<bø>"}
    atomic_write_jsonl(tmp_path / "rows.jsonl", [{"a": 1}, {"a": 2}])
    assert (tmp_path / "rows.jsonl").read_text().splitlines() == ['{"a": 1}', '{"a": 2}']


def test_failed_atomic_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "db.json"
    atomic_write_text(target, "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.json"]


def test_atomic_write_gives_ordinary_file_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "out.txt", "x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_atomic_folder_replaces_on_success_and_keeps_old_on_failure(tmp_path):
    from repic.atomic import atomic_folder

    target = tmp_path / "model"
    with atomic_folder(target) as staging:
        (staging / "weights.bin").write_bytes(b"v1")
        (staging / "weights.bin").chmod(0o600)  # as save_pretrained leaves weights
    assert (target / "weights.bin").read_bytes() == b"v1"
    assert (target / "weights.bin").stat().st_mode & 0o044 == 0o044  # readable by group and others again

    with pytest.raises(RuntimeError):
        with atomic_folder(target) as staging:
            (staging / "weights.bin").write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert (target / "weights.bin").read_bytes() == b"v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging folder left behind

    with atomic_folder(target) as staging:
        (staging / "weights.bin").write_bytes(b"v2")
    assert (target / "weights.bin").read_bytes() == b"v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # the previous folder was removed
