"""The proxy's configuration: ``proxy_reverse.conf`` and the sites' own proxy sections.

``[PROXY_DEFAULTS]`` sets every key's default; each ``[PROXY_ENTRY]`` may override any
of them and adds its ``Match`` rules. A site file may hold ``[PROXY_REVERSE]`` (to turn
the proxy off for that virtual host, or its cache on or off) and its own ``[PROXY_ENTRY]``
sections, which then replace the global entries for that host. The cache's store keys
live in ``[PROXY_DEFAULTS]`` only (read in cache/settings.py; docs/proxy_cache.md).
Host names are resolved here, at start and on reload, never on the request path; the
TLS contexts of the ``https://`` servers are built here too.
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from monkey_py.config import ConfigError, Key, Location, Section, check_sections, read_section
from monkey_py.config import values
from monkey_py.config.schema import where_first

from .cache.settings import CacheSettings, cache_keys, cache_settings
from .fleet.address import parse_redis_url
from .fleet.settings import FleetSettings, fleet_name, fleet_settings
from .upstream_tls import ClientCertificate, ClientContexts
from .values import (
    LOOPBACK, ServerSpec, StatusSet, ca_file, check_path, client_certificate, entry_name,
    network, percent, retry_statuses, seconds_or_zero, server_list, status_set,
    tls_server_name, url_path,
)

NAME = "proxy_reverse"
DEFAULTS = "PROXY_DEFAULTS"
ENTRY = "PROXY_ENTRY"
SITE = "PROXY_REVERSE"


@dataclass(frozen=True)
class HealthCheckSettings:
    """An entry's active health check (``HealthCheck`` and its companion keys)."""

    path: str
    interval: float
    timeout: float
    rise: int
    fall: int
    status: StatusSet


@dataclass
class EntrySettings:
    """One ``[PROXY_ENTRY]``: where matching requests go and how."""

    location: Location
    # ``Name``, or ``where``: the entry's label in the statistics and the logs.
    label: str
    name: str | None
    # The location as file:line, the file relative to the configuration directory.
    where: str
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
    panic_threshold: int
    slow_start: float
    max_connections: int
    queue_size: int
    queue_timeout: float
    retry_budget: int
    retry_budget_min: int
    # RetryOnStatus: answers retried on the next server (None: none).
    retry_statuses: StatusSet | None
    health_check: HealthCheckSettings | None
    # UpstreamVerify, UpstreamCAFile, UpstreamCertificate and UpstreamServerName, and the
    # TLS context of the https:// servers (None when the entry has none).
    upstream_verify: bool = True
    upstream_ca_file: Path | None = None
    upstream_certificate: ClientCertificate | None = None
    upstream_server_name: str | None = None
    tls_context: ssl.SSLContext | None = None


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
    # Fleet mode (docs/fleet.md): None when Fleet is not set.
    fleet: FleetSettings | None = None

    def entries_for(self, site) -> list[EntrySettings] | None:
        """The entries that apply to ``site``; None when the proxy is off there."""
        if id(site) in self.disabled_sites:
            return None
        return self.site_entries.get(id(site), self.entries)

    def cache_for(self, site, entry: EntrySettings) -> bool:
        """Whether ``entry``'s responses are cached on ``site``."""
        return self.site_cache.get(id(site), entry.cache)

    def all_entries(self) -> list[EntrySettings]:
        """Every entry: the global ones, then each site's own, in configuration order."""
        return [*self.entries, *(e for own in self.site_entries.values() for e in own)]

    def cache_anywhere(self) -> bool:
        """Whether an entry may cache on some site (the cache is then set up)."""
        entries = self.all_entries()
        return any(entry.cache for entry in entries) or (
            bool(entries) and any(self.site_cache.values()))


