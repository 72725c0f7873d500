"""The response header rules of the proxy, applied as an upstream's headers arrive."""

from __future__ import annotations

import httptools
import pytest

from monkey_py_plugins.proxy_reverse.forwarding.headers import CodedResponse, ResponseHeaders

VIA = b"1.1 monkey_py-test"


def received(head: bytes) -> ResponseHeaders:
    """The headers of ``head`` as a real response parser hands them to ``add``."""

    class Protocol:
        pass

    headers = ResponseHeaders()
    protocol = Protocol()
    protocol.on_header = headers.add
    try:
        httptools.HttpResponseParser(protocol).feed_data(head)
    except httptools.HttpParserUpgrade:
        pass  # a 101: the headers are all in
    return headers


def test_passed_headers_keep_their_order_and_spelling_and_get_the_proxys_via():
    headers = received(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: \"x\"\r\n"
                       b"Content-Length: 5\r\n\r\n")
    assert headers.block(VIA, False) == (b"Content-Type: text/plain\r\nETag: \"x\"\r\n"
                                         b"Via: 1.1 monkey_py-test\r\n")
    assert headers.length == 5


def test_every_header_is_kept_as_received_for_the_cache():
    headers = received(b"HTTP/1.1 200 OK\r\nDate: today\r\nConnection: keep-alive\r\n"
                       b"Content-Length: 0\r\n\r\n")
    assert headers.pairs == [(b"Date", b"today"), (b"Connection", b"keep-alive"),
                             (b"Content-Length", b"0")]


def test_hop_by_hop_date_and_server_stop_here():
    headers = received(b"HTTP/1.1 200 OK\r\nDate: today\r\nServer: up\r\nKeep-Alive: 5\r\n"
                       b"Trailer: X\r\nProxy-Authenticate: Basic\r\nUpgrade: h2c\r\n"
                       b"Connection: keep-alive\r\nX-Kept: 1\r\nContent-Length: 0\r\n\r\n")
    assert headers.block(VIA, False) == b"X-Kept: 1\r\nVia: 1.1 monkey_py-test\r\n"


def test_headers_named_in_connection_stop_here_whatever_their_case():
    headers = received(b"HTTP/1.1 200 OK\r\nConnection: X-Internal, close\r\n"
                       b"x-internal: secret\r\nX-Kept: 1\r\nContent-Length: 0\r\n\r\n")
    assert headers.block(VIA, False) == b"X-Kept: 1\r\nVia: 1.1 monkey_py-test\r\n"


def test_the_proxys_via_follows_the_upstreams_own():
    headers = received(b"HTTP/1.1 200 OK\r\nVia: 1.0 a\r\nVia: 1.1 b\r\n"
                       b"Content-Length: 0\r\n\r\n")
    assert headers.block(VIA, False) == b"Via: 1.0 a, 1.1 b, 1.1 monkey_py-test\r\n"


def test_chunked_is_reframed_and_any_other_transfer_coding_refused():
    headers = received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n")
    assert headers.block(VIA, False) == b"Via: 1.1 monkey_py-test\r\n"
    for coding in (b"gzip", b"gzip, chunked"):
        headers = received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: %s\r\n\r\n" % coding)
        with pytest.raises(CodedResponse, match=repr(coding.decode())):
            headers.block(VIA, False)


def test_a_real_upgrade_passes_upgrade_and_connection():
    headers = received(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       b"Upgrade: chat\r\nConnection: Upgrade\r\n\r\n")
    assert headers.block(VIA, True) == (b"Via: 1.1 monkey_py-test\r\nUpgrade: websocket\r\n"
                                        b"Upgrade: chat\r\nConnection: upgrade\r\n")


def test_reset_starts_the_next_answer_afresh():
    headers = received(b"HTTP/1.1 200 OK\r\nVia: 1.0 a\r\nX-One: 1\r\n"
                       b"Connection: X-One\r\nTransfer-Encoding: gzip\r\n\r\n")
    headers.reset()
    headers.add(b"X-Two", b"2")
    assert headers.block(VIA, False) == b"X-Two: 2\r\nVia: 1.1 monkey_py-test\r\n"
    assert headers.pairs == [(b"X-Two", b"2")] and headers.length is None
