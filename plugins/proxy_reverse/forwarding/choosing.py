"""Choosing the server for the next attempt of a request: the balancer's order, then the
backups; offline servers skipped (unless the entry is in panic mode), busy ones waited
for, this server itself passed over when the request would come back to it.

``Choosing`` is the part of a :class:`~.forward.Forward` that does this; it keeps its
state in the Forward's slots (``servers``, ``backups``, ``skipped``, ``full``,
``looping``, ``waiting``).
"""

from __future__ import annotations

from math import inf


class Choosing:
    """Server choice and waiting in the queue, for Forward."""

    __slots__ = ()

    def _pick(self):
        """The next candidate that is usable now, or None: the balancer's order (the
        common case decided inline), then the backups."""
        entry = self.entry
        cutoff = inf if entry.availability.panic else self.loop.now
        limited = entry.queue is not None
        if self.backups is None:
            primaries = entry.primaries
            for server in self.servers:
                upstream = primaries[server.index]
                if upstream.offline_until <= cutoff and not (upstream.itself or limited):
                    return upstream
                if self._usable(upstream, cutoff, limited):
                    return upstream
            self._primaries_done()
        for upstream in self.backups:
            if self._usable(upstream, cutoff, limited):
                return upstream
        return None

    def _usable(self, upstream, cutoff: float, limited: bool) -> bool:
        """Whether ``upstream`` may be tried now; if not, note why: it is this server
        itself (looping), offline (skipped) or at MaxConnections (full)."""
        if upstream.itself and self.proxy.loops_back(self.req, upstream):
            self.looping = True
        elif upstream.offline_until > cutoff:
            self.skipped = True
        elif limited and upstream.tally.active >= upstream.max_conns:
            if self.full is None:
                self.full = []
            self.full.append(upstream)
        else:
            return True
        return False

    def _primaries_done(self) -> None:
        """The balancer's order is used up: the backups are next, unless a primary is
        only busy (backups stand in for primaries that failed or are offline, not for
        busy ones: the request waits for a busy one instead)."""
        if self.upstream is None and not (self.skipped or self.looping or self.full):
            self.proxy.named_nothing(self.entry, self.req)
        self.backups = iter(() if self.full else self.entry.backups)

    def _soonest(self):
        """With every server offline: the one whose offline time ends first (None when
        every server left is this one itself)."""
        req = self.req
        entry = self.entry
        usable = [upstream for upstream in entry.primaries + entry.backups
                  if not (upstream.itself and self.proxy.loops_back(req, upstream))]
        return min(usable, key=lambda upstream: upstream.offline_until, default=None)

    # -- the queue ----------------------------------------------------------------------
    def _wait(self) -> None:
        """Every server this request may use is busy: queue it, or answer 503."""
        if not self.entry.queue.add(self):
            self._answer(503, "Every upstream server is busy and too many requests wait "
                         "already; try again later.")

    def free_upstream(self):
        """A busy server this request waits for that has room now, or None."""
        cutoff = inf if self.entry.availability.panic else self.loop.now
        for upstream in self.full:
            if upstream.tally.active < upstream.max_conns and upstream.offline_until <= cutoff:
                return upstream
        return None

    def dequeued(self, upstream) -> None:
        """The queue gives this request ``upstream``: the others stay its fallback."""
        self.full.remove(upstream)
        self._attempt(upstream, fresh=False)

    def queue_expired(self) -> None:
        """No server had room within QueueTimeout."""
        self.entry.queue.expired(self)
        self._answer(503, "No upstream server had room for this request in time; "
                     "try again later.")
