"""Concurrent writers of one shared file: every edit survives (real processes, not threads)."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from repic.errors import RepicError
from repic.locking import lock_path, locked


@contextmanager
def _held_elsewhere(statement: str):
    """Another process that runs ``statement`` (which takes a lock), says so, and holds on until killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import time\nfrom repic.locking import hold, locked\n{statement}\n"
         "    print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()


def _repic(*args: object) -> list[str]:
    return [sys.executable, "-m", "repic.cli", *map(str, args)]


def test_six_db_adds_at_once_keep_all_six_concepts(tmp_path, run_cli):
    database = tmp_path / "db" / "database.json"
    assert run_cli("db", "init", database).exit_code == 0
    tags = [f"c{i}" for i in range(6)]
    for i, tag in enumerate(tags):
        Image.new("RGB", (8, 8), (40 * i, 10, 10)).save(tmp_path / f"{tag}.png")
    runs = [
        subprocess.Popen(
            _repic("db", "add", database, tag, "--image", tmp_path / f"{tag}.png", "--category", "mug"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for tag in tags
    ]  # fmt: skip
    outputs = [run.communicate(timeout=120) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    saved = json.loads(database.read_text(encoding="utf-8"))
    assert sorted(saved["concept_dict"]) == sorted(f"<{tag}>" for tag in tags)
    listed = {Path(p).parent.name for p in saved["path_to_concept"]}
    on_disk = {folder.name for folder in (database.parent / "images").iterdir()}
    assert listed == on_disk == set(tags)  # no orphan image folder of a lost concept
    assert run_cli("db", "validate", database).exit_code == 0


def test_a_held_lock_makes_the_second_writer_fail_with_the_lock_named(tmp_path):
    target = tmp_path / "database.json"
    with _held_elsewhere(f"with locked({str(target)!r}):"):
        with pytest.raises(RepicError, match="being changed by another repic process") as failed:
            with locked(target, wait=0, what="database"):
                pass
        assert str(lock_path(target)) in str(failed.value)
    with locked(target, wait=0):  # released with its holder, even a killed one
        pass


def test_a_link_and_its_target_share_one_lock(tmp_path):
    real = tmp_path / "real" / "database.json"
    real.parent.mkdir()
    real.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert lock_path(link) == lock_path(real) == real.parent / ".database.json.lock"


def test_a_run_folder_in_use_by_another_process_is_refused_before_anything_is_cleared(tmp_path):
    from repic.train import load_config
    from repic.train.session import open_run

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("method: grpo\n")  # an earlier run that --overwrite would clear
    config = load_config("demo-tiny", [f"run.output_dir={run}"])
    with _held_elsewhere(f"lock = hold({str(run)!r})\nif True:"):
        with pytest.raises(RepicError, match="is in use by another repic process"):
            open_run(config, resume=False, overwrite=True)
        assert (run / "config.yaml").is_file()
    opened = open_run(config, resume=False, overwrite=True)  # free again once its holder ended
    again = open_run(config, resume=False, overwrite=True)  # and this process may open it twice
    assert again.lock is opened.lock
