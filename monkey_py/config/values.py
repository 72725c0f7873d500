"""Converters from a configuration value to a Python value, with file:line errors.

A converter is a callable ``(value: str, location: Location) -> T`` that raises
:class:`ConfigError` at ``location`` when the value is wrong; factories such as
:func:`integer` or :func:`choice` return one. Use them through
:class:`monkey_py.config.schema.Key`, or call ``convert(entry, converter)`` directly.
"""

from __future__ import annotations

import ipaddress
import math
import os
import pwd
import re
import socket
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, TypeVar
from urllib.parse import urlsplit

from .errors import ConfigError, Location
from .model import Listen
from .syntax import Entry

T = TypeVar("T")
Converter = Callable[[str, Location], T]

_INTEGER_RE = re.compile(r"[+-]?[0-9]+")
_NUMBER_RE = re.compile(r"[0-9]+(\.[0-9]+)?|\.[0-9]+")
_HOST_RE = re.compile(
    r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*\.?"
)


def convert(entry: Entry, converter: Converter[T]) -> T:
    """Convert ``entry``'s value; errors point at the entry's line."""
    return converter(entry.value, entry.location)


def string(value: str, location: Location) -> str:
    """Any non-empty text, as written."""
    return value


def boolean(value: str, location: Location) -> bool:
    """``On`` or ``Off`` (any case), as Monkey accepts; nothing else."""
    lowered = value.lower()
    if lowered == "on":
        return True
    if lowered == "off":
        return False
    raise ConfigError(f"'{value}' is not a boolean; valid values: On, Off", location)


def integer(minimum: int | None = None, maximum: int | None = None) -> Converter[int]:
    """A whole number, optionally within ``minimum``..``maximum`` (inclusive)."""

    def convert_integer(value: str, location: Location) -> int:
        if not _INTEGER_RE.fullmatch(value):
            raise ConfigError(
                f"'{value}' is not a whole number{_range(minimum, maximum)}", location
            )
        number = int(value)
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            raise ConfigError(
                f"{number} is out of range; expected a number{_range(minimum, maximum)}", location
            )
        return number

    return convert_integer


def _range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum} to {maximum}"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def size_kb(value: str, location: Location) -> int:
    """A size in kilobytes (a whole number >= 1), returned in bytes."""
    return integer(1)(value, location) * 1024


def seconds(value: str, location: Location) -> float:
    """A positive duration in seconds; fractions such as ``0.5`` are allowed."""
    if not _NUMBER_RE.fullmatch(value):
        raise ConfigError(f"'{value}' is not a number of seconds; write e.g. 15 or 0.5", location)
    number = float(value)
    if number <= 0 or not math.isfinite(number):
        raise ConfigError(f"{value} seconds: the duration must be greater than 0", location)
    return number


def words(value: str, location: Location) -> list[str]:
    """A list separated by blanks."""
    return value.split()


def word(value: str, location: Location) -> str:
    """A single word: text with no blanks."""
    if len(value.split()) != 1:
        raise ConfigError(f"'{value}' must be a single word, without blanks", location)
    return value


def path(base: str | os.PathLike[str] | None = None) -> Converter[Path]:
    """A file system path; a relative one is taken from ``base``.

    With ``base`` None, relative paths start at the directory of the file holding the key.
    The result is absolute and normalised; it is not required to exist.
    """

    def convert_path(value: str, location: Location) -> Path:
        start = base if base is not None else os.path.dirname(os.path.abspath(location.file))
        return Path(
            os.path.normpath(os.path.join(os.path.abspath(start), os.path.expanduser(value)))
        )

    return convert_path


def choice(options: Iterable[str], case_sensitive: bool = False) -> Converter[str]:
    """One of ``options``; returns the option as spelled in ``options``."""
    spelled = list(options)
    index = {(o if case_sensitive else o.lower()): o for o in spelled}

    def convert_choice(value: str, location: Location) -> str:
        found = index.get(value if case_sensitive else value.lower())
        if found is None:
            raise ConfigError(
                f"'{value}' is not valid; valid values: {', '.join(spelled)}", location
            )
        return found

    return convert_choice


def system_user(value: str, location: Location) -> str:
    """The name of an existing system user."""
    try:
        pwd.getpwnam(value)
    except KeyError:
        raise ConfigError(
            f"unknown user '{value}': name a user that exists on this system", location
        ) from None
    return value


def url(value: str, location: Location) -> str:
    """An absolute ``http://`` or ``https://`` URL."""
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or " " in value:
        raise ConfigError(
            f"'{value}' is not an http:// or https:// URL; write e.g. https://example.com/",
            location,
        )
    return value


