"""Bodies through the proxy in both directions: uploads (Content-Length, chunked,
100-continue), responses without a body, re-framing for HTTP/1.0 and HTTP/1.1 clients,
close-delimited answers, and a large body streamed intact."""

from __future__ import annotations

import hashlib
import time

import pytest

from proxy_support import entry, start_proxy
from rawhttp import Client
from upstreams import Exchange, chunked, close_delimited, large, payload

PARTS = [b"first part\n", b"second, longer part\n" * 100, b"last\n"]
LARGE = 5 * 1024 * 1024


def echo(exchange: Exchange) -> bool:
    """200 with the request body as the response body."""
    return exchange.respond(200, exchange.request.body)


def by_path(exchange: Exchange) -> bool:
    """The status the path names: /204, /304, /304-length (with the length of the page);
    anything else 200 with a 12-byte body (chunked for HEAD /chunked-head)."""
    target = exchange.request.target
    if target.endswith("/204"):
        return exchange.respond(204)
    if target.endswith("/304"):
        return exchange.respond(304, headers=[("ETag", '"v1"')])
    if target.endswith("/304-length"):
        return exchange.respond(304, headers=[("ETag", '"v1"'), ("Content-Length", "12")])
    if target.endswith("/chunked-head"):
        exchange.send(exchange.head(200, [("Transfer-Encoding", "chunked")]))
        return True
    return exchange.respond(200, b"twelve bytes", [("ETag", '"v1"')])


@pytest.fixture(scope="module")
def setup(module_monkey, module_upstreams):
    ups = {name: module_upstreams(name, behaviour) for name, behaviour in [
        ("echo", echo), ("status", by_path), ("chunked", chunked(PARTS)),
        ("close", close_delimited(b"until the end\n" * 1000)), ("large", large(LARGE)),
    ]}
    entries = [entry(f"^/{name}/", up) for name, up in ups.items()]
    entries.append(entry("^/slow-upload/", ups["echo"], ReadTimeout=1))
    proxy = start_proxy(module_monkey, *entries, server=["MaxRequestSize 8192"])
    return proxy, ups


def one_connection(upstream) -> bool:
    """Whether every request reached ``upstream`` on one (kept-alive) connection."""
    return len({received.connection for received in upstream.received}) == 1


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_a_content_length_upload_arrives_intact(proxy, ups):
    body = payload(LARGE)
    with Client(proxy.port, timeout=20) as client:
        response = client.request("PUT", "/echo/file", body=body,
                                  headers=[("Content-Length", str(len(body)))])
    assert response.status == 200 and response.body == body
    received = ups["echo"].last()
    assert received.header("Content-Length") == str(len(body)) and not received.chunked
    assert received.body == body


def test_a_chunked_upload_arrives_intact(proxy, ups):
    with Client(proxy.port) as client:
        client.send(b"POST /echo/stream HTTP/1.1\r\nHost: localhost\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n")
        for part in PARTS:
            client.send(chunk(part))
        client.send(b"0\r\n\r\n")
        response = client.read_response()
    assert response.status == 200 and response.body == b"".join(PARTS)
    received = ups["echo"].last()
    assert received.chunked and received.body == b"".join(PARTS)


def test_read_timeout_does_not_cut_an_upload_that_keeps_coming(proxy, ups):
    """ReadTimeout bounds the upstream's silence, not the time a client takes to upload."""
    with Client(proxy.port) as client:
        client.send(b"POST /slow-upload/x HTTP/1.1\r\nHost: localhost\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n")
        for part in (b"one ", b"two ", b"three ", b"four"):
            client.send(chunk(part))
            time.sleep(0.4)
        client.send(b"0\r\n\r\n")
        response = client.read_response()
    assert response.status == 200 and response.body == b"one two three four"


def test_expect_100_continue_gets_100_then_the_answer(proxy, ups):
    with Client(proxy.port) as client:
        client.send(b"POST /echo/form HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
                    b"Expect: 100-continue\r\n\r\n")
        interim = client.read_head()
        assert interim.status == 100
        client.send(b"hello")
        response = client.read_response()
    assert response.status == 200 and response.body == b"hello"
    assert ups["echo"].last().body == b"hello"


def test_head_of_a_chunked_answer_has_no_body(proxy, ups):
    with Client(proxy.port) as client:
        response = client.request("HEAD", "/status/chunked-head")
        assert response.status == 200 and response.header("Transfer-Encoding") is None
        assert client.request("GET", "/status/page").body == b"twelve bytes"
    assert one_connection(ups["status"])


def test_head_gets_the_length_without_the_body(proxy, ups):
    with Client(proxy.port) as client:
        response = client.request("HEAD", "/status/page")
        assert response.status == 200 and response.header("Content-Length") == "12"
        # Nothing followed the head: the next answer on this connection is whole.
        following = client.request("GET", "/status/page")
        assert following.body == b"twelve bytes"
    assert one_connection(ups["status"])


@pytest.mark.parametrize("path", ["204", "304", "304-length"])
def test_answers_without_a_body_pass_through(proxy, ups, path):
    with Client(proxy.port) as client:
        response = client.request("GET", f"/status/{path}")
        assert response.status == int(path[:3])
        assert response.header("Transfer-Encoding") is None
        if path.startswith("304"):
            assert response.header("ETag") == '"v1"'
        assert client.request("GET", "/status/page").body == b"twelve bytes"
    assert one_connection(ups["status"])


def test_a_chunked_answer_is_chunked_for_http_1_1(proxy):
    with Client(proxy.port) as client:
        response = client.request("GET", "/chunked/x")
        assert response.header("Transfer-Encoding") == "chunked"
        assert response.body == b"".join(PARTS)
        assert client.request("GET", "/chunked/y").body == b"".join(PARTS)


def test_a_chunked_answer_ends_with_the_connection_for_http_1_0(proxy):
    with Client(proxy.port) as client:
        response = client.request("GET", "/chunked/x", version="HTTP/1.0")
    assert response.status == 200
    assert response.header("Transfer-Encoding") is None
    assert response.header("Content-Length") is None
    assert response.header("Connection") == "Close"
    assert response.body == b"".join(PARTS)


def test_a_close_delimited_answer_is_relayed_whole(proxy):
    with Client(proxy.port) as client:
        response = client.request("GET", "/close/x")
        assert response.status == 200 and response.body == b"until the end\n" * 1000
        # Re-framed as chunked, so the client's connection outlives the upstream's.
        assert client.request("GET", "/close/y").status == 200


def test_a_large_answer_streams_intact(proxy):
    with Client(proxy.port, timeout=20) as client:
        response = client.request("GET", "/large/x")
    assert response.status == 200 and int(response.header("Content-Length")) == LARGE
    assert hashlib.sha256(response.body).digest() == hashlib.sha256(payload(LARGE)).digest()
