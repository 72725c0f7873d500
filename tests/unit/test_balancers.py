"""The built-in balancers, one process: orderings, distribution, weights and failover."""

from __future__ import annotations

import copy
import random
import zlib
from collections import Counter
from types import SimpleNamespace

import pytest

from monkey_py.shared import SharedMemory
from monkey_py_plugins.balancers import Balancer, Server
from monkey_py_plugins.balancers.first_alive import FirstAlive
from monkey_py_plugins.balancers.least_connections import LeastConnections
from monkey_py_plugins.balancers.locking_round_robin import LockingRoundRobin
from monkey_py_plugins.balancers.naive import Naive
from monkey_py_plugins.balancers.random_two_choices import RandomTwoChoices
from monkey_py_plugins.balancers.rotation import Rotation, Rotations, smooth_sequence
from monkey_py_plugins.balancers.round_robin import RoundRobin
from monkey_py_plugins.balancers.source_hash import SourceHash


def servers(*weights: int) -> list[Server]:
    """Servers named a, b, c ... with the given weights."""
    return [Server(i, "abcdefgh"[i], weight) for i, weight in enumerate(weights)]


def client(address: str = "192.0.2.7", port: int = 40000) -> SimpleNamespace:
    return SimpleNamespace(peer=(address, port))


def names(candidates) -> str:
    return "".join(server.name for server in candidates)


def forked(template: Balancer, index: int, workers: int) -> Balancer:
    """What worker ``index`` holds after the fork: a copy of ``template``, same memory."""
    worker = copy.deepcopy(template, {id(template.shared): template.shared})
    worker.worker_started(index, workers)
    return worker


def without(balancer: Balancer, names_out: str) -> Balancer:
    """``balancer`` told that the servers named in ``names_out`` are not available."""
    balancer.set_available([s for s in balancer.servers if s.name not in names_out])
    return balancer


def firsts(balancer: Balancer, count: int, request=None) -> str:
    request = request or client()
    return "".join(next(iter(balancer.candidates(request))).name for _ in range(count))


# -- the contract -----------------------------------------------------------------------
def test_a_balancer_needs_servers_indexed_in_order_with_positive_weights():
    with pytest.raises(ValueError, match="at least one server"):
        FirstAlive([], None)
    with pytest.raises(ValueError, match="index 1, expected 0"):
        FirstAlive([Server(1, "a")], None)
    with pytest.raises(ValueError, match="weight 0"):
        FirstAlive([Server(0, "a", 0)], None)


def test_a_balancer_without_candidates_cannot_be_made():
    class Incomplete(Balancer):
        pass

    with pytest.raises(TypeError):
        Incomplete(servers(1), None)


def test_create_allocates_shared_memory_only_for_balancers_that_need_it():
    assert RoundRobin.create(servers(1, 1), 4).shared is None
    least = LeastConnections.create(servers(1, 1, 1), 4)
    assert least.shared.size == 8 * 3 * 4
    assert LockingRoundRobin.create(servers(1, 1), 4).shared.size == 8


def test_a_balancer_that_needs_shared_memory_refuses_to_start_without_it():
    with pytest.raises(ValueError, match="needs 8 bytes of shared memory"):
        LockingRoundRobin(servers(1, 1), None)
    with pytest.raises(ValueError, match="LeastConnections needs 24 bytes"):
        LeastConnections(servers(1, 1, 1), SharedMemory(2))


def test_every_server_is_available_until_the_proxy_says_otherwise():
    balancer = FirstAlive(servers(1, 1, 1), None)
    assert balancer.available == balancer.servers
    without(balancer, "b")
    assert names(balancer.available) == "ac"
    # First-Alive keeps list order over every server: the proxy skips offline ones.
    assert names(balancer.candidates(client())) == "abc"


def test_the_balancer_api_exports_the_cores_shared_memory():
    import monkey_py_plugins.balancers as api

    assert api.SharedMemory is SharedMemory


