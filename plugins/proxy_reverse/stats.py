"""Upstream statistics shared by all workers.

Each worker writes only its own row of int64 counters in shared memory (one writer per
slot, so no lock); a reader sums the rows. Created in the master before the fork.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from monkey_py_plugins.balancers.base import SharedMemory

# Counters per (worker, upstream).
REQUESTS, FAILURES, ACTIVE, LATENCY_US, RESPONSES, OFFLINE_UNTIL_MS, LAST_ERROR_MS, \
    LAST_ERROR = range(8)
FIELDS = 8
# What went wrong last, as a code every worker can write.
ERRORS = ("", "connection refused", "timed out", "connection closed", "invalid response",
          "other error")


def error_code(reason: str) -> int:
    lowered = reason.lower()
    if "refused" in lowered:
        return 1
    if "timed out" in lowered:
        return 2
    if "closed" in lowered or "reset" in lowered or "broken pipe" in lowered:
        return 3
    if "invalid" in lowered:
        return 4
    return 5


@dataclass
class UpstreamSnapshot:
    """One upstream's figures summed over the workers."""

    entry: str
    name: str
    backup: bool
    requests: int
    failures: int
    active: int
    responses: int
    mean_latency_ms: float
    offline_for: float
    last_error: str
    last_error_age: float | None

    @property
    def state(self) -> str:
        return "offline" if self.offline_for > 0 else "up"


class ProxyStats:
    def __init__(self, labels: list[tuple[str, str, bool]], workers: int) -> None:
        """``labels``: (entry, upstream name, backup) for each statistics slot."""
        self.labels = labels
        self.workers = workers
        self.shared = SharedMemory(max(1, len(labels) * FIELDS * workers))
        self.row = 0

    def worker_started(self, index: int) -> None:
        """A new worker starts from zero in its row (a replaced one leaves no counts)."""
        self.row = index * len(self.labels) * FIELDS
        slots = self.shared.slots
        for i in range(self.row, self.row + len(self.labels) * FIELDS):
            slots[i] = 0

    def _base(self, slot: int) -> int:
        return self.row + slot * FIELDS

    def opened(self, slot: int) -> None:
        self.shared.slots[self._base(slot) + ACTIVE] += 1

    def closed(self, slot: int) -> None:
        self.shared.slots[self._base(slot) + ACTIVE] -= 1

    def responded(self, slot: int, latency: float) -> None:
        base = self._base(slot)
        slots = self.shared.slots
        slots[base + REQUESTS] += 1
        slots[base + RESPONSES] += 1
        slots[base + LATENCY_US] += int(latency * 1e6)

    def failed(self, slot: int, reason: str, offline_until: float) -> None:
        """``offline_until``: monotonic time the upstream stays offline until (0: online)."""
        base = self._base(slot)
        slots = self.shared.slots
        now_ms = int(time.time() * 1000)
        slots[base + REQUESTS] += 1
        slots[base + FAILURES] += 1
        slots[base + LAST_ERROR_MS] = now_ms
        slots[base + LAST_ERROR] = error_code(reason)
        if offline_until:
            slots[base + OFFLINE_UNTIL_MS] = now_ms + int((offline_until - time.monotonic()) * 1000)

    def snapshot(self) -> list[UpstreamSnapshot]:
        slots = self.shared.slots
        now_ms = int(time.time() * 1000)
        stride = len(self.labels) * FIELDS
        result = []
        for slot, (entry, name, backup) in enumerate(self.labels):
            sums = [0] * FIELDS
            last_error_ms = last_error = offline_until = 0
            for worker in range(self.workers):
                base = worker * stride + slot * FIELDS
                for field in (REQUESTS, FAILURES, ACTIVE, LATENCY_US, RESPONSES):
                    sums[field] += slots[base + field]
                offline_until = max(offline_until, slots[base + OFFLINE_UNTIL_MS])
                if slots[base + LAST_ERROR_MS] > last_error_ms:
                    last_error_ms = slots[base + LAST_ERROR_MS]
                    last_error = slots[base + LAST_ERROR]
            responses = sums[RESPONSES]
            result.append(UpstreamSnapshot(
                entry=entry, name=name, backup=backup,
                requests=sums[REQUESTS], failures=sums[FAILURES], active=sums[ACTIVE],
                responses=responses,
                mean_latency_ms=sums[LATENCY_US] / responses / 1000 if responses else 0.0,
                offline_for=max(0.0, (offline_until - now_ms) / 1000),
                last_error=ERRORS[last_error] if last_error < len(ERRORS) else "",
                last_error_age=(now_ms - last_error_ms) / 1000 if last_error_ms else None,
            ))
        return result
