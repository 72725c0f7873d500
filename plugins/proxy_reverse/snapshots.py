"""The figures a reader gets from the shared statistics (stats.py): each upstream's and
each entry's, summed over the workers, as the status page's formats show them."""

from __future__ import annotations

from dataclasses import dataclass

from .latency import quantile


@dataclass
class UpstreamSnapshot:
    """One upstream's figures summed over the workers.

    ``requests`` counts the requests sent to it that got a response or failed before
    one; ``failures`` counts every failed attempt, also those that broke off in the
    middle of a response. ``status_classes`` counts the responses of each class, 1xx to
    5xx; ``bytes_in`` and ``bytes_out`` are what it sent and was sent (heads and bodies).
    ``latency_counts`` is cumulative, one count per bound of ``LATENCY_BUCKETS`` and
    then the total, since the start; ``recent_latency_counts`` the same over the last
    minute (60 to 70 seconds), which the quantiles are read from; the per-second lists run oldest first and end with the last
    completed second (``latency_per_second``: the seconds its responses took, summed).
    """

    entry: str
    name: str
    backup: bool
    workers: int
    requests: int
    responses: int
    failures: int
    active: int
    latency_sum: float
    latency_counts: list[int]
    recent_latency_counts: list[int]
    offline_workers: int
    offline_for: float
    last_error: str
    last_error_age: float | None
    requests_per_second: list[int]
    failures_per_second: list[int]
    status_classes: list[int]
    bytes_in: int
    bytes_out: int
    errors_per_second: list[int]
    responses_per_second: list[int]
    latency_per_second: list[float]
    # Seconds since the last worker took it offline, and since every worker last had it
    # back (or since the counting began).
    offline_age: float
    online_age: float
    # The lowest share of its weight any worker gives it: 0 where it is offline, less
    # than 1 during a slow start.
    weight_share: float = 1.0
    # Its configured weight, and its health check's figures (None: no check); the
    # report fills them in.
    weight: int = 1
    check: object = None

    @property
    def state(self) -> str:
        """``down`` (its health check fails), else ``up``, ``offline`` (in every worker)
        or ``partly offline``."""
        if self.check is not None and self.check.state == "down":
            return "down"
        if not self.offline_workers:
            return "up"
        return "offline" if self.offline_workers >= self.workers else "partly offline"

    @property
    def state_age(self) -> float | None:
        """Seconds in ``state``: since its health check's verdict changed, or since it
        went (partly) offline, or came back up (None: not known)."""
        check = self.check
        checked_age = None if check is None else check.state_age
        state = self.state
        if state == "down":
            return checked_age
        if state != "up":
            return self.offline_age
        return self.online_age if checked_age is None else min(self.online_age, checked_age)

    @property
    def mean_latency(self) -> float | None:
        """Mean seconds from the start of an attempt to the response head."""
        return self.latency_sum / self.responses if self.responses else None

    def latency_quantile(self, q: float) -> float | None:
        """The ``q`` quantile of the seconds to the response head over the last minute,
        from the histogram (None: no response in that time)."""
        return quantile(self.recent_latency_counts, q)


@dataclass
class EntrySnapshot:
    """One entry's queue and retry figures summed over the workers."""

    label: str
    waiting: int
    queue_full: int
    queue_timeouts: int
    retries: int
    retries_denied: int
    panic_workers: int
