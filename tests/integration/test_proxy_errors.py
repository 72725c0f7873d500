"""What a client gets when upstreams fail: 502, 504, servers offline still tried when
every one is, failover to the next server, and no replay of a request an upstream may
have acted on."""

from __future__ import annotations

import time

import pytest

from proxy_support import entry, get, start_proxy, total_active
from rawhttp import Client, ServerClosed
from support import free_port, wait_for
from upstreams import Exchange, FullBacklog, Upstreams, hang_up, silent

KEEP_DEAD_ONLINE = {"AttemptsCount": 1000}


def endless_trailers(exchange: Exchange) -> bool:
    """A chunked body, then 50 MB of trailer lines (which the proxy drops)."""
    exchange.send(exchange.head(200, [("Transfer-Encoding", "chunked"), ("Trailer", "X-T")])
                  + b"5\r\nhello\r\n0\r\n")
    lines = (b"X-T: " + b"t" * 1000 + b"\r\n") * 50
    for _ in range(1000):
        exchange.send(lines)
    exchange.send(b"\r\n")
    return False


def endless_head(exchange: Exchange) -> bool:
    """A status line, then header lines that never end."""
    exchange.send(b"HTTP/1.1 200 OK\r\n")
    line = b"X-Padding: " + b"p" * 1000 + b"\r\n"
    while True:
        exchange.send(line * 16)


@pytest.fixture(scope="module")
def backlog():
    full = FullBacklog()
    yield full
    full.close()


@pytest.fixture(scope="module")
def setup(module_monkey, module_upstreams, backlog):
    dead = f"127.0.0.1:{free_port()}"
    offline_ports = [free_port(), free_port()]
    ups = {name: module_upstreams(name, behaviour) for name, behaviour in [
        ("live", None), ("silent", silent), ("hang-up", hang_up), ("after", None),
        ("endless-head", endless_head), ("uploads", None), ("trailers", endless_trailers),
    ]}
    proxy = start_proxy(
        module_monkey,
        entry("^/refused/", dead, **KEEP_DEAD_ONLINE),
        entry("^/silent/", ups["silent"], ReadTimeout=1, **KEEP_DEAD_ONLINE),
        entry("^/patient/", ups["silent"], ReadTimeout=60),
        entry("^/unconnectable/", backlog, ConnectTimeout=0.5, **KEEP_DEAD_ONLINE),
        entry("^/connecting/", backlog, ConnectTimeout=60),
        entry("^/offline/", *(f"127.0.0.1:{port}" for port in offline_ports),
              AttemptsCount=2, OfflineTimeOut=1),
        entry("^/failover/", dead, ups["live"], LoadBalancer="First-Alive",
              **KEEP_DEAD_ONLINE),
        entry("^/stalled-upload/", ups["uploads"], ReadTimeout=1, AttemptsCount=1),
        entry("^/trailers/", ups["trailers"]),
        entry("^/endless-head/", ups["endless-head"], **KEEP_DEAD_ONLINE),
        entry("^/hang-up/", ups["hang-up"], ups["after"], LoadBalancer="First-Alive",
              **KEEP_DEAD_ONLINE),
    )
    return proxy, ups, offline_ports


def assert_short_error_page(response, status: int) -> None:
    assert response.status == status, response
    assert response.header("Content-Type").startswith("text/html")
    assert str(status).encode() in response.body and len(response.body) < 1024


def test_an_unreachable_upstream_gives_502(proxy):
    assert_short_error_page(get(proxy.port, "/refused/x"), 502)
    # The connection stays usable.
    with Client(proxy.port) as client:
        assert client.request("GET", "/refused/x").status == 502
        assert client.request("GET", "/refused/y").status == 502


def test_an_upstream_that_never_answers_gives_504_after_read_timeout(proxy, ups):
    started = time.monotonic()
    with Client(proxy.port, timeout=15) as client:
        response = client.request("GET", "/silent/x")
    elapsed = time.monotonic() - started
    assert_short_error_page(response, 504)
    # ReadTimeout 1 (the upper bound only catches a timer that never fires).
    assert 0.9 <= elapsed < 10, elapsed
    # The proxy gave up on the upstream connection too.
    assert ups["silent"].wait_closed_by_peer(ups["silent"].last().connection)


