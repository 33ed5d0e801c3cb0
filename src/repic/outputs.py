"""The one guard every command runs on its output paths before it reads, computes or deletes anything.

- **An output is never an input.** ``check_output_file`` and ``replace_folder`` refuse an output that
  resolves (symlinks followed) to one of the command's inputs, and a folder that holds one: swapping it
  in would delete the input. ``repic eval caps.json --json caps.json`` is refused, not written.
- **Nothing is replaced without ``--overwrite``**: an existing output file, or a folder that is not empty.
  A non-empty folder is replaced only when it holds the command's own earlier output (its ``marker``
  file), so a mistyped ``--out ~`` never clears a home folder.
- **A folder output is built beside the target and swapped in at the end** (``repic.atomic.atomic_folder``):
  an interrupted or failed overwrite leaves the previous output as it was.
- **A place that cannot be written fails first** (``check_writable``): before a model loads, not after
  every answer is generated.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .atomic import atomic_folder
from .errors import RepicError


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(path))


def _refuse_inputs(output: Path, inputs: Iterable[str | os.PathLike | None], *, folder: bool, option: str) -> None:
    """``RepicError`` when ``output`` is one of ``inputs`` (or, for a folder output, holds one)."""
    real = _real(output)
    for given in inputs:
        if given is None:
            continue
        source = _real(given)
        if source == real:
            raise RepicError(f"{option} {output} is also an input ({given}); write the output to another path")
        if folder and source.is_relative_to(real):
            raise RepicError(
                f"{option} {output} holds an input ({given}); replacing it would delete that input, so write to "
                "another folder"
            )


def check_output_file(
    path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    overwrite: bool = False,
    option: str = "the output",
) -> Path:
    """``path`` as an output file: not one of ``inputs``, not a folder, and new unless ``overwrite``."""
    path = Path(path)
    _refuse_inputs(path, inputs, folder=False, option=option)
    if path.is_dir():
        raise RepicError(f"{option} {path} is a folder; give a file path")
    if path.exists() and not overwrite:
        raise RepicError(f"{option} {path} already exists; pass --overwrite to replace it, or choose another path")
    check_writable(path.parent)
    return path


def check_output_folder(
    path: str | os.PathLike,
    *,
    marker: str,
    inputs: Iterable[str | os.PathLike | None] = (),
    overwrite: bool = False,
    option: str = "--out",
) -> Path:
    """``path`` as an output folder: new or empty, or (with ``overwrite``) a folder holding ``marker``."""
    path = Path(path)
    _refuse_inputs(path, inputs, folder=True, option=option)
    if path.exists() and not path.is_dir():
        raise RepicError(f"{option} {path} is a file; give a folder")
    if path.is_dir() and any(path.iterdir()):
        if not (path / marker).is_file():
            raise RepicError(
                f"{option} {path} is not empty and holds no {marker}, so it is not an earlier output of this "
                "command; choose a new or empty folder"
            )
        if not overwrite:
            raise RepicError(f"{option} {path} already holds an output; pass --overwrite to replace it")
    check_writable(path)
    return path


@contextmanager
def replace_folder(path: str | os.PathLike, **checks: Any) -> Iterator[Path]:
    """Check ``path`` (``check_output_folder``, which takes ``checks``), yield a staging folder beside it,
    swap it in at the end. If the block raises (or is interrupted), the staging folder is removed and
    ``path`` stays as it was.
    """
    with atomic_folder(check_output_folder(path, **checks)) as staging:
        yield staging


def check_writable(folder: str | os.PathLike) -> None:
    """``RepicError`` unless a file can be created in ``folder`` (or where it would be created)."""
    folder = Path(os.path.abspath(folder))
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise RepicError(f"cannot write to {folder}: {existing} is a file, not a folder; choose another path")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise RepicError(
            f"cannot write to {folder}: {exc.strerror or exc} in {existing}; choose a folder you may write to"
        ) from None