def _option_keys() -> list[Key]:
    """The keys every entry inherits from [PROXY_DEFAULTS] and may override."""
    return [
        Key("ServerList", server_list, repeatable=True),
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
        Key("PanicThreshold", percent, default=50),
        Key("SlowStart", seconds_or_zero, default=0.0),
        Key("MaxConnections", values.integer(0, 1000000), default=0),
        Key("QueueSize", values.integer(0, 1000000), default=100),
        Key("QueueTimeout", values.seconds, default=5.0),
        Key("RetryBudget", percent, default=20),
        Key("RetryBudgetMin", values.integer(0, 1000000), default=3),
        Key("RetryOnStatus", retry_statuses, default=None),
        Key("HealthCheck", check_path, default=None),
        Key("HealthCheckInterval", values.seconds, default=5.0),
        Key("HealthCheckTimeout", values.seconds, default=2.0),
        Key("HealthCheckRise", values.integer(1, 100), default=2),
        Key("HealthCheckFall", values.integer(1, 100), default=3),
        Key("HealthCheckStatus", status_set, default=status_set("2xx 3xx", Location(""))),
        Key("UpstreamVerify", values.boolean, default=True),
        Key("UpstreamCAFile", ca_file, default=None),
        Key("UpstreamCertificate", client_certificate, default=None),
        Key("UpstreamServerName", tls_server_name, default=None),
    ]


def _defaults_keys(directory: Path | None = None) -> list[Key]:
    """``directory``: the configuration directory, which a relative CacheDirectory is in."""
    return _option_keys() + [
        Key("StatisticsURL", url_path, default=None, attr="statistics_url"),
        Key("StatisticsAllow", network, repeatable=True, attr="statistics_allow"),
        *cache_keys(directory),
        Key("Fleet", parse_redis_url, default=None),
        Key("FleetName", fleet_name, default=None),
    ]


def _entry_keys() -> list[Key]:
    return _option_keys() + [
        Key("Match", values.regex(re.IGNORECASE), repeatable=True, required=True),
        Key("Name", entry_name, default=None),
    ]


def _present(section: Section) -> set[str]:
    return {entry.key.lower() for entry in section.entries}


def _entry(section: Section, defaults: dict, balancer_location: Location,
           directory: Path, contexts: ClientContexts) -> EntrySettings:
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
    where = _relative(section.location, directory)
    return EntrySettings(
        location=section.location,
        label=raw["name"] or where,
        name=raw["name"],
        where=where,
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
        panic_threshold=merged["panic_threshold"],
        slow_start=merged["slow_start"],
        max_connections=merged["max_connections"],
        queue_size=merged["queue_size"],
        queue_timeout=merged["queue_timeout"],
        retry_budget=merged["retry_budget"],
        retry_budget_min=merged["retry_budget_min"],
        retry_statuses=merged["retry_on_status"],
        health_check=None if merged["health_check"] is None else HealthCheckSettings(
            merged["health_check"], merged["health_check_interval"],
            merged["health_check_timeout"], merged["health_check_rise"],
            merged["health_check_fall"], merged["health_check_status"]),
        upstream_verify=merged["upstream_verify"],
        upstream_ca_file=merged["upstream_ca_file"],
        upstream_certificate=merged["upstream_certificate"],
        upstream_server_name=merged["upstream_server_name"],
        tls_context=contexts.get(merged["upstream_verify"], merged["upstream_ca_file"],
                                 merged["upstream_certificate"])
        if any(server.tls for server in servers) else None,
    )


def _relative(location: Location, directory: Path) -> str:
    """``file:line`` with the file relative to the configuration directory (when inside
    it), so that moving the directory does not rename the entry's series."""
    path = os.path.abspath(location.file)
    base = os.path.abspath(directory)
    if os.path.commonpath([path, base]) == base:
        path = os.path.relpath(path, base)
    return str(Location(path, location.line))


def _unique_names(sections: list[Section], entries: list[EntrySettings]) -> None:
    """Two entries may not share a Name: it labels their figures."""
    seen: dict[str, Location] = {}
    for section, entry in zip(sections, entries):
        if entry.name is None:
            continue
        location = section.get("Name").location
        first = seen.setdefault(entry.name, location)
        if first is not location:
            raise ConfigError(f"entry name '{entry.name}' is already used at "
                              f"{where_first(first, location)}; give each [PROXY_ENTRY] "
                              "its own Name", location)


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
    settings.fleet = fleet_settings(defaults, config)
    settings.statistics_allow = defaults["statistics_allow"] or list(LOOPBACK)
    settings.cache = cache_settings(defaults, defaults_section)
    sections: list[Section] = []
    contexts = ClientContexts()
    if document is not None:
        sections = document.sections_named(ENTRY)
        settings.entries = [_entry(section, defaults, defaults_location, config.directory,
                                   contexts) for section in sections]
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
            sections.extend(own)
            settings.site_entries[id(site)] = [
                _entry(section, defaults, defaults_location, config.directory, contexts)
                for section in own]
    _unique_names(sections, settings.all_entries())
    return settings
