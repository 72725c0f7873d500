"""Mandril's rules, in Monkey's ``[RULES]`` format, and how a request is matched.

- ``IP 10.20.1.1/24`` or ``IP 192.168.3.150`` (IPv6 too): refuse clients in that network.
- ``URL /private``: refuse requests whose path holds this text, case-insensitively (as
  Monkey's substring search on the decoded URI).
- ``deny_hotlink /imgs``: refuse requests whose path holds this text when their
  ``Referer`` names another site (a missing Referer is accepted).

Matching is pure: no socket, no clock, so it is unit-tested directly.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes, urlsplit

from monkey_py.config import ConfigError, Key, Location, read_section
from monkey_py.config.values import string
from monkey_py.static.paths import Forbidden, url_to_relpath


@dataclass(frozen=True)
class Rule:
    """One rule line, kept to say in the log which rule refused a request."""

    key: str
    value: str
    location: Location

    def __str__(self) -> str:
        return f"{self.key} {self.value} ({self.location})"


def _network(value: str, location: Location):
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ConfigError(f"IP {value} is not an address or a network; write e.g. "
                          "192.168.3.150, 10.20.1.0/24 or 2001:db8::/32", location) from None


KEYS = [
    Key("IP", string, repeatable=True, attr="ip"),
    Key("URL", string, repeatable=True, attr="url"),
    Key("deny_hotlink", string, repeatable=True),
]


@dataclass
class Rules:
    """The rules of one section: address networks, URL texts and hotlink texts."""

    networks: list[tuple[int, int, int, Rule]] = field(default_factory=list)
    urls: list[tuple[str, Rule]] = field(default_factory=list)
    hotlinks: list[tuple[str, Rule]] = field(default_factory=list)

    @classmethod
    def read(cls, section) -> "Rules":
        read_section(section, KEYS)  # unknown keys and empty values, at their line
        rules = cls()
        for entry in section.entries:
            key = entry.key.lower()
            rule = Rule(entry.key, entry.value, entry.location)
            if key == "ip":
                net = _network(entry.value, entry.location)
                rules.networks.append((net.version, int(net.network_address),
                                       int(net.netmask), rule))
            elif key == "url":
                rules.urls.append((entry.value.lower(), rule))
            else:
                rules.hotlinks.append((entry.value.lower(), rule))
        return rules

    def __bool__(self) -> bool:
        return bool(self.networks or self.urls or self.hotlinks)

    def refusing_address(self, address: str) -> Rule | None:
        """The IP rule that refuses a client at ``address``, or None."""
        if not self.networks:
            return None
        try:
            ip = ipaddress.ip_address(address.partition("%")[0])
        except ValueError:
            return None
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        value = int(ip)
        for version, network, mask, rule in self.networks:
            if version == ip.version and value & mask == network:
                return rule
        return None

    def refusing_request(self, paths: tuple[str, ...], host: bytes,
                         referer: bytes | None) -> Rule | None:
        """The URL or hotlink rule that refuses a request, or None.

        ``paths`` are the spellings of the request path to search (see ``spellings``).
        """
        for text, rule in self.urls:
            if any(text in path for path in paths):
                return rule
        if referer is not None and self.hotlinks:
            for text, rule in self.hotlinks:
                if any(text in path for path in paths) and not same_site(referer, host):
                    return rule
        return None


def spellings(raw_path: bytes) -> tuple[str, ...]:
    """The request path, lower-cased: percent-decoded, and normalised when it can be.

    Both are searched, so that neither ``%2e%2e`` segments nor escapes hide a URL.
    """
    decoded = unquote_to_bytes(raw_path).decode("utf-8", "replace").lower()
    try:
        normalised = "/" + url_to_relpath(raw_path).lower()
    except Forbidden:
        return (decoded,)
    return (normalised, decoded) if normalised != decoded else (normalised,)


def _host_of(value: str) -> str:
    host = value.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def same_site(referer: bytes, host: bytes) -> bool:
    """Whether ``referer`` comes from the requested host or a host of the same domain.

    As Monkey: the two names must share at least their last two labels
    (``www.example.com`` and ``img.example.com``); addresses and one-label names must be
    equal. A Referer without a host is accepted.
    """
    try:
        ref_host = urlsplit(referer.decode("latin-1").strip()).hostname
    except ValueError:
        return True
    if not ref_host:
        return True
    own = _host_of(host.decode("latin-1"))
    ref_host = ref_host.lower().rstrip(".")
    own = own.rstrip(".")
    if ref_host == own.strip("[]"):
        return True
    ref_labels, own_labels = ref_host.split("."), own.split(".")
    if len(ref_labels) < 2 or len(own_labels) < 2 or ref_labels[-1].isdigit():
        return False
    return ref_labels[-2:] == own_labels[-2:]
