"""The one exception type users see.

Everything that is the user's to fix (a missing image, a malformed database, an unknown task) raises
``RepicError`` with a message that says what is wrong and how to fix it. The CLI prints the message
without a traceback; library users can catch it as a ``ValueError``. File-system errors nobody foresaw (a
read-only folder, a full disk) reach the CLI as ``OSError``; ``os_error_message`` turns one into a single
line naming the path.
"""

from __future__ import annotations

import errno


class RepicError(ValueError):
    """A problem with the user's input, configuration or files, explained in the message."""


_OS_ERROR_FIXES = {
    errno.EACCES: "check its permissions and its folder's, or choose another path",
    errno.EPERM: "check its permissions and its folder's, or choose another path",
    errno.EROFS: "it is on a read-only file system; choose another path",
    errno.ENOSPC: "the disk is full; free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up; free some space or write elsewhere",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.EISDIR: "it is a folder; give a file",
    errno.ENAMETOOLONG: "use a shorter path",
}


def os_error_message(exc: OSError) -> str:
    """One line for a file-system error the program did not foresee: which path, what happened, what to do."""
    paths = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
    reason = (exc.strerror or str(exc)).lower()
    fix = _OS_ERROR_FIXES.get(exc.errno, "check the path and try again")
    return f"{paths}: {reason}; {fix}" if paths else f"{reason}; {fix}"
