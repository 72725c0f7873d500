"""A per-worker store in memory: least recently used first out, bounded in bytes.

Each entry is charged its body, its header bytes and a fixed overhead per entry and per
field, so the memory held stays near ``max_bytes`` however many distinct URLs are
requested. Bodies being written are bounded by ``max_object`` each.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

from ..rules.control import Headers
from ..rules.key import secondary_key
from ..rules.partial import partial_key
from .store import Meta, Stored, length_mismatch, names_to_store

ENTRY_OVERHEAD = 512
FIELD_OVERHEAD = 64


def entry_size(stored: Stored) -> int:
    """The bytes an entry is charged: body, keys, header fields and overheads."""
    head = sum(len(name) + len(value) + FIELD_OVERHEAD for name, value in stored.headers)
    return ENTRY_OVERHEAD + len(stored.primary) + len(stored.secondary) + head + (
        stored.body_length)


class _Variants:
    """The responses stored for one primary key, and the header names they vary on."""

    __slots__ = ("vary", "entries")

    def __init__(self, vary: tuple[bytes, ...]) -> None:
        self.vary = vary
        self.entries: dict[bytes, Stored] = {}


class MemoryStore:
    """Responses kept in this process's memory (see the store interface)."""

    def __init__(self, max_bytes: int, max_object: int) -> None:
        if max_bytes <= 0 or max_object <= 0:
            raise ValueError("the cache sizes must be positive")
        self.max_bytes = max_bytes
        self.max_object = min(max_object, max_bytes)
        self._groups: dict[bytes, _Variants] = {}
        self._lru: OrderedDict[tuple[bytes, bytes], int] = OrderedDict()
        self._bytes = 0
        self._counts = dict.fromkeys(
            ("stores", "aborts", "errors", "evictions", "hits", "misses", "invalidations"), 0)

    def lookup(self, primary: bytes, request_headers: Headers) -> Stored | None:
        group = self._groups.get(primary)
        stored = None
        if group is not None:
            secondary = secondary_key(group.vary, request_headers)
            stored = group.entries.get(secondary)
        if stored is None:
            self._counts["misses"] += 1
            return None
        self._lru.move_to_end((primary, stored.secondary))
        self._counts["hits"] += 1
        return stored

    def begin(self, primary: bytes, request_headers: Headers, meta: Meta
              ) -> MemoryWriter | None:
        names = names_to_store(meta.headers, self.max_object)
        if names is None:
            return None
        return MemoryWriter(self, primary, secondary_key(names, request_headers), names, meta)

    def _commit(self, stored: Stored) -> bool:
        size = entry_size(stored)
        if size > self.max_bytes:
            self._counts["aborts"] += 1
            return False
        group = self._groups.get(stored.primary)
        if group is not None and group.vary != stored.handle:
            self._drop(stored.primary)
            group = None
        if group is None:
            group = self._groups[stored.primary] = _Variants(stored.handle)
        if stored.secondary in group.entries:
            self._bytes -= self._lru.pop((stored.primary, stored.secondary))
        group.entries[stored.secondary] = stored
        self._lru[(stored.primary, stored.secondary)] = size
        self._bytes += size
        self._counts["stores"] += 1
        self._evict()
        return True

    def _evict(self) -> None:
        while self._bytes > self.max_bytes:
            (primary, secondary), size = self._lru.popitem(last=False)
            self._bytes -= size
            group = self._groups[primary]
            del group.entries[secondary]
            if not group.entries:
                del self._groups[primary]
            self._counts["evictions"] += 1

    def _drop(self, primary: bytes) -> int:
        group = self._groups.pop(primary, None)
        if group is None:
            return 0
        for secondary in group.entries:
            self._bytes -= self._lru.pop((primary, secondary))
        return len(group.entries)

    def update_headers(self, stored: Stored, headers: Headers, request_time: float,
                       response_time: float) -> bool:
        group = self._groups.get(stored.primary)
        if group is None or group.entries.get(stored.secondary) is not stored:
            return False
        fresh = dataclasses.replace(stored, headers=list(headers), request_time=request_time,
                                    response_time=response_time)
        entry = (stored.primary, stored.secondary)
        group.entries[stored.secondary] = fresh
        size = entry_size(fresh)
        self._bytes += size - self._lru[entry]
        self._lru[entry] = size
        self._lru.move_to_end(entry)
        self._evict()
        return True

    def invalidate(self, primary: bytes) -> None:
        if self._drop(primary):
            self._counts["invalidations"] += 1

    def purge(self, primary: bytes | None = None) -> int:
        if primary is not None:
            return self._drop(primary) + self._drop(partial_key(primary))
        removed = len(self._lru)
        self._groups.clear()
        self._lru.clear()
        self._bytes = 0
        return removed

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._lru), "bytes": self._bytes, **self._counts}


class MemoryWriter:
    """Collects a body in memory until it is committed to its ``MemoryStore``."""

    def __init__(self, store: MemoryStore, primary: bytes, secondary: bytes,
                 names: tuple[bytes, ...], meta: Meta) -> None:
        self._store = store
        self._primary = primary
        self._secondary = secondary
        self._names = names
        self._meta = meta
        self._chunks: list[bytes] = []
        self._done = False
        self.written = 0

    def write(self, chunk: bytes) -> bool:
        if self._done:
            return False
        self.written += len(chunk)
        if self.written > self._store.max_object:
            self._store._counts["aborts"] += 1
            self.abort()
            return False
        self._chunks.append(bytes(chunk))
        return True

    def commit(self) -> bool:
        if self._done:
            return False
        self._done = True
        body = b"".join(self._chunks)
        self._chunks = []
        meta = self._meta
        if length_mismatch(meta.headers, len(body)):
            self._store._counts["aborts"] += 1
            return False
        return self._store._commit(Stored(
            self._primary, self._secondary, meta.status, list(meta.headers),
            meta.request_time, meta.response_time, len(body), body=body, handle=self._names,
        ))

    def abort(self) -> None:
        self._done = True
        self._chunks = []
