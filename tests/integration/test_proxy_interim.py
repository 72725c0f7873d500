"""Interim (1xx) answers of the upstream through the proxy, on the wire: passed on to an
HTTP/1.1 client in order and with their own headers only, never to an HTTP/1.0 client,
never stored, given only to the request that leads a collapsed fetch; one 100 Continue at
most; the response timeout despite endless 1xx. And answers delimited by the upstream's
close (RFC 9112 §6.3): complete, not failures; a reset never completes one; a transfer
coding other than chunked is refused, not passed on coded.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from cache_support import Raw, Routes, fetches
from proxy_support import entry, proxy_stats, start_proxy
from rawhttp import Client, ServerClosed
from upstreams import Exchange

EARLY_HINTS = (b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n"
               b"Connection: X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n"
               b"Via: 1.1 origin\r\nServer: origin\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\n\r\n")
PROCESSING = b"HTTP/1.1 102 Processing\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
MAX_AGE = ("Cache-Control", "max-age=600")
CLOSING_BODY = b"bytes delimited by the close of the connection\n" * 200


def interim_then(interim: bytes, *headers: tuple[str, str], release=None) -> Raw:
    """``interim`` answers, then (once ``release`` is set, if given) 200 with the target
    as the body."""
    def behaviour(exchange: Exchange) -> bool:
        exchange.send(interim)
        if release is not None:
            release.wait(5)
        return exchange.respond(200, exchange.request.target.encode(), list(headers))
    return Raw(behaviour)


def interim_forever(exchange: Exchange) -> bool:
    """102 Processing every 0.2 s, and never an answer."""
    while not exchange.upstream.stopping.is_set():
        exchange.send(PROCESSING)
        time.sleep(0.2)
    return False


def hints_while_reading(exchange: Exchange) -> bool:
    """103 at once, another after half the body, another after all of it, then the
    body back: an upstream that hints while the client still uploads."""
    hint = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    length = int(exchange.request.header("Content-Length"))
    exchange.send(hint)
    body = exchange.reader.exactly(length // 2)
    exchange.send(hint)
    body += exchange.reader.exactly(length - length // 2)
    exchange.send(hint)
    return exchange.respond(200, body)


def continue_then_echo(exchange: Exchange) -> bool:
    """A 100 Continue of its own once it has the body, then the body back."""
    exchange.send(CONTINUE)
    return exchange.respond(200, exchange.request.body)


def until_close(*headers: tuple[str, str], reset: bool = False) -> Raw:
    """200 with ``headers`` and no Content-Length or chunked: the body ends with the
    connection; ``reset``: the connection ends with a reset rather than a close, once
    the proxy has had time to read what came before."""
    def behaviour(exchange: Exchange) -> bool:
        exchange.send(exchange.head(200, list(headers)) + CLOSING_BODY)
        if reset:
            time.sleep(0.3)
            exchange.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
        return False
    return Raw(behaviour)


@pytest.fixture(scope="module")
def setup(module_monkey, module_upstreams):
    origin = module_upstreams("origin", Routes())
    forever = module_upstreams("forever", interim_forever)
    echo = module_upstreams("echo", continue_then_echo)
    upload = module_upstreams("upload", hints_while_reading)
    upload.read_bodies = False
    proxy = start_proxy(module_monkey,
                        entry("^/forever/", forever, ReadTimeout=1),
                        entry("^/echo/", echo),
                        entry("^/upload/", upload, ReadTimeout=1),
                        entry("^/cached/", origin, Cache="On"),
                        entry("^/", origin))
    return proxy, {"origin": origin, "forever": forever, "echo": echo, "upload": upload}


@pytest.fixture
def routes(ups):
    return ups["origin"].behaviour


def origin_failures(proxy, ups) -> int:
    return next(row["failures"] for row in proxy_stats(proxy.port)
                if row["upstream"] == ups["origin"].address)


def names(response) -> set[str]:
    return {name.lower() for name, _ in response.headers}


def test_an_interim_answer_reaches_an_http_1_1_client_before_the_final_one(proxy, routes):
    routes.set("/hints", interim_then(EARLY_HINTS, ("Via", "1.1 origin")))
    with Client(proxy.port) as client:
        interim, final = client.request_exchange("GET", "/hints")
    assert [answer.status for answer in interim] == [103]
    hints = interim[0]
    assert hints.raw_head.startswith(b"HTTP/1.1 103 Early Hints\r\n")
    assert hints.header("Link") == "</style.css>; rel=preload"
    # Hop-by-hop headers stop at the proxy, Date and Server are the upstream's own; the
    # proxy's Via follows the upstream's, as on the final answer.
    assert names(hints) == {"link", "via"}
    via = hints.header("Via")
    assert via.startswith("1.1 origin, 1.1 monkey_py-") and final.header("Via") == via
    # The final answer has its own headers only.
    assert (final.status, final.body) == (200, b"/hints")
    assert final.header("Link") is None and final.header("X-Hop") is None


def test_several_interim_answers_keep_their_order(proxy, routes):
    routes.set("/several", interim_then(PROCESSING + EARLY_HINTS + PROCESSING))
    with Client(proxy.port) as client:
        interim, final = client.request_exchange("GET", "/several")
    assert [answer.status for answer in interim] == [102, 103, 102]
    assert final.status == 200 and final.body == b"/several"


def test_an_http_1_0_client_gets_the_final_answer_only(proxy, routes):
    routes.set("/old", interim_then(PROCESSING + EARLY_HINTS))
    with Client(proxy.port) as client:
        client.send(b"GET /old HTTP/1.0\r\nHost: localhost\r\n\r\n")
        raw = client.read_to_close()
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"\r\n\r\n/old")
    assert b" 103 " not in raw and b" 102 " not in raw and b"Link:" not in raw


def test_pipelined_requests_after_interim_answers_are_answered_in_order(proxy, ups, routes):
    for n in range(3):
        routes.set(f"/piped/{n}", interim_then(EARLY_HINTS))
    with Client(proxy.port) as client:
        client.send(b"".join(b"GET /piped/%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % n
                             for n in range(3)))
        exchanges = [client.read_exchange() for _ in range(3)]
        # The connection is still kept alive, and in step.
        routes.set("/after", interim_then(b""))
        assert client.request("GET", "/after").body == b"/after"
    for n, (interim, final) in enumerate(exchanges):
        assert [answer.status for answer in interim] == [103]
        assert final.status == 200 and final.body == b"/piped/%d" % n
    # The upstream connection was kept alive across them too.
    assert len({received.connection for received in ups["origin"].received}) == 1


def test_an_upstream_sending_only_interim_answers_times_out(proxy, ups, routes):
    with Client(proxy.port, timeout=10) as client:
        start = time.monotonic()
        interim, final = client.request_exchange("GET", "/forever/x")
        elapsed = time.monotonic() - start
        assert final.status == 504
        # ReadTimeout 1, though a 102 came every 0.2 s.
        assert 0.9 < elapsed < 3
        assert interim and {answer.status for answer in interim} == {102}
        # One answer: the next one on the connection is the next request's.
        routes.set("/next", interim_then(b""))
        assert client.request("GET", "/next").body == b"/next"
    assert ups["forever"].wait_until(lambda upstream: upstream.peer_closed)


def test_interim_answers_during_a_slow_upload_do_not_cut_its_read_timeout_short(proxy):
    # ReadTimeout 1: the upload takes 1.6 s, with 1xx before, during and after it.
    with Client(proxy.port, timeout=10) as client:
        client.send(b"POST /upload/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\n")
        for byte in b"abcd":
            time.sleep(0.4)
            client.send(bytes([byte]))
        interim, final = client.read_exchange("POST")
    assert [answer.status for answer in interim] == [103, 103, 103]
    assert (final.status, final.body) == (200, b"abcd")


def test_a_client_gets_one_100_continue_when_the_upstream_sends_one_too(proxy, ups):
    with Client(proxy.port) as client:
        client.send(b"POST /echo/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
                    b"Expect: 100-continue\r\n\r\n")
        assert client.read_head().status == 100
        client.send(b"hello")
        interim, final = client.read_exchange("POST")
    assert interim == []
    assert (final.status, final.body) == (200, b"hello")
    assert ups["echo"].last().header("Expect") is None


def test_no_100_continue_for_a_body_sent_without_waiting(proxy):
    with Client(proxy.port) as client:
        client.send(b"POST /echo/y HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
                    b"Expect: 100-continue\r\n\r\nhello")
        interim, final = client.read_exchange("POST")
    assert interim == [] and final.body == b"hello"


def test_no_100_continue_for_a_client_that_did_not_ask(proxy, routes):
    routes.set("/unasked", interim_then(EARLY_HINTS + CONTINUE))
    with Client(proxy.port) as client:
        interim, final = client.request_exchange("GET", "/unasked")
    assert [answer.status for answer in interim] == [103] and final.body == b"/unasked"


def test_interim_answers_are_not_stored(proxy, ups, routes):
    routes.set("/cached/hints", interim_then(EARLY_HINTS, MAX_AGE))
    with Client(proxy.port) as client:
        interim, first = client.request_exchange("GET", "/cached/hints")
        assert [answer.status for answer in interim] == [103]
        assert "stored" in first.header("Cache-Status")
        interim, hit = client.request_exchange("GET", "/cached/hints")
    assert interim == [] and hit.header("Cache-Status").startswith("monkey_py; hit")
    for answer in (first, hit):
        assert answer.body == b"/cached/hints"
        assert not names(answer) & {"link", "x-hop", "keep-alive"}
    assert fetches(ups["origin"], "/cached/hints") == 1


def test_only_the_request_that_leads_a_collapsed_fetch_gets_interim_answers(proxy, ups,
                                                                             routes):
    release = threading.Event()
    routes.set("/cached/slow", interim_then(EARLY_HINTS, MAX_AGE, release=release))
    with Client(proxy.port) as leader, Client(proxy.port) as waiter:
        leader.send(b"GET /cached/slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert leader.read_head().status == 103
        waiter.send(b"GET /cached/slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
        time.sleep(0.5)
        release.set()
        assert leader.read_response().status == 200
        interim, collapsed = waiter.read_exchange()
    assert interim == []
    assert collapsed.body == b"/cached/slow" and "collapsed" in collapsed.header("Cache-Status")
    assert fetches(ups["origin"], "/cached/slow") == 1


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_an_answer_delimited_by_the_close_arrives_whole(proxy, ups, routes, version):
    target = f"/closing/{version[-1]}"
    routes.set(target, until_close())
    failures = origin_failures(proxy, ups)
    with Client(proxy.port) as client:
        answer = client.request("GET", target, version=version)
        assert answer.status == 200 and answer.body == CLOSING_BODY
        if version == "HTTP/1.1":
            # Re-chunked: the client's connection outlives the upstream's.
            assert answer.header("Transfer-Encoding") == "chunked"
            routes.set("/after-closing", interim_then(b""))
            assert client.request("GET", "/after-closing").body == b"/after-closing"
        else:
            assert answer.header("Transfer-Encoding") is None
    # Neither a failure nor an error in the log.
    assert origin_failures(proxy, ups) == failures
    assert f"GET {target}" not in proxy.log()


@pytest.mark.parametrize("coding", ["gzip", "gzip, chunked"])
def test_a_transfer_coding_other_than_chunked_is_refused_not_passed_on(proxy, ups, routes,
                                                                       coding):
    """The proxy decodes no transfer coding, and the coded bytes without their coding
    named would be a corrupt body: 502, logged, nothing stored (as nginx)."""
    target = f"/cached/coded/{coding.count(',')}"
    if "chunked" in coding:
        routes.set(target, Raw(lambda exchange: exchange.send(
            exchange.head(200, [("Transfer-Encoding", coding), MAX_AGE])
            + b"5\r\n\x1f\x8b\x08\x00\x00\r\n0\r\n\r\n") or True))
    else:
        routes.set(target, until_close(("Transfer-Encoding", coding), MAX_AGE))
    for _ in range(2):
        with Client(proxy.port) as client:
            answer = client.request("GET", target)
        assert answer.status == 502
    assert fetches(ups["origin"], target) == 2
    assert f"invalid response: Transfer-Encoding '{coding}' (only chunked is passed on)" \
        in proxy.log()


def test_a_reset_does_not_end_an_answer_delimited_by_the_close(proxy, ups, routes):
    routes.set("/cached/reset", until_close(MAX_AGE, reset=True))
    with Client(proxy.port) as client, pytest.raises(ServerClosed):
        client.request("GET", "/cached/reset")
    routes.set("/cached/reset", interim_then(b"", MAX_AGE))
    with Client(proxy.port) as client:
        answer = client.request("GET", "/cached/reset")
    assert answer.body == b"/cached/reset" and "fwd=miss" in answer.header("Cache-Status")
    assert fetches(ups["origin"], "/cached/reset") == 2
