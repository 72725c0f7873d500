"""Header rules of the proxy: what crosses it in each direction, and what it adds.

Hop-by-hop headers (RFC 9110 §7.6.1) stop here: ``Connection`` and every header it
names, ``Keep-Alive``, ``TE``, ``Trailer``, ``Transfer-Encoding`` (bodies are re-framed),
``Upgrade`` (passed only for a real upgrade) and ``Proxy-*``. The headers the proxy adds
(``X-Forwarded-*``, ``Via``) are added after that removal, so naming them in
``Connection`` cannot make the proxy drop them.
"""

from __future__ import annotations

HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade",
})
# The core writes its own Date and Server; 100-continue is answered by the core too.
RESPONSE_DROP = HOP_BY_HOP | {b"date", b"server"}
REQUEST_DROP = HOP_BY_HOP | {b"expect"}
FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
_NOTHING: frozenset[bytes] = frozenset()
# Response headers that are dropped, or read and re-made, on their way to the client.
_RESPONSE_SPECIAL = RESPONSE_DROP | {b"content-length", b"via"}


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


def request_head(request, host: bytes, via: bytes, forwarded: bool, chunked: bool,
                 upgrade: bool) -> bytes:
    """The request line and headers sent upstream."""
    named = _NOTHING
    for name, _ in request.headers:
        if name == b"connection":
            named = request_connection_tokens(request) - {b"host"}
            break
    lines = [b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (request.method.encode(), request.target,
                                                   host)]
    previous_for = []
    previous_via = []
    for name, value in request.headers:
        if name in REQUEST_DROP or name.startswith(b"proxy-") or name in named or name == b"host":
            continue
        if name == b"via":
            previous_via.append(value)
        elif forwarded and name in FORWARDED:
            if name == b"x-forwarded-for":
                previous_for.append(value)
        else:
            lines.append(b"%s: %s\r\n" % (name, value))
    if forwarded:
        client = request.peer[0].encode() if isinstance(request.peer, tuple) else b"unknown"
        lines.append(b"X-Forwarded-For: %s\r\n" % b", ".join([*previous_for, client]))
        lines.append(b"X-Forwarded-Proto: http\r\n")
        if request.host:
            lines.append(b"X-Forwarded-Host: %s\r\n" % request.host)
    lines.append(b"Via: %s\r\n" % b", ".join([*previous_via, via]))
    if chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    if upgrade:
        lines.append(b"Connection: upgrade\r\nUpgrade: %s\r\n" % request.header(b"upgrade"))
    lines.append(b"\r\n")
    return b"".join(lines)


def response_headers(headers, via: bytes, upgrade: bool):
    """The upstream's response headers as the client gets them, and the body length.

    Returns ``(headers, length)``: ``length`` is the upstream's Content-Length (None
    without one), which leaves the list to be framed by the server.
    """
    out = []
    length = None
    previous_via = []
    named = _NOTHING
    for name, value in headers:
        lowered = name.lower()
        if lowered in _RESPONSE_SPECIAL:
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"via":
                previous_via.append(value)
            elif lowered == b"connection":
                named = named | {t.strip().lower() for t in value.split(b",") if t.strip()}
        elif lowered[:6] != b"proxy-":
            out.append((name, value))
    if named - RESPONSE_DROP:
        # Rare: the upstream named its own hop-by-hop headers in Connection.
        out = [(name, value) for name, value in out if name.lower() not in named]
    out.append((b"Via", b", ".join([*previous_via, via]) if previous_via else via))
    if upgrade:
        for name, value in headers:
            if name.lower() == b"upgrade":
                out.append((b"Upgrade", value))
        out.append((b"Connection", b"upgrade"))
    return out, length
