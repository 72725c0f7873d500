"""The health checks' shared verdicts: rise and fall, what a worker reads, the figures,
and a verdict carried over a reload."""

from __future__ import annotations

import errno

from monkey_py_plugins.proxy_reverse.forwarding.health_board import (
    BAD_STATUS, CONNECT_FAILED, DOWN, PASSED, TIMED_OUT, UNKNOWN, UP, HealthBoard,
)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def checks(board: HealthBoard, slot: int, results: str, rise: int = 2, fall: int = 3) -> list:
    """Record a check per letter (p passed, f failed); the verdicts that changed."""
    changes = []
    for letter in results:
        result, detail = (PASSED, 200) if letter == "p" else (BAD_STATUS, 503)
        changes.append(board.record(slot, result, detail, rise, fall))
    return changes


def test_a_server_not_checked_yet_is_taken_as_up_and_one_pass_confirms_it():
    board = HealthBoard([4, 7], Clock())
    assert board.verdict(4) == board.verdict(7) == UNKNOWN
    generation = board.generation
    assert checks(board, 7, "p") == [UP]
    assert board.verdict(7) == UP and board.verdict(4) == UNKNOWN
    assert board.generation == generation + 1


def test_fall_failures_in_a_row_take_it_down_and_rise_passes_bring_it_back():
    board = HealthBoard([0], Clock())
    assert checks(board, 0, "pffpfff") == [UP, None, None, None, None, None, DOWN]
    assert board.verdict(0) == DOWN
    assert checks(board, 0, "pfpp") == [None, None, None, UP]
    assert board.verdict(0) == UP


def test_the_figures_say_what_happened_and_since_when():
    clock = Clock(100.0)
    board = HealthBoard([3], clock)
    checks(board, 3, "fff", fall=3)
    clock.now = 102.5
    board.record(3, CONNECT_FAILED, errno.ECONNREFUSED, 2, 3)
    figures = board.snapshot()[3]
    assert figures.state == "down" and figures.state_age == 2.5
    assert figures.last_result == "connect: Connection refused"
    assert figures.last_status is None and figures.last_check_age == 0.0
    assert (figures.checks, figures.failures) == (4, 4)
    board.record(3, TIMED_OUT, 0, 2, 3)
    assert board.snapshot()[3].last_result == "timed out"
    board.record(3, PASSED, 204, 2, 3)
    assert board.snapshot()[3].last_result == "passed (204)"
    assert board.snapshot()[3].last_status == 204


def test_nothing_checked_yet_has_no_ages():
    figures = HealthBoard([0], Clock()).snapshot()[0]
    assert figures.state == "unknown"
    assert figures.state_age is None and figures.last_check_age is None
    assert figures.last_result is None


def test_a_new_board_inherits_a_servers_verdict_and_runs():
    old = HealthBoard([0, 1], Clock())
    checks(old, 1, "fff")
    new = HealthBoard([5], Clock())
    new.inherit(5, old, 1)
    assert new.verdict(5) == DOWN
    # Down it stays until rise passes in a row.
    assert checks(new, 5, "pp") == [None, UP]


def test_a_server_coming_back_is_counted_so_a_late_reader_still_sees_it():
    board = HealthBoard([0], Clock())
    checks(board, 0, "pff", fall=2)
    assert board.rises(0) == 0
    checks(board, 0, "pp", rise=2)
    # Read only now, the verdict is up as before; the count says it came back.
    assert board.verdict(0) == UP and board.rises(0) == 1
