"""Options that several commands share, defined once so every command spells and explains them alike.

``--database-image-root`` is the folder a concept database's relative image paths start from, in every
command that opens a database (``repic db ...``, ``repic caption``, ``repic serve``, ``repic app``,
``repic data import database``). It is its own flag, not ``--image-root``, because ``--image-root`` is the
folder an *input file's* image paths start from (``repic caption --eval``'s rows, ``repic data inspect``,
``repic data import samples``, ``repic train``, ``repic eval judge``).

``--max-new-tokens`` of a captioning command defaults to ``CAPTION_MAX_NEW_TOKENS`` (128, the paper's
evaluation); a command that differs says why in its help.

``--port`` takes a TCP port, 1 to 65535 (``PortOpt``, checked by ``check_port`` before anything loads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..inference.generate import GenerationSettings

DATABASE_IMAGE_ROOT = "--database-image-root"
DATABASE_IMAGE_ROOT_HELP = (
    "Folder the database's relative image paths start from (default: the database's folder, then the working "
    "directory); for the official RePIC files, the RePIC repository root."
)
DatabaseImageRootOpt = Annotated[Path | None, typer.Option(DATABASE_IMAGE_ROOT, help=DATABASE_IMAGE_ROOT_HELP)]

CAPTION_MAX_NEW_TOKENS = GenerationSettings().max_new_tokens  # 128: the paper's evaluation
MaxNewTokensOpt = Annotated[
    int,
    typer.Option("--max-new-tokens", help=f"Longest answer, in tokens ({CAPTION_MAX_NEW_TOKENS}: the paper's "
                 "evaluation, long enough that captions are not cut short)."),
]

PORTS = (1, 65535)


def check_port(port: int) -> int:
    """``port`` when it is a TCP port; a usage error (exit 2) saying the range otherwise."""
    low, high = PORTS
    if not low <= port <= high:
        raise typer.BadParameter(f"{port} is not a TCP port; give a number from {low} to {high}, e.g. 8000")
    return port


PortOpt = Annotated[int, typer.Option("--port", help=f"Port to listen on ({PORTS[0]}-{PORTS[1]}).",
                                      callback=check_port)]
