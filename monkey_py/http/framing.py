"""How a response is framed and whether the connection stays open: decisions only,
no socket (RFC 9112 §6 and §9).

``frame`` turns what a handler announces (status, body length or none) and what the
request allows into the header lines the core adds and the body's framing.
"""

from __future__ import annotations

from .status import NO_BODY

# Framing of a response body.
LENGTH, CHUNKED, UNTIL_CLOSE, NONE = range(4)

CONTENT_LENGTH = b"Content-Length: %d\r\n"
CHUNKED_LINE = b"Transfer-Encoding: chunked\r\n"
# Spelled as Monkey spells them.
CLOSE_LINE = b"Connection: Close\r\n"
KEEP_ALIVE_LINE = b"Connection: Keep-Alive\r\n"


def frame(method: str, version: str, status: int, length: int, keep: bool
          ) -> tuple[bytes, int, bool]:
    """``(lines, framing, keep)`` for a response.

    ``length`` is the body's length, -1 when unknown. A HEAD answer, 1xx, 204 and 304
    carry no body (RFC 9110 §6.4.1). ``keep`` is whether the request and
    the server allow the connection to stay open; the answer may still close it (an
    HTTP/1.0 body of unknown length ends with the connection). ``lines`` are the
    ``Content-Length``, ``Transfer-Encoding`` and ``Connection`` lines to send; a 101
    gets none (its own ``Connection: upgrade`` is the handler's).
    """
    if status == 101:
        return b"", NONE, True
    bodiless = status < 200 or status in NO_BODY
    if length >= 0:
        # A HEAD answer announces the length its GET would have; 1xx, 204, 304 none.
        lines = b"" if bodiless else CONTENT_LENGTH % length
        framing = NONE if bodiless or method == "HEAD" else LENGTH
    elif bodiless or method == "HEAD":
        lines, framing = b"", NONE
    elif version == "1.1":
        lines, framing = CHUNKED_LINE, CHUNKED
    else:
        lines, framing, keep = b"", UNTIL_CLOSE, False
    if not keep:
        lines += CLOSE_LINE
    elif version == "1.0":
        lines += KEEP_ALIVE_LINE
    return lines, framing, keep


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
