"""Real upstream servers for the reverse proxy's integration tests, run in the test process.

An :class:`Upstream` is a threaded HTTP/1.1 server on raw sockets, on an ephemeral
loopback port, one thread per connection. It records what reached it (every request
head and body, connections opened, connections the other side closed) so a test sees
exactly what the proxy sent upstream. Its *behaviour* answers each request: a function
``behaviour(exchange) -> bool`` that writes the answer through the :class:`Exchange` and
returns True to keep the connection for the next request. The behaviours below are the
upstreams the tests need: one that answers with its name, a slow one, a silent one, one
that stalls without reading the body, one that dies mid-body, chunked, close-delimited,
large and endless answers, keep-alive connections that go stale, and a WebSocket echo.
Given a TLS server context it speaks HTTPS, and records the SNI names, handshakes and
resumed sessions it saw. :class:`FullBacklog` is an address whose connects never complete.
"""

from __future__ import annotations

import base64
import hashlib
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from rawhttp import read_chunked

MAX_HEAD = 65536
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class PeerClosed(Exception):
    """The other side closed (or reset) the connection."""


@dataclass
class Received:
    """One request as the upstream received it; ``body`` is de-chunked."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    chunked: bool
    connection: int

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]

    def names(self) -> set[str]:
        """The header names, lower-case."""
        return {key.lower() for key, _ in self.headers}


class Reader:
    """Buffered reads from one connection's socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def fill(self) -> None:
        try:
            data = self.sock.recv(65536)
        except OSError as exc:
            raise PeerClosed(str(exc)) from None
        if not data:
            raise PeerClosed("end of stream")
        self.buffer += data

    def exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self.fill()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self.fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def request(self, connection: int, body: bool = True) -> Received | None:
        """The next request, or None when the connection ends between requests.

        ``body=False`` leaves the body unread in the socket.
        """
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > MAX_HEAD:
                raise PeerClosed("request head too large")
            try:
                self.fill()
            except PeerClosed:
                if self.buffer:
                    raise
                return None
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ", 2)
        headers = []
        for line in lines:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        received = Received(method, target, version, headers, b"", False, connection)
        encoding = received.header("Transfer-Encoding")
        received.chunked = encoding is not None and encoding.lower() == "chunked"
        if body and received.chunked:
            received.body = self._chunked_body()
        elif body:
            received.body = self.exactly(int(received.header("Content-Length") or 0))
        return received

    def _chunked_body(self) -> bytes:
        return read_chunked(self.line, self.exactly)


