"""Writes go through symlinks to the real file and keep the mode of the file they replace."""

from __future__ import annotations

import json
import stat

from PIL import Image

from repic.atomic import atomic_folder, atomic_write_text


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_db_add_through_a_symlink_updates_the_real_database_and_keeps_the_link(tmp_path, run_cli):
    real = tmp_path / "store" / "database.json"
    assert run_cli("db", "init", real).exit_code == 0
    real.chmod(0o600)
    link = tmp_path / "database.json"
    link.symlink_to(real)
    Image.new("RGB", (8, 8), (9, 90, 9)).save(tmp_path / "bo.png")
    result = run_cli("db", "add", link, "bo", "--image", tmp_path / "bo.png", "--category", "dog")
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink()
    assert "<bo>" in json.loads(real.read_text(encoding="utf-8"))["concept_dict"]
    assert _mode(real) == 0o600
    assert (real.parent / "images" / "bo" / "bo.png").is_file()  # beside the real file, where its paths start
    assert run_cli("db", "validate", real).exit_code == 0


def test_atomic_write_keeps_an_existing_files_mode(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    path.chmod(0o640)
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o640


def test_atomic_folder_replaces_a_linked_folder_where_it_lives(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "old.txt").write_text("old")
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    with atomic_folder(link) as staging:
        (staging / "new.txt").write_text("new")
    assert link.is_symlink() and (real / "new.txt").is_file() and not (real / "old.txt").exists()
