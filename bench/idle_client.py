"""Hold many idle keep-alive connections open to one server.

Run as its own process (pinned to the load CPU by the harness)::

    idle_client.py HOST PORT COUNT PATH

It opens COUNT connections with non-blocking sockets, sends one ``GET PATH HTTP/1.1`` on
each, reads the whole response, and keeps the connections open and idle. It then prints
one JSON line ``{"ready": ..., "failed": {...}}`` and answers commands read from stdin, one
per line: ``check`` prints ``{"open": N, "closed": M}``; ``exit`` (or end of input) closes
everything and exits.
"""

from __future__ import annotations

import errno
import json
import resource
import selectors
import socket
import sys
import time
from collections import Counter

WINDOW = 128
TIMEOUT = 120.0


class Pending:
    """One connection on its way to idle: connecting, then reading its response."""

    def __init__(self, sock: socket.socket, request: bytes) -> None:
        self.sock = sock
        self.unsent = request
        self.received = bytearray()
        self.connected = False


def response_state(data: bytes) -> str:
    """'partial', 'complete', or an error label for a buffered HTTP response."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return "partial"
    head = data[:head_end].decode("latin-1").split("\r\n")
    if not head[0].startswith("HTTP/1.1 200"):
        return f"status {head[0][9:12] or '?'}"
    length = None
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
        if name.strip().lower() == "connection" and value.strip().lower() == "close":
            return "server asked to close"
    if length is None:
        return "no content-length"
    body = len(data) - head_end - 4
    if body < length:
        return "partial"
    return "complete" if body == length else "extra bytes after body"


def open_idle(host: str, port: int, count: int, path: str) -> tuple[list[socket.socket], Counter]:
    """Open ``count`` connections, one request each; return the idle ones and the failures."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    selector = selectors.DefaultSelector()
    idle: list[socket.socket] = []
    failed: Counter = Counter()
    started = active = 0
    deadline = time.monotonic() + TIMEOUT

    def fail(item: Pending, reason: str) -> None:
        nonlocal active
        selector.unregister(item.sock)
        item.sock.close()
        failed[reason] += 1
        active -= 1

    while (started < count or active) and time.monotonic() < deadline:
        while started < count and active < WINDOW:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            started += 1
            code = sock.connect_ex((host, port))
            if code not in (0, errno.EINPROGRESS):
                sock.close()
                failed[f"connect: {errno.errorcode.get(code, code)}"] += 1
                continue
            selector.register(sock, selectors.EVENT_WRITE, Pending(sock, request))
            active += 1
        for key, _ in selector.select(timeout=1.0):
            item: Pending = key.data
            if not item.connected:
                code = item.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    fail(item, f"connect: {errno.errorcode.get(code, code)}")
                    continue
                item.connected = True
            if item.unsent:
                try:
                    item.unsent = item.unsent[item.sock.send(item.unsent):]
                except OSError as exc:
                    fail(item, f"send: {errno.errorcode.get(exc.errno, exc.errno)}")
                    continue
                if not item.unsent:
                    selector.modify(item.sock, selectors.EVENT_READ, item)
                continue
            try:
                chunk = item.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as exc:
                fail(item, f"recv: {errno.errorcode.get(exc.errno, exc.errno)}")
                continue
            if not chunk:
                fail(item, "closed before full response")
                continue
            item.received += chunk
            state = response_state(bytes(item.received))
            if state == "complete":
                selector.unregister(item.sock)
                idle.append(item.sock)
                active -= 1
            elif state != "partial":
                fail(item, state)
    for key in list(selector.get_map().values()):
        key.data.sock.close()
        failed["timeout"] += 1
    failed["not started (timeout)"] += count - started
    return idle, +failed


def still_open(sockets: list[socket.socket]) -> tuple[int, int]:
    """Count connections the server has kept open and those it has closed."""
    open_count = closed = 0
    for sock in sockets:
        try:
            data = sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            open_count += 1
            continue
        except OSError:
            closed += 1
            continue
        if data:
            open_count += 1
        else:
            closed += 1
    return open_count, closed


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    host, port, count, path = argv[0], int(argv[1]), int(argv[2]), argv[3]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    idle, failed = open_idle(host, port, count, path)
    print(json.dumps({"ready": len(idle), "failed": dict(failed)}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "check":
            open_count, closed = still_open(idle)
            print(json.dumps({"open": open_count, "closed": closed}), flush=True)
        elif command == "exit":
            break
    for sock in idle:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
