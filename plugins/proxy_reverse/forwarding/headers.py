"""Header rules of the proxy: what crosses it in each direction, and what it adds.

Hop-by-hop headers (RFC 9110 §7.6.1) stop here: ``Connection`` and every header it
names, ``Keep-Alive``, ``TE``, ``Trailer``, ``Transfer-Encoding`` (bodies are re-framed),
``Upgrade`` (passed only for a real upgrade) and ``Proxy-*``. The headers the proxy adds
(``X-Forwarded-*``, ``Via``) are added after that removal, so naming them in
``Connection`` cannot make the proxy drop them.

Each direction is one pass over the headers that writes the forwarded block as bytes.
What a header name means (its kind: passed, dropped, or read) is looked up once per
spelling (a bounded memo), so a request or response with the usual headers costs a
dictionary lookup per header.
"""

from __future__ import annotations

HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade",
})
# The core writes its own Date and Server; 100-continue is answered by the core too.
RESPONSE_DROP = HOP_BY_HOP | {b"date", b"server"}
REQUEST_DROP = HOP_BY_HOP | {b"expect"}
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
# Connection values that name no other header.
_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close"})

# What a header name is to the proxy, as a small integer: passed unchanged, dropped, or
# read; looked up once per spelling (requests come with lower-case names already).
PASS, DROP, CONNECTION, LENGTH, VIA, CODING, UPGRADE, FORWARDED_FOR, FORWARDED_OTHER = range(9)
_REQUEST_KINDS = {**dict.fromkeys(REQUEST_DROP | {b"host"}, DROP), b"connection": CONNECTION,
                  b"via": VIA, b"x-forwarded-for": FORWARDED_FOR,
                  b"x-forwarded-proto": FORWARDED_OTHER, b"x-forwarded-host": FORWARDED_OTHER}
_RESPONSE_KINDS = {**dict.fromkeys(RESPONSE_DROP, DROP), b"connection": CONNECTION,
                   b"content-length": LENGTH, b"via": VIA, b"transfer-encoding": CODING,
                   b"upgrade": UPGRADE}
MEMO_SIZE = 1024
_request_kinds: dict[bytes, int] = {}
_response_kinds: dict[bytes, int] = {}


def _kind(name: bytes, kinds: dict, memo: dict) -> int:
    lowered = name.lower()
    kind = kinds.get(lowered, DROP if lowered[:6] == b"proxy-" else PASS)
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[name] = kind
    return kind


def connection_tokens(headers, names=None) -> frozenset[bytes]:
    """The header names listed in ``Connection`` (lower-case).

    ``names``: the header names already lower-cased, in order, when the caller has them.
    """
    if names is None:
        names = [name.lower() for name, _ in headers]
    tokens = set()
    for name, (_, value) in zip(names, headers):
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(tokens)


def request_connection_tokens(request) -> frozenset[bytes]:
    """``connection_tokens`` of a client request, whose header names are lower-case."""
    return connection_tokens(request.headers, [name for name, _ in request.headers])


def is_upgrade(request) -> bool:
    """A real upgrade: ``Connection: upgrade`` together with an ``Upgrade`` header."""
    return request.upgrade is not None and request.header(b"upgrade") is not None and (
        b"upgrade" in request_connection_tokens(request))


def _without_named(lines: list[bytes], named: frozenset[bytes]) -> list[bytes]:
    """``lines`` less the headers ``Connection`` named (rare: computed after the pass)."""
    return [line for line in lines if line.partition(b":")[0].lower() not in named]


def _added(address: str, host: bytes, via: bytes, forwarded: bool, secure: bool,
           previous_for=None, previous_via=None) -> bytes:
    """The lines the proxy adds to a request: X-Forwarded-* (when ``forwarded``; the
    protocol is the client's: https when it came over TLS), Via."""
    lines = []
    if forwarded:
        client = address.encode()
        if previous_for:
            client = b", ".join([*previous_for, client])
        lines.append(b"X-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\n"
                     % (client, b"https" if secure else b"http"))
        if host:
            lines.append(b"X-Forwarded-Host: %s\r\n" % host)
    lines.append(b"Via: %s\r\n" % (b", ".join([*previous_via, via]) if previous_via else via))
    return b"".join(lines)


# The added lines of requests without X-Forwarded-For or Via of their own, by client
# address, Host, Via token, ForwardedHeaders and TLS: the same few for most requests.
_added_lines: dict[tuple, bytes] = {}


