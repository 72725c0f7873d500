"""The response cache's store settings: the ``Cache*`` keys of ``[PROXY_DEFAULTS]``
(docs/proxy_cache.md), read and checked at start. Whether an entry caches is its own
``Cache`` key, read with the entry's other keys (proxy_reverse.settings)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from monkey_py.config import ConfigError, Key, Location
from monkey_py.config import values

from ..fleet.address import RedisAddress, parse_redis_url
from ..values import LOOPBACK, megabytes, megabytes_or_off, network, targeted_fields


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
    # CacheStore redis://...: where the shared store is (docs/fleet.md).
    redis: RedisAddress | None = None
    # CacheMemoryTier: bytes of the memory tier in front of Redis (0: none).
    memory_tier: int = 0
    # CacheRedisMaxObjectSize: the largest body sent to Redis.
    redis_max_object: int = 512 * 1024


def cache_store(value: str, location: Location) -> str | RedisAddress:
    """``memory``, ``disk``, or the URL of a Redis (a RedisAddress)."""
    lowered = value.lower()
    if lowered in ("memory", "disk"):
        return lowered
    if "://" in value:
        return parse_redis_url(value, location)
    raise ConfigError(f"'{value}' is not valid; valid values: memory, disk, "
                      "redis://HOST:PORT/DB (see docs/fleet.md)", location)


def cache_keys(directory: Path | None) -> list[Key]:
    """The store's keys; ``directory``: the configuration directory, which a relative
    CacheDirectory is in."""
    return [
        Key("CacheStore", cache_store, default="memory"),
        Key("CacheDirectory", values.path(directory), default=None),
        Key("CacheMaxSize", megabytes, default=64 * 1024 * 1024),
        Key("CacheMaxObjectSize", values.size_kb, default=1024 * 1024),
        Key("CachePurgeAllow", network, repeatable=True),
        Key("CacheSkipSetCookie", values.boolean, default=False),
        Key("CacheTargetedFields", targeted_fields, default=(b"cdn-cache-control",)),
        Key("CacheMemoryTier", megabytes_or_off, default=0),
        Key("CacheRedisMaxObjectSize", values.size_kb, default=512 * 1024),
    ]


def cache_settings(defaults: dict, defaults_section) -> CacheSettings:
    """The store's settings from ``[PROXY_DEFAULTS]``' values (``defaults``), checked
    against its lines (``defaults_section``, None without the section)."""
    store = defaults["cache_store"]
    redis = None
    if isinstance(store, RedisAddress):
        store, redis = "redis", store
    settings = CacheSettings(
        store, defaults["cache_directory"], defaults["cache_max_size"],
        defaults["cache_max_object_size"], defaults["cache_purge_allow"] or list(LOOPBACK),
        skip_set_cookie=defaults["cache_skip_set_cookie"],
        targeted_fields=defaults["cache_targeted_fields"], redis=redis,
        memory_tier=defaults["cache_memory_tier"],
        redis_max_object=defaults["cache_redis_max_object_size"])
    if defaults_section is not None:
        _cache_directory(settings.store, settings.directory, defaults_section)
        _redis_keys(settings.store, defaults_section)
        line = defaults_section.get("CacheDirectory")
        settings.directory_location = line.location if line is not None else None
    return settings


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


def _redis_keys(store: str, defaults_section) -> None:
    """The Redis store's own keys mean nothing to another store: say so at start."""
    if store == "redis":
        return
    for name in ("CacheMemoryTier", "CacheRedisMaxObjectSize"):
        line = defaults_section.get(name)
        if line is not None:
            raise ConfigError(f"{name} applies to a Redis cache store only (CacheStore "
                              f"redis://HOST:PORT/DB); this one is '{store}'", line.location)
