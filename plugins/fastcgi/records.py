"""FastCGI 1.0 records, the web server's side: bytes to send, and records from bytes.

Sans-IO: no socket and no clock. One request per connection at a time (request id 1):
PHP-FPM and most FastCGI servers do not multiplex. The framing is written here because
the Python libraries found implement the application's side (flup, fcgiproto, last
released in 2016) or a blocking client (fcgi-client), none a client for a loop of ours.
"""

from __future__ import annotations

import struct

VERSION = 1
BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7
RESPONDER = 1
KEEP_CONN = 1
REQUEST_COMPLETE = 0
REQUEST_ID = 1
MAX_CONTENT = 65535
_HEADER = struct.Struct(">BBHHBx")
_PADDING = b"\0" * 8


class ProtocolError(Exception):
    """The server sent something that is not FastCGI."""


def record(kind: int, content: bytes = b"") -> bytes:
    """One record, padded to a multiple of 8 bytes."""
    padding = -len(content) % 8
    return _HEADER.pack(VERSION, kind, REQUEST_ID, len(content), padding) + content + \
        _PADDING[:padding]


def stream(kind: int, data: bytes) -> bytes:
    """``data`` as records of ``kind``, each at most 65535 bytes (not the closing one)."""
    if len(data) <= MAX_CONTENT:
        return record(kind, data)
    view = memoryview(data)
    return b"".join(record(kind, bytes(view[i:i + MAX_CONTENT]))
                    for i in range(0, len(data), MAX_CONTENT))


def begin_request(keep_conn: bool) -> bytes:
    return record(BEGIN_REQUEST, struct.pack(">HB5x", RESPONDER, KEEP_CONN if keep_conn else 0))


def _length(size: int) -> bytes:
    return bytes((size,)) if size < 128 else struct.pack(">I", size | 0x80000000)


def params(pairs) -> bytes:
    """The name-value pairs as PARAMS records, then the empty PARAMS record that ends them."""
    body = b"".join(_length(len(name)) + _length(len(value)) + name + value
                    for name, value in pairs)
    return stream(PARAMS, body) + record(PARAMS)


def stdin(data: bytes) -> bytes:
    """Request body bytes; ``stdin(b"")`` is the end of the body."""
    return stream(STDIN, data) if data else record(STDIN)


class RecordReader:
    """Bytes in, ``(type, content)`` out, for the records of request 1."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self.buffer
        buffer += data
        found = []
        start = 0
        size = len(buffer)
        while size - start >= 8:
            version, kind, request_id, length, padding = _HEADER.unpack_from(buffer, start)
            if version != VERSION:
                raise ProtocolError(f"FastCGI version {version}")
            end = start + 8 + length + padding
            if end > size:
                break
            if request_id == REQUEST_ID:
                found.append((kind, bytes(buffer[start + 8:start + 8 + length])))
            elif request_id != 0:
                raise ProtocolError(f"a record for request {request_id}")
            start = end
        if start:
            del buffer[:start]
        return found


def end_request(content: bytes) -> tuple[int, int]:
    """``(appStatus, protocolStatus)`` of an END_REQUEST record's content."""
    if len(content) < 8:
        raise ProtocolError("a short END_REQUEST record")
    app_status, protocol_status = struct.unpack_from(">IB", content)
    return app_status, protocol_status
