"""Media types by file extension, built once from the system tables plus web essentials."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable, Mapping

# Types every web server needs right whatever the system tables say (RFC 9239 for
# JavaScript); they override the system files, and configured types override them.
WEB_TYPES: Mapping[str, str] = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}

_UTF8_TYPES = frozenset({"application/javascript", "application/json"})


def _with_charset(media_type: str) -> str:
    """Append ``; charset=utf-8`` to textual types that carry no parameter yet."""
    if ";" in media_type:
        return media_type
    if media_type.startswith("text/") or media_type in _UTF8_TYPES:
        return media_type + "; charset=utf-8"
    return media_type


class MimeTypes:
    """Content-Type by extension, resolved once at start; ``guess`` is one dict lookup.

    Sources, later ones winning: Python's built-in table, the system ``mime.types``
    files (``files``, by default the ones the ``mimetypes`` module knows), ``WEB_TYPES``,
    then ``extra`` (extension with or without its dot, matched case-insensitively).
    ``default_type`` answers for an unknown or missing extension. Textual types get
    ``; charset=utf-8``.
    """

    __slots__ = ("default_type", "_types")

    def __init__(
        self,
        default_type: str = "application/octet-stream",
        extra: Mapping[str, str] | None = None,
        files: Iterable[str] | None = None,
    ) -> None:
        table = mimetypes.MimeTypes()
        for name in mimetypes.knownfiles if files is None else files:
            try:
                table.read(name)
            except OSError:
                continue
        merged: dict[str, str] = {}
        for strict in (False, True):
            for ext, media_type in table.types_map[strict].items():
                merged[ext.lower()] = media_type
        merged.update(WEB_TYPES)
        for ext, media_type in (extra or {}).items():
            key = ext.lower() if ext.startswith(".") else "." + ext.lower()
            merged[key] = media_type
        self.default_type = _with_charset(default_type)
        self._types = {ext: _with_charset(media_type) for ext, media_type in merged.items()}

    def guess(self, path: str) -> str:
        """The Content-Type for ``path``, from the extension of its last component.

        A name whose only dot is its first character (``.htaccess``) has no extension.
        """
        dot = path.rfind(".")
        if dot <= path.rfind("/") + 1:
            return self.default_type
        ext = path[dot:]
        media_type = self._types.get(ext)
        if media_type is None:
            media_type = self._types.get(ext.lower(), self.default_type)
        return media_type
