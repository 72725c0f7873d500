"""A store in a directory shared by every worker: it survives restarts, serves bodies
with ``os.sendfile``, and stays near ``max_bytes`` by evicting the least recently used.

One file per stored response, and a *marker* file for a response that varies
(``disk_files.py`` gives their names and layout). Invalidating a resource removes its
marker, which orphans every variant at once (a new marker gets a new generation, so an
old variant can never come back); orphans are removed by eviction like any other
unused file.

Concurrency across processes rests on atomic renames: a response is written to a
temporary file in the same directory as its body streams (one write per chunk) and
``os.replace``-d into place on commit, so a reader sees the old file or the new one,
whole, never a partial one. A reader keeps reading through its open descriptor even if
the file is replaced or evicted meanwhile. A file that does not check out is a miss
and is removed. Files are not fsync-ed: after a power loss a file may be truncated,
which the length check catches.

Every body is written with its CRC-32. A body of at most ``SMALL_BODY`` bytes is read
into memory on lookup and checked there: a damaged one is a miss, and its file is
removed. A larger body is left in its file for ``sendfile``; ``verify.py`` checks it
in the background and ``damaged`` removes it on a mismatch.

Eviction approximates LRU by modification time, which a hit refreshes (at most every
``TOUCH_INTERVAL`` seconds). Each store scans the directory after writing a
sixteenth of ``max_bytes`` or when its estimate of the total exceeds it, and then
removes the oldest files down to 90%; several workers scanning at once only race to
unlink the same files, which is harmless. Temporary files untouched for
``TEMP_GRACE`` seconds belong to a writer that died and are removed by the scan.

Every operation is small, bounded file I/O on a local directory (a head read, chunk
writes, a rename); the exceptions are the scan, which stats every file, and
``update_headers``, which copies the body within the kernel (``os.copy_file_range``).
"""

from __future__ import annotations

import logging
import os
import secrets
import time
import zlib
from collections.abc import Callable

from ..rules.control import Headers
from ..rules.key import secondary_key
from ..rules.partial import partial_key
from .disk_files import (
    ENTRY,
    MARKER,
    MAX_META,
    TEMP_PREFIX,
    CacheFile,
    as_bytes,
    as_text,
    copy_range,
    encode,
    file_identity,
    file_name,
    list_files,
    open_file,
    read_exactly,
    read_marker,
    remove_if_same,
    write_all,
)
from .disk_writer import DiskWriter
from .store import Meta, Stored, names_to_store
from .trouble import FailureLog

log = logging.getLogger("monkey_py.proxy_reverse")

# Bodies up to this size are read into memory and checked on every lookup.
SMALL_BODY = 64 * 1024
TEMP_GRACE = 3600.0
TOUCH_INTERVAL = 10.0
LOW_WATER = 0.9
SCAN_FRACTION = 16