# -- smooth weighted rotation -----------------------------------------------------------
@pytest.mark.parametrize("weights, expected", [
    ([1, 1, 1], [0, 1, 2]),
    ([5, 1, 1], [0, 0, 1, 0, 2, 0, 0]),
    ([3, 1], [0, 0, 1, 0]),
    ([2, 2, 2], [0, 1, 2]),
    ([4, 2], [0, 1, 0]),
    ([7], [0]),
])
def test_smooth_sequence_is_nginx_smooth_weighted_round_robin(weights, expected):
    assert smooth_sequence(weights) == expected


def test_each_server_appears_its_weight_times_per_period():
    weights = [3, 7, 2, 5]
    assert Counter(smooth_sequence(weights)) == {0: 3, 1: 7, 2: 2, 3: 5}


def test_rotation_order_starts_at_the_turn_and_continues_in_rotation_order():
    rotation = Rotation(servers(5, 1, 1))
    assert names(rotation.order(0)) == "abc"
    assert names(rotation.order(2)) == "bac"
    assert names(rotation.order(4)) == "cab"
    assert names(rotation.order(4 + 7 * 3)) == "cab"


def test_rotations_are_built_once_per_set_of_available_servers():
    rotations = Rotations(servers(1, 1, 1))
    a, b, c = rotations.full.servers
    assert rotations.over([a, b, c]) is rotations.full
    two = rotations.over([a, c])
    assert names(two.order(0)) + names(two.order(1)) == "acca"
    assert rotations.over((a, c)) is two
    warming = rotations.over([Server(0, "a", 10), Server(1, "b", 10), Server(2, "c", 3)])
    assert Counter(names(warming.order(turn))[0] for turn in range(23)) == {
        "a": 10, "b": 10, "c": 3}


# -- Naive --------------------------------------------------------------------------------
def test_naive_starts_at_the_client_port_and_wraps_round():
    naive = Naive(servers(1, 1, 1), None)
    assert names(naive.candidates(client(port=40001))) == "cab"
    assert names(naive.candidates(client(port=40002))) == "abc"
    assert names(naive.candidates(client(port=40003))) == "bca"


def test_naive_keeps_the_start_of_one_connection_and_ignores_weights():
    naive = Naive(servers(9, 1, 1), None)
    request = client(port=50000)
    assert {names(naive.candidates(request)) for _ in range(10)} == {"cab"}
    spread = Counter(names(naive.candidates(client(port=port)))[0] for port in range(3000))
    assert spread == {"a": 1000, "b": 1000, "c": 1000}


def test_naive_starts_a_client_without_a_port_at_the_first_server():
    naive = Naive(servers(1, 1), None)
    assert names(naive.candidates(SimpleNamespace(peer=""))) == "ab"
    assert names(naive.candidates(SimpleNamespace(peer="/run/monkey.sock"))) == "ab"


# -- First-Alive --------------------------------------------------------------------------
def test_first_alive_always_gives_list_order():
    first = FirstAlive(servers(1, 5, 1), None)
    assert {names(first.candidates(client(port=port))) for port in range(20)} == {"abc"}


# -- RoundRobin ---------------------------------------------------------------------------
def test_round_robin_rotates_through_equal_servers():
    balancer = RoundRobin(servers(1, 1, 1), None)
    assert firsts(balancer, 7) == "abcabca"


def test_round_robin_fails_over_to_the_next_in_rotation():
    balancer = RoundRobin(servers(1, 1, 1), None)
    assert [names(balancer.candidates(client())) for _ in range(3)] == ["abc", "bca", "cab"]


def test_round_robin_honours_weights_smoothly():
    balancer = RoundRobin(servers(5, 1, 1), None)
    assert firsts(balancer, 14) == "aabacaa" * 2


def test_round_robin_workers_start_spread_over_the_rotation():
    template = RoundRobin(servers(1, 1, 1), None)
    starts = ""
    for index in range(3):
        worker = forked(template, index, 3)
        starts += firsts(worker, 1)
        assert Counter(firsts(worker, 300)) == {"a": 100, "b": 100, "c": 100}
    assert starts == "abc"


