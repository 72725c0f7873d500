"""Timeouts: a request must arrive whole within Timeout; idle keep-alive ends at KeepAliveTimeout."""

from __future__ import annotations

import select
import threading
import time

import pytest

from rawhttp import Client, build_request
from support import site

TIMEOUT = 2.0
KEEPALIVE_TIMEOUT = 1.0
INDEX = b"<h1>home</h1>\n"
BIG_SIZE = 16 * 1024 * 1024


@pytest.fixture(scope="module")
def server(module_monkey, tmp_path_factory):
    root = tmp_path_factory.mktemp("timeouts") / "htdocs"
    root.mkdir()
    (root / "index.html").write_bytes(INDEX)
    with open(root / "big.bin", "wb") as f:
        f.truncate(BIG_SIZE)
    return module_monkey(
        server=[f"Timeout {TIMEOUT:g}", f"KeepAliveTimeout {KEEPALIVE_TIMEOUT:g}"],
        sites={"default": site("localhost", root)},
    )


class FastClient(threading.Thread):
    """Requests the index on new connections in a loop, recording status and latency."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.results: list[tuple[int, float]] = []
        self.errors: list[Exception] = []

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                with Client(self.port, timeout=5) as client:
                    response = client.request("GET", "/")
                self.results.append((response.status, time.monotonic() - start))
            except OSError as exc:
                self.errors.append(exc)
            self.stop.wait(0.1)


def trickle_until_closed(client: Client, data: bytes, interval: float, limit: float):
    """Send ``data`` one byte per ``interval`` until the server closes the connection.

    Returns (seconds from the first byte to the close, bytes received), or None for the
    seconds if the connection survived ``limit`` seconds.
    """
    start = time.monotonic()
    received = b""
    for byte in data:
        try:
            client.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start, received
        readable, _, _ = select.select([client.sock], [], [], interval)
        if readable:
            received = client.read_to_close()
            return time.monotonic() - start, received
        if time.monotonic() - start > limit:
            return None, received
    return None, received


def test_slowloris_is_dropped_while_others_are_served(server):
    fast = FastClient(server.port)
    request = build_request("GET", "/", headers=[("X-Padding", "p" * 60)])
    with Client(server.port, timeout=10) as slow:
        fast.start()
        try:
            elapsed, received = trickle_until_closed(slow, request, 0.5, TIMEOUT + 4)
        finally:
            fast.stop.set()
            fast.join()
    assert elapsed is not None, "the slow client was never dropped"
    # Generous above: on a loaded machine the timer and the client may both run late.
    assert TIMEOUT - 0.5 <= elapsed <= TIMEOUT + 3.5
    if received:
        assert received.startswith(b"HTTP/1.1 408 ")
        assert b"\r\nConnection: Close\r\n" in received
    assert not fast.errors
    assert len(fast.results) >= 5
    assert all(status == 200 for status, _ in fast.results)
    assert max(latency for _, latency in fast.results) < 1.0


def test_silent_connection_is_closed_after_timeout(server):
    with Client(server.port, timeout=10) as client:
        elapsed = client.wait_closed(TIMEOUT + 3)
    assert elapsed is not None
    # Generous above: on a loaded machine the timer and the client may both run late.
    assert TIMEOUT - 0.5 <= elapsed <= TIMEOUT + 3.5


def test_idle_keepalive_connection_is_closed_after_keepalive_timeout(server):
    with Client(server.port, timeout=10) as client:
        response = client.request("GET", "/")
        assert response.status == 200 and response.header("Connection") is None
        elapsed = client.wait_closed(KEEPALIVE_TIMEOUT + 3)
    assert elapsed is not None
    assert KEEPALIVE_TIMEOUT - 0.3 <= elapsed <= KEEPALIVE_TIMEOUT + 1.0
    assert client.buffer == b""


def test_busy_keepalive_connection_outlives_both_timeouts(server):
    with Client(server.port, timeout=5) as client:
        start = time.monotonic()
        count = 0
        while time.monotonic() - start < TIMEOUT + 0.5:
            response = client.request("GET", "/")
            assert response.status == 200 and response.body == INDEX
            count += 1
            time.sleep(KEEPALIVE_TIMEOUT * 0.6)
    assert count >= 4


def test_second_request_trickled_on_a_kept_alive_connection_is_dropped(server):
    with Client(server.port, timeout=10) as client:
        assert client.request("GET", "/").status == 200
        elapsed, received = trickle_until_closed(
            client, build_request("GET", "/", headers=[("X-Padding", "q" * 60)]), 0.4,
            TIMEOUT + 4,
        )
    assert elapsed is not None
    assert elapsed <= TIMEOUT + 1.5
    assert not received or received.startswith(b"HTTP/1.1 408 ")


def test_client_that_stops_reading_is_dropped(server):
    with Client(server.port, timeout=10, rcvbuf=16384) as client:
        client.send(build_request("GET", "/big.bin"))
        head = client.read_head()
        assert head.status == 200
        time.sleep(TIMEOUT + 1.0)
        received = len(client.read_to_close())
    assert received < BIG_SIZE
