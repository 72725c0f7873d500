"""Cache keys: the primary key names the resource, the secondary key picks a Vary variant.

The primary key (RFC 9111 §2) is the normalised absolute target URI,
``scheme://host[:port]/path?query``: the scheme and host lower-cased, a default port
dropped, an empty path written ``/``; the scheme is the one the client used (as in
nginx's ``$scheme``): an origin that answers by scheme (a redirect to https) is not
served across schemes. The method is not part of it: GET and HEAD share their stored
responses. The same form is what ``invalidation_targets`` returns, so an
invalidated URI is a key as it stands.

The secondary key (§4.1) is built from the stored response's Vary header names and the
request's values of those headers: names lower-cased, deduplicated and sorted; each
request value the comma-joined field lines with whitespace runs collapsed to one space
and spaces around commas removed. A header absent from the request is kept distinct from
one present with an empty value, as §4.1 requires.

``Accept-Language`` and ``Accept-Encoding`` are normalised further, only in ways that
cannot change what a server selects: their members are case-insensitive tokens (RFC
9110 §12.5.3, §12.5.4; RFC 4647), so they are lower-cased; blanks around ``;`` and
``=`` and empty members go; a weight is written canonically (``q=0.50`` is ``q=0.5``)
and the default ``q=1`` is dropped. The order of the members is kept: some servers
take it as a preference among equal weights, so ``en, de`` and ``de, en`` stay two
variants.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit

from .control import Headers, list_tokens

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_WHITESPACE = re.compile(rb"[ \t]+")
_COMMA = re.compile(rb" ?, ?")
# Request headers whose members are case-insensitive tokens with weights.
WEIGHTED = frozenset({b"accept-language", b"accept-encoding"})
_QVALUE = re.compile(rb"([01])(?:\.([0-9]{0,3}))?")


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


def both_schemes(key: bytes) -> tuple[bytes, bytes]:
    """``key`` and the key of the same URI in the other scheme (``http``/``https``):
    what one scheme changes, the origin server behind both changed for the other too."""
    if key.startswith(b"https://"):
        return key, b"http://" + key[8:]
    return key, b"https://" + key[7:]


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
            if name in WEIGHTED:
                joined = _weighted(joined)
            else:
                joined = _COMMA.sub(b",", _WHITESPACE.sub(b" ", joined)).strip(b" ")
            lines.append(b"%s:%s" % (name, joined))
        else:
            lines.append(name)
    return b"\n".join(lines)


def _weighted(value: bytes) -> bytes:
    """A weighted list of tokens in its normal form (module notes)."""
    members = []
    for member in value.split(b","):
        token, *params = (part.strip(b" \t") for part in member.split(b";"))
        if not token:
            continue
        kept = [token.lower()]
        for param in params:
            name, equals, argument = (piece.strip(b" \t") for piece in param.partition(b"="))
            name = name.lower()
            if name == b"q" and equals:
                weight = _weight(argument)
                if weight == b"1":
                    continue
                argument = argument if weight is None else weight
            kept.append(name + equals + argument)
        members.append(b";".join(kept))
    return b",".join(members)


def _weight(text: bytes) -> bytes | None:
    """A qvalue (RFC 9110 §12.4.2) in canonical form, None when it is not one."""
    match = _QVALUE.fullmatch(text)
    if match is None:
        return None
    whole, fraction = match[1], (match[2] or b"").rstrip(b"0")
    if whole == b"1":
        return None if fraction else b"1"
    return b"0." + fraction if fraction else b"0"
