"""The sans-IO request parser: bytes in, plain request heads and bodies out, no socket."""

from __future__ import annotations

import pytest

from monkey_py.http.parser import ParseError, RequestParser


def parse(data: bytes, limit: int = 32 * 1024) -> RequestParser:
    parser = RequestParser(limit)
    parser.feed(data)
    return parser


def failure(data: bytes, limit: int = 32 * 1024) -> ParseError:
    parser = RequestParser(limit)
    with pytest.raises(ParseError) as caught:
        parser.feed(data)
    assert parser.error is caught.value
    return caught.value


def test_a_head_is_plain_data():
    parser = parse(b"GET /a%20b?x=1 HTTP/1.1\r\nHost: Example.COM:8080\r\nX-One: 1\r\n"
                   b"x-one: 2\r\n\r\n")
    (head,) = parser.ready
    assert head.method == "GET" and head.target == b"/a%20b?x=1" and head.version == "1.1"
    assert head.host == b"example.com:8080"
    assert head.headers == [(b"host", b"Example.COM:8080"), (b"x-one", b"1"), (b"x-one", b"2")]
    assert head.keep_alive and head.content_length == 0
    assert head.body is None and head.upgrade is None
    assert not parser.in_message


def test_pipelined_heads_queue_in_order_and_a_partial_one_is_in_message():
    parser = parse(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: a\r\n\r\nGE")
    assert [head.target for head in parser.ready] == [b"/1", b"/2"]
    assert parser.in_message                  # from its first byte on
    parser.feed(b"T /3 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [head.method for head in parser.ready] == ["GET", "HEAD", "GET"]
    assert not parser.in_message


def test_a_body_is_kept_until_read_then_streamed():
    parser = parse(b"POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234")
    (head,) = parser.ready
    assert head.content_length == 10 and not head.body.done
    seen, ended = [], []
    head.body.read(seen.append, lambda: ended.append(True))
    assert seen == [b"01234"] and not ended
    parser.feed(b"56789GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    assert seen == [b"01234", b"56789"] and ended == [True]
    assert parser.ready[-1].target == b"/next"


def test_a_chunked_body_arrives_dechunked():
    parser = parse(b"PUT /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    (head,) = parser.ready
    assert head.content_length == -1 and head.body.done
    seen = []
    head.body.read(seen.append, lambda: None)
    assert b"".join(seen) == b"abcde"


def test_an_upgrade_stops_parsing_and_keeps_what_followed():
    parser = RequestParser(1024)
    assert parser.feed(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                       b"Upgrade: websocket\r\n\r\n\x81\x00raw")
    assert parser.ready[-1].upgrade == b"\x81\x00raw"


def test_http_1_0_keeps_alive_only_when_asked():
    assert not parse(b"GET / HTTP/1.0\r\n\r\n").ready[0].keep_alive
    assert parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").ready[0].keep_alive
    assert not parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").ready[0].keep_alive
    assert parse(b"GET / HTTP/1.0\r\n\r\n").ready[0].host == b""


def test_the_absolute_form_authority_replaces_host():
    head = parse(b"GET http://Other.example/p?q HTTP/1.1\r\nHost: a\r\n\r\n").ready[0]
    assert head.host == b"other.example" and head.target == b"/p?q"


@pytest.mark.parametrize("data, status", [
    (b"GET / HTTP/1.1\r\n\r\n", 400),                                    # no Host
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),              # two Hosts
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),                       # invalid Host
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    (b"POST / HTTP/1.1\r\nHost: a\r\n\r\n", 411),
    (b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n", 501),
    (b"\x01\x02garbage\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
     400),
])
def test_what_cannot_be_served_gets_its_status(data, status):
    assert failure(data).status == status


def test_limits_are_414_and_413():
    assert failure(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\n", limit=100).status == 414
    head = failure(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"b" * 200 + b"\r\n\r\n", limit=100)
    assert head.status == 413 and "MaxRequestSize (100 bytes)" in head.detail
    assert failure(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n",
                   limit=100).status == 413
    parser = RequestParser(100)
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(ParseError) as caught:
        parser.feed(b"80\r\n" + b"x" * 128 + b"\r\n")
    assert caught.value.status == 413
    # The error belongs to the request whose body broke off; its body says so too.
    head = parser.ready[0]
    assert caught.value.head is head and head.body.error is caught.value


def test_a_body_error_reaches_its_reader():
    parser = RequestParser(100)
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    head = parser.ready[0]
    errors = []
    head.body.read(lambda chunk: None, lambda: None, errors.append)
    with pytest.raises(ParseError):
        parser.feed(b"zz\r\n")
    assert len(errors) == 1 and errors[0].status == 400


@pytest.mark.parametrize("data, status", [
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBREW / HTTP/1.1\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nBREW!BREW / HTTP/1.1\r\n\r\n", 501),
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / http/1.1\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /\r\n\r\n", 400),          # HTTP/0.9 style
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / \r\n\r\n", 505),         # empty version
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\x01\x02\r\n\r\n", 400),
    # After a chunked body, where llhttp stopped is not known: a plain 400.
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
     b"BREW / HTTP/1.1\r\n\r\n", 400),
])
def test_a_bad_request_line_after_good_requests_is_judged_on_its_own(data, status):
    """The requests before it are queued; its own line decides its status."""
    parser = RequestParser(1024)
    with pytest.raises(ParseError) as caught:
        parser.feed(data)
    assert caught.value.status == status
    assert len(parser.ready) == 1


def test_a_bad_request_line_after_part_of_a_body_is_found_by_its_length():
    parser = RequestParser(1024)
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabc")
    with pytest.raises(ParseError) as caught:
        parser.feed(b"defBREW / HTTP/1.1\r\n\r\n")
    assert caught.value.status == 501
