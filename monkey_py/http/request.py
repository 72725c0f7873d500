"""One request on a connection, and the API a handler answers it with."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable
from urllib.parse import unquote_to_bytes

if TYPE_CHECKING:
    from ..config import Site
    from .connection import Connection
    from .parser import ParseError

Headers = list[tuple[bytes, bytes]]


class Request:
    """A parsed request head, its body as it arrives, and the response written to it.

    ``headers`` keeps the client's order with lower-case names. ``target`` is the raw
    request target, ``path`` its percent-encoded path part and ``query`` the rest.
    """

    __slots__ = (
        "method", "target", "path", "query", "version", "headers", "host", "keep_alive",
        "content_length", "site", "conn", "status", "bytes_sent", "completed",
        "response_started", "upgrade", "start_time", "notes",
        "_body", "_body_done", "_body_error", "_on_data", "_on_end", "_on_error",
        "on_drain", "on_abort",
    )

    def __init__(
        self, method: str, target: bytes, version: str, headers: Headers, host: bytes,
        keep_alive: bool, content_length: int,
    ) -> None:
        self.method = method
        self.target = target
        path, sep, query = target.partition(b"?")
        self.path = path
        self.query = query if sep else None
        self.version = version
        self.headers = headers
        self.host = host
        self.keep_alive = keep_alive
        # -1: chunked, length unknown until the end; 0: no body.
        self.content_length = content_length
        self.site: Site | None = None
        self.conn: Connection | None = None
        self.status = 0
        self.bytes_sent = 0
        self.completed = False
        self.response_started = False
        self.upgrade: bytes | None = None
        self.start_time = 0.0
        # Free space for plugins, keyed by plugin name.
        self.notes: dict[str, object] = {}
        self._body: list[bytes] | None = [] if content_length else None
        self._body_done = not content_length
        self._body_error: ParseError | None = None
        self._on_data: Callable[[bytes], None] | None = None
        self._on_end: Callable[[], None] | None = None
        self._on_error: Callable[[ParseError], None] | None = None
        # Called when the connection's write buffer drains (after write() returned False).
        self.on_drain: Callable[[], None] | None = None
        # Called if the client goes away before the response is complete.
        self.on_abort: Callable[[], None] | None = None

    # -- request data ---------------------------------------------------------------
    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower-case bytes), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_all(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]

    @property
    def peer(self) -> tuple:
        return self.conn.peer

    @property
    def unquoted_path(self) -> bytes:
        return unquote_to_bytes(self.path)

    @property
    def has_body(self) -> bool:
        return self.content_length != 0

    @property
    def body_complete(self) -> bool:
        return self._body_done

    # -- request body ----------------------------------------------------------------
    def read_body(
        self,
        on_data: Callable[[bytes], None],
        on_end: Callable[[], None],
        on_error: Callable[["ParseError"], None] | None = None,
    ) -> None:
        """Stream the body: ``on_data`` per chunk, then ``on_end`` (or ``on_error``).

        Chunks already received are delivered at once. Call ``pause_body()`` to stop
        reading from the client (backpressure) and ``resume_body()`` to go on. A client
        that sent ``Expect: 100-continue`` gets its ``100 Continue`` now.
        """
        self.conn.send_continue(self)
        self._on_data, self._on_end, self._on_error = on_data, on_end, on_error
        buffered, self._body = self._body, None
        for chunk in buffered or ():
            on_data(chunk)
        if self._body_error is not None:
            if on_error is not None:
                on_error(self._body_error)
        elif self._body_done:
            on_end()

    def pause_body(self) -> None:
        self.conn.pause_reading()

    def resume_body(self) -> None:
        self.conn.resume_reading()

    def feed_body(self, chunk: bytes) -> None:
        if self._on_data is not None:
            self._on_data(chunk)
        elif self._body is not None:
            self._body.append(chunk)

    def feed_body_end(self) -> None:
        self._body_done = True
        if self._on_end is not None:
            self._on_end()

    def fail_body(self, error: "ParseError") -> None:
        self._body_error = error
        if self._on_error is not None:
            self._on_error(error)

    # -- the response ----------------------------------------------------------------
    def respond(
        self, status: int, headers: Headers = (), body: bytes = b"",
        reason: bytes | None = None,
    ) -> None:
        """Send a complete response with ``body`` (Content-Length is added)."""
        self.conn.respond(self, status, headers, body, reason)

    def error(self, status: int, detail: str = "", headers: Headers = ()) -> None:
        """Answer with the site's ``[ERROR_PAGES]`` page for ``status`` or a short page."""
        self.conn.respond_error(self, status, detail, headers)

    def start_response(
        self, status: int, headers: Headers | bytes, reason: bytes | None = None,
        length: int | None = None,
    ) -> None:
        """Send the status line and headers; the body follows with write() and end().

        ``length`` is the body's length if known, else it is read from a
        ``content-length`` header. With a length the body must have exactly that many
        bytes; without one, HTTP/1.1 clients get a chunked body and HTTP/1.0 clients a
        body that ends when the connection closes. ``headers`` may also be pre-encoded
        ``b"Name: value\\r\\n"`` lines (without Content-Length: pass ``length``).
        """
        self.conn.start_response(self, status, headers, reason, length)

    def write(self, data: bytes) -> bool:
        """Queue body bytes. False means the buffer is full: wait for ``on_drain``."""
        return self.conn.write_body(self, data)

    def sendfile(self, fd: int, offset: int, count: int, close: bool = True) -> None:
        """Queue ``count`` bytes of the open file descriptor ``fd`` from ``offset``.

        The bytes go out with ``os.sendfile``; with ``close`` the connection closes
        ``fd`` once they are sent (or the connection closes).
        """
        self.conn.write_file(self, fd, offset, count, close)

    def end(self) -> None:
        """The body is complete."""
        self.conn.end_response(self)

    def abort(self) -> None:
        """Give up on the response: the connection is closed without finishing it."""
        self.conn.abort(self)

    def detach(self):
        """Take the client socket over for a tunnel (after a 101 response was started).

        Returns ``(socket, received, unsent)``: the socket, removed from the server's
        loop; the bytes the client sent past the request; the response bytes not yet
        written to the client, which the caller must send first. The caller now owns
        and closes the socket.
        """
        return self.conn.detach(self)
