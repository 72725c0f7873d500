"""Fleet figures: each instance publishes its totals every second, and the statistics
page reads those of the whole fleet.

Worker 0 of each instance publishes, in one script run by Redis (so that every time is
Redis's own clock, whatever the instances' clocks say)::

    SET  monkey:fleet:figures:NAME  JSON  PX 3000
    ZADD monkey:fleet:members  NOW_MS  NAME
    ZREMRANGEBYSCORE monkey:fleet:members -inf NOW_MS-600000

A reader gets every member, its last publication's age and its figures, also in one
script. An instance is *up* while its figures are there (published within their TTL),
*stale* for a while after (it missed publications: stuck, cut off from Redis or stopped
abruptly), then *gone*, and forgotten after ten minutes. An instance that stops
gracefully says so: its last publication is marked ``stopped`` and kept until it is
forgotten, so that the others show it *stopped* at once rather than stale. Totals count
the instances up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..status.report import build_report
from .keys import MEMBERS, figures_key
from .settings import FleetSettings

PUBLISH_SECONDS = 1.0
FIGURES_TTL_MS = 3000
# Seconds since its last publication after which an instance is no longer stale but gone,
# and milliseconds after which it is no longer listed.
GONE_AFTER = 10.0
FORGET_MS = 600_000
COUNTS = ("requests", "responses", "failures", "active")
STATES = ("up", "stale", "stopped", "gone")

PUBLISH = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ARGV[4])
return now
"""
READ = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local found = {now}
for i = 1, #members, 2 do
  found[#found + 1] = members[i]
  found[#found + 1] = members[i + 1]
  found[#found + 1] = redis.call('GET', ARGV[1] .. members[i])
end
return found
"""


@dataclass
class Instance:
    """One instance of the fleet as the reader sees it."""

    name: str
    state: str                 # one of STATES
    age: float                 # seconds since its last publication
    figures: dict | None       # what it published (None once expired)


@dataclass
class FleetView:
    """The fleet for the statistics page: this instance, its links to Redis, and every
    instance's figures (empty, with ``error`` said, when Redis could not be read)."""

    name: str
    redis: str
    links: list[dict]
    instances: list[Instance] = field(default_factory=list)
    error: str | None = None

    @property
    def totals(self) -> dict:
        """The counts of the instances up, summed, with how many there are by state."""
        totals = {name: 0 for name in COUNTS}
        for instance in self.instances:
            if instance.state == "up" and instance.figures is not None:
                for name in COUNTS:
                    value = instance.figures.get(name)
                    totals[name] += value if isinstance(value, int) else 0
        for state in STATES:
            totals[state] = sum(instance.state == state for instance in self.instances)
        return totals


def local_figures(state) -> dict:
    """This instance's totals, summed over its workers from the shared statistics."""
    upstreams = [up for entry in build_report(state).entries for up in entry.upstreams]
    figures = {name: sum(getattr(up, name) for up in upstreams) for name in COUNTS}
    figures.update(workers=state.stats.workers, since=state.stats.since,
                   upstreams=len(upstreams),
                   upstreams_not_up=sum(up.state != "up" for up in upstreams))
    return figures


class FleetFigures:
    """In each worker: reads the fleet's figures; in worker 0, also publishes them."""

    def __init__(self, proxy, settings: FleetSettings, publishing: bool) -> None:
        self.proxy = proxy
        self.loop = proxy.loop
        self.settings = settings
        self.client = proxy.fleet.client(settings.redis)
        self.timer = None
        if publishing:
            self.timer = self.loop.call_later(PUBLISH_SECONDS, self._publish)

    def _publish(self) -> None:
        self.timer = self.loop.call_later(PUBLISH_SECONDS, self._publish)
        if not self.client.up:
            return  # nobody would see them; Redis's state says why
        self._send(local_figures(self.proxy.state), FIGURES_TTL_MS)

    def _send(self, figures: dict, ttl_ms: int) -> None:
        """Publish ``figures``, kept ``ttl_ms`` in Redis."""
        name = self.settings.name
        self.client.command("EVAL", PUBLISH, 2, MEMBERS, figures_key(name), name,
                            json.dumps(figures), ttl_ms, FORGET_MS)

    def stop(self) -> None:
        if self.timer is not None:
            self.loop.cancel(self.timer)
            self.timer = None

    def leave(self) -> None:
        """The instance is stopping gracefully: the publisher's last publication says so
        (kept until the fleet forgets the instance), and no other follows it."""
        if self.timer is None:
            return  # not the publisher
        self.stop()
        if not self.client.up:
            return  # the others will see it stale, then gone
        self._send({**local_figures(self.proxy.state), "stopped": True}, FORGET_MS)

    def read(self, callback) -> None:
        """``callback(view)`` with the fleet's :class:`FleetView`, soon (never from
        inside this call): at most Redis's command timeout later."""
        links = [{"role": link.role, **link.state.as_dict()}
                 for link in self.proxy.fleet.links()]
        view = FleetView(self.settings.name, str(self.settings.redis), links)

        def got(reply, error) -> None:
            if error is not None:
                view.error = f"the fleet's figures could not be read: {error}"
            else:
                view.instances = instances_from(reply)
            callback(view)

        self.client.command("EVAL", READ, 1, MEMBERS, figures_key(""), callback=got)


def instances_from(reply: list) -> list[Instance]:
    """The instances in the reply of the READ script: Redis's time in ms, then each
    member's name, score (its last publication) and figures (JSON, or None)."""
    now_ms = reply[0]
    found = []
    for at in range(1, len(reply) - 2, 3):
        name = reply[at].decode("utf-8", "replace")
        age = max(0.0, (now_ms - float(reply[at + 1])) / 1000)
        figures = None
        if reply[at + 2] is not None:
            try:
                figures = json.loads(reply[at + 2])
            except ValueError:
                figures = None
        if figures is not None and figures.get("stopped") is True:
            state = "stopped"
        elif figures is not None and age <= FIGURES_TTL_MS / 1000:
            state = "up"
        else:
            state = "stale" if age <= GONE_AFTER else "gone"
        found.append(Instance(name, state, round(age, 3), figures))
    return found
