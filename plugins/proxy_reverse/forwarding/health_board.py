"""The active health checks' verdicts, in shared memory made before the fork.

One worker runs the checks and writes here (one writer, so no lock); every worker reads
the verdicts to hold a failing server offline, and the statistics show them. A cell
per checked server holds its verdict (up, down or not known yet), since when, its runs
of passed and failed checks, the last check's result and totals. Slot 0 is a
generation number, increased whenever a verdict changes: a worker compares one integer
to know whether there is anything to read.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

from monkey_py.shared import SharedMemory

UNKNOWN, UP, DOWN = 0, 1, 2
STATES = {UNKNOWN: "unknown", UP: "up", DOWN: "down"}
# The last check's result; DETAIL holds the HTTP status, the errno of a connect, or
# for a TLS handshake VERIFY_FAILED when it was the server's certificate.
PASSED, CONNECT_FAILED, TIMED_OUT, BAD_STATUS, INVALID, CLOSED, TLS_FAILED = range(1, 8)
RESULTS = range(PASSED, TLS_FAILED + 1)
VERIFY_FAILED = 1
# The slots of a cell; RISES counts the times the server came back up from down.
VERDICT, SINCE_MS, CHECKED_MS, RESULT, DETAIL, PASSES, FAILS, CHECKS, FAILURES, \
    RISES = range(10)
CELL = 10
GENERATION = 0


@dataclass
class CheckSnapshot:
    """One server's health check figures: its verdict and the last check."""

    state: str
    state_age: float | None
    last_result: str | None
    last_status: int | None
    last_check_age: float | None
    checks: int
    failures: int


def describe(result: int, detail: int) -> str | None:
    """The last check's result as the statistics and the log say it."""
    if result == PASSED:
        return f"passed ({detail})"
    if result == CONNECT_FAILED:
        return f"connect: {os.strerror(detail)}"
    if result == TIMED_OUT:
        return "timed out"
    if result == BAD_STATUS:
        return f"unexpected status {detail}"
    if result == INVALID:
        return "invalid response"
    if result == CLOSED:
        return "the server closed the connection without an answer"
    if result == TLS_FAILED:
        return "TLS handshake: certificate verify failed" if detail == VERIFY_FAILED \
            else "TLS handshake failed"
    return None


class HealthBoard:
    """The verdicts of the checked servers, by statistics slot."""

    def __init__(self, slots: list[int], clock: Callable[[], float] = time.monotonic) -> None:
        self.cells = {slot: 1 + number * CELL for number, slot in enumerate(slots)}
        self.shared = SharedMemory(1 + len(slots) * CELL)
        self.slots = self.shared.slots
        self.clock = clock

    @property
    def generation(self) -> int:
        return self.slots[GENERATION]

    def verdict(self, slot: int) -> int:
        return self.slots[self.cells[slot] + VERDICT]

    def rises(self, slot: int) -> int:
        """How many times the server came back up: a worker that reads the verdicts
        less often than they change still sees that it came back (its slow start)."""
        return self.slots[self.cells[slot] + RISES]

    def record(self, slot: int, result: int, detail: int, rise: int, fall: int) -> int | None:
        """Count one check of the server at ``slot``; its new verdict if it changed.

        Not known yet, a server is taken as up: one passed check confirms it, ``fall``
        failed ones in a row take it down. A server down needs ``rise`` passed checks
        in a row to be up again.
        """
        slots = self.slots
        base = self.cells[slot]
        now_ms = int(self.clock() * 1000)
        passed = result == PASSED
        slots[base + CHECKED_MS] = now_ms
        slots[base + RESULT] = result
        slots[base + DETAIL] = detail
        slots[base + CHECKS] += 1
        if passed:
            slots[base + PASSES] += 1
            slots[base + FAILS] = 0
        else:
            slots[base + FAILURES] += 1
            slots[base + FAILS] += 1
            slots[base + PASSES] = 0
        verdict = slots[base + VERDICT]
        if passed:
            changed = UP if verdict == UNKNOWN or (
                verdict == DOWN and slots[base + PASSES] >= rise) else None
        else:
            changed = DOWN if verdict != DOWN and slots[base + FAILS] >= fall else None
        if changed is not None:
            if verdict == DOWN:
                slots[base + RISES] += 1
            slots[base + VERDICT] = changed
            slots[base + SINCE_MS] = now_ms
            slots[GENERATION] += 1
        return changed

    def hold_down(self, slot: int, fall: int) -> bool:
        """Take the server at ``slot`` as down, as ``fall`` failed checks in a row would
        (the fleet's verdict, read at start or after an outage); False if it is down
        already."""
        slots = self.slots
        base = self.cells[slot]
        if slots[base + VERDICT] == DOWN:
            return False
        slots[base + VERDICT] = DOWN
        slots[base + SINCE_MS] = int(self.clock() * 1000)
        slots[base + FAILS] = fall
        slots[base + PASSES] = 0
        slots[GENERATION] += 1
        return True

    def inherit(self, slot: int, board: HealthBoard, their_slot: int) -> None:
        """Start from another board's cell (the same server before a reload)."""
        base, theirs = self.cells[slot], board.cells[their_slot]
        self.slots[base:base + CELL] = board.slots[theirs:theirs + CELL]

    def snapshot(self) -> dict[int, CheckSnapshot]:
        """Every checked server's figures, by statistics slot."""
        now_ms = int(self.clock() * 1000)
        slots = self.slots
        result = {}
        for slot, base in self.cells.items():
            since, checked = slots[base + SINCE_MS], slots[base + CHECKED_MS]
            kind, detail = slots[base + RESULT], slots[base + DETAIL]
            result[slot] = CheckSnapshot(
                state=STATES[slots[base + VERDICT]],
                state_age=(now_ms - since) / 1000 if since else None,
                last_result=describe(kind, detail),
                last_status=detail if kind in (PASSED, BAD_STATUS) else None,
                last_check_age=(now_ms - checked) / 1000 if checked else None,
                checks=slots[base + CHECKS], failures=slots[base + FAILURES])
        return result