def port(value: str, location: Location) -> int:
    """A TCP port number, 1 to 65535."""
    if not value.isdigit():
        raise ConfigError(f"'{value}' is not a port number; expected 1 to 65535", location)
    number = int(value)
    if not 1 <= number <= 65535:
        raise ConfigError(f"port {number} is out of range; expected 1 to 65535", location)
    return number


def host_name(value: str, location: Location) -> str:
    """A host name, IPv4 address or [IPv6] address, optionally with ``:port``; lower-cased."""
    lowered = value.lower()
    if lowered.startswith("["):
        end = lowered.find("]")
        host, rest = lowered[: end + 1], lowered[end + 1 :]
        valid = end > 0 and _is_ipv6(host[1:-1])
    else:
        host, _, port_text = lowered.partition(":")
        rest = ":" + port_text if _ else ""
        valid = bool(_HOST_RE.fullmatch(host)) and len(host) <= 253
    if valid and rest:
        valid = rest.startswith(":")
        if valid:
            port(rest[1:], location)
    if not valid:
        raise ConfigError(
            f"'{value}' is not a host name: write a name, an IPv4 address or [IPv6], "
            "optionally followed by :port (letters, digits, '-', '_', '.')",
            location,
        )
    return lowered


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def listen(value: str, location: Location) -> Listen:
    """``PORT``, ``HOST:PORT`` or ``[IPV6]:PORT``, then optionally ``tls``; a bare port
    listens on all IPv4 interfaces.

    A host name is resolved now (first address getaddrinfo returns).
    """
    value, *flags = value.split()
    for flag in flags:
        if flag.lower() != "tls":
            raise ConfigError(
                f"'Listen {value} {' '.join(flags)}': the only listener flag is 'tls' "
                f"({flag} is not supported); write e.g. 'Listen 443 tls'", location)
    address = _address(value, location)
    return replace(address, tls=True) if flags else address


def _address(value: str, location: Location) -> Listen:
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ConfigError(f"'{value}': expected a closing ']' after the IPv6 address", location)
        host, rest = value[1:end], value[end + 1 :]
        if not rest.startswith(":") or len(rest) < 2:
            raise ConfigError(
                f"'{value}': expected ':port' after the IPv6 address, e.g. [::1]:2001", location
            )
        if not _is_ipv6(host):
            raise ConfigError(f"'{host}' is not an IPv6 address", location)
        return Listen(str(ipaddress.IPv6Address(host)), port(rest[1:], location), socket.AF_INET6)
    if ":" not in value:
        return Listen("0.0.0.0", port(value, location), socket.AF_INET)
    host, _, port_text = value.rpartition(":")
    number = port(port_text, location)
    if not host:
        raise ConfigError(
            f"'{value}': expected an address before ':{port_text}', or the port alone", location
        )
    if ":" in host:
        raise ConfigError(f"'{value}': write IPv6 addresses in brackets, e.g. [::1]:2001", location)
    return _resolve(host, number, location)


def _resolve(host: str, number: int, location: Location) -> Listen:
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        pass
    else:
        return Listen(str(address), number, socket.AF_INET)
    try:
        infos = socket.getaddrinfo(host, number, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise ConfigError(
            f"cannot resolve host '{host}' ({reason}); use an IP address or a name "
            "this machine resolves",
            location,
        ) from None
    family, _, _, _, sockaddr = infos[0]
    return Listen(str(sockaddr[0]), number, socket.AddressFamily(family))


# POSIX bracket classes (Monkey compiles Match rules as POSIX extended regexes) and what
# they mean inside a Python character class.
_POSIX_CLASSES = {
    "alpha": "A-Za-z", "digit": "0-9", "alnum": "A-Za-z0-9", "upper": "A-Z", "lower": "a-z",
    "xdigit": "0-9A-Fa-f", "space": r" \t\n\r\f\v", "blank": r" \t",
    "punct": r"!-/:-@\[-`{-~", "cntrl": r"\x00-\x1f\x7f", "print": r"\x20-\x7e",
    "graph": r"\x21-\x7e", "word": "A-Za-z0-9_",
}
_POSIX_CLASS_RE = re.compile(r"\[:([a-z]+):\]")


def regex(flags: int = 0) -> Converter[re.Pattern[str]]:
    """A regular expression (Python syntax, plus POSIX classes such as ``[[:digit:]]``)."""

    def convert_regex(value: str, location: Location) -> re.Pattern[str]:
        def posix(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in _POSIX_CLASSES:
                raise ConfigError(
                    f"unknown character class '[:{name}:]' in '{value}'; valid: "
                    + ", ".join(f"[:{known}:]" for known in _POSIX_CLASSES),
                    location,
                )
            return _POSIX_CLASSES[name]

        try:
            return re.compile(_POSIX_CLASS_RE.sub(posix, value), flags)
        except re.error as exc:
            raise ConfigError(f"invalid regular expression '{value}': {exc}", location) from None

    return convert_regex