class Exchange:
    """One request on one upstream connection, as a behaviour answers it."""

    def __init__(self, upstream: "Upstream", sock: socket.socket, reader: Reader,
                 request: Received) -> None:
        self.upstream = upstream
        self.sock = sock
        self.reader = reader
        self.request = request

    @property
    def keep_alive(self) -> bool:
        connection = (self.request.header("Connection") or "").lower()
        if self.request.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection

    def send(self, data: bytes) -> None:
        """Write ``data``; raises PeerClosed if the other side is gone."""
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise PeerClosed(str(exc)) from None
        with self.upstream.cond:
            self.upstream.sent += len(data)
            self.upstream.cond.notify_all()

    def head(self, status: int, headers: list[tuple[str, str]], reason: str = "OK") -> bytes:
        lines = [f"HTTP/1.1 {status} {reason}", f"X-Upstream: {self.upstream.name}"]
        lines.extend(f"{name}: {value}" for name, value in headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def respond(self, status: int = 200, body: bytes = b"",
                headers: list[tuple[str, str]] = (), reason: str = "OK") -> bool:
        """A complete answer with Content-Length; True when the connection stays open."""
        headers = list(headers)
        if status not in (204, 304) and not 100 <= status < 200:
            headers.append(("Content-Length", str(len(body))))
        if not self.keep_alive:
            headers.append(("Connection", "close"))
        no_body = self.request.method == "HEAD" or status in (204, 304)
        self.send(self.head(status, headers, reason) + (b"" if no_body else body))
        return self.keep_alive

    def wait_for_close(self) -> None:
        """Read (and drop) whatever arrives until the other side closes or the server stops."""
        while True:
            self.reader.fill()
            self.reader.buffer = b""


Behaviour = Callable[[Exchange], bool]


class Upstream:
    """A threaded HTTP/1.1 test server on ``host`` (IPv4 or IPv6); ``port=0`` picks a port."""

    def __init__(self, name: str, behaviour: Behaviour | None = None, port: int = 0,
                 host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.name = name
        self.behaviour = behaviour or answer_name
        # False: request bodies are left unread for the behaviour (see ``stall``).
        self.read_bodies = True
        self.stopping = threading.Event()
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, port), family=family, backlog=128)
        self.port = self.listener.getsockname()[1]
        self.cond = threading.Condition()
        self.received: list[Received] = []
        self.connections = 0
        self._numbered = 0
        # The numbers of the connections the other side closed (or reset).
        self.peer_closed: set[int] = set()
        self.sent = 0
        # Connections on which one_per_connection answered already.
        self.answered_connections: set[int] = set()
        # What collect_then_answer read, per upgraded connection.
        self.collected: list[bytes] = []
        self._socks: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        # HTTPS: the server context, the SNI names received (None: none sent), the
        # certificates clients presented (getpeercert(): {} when none was asked for), the
        # handshakes completed, those that resumed a session, and the failures.
        self.tls = tls
        self.server_names: list[str | None] = []
        self.client_certificates: list[dict] = []
        self.handshakes = self.resumed = self.handshake_failures = 0
        if tls is not None:
            tls.sni_callback = self._sni
        self._start(self._accept_loop)

    def __repr__(self) -> str:
        return f"<Upstream {self.name} {self.address}>"

    @property
    def address(self) -> str:
        """``host:port`` as a ServerList names it (``[::1]:port`` for IPv6)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def requests(self) -> int:
        with self.cond:
            return len(self.received)

    @property
    def open_connections(self) -> int:
        with self.cond:
            return len(self._socks)

    def last(self) -> Received:
        with self.cond:
            return self.received[-1]

    def reset(self) -> None:
        """Forget what was received so far (connections stay open)."""
        with self.cond:
            self.received.clear()
            self.connections = 0
            self.peer_closed.clear()
            self.sent = 0
            self.collected.clear()
            self.server_names.clear()
            self.client_certificates.clear()
            self.handshakes = self.resumed = self.handshake_failures = 0

    def wait_until(self, predicate: Callable[["Upstream"], bool], timeout: float = 5.0) -> bool:
        """Wait until ``predicate(self)`` holds; False if it still does not after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(remaining)
            return True

    def wait_closed_by_peer(self, connection: int, timeout: float = 5.0) -> bool:
        """Wait until the other side closed connection number ``connection``."""
        return self.wait_until(lambda up: connection in up.peer_closed, timeout)

    def stop(self) -> None:
        """Stop listening and close every connection."""
        self.stopping.set()
        with self.cond:
            socks = list(self._socks)
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(5)

    # -- the server threads ---------------------------------------------------------
    def _start(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.cond:
                if self.stopping.is_set():
                    sock.close()
                    return
                self.connections += 1
                self._numbered += 1
                number = self._numbered
                self._socks.add(sock)
                self.cond.notify_all()
            self._start(self._serve, sock, number)

    def _sni(self, _sslobj, name: str | None, _context) -> None:
        with self.cond:
            self.server_names.append(name)

    def _secure(self, sock: socket.socket) -> ssl.SSLSocket | None:
        """The TLS handshake of an accepted connection; None when it failed."""
        try:
            secured = self.tls.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError):
            with self.cond:
                self.handshake_failures += 1
                self.cond.notify_all()
            return None
        with self.cond:
            self._socks.discard(sock)
            self._socks.add(secured)
            self.handshakes += 1
            self.resumed += secured.session_reused
            self.client_certificates.append(secured.getpeercert() or {})
            self.cond.notify_all()
        return secured

    def _serve(self, sock: socket.socket, number: int) -> None:
        if self.tls is not None:
            secured = self._secure(sock)
            if secured is None:
                sock.close()
                with self.cond:
                    self._socks.discard(sock)
                    self.cond.notify_all()
                return
            sock = secured
        reader = Reader(sock)
        try:
            while True:
                request = reader.request(number, self.read_bodies)
                if request is None:
                    raise PeerClosed("closed between requests")
                with self.cond:
                    self.received.append(request)
                    self.cond.notify_all()
                if not self.behaviour(Exchange(self, sock, reader, request)):
                    return
        except PeerClosed:
            with self.cond:
                self.peer_closed.add(number)
                self.cond.notify_all()
        finally:
            sock.close()
            with self.cond:
                self._socks.discard(sock)
                self.cond.notify_all()


