"""The proxy's configuration: ``proxy_reverse.conf`` and the sites' own proxy sections.

``[PROXY_DEFAULTS]`` sets every key's default; each ``[PROXY_ENTRY]`` may override any
of them and adds its ``Match`` rules. A site file may hold ``[PROXY_REVERSE]`` (to turn
the proxy off for that virtual host, or its cache on or off) and its own ``[PROXY_ENTRY]``
sections, which then replace the global entries for that host. The cache's store keys
live in ``[PROXY_DEFAULTS]`` only (see docs/proxy_cache.md). Host names are resolved
here, at start and on reload, never on the request path.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path

from monkey_py.config import ConfigError, Key, Location, Section, check_sections, read_section
from monkey_py.config import values

NAME = "proxy_reverse"
DEFAULTS = "PROXY_DEFAULTS"
ENTRY = "PROXY_ENTRY"
SITE = "PROXY_REVERSE"


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


@dataclass
class EntrySettings:
    """One ``[PROXY_ENTRY]``: where matching requests go and how."""

    location: Location
    match: list[re.Pattern]
    servers: list[ServerSpec]
    balancer: str
    balancer_location: Location
    attempts: int
    offline_timeout: float
    connect_timeout: float
    read_timeout: float
    keepalive_connections: int
    keepalive_timeout: float
    tunnel_timeout: float
    forwarded_headers: bool
    preserve_host: bool
    cache: bool
    cache_lock_timeout: float


@dataclass
class CacheSettings:
    """The response cache's store, from ``[PROXY_DEFAULTS]`` (docs/proxy_cache.md)."""

    store: str = "memory"
    directory: Path | None = None
    max_bytes: int = 64 * 1024 * 1024
    max_object: int = 1024 * 1024
    purge_allow: list = field(default_factory=list)
    # The CacheDirectory line, for errors found when the store opens.
    directory_location: Location | None = None
    # CacheSkipSetCookie: responses carrying Set-Cookie are not stored.
    skip_set_cookie: bool = False
    # CacheTargetedFields: the targeted cache-control fields obeyed (RFC 9213), lower-case.
    targeted_fields: tuple[bytes, ...] = (b"cdn-cache-control",)


@dataclass
class ProxySettings:
    """Everything the proxy reads from one configuration."""

    entries: list[EntrySettings] = field(default_factory=list)
    site_entries: dict[int, list[EntrySettings]] = field(default_factory=dict)
    disabled_sites: set[int] = field(default_factory=set)
    statistics_url: str | None = None
    statistics_allow: list = field(default_factory=list)
    # [PROXY_DEFAULTS]' LoadBalancer: checked even when no entry inherits it.
    balancer: str = "RoundRobin"
    balancer_location: Location | None = None
    cache: CacheSettings = field(default_factory=CacheSettings)
    # A site's [PROXY_REVERSE] Cache On|Off, overriding its entries' Cache.
    site_cache: dict[int, bool] = field(default_factory=dict)

    def entries_for(self, site) -> list[EntrySettings] | None:
        """The entries that apply to ``site``; None when the proxy is off there."""
        if id(site) in self.disabled_sites:
            return None
        return self.site_entries.get(id(site), self.entries)

    def cache_for(self, site, entry: EntrySettings) -> bool:
        """Whether ``entry``'s responses are cached on ``site``."""
        return self.site_cache.get(id(site), entry.cache)

    def cache_anywhere(self) -> bool:
        """Whether an entry may cache on some site (the cache is then set up)."""
        entries = [*self.entries, *(e for own in self.site_entries.values() for e in own)]
        return any(entry.cache for entry in entries) or (
            bool(entries) and any(self.site_cache.values()))


def _server_list(value: str, location: Location) -> list[ServerSpec]:
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


def _url_path(value: str, location: Location) -> str:
    if not value.startswith("/") or " " in value:
        raise ConfigError(f"'{value}' is not a URL path; write e.g. /proxy-status", location)
    return value


def _network(value: str, location: Location) -> list:
    try:
        return [ipaddress.ip_network(word, strict=False) for word in value.split()]
    except ValueError as exc:
        raise ConfigError(f"{exc}; write addresses or networks like 127.0.0.1 10.0.0.0/8",
                          location) from None


