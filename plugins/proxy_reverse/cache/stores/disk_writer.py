"""The disk store's writer: a response streams into a temporary file in the store's
directory, with the CRC-32 of its body, and is renamed into place on commit (see
``disk.py`` for why this is safe across processes)."""

from __future__ import annotations

import os
import zlib
from typing import TYPE_CHECKING

from ..rules.control import Headers
from .disk_files import HEAD, write_all
from .store import length_mismatch

if TYPE_CHECKING:
    from .disk import DiskStore


class DiskWriter:
    """A response streaming into its temporary file until ``commit`` renames it in place."""

    def __init__(self, store: DiskStore, fd: int, temp: str, path: str, primary: bytes,
                 marker: tuple[tuple[bytes, ...], bytes] | None, head: bytes,
                 meta_length: int, headers: Headers) -> None:
        self._store = store
        self._fd: int | None = fd
        self._temp = temp
        self._path = path
        self._primary = primary
        self._marker = marker
        self._head = head[:HEAD.size]
        self._meta_length = meta_length
        self._headers = headers
        self._crc = 0
        self.written = 0

    def write_raw(self, data: bytes) -> bool:
        try:
            write_all(self._fd, data)
        except OSError as exc:
            self._store.failed(exc, f"cannot write {self._temp}")
            self.abort()
            return False
        return True

    def write(self, chunk: bytes) -> bool:
        if self._fd is None:
            return False
        self.written += len(chunk)
        if self.written > self._store.max_object:
            self._store.count("aborts")
            self.abort()
            return False
        self._crc = zlib.crc32(chunk, self._crc)
        return self.write_raw(chunk)

    def commit(self) -> bool:
        fd = self._fd
        if fd is None:
            return False
        store = self._store
        if length_mismatch(self._headers, self.written):
            store.count("aborts")
            self.abort()
            return False
        magic, version, kind, meta_length, _, crc, _ = HEAD.unpack(self._head)
        try:
            os.pwrite(fd, HEAD.pack(magic, version, kind, meta_length, self.written, crc,
                                    self._crc), 0)
            os.close(fd)
            self._fd = None
            os.replace(self._temp, self._path)
        except OSError as exc:
            store.failed(exc, f"cannot complete {self._path}")
            self.abort()
            return False
        store.count("stores")
        try:
            if self._marker is not None:
                store.write_marker(self._primary, *self._marker)
        except OSError as exc:
            store.failed(exc, f"cannot write the Vary marker of {self._path}")
        store.committed(HEAD.size + self._meta_length + self.written)
        return True

    def abort(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        try:
            os.unlink(self._temp)
        except OSError:
            pass
