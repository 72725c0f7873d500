"""How a response is framed and whether the connection stays open: the pure decisions."""

from __future__ import annotations

import pytest

from monkey_py.http.framing import CHUNKED, LAST_CHUNK, LENGTH, NONE, UNTIL_CLOSE, chunk, frame


def test_a_known_length_is_announced():
    assert frame("GET", "1.1", 200, 5, True) == (b"Content-Length: 5\r\n", LENGTH, True)


def test_a_head_answer_announces_the_length_but_sends_no_body():
    assert frame("HEAD", "1.1", 200, 5, True) == (b"Content-Length: 5\r\n", NONE, True)


@pytest.mark.parametrize("status", [100, 103, 204, 304])
def test_statuses_without_a_body_announce_no_length(status):
    lines, framing, keep = frame("GET", "1.1", status, 5, True)
    assert b"Content-Length" not in lines and framing == NONE and keep


def test_an_unknown_length_is_chunked_for_http_1_1():
    assert frame("GET", "1.1", 200, -1, True) == (b"Transfer-Encoding: chunked\r\n", CHUNKED,
                                                  True)


def test_an_unknown_length_ends_the_connection_for_http_1_0():
    assert frame("GET", "1.0", 200, -1, True) == (b"Connection: Close\r\n", UNTIL_CLOSE, False)


def test_an_unknown_length_without_a_body_needs_no_framing():
    assert frame("HEAD", "1.1", 200, -1, True) == (b"", NONE, True)
    assert frame("GET", "1.1", 304, -1, True) == (b"", NONE, True)


def test_keep_alive_lines():
    assert frame("GET", "1.1", 200, 0, False)[0] == b"Content-Length: 0\r\nConnection: Close\r\n"
    assert frame("GET", "1.0", 200, 0, True)[0] == (b"Content-Length: 0\r\n"
                                                    b"Connection: Keep-Alive\r\n")
    assert frame("GET", "1.0", 200, 0, False)[2] is False


def test_switching_protocols_gets_no_framing_lines():
    assert frame("GET", "1.1", 101, -1, False) == (b"", NONE, True)


def test_chunks():
    assert chunk(b"hello world") == b"b\r\nhello world\r\n"
    assert LAST_CHUNK == b"0\r\n\r\n"
