"""The disk store's files: their names and layout, opening one with its checks, and
listing the directory.

A file is named by the SHA-256 of its key and holds a fixed head (magic, version, kind,
lengths, CRC-32 of the metadata, CRC-32 of the body), the metadata as JSON (keys,
status, times, header fields), then the body. The body's checksum is the store's to
verify (``disk.py``, ``verify.py``); files of an older version are removed as damaged. A response that varies is reached through a small *marker*
file at the name of its primary key, holding the Vary header names and a generation;
each variant is named by primary key, generation and secondary key. A file whose head,
metadata or length does not check out (a crash, a full disk, a foreign file) is
removed when opened. Temporary files, where writers stream, start with ``TEMP_PREFIX``.
"""

from __future__ import annotations

import json
import os
import re
import stat
import struct
import zlib
from dataclasses import dataclass
from hashlib import sha256

MAGIC = b"MPYCACHE"
VERSION = 2
ENTRY = 1
MARKER = 2
# magic, version, kind, meta length, body length, metadata CRC, body CRC
HEAD = struct.Struct(">8sBBxxIQII")
MAX_META = 1 << 20
COPY_CHUNK = 1 << 20
NAME = re.compile(r"[0-9a-f]{64}")
TEMP_PREFIX = ".tmp-"


def file_name(primary: bytes, generation: bytes = b"", secondary: bytes = b"") -> str:
    """The file of a response (or marker): a hash of its primary key, and for a variant
    also of its marker's generation and its secondary key."""
    if not generation:
        return sha256(primary).hexdigest()
    return sha256(b"%s\0%s\0%s" % (primary, generation, secondary)).hexdigest()


def encode(kind: int, meta: dict, body_length: int = 0, body_crc: int = 0
           ) -> tuple[bytes, int]:
    """The head and metadata bytes of a file; also the metadata length."""
    raw = json.dumps(meta, separators=(",", ":")).encode("ascii")
    head = HEAD.pack(MAGIC, VERSION, kind, len(raw), body_length, zlib.crc32(raw), body_crc)
    return head + raw, len(raw)


@dataclass
class CacheFile:
    """A cache file opened and checked: its descriptor, kind, metadata, body span and
    the body's checksum (not verified here: the body is not read)."""

    fd: int
    kind: int
    meta: dict
    body_offset: int
    body_length: int
    st: os.stat_result
    body_crc: int


def as_text(data: bytes) -> str:
    return data.decode("latin-1")


def as_bytes(text: str) -> bytes:
    return text.encode("latin-1")


def file_identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_ino, st.st_dev


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_exactly(fd: int, offset: int, length: int) -> bytes | None:
    """``length`` bytes of ``fd`` from ``offset``; None when the file ends before."""
    data = os.pread(fd, length, offset)
    while len(data) < length:
        more = os.pread(fd, length - len(data), offset + len(data))
        if not more:
            return None
        data += more
    return data


def open_file(path: str) -> CacheFile | None:
    """Open and check a cache file; a damaged one is removed. None if absent or bad."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    st = None
    try:
        st = os.fstat(fd)
        head = os.pread(fd, HEAD.size, 0)
        magic, version, kind, meta_length, body_length, crc, body_crc = HEAD.unpack(head)
        if (magic != MAGIC or version != VERSION or kind not in (ENTRY, MARKER)
                or meta_length > MAX_META
                or st.st_size != HEAD.size + meta_length + body_length):
            raise ValueError("bad head")
        raw = os.pread(fd, meta_length, HEAD.size)
        if len(raw) != meta_length or zlib.crc32(raw) != crc:
            raise ValueError("bad metadata")
        meta = json.loads(raw)
        if not isinstance(meta, dict) or not isinstance(meta.get("p"), str):
            raise ValueError("bad metadata")
        return CacheFile(fd, kind, meta, HEAD.size + meta_length, body_length, st, body_crc)
    except (OSError, ValueError, struct.error):
        os.close(fd)
        if st is not None:
            remove_if_same(path, st)
        return None


def remove_if_same(path: str, st: os.stat_result) -> None:
    """Unlink ``path`` unless another process has replaced it since it was opened."""
    try:
        if file_identity(os.stat(path)) == file_identity(st):
            os.unlink(path)
    except OSError:
        pass


def read_marker(path: str, primary: bytes) -> tuple[tuple[bytes, ...], bytes] | None:
    """The Vary names and generation of the primary key's marker at ``path``, if any."""
    found = open_file(path)
    if found is None:
        return None
    os.close(found.fd)
    if found.kind != MARKER or found.meta["p"] != as_text(primary):
        return None
    try:
        return tuple(as_bytes(name) for name in found.meta["v"]), as_bytes(found.meta["g"])
    except (KeyError, TypeError, AttributeError):
        return None


def list_files(directory: str, dead: float) -> list[tuple[float, int, str]]:
    """(mtime, size, path) of every cache file in ``directory``; temporary files last
    modified before ``dead`` are removed."""
    files = []
    try:
        scan = os.scandir(directory)
    except OSError:
        return files
    with scan:
        for item in scan:
            try:
                st = item.stat(follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if item.name.startswith(TEMP_PREFIX):
                if st.st_mtime < dead:
                    try:
                        os.unlink(item.path)
                    except OSError:
                        pass
            elif NAME.fullmatch(item.name):
                files.append((st.st_mtime, st.st_size, item.path))
    return files


def copy_range(source: int, offset: int, target: int, length: int) -> None:
    """Copy ``length`` bytes of ``source`` from ``offset`` to the end of ``target``."""
    end = offset + length
    position = offset
    try:
        while position < end:
            copied = os.copy_file_range(source, target, min(COPY_CHUNK, end - position),
                                        position)
            if copied == 0:
                raise OSError("the source file is shorter than its head says")
            position += copied
        return
    except OSError as exc:
        if exc.errno is None or position != offset:
            raise
    while position < end:
        data = os.pread(source, min(COPY_CHUNK, end - position), position)
        if not data:
            raise OSError("the source file is shorter than its head says")
        write_all(target, data)
        position += len(data)
