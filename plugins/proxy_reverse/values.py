"""Converters for the proxy's own configuration values: servers, CA files, networks,
sizes, per cents, status lists, entry names. Each takes ``(value, location)`` and raises
``ConfigError`` at ``location`` with what to write instead (as monkey_py.config.values).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from dataclasses import dataclass, replace
from pathlib import Path

from monkey_py.config import ConfigError, Location
from monkey_py.config import values

from .upstream_tls import ClientCertificate

# Who may ask for the statistics and PURGE when the configuration does not say.
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
STATUS_RE = re.compile(r"([1-5])xx|([1-5][0-9][0-9])(?:-([1-5][0-9][0-9]))?", re.I)


# The schemes a server may be written with: whether it speaks TLS, its default port.
SCHEMES = {"http": (False, 80), "https": (True, 443)}
SERVER_FORMS = ("host:port, http://host[:port] or https://host[:port] "
                "(e.g. 10.0.0.1:8080, [::1]:8080, https://api.example.com)")


@dataclass(frozen=True)
class ServerSpec:
    """One server of a ServerList: where it is, whether it speaks TLS (``https://``),
    plus the ``weight=N`` and ``backup`` flags.

    ``name`` is how it is shown: as written for ``host:port``, else ``host:port`` for
    ``http://`` and ``https://host:port`` for ``https://`` (the port always written).
    ``host`` is the name or address as written (IPv6 without brackets): the name TLS
    sends as SNI and checks in the certificate.
    """

    name: str
    host: str
    port: int
    family: int
    address: tuple
    weight: int = 1
    backup: bool = False
    tls: bool = False


def server_list(value: str, location: Location) -> list[ServerSpec]:
    """``host:port [weight=N] [backup] https://host:port ...``."""
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
    scheme, sep, rest = word.partition("://")
    if not sep:
        tls, default_port, rest = False, None, word
    elif scheme.lower() in SCHEMES:
        tls, default_port = SCHEMES[scheme.lower()]
        if any(mark in rest for mark in "/?#@"):
            raise ConfigError(f"'{word}': a server is written without a path, query or "
                              f"user; write {SERVER_FORMS}", location)
    else:
        raise ConfigError(f"'{word}': unknown scheme '{scheme}://'; write {SERVER_FORMS}",
                          location)
    host, port_text = _host_and_port(rest)
    if not host or (port_text is None and default_port is None):
        raise ConfigError(f"'{word}' is not host:port; write {SERVER_FORMS}", location)
    port = default_port if port_text is None else values.port(port_text, location)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise ConfigError(f"cannot resolve upstream host '{host}' ({reason})", location) from None
    family, _, _, _, address = infos[0]
    if sep:
        bracketed = f"[{host}]" if ":" in host else host
        word = f"{'https://' if tls else ''}{bracketed}:{port}"
    return ServerSpec(word, host, port, family, address, tls=tls)


def _host_and_port(text: str) -> tuple[str, str | None]:
    """``host:port``, ``[v6]:port``, or the host alone (port None)."""
    if text.startswith("["):
        host, bracket, after = text[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            return "", None
        return host, after[1:] if after else None
    host, colon, port_text = text.rpartition(":")
    return (host, port_text) if colon else (text, None)


def ca_file(value: str, location: Location) -> Path:
    """A file of PEM CA certificates, relative to the directory of the file naming it;
    it must be readable and hold at least one certificate."""
    path = values.path()(value, location)
    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as exc:
        raise ConfigError(f"{path} holds no PEM certificate ({exc.reason}); give a file "
                          "of PEM CA certificates", location) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the CA file {path}: {exc.strerror}", location) \
            from None
    return path


def client_certificate(value: str, location: Location) -> ClientCertificate:
    """``UpstreamCertificate FILE [KEYFILE]``: the PEM certificate (then its chain) the
    proxy presents to upstream servers, and its unencrypted PEM private key when it is
    not in FILE; relative paths start at the directory of the file naming them. Both
    must be readable, and the key must be the certificate's."""
    words = value.split()
    if len(words) > 2:
        raise ConfigError("UpstreamCertificate takes a certificate file and, when its key "
                          "is not in it, the key's file", location)
    to_path = values.path()
    found = ClientCertificate(*(to_path(word, location) for word in words))
    try:
        found.load_into(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    except ssl.SSLError as exc:
        files = " and ".join(str(path) for path in (found.certificate, found.key) if path)
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(f"the key {found.key} is not the key of the certificate "
                              f"{found.certificate}", location) from None
        raise ConfigError(f"{files} do not hold a PEM certificate and its unencrypted "
                          f"private key ({exc.reason})", location) from None
    except OSError as exc:  # (ssl.SSLError is an OSError too: it is caught above)
        raise ConfigError(f"cannot read {exc.filename or found.certificate}: "
                          f"{exc.strerror}", location) from None
    return found


def tls_server_name(value: str, location: Location) -> str:
    """``UpstreamServerName``: a host name or an IP address, without a port."""
    name = values.host_name(value, location)
    if name.startswith("["):
        if not name.endswith("]"):
            raise ConfigError(f"UpstreamServerName {value} has a port; write the name only "
                              "(the port is the one in ServerList)", location)
        return name[1:-1]
    if ":" in name:
        raise ConfigError(f"UpstreamServerName {value} has a port; write the name only "
                          "(the port is the one in ServerList)", location)
    return name


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


def name_converter(what: str, extra: str, most: int, example: str):
    """A converter of names (``what``: "entry name"): a letter or digit, then letters,
    digits, ``.``, ``_``, ``-`` and the characters of ``extra``, ``most`` at most."""
    pattern = re.compile(f"[A-Za-z0-9][A-Za-z0-9._{re.escape(extra)}-]{{0,{most - 1}}}")
    allowed = ", ".join(f"'{char}'" for char in "._" + extra)

    def convert(value: str, location: Location) -> str:
        if not pattern.fullmatch(value):
            raise ConfigError(f"'{value}' is not a valid {what}; use up to {most} letters, "
                              f"digits, {allowed} and '-', starting with a letter or digit, "
                              f"e.g. {example}", location)
        return value

    return convert


# An entry's ``Name``: letters, digits, ``.``, ``_`` and ``-``, 64 at most.
entry_name = name_converter("entry name", "", 64, "api-v2")


@dataclass(frozen=True)
class StatusSet:
    """Status codes (those a health check accepts, or RetryOnStatus): ranges such as
    200-299, as written."""

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


def retry_statuses(value: str, location: Location) -> StatusSet | None:
    """``RetryOnStatus``: the error statuses (400 to 599) an answer is retried on, or
    ``Off``."""
    if value.lower() == "off":
        return None
    statuses = status_set(value, location)
    if any(low < 400 or high > 599 for low, high in statuses.ranges):
        raise ConfigError(f"RetryOnStatus takes error statuses, 400 to 599 (such as "
                          f"502 503 504, or 5xx); '{value}' is not only those", location)
    return statuses


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