def _megabytes(value: str, location: Location) -> int:
    """A size in megabytes, fractions allowed (``0.5``), returned in bytes."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0 or number > 1 << 30 or not value[0].isdigit():
        raise ConfigError(f"'{value}' is not a size in megabytes; write e.g. 64 or 0.5",
                          location)
    return max(1, int(number * 1024 * 1024))


def _targeted_fields(value: str, location: Location) -> tuple[bytes, ...]:
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


def _cache_directory(store: str, directory: Path | None, defaults_section) -> None:
    """A disk store needs a directory it can create, read and write: checked at start."""
    if store != "disk":
        return
    if directory is None:
        line = defaults_section.get("CacheStore")
        raise ConfigError("CacheStore disk needs a CacheDirectory, e.g. "
                          "'CacheDirectory /var/cache/monkey_py'", line.location)
    location = defaults_section.get("CacheDirectory").location
    try:
        os.makedirs(directory / ".locks", mode=0o700, exist_ok=True)
        if not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise ConfigError(f"cache directory {directory}: {exc.strerror or exc}; give the "
                          "server a directory it may create and write", location) from None


def _option_keys() -> list[Key]:
    """The keys every entry inherits from [PROXY_DEFAULTS] and may override."""
    return [
        Key("ServerList", _server_list, repeatable=True),
        Key("LoadBalancer", values.word, default="RoundRobin"),
        Key("AttemptsCount", values.integer(1, 1000), default=2, attr="attempts"),
        Key("OfflineTimeOut", values.seconds, default=60.0, attr="offline_timeout"),
        Key("ConnectTimeout", values.seconds, default=5.0),
        Key("ReadTimeout", values.seconds, default=60.0),
        Key("KeepAliveConnections", values.integer(0, 100000), default=32),
        Key("KeepAliveTimeout", values.seconds, default=60.0),
        Key("TunnelTimeout", values.seconds, default=300.0),
        Key("ForwardedHeaders", values.boolean, default=True),
        Key("PreserveHost", values.boolean, default=True),
        Key("Cache", values.boolean, default=False),
        Key("CacheLockTimeout", values.seconds, default=5.0),
    ]


def _defaults_keys(directory: Path | None = None) -> list[Key]:
    """``directory``: the configuration directory, which a relative CacheDirectory is in."""
    return _option_keys() + [
        Key("StatisticsURL", _url_path, default=None, attr="statistics_url"),
        Key("StatisticsAllow", _network, repeatable=True, attr="statistics_allow"),
        Key("CacheStore", values.choice(["memory", "disk"]), default="memory"),
        Key("CacheDirectory", values.path(directory), default=None),
        Key("CacheMaxSize", _megabytes, default=64 * 1024 * 1024),
        Key("CacheMaxObjectSize", values.size_kb, default=1024 * 1024),
        Key("CachePurgeAllow", _network, repeatable=True),
        Key("CacheSkipSetCookie", values.boolean, default=False),
        Key("CacheTargetedFields", _targeted_fields, default=(b"cdn-cache-control",)),
    ]


def _entry_keys() -> list[Key]:
    return _option_keys() + [Key("Match", values.regex(re.IGNORECASE), repeatable=True, required=True)]


def _present(section: Section) -> set[str]:
    return {entry.key.lower() for entry in section.entries}


def _entry(section: Section, defaults: dict, balancer_location: Location) -> EntrySettings:
    raw = read_section(section, _entry_keys())
    given = _present(section)
    merged = {key.attribute: (raw[key.attribute] if key.name.lower() in given
                              else defaults[key.attribute]) for key in _option_keys()}
    servers = merged["server_list"]
    if not servers:
        raise ConfigError(
            f"[{ENTRY}] has no ServerList and [{DEFAULTS}] gives none; add "
            "'ServerList host:port ...'", section.location)
    if all(server.backup for server in servers):
        raise ConfigError("every server of this ServerList is a backup; mark at least one "
                          "as a primary", section.location)
    balancer_entry = section.get("LoadBalancer")
    return EntrySettings(
        location=section.location,
        match=raw["match"],
        servers=servers,
        balancer=merged["load_balancer"],
        balancer_location=balancer_entry.location if balancer_entry else balancer_location,
        attempts=merged["attempts"],
        offline_timeout=merged["offline_timeout"],
        connect_timeout=merged["connect_timeout"],
        read_timeout=merged["read_timeout"],
        keepalive_connections=merged["keep_alive_connections"],
        keepalive_timeout=merged["keep_alive_timeout"],
        tunnel_timeout=merged["tunnel_timeout"],
        forwarded_headers=merged["forwarded_headers"],
        preserve_host=merged["preserve_host"],
        cache=merged["cache"],
        cache_lock_timeout=merged["cache_lock_timeout"],
    )


def read_settings(config) -> ProxySettings:
    """Parse and check the proxy's whole configuration; raises ConfigError at file:line."""
    document = config.plugin_config(NAME)
    settings = ProxySettings()
    defaults_section = None
    if document is not None:
        check_sections(document, {DEFAULTS: False, ENTRY: True})
        found = document.sections_named(DEFAULTS)
        defaults_section = found[0] if found else None
    if defaults_section is not None:
        defaults = read_section(defaults_section, _defaults_keys(config.directory))
        balancer_line = defaults_section.get("LoadBalancer")
        defaults_location = (balancer_line or defaults_section).location
    else:
        defaults = {key.attribute: key.absent_value() for key in _defaults_keys()}
        defaults_location = Location(str(config.plugin_config_path(NAME)))
    settings.balancer = defaults["load_balancer"]
    settings.balancer_location = defaults_location
    settings.statistics_url = defaults["statistics_url"]
    settings.statistics_allow = defaults["statistics_allow"] or [
        ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
    settings.cache = CacheSettings(
        defaults["cache_store"], defaults["cache_directory"], defaults["cache_max_size"],
        defaults["cache_max_object_size"], defaults["cache_purge_allow"] or [
            ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")],
        skip_set_cookie=defaults["cache_skip_set_cookie"],
        targeted_fields=defaults["cache_targeted_fields"])
    if defaults_section is not None:
        _cache_directory(settings.cache.store, settings.cache.directory, defaults_section)
        line = defaults_section.get("CacheDirectory")
        settings.cache.directory_location = line.location if line is not None else None
    if document is not None:
        settings.entries = [_entry(section, defaults, defaults_location)
                            for section in document.sections_named(ENTRY)]
    for site in config.sites:
        site_sections = site.sections.get(SITE, [])
        if len(site_sections) > 1:
            raise ConfigError(f"[{SITE}] appears twice in this site; merge them",
                              site_sections[1].location)
        if site_sections:
            options = read_section(site_sections[0], [
                Key("Enabled", values.boolean, default=True),
                Key("Cache", values.boolean, default=None)])
            if not options["enabled"]:
                settings.disabled_sites.add(id(site))
            if options["cache"] is not None:
                settings.site_cache[id(site)] = options["cache"]
        own = site.sections.get(ENTRY, [])
        if own:
            settings.site_entries[id(site)] = [
                _entry(section, defaults, defaults_location) for section in own]
    return settings
