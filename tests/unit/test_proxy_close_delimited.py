"""Which upstream answers end with the connection (RFC 9112 §6.3): the proxy's rule must
agree with the response parser's, which reads such a body until the close."""

from __future__ import annotations

import httptools
import pytest

from monkey_py_plugins.proxy_reverse.forwarding.failover import close_delimited


class Answer:
    """The parser's callbacks: the headers, and whether the message ended."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_message_complete(self) -> None:
        self.complete = True


@pytest.mark.parametrize("lines", [
    [],
    [b"Content-Length: 5"],
    [b"Transfer-Encoding: chunked"],
    [b"Transfer-Encoding: gzip"],
    [b"Transfer-Encoding: gzip, chunked"],
    [b"Transfer-Encoding: GZIP , Chunked"],
    [b"Transfer-Encoding: chunked, gzip"],
    [b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"],
    [b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip"],
], ids=lambda lines: " / ".join(line.decode() for line in lines) or "no framing")
def test_an_answer_ends_with_the_close_exactly_when_the_parser_reads_until_it(lines):
    answer = Answer()
    parser = httptools.HttpResponseParser(answer)
    parser.feed_data(b"HTTP/1.1 200 OK\r\n" + b"".join(line + b"\r\n" for line in lines)
                     + b"\r\n")
    # A whole chunked body, and more than five bytes: every framing but the close ends
    # within it.
    for byte in b"5\r\nhello\r\n0\r\n\r\n":
        if answer.complete:
            break
        parser.feed_data(bytes([byte]))
    assert close_delimited(answer.headers) is not answer.complete
