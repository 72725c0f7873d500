"""Validation: conditional requests to the upstream, freshening on 304, and answering the
client's own conditional requests from the cache (RFC 9111 §4.3).
"""

from __future__ import annotations

from monkey_py.static.conditional import evaluate

from .control import Headers, date_value, header_value, last_modified
from .fields import UNSTORED, connection_named
from .policy import StoredResponse

# Fields a 304 never changes in the stored response (RFC 9111 §3.2): framing and the
# fields the stored body or its cache key depend on, besides those never stored.
_NOT_UPDATED = frozenset({
    b"content-length", b"content-range", b"content-encoding", b"vary",
})


def conditional_headers(stored_headers: Headers) -> list[tuple[bytes, bytes]]:
    """The validators to revalidate a stored response with (RFC 9111 §4.3.1).

    ``If-None-Match`` from its ETag and ``If-Modified-Since`` from its Last-Modified
    (both when both exist). The forwarded request drops the client's own If-None-Match
    and If-Modified-Since and carries these instead. Empty when the response has no
    validator: the request then goes upstream unconditionally.
    """
    out = []
    etag = header_value(stored_headers, b"etag")
    if etag is not None:
        out.append((b"if-none-match", etag.strip(b" \t")))
    modified = header_value(stored_headers, b"last-modified")
    if modified is not None:
        out.append((b"if-modified-since", modified.strip(b" \t")))
    return out


def _etag(headers: Headers) -> tuple[bool, bytes] | None:
    """The response's ETag as (weak, opaque-tag), or None."""
    value = header_value(headers, b"etag")
    if value is None:
        return None
    value = value.strip(b" \t")
    if value.startswith(b"W/"):
        return True, value[2:]
    return False, value


def not_modified_matches(stored_headers: Headers, not_modified_headers: Headers) -> bool:
    """Whether a 304 answers for this stored response, so that it may freshen it
    (RFC 9111 §4.3.4).

    A strong ETag in the 304 must equal the stored response's strong ETag. Otherwise a
    weak ETag must weakly equal the stored ETag, and a Last-Modified must equal the
    stored one. A 304 carrying no validator answers the one stored response whose
    validators the cache sent, and matches.
    """
    new_tag = _etag(not_modified_headers)
    old_tag = _etag(stored_headers)
    if new_tag is not None and not new_tag[0]:
        return old_tag is not None and not old_tag[0] and old_tag[1] == new_tag[1]
    if new_tag is not None and (old_tag is None or old_tag[1] != new_tag[1]):
        return False
    new_modified = header_value(not_modified_headers, b"last-modified")
    if new_modified is not None:
        return last_modified(not_modified_headers) == last_modified(stored_headers) and (
            last_modified(stored_headers) is not None)
    return True


def updated_headers(stored_headers: Headers, not_modified_headers: Headers
                    ) -> list[tuple[bytes, bytes]]:
    """The stored response's headers freshened with a 304's (RFC 9111 §3.2).

    Every field the 304 carries replaces all stored values of that field; fields it does
    not carry are kept, except Age, which describes the message it came with. Excepted: fields never stored (hop-by-hop, fields named by
    Connection, Proxy-*) and Content-Length, Content-Range, Content-Encoding
    and Vary, which describe the stored body and its key.
    """
    named = connection_named(not_modified_headers)
    incoming = [
        (name, value) for name, value in not_modified_headers
        if not ((lowered := name.lower()) in UNSTORED or lowered in _NOT_UPDATED
                or lowered in named or lowered.startswith(b"proxy-"))
    ]
    replaced = {name.lower() for name, _ in incoming}
    # The age restarts from the 304 (§4.3.4): its Age, or none; never the old one.
    replaced.add(b"age")
    kept = [(name, value) for name, value in stored_headers if name.lower() not in replaced]
    return kept + incoming


def client_not_modified(request_headers: Headers, stored: StoredResponse) -> bool:
    """Whether the client's own conditional GET/HEAD is answered 304 from the cache.

    If-None-Match (weak comparison, ``*`` matches) takes precedence over
    If-Modified-Since, which compares with the stored Last-Modified, else the stored
    Date, else the time the response was received (RFC 9111 §4.3.2). If-Match and
    If-Unmodified-Since are not for a cache to evaluate and are ignored here.
    """
    def get(name: bytes) -> bytes | None:
        if name in (b"if-match", b"if-unmodified-since"):
            return None
        return header_value(request_headers, name)

    stored_headers = stored.headers
    etag = header_value(stored_headers, b"etag")
    if etag is None:
        if_none_match = header_value(request_headers, b"if-none-match")
        if if_none_match is not None:
            return if_none_match.strip(b" \t") == b"*"
    modified = last_modified(stored_headers)
    if modified is None:
        modified = date_value(stored_headers)
    if modified is None:
        modified = stored.response_time
    tag = "" if etag is None else etag.strip(b" \t").decode("latin-1")
    return evaluate("GET", get, tag, modified) == 304
