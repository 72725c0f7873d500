"""Parsing a Structured Field Dictionary (RFC 8941 §4.2.2), as RFC 9213 requires for the
targeted cache-control fields (``CDN-Cache-Control``).

Sans-IO and strict: any deviation from the grammar fails the whole field (``None``),
which RFC 9213 §2.1 then ignores. Member values are ``True``/``False`` (Boolean),
``int`` (Integer), ``Decimal``, ``str`` (String), ``Token``, ``bytes`` (Byte Sequence)
or a ``list`` (Inner List); parameters are parsed and dropped, as RFC 9213 says.
"""

from __future__ import annotations

import base64
import binascii
import string

_LCALPHA = frozenset(string.ascii_lowercase)
_KEY_FIRST = _LCALPHA | {"*"}
_KEY_REST = _LCALPHA | frozenset(string.digits) | frozenset("_-.*")
_TCHAR = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
_TOKEN_FIRST = frozenset(string.ascii_letters) | {"*"}
_TOKEN_REST = _TCHAR | frozenset(":/")
_BASE64 = frozenset(string.ascii_letters + string.digits + "+/=")
_DIGITS = frozenset(string.digits)
_OWS = " \t"


class Token(str):
    """An sf-token (a bare word such as ``foo`` in ``a=foo``)."""


class Decimal(str):
    """An sf-decimal, kept as written (``1.5``): no cache directive takes one."""


class _Fail(Exception):
    """The field does not parse."""


def parse_dictionary(data: bytes) -> dict[str, object] | None:
    """The members of a Dictionary field value (field lines joined with ``", "``), in
    order; a key given twice keeps its last value (§4.2.2). None when it does not parse."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    parser = _Parser(text.strip(" "))
    try:
        return parser.dictionary()
    except _Fail:
        return None


class _Parser:
    __slots__ = ("text", "pos")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _skip(self, chars: str) -> None:
        while self._peek() and self._peek() in chars:
            self.pos += 1

    def dictionary(self) -> dict[str, object]:
        members: dict[str, object] = {}
        while self.pos < len(self.text):
            key = self._key()
            if self._peek() == "=":
                self.pos += 1
                value = self._inner_list() if self._peek() == "(" else self._item()
            else:
                value = True
                self._parameters()
            members.pop(key, None)
            members[key] = value
            self._skip(_OWS)
            if self.pos == len(self.text):
                break
            if self._peek() != ",":
                raise _Fail
            self.pos += 1
            self._skip(_OWS)
            if self.pos == len(self.text):
                raise _Fail  # a trailing comma
        return members

    def _key(self) -> str:
        if self._peek() not in _KEY_FIRST or not self._peek():
            raise _Fail
        start = self.pos
        self.pos += 1
        while self._peek() and self._peek() in _KEY_REST:
            self.pos += 1
        return self.text[start:self.pos]

    def _parameters(self) -> None:
        while self._peek() == ";":
            self.pos += 1
            self._skip(" ")
            self._key()
            if self._peek() == "=":
                self.pos += 1
                self._bare_item()

    def _item(self) -> object:
        value = self._bare_item()
        self._parameters()
        return value

    def _inner_list(self) -> list:
        self.pos += 1
        items = []
        while True:
            self._skip(" ")
            if self._peek() == ")":
                self.pos += 1
                self._parameters()
                return items
            items.append(self._item())
            if self._peek() not in " )" or not self._peek():
                raise _Fail

    def _bare_item(self) -> object:
        char = self._peek()
        if char == "-" or (char and char in _DIGITS):
            return self._number()
        if char == '"':
            return self._string()
        if char == ":":
            return self._bytes()
        if char == "?":
            return self._boolean()
        if char and char in _TOKEN_FIRST:
            return self._token()
        raise _Fail

    def _number(self) -> object:
        start = self.pos
        if self._peek() == "-":
            self.pos += 1
        digits = self.pos
        while self._peek() and self._peek() in _DIGITS:
            self.pos += 1
        whole = self.pos - digits
        if whole == 0:
            raise _Fail
        if self._peek() != ".":
            if whole > 15:
                raise _Fail
            return int(self.text[start:self.pos])
        if whole > 12:
            raise _Fail
        self.pos += 1
        fraction = self.pos
        while self._peek() and self._peek() in _DIGITS:
            self.pos += 1
        if not 1 <= self.pos - fraction <= 3:
            raise _Fail
        return Decimal(self.text[start:self.pos])

    def _string(self) -> str:
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\":
                escaped = self._peek()
                if escaped not in ('"', "\\") or not escaped:
                    raise _Fail
                out.append(escaped)
                self.pos += 1
            elif char == '"':
                return "".join(out)
            elif not " " <= char <= "~":
                raise _Fail
            else:
                out.append(char)
        raise _Fail

    def _token(self) -> Token:
        start = self.pos
        self.pos += 1
        while self._peek() and self._peek() in _TOKEN_REST:
            self.pos += 1
        return Token(self.text[start:self.pos])

    def _bytes(self) -> bytes:
        end = self.text.find(":", self.pos + 1)
        if end < 0:
            raise _Fail
        encoded = self.text[self.pos + 1:end]
        if any(char not in _BASE64 for char in encoded):
            raise _Fail
        self.pos = end + 1
        try:
            return base64.b64decode(encoded, validate=False)
        except (binascii.Error, ValueError):
            raise _Fail from None

    def _boolean(self) -> bool:
        value = self.text[self.pos + 1:self.pos + 2]
        if value not in ("0", "1"):
            raise _Fail
        self.pos += 2
        return value == "1"