class FullBacklog:
    """A listening socket whose accept queue is full, so a connect to it never completes.

    Linux drops a SYN while the listener's accept queue is full, and the connecting side
    retransmits until it gives up: a connect timeout on loopback, deterministically.
    """

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.queued: list[socket.socket] = []
        while True:
            sock = socket.socket()
            sock.settimeout(0.2)
            try:
                sock.connect(("127.0.0.1", self.port))
            except TimeoutError:
                sock.close()
                break
            self.queued.append(sock)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        for sock in self.queued:
            sock.close()
        self.listener.close()


# -- behaviours ---------------------------------------------------------------------
def answer_name(exchange: Exchange) -> bool:
    """200 with the upstream's name as the body, and the request target in X-Target."""
    return exchange.respond(200, exchange.upstream.name.encode(),
                            [("Content-Type", "text/plain"),
                             ("X-Target", exchange.request.target)])


def slow(release: threading.Event, then: "Behaviour | None" = None) -> Behaviour:
    """Once ``release`` is set, answer with the name (or as ``then`` does): as slow as a
    test wants."""
    def behaviour(exchange: Exchange) -> bool:
        while not release.wait(0.05):
            if exchange.upstream.stopping.is_set():
                return False
        return (then or answer_name)(exchange)
    return behaviour


def silent(exchange: Exchange) -> bool:
    """Accept the request and never answer; notice when the other side gives up."""
    exchange.wait_for_close()
    return False


def stall(exchange: Exchange) -> bool:
    """Read nothing more (with ``read_bodies`` off: not the body) until the server stops."""
    exchange.upstream.stopping.wait()
    return False


def hang_up(exchange: Exchange) -> bool:
    """Take the whole request, then close without a word (a crash after receiving it)."""
    return False


def die_mid_body(exchange: Exchange) -> bool:
    """Announce 100000 bytes, send 1000 of them and close."""
    exchange.send(exchange.head(200, [("Content-Length", "100000")]) + b"x" * 1000)
    return False


def chunked(parts: list[bytes]) -> Behaviour:
    """A chunked answer, one chunk per part, with a pause so they leave separately."""
    def behaviour(exchange: Exchange) -> bool:
        exchange.send(exchange.head(200, [("Transfer-Encoding", "chunked")]))
        for part in parts:
            exchange.send(b"%x\r\n%s\r\n" % (len(part), part))
            time.sleep(0.01)
        exchange.send(b"0\r\n\r\n")
        return exchange.keep_alive
    return behaviour


def close_delimited(body: bytes) -> Behaviour:
    """An answer without Content-Length or chunking: the body ends when the connection does."""
    def behaviour(exchange: Exchange) -> bool:
        exchange.send(exchange.head(200, [("Connection", "close")]))
        exchange.send(body)
        return False
    return behaviour


@lru_cache(maxsize=4)
def payload(size: int) -> bytes:
    """``size`` pseudo-random bytes, the same on every call."""
    return random.Random(size).randbytes(size)


def large(size: int) -> Behaviour:
    """``payload(size)`` with Content-Length, written in 64 KiB blocks."""
    def behaviour(exchange: Exchange) -> bool:
        body = payload(size)
        exchange.send(exchange.head(200, [("Content-Length", str(size))]))
        if exchange.request.method != "HEAD":
            for start in range(0, size, 65536):
                exchange.send(body[start:start + 65536])
        return exchange.keep_alive
    return behaviour


