"""HTTP/1.x connection semantics over real sockets: keep-alive, pipelining, HEAD, headers."""

from __future__ import annotations

import http.client
import time
from email.utils import parsedate_to_datetime

import pytest

from monkey_py import __version__
from rawhttp import Client, build_request
from support import site

INDEX = b"<h1>home</h1>\n"
PAGE = b"page two\n"


@pytest.fixture(scope="module")
def docroot(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol") / "htdocs"
    root.mkdir()
    (root / "index.html").write_bytes(INDEX)
    (root / "two.txt").write_bytes(PAGE)
    return root


@pytest.fixture(scope="module")
def server(module_monkey, docroot):
    return module_monkey(sites={"default": site("localhost", docroot)})


@pytest.fixture(scope="module")
def limited(module_monkey, docroot):
    """HideVersion On and at most three requests per connection."""
    return module_monkey(
        server=["HideVersion On", "MaxKeepAliveRequest 3"],
        sites={"default": site("localhost", docroot)},
    )


@pytest.fixture(scope="module")
def no_keepalive(module_monkey, docroot):
    return module_monkey(server=["KeepAlive Off"], sites={"default": site("localhost", docroot)})


def test_http11_connection_is_kept_alive(server):
    with Client(server.port) as client:
        for target, body in (("/", INDEX), ("/two.txt", PAGE), ("/", INDEX)):
            response = client.request("GET", target)
            assert response.status == 200
            assert response.body == body
            assert response.header("Connection") is None
        assert not client.is_closed(0.2)


def test_http11_connection_close_is_honoured(server):
    with Client(server.port) as client:
        response = client.request("GET", "/", headers=[("Connection", "close")])
        assert response.status == 200 and response.body == INDEX
        assert response.header("Connection") == "Close"
        assert client.is_closed()


def test_http10_closes_by_default(server):
    with Client(server.port) as client:
        response = client.request("GET", "/", version="HTTP/1.0", host=None)
        assert response.status == 200 and response.body == INDEX
        assert response.version == "HTTP/1.1"
        assert response.header("Connection") == "Close"
        assert client.is_closed()


def test_http10_keep_alive_on_request(server):
    with Client(server.port) as client:
        for target, body in (("/", INDEX), ("/two.txt", PAGE)):
            response = client.request(
                "GET", target, version="HTTP/1.0", headers=[("Connection", "Keep-Alive")]
            )
            assert response.status == 200 and response.body == body
            assert response.header("Connection").lower() == "keep-alive"
        assert not client.is_closed(0.2)


def test_pipelined_requests_are_answered_in_order(server):
    targets = ["/two.txt", "/", "/missing", "/two.txt", "/"]
    with Client(server.port) as client:
        client.send(b"".join(build_request("GET", target) for target in targets))
        statuses = []
        bodies = []
        for _ in targets:
            response = client.read_response()
            statuses.append(response.status)
            bodies.append(response.body)
        assert statuses == [200, 200, 404, 200, 200]
        assert bodies[0] == PAGE and bodies[1] == INDEX and bodies[3] == PAGE
        assert bodies[4] == INDEX
        assert not client.is_closed(0.2)
        assert client.buffer == b""


def test_pipelined_requests_split_across_packets(server):
    data = build_request("GET", "/two.txt") + build_request("HEAD", "/") + build_request(
        "GET", "/", headers=[("Connection", "close")]
    )
    with Client(server.port) as client:
        for index in range(0, len(data), 7):
            client.send(data[index:index + 7])
        first = client.read_response()
        second = client.read_response("HEAD")
        third = client.read_response()
        assert (first.status, first.body) == (200, PAGE)
        assert second.status == 200 and second.body == b""
        assert (third.status, third.body) == (200, INDEX)
        assert third.header("Connection") == "Close"
        assert client.read_to_close() == b""


def test_head_matches_get_without_body(server):
    with Client(server.port) as client:
        get = client.request("GET", "/two.txt")
        head = client.request("HEAD", "/two.txt")
        # A GET right after the HEAD proves that no body bytes followed the HEAD head.
        again = client.request("GET", "/two.txt")
    assert head.status == get.status == 200
    assert head.body == b""
    assert again.body == PAGE
    for name in ("Content-Length", "Content-Type", "ETag", "Last-Modified"):
        assert head.header(name) == get.header(name)
    assert head.header("Content-Length") == str(len(PAGE))


def test_head_of_missing_file_has_no_body(server):
    with Client(server.port) as client:
        head = client.request("HEAD", "/missing")
        after = client.request("GET", "/two.txt")
    assert head.status == 404
    assert int(head.header("Content-Length")) > 0
    assert (after.status, after.body) == (200, PAGE)


def test_date_server_and_length_headers(server):
    with Client(server.port) as client:
        response = client.request("GET", "/")
    assert response.header("Server") == f"Monkey/{__version__}"
    assert response.header("Content-Length") == str(len(INDEX))
    date = parsedate_to_datetime(response.header("Date"))
    assert date.tzinfo is not None
    assert abs(date.timestamp() - time.time()) < 5
    assert response.header("Date").endswith(" GMT")
    for name in ("Date", "Server", "Content-Length", "Content-Type"):
        assert len(response.header_all(name)) == 1


def test_http_client_library_reuses_the_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/")
        first = conn.getresponse()
        assert first.read() == INDEX
        sock = conn.sock
        conn.request("GET", "/two.txt")
        second = conn.getresponse()
        assert second.read() == PAGE
        assert conn.sock is sock
    finally:
        conn.close()


def test_hide_version_sends_bare_server_name(limited):
    with Client(limited.port) as client:
        response = client.request("GET", "/")
    assert response.header("Server") == "Monkey"


def test_max_keepalive_request_closes_after_the_last(limited):
    with Client(limited.port) as client:
        first = client.request("GET", "/")
        second = client.request("GET", "/two.txt")
        third = client.request("GET", "/")
        assert first.header("Connection") is None
        assert second.header("Connection") is None
        assert third.header("Connection") == "Close"
        assert third.status == 200 and third.body == INDEX
        assert client.is_closed()


def test_max_keepalive_request_with_pipelining(limited):
    with Client(limited.port) as client:
        client.send(build_request("GET", "/two.txt") * 5)
        responses = [client.read_response() for _ in range(3)]
        assert [r.status for r in responses] == [200, 200, 200]
        assert responses[2].header("Connection") == "Close"
        assert client.read_to_close() == b""


def test_keepalive_off_closes_every_connection(no_keepalive):
    with Client(no_keepalive.port) as client:
        response = client.request("GET", "/")
        assert response.status == 200 and response.body == INDEX
        assert response.header("Connection") == "Close"
        assert client.is_closed()
    with Client(no_keepalive.port) as client:
        response = client.request(
            "GET", "/", version="HTTP/1.0", headers=[("Connection", "Keep-Alive")]
        )
        assert response.header("Connection") == "Close"
        assert client.is_closed()


def test_response_before_the_body_arrived_announces_the_close(server):
    """The server closes rather than read a body it did not need: it must say so."""
    with Client(server.port) as client:
        client.send(build_request("PUT", "/two.txt", headers=[("Content-Length", "3")]))
        response = client.read_response("PUT")
        assert response.status == 405
        assert response.header("Connection") == "Close"
        assert client.is_closed()


def test_response_after_the_whole_body_keeps_the_connection(server):
    with Client(server.port) as client:
        client.send(build_request("PUT", "/two.txt", headers=[("Content-Length", "3")],
                                  body=b"a=1"))
        response = client.read_response("PUT")
        assert response.status == 405 and response.header("Connection") is None
        again = client.request("GET", "/two.txt")
        assert again.status == 200 and again.body == PAGE