class DiskStore:
    """Responses kept in files under ``directory`` (see the module notes)."""

    def __init__(self, directory: str, max_bytes: int, max_object: int,
                 clock: Callable[[], float] = time.time) -> None:
        if max_bytes <= 0 or max_object <= 0:
            raise ValueError("the cache sizes must be positive")
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            if not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
                raise PermissionError(13, "not readable and writable")
        except OSError as exc:
            raise ValueError(
                f"cache directory {directory}: {exc.strerror or exc}") from None
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_object = min(max_object, max_bytes)
        self._clock = clock
        self._counts = dict.fromkeys(
            ("stores", "aborts", "errors", "evictions", "hits", "misses", "invalidations",
             "damaged"), 0)
        self.failures = FailureLog("responses are not stored until this is repaired")
        self._total = 0
        self._entries = 0
        self._since_scan = 0
        self.evict()

    # -- reading ----------------------------------------------------------------------
    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def _touch(self, found: CacheFile) -> None:
        now = self._clock()
        if found.st.st_mtime < now - TOUCH_INTERVAL:
            try:
                os.utime(found.fd, (now, now))
            except OSError:
                pass

    def lookup(self, primary: bytes, request_headers: Headers) -> Stored | None:
        stored = self._lookup(primary, request_headers)
        self._counts["hits" if stored is not None else "misses"] += 1
        return stored

    def _lookup(self, primary: bytes, request_headers: Headers) -> Stored | None:
        path = self._path(file_name(primary))
        found = open_file(path)
        if found is None or found.meta["p"] != as_text(primary):
            if found is not None:
                os.close(found.fd)
            return None
        secondary = b""
        if found.kind == MARKER:
            self._touch(found)
            os.close(found.fd)
            try:
                names = tuple(as_bytes(name) for name in found.meta["v"])
                generation = as_bytes(found.meta["g"])
            except (KeyError, TypeError, AttributeError):
                return None
            secondary = secondary_key(names, request_headers)
            path = self._path(file_name(primary, generation, secondary))
            found = open_file(path)
            if found is None:
                return None
        try:
            meta = found.meta
            if found.kind != ENTRY or meta["p"] != as_text(primary) or (
                    meta["s"] != as_text(secondary)):
                raise ValueError("another key")
            headers = [(as_bytes(name), as_bytes(value)) for name, value in meta["h"]]
            stored = Stored(
                primary, secondary, int(meta["st"]), headers, float(meta["rq"]),
                float(meta["rs"]), found.body_length, fd=found.fd,
                body_offset=found.body_offset,
                handle=(path, found.st.st_ino, found.st.st_dev, found.body_crc),
            )
        except (KeyError, TypeError, ValueError):
            os.close(found.fd)
            return None
        self._touch(found)
        if found.body_length <= SMALL_BODY:
            return self._in_memory(stored, found)
        return stored

    def _in_memory(self, stored: Stored, found: CacheFile) -> Stored | None:
        """A small body read and checked: the stored response with its body in memory,
        or None (a miss) when the body does not match its checksum."""
        try:
            body = read_exactly(found.fd, found.body_offset, found.body_length)
        except OSError:
            body = None
        stored.close()
        if body is None or zlib.crc32(body) != found.body_crc:
            self._remove_damaged(stored.handle[0], found.st)
            return None
        stored.body = body
        return stored

    def damaged(self, path: str, identity: tuple[int, int]) -> None:
        """A body found not to match its checksum after it was looked up (``verify.py``):
        remove its file, unless another process has replaced it since."""
        try:
            st = os.stat(path)
        except OSError:
            return
        if file_identity(st) == identity:
            self._remove_damaged(path, st)

    def _remove_damaged(self, path: str, st: os.stat_result) -> None:
        remove_if_same(path, st)
        self._counts["damaged"] += 1
        log.warning("cache file %s: the body does not match its checksum (damaged on disk, "
                    "or written by something else); removed, the next request fetches it "
                    "anew", path)

    # -- writing ----------------------------------------------------------------------
    def _temp(self) -> tuple[int, str]:
        path = self._path(f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}")
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), path

    def begin(self, primary: bytes, request_headers: Headers, meta: Meta) -> DiskWriter | None:
        names = names_to_store(meta.headers, self.max_object)
        if names is None:
            return None
        marker = None
        name = file_name(primary)
        secondary = b""
        if names:
            current = read_marker(self._path(file_name(primary)), primary)
            generation = current[1] if current is not None and current[0] == names else (
                secrets.token_hex(8).encode("ascii"))
            if current is None or current[0] != names:
                marker = (names, generation)
            secondary = secondary_key(names, request_headers)
            name = file_name(primary, generation, secondary)
        record = {
            "p": as_text(primary), "s": as_text(secondary), "st": meta.status,
            "rq": meta.request_time, "rs": meta.response_time,
            "h": [[as_text(n), as_text(v)] for n, v in meta.headers],
        }
        head, meta_length = encode(ENTRY, record)
        if meta_length > MAX_META:
            return None
        try:
            fd, temp = self._temp()
        except OSError as exc:
            self.failed(exc, f"cache directory {self.directory}: cannot create a file")
            return None
        writer = DiskWriter(self, fd, temp, self._path(name), primary, marker, head,
                            meta_length, meta.headers)
        return writer if writer.write_raw(head) else None

    def count(self, counter: str) -> None:
        """Add one to a counter of ``stats()`` (for the writers)."""
        self._counts[counter] += 1

    def failed(self, exc: OSError, what: str) -> None:
        """A write failed: counted as an error, and by cause (logged sparingly)."""
        self._counts["errors"] += 1
        self.failures.failed(exc, what)

    def write_marker(self, primary: bytes, names: tuple[bytes, ...], generation: bytes) -> None:
        data, _ = encode(MARKER, {"p": as_text(primary), "v": [as_text(n) for n in names],
                                  "g": as_text(generation)})
        fd, temp = self._temp()
        try:
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(temp, self._path(file_name(primary)))
        except OSError:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise
        self.committed(len(data), entries=0)

    def committed(self, size: int, entries: int = 1) -> None:
        """A file of ``size`` bytes is in place: count it, and scan when it is time."""
        self._total += size
        self._entries += entries
        self._since_scan += size
        if self._total > self.max_bytes or self._since_scan >= max(
                self.max_bytes // SCAN_FRACTION, 1):
            self.evict()

    def update_headers(self, stored: Stored, headers: Headers, request_time: float,
                       response_time: float) -> bool:
        """Rewrite the entry with the new head, copying the body; the replacement is
        atomic, and skipped when another process has replaced the file meanwhile."""
        path, ino, dev, body_crc = stored.handle
        record = {
            "p": as_text(stored.primary), "s": as_text(stored.secondary), "st": stored.status,
            "rq": request_time, "rs": response_time,
            "h": [[as_text(n), as_text(v)] for n, v in headers],
        }
        head, meta_length = encode(ENTRY, record, stored.body_length, body_crc)
        if meta_length > MAX_META:
            return False
        own = stored.fd is None
        try:
            source = os.open(path, os.O_RDONLY) if own else stored.fd
        except OSError:
            return False
        try:
            if own and file_identity(os.fstat(source)) != (ino, dev):
                return False
            if not self._rewrite(path, (ino, dev), head, source, stored):
                return False
        finally:
            if own:
                os.close(source)
        try:
            stored.handle = (path, *file_identity(os.stat(path)), body_crc)
        except OSError:
            return False
        self._total += len(head) - stored.body_offset
        return True

    def _rewrite(self, path: str, identity: tuple[int, int], head: bytes, source: int,
                 stored: Stored) -> bool:
        try:
            fd, temp = self._temp()
        except OSError as exc:
            self.failed(exc, f"cache directory {self.directory}: cannot create a file")
            return False
        try:
            try:
                write_all(fd, head)
                copy_range(source, stored.body_offset, fd, stored.body_length)
            finally:
                os.close(fd)
            if file_identity(os.stat(path)) != identity:
                os.unlink(temp)
                return False
            os.replace(temp, path)
        except OSError as exc:
            self.failed(exc, f"cache directory {self.directory}: cannot rewrite {path}")
            try:
                os.unlink(temp)
            except OSError:
                pass
            return False
        return True

    # -- removing ---------------------------------------------------------------------
    def invalidate(self, primary: bytes) -> None:
        if self.purge(primary):
            self._counts["invalidations"] += 1

    def purge(self, primary: bytes | None = None) -> int:
        """Remove the primary key's response or marker (its variants go with it) and its
        partial response, or every cache file with None; returns how many files were
        removed."""
        removed = 0
        if primary is not None:
            for key in (primary, partial_key(primary)):
                try:
                    os.unlink(self._path(file_name(key)))
                    removed += 1
                except OSError:
                    pass
            return removed
        for _, _, path in self._files():
            try:
                os.unlink(path)
                removed += 1
            except OSError:
                pass
        self._total = self._entries = 0
        return removed

    def _files(self) -> list[tuple[float, int, str]]:
        return list_files(self.directory, self._clock() - TEMP_GRACE)

    def evict(self) -> None:
        """Scan the directory; if over ``max_bytes``, remove the least recently used
        files down to 90% of it."""
        files = self._files()
        total = sum(size for _, size, _ in files)
        count = len(files)
        if total > self.max_bytes:
            files.sort()
            target = self.max_bytes * LOW_WATER
            for _, size, path in files:
                if total <= target:
                    break
                try:
                    os.unlink(path)
                    self._counts["evictions"] += 1
                except OSError:
                    pass
                total -= size
                count -= 1
        self._total = total
        self._entries = count
        self._since_scan = 0

    def stats(self) -> dict[str, int]:
        """Counters of this process; ``entries`` and ``bytes`` are the directory's (markers
        included) as of the last scan plus this process's writes since; the write errors
        by cause as ``write-errors-<cause>``."""
        return {"entries": self._entries, "bytes": self._total, **self._counts,
                **{f"write-errors-{cause}": count
                   for cause, count in self.failures.counts.items()}}
