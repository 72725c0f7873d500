"""Password hashes of the users files: the standard library's scrypt, self-describing.

A hash is written ``$scrypt$ln=14,r=8,p=5$<salt>$<key>``: the cost (N = 2**ln, the block
size r, the parallelism p), then salt and derived key in base64 without padding. The
cost travels with each hash, so it can be raised later without breaking older lines.
scrypt is memory-hard and ships with Python (OpenSSL), so no dependency is added; the
default cost is one of OWASP's recommended scrypt settings (16 MiB per check).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

SCHEME = "$scrypt$"
SALT_BYTES = 16
KEY_BYTES = 32
# A users file must not make one check cost more memory than this.
MAX_MEMORY = 256 * 1024 * 1024
_FORMAT = re.compile(
    r"\$scrypt\$ln=(?P<ln>[0-9]{1,2}),r=(?P<r>[0-9]{1,3}),p=(?P<p>[0-9]{1,3})"
    r"\$(?P<salt>[A-Za-z0-9+/]+)\$(?P<key>[A-Za-z0-9+/]+)"
)


@dataclass(frozen=True)
class Cost:
    """scrypt's parameters: N = 2**ln rounds of r-block mixing, p times."""

    ln: int
    r: int
    p: int

    @property
    def memory(self) -> int:
        """Bytes one derivation needs (what hashlib.scrypt's ``maxmem`` must allow)."""
        return 128 * self.r * ((1 << self.ln) + self.p + 2)


DEFAULT_COST = Cost(ln=14, r=8, p=5)


@dataclass(frozen=True)
class PasswordHash:
    """One stored password: its cost, salt and derived key."""

    cost: Cost
    salt: bytes
    key: bytes

    def encode(self) -> str:
        return (f"{SCHEME}ln={self.cost.ln},r={self.cost.r},p={self.cost.p}"
                f"${_b64(self.salt)}${_b64(self.key)}")

    def matches(self, password: bytes) -> bool:
        """Derive ``password`` with this hash's salt and cost; compare in constant time."""
        return hmac.compare_digest(derive(password, self.salt, self.cost, len(self.key)),
                                   self.key)


def derive(password: bytes, salt: bytes, cost: Cost, length: int = KEY_BYTES) -> bytes:
    """scrypt; it releases the GIL, so a thread can run it beside the event loop."""
    return hashlib.scrypt(password, salt=salt, n=1 << cost.ln, r=cost.r, p=cost.p,
                          maxmem=cost.memory + (1 << 20), dklen=length)


def hash_password(password: bytes, cost: Cost = DEFAULT_COST) -> PasswordHash:
    salt = os.urandom(SALT_BYTES)
    return PasswordHash(cost, salt, derive(password, salt, cost))


def decoy(cost: Cost) -> PasswordHash:
    """A hash nothing matches, checked for unknown users so that they cost the same time."""
    return PasswordHash(cost, os.urandom(SALT_BYTES), os.urandom(KEY_BYTES))


def parse(text: str) -> PasswordHash:
    """Read a hash written by :meth:`PasswordHash.encode`; ValueError says what is wrong."""
    match = _FORMAT.fullmatch(text)
    if match is None:
        raise ValueError(f"not a password hash of the form {SCHEME}ln=14,r=8,p=5$SALT$KEY")
    cost = Cost(int(match["ln"]), int(match["r"]), int(match["p"]))
    if not (1 <= cost.ln <= 24 and 1 <= cost.r <= 64 and 1 <= cost.p <= 64):
        raise ValueError("scrypt cost out of range (ln 1-24, r 1-64, p 1-64)")
    if cost.memory > MAX_MEMORY:
        raise ValueError(f"scrypt cost needs {cost.memory >> 20} MiB per check; "
                         f"at most {MAX_MEMORY >> 20} MiB is allowed")
    try:
        salt, key = _unb64(match["salt"]), _unb64(match["key"])
    except binascii.Error:
        raise ValueError("the salt or key is not valid base64") from None
    if len(salt) < 8 or len(key) < 16:
        raise ValueError("the salt or key is too short")
    return PasswordHash(cost, salt, key)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
