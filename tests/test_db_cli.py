"""`repic db init|add|list|show|remove|validate` through the real entry point."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image


def make_image(path: Path, color=(200, 30, 30), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path, format=fmt)
    return path


@pytest.fixture
def database(tmp_path, run_cli) -> Path:
    path = tmp_path / "db" / "database.json"
    assert run_cli("db", "init", path).exit_code == 0
    return path


def saved(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def unwrapped(text: str) -> str:
    """Console output with rich's line wrapping undone, so long messages can be matched."""
    return " ".join(text.split())


def test_init_creates_an_empty_database_and_refuses_to_overwrite(tmp_path, run_cli):
    path = tmp_path / "database.json"
    result = run_cli("db", "init", path)
    assert result.exit_code == 0 and "created empty database" in result.stdout
    assert saved(path) == {"concept_dict": {}, "path_to_concept": {}}
    path.write_text('{"concept_dict": {"<bo>": {}}}')
    again = run_cli("db", "init", path)
    assert again.exit_code == 2 and "already exists; pass --force" in unwrapped(again.stderr)
    assert "<bo>" in path.read_text()  # untouched
    assert run_cli("db", "init", path, "--force").exit_code == 0
    assert saved(path)["concept_dict"] == {}


def test_add_then_list_and_show(database, tmp_path, run_cli):
    first = make_image(tmp_path / "photos" / "bo1.png")
    second = make_image(tmp_path / "photos" / "bo2.png", color=(0, 0, 200))
    result = run_cli(
        "db", "add", database, "bo", "--image", first, "--image", second,
        "--category", "dog", "--info", "a brown dog with a [red] scarf",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "added <bo> (dog) with 2 image(s), copied" in result.stdout
    entry = saved(database)["concept_dict"]["<bo>"]
    assert entry["name"] == "bo"  # display name defaults to the bare tag
    assert entry["image"] == "images/bo/bo1.png" and entry["images"] == [
        "images/bo/bo1.png",
        "images/bo/bo2.png",
    ]
    assert (database.parent / "images" / "bo" / "bo2.png").read_bytes() == second.read_bytes()

    listing = run_cli("db", "list", database)
    assert listing.exit_code == 0
    row = next(line for line in listing.stdout.splitlines() if "<bo>" in line)
    assert "dog" in row and " 2 " in row  # tag, category and the number of images on one row
    assert "[red] scarf" in listing.stdout  # user text is not read as rich markup

    shown = run_cli("db", "show", database, "<bo>")
    assert shown.exit_code == 0
    assert "tag:      <bo>" in shown.stdout and "info:     a brown dog with a [red] scarf" in shown.stdout
    assert str(database.parent / "images" / "bo" / "bo1.png") in shown.stdout


def test_add_with_name_and_link_or_reference(database, tmp_path, run_cli):
    source = make_image(tmp_path / "photos" / "kim.png")
    linked = run_cli(
        "db", "add", database, "kim", "-i", source, "-c", "person", "--name", "Kim Lee", "--link"
    )
    assert linked.exit_code == 0, linked.stderr
    link = database.parent / "images" / "kim" / "kim.png"
    assert link.is_symlink() and link.resolve() == source.resolve()
    assert saved(database)["concept_dict"]["<kim>"]["name"] == "Kim Lee"

    other = make_image(tmp_path / "photos" / "mug.png")
    assert run_cli("db", "add", database, "mug", "-i", other, "-c", "mug", "--reference").exit_code == 0
    assert saved(database)["concept_dict"]["<mug>"]["image"] == str(other)  # outside the folder: absolute


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--link", "--reference"], "--link and --reference exclude each other"),
        (["--image", "nowhere.png"], "nowhere.png does not exist"),
        (["--image", "notes.png"], "notes.png does not decode as an image"),
        (["--category", " "], "<bo> has an empty category"),
    ],
)
def test_add_user_errors_exit_2_and_change_nothing(database, tmp_path, run_cli, monkeypatch, extra, fragment):
    monkeypatch.chdir(tmp_path)
    make_image(tmp_path / "bo.png")
    (tmp_path / "notes.png").write_text("not an image")
    before = database.read_bytes()
    result = run_cli("db", "add", database, "bo", "--image", "bo.png", "--category", "dog", *extra)
    assert result.exit_code == 2
    assert fragment in unwrapped(result.stderr) and "Traceback" not in result.stderr
    assert database.read_bytes() == before


def test_add_whose_save_fails_undoes_its_links(database, tmp_path, run_cli, monkeypatch):
    source = make_image(tmp_path / "bo.png")
    before = database.read_bytes()

    def broken_replace(src, dst):
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", broken_replace)  # symlinks do not need os.replace; the save does
    result = run_cli("db", "add", database, "bo", "-i", source, "-c", "dog", "--link")
    assert result.exit_code == 2 and "could not write database" in unwrapped(result.stderr)
    assert database.read_bytes() == before
    assert not (database.parent / "images" / "bo" / "bo.png").is_symlink()
    assert source.exists()  # the user's own file is never removed


