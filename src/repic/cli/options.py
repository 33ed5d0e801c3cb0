"""Options that several commands share, defined once so every command spells and explains them alike.

``--database-image-root`` is the folder a concept database's relative image paths start from, in every
command that opens a database (``repic db ...``, ``repic caption``, ``repic serve``, ``repic app``,
``repic data import database``). It is its own flag, not ``--image-root``, because ``repic caption`` also
reads an evaluation file whose image paths may start elsewhere (its ``--image-root``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DATABASE_IMAGE_ROOT = "--database-image-root"
DATABASE_IMAGE_ROOT_HELP = (
    "Folder the database's relative image paths start from (default: the database's folder, then the working "
    "directory); for the official RePIC files, the RePIC repository root."
)
DatabaseImageRootOpt = Annotated[Path | None, typer.Option(DATABASE_IMAGE_ROOT, help=DATABASE_IMAGE_ROOT_HELP)]
