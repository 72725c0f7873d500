"""The store interface: what the proxy asks of a place that keeps responses.

A store holds, per primary key, the response variants selected by their Vary headers.
The newest stored response of a resource decides which headers it varies on: storing a
response whose Vary names differ from the previous one's drops the older variants.

Bodies are written as they stream: ``begin`` returns a ``Writer``, each ``write`` adds a
chunk, ``commit`` makes the response visible to lookups at once and whole, ``abort``
drops it. A writer refuses (``write`` returns False, and the writer is aborted) as soon
as the body exceeds the store's ``max_object``; the response still streams to its client.
A store never raises on I/O trouble: the response is then simply not stored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol

from ..rules.control import Headers, header_value
from ..rules.key import vary_names


@dataclass
class Meta:
    """A response as the upstream sent it, with the times of its request and response.

    ``headers`` are the fields to store (``rules.fields.storage_headers``); the times
    are the local clock when the request was sent and when the response head arrived.
    """

    status: int
    headers: list[tuple[bytes, bytes]]
    request_time: float
    response_time: float


@dataclass(eq=False)
class Stored:
    """A stored response found by ``lookup``: its head, and its body.

    The body is in memory (``body``) or in an open file (``fd``: ``body_length`` bytes
    from ``body_offset``, ready for ``os.sendfile``). ``read`` works for both. The caller
    closes it with ``close()`` when done, or takes the descriptor with ``take_fd()``.
    ``handle`` is the store's own reference, for ``update_headers``.
    """

    primary: bytes
    secondary: bytes
    status: int
    headers: list[tuple[bytes, bytes]]
    request_time: float
    response_time: float
    body_length: int
    body: bytes | None = None
    fd: int | None = None
    body_offset: int = 0
    handle: object = field(default=None, repr=False)

    def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` body bytes from ``offset`` within the body."""
        size = max(0, min(size, self.body_length - offset))
        if self.body is not None:
            return self.body[offset:offset + size]
        if self.fd is None or size == 0:
            return b""
        return os.pread(self.fd, size, self.body_offset + offset)

    def take_fd(self) -> int | None:
        """Hand the open body file over to the caller, who must close it (e.g. through
        ``request.sendfile(fd, stored.body_offset, stored.body_length)``)."""
        fd, self.fd = self.fd, None
        return fd

    def close(self) -> None:
        """Release the body file, if still held."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Writer(Protocol):
    """A response being stored as its body streams."""

    written: int

    def write(self, chunk: bytes) -> bool:
        """Add body bytes; False once the writer has given up (too large, I/O error)."""

    def commit(self) -> bool:
        """Make the response visible; False if it could not be stored (aborted before,
        or the body does not have the length its Content-Length announced)."""

    def abort(self) -> None:
        """Drop the partial response (the upstream failed, the client left ...)."""


class Store(Protocol):
    """Where responses are kept; ``MemoryStore`` and ``DiskStore`` implement it."""

    max_object: int

    def lookup(self, primary: bytes, request_headers: Headers) -> Stored | None:
        """The stored response for the primary key whose Vary headers match the
        request's, or None."""

    def begin(self, primary: bytes, request_headers: Headers, meta: Meta) -> Writer | None:
        """Start storing ``meta`` and a body for the request; None when it cannot be
        stored here (``Vary: *``, a Content-Length above ``max_object``, I/O error)."""

    def update_headers(self, stored: Stored, headers: Headers, request_time: float,
                       response_time: float) -> bool:
        """Replace the head of ``stored`` after a 304: ``headers`` from
        ``validation.updated_headers``, the times those of the revalidation exchange
        (the age calculation restarts from them). False when the entry is gone or was
        replaced meanwhile; the body is unchanged."""

    def invalidate(self, primary: bytes) -> None:
        """Forget every variant stored for the primary key (RFC 9111 §4.4)."""

    def purge(self, primary: bytes | None = None) -> int:
        """Remove the primary key's variants, or everything with None; returns how many
        were removed (responses in memory; files on disk, where a resource that varies
        counts once for all its variants)."""

    def stats(self) -> dict[str, int]:
        """Counters: ``entries``, ``bytes``, ``stores``, ``aborts`` (too large, or short
        of its Content-Length), ``errors`` (I/O), ``evictions``, ``hits``, ``misses``,
        ``invalidations``."""


def content_length(headers: Headers) -> int | None:
    """The announced Content-Length; None when absent, -1 when not a number."""
    value = header_value(headers, b"content-length")
    if value is None:
        return None
    text = value.strip(b" \t")
    return int(text) if text.isdigit() else -1


def names_to_store(headers: Headers, max_object: int) -> tuple[bytes, ...] | None:
    """The Vary names of a response a store may begin to store; None when it may not
    (``Vary: *``, or a Content-Length above ``max_object``)."""
    names = vary_names(headers)
    announced = content_length(headers)
    if names is None or (announced is not None and announced > max_object):
        return None
    return names


def length_mismatch(headers: Headers, written: int) -> bool:
    """Whether a Content-Length is announced and the body written differs from it."""
    announced = content_length(headers)
    return announced is not None and announced != written
