"""One lock for every read-modify-write of a shared file or folder (a database, an index, a run folder).

Atomic writes (``repic.atomic``) keep a file whole, but two processes that both read, edit and write it
still lose one of the edits: each writes back what it read plus its own change. ``locked(path)`` makes the
whole read-edit-write one step: it holds an exclusive lock on a sidecar file ``.NAME.lock`` beside the
real file (a symlink is followed, so a link and its target share one lock), because the file itself is
replaced on every write and a lock on it would be lost with the old inode.

- ``wait`` seconds (default 60) is how long a second writer waits for the first; then it fails with a
  message naming the lock file. ``hold`` keeps a lock for a whole training run: a second run into the same
  folder fails at once instead of clearing or interleaving the first one's checkpoints.
- The lock is an OS lock (``filelock``): a crashed holder releases it, so a stale lock file never blocks.
- Where no lock file can be made (a read-only folder), nothing can be written either, so the block runs
  unlocked: reading works, and a write reports its own error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from .atomic import write_target
from .errors import RepicError

DEFAULT_WAIT_S = 60.0


def lock_path(path: str | os.PathLike) -> Path:
    """The sidecar lock file of ``path``: ``.NAME.lock`` beside the file a write would replace."""
    target = write_target(Path(os.path.abspath(path)))
    return target.parent / f".{target.name}.lock"


@contextmanager
def locked(path: str | os.PathLike, *, wait: float = DEFAULT_WAIT_S, what: str = "file") -> Iterator[Path]:
    """Hold the exclusive lock of ``path`` for the block; ``RepicError`` when another holder keeps it."""
    lock_file = lock_path(path)
    if not lock_file.parent.is_dir():
        yield lock_file  # nothing there yet to share; the write that creates the folder reports its own error
        return
    lock = FileLock(lock_file, timeout=wait)
    try:
        lock.acquire()
    except Timeout:  # before OSError: filelock's Timeout is a TimeoutError
        waited = f"after waiting {wait:g} s" if wait > 0 else "and this command does not wait"
        raise RepicError(
            f"{what} {path} is being changed by another repic process (it holds {lock_file}) {waited}; "
            "run again when that one has finished"
        ) from None
    except OSError:
        # A folder no one may write to has no writer to race: read on; a write there reports its own error.
        yield lock_file
        return
    try:
        yield lock_file
    finally:
        lock.release()


def hold(path: str | os.PathLike, *, what: str = "folder") -> FileLock | None:
    """Take the lock of ``path`` for as long as this process works on it (a training run folder).

    Another process that asks for it fails at once with a message; this process may take it again (the
    lock is reentrant here, so a run resumed in the same process is not refused). ``release()`` the
    returned lock when done; the OS releases it when the process ends. ``None`` where no lock file can
    be made (see the module docstring).
    """
    lock_file = lock_path(path)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_file, timeout=0, is_singleton=True, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise RepicError(
            f"{what} {path} is in use by another repic process (it holds {lock_file}); wait for it to end, "
            "or choose another folder"
        ) from None
    except OSError:
        return None
    return lock
