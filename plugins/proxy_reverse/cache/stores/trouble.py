"""Write failures of the disk store, by cause: counted, and logged without flooding.

A full disk or a directory that turned read-only fails every write that follows, so a
line per failed request would drown the log. Each cause is logged when it first
happens, then at most once per ``LOG_INTERVAL`` seconds with the number of failures
not logged since; the counts go to the cache's figures (``figures.py``).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable

log = logging.getLogger("monkey_py.proxy_reverse")

NO_SPACE = "no-space"
READ_ONLY = "read-only"
OTHER = "other"
CAUSES = (NO_SPACE, READ_ONLY, OTHER)
LOG_INTERVAL = 60.0


def cause_of(exc: OSError) -> str:
    """``no-space`` (disk or quota full), ``read-only`` (read-only file system, or no
    permission to write there), or ``other``."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NO_SPACE
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return READ_ONLY
    return OTHER


class FailureLog:
    """Failures of one kind of write, counted by cause and logged sparingly."""

    def __init__(self, consequence: str, clock: Callable[[], float] = time.monotonic) -> None:
        """``consequence``: what a failure means, ending the log line."""
        self.consequence = consequence
        self.counts = dict.fromkeys(CAUSES, 0)
        self._clock = clock
        self._logged: dict[str, float] = {}
        self._unlogged = dict.fromkeys(CAUSES, 0)

    def failed(self, exc: OSError, what: str) -> str:
        """Count a failure of ``what`` (e.g. ``"cannot write /var/cache/x"``); log it if
        its cause was not logged within the interval. Returns the cause."""
        cause = cause_of(exc)
        self.counts[cause] += 1
        now = self._clock()
        last = self._logged.get(cause)
        if last is not None and now - last < LOG_INTERVAL:
            self._unlogged[cause] += 1
            return cause
        unlogged, self._unlogged[cause] = self._unlogged[cause], 0
        self._logged[cause] = now
        more = (f" ({unlogged} more failure(s) of this kind in the last "
                f"{now - last:.0f} s)" if unlogged else "")
        log.error("%s: %s; %s%s", what, exc.strerror or exc, self.consequence, more)
        return cause


def probe(directory: str) -> OSError | None:
    """Whether a file can be created in ``directory`` now: None, or the error. (As
    root, permission bits do not stop a write; a read-only or immutable directory
    does, and only trying tells.)"""
    path = os.path.join(directory, f".probe-{os.getpid()}")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(path)
    except FileExistsError:
        return None
    except OSError as exc:
        return exc
    return None
