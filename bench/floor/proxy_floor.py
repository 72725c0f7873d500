"""The proxy floor: a bare keep-alive HTTP/1.1 reverse proxy over a list of upstreams.

    proxy_floor.py PORT UPSTREAM [UPSTREAM ...] [--host 127.0.0.1]

UPSTREAM is HOST:PORT. It uses what monkey_py uses, a ``selectors`` event loop and
httptools' request and response parsers. Each client connection gets one upstream
connection, opened at its first request and kept alive for the client connection's
life; the upstreams take turns, one new upstream connection each (round robin). Requests
on a connection go upstream one at a time, in order, each rebuilt from its method,
target and headers as the client sent them; response bytes go back to the client as
they arrive, untouched, and the response parser only tells where a response ends.

It is deliberately bare, so that the harness can measure what pure-Python proxying
costs per request on this machine and set monkey_py's cost against it. It is not a
proxy to use: no limits (connections, header sizes, buffered data), no timeouts, no
header rules (hop-by-hop headers pass both ways, no Via, no X-Forwarded-For), request
bodies are not forwarded and HEAD is not understood (the harness sends GET), the
upstream connect blocks, an upstream that fails is not retried (the client connection is
closed instead), no error responses. Only writes the kernel did not take in full are
kept for later, so that nothing is cut.
"""

from __future__ import annotations

import argparse
import selectors
import socket
from collections import deque
from itertools import cycle

import httptools

select = selectors.DefaultSelector()


class Channel:
    """A non-blocking socket in the selector, with the bytes the kernel did not take yet."""

    __slots__ = ("sock", "unsent", "closed")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.unsent = b""
        self.closed = False
        select.register(sock, selectors.EVENT_READ, self)

    def receive(self) -> bytes | None:
        """What arrived; b"" when the peer is gone; None when nothing is there yet."""
        try:
            return self.sock.recv(65536)
        except BlockingIOError:
            return None
        except ConnectionError:
            return b""

    def write(self, data: bytes) -> bool:
        """Send now what the kernel takes, keep the rest; False if the peer is gone."""
        if self.unsent:
            self.unsent += data
            return True
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except ConnectionError:
            return False
        if sent < len(data):
            self.unsent = data[sent:]
            select.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)
        return True

    def writable(self) -> None:
        try:
            sent = self.sock.send(self.unsent)
        except BlockingIOError:
            return
        except ConnectionError:
            self.close()
            return
        self.unsent = self.unsent[sent:]
        if not self.unsent:
            select.modify(self.sock, selectors.EVENT_READ, self)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            select.unregister(self.sock)
            self.sock.close()


class Upstream(Channel):
    """The upstream connection of one client: relays response bytes, finds their end."""

    __slots__ = ("client", "parser", "complete")

    def __init__(self, sock: socket.socket, client: "Client") -> None:
        super().__init__(sock)
        self.client = client
        self.parser = httptools.HttpResponseParser(self)
        self.complete = False

    def on_message_complete(self) -> None:  # called by the parser
        self.complete = True

    def readable(self) -> None:
        data = self.receive()
        if data is None:
            return
        client = self.client
        if not data:
            self.close()
            return
        if not client.write(data):
            client.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            client.close()
            return
        if self.complete:
            self.complete = False
            client.waiting = False
            client.forward()

    def close(self) -> None:
        """Between responses the client gets a new upstream connection at its next
        request; in the middle of one it cannot get the rest, so it is closed too."""
        if self.closed:
            return
        super().close()
        client = self.client
        if client.upstream is self:
            client.upstream = None
        if client.waiting:
            client.close()


class Client(Channel):
    """One client connection: parse its requests and pass them upstream one at a time."""

    __slots__ = ("parser", "upstream", "requests", "waiting", "target", "headers", "choose")

    def __init__(self, sock: socket.socket, choose) -> None:
        super().__init__(sock)
        self.parser = httptools.HttpRequestParser(self)
        self.choose = choose          # the next upstream address, round robin
        self.upstream: Upstream | None = None
        self.requests: deque[bytes] = deque()
        self.waiting = False          # a request is upstream, its response not complete
        self.target = b""
        self.headers: list[bytes] = []

    # Parser callbacks: collect the request, queue it rebuilt.
    def on_url(self, url: bytes) -> None:
        self.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append(b"%s: %s\r\n" % (name, value))

    def on_message_complete(self) -> None:
        self.requests.append(b"%s %s HTTP/1.1\r\n%s\r\n" % (
            self.parser.get_method(), self.target, b"".join(self.headers)))
        self.target = b""
        self.headers = []

    def readable(self) -> None:
        data = self.receive()
        if data is None:
            return
        if not data:
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()
            return
        if not self.waiting:
            self.forward()

    def forward(self) -> None:
        """Send the next queued request upstream, connecting first if needed."""
        if not self.requests or self.closed:
            return
        if self.upstream is None:
            try:
                sock = socket.create_connection(next(self.choose))
            except OSError:
                self.close()
                return
            self.upstream = Upstream(sock, self)
        if not self.upstream.write(self.requests.popleft()):
            self.close()
            return
        self.waiting = True

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.close()


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def serve(host: str, port: int, upstreams: list[tuple[str, int]]) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    listener.setblocking(False)
    select.register(listener, selectors.EVENT_READ, None)
    choose = cycle(upstreams)
    while True:
        for key, events in select.select():
            channel = key.data
            if channel is None:
                while True:
                    try:
                        sock, _ = listener.accept()
                    except BlockingIOError:
                        break
                    Client(sock, choose)
                continue
            if events & selectors.EVENT_WRITE and channel.unsent and not channel.closed:
                channel.writable()
            if events & selectors.EVENT_READ and not channel.closed:
                channel.readable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("upstreams", nargs="+", type=address, metavar="UPSTREAM",
                        help="HOST:PORT of an upstream; they take turns")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    serve(args.host, args.port, args.upstreams)


if __name__ == "__main__":
    main()