def test_add_refuses_a_duplicate_tag_and_a_missing_database(database, tmp_path, run_cli):
    image = make_image(tmp_path / "bo.png")
    assert run_cli("db", "add", database, "bo", "-i", image, "-c", "dog").exit_code == 0
    duplicate = run_cli("db", "add", database, "<bo>", "-i", image, "-c", "dog")
    assert duplicate.exit_code == 2 and "<bo> is already in" in unwrapped(duplicate.stderr)
    missing = run_cli("db", "add", tmp_path / "none.json", "bo", "-i", image, "-c", "dog")
    assert missing.exit_code == 2 and "create it with `repic db init" in unwrapped(missing.stderr)


def test_add_without_required_options_is_a_usage_error(database, run_cli):
    result = run_cli("db", "add", database, "bo", "--category", "dog")
    assert result.exit_code == 2 and "--image" in result.stderr


def test_remove_keeps_or_deletes_images(database, tmp_path, run_cli):
    for tag in ("bo", "kim"):
        run_cli("db", "add", database, tag, "-i", make_image(tmp_path / f"{tag}.png"), "-c", "dog")
    result = run_cli("db", "remove", database, "bo")
    assert result.exit_code == 0 and "removed <bo>" in result.stdout
    assert list(saved(database)["concept_dict"]) == ["<kim>"]
    assert (database.parent / "images" / "bo" / "bo.png").exists()  # kept without --delete-images

    deleted = run_cli("db", "remove", database, "kim", "--delete-images")
    assert deleted.exit_code == 0 and "deleted 1 image file(s)" in deleted.stdout
    assert not (database.parent / "images" / "kim").exists()
    assert (tmp_path / "kim.png").exists()  # the original is never touched


def test_remove_and_show_unknown_tags_suggest_close_ones(database, tmp_path, run_cli):
    run_cli("db", "add", database, "bo", "-i", make_image(tmp_path / "bo.png"), "-c", "dog")
    for command in ("remove", "show"):
        result = run_cli("db", command, database, "boo")
        assert result.exit_code == 2
        assert "no concept <boo>" in unwrapped(result.stderr) and "did you mean <bo>?" in unwrapped(
            result.stderr
        )


def test_list_of_an_empty_database_says_how_to_add(database, run_cli):
    result = run_cli("db", "list", database)
    assert result.exit_code == 0 and "has no concepts yet; add one with `repic db add" in result.stdout


def test_validate_exits_0_when_clean_and_1_with_every_problem_listed(database, tmp_path, run_cli):
    run_cli("db", "add", database, "bo", "-i", make_image(tmp_path / "bo.png"), "-c", "dog")
    run_cli("db", "add", database, "kim", "-i", make_image(tmp_path / "kim.png"), "-c", "person")
    clean = run_cli("db", "validate", database)
    assert clean.exit_code == 0 and "2 concepts, 2 images, no problems" in clean.stdout

    (database.parent / "images" / "bo" / "bo.png").unlink()
    (database.parent / "images" / "kim" / "kim.png").write_text("broken")
    broken = run_cli("db", "validate", database)
    assert broken.exit_code == 1
    assert "missing_image: image " in broken.stdout and "unreadable_image: image " in broken.stdout
    assert "2 problem(s) in" in broken.stdout


def test_validate_official_layout_needs_the_image_root(tmp_path, run_cli):
    repo = tmp_path / "RePIC"
    folder = repo / "data" / "database_tot" / "x"
    make_image(folder / "Anya.jpg", fmt="JPEG")
    path = folder / "database.json"
    anya = {"name": "Anya", "image": "./data/database_tot/x/Anya.jpg", "info": "a girl", "category": "person"}
    path.write_text(json.dumps({"concept_dict": {"<Anya>": anya}}))
    assert run_cli("db", "validate", path, "--image-root", repo).exit_code == 0
    without = run_cli("db", "validate", path)
    assert without.exit_code == 1 and "missing_image" in without.stdout
    shown = run_cli("db", "show", path, "Anya", "--image-root", repo)
    assert str(folder / "Anya.jpg") in shown.stdout and "(missing)" not in shown.stdout


def test_malformed_database_is_a_clear_user_error(tmp_path, run_cli):
    path = tmp_path / "database.json"
    path.write_text('{"concept_dict": {"bo": {}}}')
    result = run_cli("db", "list", path)
    assert result.exit_code == 2
    assert (
        "concept_dict: tag 'bo' needs angle brackets: '<bo>'" in result.stderr
        and "Traceback" not in result.stderr
    )


@pytest.mark.parametrize("tag", ["a/b", "..", ".", "%2e%2e", "a\tb", "a\nb", "x" * 5000, "_lead"])
def test_add_refuses_a_tag_that_breaks_the_one_rule(database, tmp_path, run_cli, tag):
    before = database.read_bytes()
    result = run_cli("db", "add", database, tag, "-i", make_image(tmp_path / "bo.png"), "-c", "dog")
    assert result.exit_code == 2 and "a concept name is 1 to 64 characters" in unwrapped(result.stderr)
    assert database.read_bytes() == before and not (database.parent / "images").exists()


def test_validate_reports_tags_that_break_the_rule(database, tmp_path, run_cli):
    make_image(database.parent / "x.png")
    database.write_text(json.dumps({"concept_dict": {
        "<a/b>": {"name": "a", "image": "x.png", "info": "", "category": "dog"}}, "path_to_concept": {}}))
    result = run_cli("db", "validate", database)
    assert result.exit_code == 1 and "bad_tag: tag '<a/b>' holds '/'; rename it" in unwrapped(result.stdout)
