"""Which servers of an entry a worker uses: offline ones left out, panic mode below the
healthy share, slow start after a server comes back; and what the balancer is told."""

from __future__ import annotations

from collections import Counter
from math import inf
from types import SimpleNamespace

from monkey_py_plugins.balancers import Server
from monkey_py_plugins.balancers.round_robin import RoundRobin
from monkey_py_plugins.proxy_reverse.forwarding.availability import (
    SLOW_START_STEPS, Availability,
)


class FakeUpstream:
    """What Availability reads of an upstream (hashable, as the real one is)."""

    def __init__(self, name: str, server: Server | None) -> None:
        self.name = name
        self.server = server
        self.offline_until = self.back_at = 0.0
        self.tally = SimpleNamespace(weight_share=1.0)


def upstreams(names: str, backup: bool = False) -> list:
    """Upstream stand-ins named by the letters of ``names``, all online."""
    return [FakeUpstream(name, None if backup else Server(i, name))
            for i, name in enumerate(names)]


def made(names: str = "abc", backups: str = "", threshold: int = 50,
         slow_start: float = 0.0) -> tuple[Availability, RoundRobin, dict]:
    primaries = upstreams(names)
    extra = upstreams(backups, backup=True)
    balancer = RoundRobin([u.server for u in primaries], None)
    availability = Availability(balancer, primaries, extra, threshold, slow_start)
    return availability, balancer, {u.name: u for u in primaries + extra}


def offline(availability: Availability, by_name: dict, names: str) -> bool:
    """Take the servers named in ``names`` offline until 200, review at 100: panic?"""
    for name in names:
        by_name[name].offline_until = 200.0
    availability.review(100.0)
    return availability.panic


def firsts(balancer, count: int) -> str:
    return "".join(next(iter(balancer.candidates(None))).name for _ in range(count))


def test_nothing_to_review_while_every_server_is_online():
    availability, balancer, _ = made()
    assert availability.review_at == inf and not availability.panic
    assert balancer.available == balancer.servers


def test_an_offline_server_is_left_out_until_its_offline_time_ends():
    availability, balancer, by_name = made()
    by_name["b"].offline_until = 160.0
    availability.changed()
    assert availability.review_at == 0.0
    availability.review(100.0)
    assert [s.name for s in balancer.available] == ["a", "c"]
    assert firsts(balancer, 4) == "acac"
    assert availability.review_at == 160.0
    assert by_name["b"].tally.weight_share == 0.0
    availability.review(160.0)
    assert balancer.available == balancer.servers
    assert availability.review_at == inf


def test_a_server_held_down_by_its_health_check_has_no_end_to_review():
    availability, balancer, by_name = made()
    by_name["a"].offline_until = inf
    availability.review(100.0)
    assert [s.name for s in balancer.available] == ["b", "c"]
    assert availability.review_at == inf


def test_panic_mode_below_the_healthy_share_uses_every_server():
    availability, balancer, by_name = made("abcd")
    # 2 of 4 online is 50 %: not below the threshold.
    assert not offline(availability, by_name, "ab")
    assert offline(availability, by_name, "c")
    assert balancer.available == balancer.servers
    assert Counter(firsts(balancer, 400)) == {"a": 100, "b": 100, "c": 100, "d": 100}


def test_a_backup_online_keeps_the_entry_out_of_panic_mode():
    availability, _, by_name = made("ab", backups="z")
    assert not offline(availability, by_name, "ab")
    assert offline(availability, by_name, "z")


def test_a_panic_threshold_of_zero_never_panics():
    availability, _, by_name = made("ab", threshold=0)
    assert not offline(availability, by_name, "ab")


def test_a_server_coming_back_ramps_its_weight_up_over_slow_start():
    availability, balancer, by_name = made("ab", slow_start=10.0)
    b = by_name["b"]
    b.back_at = 100.0
    availability.changed()
    availability.review(100.0)
    assert [s.weight for s in balancer.available] == [SLOW_START_STEPS, 1]
    assert availability.review_at == 101.0
    assert b.tally.weight_share == 0.1
    assert Counter(firsts(balancer, 110)) == {"a": 100, "b": 10}
    availability.review(105.5)
    assert [s.weight for s in balancer.available] == [SLOW_START_STEPS, 6]
    assert availability.review_at == 106.0
    availability.review(110.0)
    assert balancer.available == balancer.servers
    assert b.tally.weight_share == 1.0 and availability.review_at == inf


def test_without_slow_start_a_server_comes_back_with_its_whole_weight():
    availability, balancer, by_name = made("ab")
    by_name["b"].back_at = 100.0
    availability.review(100.0)
    assert balancer.available == balancer.servers


def test_the_balancer_is_told_only_when_the_set_changes():
    availability, balancer, by_name = made()
    told = []
    balancer.set_available = told.append
    availability.review(100.0)
    assert told == []
    by_name["c"].offline_until = 150.0
    availability.review(100.0)
    availability.review(120.0)
    assert len(told) == 1
