"""Memory and locks shared by the master and every worker forked after it: the
balancers, the proxy's statistics and its cache figures keep their global state here."""

from __future__ import annotations

import fcntl
import mmap
import tempfile
import weakref

SLOT_BYTES = 8


class ProcessLock:
    """A lock between forked processes that the kernel frees if its holder dies.

    An ``fcntl`` record lock on an anonymous file made before the fork: record locks
    belong to a process, so the workers exclude each other, and a worker killed while
    holding one cannot stop the others. Use it as a context manager. Within one process
    it does not exclude (the workers are single-threaded). ``close`` closes the file.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; with ``blocking=False``, return False at once if it is held."""
        flags = fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.lockf(self._file.fileno(), flags)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        fcntl.lockf(self._file.fileno(), fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock's file (in this process); closing twice does nothing."""
        self._file.close()

    def __enter__(self) -> "ProcessLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class SharedMemory:
    """Int64 slots and a lock shared by the master and every worker forked after it.

    The memory is an anonymous ``MAP_SHARED`` mapping, so a process forked after it was
    created reads and writes the same bytes. ``slots`` is an int64 ``memoryview``, all
    zero at first; an aligned 8-byte store is atomic, so one writer per slot needs no
    lock. ``lock`` serialises read-modify-write sequences that several workers run.

    ``close`` closes the lock's file; a SharedMemory dropped without it closes the file
    as it goes (the memory itself has no descriptor and goes with its last view).
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"shared memory needs at least one slot, not {slots}")
        self._map = mmap.mmap(-1, slots * SLOT_BYTES, flags=mmap.MAP_SHARED)
        self.slots = memoryview(self._map).cast("q")
        self.lock = ProcessLock()
        self._close = weakref.finalize(self, self.lock.close)

    @classmethod
    def of_size(cls, size: int) -> SharedMemory:
        """Shared memory of at least ``size`` bytes (rounded up to whole slots)."""
        return cls(-(-size // SLOT_BYTES))

    @property
    def size(self) -> int:
        """The size in bytes."""
        return len(self.slots) * SLOT_BYTES

    def close(self) -> None:
        """Close the lock's file; the slots stay readable until the last view goes."""
        self._close()
