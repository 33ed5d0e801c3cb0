"""``repic bench import FORMAT SRC --out DIR`` and ``repic bench formats``: thin fronts over
``repic.bench.formats``. The summary line says the rows per kind, the concepts and the missing images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .console import say


def import_command(
    format: Annotated[str, typer.Argument(help="The source's format (`repic bench formats` lists them).",
                                          show_default=False)],
    src: Annotated[Path, typer.Argument(help="The benchmark's folder (or file) as its authors ship it.",
                                        show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="The benchmark folder to write.", show_default=False)],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier benchmark folder.")] = False,
) -> None:
    """Read a personalization benchmark from its own layout into a repic benchmark folder."""
    from ..bench.formats import import_folder

    manifest = import_folder(format, src, out, overwrite=overwrite)
    kinds = ", ".join(f"{count:,} {kind}" for kind, count in manifest.counts.items()) or "no rows"
    say(f"{out}: {kinds}; {manifest.concepts:,} concepts; {len(manifest.missing_images):,} missing images"
        + (f"; {len(manifest.notes)} notes in manifest.json" if manifest.notes else ""))


def formats_command() -> None:
    """List the benchmark formats `repic bench import` reads."""
    from ..bench.formats import FORMATS

    width = max(map(len, FORMATS))
    for name, entry in FORMATS.items():
        say(f"{name:<{width}}  {entry.description}")
