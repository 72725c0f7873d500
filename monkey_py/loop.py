"""The event loop of one worker: a selectors loop, a timer heap and a signal self-pipe.

Every registered file object carries its callback in ``key.data``; the callback gets the
ready event mask. Timers live in a heap ordered by deadline on the monotonic clock and the
select timeout is the next deadline. ``now`` is the monotonic clock read once per
iteration, after the wait: callbacks that set deadlines read it instead of the clock. Signal handlers only write the signal number to a
self-pipe; the loop reads it and dispatches on its own stack.
"""

from __future__ import annotations

import heapq
import logging
import os
import selectors
import signal
import time
from collections import deque
from typing import Callable

log = logging.getLogger(__name__)

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE


class Timer:
    """A callback scheduled at a monotonic deadline; cancel it with ``EventLoop.cancel``."""

    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def __lt__(self, other: "Timer") -> bool:
        return self.when < other.when


class EventLoop:
    """A single-threaded loop: I/O readiness, timers and signals."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._timers: list[Timer] = []
        self._cancelled = 0
        self._ready: deque[Callable[[], None]] = deque()
        self._running = False
        self._signal_handlers: dict[int, Callable[[int], None]] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.selector.register(self._wake_r, EVENT_READ, self._on_wakeup)
        self.time = time.monotonic
        self.now = time.monotonic()

    # -- I/O -------------------------------------------------------------------
    def add(self, fileobj, events: int, callback: Callable[[int], None]) -> None:
        self.selector.register(fileobj, events, callback)

    def modify(self, fileobj, events: int, callback: Callable[[int], None]) -> None:
        self.selector.modify(fileobj, events, callback)

    def remove(self, fileobj) -> None:
        try:
            self.selector.unregister(fileobj)
        except (KeyError, ValueError):
            pass

    # -- timers and deferred calls --------------------------------------------
    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(when, callback)
        heapq.heappush(self._timers, timer)
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(time.monotonic() + delay, callback)

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the next iteration, outside the current call stack."""
        self._ready.append(callback)

    def cancel(self, timer: Timer) -> None:
        if not timer.cancelled:
            timer.cancelled = True
            self._cancelled += 1

    # -- signals ----------------------------------------------------------------
    def add_signal_handler(self, signum: int, handler: Callable[[int], None]) -> None:
        """Dispatch ``signum`` to ``handler`` from the loop, never from the signal frame."""
        self._signal_handlers[signum] = handler
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signum, lambda *_: None)

    def _on_wakeup(self, _mask: int) -> None:
        try:
            data = os.read(self._wake_r, 512)
        except (BlockingIOError, InterruptedError):
            return
        for signum in data:
            handler = self._signal_handlers.get(signum)
            if handler is not None:
                handler(signum)

    def wakeup(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, InterruptedError):
            pass

    # -- running ----------------------------------------------------------------
    def stop(self) -> None:
        self._running = False
        self.wakeup()

    def run(self) -> None:
        self._running = True
        while self._running:
            self.run_once()

    def run_once(self) -> None:
        timers = self._timers
        if self._cancelled > 64 and self._cancelled * 2 > len(timers):
            self._timers = timers = [t for t in timers if not t.cancelled]
            heapq.heapify(timers)
            self._cancelled = 0
        while timers and timers[0].cancelled:
            heapq.heappop(timers)
            self._cancelled -= 1
        if self._ready:
            timeout = 0.0
        elif timers:
            timeout = max(0.0, timers[0].when - time.monotonic())
        else:
            timeout = None
        events = self.selector.select(timeout)
        self.now = now = time.monotonic()
        for key, mask in events:
            try:
                key.data(mask)
            except Exception:
                log.exception("unhandled error in an I/O callback")
        if timers:
            while timers and timers[0].when <= now:
                timer = heapq.heappop(timers)
                if timer.cancelled:
                    self._cancelled -= 1
                    continue
                timer.cancelled = True
                self._ready.append(timer.callback)
        ready = self._ready
        for _ in range(len(ready)):
            callback = ready.popleft()
            try:
                callback()
            except Exception:
                log.exception("unhandled error in a scheduled callback")

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        self.selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
