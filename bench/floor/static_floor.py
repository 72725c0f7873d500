"""The static floor: a bare keep-alive HTTP/1.1 server that answers one file from memory.

    static_floor.py PORT FILE [--host 127.0.0.1]

It uses what monkey_py uses, a ``selectors`` event loop and httptools' request parser,
and does as little else as a server can: FILE is read once at start, its response (status
line, four header lines, body) is built once, and every complete request on every
connection gets that same response, whatever its method, target or headers.

It is deliberately bare, so that the harness can measure what pure Python costs per
request on this machine and set monkey_py's cost against it. It is not a server to use:
no limits (connections, header sizes, buffered output), no timeouts, no header rules (no
Connection: close, no HEAD, no Date), no error handling beyond closing a connection whose
peer went away or sent something httptools rejects. Only writes the kernel did not take
in full are kept for later, so that a response is never cut.
"""

from __future__ import annotations

import argparse
import mimetypes
import selectors
import socket
from pathlib import Path

import httptools

select = selectors.DefaultSelector()


class Connection:
    """One client connection: parse what arrives, answer each complete request."""

    __slots__ = ("sock", "parser", "answers", "unsent")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = httptools.HttpRequestParser(self)
        self.answers = 0          # complete requests in the data just fed to the parser
        self.unsent = b""         # what the kernel did not take yet
        select.register(sock, selectors.EVENT_READ, self)

    def on_message_complete(self) -> None:  # called by the parser
        self.answers += 1

    def readable(self, response: bytes) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except ConnectionError:
            data = b""
        if not data:
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()
            return
        if self.answers:
            self.write(response * self.answers)
            self.answers = 0

    def write(self, data: bytes) -> None:
        if self.unsent:
            self.unsent += data
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except ConnectionError:
            self.close()
            return
        if sent < len(data):
            self.unsent = data[sent:]
            select.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)

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
        select.unregister(self.sock)
        self.sock.close()


def accept(listener: socket.socket) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        Connection(sock)


def serve(host: str, port: int, response: bytes) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    listener.setblocking(False)
    select.register(listener, selectors.EVENT_READ, None)
    while True:
        for key, events in select.select():
            connection = key.data
            if connection is None:
                accept(listener)
                continue
            if events & selectors.EVENT_WRITE and connection.unsent:
                connection.writable()
            if events & selectors.EVENT_READ and connection.sock.fileno() >= 0:
                connection.readable(response)


def build_response(path: Path) -> bytes:
    body = path.read_bytes()
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    head = (f"HTTP/1.1 200 OK\r\nServer: static_floor\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("file", type=Path, help="the file every request is answered with")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    serve(args.host, args.port, build_response(args.file))


if __name__ == "__main__":
    main()
