"""The CGI response head parser shared by the cgi and fastcgi plugins."""

from __future__ import annotations

import pytest

from monkey_py_plugins.cgi.response import MAX_HEAD, InvalidResponse, ResponseHead


def parse(*pieces: bytes):
    head = ResponseHead()
    rest = None
    for piece in pieces:
        if head.complete:
            rest += piece
        else:
            rest = head.feed(piece)
    return head, rest


def test_a_head_split_anywhere():
    text = b"Content-Type: text/html\r\nX-A: 1\r\n\r\nbody"
    for cut in range(len(text)):
        head, rest = parse(text[:cut], text[cut:])
        assert head.complete and rest == b"body"
        assert head.status == 200 and head.headers == [(b"Content-Type", b"text/html"),
                                                       (b"X-A", b"1")]


def test_status_location_and_dropped_headers():
    head, rest = parse(b"Status: 404 Not There\nServer: php\nConnection: close\nX: y\n\n")
    assert (head.status, head.reason, rest) == (404, b"Not There", b"")
    assert head.headers == [(b"X", b"y")]
    head, _ = parse(b"Location: /elsewhere\n\n")
    assert head.status == 302
    head, _ = parse(b"Status: 200\nLocation: /x\n\n")
    assert head.status == 200 and head.reason is None
    head, rest = parse(b"\r\nonly a body")
    assert head.complete and head.headers == [] and rest == b"only a body"


@pytest.mark.parametrize("text", [
    b"no colon here\n\n", b"Bad Name: x\n\n", b"Status: 99\n\n", b"Status: abc\n\n",
    b"X: a\x01b\n\n", b"Status: 200 OK\rX\n\n",
])
def test_invalid_heads(text):
    with pytest.raises(InvalidResponse):
        parse(text)


def test_an_endless_head_is_refused():
    with pytest.raises(InvalidResponse, match="no end of the headers"):
        parse(b"X: " + b"a" * MAX_HEAD)