def test_round_robin_skips_an_unavailable_server_in_the_rotation_itself():
    balancer = without(RoundRobin(servers(1, 1, 1), None), "b")
    # The rotation runs over a and c: b's turns are shared, not handed to c alone.
    assert firsts(balancer, 6) == "acacac"
    assert Counter(firsts(balancer, 3000)) == {"a": 1500, "c": 1500}
    balancer.set_available(balancer.servers)
    assert Counter(firsts(balancer, 3000)) == {"a": 1000, "b": 1000, "c": 1000}


def test_round_robin_keeps_weights_among_the_available_servers():
    balancer = without(RoundRobin(servers(3, 1, 1), None), "c")
    assert Counter(firsts(balancer, 400)) == {"a": 300, "b": 100}


def test_round_robin_follows_a_warming_servers_current_weight():
    balancer = RoundRobin(servers(1, 1), None)
    a, b = balancer.servers
    balancer.set_available([Server(0, "a", 10), Server(1, "b", 2)])
    assert Counter(firsts(balancer, 1200)) == {"a": 1000, "b": 200}


# -- LockingRoundRobin (several workers in one process; forked workers: test_balancers_shared)
def test_locking_round_robin_rotates_across_workers_sharing_memory():
    template = LockingRoundRobin.create(servers(1, 1, 1), 2)
    one, two = forked(template, 0, 2), forked(template, 1, 2)
    picks = "".join(firsts(worker, 1) for worker in (one, two, two, one, two, one, one))
    assert picks == "abcabca"


def test_locking_round_robin_honours_weights_and_fails_over_in_rotation():
    balancer = LockingRoundRobin.create(servers(5, 1, 1), 1)
    assert firsts(balancer, 7) == "aabacaa"
    assert [names(balancer.candidates(client())) for _ in range(3)] == ["abc", "abc", "bac"]


def test_locking_round_robin_skips_an_unavailable_server_evenly_across_workers():
    template = LockingRoundRobin.create(servers(1, 1, 1), 2)
    one, two = forked(template, 0, 2), forked(template, 1, 2)
    for worker in (one, two):
        without(worker, "a")
    picks = "".join(firsts(worker, 1) for worker in (one, two) * 600)
    assert Counter(picks) == {"b": 600, "c": 600}


def test_locking_round_robin_counts_turns_in_shared_memory():
    balancer = LockingRoundRobin.create(servers(1, 1), 1)
    assert [balancer.take_turn() for _ in range(3)] == [0, 1, 2]
    assert balancer.shared.slots[0] == 3


# -- LeastConnections -------------------------------------------------------------------
def open_connections(balancer: Balancer, counts: dict[str, int]) -> None:
    for server in balancer.servers:
        for _ in range(counts.get(server.name, 0)):
            balancer.connection_opened(server)


def test_least_connections_without_load_rotates_among_the_tied_servers():
    balancer = LeastConnections.create(servers(1, 1, 1), 1)
    # Sequential traffic finds every server idle: it goes round them all (nginx's
    # least_conn), not always to the first.
    assert [names(balancer.candidates(client())) for _ in range(4)] == [
        "abc", "bca", "cab", "abc"]
    assert Counter(firsts(balancer, 3000)) == {"a": 1000, "b": 1000, "c": 1000}


def test_least_connections_rotates_evenly_among_the_least_loaded():
    balancer = LeastConnections.create(servers(1, 1, 1, 1), 1)
    open_connections(balancer, {"b": 1})
    orders = [names(balancer.candidates(client())) for _ in range(6)]
    # b's turns are not handed to its neighbour: a, c and d share them evenly.
    assert [order[0] for order in orders] == list("acdacd")
    assert all(order[-1] == "b" for order in orders)


def test_least_connections_gives_a_server_freed_again_its_share_and_no_burst():
    balancer = LeastConnections.create(servers(1, 1, 1), 1)
    a, b, c = balancer.servers
    balancer.connection_opened(a)
    assert firsts(balancer, 40) == "bc" * 20
    balancer.connection_closed(a)
    # a starts again from the others' pass: one turn ahead at most, not 20.
    spread = Counter(firsts(balancer, 30))
    assert all(9 <= spread[name] <= 11 for name in "abc"), spread


