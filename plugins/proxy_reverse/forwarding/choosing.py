"""Choosing the server for the next attempt of a request: the balancer's order, then the
backups; offline servers skipped (unless the entry is in panic mode), this server itself
passed over when the request would come back to it.

``Choosing`` is the part of a :class:`~.forward.Forward` that does this; it keeps its
state in the Forward's slots (``servers``, ``backups``, ``skipped``, ``looping``).
"""

from __future__ import annotations

from math import inf


class Choosing:
    """Server choice, for Forward."""

    __slots__ = ()

    def _pick(self):
        """The next candidate that is usable now, or None: the balancer's order (the
        common case decided inline), then the backups."""
        entry = self.entry
        cutoff = inf if entry.availability.panic else self.loop.now
        if self.backups is None:
            primaries = entry.primaries
            for server in self.servers:
                upstream = primaries[server.index]
                if upstream.offline_until <= cutoff and not upstream.itself:
                    return upstream
                if self._usable(upstream, cutoff):
                    return upstream
            self._primaries_done()
        for upstream in self.backups:
            if self._usable(upstream, cutoff):
                return upstream
        return None

    def _usable(self, upstream, cutoff: float) -> bool:
        """Whether ``upstream`` may be tried now; if not, note why: it is this server
        itself (looping) or offline (skipped)."""
        if upstream.itself and self.proxy.loops_back(self.req, upstream):
            self.looping = True
        elif upstream.offline_until > cutoff:
            self.skipped = True
        else:
            return True
        return False

    def _primaries_done(self) -> None:
        """The balancer's order is used up: the backups are next."""
        if self.upstream is None and not (self.skipped or self.looping):
            self.proxy.named_nothing(self.entry, self.req)
        self.backups = iter(self.entry.backups)

    def _soonest(self):
        """With every server offline: the one whose offline time ends first (None when
        every server left is this one itself)."""
        req = self.req
        entry = self.entry
        usable = [upstream for upstream in entry.primaries + entry.backups
                  if not (upstream.itself and self.proxy.loops_back(req, upstream))]
        return min(usable, key=lambda upstream: upstream.offline_until, default=None)

