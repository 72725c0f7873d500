"""The loaded configuration: plain typed objects the server and plugins read."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, Location
from .syntax import Document, Section, parse_file

CORE_SITE_SECTIONS = frozenset({"HOST", "ERROR_PAGES", "HANDLERS"})
# The most worker processes a server starts, whatever Workers says or the CPUs number.
MAX_WORKERS = 1024


@dataclass(frozen=True)
class Listen:
    """An address to listen on; ``host`` is numeric (resolved when the config is loaded).

    ``tls``: connections are TLS (Monkey's ``Listen 443 tls``; the tls plugin provides
    the certificates).
    """

    host: str
    port: int
    family: socket.AddressFamily
    tls: bool = False

    @property
    def is_wildcard(self) -> bool:
        """True for ``0.0.0.0`` and ``::``: every address of the family."""
        return self.host in ("0.0.0.0", "::")

    @property
    def family_name(self) -> str:
        """``IPv4`` or ``IPv6``, as messages name the family."""
        return "IPv6" if self.family == socket.AF_INET6 else "IPv4"

    def covers(self, other: "Listen") -> bool:
        """True when a listener on this address takes ``other``'s connections too."""
        return (
            self.family == other.family and self.port == other.port
            and (self.host == other.host or self.is_wildcard)
        )

    def __str__(self) -> str:
        address = (f"[{self.host}]:{self.port}" if self.family == socket.AF_INET6
                   else f"{self.host}:{self.port}")
        return address + " (TLS)" if self.tls else address


@dataclass(frozen=True)
class PluginRef:
    """A plugin named by a ``Load`` line: an entry point of group ``monkey_py.plugins``."""

    name: str
    location: Location


@dataclass(frozen=True)
class Handler:
    """A ``[HANDLERS] Match`` rule: requests whose path matches go to ``plugin``."""

    pattern: re.Pattern[str]
    plugin: str
    params: list[str]
    location: Location

    def matches(self, path: str) -> bool:
        """True when the unanchored, case-sensitive pattern is found in ``path``."""
        return self.pattern.search(path) is not None


@dataclass(frozen=True)
class ServerConfig:
    """The ``[SERVER]`` section of monkey.conf; sizes in bytes, times in seconds."""

    listen: list[Listen]
    workers: int
    timeout: float
    keepalive: bool
    keepalive_timeout: float
    max_keepalive_request: int
    max_request_size: int
    index_files: list[str]
    hide_version: bool
    resume: bool
    symlink: bool
    default_mime_type: str
    user_dir: str | None
    server_signature: bool
    open_file_cache: int
    open_file_cache_valid: float
    pid_file: Path | None
    user: str | None

    def worker_count(self) -> int:
        """How many worker processes to start: ``Workers``, or one per CPU when it is 0."""
        return self.workers or min(os.cpu_count() or 1, MAX_WORKERS)

    def tls_listens(self) -> list[Listen]:
        """The listeners marked ``tls``."""
        return [listen for listen in self.listen if listen.tls]


@dataclass(frozen=True)
class Site:
    """A virtual host read from one file of ``sites/``.

    ``sections`` holds the sections the core does not read (``[LOGGER]``, proxy entries
    ...), by upper-case name, for the plugins that claim them.
    """

    name: str
    path: Path
    server_names: list[str]
    document_root: Path
    redirect: str | None
    error_pages: dict[int, Path]
    handlers: list[Handler]
    sections: dict[str, list[Section]]


@dataclass(frozen=True)
class Config:
    """Everything read from a configuration directory; ``sites[0]`` is the default site."""

    directory: Path
    server: ServerConfig
    plugins: list[PluginRef]
    sites: list[Site]
    warnings: list[str]
    _plugin_documents: dict[str, Document | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def default_site(self) -> Site:
        """The site answering requests whose Host names no site: ``sites/default``."""
        return self.sites[0]

    @property
    def plugin_names(self) -> list[str]:
        """The names of the plugins to load, in ``Load`` order."""
        return [plugin.name for plugin in self.plugins]

    def plugin_config_path(self, name: str) -> Path:
        """Where plugin ``name`` keeps its own file: ``plugins/<name>/<name>.conf``."""
        return self.directory / "plugins" / name / f"{name}.conf"

    def plugin_config(self, name: str) -> Document | None:
        """Plugin ``name``'s own configuration file, parsed once; None if it has none."""
        if name not in self._plugin_documents:
            path = self.plugin_config_path(name)
            self._plugin_documents[name] = parse_file(path) if os.path.lexists(path) else None
        return self._plugin_documents[name]

    def check_site_sections(self, claimed: set[str]) -> None:
        """Raise ConfigError at the first site section neither the core nor a plugin reads.

        ``claimed`` names the sections the loaded plugins read (case-insensitive).
        """
        known = CORE_SITE_SECTIONS | {name.upper() for name in claimed}
        for site in self.sites:
            for name, sections in site.sections.items():
                if name not in known:
                    raise ConfigError(
                        f"unknown section [{name}] in site '{site.name}'; valid sections: "
                        f"{', '.join(sorted(known))} (plugin sections need their plugin "
                        "loaded in plugins.load)",
                        sections[0].location,
                    )