def test_a_client_leaving_before_the_answer_closes_the_upstream_connection(proxy, ups):
    with Client(proxy.port) as client:
        client.send(b"GET /patient/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert ups["silent"].wait_until(lambda up: up.requests == 1)
    assert ups["silent"].wait_closed_by_peer(ups["silent"].last().connection)
    assert wait_for(lambda: total_active(proxy.port) == 0)


def test_a_client_leaving_while_the_proxy_connects_ends_the_attempt(proxy):
    with Client(proxy.port) as client:
        client.send(b"GET /connecting/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert wait_for(lambda: total_active(proxy.port) == 1)
    assert wait_for(lambda: total_active(proxy.port) == 0)


def test_a_connect_that_never_completes_gives_504_after_connect_timeout(proxy):
    started = time.monotonic()
    with Client(proxy.port, timeout=15) as client:
        response = client.request("GET", "/unconnectable/x")
    elapsed = time.monotonic() - started
    assert_short_error_page(response, 504)
    # ConnectTimeout 0.5
    assert 0.4 <= elapsed < 10, elapsed


def test_servers_offline_are_still_tried_when_every_one_is_and_come_back(proxy, setup):
    ports = setup[2]
    # Each request tries both servers; the second failure of each takes it offline.
    assert get(proxy.port, "/offline/x").status == 502
    assert get(proxy.port, "/offline/x").status == 502
    # Every server offline: panic mode (below PanicThreshold) tries them all anyway, and
    # the client gets what they answer, not a 503 without an attempt.
    assert_short_error_page(get(proxy.port, "/offline/x"), 502)
    with Upstreams() as start:
        back = start("back", port=ports[0])
        # Listening again: used at once, although its OfflineTimeOut is not over.
        response = get(proxy.port, "/offline/x")
        assert response.status == 200 and response.header("X-Upstream") == "back"
        assert back.requests == 1


def test_a_refused_connection_fails_over_to_the_next_server(proxy, ups):
    with Client(proxy.port) as client:
        for _ in range(3):
            response = client.request("GET", "/failover/x")
            assert response.status == 200 and response.header("X-Upstream") == "live"
    assert ups["live"].requests == 3


def test_a_post_fails_over_when_the_first_server_refuses(proxy, ups):
    with Client(proxy.port) as client:
        response = client.request("POST", "/failover/form", body=b"a=1&b=2",
                                  headers=[("Content-Length", "7")])
    assert response.status == 200 and response.header("X-Upstream") == "live"
    assert ups["live"].last().body == b"a=1&b=2"


def test_a_post_an_upstream_received_is_not_replayed(proxy, ups):
    with Client(proxy.port) as client:
        response = client.request("POST", "/hang-up/order", body=b"buy=1",
                                  headers=[("Content-Length", "5")])
    assert_short_error_page(response, 502)
    received = ups["hang-up"].last()
    assert (received.method, received.body) == ("POST", b"buy=1")
    assert ups["after"].requests == 0


def test_a_get_an_upstream_dropped_is_retried_on_the_next_server(proxy, ups):
    response = get(proxy.port, "/hang-up/page")
    assert response.status == 200 and response.header("X-Upstream") == "after"
    assert ups["hang-up"].last().target == "/hang-up/page"
    assert ups["after"].last().target == "/hang-up/page"


def test_a_response_head_without_end_gives_502(proxy, ups):
    with Client(proxy.port, timeout=10) as client:
        assert_short_error_page(client.request("GET", "/endless-head/x"), 502)
    assert ups["endless-head"].wait_closed_by_peer(ups["endless-head"].last().connection)


def test_endless_trailers_cut_the_response(proxy, ups):
    with Client(proxy.port) as client:
        client.send(b"GET /trailers/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert client.read_head().status == 200
        with pytest.raises(ServerClosed):
            client._read_chunked()
    # The proxy gave up long before the upstream was through.
    assert ups["trailers"].wait_closed_by_peer(ups["trailers"].last().connection)


def test_a_stalled_upload_is_the_clients_fault_not_the_upstreams(proxy, ups):
    with Client(proxy.port) as client:
        client.send(b"POST /stalled-upload/x HTTP/1.1\r\nHost: localhost\r\n"
                    b"Content-Length: 10\r\n\r\nhalf.")
        assert_short_error_page(client.read_response(), 408)
        assert client.is_closed()
    # AttemptsCount 1: had the stall counted as the upstream's failure, it would be
    # offline now.
    response = get(proxy.port, "/stalled-upload/y")
    assert response.status == 200 and response.header("X-Upstream") == "uploads"