def test_least_connections_breaks_ties_by_weight():
    balancer = LeastConnections.create(servers(2, 1), 1)
    assert Counter(firsts(balancer, 300)) == {"a": 200, "b": 100}


def test_least_connections_workers_start_at_different_tied_servers():
    template = LeastConnections.create(servers(1, 1, 1), 3)
    assert "".join(firsts(forked(template, index, 3), 1) for index in range(3)) == "abc"


def test_least_connections_orders_only_the_available_servers():
    balancer = without(LeastConnections.create(servers(1, 1, 1), 1), "a")
    open_connections(balancer, {"c": 1})
    assert names(balancer.candidates(client())) == "bc"
    assert Counter(firsts(balancer, 100)) == {"b": 100}


def test_least_connections_orders_by_active_connections():
    balancer = LeastConnections.create(servers(1, 1, 1), 1)
    a, b, c = balancer.servers
    open_connections(balancer, {"a": 2, "b": 1})
    assert names(balancer.candidates(client())) == "cba"
    balancer.connection_closed(a)
    balancer.connection_closed(a)
    balancer.connection_opened(c)
    assert names(balancer.candidates(client())) == "abc"
    assert balancer.counts.active() == [0, 1, 1]


def test_least_connections_spreads_open_connections_evenly():
    balancer = LeastConnections.create(servers(1, 1, 1), 1)
    for _ in range(9):
        balancer.connection_opened(next(iter(balancer.candidates(client()))))
    assert balancer.counts.active() == [3, 3, 3]


def test_least_connections_compares_connections_per_weight():
    balancer = LeastConnections.create(servers(1, 2), 1)
    open_connections(balancer, {"a": 1, "b": 1})
    assert names(balancer.candidates(client())) == "ba"
    open_connections(balancer, {"b": 1})
    assert names(balancer.candidates(client())) == "ab"
    for _ in range(30):
        balancer.connection_opened(next(iter(balancer.candidates(client()))))
    assert balancer.counts.active() == [11, 22]


def test_least_connections_counts_every_worker():
    template = LeastConnections.create(servers(1, 1, 1), 2)
    one, two = forked(template, 0, 2), forked(template, 1, 2)
    open_connections(one, {"a": 1})
    open_connections(two, {"a": 1, "b": 1})
    assert one.counts.active() == two.counts.active() == [2, 1, 0]
    assert names(one.candidates(client())) == "cba"


def test_least_connections_replacement_worker_starts_from_zero():
    template = LeastConnections.create(servers(1, 1), 2)
    one, dead = forked(template, 0, 2), forked(template, 1, 2)
    open_connections(one, {"b": 1})
    open_connections(dead, {"a": 5})
    replacement = forked(template, 1, 2)
    assert replacement.counts.active() == [0, 1]


def test_least_connections_rejects_a_worker_beyond_its_rows():
    balancer = LeastConnections.create(servers(1, 1), 2)
    with pytest.raises(ValueError, match="worker 2 has no row"):
        balancer.worker_started(2, 3)


# -- SourceHash -------------------------------------------------------------------------
def test_source_hash_is_crc32_of_the_address_then_list_order():
    balancer = SourceHash(servers(1, 1, 1), None)
    # crc32(b"192.0.2.8") = 2730342547, which is 1 modulo 3: stable across processes.
    assert zlib.crc32(b"192.0.2.8") % 3 == 1
    assert names(balancer.candidates(client("192.0.2.8"))) == "bca"
    assert names(balancer.candidates(client("192.0.2.7"))) == "abc"


def test_source_hash_keeps_a_client_on_its_server_whatever_its_port():
    balancer = SourceHash(servers(1, 1, 1), None)
    assert {names(balancer.candidates(client("10.1.2.3", port))) for port in range(50)} == {
        names(balancer.candidates(client("10.1.2.3")))
    }


