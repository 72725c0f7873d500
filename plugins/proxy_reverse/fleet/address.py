"""Where Redis is and how to log in: a ``redis://`` or ``rediss://`` URL, read by the
configuration value converter :func:`parse_redis_url`::

    redis://HOST[:PORT][/DB]
    redis://:PASSWORD@HOST[:PORT][/DB]         AUTH PASSWORD
    redis://USER:PASSWORD@HOST[:PORT][/DB]     AUTH USER PASSWORD (an ACL user, Redis 6+)
    rediss://...[?ca_file=PATH]                TLS, the certificate checked against the
                                               system's CA store, or the CAs in PATH

The port is 6379 and the database 0 unless given; the user and password are
percent-decoded (write ``%40`` for ``@``, ``%2F`` for ``/``, ``%23`` for ``#``). The host
is resolved here, when the configuration is loaded, never on a worker's loop.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from monkey_py.config import ConfigError, Location, values

DEFAULT_PORT = 6379
FORMS = ("redis://HOST:PORT/DB, redis://:PASSWORD@HOST:PORT/DB, "
         "redis://USER:PASSWORD@HOST:PORT/DB, or rediss://... for TLS")


@dataclass(frozen=True)
class RedisAddress:
    """A Redis server: ``address`` to connect to (numeric), ``host`` as written (the name
    a TLS certificate must carry), the database, the credentials and TLS."""

    host: str
    port: int
    family: int
    address: tuple
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: Path | None = None

    def __str__(self) -> str:
        """The URL without its credentials, for logs and status pages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss' if self.tls else 'redis'}://{host}:{self.port}/{self.db}"

    def tls_context(self) -> ssl.SSLContext:
        """A client context that checks Redis's certificate and name."""
        return ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None)


def parse_redis_url(value: str, location: Location) -> RedisAddress:
    """A configuration value converter: ``value`` as a :class:`RedisAddress`, or a
    ConfigError at ``location`` saying which part is wrong and the valid forms."""
    if len(value.split()) != 1:
        raise ConfigError(f"a Redis URL has no blanks; write {FORMS}", location)
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss") or not parts.netloc:
        raise ConfigError(f"a Redis URL starts with redis:// or rediss://; write {FORMS}",
                          location)
    if parts.fragment:
        raise ConfigError("'#' ends a URL: write it %23 in a password", location)
    host = parts.hostname
    if not host:
        raise ConfigError(f"the Redis URL names no host; write {FORMS}", location)
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ConfigError("the Redis URL's port is not a number from 1 to 65535", location) \
            from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ConfigError(f"'/{path}' is not a database number; write e.g. "
                          "redis://HOST:PORT/0", location)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if username is not None and password is None:
        raise ConfigError("a Redis user needs a password: write redis://USER:PASSWORD@HOST, "
                          "or redis://:PASSWORD@HOST without a user", location)
    resolved = values.listen(f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                             location)
    return RedisAddress(host, port, resolved.family, (resolved.host, port),
                        int(path or 0), username, password, scheme == "rediss",
                        _ca_file(parts.query, scheme, location))


def _ca_file(query: str, scheme: str, location: Location) -> Path | None:
    found = None
    for name, given in parse_qsl(query, keep_blank_values=True):
        if name != "ca_file" or scheme != "rediss" or not given:
            raise ConfigError(f"'{name}={given}': the only parameter of a Redis URL is "
                              "ca_file=PATH, with rediss://", location)
        found = values.path()(given, location)
        try:
            ssl.create_default_context(cafile=str(found))
        except ssl.SSLError as exc:
            raise ConfigError(f"ca_file {found} holds no PEM certificate ({exc.reason})",
                              location) from None
        except OSError as exc:
            raise ConfigError(f"cannot read ca_file {found}: {exc.strerror}", location) \
                from None
    return found
