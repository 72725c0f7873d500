"""Map a request path onto a file below the document root without ever leaving it.

``url_to_relpath`` turns the raw request path into a normalised relative path: it
percent-decodes exactly once, refuses anything that could smuggle a separator or climb
above the root, and keeps a trailing slash so the caller can tell a directory request.
``resolve`` joins that path to the document root and, unless the administrator allowed
symbolic links, refuses any link met below the root.
"""

from __future__ import annotations

import os
import re
from stat import S_ISLNK


class Forbidden(Exception):
    """The request path may not be served (answer 403)."""


# Anything that sends a path off the fast path: a query or fragment to cut, an escape to
# decode, a backslash, or a control byte (the parser normally rejects the last two).
_SPECIAL = re.compile(rb"[?#%\\\x00-\x1f\x7f]")
_QUERY = re.compile(rb"[?#]")
_RAW_REFUSED = re.compile(rb"[\\\x00-\x1f\x7f]")


def _escape_table() -> dict[bytes, bytes | None]:
    """Map every two-digit hex escape, in any case, to its byte; None for refused bytes.

    Refused: NUL and the other control bytes (a file name never needs them and they would
    reach headers and logs), ``/`` and ``\\`` (an encoded separator would let a segment
    hide a ``..`` or a second path component from the normaliser).
    """
    refused = {0x2F, 0x5C, 0x7F, *range(0x20)}
    table: dict[bytes, bytes | None] = {}
    for value in range(256):
        decoded = None if value in refused else bytes((value,))
        for high in {f"{value >> 4:x}", f"{value >> 4:X}"}:
            for low in {f"{value & 15:x}", f"{value & 15:X}"}:
                table[(high + low).encode("ascii")] = decoded
    return table


_ESCAPES = _escape_table()


def _percent_decode(raw: bytes) -> bytes:
    """Decode ``%XX`` escapes once; a malformed or refused escape is Forbidden."""
    chunks = raw.split(b"%")
    out = [chunks[0]]
    get = _ESCAPES.get
    for chunk in chunks[1:]:
        decoded = get(chunk[:2], False)
        if not decoded:
            if decoded is None:
                raise Forbidden("encoded separator or control character in the request path")
            raise Forbidden("malformed percent-encoding in the request path")
        out.append(decoded + chunk[2:])
    return b"".join(out)


def url_to_relpath(raw_path: bytes) -> str:
    """Return the normalised path below the root: no leading slash, ``""`` for the root.

    A trailing ``/`` is kept (``"docs/"``) so the caller can tell that a directory was
    asked for with a slash. Anything after ``?`` or ``#`` is ignored. The path is
    percent-decoded once (``%252e`` names a file called ``%2e``), then decoded as strict
    UTF-8: invalid UTF-8 is Forbidden, so no overlong form can stand for ``.`` or ``/``
    and every name can be logged and echoed as text. Forbidden also covers a path not
    starting with ``/``, NUL, control bytes, a raw backslash, an encoded ``/`` or ``\\``,
    a malformed escape, and any ``..`` that climbs above the root.
    """
    if _SPECIAL.search(raw_path) is not None:
        cut = _QUERY.search(raw_path)
        if cut is not None:
            raw_path = raw_path[: cut.start()]
        if _RAW_REFUSED.search(raw_path) is not None:
            raise Forbidden("backslash or control character in the request path")
        if b"%" in raw_path:
            raw_path = _percent_decode(raw_path)
    if raw_path[:1] != b"/":
        raise Forbidden("the request path does not start with '/'")
    try:
        path = raw_path.decode("utf-8")
    except UnicodeDecodeError:
        raise Forbidden("the request path is not valid UTF-8") from None
    if "//" not in path and "/." not in path:
        return path[1:]
    return _normalise(path)


def _normalise(path: str) -> str:
    """Collapse empty, ``.`` and ``..`` segments of an absolute path (RFC 3986 §5.2.4)."""
    parts = path.split("/")
    kept: list[str] = []
    for part in parts:
        if part == "" or part == ".":
            continue
        if part == "..":
            if not kept:
                raise Forbidden("the request path climbs above the document root")
            kept.pop()
        else:
            kept.append(part)
    if not kept:
        return ""
    rel = "/".join(kept)
    if parts[-1] in ("", ".", ".."):
        rel += "/"
    return rel


def resolve(
    document_root: str, relpath: str, follow_symlinks: bool, check_last: bool = True
) -> str:
    """Join ``relpath`` (from ``url_to_relpath``) to the root; return it without trailing slash.

    With ``follow_symlinks`` False, every component below the root is checked with one
    ``lstat`` and a symbolic link anywhere is Forbidden; the document root itself is
    trusted as configured, links included, so it needs no ``realpath``. Checking stops at
    the first missing component: the caller's own open then fails and answers 404. With
    ``follow_symlinks`` True, links are followed wherever they lead (the administrator
    opted in). A ``relpath`` that is absolute, holds NUL or a ``..`` segment is Forbidden.
    ``check_last=False`` leaves the last component to a caller that opens it with
    ``O_NOFOLLOW``, saving one ``lstat``.
    """
    if relpath[:1] == "/" or "\x00" in relpath or (
        ".." in relpath and ".." in relpath.split("/")
    ):
        raise Forbidden("the relative path escapes the document root")
    rel = relpath.rstrip("/")
    if not rel:
        return document_root
    if document_root.endswith("/"):
        path = document_root + rel
        start = len(document_root)
    else:
        path = document_root + "/" + rel
        start = len(document_root) + 1
    if follow_symlinks:
        return path
    lstat = os.lstat
    while True:
        end = path.find("/", start)
        if end < 0 and not check_last:
            return path
        component = path if end < 0 else path[:end]
        try:
            mode = lstat(component).st_mode
        except OSError:
            return path
        if S_ISLNK(mode):
            raise Forbidden("a symbolic link below the document root is not allowed")
        if end < 0:
            return path
        start = end + 1