def request_head(request, host: bytes, via: bytes, forwarded: bool, chunked: bool,
                 upgrade: bool) -> bytes:
    """The request line and headers sent upstream, as one block."""
    lines = [b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (request.method.encode(), request.target,
                                                  host)]
    previous_for = previous_via = None
    named = False
    kinds = _request_kinds
    for pair in request.headers:
        name = pair[0]
        kind = kinds.get(name)
        if kind is None:
            kind = _kind(name, _REQUEST_KINDS, kinds)
        if not kind:
            lines.append(b"%s: %s\r\n" % pair)
        elif kind == DROP:
            continue
        elif kind == CONNECTION:
            if pair[1].lower() not in _PLAIN_CONNECTION:
                named = True
        elif kind == VIA:
            previous_via = [*(previous_via or ()), pair[1]]
        elif not forwarded:
            lines.append(b"%s: %s\r\n" % pair)
        elif kind == FORWARDED_FOR:
            previous_for = [*(previous_for or ()), pair[1]]
    if named:
        tokens = request_connection_tokens(request) - {b"host"}
        lines[1:] = _without_named(lines[1:], tokens)
        if previous_via and b"via" in tokens:
            previous_via = None
        if previous_for and b"x-forwarded-for" in tokens:
            previous_for = None
    peer = request.peer
    address = peer[0] if isinstance(peer, tuple) else "unknown"
    secure = request.secure
    if previous_for or previous_via:
        lines.append(_added(address, request.host, via, forwarded, secure, previous_for,
                            previous_via))
    else:
        key = (address, request.host, via, forwarded, secure)
        added = _added_lines.get(key)
        if added is None:
            if len(_added_lines) >= MEMO_SIZE:
                _added_lines.clear()
            added = _added_lines[key] = _added(address, request.host, via, forwarded, secure)
        lines.append(added)
    if chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    if upgrade:
        lines.append(b"Connection: upgrade\r\nUpgrade: %s\r\n" % request.header(b"upgrade"))
    lines.append(b"\r\n")
    return b"".join(lines)


class CodedResponse(ValueError):
    """The upstream applied a transfer coding other than chunked (``gzip``...): the proxy
    does not decode one, and passing the coded bytes on would corrupt the body (nginx
    refuses such an answer too)."""


class ResponseHeaders:
    """An upstream answer's headers, sorted by the header rules as llhttp hands them
    over: ``add`` is the response parser's ``on_header``, so each header is looked at
    once, and ``block()`` then only adds the proxy's lines.

    ``pairs`` keeps every header as received, ``(name, value)``, for whoever reads the
    answer (the cache, the end of a close-delimited body). One object serves every
    answer on an upstream connection (``reset()`` between them): the parser holds its
    bound ``add``.
    """

    __slots__ = ("pairs", "lines", "length", "via", "named", "coding", "upgrade")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.pairs: list[tuple[bytes, bytes]] = []
        # The lines passed on as they are.
        self.lines: list[bytes] = []
        # Content-Length (None: none), the Via values received, whether Connection named
        # other headers, a transfer coding other than chunked, the Upgrade values.
        self.length: int | None = None
        self.via: list[bytes] | None = None
        self.named = False
        self.coding: bytes | None = None
        self.upgrade: list[bytes] | None = None

    def add(self, name: bytes, value: bytes) -> None:
        pair = (name, value)
        self.pairs.append(pair)
        kind = _response_kinds.get(name)
        if kind is None:
            kind = _kind(name, _RESPONSE_KINDS, _response_kinds)
        if not kind:
            self.lines.append(b"%s: %s\r\n" % pair)
        elif kind == DROP:
            return
        elif kind == LENGTH:
            self.length = int(value)
        elif kind == CONNECTION:
            if value.lower() not in _PLAIN_CONNECTION:
                self.named = True
        elif kind == VIA:
            self.via = [*(self.via or ()), value]
        elif kind == UPGRADE:
            self.upgrade = [*(self.upgrade or ()), value]
        elif value.strip().lower() != b"chunked" and self.coding is None:
            self.coding = value

    def block(self, via: bytes, upgrade: bool) -> bytes:
        """The headers as the client gets them, as one block of lines; ``upgrade``: the
        answer is the 101 of a real upgrade, whose Upgrade and Connection pass.
        Raises CodedResponse for a Transfer-Encoding other than ``chunked``."""
        if self.coding is not None:
            raise CodedResponse(f"Transfer-Encoding {self.coding.decode('latin-1')!r} "
                                "(only chunked is passed on)")
        lines = self.lines
        if self.named:
            # The upstream named its own hop-by-hop headers in Connection.
            lines = _without_named(lines, connection_tokens(self.pairs))
        previous = self.via
        lines.append(b"Via: %s\r\n" % (b", ".join([*previous, via]) if previous else via))
        if upgrade:
            for value in self.upgrade or ():
                lines.append(b"Upgrade: %s\r\n" % value)
            lines.append(b"Connection: upgrade\r\n")
        return b"".join(lines)
