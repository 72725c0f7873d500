"""Converters for the proxy's own configuration values: servers, networks, sizes,
per cents, status lists, entry names. Each takes ``(value, location)`` and raises
``ConfigError`` at ``location`` with what to write instead (as monkey_py.config.values).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, replace

from monkey_py.config import ConfigError, Location
from monkey_py.config import values

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
STATUS_RE = re.compile(r"([1-5])xx|([1-5][0-9][0-9])(?:-([1-5][0-9][0-9]))?", re.I)


@dataclass(frozen=True)
class ServerSpec:
    """One server of a ServerList: ``host:port`` plus ``weight=N`` and ``backup`` flags."""

    name: str
    host: str
    port: int
    family: int
    address: tuple
    weight: int = 1
    backup: bool = False


def server_list(value: str, location: Location) -> list[ServerSpec]:
    """``host:port [weight=N] [backup] host:port ...``."""
    servers: list[ServerSpec] = []
    for word in value.split():
        lowered = word.lower()
        if lowered == "backup" or lowered.startswith("weight="):
            if not servers:
                raise ConfigError(
                    f"'{word}' must follow the server it applies to, e.g. "
                    "'ServerList 10.0.0.1:80 weight=2 10.0.0.2:80 backup'", location)
            last = servers[-1]
            if lowered == "backup":
                servers[-1] = replace(last, backup=True)
            else:
                weight = values.integer(1, 1000)(word[7:], location)
                servers[-1] = replace(last, weight=weight)
            continue
        server = _server(word, location)
        if any(known.name == server.name for known in servers):
            raise ConfigError(f"{word} is listed twice in this ServerList; list each server "
                              "once (use weight=N to give it more requests)", location)
        servers.append(server)
    return servers


def _server(word: str, location: Location) -> ServerSpec:
    if word.startswith("["):
        host, sep, port_text = word[1:].partition("]:")
    else:
        host, sep, port_text = word.rpartition(":")
    if not sep or not host:
        raise ConfigError(
            f"'{word}' is not host:port; write e.g. 127.0.0.1:8080 or [::1]:8080", location)
    port = values.port(port_text, location)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise ConfigError(f"cannot resolve upstream host '{host}' ({reason})", location) from None
    family, _, _, _, address = infos[0]
    return ServerSpec(word, host, port, family, address)


def url_path(value: str, location: Location) -> str:
    if not value.startswith("/") or " " in value:
        raise ConfigError(f"'{value}' is not a URL path; write e.g. /proxy-status", location)
    return value


def check_path(value: str, location: Location) -> str | None:
    """``HealthCheck``: the URL path the check asks for, or ``Off``."""
    if value.lower() == "off":
        return None
    if not value.startswith("/") or " " in value:
        raise ConfigError(f"'{value}' is not a URL path; write e.g. 'HealthCheck /health', "
                          "or 'HealthCheck Off'", location)
    return value


def network(value: str, location: Location) -> list:
    try:
        return [ipaddress.ip_network(word, strict=False) for word in value.split()]
    except ValueError as exc:
        raise ConfigError(f"{exc}; write addresses or networks like 127.0.0.1 10.0.0.0/8",
                          location) from None


def megabytes(value: str, location: Location) -> int:
    """A size in megabytes, fractions allowed (``0.5``), returned in bytes."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0 or number > 1 << 30 or not value[0].isdigit():
        raise ConfigError(f"'{value}' is not a size in megabytes; write e.g. 64 or 0.5",
                          location)
    return max(1, int(number * 1024 * 1024))


def megabytes_or_off(value: str, location: Location) -> int:
    """A size in megabytes as ``megabytes``, or ``0``/``Off`` for none: 0."""
    if value.lower() in ("0", "off"):
        return 0
    return megabytes(value, location)


def percent(value: str, location: Location) -> int:
    """A whole number of per cent, 0 to 100; a trailing ``%`` is allowed."""
    return values.integer(0, 100)(value.removesuffix("%"), location)


def seconds_or_zero(value: str, location: Location) -> float:
    """A duration in seconds, or 0 (off)."""
    if value.strip() in ("0", "0.0"):
        return 0.0
    return values.seconds(value, location)


def entry_name(value: str, location: Location) -> str:
    """An entry's ``Name``: letters, digits, ``.``, ``_`` and ``-``, 64 at most."""
    if not NAME_RE.fullmatch(value):
        raise ConfigError(f"'{value}' is not a valid entry name; use up to 64 letters, "
                          "digits, '.', '_' and '-', starting with a letter or digit, "
                          "e.g. api-v2", location)
    return value


@dataclass(frozen=True)
class StatusSet:
    """The status codes a health check accepts: ranges such as 200-299, as written."""

    ranges: tuple[tuple[int, int], ...]
    text: str

    def __contains__(self, status: int) -> bool:
        return any(low <= status <= high for low, high in self.ranges)


def status_set(value: str, location: Location) -> StatusSet:
    """``200``, ``200-399``, ``2xx`` (any of them, separated by blanks)."""
    ranges = []
    for word in value.split():
        match = STATUS_RE.fullmatch(word)
        if match is None:
            raise ConfigError(f"'{word}' is not a status code; write codes, ranges or "
                              "classes such as 200, 200-299 or 2xx", location)
        if match.group(1):
            low = int(match.group(1)) * 100
            ranges.append((low, low + 99))
        else:
            low = int(match.group(2))
            high = int(match.group(3) or low)
            if high < low:
                raise ConfigError(f"'{word}': the range ends before it starts", location)
            ranges.append((low, high))
    return StatusSet(tuple(ranges), " ".join(value.split()))


def targeted_fields(value: str, location: Location) -> tuple[bytes, ...]:
    """``CacheTargetedFields``: field names in order of precedence, or ``Off``."""
    names = value.split()
    if [name.lower() for name in names] == ["off"]:
        return ()
    for name in names:
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name) or (
                name.lower() == "cache-control"):
            raise ConfigError(f"'{name}' is not a targeted cache-control field name; write "
                              "e.g. CDN-Cache-Control, or Off", location)
    return tuple(name.lower().encode("ascii") for name in names)
