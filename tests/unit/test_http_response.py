"""The per-response writer (the request itself), against a stand-in connection and
stream that record what is written: interim answers, head, framing, body, end, and the
Date rule."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from monkey_py.http.head import RequestHead
from monkey_py.http.request import Request

DATE = b"Date: Tue, 01 Dec 2026 10:00:00 GMT\r\n"


class Stream:
    def __init__(self) -> None:
        self.written = b""
        self.queue = []
        self.queued = 0

    def write(self, data, more: bool = False) -> bool:
        self.written += bytes(data)
        return True

    def sendfile(self, fd, offset, count, release) -> None:
        raise AssertionError("not used here")


class Connection:
    def __init__(self, keep: bool = True) -> None:
        self.stream = Stream()
        self.server = SimpleNamespace(date=SimpleNamespace(line=DATE))
        self.params = SimpleNamespace(server_header=b"Server: Monkey\r\n")
        self.keep = keep
        self.done = []
        self.continued = []

    def send_continue(self, req) -> None:
        self.continued.append(req)

    def may_keep_alive(self, req) -> bool:
        return self.keep

    def response_done(self, req) -> None:
        self.done.append(req)

    def close(self) -> None:
        self.done.append("closed")


def request(method: str = "GET", version: str = "1.1", conn=None) -> Request:
    head = RequestHead(method, b"/x", version, [], b"h", True, 0)
    return Request(head, conn or Connection())


def test_respond_writes_one_block_and_ends():
    req = request()
    req.respond(200, [(b"Content-Type", b"text/plain")], b"hello")
    assert req.stream.written == (b"HTTP/1.1 200 OK\r\n" + DATE + b"Server: Monkey\r\n"
                                  b"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
    assert req.conn.done == [req] and req.bytes_sent == 5 and req.status == 200


def test_a_date_of_the_handlers_own_given_first_is_kept():
    req = request()
    req.respond(200, b"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\nAge: 5\r\n", b"x")
    head = req.stream.written
    assert head.count(b"Date:") == 1 and b"Date: Mon, 01 Jan 2024" in head


def test_a_date_elsewhere_is_not_taken_for_the_handlers_own():
    req = request()
    req.respond(200, b"X-Date: nope\r\n", b"x")
    assert DATE in req.stream.written


def test_an_unknown_length_is_chunked_and_the_head_leaves_with_the_first_bytes():
    req = request()
    req.start_response(200, [(b"Content-Type", b"text/plain")])
    assert req.stream.written == b""
    req.write(b"abc")
    req.end()
    assert req.stream.written.endswith(b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert req.conn.done == [req]


def test_head_gets_the_length_and_no_body():
    req = request("HEAD")
    req.respond(200, [], b"hello")
    assert req.stream.written.endswith(b"Content-Length: 5\r\n\r\n") and req.bytes_sent == 0


def test_writing_past_the_announced_length_closes():
    req = request()
    req.start_response(200, [], length=2)
    assert req.write(b"abc") is False
    assert req.conn.done == ["closed"]


def test_a_closing_response_says_so():
    req = request(conn=Connection(keep=False))
    req.respond(204)
    assert req.stream.written.endswith(b"Connection: Close\r\n\r\n")


def test_interim_answers_go_out_before_the_final_one_and_change_nothing_of_it():
    req = request()
    req.inform(103, b"Link: </a.css>; rel=preload\r\n")
    req.inform(102)
    assert req.stream.written == (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload"
                                  b"\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n")
    assert not req.response_started and req.status == 0 and req.conn.done == []
    req.respond(200, b"", b"ok")
    assert req.stream.written.endswith(b"Content-Length: 2\r\n\r\nok")
    assert req.conn.done == [req]


def test_an_http_1_0_client_gets_no_interim_answer():
    req = request(version="1.0")
    req.inform(103, b"Link: </a.css>; rel=preload\r\n")
    assert req.stream.written == b""


def test_no_interim_answer_once_the_final_one_started():
    req = request()
    req.start_response(200, b"", length=2)
    req.inform(103)
    req.write(b"ok")
    assert b"103" not in req.stream.written


def test_100_continue_is_left_to_the_connection_and_101_is_no_interim_answer():
    req = request()
    req.inform(100, b"X-Ignored: 1\r\n")
    assert req.conn.continued == [req] and req.stream.written == b""
    for status in (101, 200, 99):
        with pytest.raises(ValueError):
            req.inform(status)
