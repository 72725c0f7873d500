"""The balancers that keep their state in shared memory, across real forked processes."""

from __future__ import annotations

import os
from collections import Counter

from forks import in_children
from monkey_py_plugins.balancers import Server
from monkey_py_plugins.balancers.least_connections import LeastConnections
from monkey_py_plugins.balancers.locking_round_robin import LockingRoundRobin


def servers(*weights: int) -> list[Server]:
    return [Server(i, "abcdefgh"[i], weight) for i, weight in enumerate(weights)]


# -- LockingRoundRobin ------------------------------------------------------------------
def test_locking_round_robin_balances_two_workers_exactly():
    template = LockingRoundRobin.create(servers(1, 1, 1), 2)

    def work(index: int) -> str:
        template.worker_started(index, 2)
        return "".join(next(iter(template.candidates(None))).name for _ in range(600))

    picks = in_children(work, 2)
    assert Counter("".join(picks)) == {"a": 400, "b": 400, "c": 400}
    assert template.shared.slots[0] == 1200


def test_locking_round_robin_balances_weights_across_workers():
    template = LockingRoundRobin.create(servers(2, 1), 2)

    def work(index: int) -> str:
        template.worker_started(index, 2)
        return "".join(next(iter(template.candidates(None))).name for _ in range(600))

    assert Counter("".join(in_children(work, 2))) == {"a": 800, "b": 400}


def test_locking_round_robin_never_gives_a_turn_twice():
    template = LockingRoundRobin.create(servers(1, 1, 1), 4)

    def work(index: int) -> list[int]:
        template.worker_started(index, 4)
        return [template.take_turn() for _ in range(3000)]

    turns = [turn for worker in in_children(work, 4) for turn in worker]
    assert sorted(turns) == list(range(12000))


def test_a_worker_dying_with_the_lock_does_not_stop_the_others():
    balancer = LockingRoundRobin.create(servers(1, 1), 2)

    def die_holding_the_lock(index: int) -> bool:
        return balancer.shared.lock.acquire(blocking=False)

    assert in_children(die_holding_the_lock, 1) == [True]
    assert [balancer.take_turn() for _ in range(2)] == [0, 1]
    assert in_children(lambda index: balancer.take_turn(), 1) == [2]


# -- LeastConnections -------------------------------------------------------------------
def test_least_connections_sees_connections_opened_in_another_worker():
    template = LeastConnections.create(servers(1, 1, 1), 2)
    to_parent_read, to_parent_write = os.pipe()
    to_child_read, to_child_write = os.pipe()

    def other_worker(index: int) -> None:
        template.worker_started(1, 2)
        a, b, _ = template.servers
        for server in (a, a, b):
            template.connection_opened(server)
        os.write(to_parent_write, b"1")
        os.read(to_child_read, 1)
        template.connection_closed(a)
        os.write(to_parent_write, b"2")
        os.read(to_child_read, 1)

    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            other_worker(1)
            status = 0
        finally:
            os._exit(status)
    try:
        template.worker_started(0, 2)
        assert os.read(to_parent_read, 1) == b"1"
        assert template.counts.active() == [2, 1, 0]
        assert "".join(s.name for s in template.candidates(None)) == "cba"
        template.connection_opened(template.servers[2])
        template.connection_opened(template.servers[2])
        os.write(to_child_write, b"x")
        assert os.read(to_parent_read, 1) == b"2"
        assert template.counts.active() == [1, 1, 2]
        assert "".join(s.name for s in template.candidates(None)) == "abc"
        os.write(to_child_write, b"x")
    finally:
        _, status = os.waitpid(pid, 0)
        for fd in (to_parent_read, to_parent_write, to_child_read, to_child_write):
            os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0

    # The dead worker's connections stay counted until its replacement starts.
    assert template.counts.active() == [1, 1, 2]

    def replacement(index: int) -> list[int]:
        template.worker_started(1, 2)
        return template.counts.active()

    assert in_children(replacement, 1) == [[0, 0, 2]]
    assert template.counts.active() == [0, 0, 2]
