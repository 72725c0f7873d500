"""The cache's part that every worker shares, made in the master before the fork:
the figures, the invalidation log of memory stores, and the disk store."""

from __future__ import annotations

import logging
import os

from monkey_py.config import ConfigError

from .figures import CacheStats
from .stores.disk import DiskStore
from .stores.trouble import probe
from .sync import InvalidationLog

log = logging.getLogger("monkey_py.proxy_reverse")


class CacheState:
    """What the workers share, made before the fork: figures, the invalidation log for
    memory stores, and the disk store."""

    def __init__(self, settings, entries: list, workers: int) -> None:
        cache = settings.cache
        self.settings = cache
        self.slots = {id(entry): slot for slot, entry in enumerate(entries)}
        # A Redis store's size here is its memory tier's (Redis reports its own).
        self.stats = CacheStats([entry.label for entry in entries], workers, cache.store,
                                cache.memory_tier if cache.redis else cache.max_bytes)
        self.log = (InvalidationLog(workers) if cache.store == "memory" and workers > 1
                    else None)
        self.disk: DiskStore | None = None
        if cache.store == "disk":
            try:
                self.disk = DiskStore(str(cache.directory), cache.max_bytes,
                                      cache.max_object)
            except ValueError as exc:
                raise ConfigError(str(exc), cache.directory_location) from None
            self._probe(str(cache.directory))

    @staticmethod
    def _probe(directory: str) -> None:
        """Say at start what a directory that cannot be written means (the start-up
        check of CacheDirectory passes a read-only directory as root)."""
        trouble = probe(directory)
        if trouble is not None:
            log.error("cache directory %s: cannot create a file (%s); responses are not "
                      "stored until this is repaired", directory, trouble.strerror)
        locks = os.path.join(directory, ".locks")
        trouble = probe(locks)
        if trouble is not None:
            log.error("cache directory %s: cannot create lock files (%s); collapsing across "
                      "workers is off: requests for the same resource collapse within each "
                      "worker only", locks, trouble.strerror)

    @classmethod
    def create(cls, settings, entries: list, workers: int) -> CacheState | None:
        """The shared state, or None when no entry caches anywhere."""
        return cls(settings, entries, workers) if settings.cache_anywhere() else None
