"""Active health checks shared by the fleet, in the worker that runs the checks.

Before each check of a server, the checker takes the server's lease: ``SET
monkey:fleet:lease:SERVER NAME NX PX INTERVAL``. The instance that gets it checks; the
others skip this interval. The lease lasts one interval, so the fleet checks each server
about once per interval, and when the instance holding it stops, another takes it
within an interval of its end. When Redis does not answer the lease, the instance
checks itself (health is then local).

Each result is published on ``monkey:fleet:health`` and recorded by every instance's
checker as if it had made the check, so the runs of passed and failed checks, and thus
the verdicts, are the fleet's. While the verdict is down, the checking instance keeps
``monkey:fleet:down:SERVER`` set (TTL: two intervals and a timeout, renewed by each
check), which an instance starting, or back after an outage, takes as the verdict.
"""

from __future__ import annotations

from ..forwarding.health_board import DOWN, RESULTS
from .health import log
from .keys import down_key, lease_key, server_id


class FleetChecks:
    """The link between worker 0's HealthChecker and the fleet's Redis."""

    def __init__(self, health, checker, board) -> None:
        """``health``: this worker's FleetHealth (its links and channel)."""
        self.health = health
        self.client = health.client
        self.checker = checker
        self.board = board
        self.servers: dict[str, list] = {}
        for upstream in checker.upstreams:
            self.servers.setdefault(server_id(upstream), []).append(upstream)
        health.checks = self
        checker.fleet = self

    def lease(self, upstream, run, skip) -> None:
        """``run(upstream)`` if this instance checks it this interval, else ``skip(upstream)``."""
        check = upstream.entry.health_check

        def leased(reply, error) -> None:
            # OK: ours; None: another instance holds it; an error: check here.
            (skip if reply is None and error is None else run)(upstream)

        self.client.command("SET", lease_key(server_id(upstream)), self.health.name, "NX",
                            "PX", max(1, int(check.interval * 1000)), callback=leased)

    def checked(self, upstream, result: int, detail: int) -> None:
        """A check made here: publish its result and the verdict."""
        server = server_id(upstream)
        self.health.publish({"kind": "check", "server": server, "result": result,
                             "detail": detail})
        if self.board.verdict(upstream.slot) == DOWN:
            check = upstream.entry.health_check
            ttl_ms = int((2 * check.interval + check.timeout) * 1000)
            self.client.command("SET", down_key(server), self.health.name, "PX", ttl_ms)
        else:
            self.client.command("DEL", down_key(server))

    def received(self, server: str, message: dict) -> None:
        """A check made by another instance: counted here as well."""
        result, detail = message.get("result"), message.get("detail")
        if not (isinstance(result, int) and result in RESULTS and isinstance(detail, int)):
            return
        for upstream in self.servers.get(server, ()):
            self.checker.record(upstream, result, detail)

    def resync(self) -> None:
        """Take the fleet's down verdicts, set while this instance was not listening."""
        servers = list(self.servers)
        self.client.pipeline([("EXISTS", down_key(server)) for server in servers],
                             lambda replies, error: self._read(servers, replies))

    def _read(self, servers: list[str], replies) -> None:
        if replies is None:
            return
        for server, found in zip(servers, replies):
            if found != 1:
                continue
            for upstream in self.servers[server]:
                if self.board.hold_down(upstream.slot, upstream.entry.health_check.fall):
                    log.warning("upstream %s is down: the fleet's health checks hold it "
                                "down", upstream.name)
