"""Atomic file and folder writes: outputs are either complete or absent, never half-written.

Every writer of outputs (databases, predictions, sample files, reports) goes through these helpers:
the content is written to a temporary file in the destination folder, flushed to disk, then renamed
over the destination (``os.replace`` is atomic on POSIX and Windows when both sit on one filesystem).
A symlinked destination is written through to the file it names, and a replaced file keeps its mode.
Folders (model checkpoints) are built in a hidden sibling by ``atomic_folder`` and renamed into place.
Logs that grow row by row (training metrics) are the one exception: ``append_jsonl`` appends a line at a
time, and ``log_lines`` reads them back without the torn line a crash can leave at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def default_file_mode() -> int:
    """The mode a plain ``open(..., "w")`` would give: 0o666 less the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_target(path: str | os.PathLike) -> Path:
    """The file a write to ``path`` must replace: a symlink is followed to the file it names.

    Replacing the link itself would leave the real file (a database kept elsewhere) untouched.
    """
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path.

    A symlink at ``path`` is written through (see ``write_target``); an existing file keeps its mode.
    """
    path = Path(path)
    target = write_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = default_file_mode()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files: a new output gets a plain open's mode, a replaced one keeps its own.
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        # Also on KeyboardInterrupt: leave no temporary file behind.
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (UTF-8, non-ASCII kept readable) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> Path:
    """Write one JSON document per line to ``path`` atomically."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return atomic_write_text(path, text)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder in a hidden sibling of ``path`` and rename it onto ``path`` when the block succeeds.

    A previous folder at ``path`` is moved aside first and removed last; if the block raises, the
    half-built sibling is removed and ``path`` is left as it was. Files get the mode a plain ``open``
    would give (libraries such as ``save_pretrained`` leave weights 0600, which a shared or shipped
    checkpoint must not keep).
    """
    out = write_target(path)  # a linked folder is replaced where it lives, the link kept
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.{uuid.uuid4().hex}.tmp"
    staging.mkdir()  # unlike mkdtemp, honours the umask, so the finished folder gets normal permissions
    try:
        yield staging
        mode = default_file_mode()
        for file in staging.rglob("*"):
            if file.is_file():
                file.chmod(mode)
        previous = None
        if out.exists():
            previous = out.parent / f".{out.name}.{uuid.uuid4().hex}.old"
            os.replace(out, previous)
        os.replace(staging, out)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def append_jsonl(path: str | os.PathLike, row: Any) -> None:
    """Append one JSON line to a log, written and flushed at once: O(1) per row, whatever the log's length.

    A crash can tear only the line being written; ``log_lines`` drops such a tail on read.
    """
    target = write_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()


def log_lines(text: str) -> list[str]:
    """The lines of an appended JSONL log, without a torn last line (one cut short by a crash)."""
    lines = text.splitlines()
    if lines and not text.endswith("\n"):
        try:
            json.loads(lines[-1])
        except json.JSONDecodeError:
            lines.pop()
    return lines
