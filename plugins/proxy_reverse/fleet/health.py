"""Passive health shared by the fleet, in one worker.

A server this worker takes offline after failures is published: ``SET
monkey:fleet:offline:SERVER`` with a TTL equal to the offline time left (so that an
instance starting later finds it) and a message on ``monkey:fleet:health`` (so that
every worker of every instance skips it at once). A server that answers before its
offline time is over is published back online (the key deleted, a message sent). Marks
from elsewhere go through :meth:`Upstream.hold_offline`, so the safety rules hold for
them too: a sole server is never taken offline, and the panic threshold still applies.

Whenever both links come up (at start, after an outage) the worker reads the marks
set meanwhile and publishes its own. While Redis is down, health is local. Results of
active health checks ride on the same channel; :mod:`.checks` handles them.
"""

from __future__ import annotations

import json
import logging
import os

from .keys import HEALTH_CHANNEL, offline_key, server_id

log = logging.getLogger("monkey_py.proxy_reverse.fleet")


class FleetHealth:
    """This worker's share of the fleet's passive health."""

    def __init__(self, proxy, settings, announce: bool) -> None:
        """``proxy``: the ProxyWorker; ``settings``: FleetSettings; ``announce``: log the
        marks received (one worker per instance does, so that each is logged once)."""
        self.proxy = proxy
        self.loop = proxy.loop
        self.announce = announce
        # Who sends: the instance and this worker, so that a worker skips its own.
        self.me = f"{settings.name}/{os.getpid()}"
        self.name = settings.name
        self.servers: dict[str, list] = {}
        for upstream in proxy.state.upstreams():
            self.servers.setdefault(server_id(upstream), []).append(upstream)
        # Results of active checks go to this (worker 0's FleetChecks), if set.
        self.checks = None
        self.client = proxy.fleet.client(settings.redis)
        self.events = proxy.fleet.subscriber(settings.redis)
        self.events.subscribe(HEALTH_CHANNEL, self._message)
        self.client.watch(self._link_changed)
        self.events.watch(self._link_changed)

    # -- this worker's marks ------------------------------------------------------------
    def taken_offline(self, upstream) -> None:
        """``upstream`` went offline here after failures: tell the fleet."""
        left_ms = int((upstream.passive_until - self.loop.now) * 1000)
        if left_ms > 0:
            self._publish_offline(server_id(upstream), left_ms)

    def back_online(self, upstream) -> None:
        """``upstream`` answered before its offline time was over: tell the fleet."""
        server = server_id(upstream)
        self.client.command("DEL", offline_key(server))
        self.publish({"kind": "online", "server": server})

    def publish(self, message: dict) -> None:
        """Send ``message`` (with ``from`` added) to every worker of the fleet."""
        message["from"] = self.me
        self.client.command("PUBLISH", HEALTH_CHANNEL, json.dumps(message))

    def _publish_offline(self, server: str, left_ms: int) -> None:
        self.client.command("SET", offline_key(server), self.name, "PX", left_ms)
        self.publish({"kind": "offline", "server": server, "ms": left_ms})

    # -- the fleet's marks --------------------------------------------------------------
    def _message(self, channel: bytes, data: bytes) -> None:
        try:
            message = json.loads(data)
            kind, sender, server = message["kind"], message["from"], message["server"]
        except (ValueError, KeyError, TypeError):
            log.warning("redis: a message on %s that is not a health event: %r",
                        HEALTH_CHANNEL, data[:200])
            return
        if sender == self.me or server not in self.servers:
            return
        instance = sender.rpartition("/")[0]
        if kind == "offline":
            self._hold(server, message.get("ms"), instance)
        elif kind == "online":
            self._release(server, instance)
        elif kind == "check" and self.checks is not None:
            self.checks.received(server, message)

    def _hold(self, server: str, left_ms, instance: str) -> None:
        if not isinstance(left_ms, int) or left_ms <= 0:
            return
        now = self.loop.now
        stats = self.proxy.state.stats
        for upstream in self.servers[server]:
            if upstream.hold_offline(now + left_ms / 1000):
                stats.offline(upstream.slot, upstream.passive_until)
                if self.announce:
                    log.warning("upstream %s is offline for %gs: %s took it offline",
                                upstream.name, left_ms / 1000, instance)

    def _release(self, server: str, instance: str) -> None:
        now = self.loop.now
        stats = self.proxy.state.stats
        for upstream in self.servers[server]:
            if upstream.passive_until > now:
                upstream.succeeded(now)
                stats.offline(upstream.slot, 0.0)
                if self.announce:
                    log.info("upstream %s is back online: it answered %s", upstream.name,
                             instance)

    # -- resynchronising ----------------------------------------------------------------
    def _link_changed(self, up: bool) -> None:
        if up and self.client.up and self.events.up:
            self.resync()

    def resync(self) -> None:
        """Read the marks set while this worker was not listening, publish its own."""
        servers = list(self.servers)
        self.client.pipeline(
            [(verb, offline_key(server)) for server in servers for verb in ("PTTL", "GET")],
            lambda replies, error: self._read(servers, replies, error))
        now = self.loop.now
        for server, upstreams in self.servers.items():
            left_ms = int((max(u.passive_until for u in upstreams) - now) * 1000)
            if left_ms > 0:
                self._publish_offline(server, left_ms)
        if self.checks is not None:
            self.checks.resync()

    def _read(self, servers: list[str], replies, error) -> None:
        if replies is None:
            return  # Redis went down again: the next time it is up reads them
        for server, left_ms, holder in zip(servers, replies[::2], replies[1::2]):
            if isinstance(left_ms, int) and left_ms > 0 and isinstance(holder, bytes):
                self._hold(server, left_ms, holder.decode("utf-8", "replace"))
