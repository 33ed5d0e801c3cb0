"""Which failures of a training run are the machine's (a full disk, an unwritable folder), said in one line.

A run that cannot write its checkpoint is not a bug to show as a traceback: the user frees space and resumes.
The libraries do not say so alike: Python and safetensors raise ``OSError`` or name errno 28 ("No space left
on device", "os error 28"), but ``torch.save`` reports a short write only as ``RuntimeError("[enforce fail at
inline_container.cc:...] . unexpected pos A vs B")`` or "file write failed". That last kind is taken for a
full disk only when the run folder's disk has (almost) no space left, which is what a short write leaves.
``failure_reason`` returns the line to show, or None for a failure that is the program's own.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from ..errors import os_error_message

NEARLY_FULL_BYTES = 64 * 2**20  # less free than this after a failed write: the write ran out of space
_DISK_FULL_WORDS = ("no space left on device", "os error 28", "disk quota exceeded")
_SHORT_WRITE_WORDS = ("inline_container", "file write failed", "pytorchstreamwriter")


def failure_reason(exc: BaseException, folder: Path) -> str | None:
    """One line for a failure the user fixes on the machine (``folder`` is the run folder), or None."""
    if isinstance(exc, OSError) and exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return os_error_message(exc)
    if _disk_full(exc, folder):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"the disk holding {folder} is full ({first}); free some space there (run.save_total_limit keeps "
            "fewer checkpoints) or choose another run folder"
        )
    return None


def _disk_full(exc: BaseException, folder: Path) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(exc).lower()
    if any(words in text for words in _DISK_FULL_WORDS):
        return True
    return any(words in text for words in _SHORT_WRITE_WORDS) and free_bytes(folder) < NEARLY_FULL_BYTES


def free_bytes(folder: Path) -> int:
    """Free space on the disk holding ``folder`` (its nearest existing parent); huge when unknown."""
    path = folder
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 2**63  # unknown: no claim that the disk is full
