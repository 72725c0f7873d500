"""Sans-IO request parsing: bytes in, :class:`RequestHead` objects out.

llhttp (through httptools) does the HTTP/1.1 grammar, including the framing checks
(Content-Length with Transfer-Encoding, repeated or invalid Content-Length, obsolete line
folding, whitespace before a colon). This module adds what llhttp leaves to the server:
size limits, the Host rules, version and method policy, and the mapping of every parse
failure to a status code. No socket and no clock here.
"""

from __future__ import annotations

import re

import httptools

from .head import RequestHead

MAX_HEADERS = 100
# Host values already checked (raw -> lower-case), and method names already decoded.
MEMO_SIZE = 1024
_checked_hosts: dict[bytes, bytes] = {}
_methods: dict[bytes, str] = {}

# RFC 9110 token, the shape of a method.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION_WORDS = frozenset({b"HTTP/1.0", b"HTTP/1.1"})
# llhttp's messages for a request line it refuses (the line is then looked at again).
_REQUEST_LINE_ERRORS = ("Invalid method", "Expected HTTP/", "Invalid HTTP version",
                        "Expected CRLF after version", "Expected SP after")
# RFC 9110 host = uri-host [ ":" port ]; reg-name characters or an IP literal.
_VALID_HOST = re.compile(rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=%]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_VERSIONS = frozenset({"1.1", "1.0"})
# The headers the parser reads itself.
_READ = frozenset({b"host", b"content-length", b"transfer-encoding", b"upgrade"})
# absolute-form request target (RFC 9112 §3.2.2): scheme, authority, path and query.
_ABSOLUTE_FORM = re.compile(rb"[Hh][Tt][Tt][Pp][Ss]?://([^/?#]*)([^#]*)")