def test_source_hash_spreads_clients_over_servers_and_handles_ipv6():
    balancer = SourceHash(servers(1, 1, 1), None)
    spread = Counter(
        names(balancer.candidates(client(f"10.0.{i // 256}.{i % 256}")))[0] for i in range(3000)
    )
    assert set(spread) == {"a", "b", "c"} and min(spread.values()) > 900
    assert len(names(balancer.candidates(client("2001:db8::1")))) == 3


def test_source_hash_gives_heavier_servers_more_clients():
    balancer = SourceHash(servers(2, 1), None)
    spread = Counter(
        names(balancer.candidates(client(f"10.0.{i // 256}.{i % 256}")))[0] for i in range(3000)
    )
    assert 1900 < spread["a"] < 2100


# -- RandomTwoChoices -----------------------------------------------------------------
def seeded(balancer: RandomTwoChoices, seed: int = 7) -> RandomTwoChoices:
    balancer.random = random.Random(seed)
    return balancer


def test_random_two_choices_gives_every_server_and_spreads_evenly():
    balancer = seeded(RandomTwoChoices.create(servers(1, 1, 1), 1))
    orders = [names(balancer.candidates(client())) for _ in range(3000)]
    assert all(sorted(order) == ["a", "b", "c"] for order in orders)
    spread = Counter(order[0] for order in orders)
    assert min(spread.values()) > 900


def test_random_two_choices_is_repeatable_with_a_seed():
    one = seeded(RandomTwoChoices.create(servers(1, 1, 1, 1), 1))
    two = seeded(RandomTwoChoices.create(servers(1, 1, 1, 1), 1))
    assert [names(one.candidates(client())) for _ in range(20)] == [
        names(two.candidates(client())) for _ in range(20)
    ]


def test_random_two_choices_puts_the_less_loaded_of_the_two_first():
    balancer = seeded(RandomTwoChoices.create(servers(1, 1, 1), 1))
    open_connections(balancer, {"a": 5, "c": 3})
    active = dict(zip("abc", balancer.counts.active()))
    orders = Counter(names(balancer.candidates(client())) for _ in range(600))
    # The pair drawn comes first, less loaded first; the third server last.
    assert set(orders) == {"bac", "cab", "bca"}
    assert all(active[order[0]] <= active[order[1]] for order in orders)


def test_random_two_choices_compares_connections_per_weight():
    balancer = seeded(RandomTwoChoices.create(servers(3, 1), 1))
    open_connections(balancer, {"a": 2, "b": 1})
    assert {names(balancer.candidates(client())) for _ in range(20)} == {"ab"}


def test_random_two_choices_draws_only_available_servers():
    balancer = without(seeded(RandomTwoChoices.create(servers(1, 1, 1), 1)), "b")
    orders = {names(balancer.candidates(client())) for _ in range(200)}
    assert orders == {"ac", "ca"}


def test_random_two_choices_with_one_server():
    balancer = RandomTwoChoices.create(servers(1), 1)
    assert names(balancer.candidates(client())) == "a"


def test_random_two_choices_workers_reseed_after_the_fork():
    template = seeded(RandomTwoChoices.create(servers(1, 1, 1, 1, 1), 2))
    one, two = forked(template, 0, 2), forked(template, 1, 2)
    draws = [[names(worker.candidates(client())) for _ in range(30)] for worker in (one, two)]
    assert draws[0] != draws[1]


def test_a_long_rotation_is_walked_like_a_tabulated_one(monkeypatch):
    from monkey_py_plugins.balancers import rotation

    servers = [Server(0, "a", 7), Server(1, "b", 3), Server(2, "c", 2)]
    tabulated = rotation.Rotation(servers)
    monkeypatch.setattr(rotation, "PRECOMPUTE_LIMIT", 0)
    walked = rotation.Rotation(servers)
    assert tabulated.orders is not None and walked.orders is None
    for turn in range(30):
        assert list(walked.order(turn)) == list(tabulated.order(turn))
