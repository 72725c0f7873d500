"""Sans-IO request parsing: bytes in, :class:`RequestHead` objects out.

llhttp (through httptools) does the HTTP/1.1 grammar, including the framing checks
(Content-Length with Transfer-Encoding, repeated or invalid Content-Length, obsolete line
folding, whitespace before a colon). This module adds what llhttp leaves to the server:
size limits, the Host rules, version and method policy, and the mapping of every parse
failure to a status code. No socket and no clock here.
"""

from __future__ import annotations

import re
from collections import deque

import httptools

from .head import RequestHead

MAX_HEADERS = 100
# Host values already checked (raw -> lower-case), and method names already decoded.
MEMO_SIZE = 1024
_checked_hosts: dict[bytes, bytes] = {}
_methods: dict[bytes, str] = {}

# A request line that starts with a method token and a space is a well-formed request
# with a method we do not know (501); anything else is garbage (400).
_METHOD_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ ")
# RFC 9110 host = uri-host [ ":" port ]; reg-name characters or an IP literal.
_VALID_HOST = re.compile(rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=%]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_VERSIONS = frozenset({"1.1", "1.0"})
# The headers the parser reads itself.
_READ = frozenset({b"host", b"content-length", b"transfer-encoding"})
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
    ``in_message`` says a request is under way: its target has begun to arrive and its
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
        self.ready: deque[RequestHead] = deque()
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
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.ready[-1].upgrade = data[exc.args[0]:]
            return True
        except httptools.HttpParserInvalidMethodError:
            raise self._fail(self._bad_method(data))
        except httptools.HttpParserError as exc:
            raise self._fail(self.error or self._classify(str(exc))) from None
        return False

    # -- llhttp callbacks -----------------------------------------------------------
    def on_url(self, url: bytes) -> None:
        # A request is under way from its target on (the per-message state was reset
        # when the previous head completed).
        self.in_message = True
        self._url += url
        self._head_size += len(url)
        if self._head_size > self._max_size:
            raise self._error(414, "The request target is longer than the server allows.")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self._max_size or len(self._headers) >= MAX_HEADERS:
            raise self._error(431, "The request headers are larger than the server allows.")
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        version = parser.get_http_version()
        if version not in _VERSIONS:
            raise self._error(505, f"HTTP/{version} is not supported; use HTTP/1.1.")
        headers = self._headers
        host = content_length = None
        chunked = False
        for name, value in headers:
            if name in _READ:
                if name == b"host":
                    if host is not None:
                        raise self._error(400, "The request has more than one Host header.")
                    host = value
                elif name == b"content-length":
                    content_length = int(value)
                else:
                    chunked = True
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
        lowered = _checked_hosts.get(host)
        if lowered is None:
            if not _VALID_HOST.fullmatch(host):
                raise self._error(400, "The Host header is not a valid host name.")
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
            raise self._error(413, "The request body is larger than the server allows.")
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
            raise self._error(413, "The request body is larger than the server allows.")
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
    def _bad_method(data: bytes) -> ParseError:
        if _METHOD_TOKEN.match(data.lstrip(b"\r\n")):
            return ParseError(501, "The request method is not implemented by this server.")
        return ParseError(400, "The request line is malformed.")

    @staticmethod
    def _classify(message: str) -> ParseError:
        if "HTTP version" in message:
            return ParseError(505, "The HTTP version is invalid; use HTTP/1.1.")
        return ParseError(400, f"Malformed request: {message}.")