def endless(exchange: Exchange) -> bool:
    """A chunked body that never ends: 64 KiB chunks for as long as they are taken."""
    exchange.send(exchange.head(200, [("Transfer-Encoding", "chunked")]))
    block = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    while True:
        exchange.send(block)


def one_per_connection(exchange: Exchange) -> bool:
    """Answer the first request of a connection; close at the second without answering.

    The second request meets what a stale keep-alive connection gives: an upstream that
    closed its idle connection just as the proxy sent the next request on it.
    """
    if exchange.request.connection in exchange.upstream.answered_connections:
        return False
    exchange.upstream.answered_connections.add(exchange.request.connection)
    return answer_name(exchange)


def idle_close(seconds: float) -> Behaviour:
    """Answer with the name, then close the connection if it stays idle ``seconds``."""
    def behaviour(exchange: Exchange) -> bool:
        if not answer_name(exchange):
            return False
        exchange.sock.settimeout(seconds)
        try:
            exchange.reader.fill()
        except PeerClosed:
            return False
        exchange.sock.settimeout(None)
        return True
    return behaviour


def websocket_accept(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + WEBSOCKET_GUID).digest()).decode()


def websocket_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final WebSocket frame; clients mask, servers do not."""
    length = len(payload)
    if length < 126:
        header = bytes([0x80 | opcode, (0x80 if mask else 0) | length])
    else:
        header = bytes([0x80 | opcode, (0x80 if mask else 0) | 126]) + length.to_bytes(2, "big")
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        header += mask
    return header + payload


def read_websocket_frame(read: Callable[[int], bytes]) -> tuple[int, bytes]:
    """(opcode, unmasked payload) of the next frame; ``read(n)`` returns exactly n bytes."""
    first, second = read(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(read(2), "big")
    elif length == 127:
        length = int.from_bytes(read(8), "big")
    mask = read(4) if second & 0x80 else None
    data = read(length)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return first & 0x0F, data


def websocket_server(greeting: bytes = b"") -> Behaviour:
    """Complete the WebSocket handshake, then echo every frame until close or EOF.

    ``greeting``: a text frame sent in the same packet as the 101.
    """
    def behaviour(exchange: Exchange) -> bool:
        key = exchange.request.header("Sec-WebSocket-Key")
        if key is None:
            return exchange.respond(400, b"not a WebSocket handshake")
        exchange.send(exchange.head(101, [
            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", websocket_accept(key)),
        ], "Switching Protocols") + (websocket_frame(0x1, greeting) if greeting else b""))
        while True:
            opcode, data = read_websocket_frame(exchange.reader.exactly)
            exchange.send(websocket_frame(opcode, data))
            if opcode == 0x8:
                return False
    return behaviour


websocket_echo = websocket_server()


def collect_then_answer(exchange: Exchange) -> bool:
    """Upgrade to a raw byte stream; read it to its end, then answer and close."""
    exchange.send(exchange.head(101, [("Upgrade", "collect"), ("Connection", "Upgrade")],
                                "Switching Protocols"))
    try:
        while True:
            exchange.reader.fill()
    except PeerClosed:
        upstream = exchange.upstream
        with upstream.cond:
            upstream.collected.append(exchange.reader.buffer)
            upstream.cond.notify_all()
        exchange.send(b"got: " + exchange.reader.buffer)
    return False


# -- a set of upstreams ------------------------------------------------------------------
class Upstreams:
    """Starts upstreams, and stops them all when the ``with`` block (a fixture) ends."""

    def __init__(self) -> None:
        self.started: list[Upstream] = []

    def __enter__(self) -> "Upstreams":
        return self

    def __exit__(self, *exc) -> None:
        for upstream in self.started:
            upstream.stop()

    def __call__(self, name: str, behaviour: Behaviour | None = None, port: int = 0,
                 host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Upstream:
        upstream = Upstream(name, behaviour, port, host, tls)
        self.started.append(upstream)
        return upstream
