"""Listen addresses taken together: no address twice, none inside a wildcard of the list.

Two listeners cannot share an address, and a wildcard (``0.0.0.0``, ``::``) already takes
every address of its family on its port: the kernel refuses ``127.0.0.1:2001`` next to
``0.0.0.0:2001``. Such lists are refused where a user wrote them (Listen lines, ``-o``)
and merged where the server made them (``-p`` giving every address the same port).
"""

from __future__ import annotations

from .errors import ConfigError, Location
from .model import Listen
from .schema import where_first


def check_distinct(addresses: list[tuple[Listen, Location]], name: str) -> None:
    """Raise ConfigError at the first address equal to, or overlapping, one before it.

    ``addresses`` pairs each address with where it was written; ``name`` is how the user
    wrote it (``Listen``, ``-o``).
    """
    for index, (address, location) in enumerate(addresses):
        for earlier, first in addresses[:index]:
            if earlier.covers(address) and address.covers(earlier):  # TLS or not
                raise ConfigError(
                    f"{name} {address} is given twice{_mention(first, location, 'first at ')}"
                    "; remove one",
                    location,
                )
            if earlier.covers(address) or address.covers(earlier):
                wide = earlier if earlier.is_wildcard else address
                raise ConfigError(
                    f"{name} {address} overlaps {name} {earlier}{_mention(first, location)}: "
                    f"{wide} already accepts connections to every {wide.family_name} address "
                    f"on port {wide.port}; remove one",
                    location,
                )


def _mention(first: Location, here: Location, prefix: str = "") -> str:
    """A reference back to ``first``, e.g. `` (line 2)``; none on the command line (no lines)."""
    return f" ({prefix}{where_first(first, here)})" if first.line else ""


def merged(addresses: list[Listen]) -> list[Listen]:
    """``addresses`` in order, without those a wildcard of it covers, and without
    repeats (the first of an address wins, TLS or not)."""
    kept: list[Listen] = []
    for address in addresses:
        if any(other.is_wildcard and not address.is_wildcard and other.covers(address)
               for other in addresses):
            continue
        if not any(earlier.covers(address) for earlier in kept):
            kept.append(address)
    return kept
