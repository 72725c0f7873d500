"""Upstream connections: keep-alive reuse, stale pooled connections, and what happens to
the other side when the upstream or the client goes away in the middle of a body."""

from __future__ import annotations

import socket
import time

import pytest

from proxy_support import entry, get, start_proxy, total_active
from support import wait_for
from rawhttp import Client, ServerClosed
from upstreams import Exchange, die_mid_body, endless, idle_close, one_per_connection, stall

def die_mid_chunks(exchange: Exchange) -> bool:
    """A chunked answer that stops after its first chunk."""
    exchange.send(exchange.head(200, [("Transfer-Encoding", "chunked")]) + b"5\r\nhello\r\n")
    return False


@pytest.fixture(scope="module")
def setup(module_monkey, module_upstreams):
    ups = {name: module_upstreams(name, behaviour) for name, behaviour in [
        ("plain", None), ("stale", one_per_connection), ("idle", idle_close(0.2)),
        ("unpooled", None), ("short-pool", None), ("dies", die_mid_body),
        ("dies-chunked", die_mid_chunks), ("endless", endless), ("stall", stall),
    ]}
    ups["stall"].read_bodies = False
    proxy = start_proxy(module_monkey, *(
        entry(f"^/{name}/", upstream, **keys) for name, upstream, keys in [
            ("plain", ups["plain"], {}),
            ("stale", ups["stale"], {}),
            ("idle", ups["idle"], {}),
            ("unpooled", ups["unpooled"], {"KeepAliveConnections": 0}),
            ("short-pool", ups["short-pool"], {"KeepAliveTimeout": 0.3}),
            ("dies", ups["dies"], {}),
            ("dies-chunked", ups["dies-chunked"], {}),
            ("endless", ups["endless"], {}),
            ("stall", ups["stall"], {"ReadTimeout": 30}),
        ]
    ), server=["MaxRequestSize 1048576"])
    return proxy, ups


def ok(port: int, target: str) -> None:
    response = get(port, target)
    assert response.status == 200, response


def test_requests_reuse_one_upstream_connection(proxy, ups):
    for _ in range(5):
        ok(proxy.port, "/plain/x")
    with Client(proxy.port) as client:
        for _ in range(5):
            assert client.request("GET", "/plain/y").status == 200
    assert (ups["plain"].requests, ups["plain"].connections) == (10, 1)


def test_keep_alive_connections_0_opens_a_connection_per_request(proxy, ups):
    for _ in range(3):
        ok(proxy.port, "/unpooled/x")
    assert ups["unpooled"].connections == 3


def test_an_idle_pooled_connection_is_closed_after_keep_alive_timeout(proxy, ups):
    ok(proxy.port, "/short-pool/x")
    pooled = ups["short-pool"].last().connection
    assert ups["short-pool"].wait_closed_by_peer(pooled, timeout=10)
    ok(proxy.port, "/short-pool/x")
    assert ups["short-pool"].connections == 2


def test_a_pooled_connection_closed_as_the_request_arrives_is_retried_on_a_fresh_one(
    proxy, ups,
):
    with Client(proxy.port) as client:
        for _ in range(3):
            response = client.request("GET", "/stale/x")
            assert response.status == 200 and response.header("X-Upstream") == "stale"
    stale = ups["stale"]
    # Requests 2 and 3 went first to the previous, pooled connection, which closed.
    assert stale.connections == 3
    first = stale.received[0].connection
    assert [r.connection - first for r in stale.received] == [0, 0, 1, 1, 2]


def test_a_pooled_connection_the_upstream_closed_while_idle_is_not_used(proxy, ups):
    ok(proxy.port, "/idle/x")
    assert ups["idle"].wait_until(lambda up: up.open_connections == 0)
    ok(proxy.port, "/idle/x")
    assert (ups["idle"].requests, ups["idle"].connections) == (2, 2)


@pytest.mark.parametrize("target", ["/dies/x", "/dies-chunked/x"])
def test_an_upstream_dying_mid_body_cuts_the_client_response(proxy, target):
    with Client(proxy.port) as client:
        client.send(b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % target.encode())
        head = client.read_head()
        assert head.status == 200
        with pytest.raises(ServerClosed):
            if head.header("Content-Length"):
                client._take(int(head.header("Content-Length")))
            else:
                client._read_chunked()
    assert wait_for(lambda: total_active(proxy.port) == 0)


def test_a_client_leaving_mid_body_closes_the_upstream_connection(proxy, ups):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"GET /endless/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        assert ups["endless"].wait_until(lambda up: up.requests == 1)
        assert total_active(proxy.port) == 1
    # The upstream notices: its write fails once the proxy closed the connection.
    assert ups["endless"].wait_closed_by_peer(ups["endless"].last().connection)
    assert wait_for(lambda: total_active(proxy.port) == 0)


def test_pipelined_requests_are_answered_in_order(proxy, ups):
    with Client(proxy.port) as client:
        client.send(b"".join(b"GET /plain/%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % n
                             for n in range(5)))
        targets = [client.read_response().header("X-Target") for _ in range(5)]
    assert targets == [f"/plain/{n}" for n in range(5)]


def sent_settles(upstream, quiet: float = 0.3, timeout: float = 5.0) -> int:
    """How much ``upstream`` has sent once that stopped growing for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        current = upstream.sent
        if current == last:
            return current
        last = current
        time.sleep(quiet)
    raise AssertionError(f"{upstream} kept sending for {timeout}s")


def test_a_client_that_stops_reading_holds_the_upstream_back(proxy, ups):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(5)
    with sock:
        sock.connect(("127.0.0.1", proxy.port))
        sock.sendall(b"GET /endless/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert ups["endless"].wait_until(lambda up: up.sent > 0)
        # The body never ends: only backpressure stops the upstream. Socket buffers on
        # each side hold some megabytes, the proxy itself a few hundred kilobytes.
        held = sent_settles(ups["endless"])
        assert held < 64 * 1024 * 1024
        taken = 0
        while taken < 16 * 1024 * 1024:
            taken += len(sock.recv(1 << 20))
        # Reading again lets the upstream go on.
        assert ups["endless"].wait_until(lambda up: up.sent > held)


def test_an_upstream_that_stops_reading_holds_the_upload_back(proxy, ups):
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.sendall(b"POST /stall/x HTTP/1.1\r\nHost: localhost\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        assert ups["stall"].wait_until(lambda up: up.requests == 1)
        sock.setblocking(False)
        chunk = b"%x\r\n%s\r\n" % (65536, b"u" * 65536)
        pending = memoryview(chunk)
        sent, blocked_since = 0, None
        deadline = time.monotonic() + 10
        # Send until the proxy has taken nothing for half a second.
        while blocked_since is None or time.monotonic() - blocked_since < 0.5:
            assert time.monotonic() < deadline, f"the proxy took {sent} bytes and more"
            try:
                count = sock.send(pending)
                sent += count
                pending = pending[count:] or memoryview(chunk)
                blocked_since = None
            except BlockingIOError:
                blocked_since = blocked_since or time.monotonic()
                time.sleep(0.01)
        # Socket buffers on each side hold some megabytes, the proxy a few hundred kB.
        assert sent < 64 * 1024 * 1024
        assert total_active(proxy.port) == 1
    # Not reading the client, the proxy cannot see it leave: the attempt ends with the
    # upstream (closing with unread data, which resets the connection) or ReadTimeout.
    ups["stall"].stop()
    assert wait_for(lambda: total_active(proxy.port) == 0)
