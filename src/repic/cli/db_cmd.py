"""``repic db``: create, edit, inspect and check a concept database (RAP / RePIC ``database.json``).

Each command parses its arguments, calls ``repic.concepts.database`` and prints; the rules (tags, image
checks, where copies go, how paths are written) live in the library. User text is printed as rich ``Text``,
not markup, so a description such as ``"[red] scarf"`` shows as written. ``validate`` exits with status 1
when it finds problems, so scripts and CI can gate on it; user errors exit with 2 (see ``repic.cli``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ..concepts.database import ConceptDatabase, edit_database
from ..errors import RepicError
from ..locking import locked
from ..records import Concept, concept_tag, strip_tag
from .console import console, say
from .options import DATABASE_IMAGE_ROOT, DATABASE_IMAGE_ROOT_HELP

app = typer.Typer(
    help="Manage the personal-concept database (RAP / RePIC database.json).",
    no_args_is_help=True,
)

DatabaseArg = Annotated[Path, typer.Argument(help="The database.json file.", show_default=False)]
TagArg = Annotated[str, typer.Argument(help="The concept's tag: 'bo' or '<bo>'.", show_default=False)]
# --database-image-root as in every command that opens a database. --image-root is its older name here,
# still read but hidden: everywhere else --image-root is where an input file's image paths start.
ImageRootOpt = Annotated[Path | None, typer.Option(DATABASE_IMAGE_ROOT, help=DATABASE_IMAGE_ROOT_HELP)]
OldImageRootOpt = Annotated[Path | None, typer.Option("--image-root", hidden=True)]

_INFO_WIDTH = 60  # characters of a description shown by `list`


def _root(image_root: Path | None, old_image_root: Path | None) -> Path | None:
    """The database image root, given by its name or its older one (not both, which could disagree)."""
    if image_root is not None and old_image_root is not None:
        raise RepicError(f"{DATABASE_IMAGE_ROOT} and --image-root (its older name) are the same; pass one")
    return image_root if image_root is not None else old_image_root


@app.command()
def init(
    database: DatabaseArg,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Create an empty database file."""
    with locked(database, what="database"):
        if database.exists() and not force:
            raise RepicError(f"{database} already exists; pass --force to replace it with an empty database")
        ConceptDatabase(database).save()
    say(f"created empty database {database}")


@app.command()
def add(
    database: DatabaseArg,
    tag: TagArg,
    images: Annotated[
        list[Path],
        typer.Option(
            "--image", "-i", help="A reference image; repeat for several (the first is the main one)."
        ),
    ],
    category: Annotated[str, typer.Option("--category", "-c", help="What it is: dog, mug, person...")],
    info: Annotated[str, typer.Option("--info", help="A short description used in prompts.")] = "",
    name: Annotated[
        str | None, typer.Option("--name", help="Display name (default: the tag without brackets).")
    ] = None,
    link: Annotated[bool, typer.Option("--link", help="Symlink the images instead of copying them.")] = False,
    reference: Annotated[
        bool, typer.Option("--reference", help="Keep the images where they are (no copy, no link).")
    ] = False,
    images_dir: Annotated[
        Path | None,
        typer.Option("--images-dir", help="Where copies and links go (default: DATABASE's folder/images)."),
    ] = None,
    image_root: ImageRootOpt = None,
    old_image_root: OldImageRootOpt = None,
) -> None:
    """Add a concept with its reference images (copied into the database folder by default)."""
    if link and reference:
        raise RepicError("--link and --reference exclude each other; pass at most one")
    store = "link" if link else "reference" if reference else "copy"
    display = name if name is not None else strip_tag(concept_tag(tag))
    concept = Concept(tag=tag, name=display, category=category, info=info, images=list(images))
    with edit_database(database, _root(image_root, old_image_root)) as db:
        added = db.add(concept, store=store, images_dir=images_dir)
        try:
            db.save()
        except RepicError:
            # Undo the copies and links made for a concept that was not saved; images given in place stay.
            for stored, given in zip(added.images, concept.images, strict=True):
                if stored != Path(os.path.abspath(given)):
                    stored.unlink(missing_ok=True)
            raise
    how = {"copy": "copied", "link": "linked", "reference": "referenced"}[store]
    say(f"added {added.tag} ({added.category}) with {len(added.images)} image(s), {how}")


@app.command("list")
def list_concepts(
    database: DatabaseArg, image_root: ImageRootOpt = None, old_image_root: OldImageRootOpt = None
) -> None:
    """List the concepts: tag, name, category, number of images, description."""
    db = ConceptDatabase.load(database, _root(image_root, old_image_root))
    if not len(db):
        say(
            f"{database} has no concepts yet; add one with `repic db add {database} TAG --image IMG --category C`"
        )
        return
    table = Table(title=Text(f"{database}: {len(db)} concept(s)"))
    for column in ("tag", "name", "category", "images"):
        table.add_column(column, no_wrap=True)
    table.add_column("info", overflow="ellipsis")
    for concept in db:
        info = concept.info if len(concept.info) <= _INFO_WIDTH else concept.info[: _INFO_WIDTH - 3] + "..."
        table.add_row(
            Text(concept.tag),
            Text(concept.name),
            Text(concept.category),
            str(len(concept.images)),
            Text(info),
        )
    console.print(table)


@app.command()
def show(
    database: DatabaseArg, tag: TagArg, image_root: ImageRootOpt = None, old_image_root: OldImageRootOpt = None
) -> None:
    """Show one concept in full, with its image paths."""
    concept = ConceptDatabase.load(database, _root(image_root, old_image_root)).get(tag)
    say(f"tag:      {concept.tag}")
    say(f"name:     {concept.name}")
    say(f"category: {concept.category}")
    say(f"info:     {concept.info}")
    say(f"images:   {len(concept.images)}")
    for image in concept.images:
        say(f"  {image}" + ("" if image.exists() else "  (missing)"))
    for key, value in concept.extra.items():
        say(f"{key}: {json.dumps(value, ensure_ascii=False)}")


@app.command()
def remove(
    database: DatabaseArg,
    tag: TagArg,
    delete_images: Annotated[
        bool,
        typer.Option(
            "--delete-images",
            help="Also delete its image files inside the database folder; files elsewhere are kept.",
        ),
    ] = False,
    image_root: ImageRootOpt = None,
    old_image_root: OldImageRootOpt = None,
) -> None:
    """Remove a concept (its image files stay unless --delete-images)."""
    with edit_database(database, _root(image_root, old_image_root)) as db:
        concept = db.remove(tag)
        db.save()
        deleted = db.discard_images(concept) if delete_images else []
    say(f"removed {concept.tag}")
    if delete_images:
        say(f"deleted {len(deleted)} image file(s)")
        for kept in (image for image in concept.images if image not in deleted):
            say(f"kept {kept} (outside the database folder, missing, or used by another concept)")


@app.command()
def validate(
    database: DatabaseArg, image_root: ImageRootOpt = None, old_image_root: OldImageRootOpt = None
) -> None:
    """Check every image and entry; print each problem; exit 1 when there is any."""
    db = ConceptDatabase.load(database, _root(image_root, old_image_root))
    problems = db.validate()
    for problem in problems:
        say(f"{problem.kind}: {problem.message}")
    images = sum(len(concept.images) for concept in db)
    if problems:
        say(f"{len(problems)} problem(s) in {database} ({len(db)} concepts, {images} images)", "red")
        raise typer.Exit(1)
    say(f"{database}: {len(db)} concepts, {images} images, no problems", "green")
