"""Which of an entry's servers a worker uses now, and with what weight.

The request path reads one deadline per request (``review_at``) and one flag per pick
(``panic``); everything else happens here, when something changed: a server went
offline or came back, a passive offline time ran out, a slow start moves a step.

- **Panic mode** (Envoy's healthy panic threshold): when fewer than ``PanicThreshold``
  per cent of the primary servers are online and no backup server is online, the
  proxy stops believing its health marks and uses every primary server. A failure
  that is not the servers' (or a health check that is wrong) then cannot leave a
  handful of servers with all the load, or none at all.
- **Slow start**: a server that comes back is given ``1/SLOW_START_STEPS`` of its
  weight, then one step more every ``SlowStart / SLOW_START_STEPS`` seconds. While a
  server warms up every weight is scaled by ``SLOW_START_STEPS`` (balancers' weights
  are relative), so a server of weight 1 can be given a tenth of its share.

The balancer is told the servers to balance over (``Balancer.set_available``) only
when that set or a weight changes.
"""

from __future__ import annotations

from math import inf

from monkey_py_plugins.balancers.base import Balancer, Server

SLOW_START_STEPS = 10


class Availability:
    """The servers of one entry this worker uses now, told to its balancer."""

    def __init__(self, balancer: Balancer, primaries: list, backups: list,
                 panic_threshold: int, slow_start: float) -> None:
        self.balancer = balancer
        self.primaries = primaries
        self.backups = backups
        self.panic_threshold = panic_threshold
        self.slow_start = slow_start
        # The first loop.now at which the set must be looked at again.
        self.review_at = inf
        # Panic mode: every primary server is used, offline or not.
        self.panic = False
        # What the balancer was last told.
        self.offered: tuple[Server, ...] = balancer.servers
        for upstream in primaries + backups:
            upstream.availability = self

    def changed(self) -> None:
        """A server went offline or came back: look again at the next request."""
        self.review_at = 0.0

    def review(self, now: float) -> None:
        """Work out the servers to use at ``now`` and tell the balancer if they changed."""
        primaries = self.primaries
        online = [upstream for upstream in primaries if upstream.offline_until <= now]
        backup_online = any(upstream.offline_until <= now for upstream in self.backups)
        self.panic = (len(online) * 100 < self.panic_threshold * len(primaries)
                      and not backup_online)
        # Next: when an offline time runs out (an infinite one never does).
        review_at = inf
        for upstream in primaries + self.backups:
            if now < upstream.offline_until < review_at:
                review_at = upstream.offline_until
        if self.panic or not online:
            # Nothing left to choose from: the balancer orders them all, and the
            # proxy picks among them (every one in panic mode; see Forward).
            offered = self.balancer.servers
            self._shares(primaries if self.panic else [], {}, now)
        else:
            offered, step_at = self._weighted(online, now)
            review_at = min(review_at, step_at)
        self.review_at = review_at
        if offered != self.offered:
            self.offered = offered
            self.balancer.set_available(offered)

    def _weighted(self, online: list, now: float) -> tuple[tuple[Server, ...], float]:
        """The online servers with their weights, and when a slow start next moves."""
        slow_start = self.slow_start
        steps = {}
        step_at = inf
        if slow_start:
            for upstream in online:
                warmed = now - upstream.back_at
                if upstream.back_at and 0 <= warmed < slow_start:
                    step = int(warmed * SLOW_START_STEPS / slow_start) + 1
                    steps[upstream] = step
                    step_at = min(step_at, upstream.back_at + step * slow_start
                                  / SLOW_START_STEPS)
        self._shares(online, steps, now)
        if not steps:
            return tuple(upstream.server for upstream in online), step_at
        return tuple(Server(upstream.server.index, upstream.name,
                            upstream.server.weight * steps.get(upstream, SLOW_START_STEPS))
                     for upstream in online), step_at

    def _shares(self, used: list, steps: dict, now: float) -> None:
        """Publish each server's share of its weight for the statistics: 0 while it is
        not used, a fraction while it warms up, else 1."""
        used = set(used)
        for upstream in self.primaries:
            upstream.tally.weight_share = (
                steps.get(upstream, SLOW_START_STEPS) / SLOW_START_STEPS
                if upstream in used else 0.0)
        for upstream in self.backups:
            upstream.tally.weight_share = 1.0 if upstream.offline_until <= now else 0.0
