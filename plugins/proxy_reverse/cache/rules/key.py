"""Cache keys: the primary key names the resource, the secondary key picks a Vary variant.

The primary key (RFC 9111 §2) is the normalised absolute target URI,
``scheme://host[:port]/path?query``: the scheme and host lower-cased, a default port
dropped, an empty path written ``/``. The method is not part of it: GET and HEAD share
their stored responses. The same form is what ``invalidation_targets`` returns, so an
invalidated URI is a key as it stands.

The secondary key (§4.1) is built from the stored response's Vary header names and the
request's values of those headers: names lower-cased, deduplicated and sorted; each
request value the comma-joined field lines with whitespace runs collapsed to one space
and spaces around commas removed. A header absent from the request is kept distinct from
one present with an empty value, as §4.1 requires.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit

from .control import Headers, list_tokens

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_WHITESPACE = re.compile(rb"[ \t]+")
_COMMA = re.compile(rb" ?, ?")


def primary_key(scheme: str, host: bytes, target: bytes) -> bytes | None:
    """The key of the resource a request targets; None when it cannot be cached.

    ``target`` is the request target as received: origin-form (``/a?b``) combines with
    ``scheme`` and the ``host`` header; absolute-form (``http://h/a``) stands on its own,
    as it overrides Host. The asterisk and authority forms name no cacheable resource.
    """
    if target.startswith(b"/"):
        if not host:
            return None
        return normalize_uri(b"%s://%s%s" % (scheme.encode("ascii"), host, target))
    return normalize_uri(target)


def normalize_uri(uri: bytes) -> bytes | None:
    """The primary-key form of an absolute http(s) URI, or None for anything else."""
    try:
        text = uri.decode("ascii")
        parts = urlsplit(text)
        port = parts.port
    except (UnicodeDecodeError, ValueError):
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None:
        return None
    if ":" in host:
        host = f"[{host}]"
    authority = host if port is None or str(port) == _DEFAULT_PORTS[scheme] else (
        f"{host}:{port}")
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query or text.endswith("?") else ""
    return f"{scheme}://{authority}{path}{query}".encode("ascii")


def resolve(base: bytes, reference: bytes) -> bytes | None:
    """``reference`` (a Location or Content-Location value) resolved against the key
    ``base``, in primary-key form; None when it is not an http(s) URI."""
    try:
        joined = urljoin(base.decode("ascii"), reference.strip(b" \t").decode("ascii"))
    except UnicodeDecodeError:
        return None
    return normalize_uri(joined.partition("#")[0].encode("ascii"))


def origin(key: bytes) -> bytes:
    """The ``scheme://authority`` part of a primary key."""
    scheme, _, rest = key.partition(b"://")
    return b"%s://%s" % (scheme, rest.split(b"/", 1)[0].split(b"?", 1)[0])


def vary_names(response_headers: Headers) -> tuple[bytes, ...] | None:
    """The response's Vary header names, lower-case, sorted, unique; None for ``Vary: *``."""
    names = set(list_tokens(response_headers, b"vary"))
    if b"*" in names:
        return None
    return tuple(sorted(names))


def secondary_key(names: Sequence[bytes], request_headers: Headers) -> bytes:
    """The secondary key of a request for a response that varies on ``names``.

    One line per name: ``name:value`` when the request has the header, ``name`` alone when
    it does not; empty when the response has no Vary. Header names cannot contain ``:``
    nor line breaks, so the encoding is unambiguous.
    """
    lines = []
    for name in names:
        values = [value for key, value in request_headers if key.lower() == name]
        if values:
            joined = b",".join(values)
            joined = _COMMA.sub(b",", _WHITESPACE.sub(b" ", joined)).strip(b" ")
            lines.append(b"%s:%s" % (name, joined))
        else:
            lines.append(name)
    return b"\n".join(lines)