class ParseError(Exception):
    """The request cannot be served; ``status`` is the answer, the connection closes."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        # The request whose body was being read when parsing failed, if any.
        self.head: RequestHead | None = None


class RequestParser:
    """Feeds bytes to llhttp and queues complete request heads in :attr:`ready`.

    Body bytes go to the body of the head they belong to (``RequestHead.body``).
    ``in_message`` says a request is under way: its first byte has arrived and its
    end has not. After a :class:`ParseError` the parser is dead: the connection answers
    and closes.
    """

    __slots__ = (
        "_parser", "_max_size", "ready", "_head", "_url", "_headers", "_head_size",
        "_body_size", "in_message", "error",
    )

    def __init__(self, max_request_size: int) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._max_size = max_request_size
        # A few heads at most (the connection stops reading when enough wait): a list.
        self.ready: list[RequestHead] = []
        self._head: RequestHead | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self._body_size = 0
        self.in_message = False
        self.error: ParseError | None = None

    def feed(self, data: bytes) -> bool:
        """Parse ``data``; True when a request asked to switch protocols (its head's
        ``upgrade`` holds the bytes that followed it, and nothing more is parsed).

        Raises :class:`ParseError` for a request that cannot be served.
        """
        queued = len(self.ready)
        head = self._head
        body_size = self._body_size
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.ready[-1].upgrade = data[exc.args[0]:]
            return True
        except httptools.HttpParserError as exc:
            error = self.error
            if error is None:
                reason = str(exc)
                if isinstance(exc, httptools.HttpParserInvalidMethodError) or reason.startswith(
                        _REQUEST_LINE_ERRORS):
                    # What was left of a body being read (-1: chunked, end unknown).
                    body_left = 0 if head is None else (
                        head.content_length - body_size if head.content_length > 0 else -1)
                    part = self._failing_part(data, list(self.ready)[queued:], body_left)
                    error = (ParseError(400, "The request line is malformed.") if part is None
                             else _bad_request_line(part))
                elif reason == "Content-Length overflow":
                    error = ParseError(413, f"The request body is larger than MaxRequestSize "
                                            f"({_size(self._max_size)}) allows.")
                else:
                    error = ParseError(400, f"Malformed request: {reason}.")
            raise self._fail(error) from None
        return False

    # -- llhttp callbacks -----------------------------------------------------------
    def on_message_begin(self) -> None:
        # The per-message state was reset when the previous head completed.
        self.in_message = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > self._max_size:
            raise self._error(414, f"The request target is longer than MaxRequestSize "
                                   f"({_size(self._max_size)}) allows.")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self._max_size or len(self._headers) >= MAX_HEADERS:
            raise self._error(413, f"The request head is larger than MaxRequestSize "
                                   f"({_size(self._max_size)}) allows.")
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        version = parser.get_http_version()
        if version not in _VERSIONS:
            if version == "0.9":
                raise self._error(400, "A request line needs a method, a target and "
                                  "a version (HTTP/0.9 is not supported).")
            raise self._error(505, f"HTTP/{version} is not supported; use HTTP/1.1.")
        headers = self._headers
        host = content_length = None
        chunked = False
        for name, value in headers:
            if name in _READ:
                if name == b"host":
                    if host is not None:
                        raise self._error(400, "The request has more than one Host header.")
                    if not value:
                        raise self._error(400, "The Host header is empty.")
                    host = value
                elif name == b"content-length":
                    content_length = int(value)
                elif name == b"transfer-encoding":
                    chunked = True
                elif not value:
                    raise self._error(400, "The Upgrade header is empty.")
        if host is None:
            if version == "1.1":
                raise self._error(400, "An HTTP/1.1 request must carry a Host header.")
            host = b""
        url = self._url
        if url[0] != 47:  # not "/"
            absolute = _ABSOLUTE_FORM.fullmatch(url)
            if absolute is not None:
                # The authority of an absolute-form target replaces the Host header.
                host = absolute[1]
                url = absolute[2] if absolute[2][:1] == b"/" else b"/" + absolute[2]
        if not host and version == "1.1":
            raise self._error(400, "The request target names no host.")
        lowered = _checked_hosts.get(host)
        if lowered is None:
            if not _VALID_HOST.fullmatch(host) or not _port_in_range(host):
                raise self._error(400, "The Host header is not a valid host name and port.")
            if len(_checked_hosts) >= MEMO_SIZE:
                _checked_hosts.clear()
            lowered = _checked_hosts[host] = host.lower()
        raw_method = parser.get_method()
        method = _methods.get(raw_method)
        if method is None:
            method = _methods[raw_method] = raw_method.decode("ascii")
        if content_length is None:
            if chunked:
                content_length = -1
            elif method in _BODY_METHODS:
                raise self._error(411, f"A {method} request needs a Content-Length.")
            else:
                content_length = 0
        elif content_length > self._max_size:
            raise self._error(413, f"The request body is larger than MaxRequestSize "
                                   f"({_size(self._max_size)}) allows.")
        head = self._head = RequestHead(method, url, version, headers, lowered,
                                        parser.should_keep_alive(), content_length)
        self.ready.append(head)
        self._url = b""
        self._headers = []
        self._head_size = self._body_size = 0

    def _error(self, status: int, detail: str) -> ParseError:
        """Remember why this request cannot be served (raised by the caller)."""
        self.error = ParseError(status, detail)
        return self.error

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._max_size:
            raise self._error(413, f"The request body is larger than MaxRequestSize "
                                   f"({_size(self._max_size)}) allows.")
        self._head.body.feed(body)

    def on_message_complete(self) -> None:
        head = self._head
        self._head = None
        self.in_message = False
        if head is not None and head.body is not None:
            head.body.finish()

    # -- failures ---------------------------------------------------------------------
    def _fail(self, error: ParseError) -> ParseError:
        self.error = error
        head = self._head
        if head is not None:
            error.head = head
            if head.body is not None:
                head.body.fail(error)
        return error

    @staticmethod
    def _failing_part(data: bytes, new_heads, body_left: int) -> bytes | None:
        """Where in ``data`` the request that failed begins: after what was left of a
        body being read (``body_left``), then after each head this chunk completed (its
        empty line) and its body; None when a chunked body hides where that is."""
        if body_left < 0:
            return None
        start = body_left
        for head in new_heads:
            end = data.find(b"\r\n\r\n", start)
            if end < 0 or head.content_length < 0:
                return None
            start = end + 4 + head.content_length
        return data[start:]


def _bad_request_line(part: bytes) -> ParseError:
    """What a request line llhttp refused deserves, as Monkey answers it: three words
    with a version other than ``HTTP/1.0`` or ``HTTP/1.1`` get 505 (a lower-case or
    garbled version, or none after a trailing space), a well-formed line with a method
    this server does not know gets 501, anything else 400."""
    line = part.lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r")
    words = line.split(b" ")
    if len(words) == 3 and _TOKEN.fullmatch(words[0]) and words[1]:
        if words[2] not in _VERSION_WORDS:
            return ParseError(505, "The HTTP version is not supported; use HTTP/1.1.")
        return ParseError(501, "The request method is not implemented by this server.")
    return ParseError(400, "The request line is malformed.")


def _size(limit: int) -> str:
    return f"{limit // 1024} KB" if limit % 1024 == 0 else f"{limit} bytes"


def _port_in_range(host: bytes) -> bool:
    """A Host port, when there is one, is 1 to 65535 (an empty one is allowed)."""
    if host.endswith(b"]") or b":" not in host:
        return True
    port = host.rpartition(b":")[2]
    return not port or 1 <= int(port) <= 65535
