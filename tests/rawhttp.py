"""A small HTTP/1.1 client on raw sockets, for tests where the exact bytes on the wire matter.

``http.client`` hides framing (it repairs, retries and refuses things a test must see);
this client sends exactly the bytes it is given and parses responses one by one from
one buffer, so pipelined responses and a server-side close can be checked precisely.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

NO_BODY_STATUSES = (204, 304)


def build_request(
    method: str = "GET",
    target: str = "/",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    version: str = "HTTP/1.1",
    host: str | None = "localhost",
) -> bytes:
    """The bytes of one request; ``host=None`` leaves the Host header out."""
    lines = [f"{method} {target} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines.extend(f"{name}: {value}" for name, value in headers or ())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Response:
    """A parsed response; header names keep the server's spelling."""

    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    raw_head: bytes = field(default=b"", repr=False)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]


class ServerClosed(Exception):
    """The server closed the connection before a complete response arrived."""


class Client:
    """One TCP connection to the server under test."""

    def __init__(self, port: int, timeout: float = 5.0, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.timeout = timeout
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buffer = bytearray()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str = "GET", target: str = "/", **kwargs) -> Response:
        """Send one request and read its response."""
        return self.request_exchange(method, target, **kwargs)[1]

    def request_exchange(self, method: str = "GET", target: str = "/", **kwargs
                         ) -> tuple[list["Response"], Response]:
        """Send one request; read its interim answers and its response (``read_exchange``)."""
        self.send(build_request(method, target, **kwargs))
        return self.read_exchange(method)

    def _fill(self) -> bool:
        """Read more bytes into the buffer; False at end of stream."""
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            if not self._fill():
                raise ServerClosed(f"closed {count - len(self.buffer)} bytes short of the body")
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def _take_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise ServerClosed("closed in the middle of a line")
        line, _, rest = self.buffer.partition(b"\r\n")
        self.buffer = rest
        return bytes(line)

    def read_head(self) -> Response:
        """Read a status line and headers; the body is left in the stream."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise ServerClosed(f"closed before a complete response head: {self.buffer!r}")
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        self.buffer = rest
        head = bytes(head)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        version, status, reason = (status_line.split(" ", 2) + [""])[:3]
        headers = []
        for line in header_lines:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        return Response(version, int(status), reason, headers, raw_head=head)

    def read_response(self, method: str = "GET") -> Response:
        """Read one complete response to a ``method`` request (interim 1xx are skipped)."""
        return self.read_exchange(method)[1]

    def read_exchange(self, method: str = "GET") -> tuple[list[Response], Response]:
        """The interim (1xx) answers to a ``method`` request, in the order they came,
        and its complete final response."""
        interim = []
        while True:
            response = self.read_head()
            if response.status >= 200 or response.status == 101:
                break
            interim.append(response)
        return interim, self._with_body(response, method)

    def _with_body(self, response: Response, method: str) -> Response:
        if method == "HEAD" or response.status in NO_BODY_STATUSES or response.status == 101:
            return response
        encoding = response.header("Transfer-Encoding")
        length = response.header("Content-Length")
        if encoding is not None and encoding.lower() == "chunked":
            response.body = self._read_chunked()
        elif length is not None:
            response.body = self._take(int(length))
        else:
            response.body = self.read_to_close()
        return response

    def _read_chunked(self) -> bytes:
        return read_chunked(self._take_line, self._take)

    def read_to_close(self) -> bytes:
        """Everything until the server closes the connection."""
        while self._fill():
            pass
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def wait_closed(self, timeout: float) -> float | None:
        """Seconds until the server closed the connection, or None if it stayed open.

        Bytes that arrive meanwhile are kept in the buffer.
        """
        start = time.monotonic()
        deadline = start + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.sock.settimeout(remaining)
                try:
                    if not self._fill():
                        return time.monotonic() - start
                except socket.timeout:
                    return None
        finally:
            self.sock.settimeout(self.timeout)

    def is_closed(self, timeout: float = 2.0) -> bool:
        """True when the server closes the connection within ``timeout``."""
        return self.wait_closed(timeout) is not None


def read_chunked(line, take) -> bytes:
    """A chunked body, read with ``line()`` (one line, without CRLF) and ``take(n)``;
    trailers are skipped."""
    parts = []
    while True:
        size = int(line().split(b";")[0], 16)
        if size == 0:
            while line():
                pass
            return b"".join(parts)
        parts.append(take(size))
        line()
