"""A parsed request as plain data: its head, and its body as the parser delivers it.

No socket and no server here: the parser fills these, the connection hands them on.
"""

from __future__ import annotations

from typing import Callable

Headers = list[tuple[bytes, bytes]]


class RequestHead:
    """One request head.

    ``headers`` keeps the client's order with lower-case names; ``host`` is the Host
    header (or an absolute-form target's authority), lower-case. ``content_length`` is
    0 without a body and -1 for a chunked one. ``upgrade`` is set, to the bytes that
    followed the head, when the request asked to switch protocols. ``body`` receives the
    body, when there is one.
    """

    __slots__ = ("method", "target", "version", "headers", "host", "keep_alive",
                 "content_length", "upgrade", "body")

    def __init__(self, method: str, target: bytes, version: str, headers: Headers,
                 host: bytes, keep_alive: bool, content_length: int) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.host = host
        self.keep_alive = keep_alive
        self.content_length = content_length
        self.upgrade: bytes | None = None
        self.body: Body | None = Body() if content_length else None


class Body:
    """A request body as it arrives: kept until a consumer reads it, then streamed.

    The parser calls ``feed``, ``finish`` and ``fail``; a consumer calls ``read`` with
    its callbacks and gets what was kept, then every further piece as it comes.
    """

    __slots__ = ("kept", "done", "error", "on_data", "on_end", "on_error")

    def __init__(self) -> None:
        self.kept: list[bytes] | None = []
        self.done = False
        self.error = None
        self.on_data: Callable[[bytes], None] | None = None
        self.on_end: Callable[[], None] | None = None
        self.on_error: Callable[[object], None] | None = None

    def feed(self, chunk: bytes) -> None:
        if self.on_data is not None:
            self.on_data(chunk)
        else:
            self.kept.append(chunk)

    def finish(self) -> None:
        self.done = True
        if self.on_end is not None:
            self.on_end()

    def fail(self, error) -> None:
        self.error = error
        if self.on_error is not None:
            self.on_error(error)

    def read(self, on_data, on_end, on_error=None) -> None:
        """Deliver the kept pieces, then stream; ``on_end`` or ``on_error`` ends it."""
        self.on_data, self.on_end, self.on_error = on_data, on_end, on_error
        kept, self.kept = self.kept, None
        for chunk in kept or ():
            on_data(chunk)
        if self.error is not None:
            if on_error is not None:
                on_error(self.error)
        elif self.done:
            on_end()
