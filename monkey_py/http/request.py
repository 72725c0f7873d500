"""One request on a connection: what was asked, its body, and (inherited from the
per-response writer) the API a handler answers it with."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable
from urllib.parse import unquote_to_bytes

from .framing import NONE
from .head import Body, Headers, RequestHead
from .response import ResponseWriter

if TYPE_CHECKING:
    from ..config import Site
    from .parser import ParseError

__all__ = ["Headers", "Request"]


class Request(ResponseWriter):
    """A parsed request head, its body as it arrives, and the response written to it.

    ``headers`` keeps the client's order with lower-case names. ``target`` is the raw
    request target, ``path`` its percent-encoded path part and ``query`` the rest.
    """

    __slots__ = ("method", "target", "path", "query", "version", "headers", "host",
                 "keep_alive", "content_length", "upgrade", "site", "start_time", "_notes",
                 "_body")

    def __init__(self, head: RequestHead, conn, start_time: float = 0.0) -> None:
        # The response's state (see ResponseWriter).
        self.conn = conn
        self.stream = conn.stream
        self.status = self.bytes_sent = 0
        self.completed = self.finished = self.response_started = False
        self.on_drain: Callable[[], None] | None = None
        self.on_abort: Callable[[], None] | None = None
        self._framing = NONE
        self._remaining = -1
        self._keep = self._ending = False
        # A started response's head, held back to leave with the first body bytes.
        self._held = b""
        # The request.
        self.method = head.method
        target = self.target = head.target
        path, sep, query = target.partition(b"?")
        self.path = path
        self.query = query if sep else None
        self.version = head.version
        self.headers = head.headers
        self.host = head.host
        self.keep_alive = head.keep_alive
        # -1: chunked, length unknown until the end; 0: no body.
        self.content_length = head.content_length
        self.upgrade = head.upgrade
        self.site: Site | None = None
        self.start_time = start_time
        self._notes: dict[str, object] | None = None
        self._body: Body | None = head.body

    @property
    def notes(self) -> dict[str, object]:
        """Free space for plugins, keyed by plugin name (made when first used)."""
        notes = self._notes
        if notes is None:
            notes = self._notes = {}
        return notes

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
    def secure(self) -> bool:
        """Whether the request came over TLS, ``conn.secure``."""
        return self.conn.secure

    @property
    def unquoted_path(self) -> bytes:
        return unquote_to_bytes(self.path)

    @property
    def has_body(self) -> bool:
        return self.content_length != 0

    @property
    def body_complete(self) -> bool:
        body = self._body
        return body is None or body.done

    # -- the request body ---------------------------------------------------------------
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
        body = self._body
        if body is None:
            on_end()
            return
        self.conn.send_continue(self)
        body.read(on_data, on_end, on_error)

    def pause_body(self) -> None:
        self.conn.set_body_paused(True)

    def resume_body(self) -> None:
        self.conn.set_body_paused(False)

    # -- taking the socket over ---------------------------------------------------------
    def detach(self):
        """Take the client socket over for a tunnel (after a 101 response was started).

        Returns ``(socket, received, unsent)``: the socket, removed from the server's
        loop; the bytes the client sent past the request; the response bytes not yet
        written to the client, which the caller must send first. The caller now owns
        and closes the socket.
        """
        return self.conn.detach(self)
