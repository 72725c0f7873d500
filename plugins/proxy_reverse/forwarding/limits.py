"""What bounds the load the proxy puts on its servers, per entry and per worker.

- **The queue** (HAProxy's ``maxconn`` and ``queue``): when every server a request may
  use has ``MaxConnections`` requests in progress, the request waits, first come
  first served, for one of them to finish; at most ``QueueSize`` requests wait, each
  for at most ``QueueTimeout`` seconds. A request that finds the queue full, or
  waits too long, gets 503.
- **The retry budget** (Envoy's ``retry_budget``): at most ``RetryBudget`` per cent of
  the requests in progress (and never fewer than ``RetryBudgetMin``) may be on a
  second or later attempt at once. During an outage, failing requests then cannot
  multiply the load on the servers left; the requests over budget get their error
  at once.

Both count what one worker does: the queue holds the worker's own requests, and the
servers' connections are the worker's (``Tally.active``).
"""

from __future__ import annotations

import logging
from collections import deque

from .throttled_log import ThrottledLog

log = logging.getLogger("monkey_py.proxy_reverse")


class EntryQueue:
    """The requests of one entry waiting for a server below its MaxConnections.

    A waiting request is a ``Forward``: ``free_upstream()`` names a server it may use
    now (or None), ``dequeued(upstream)`` sends it there, ``queue_expired()`` answers
    it after ``QueueTimeout``.
    """

    def __init__(self, loop, label: str, size: int, timeout: float,
                 notices: ThrottledLog) -> None:
        self.loop = loop
        self.label = label
        self.size = size
        self.timeout = timeout
        self.notices = notices
        self.waiting: deque = deque()
        self.dispatching = False
        self.tally = None             # the entry's EntryTally, set in each worker

    def add(self, forward) -> bool:
        """Queue ``forward``; False (counted and logged) when the queue is full."""
        now = self.loop.now
        if len(self.waiting) >= self.size:
            self.tally.queue_full += 1
            self.notices.error((self.label, "queue full"), now,
                               "entry %s: every server is at MaxConnections and %d "
                               "request(s) wait already; answering 503", self.label,
                               len(self.waiting))
            return False
        forward.waiting = self.loop.call_at(now + self.timeout, forward.queue_expired)
        self.waiting.append(forward)
        self.tally.waiting = len(self.waiting)
        return True

    def remove(self, forward) -> None:
        """Take ``forward`` out (it is answered or gone) and stop its timer (cancelling
        a timer that has fired does nothing)."""
        self.loop.cancel(forward.waiting)
        forward.waiting = None
        try:
            self.waiting.remove(forward)
        except ValueError:
            pass
        self.tally.waiting = len(self.waiting)

    def expired(self, forward) -> None:
        """``forward`` waited ``QueueTimeout``: counted and logged; it answers itself."""
        self.remove(forward)
        self.tally.queue_timeouts += 1
        self.notices.error((self.label, "queue timeout"), self.loop.now,
                           "entry %s: a request waited %gs for a server below "
                           "MaxConnections; answering 503", self.label, self.timeout)

    def slot_freed(self) -> None:
        """A connection of this entry ended: the waiting requests look again, soon."""
        if self.waiting and not self.dispatching:
            self.dispatching = True
            self.loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        """Send the waiting requests, oldest first, to the servers that have room."""
        self.dispatching = False
        for forward in list(self.waiting):
            upstream = forward.free_upstream()
            if upstream is not None:
                self.remove(forward)
                forward.dequeued(upstream)


class RetryBudget:
    """How many of an entry's requests may be retrying at once, in this worker."""

    def __init__(self, percent: int, minimum: int, upstreams: list) -> None:
        self.percent = percent
        self.minimum = minimum
        self.upstreams = upstreams
        self.retrying = 0             # requests past their first attempt, in progress
        self.tally = None             # the entry's EntryTally, set in each worker

    def allows(self, forward) -> bool:
        """Whether ``forward`` may make another attempt; counts it as retrying if so."""
        # In progress: every attempt under way, and this request between two attempts.
        active = sum(upstream.tally.active for upstream in self.upstreams) + 1
        others = self.retrying - (1 if forward.retrying else 0)
        if others >= max(self.minimum, active * self.percent / 100):
            self.tally.retries_denied += 1
            return False
        if not forward.retrying:
            forward.retrying = True
            self.retrying += 1
        self.tally.retries += 1
        return True

    def ended(self, forward) -> None:
        """``forward`` is over: it no longer counts as retrying."""
        forward.retrying = False
        self.retrying -= 1
