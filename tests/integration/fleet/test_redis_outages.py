"""Redis slow, down, refusing or back: commands fail at once or after their timeout, the
link reconnects with backoff, each outage is logged once, and no descriptor leaks."""

from __future__ import annotations

import logging
import os
import socket
import time

import pytest

from monkey_py.loop import EVENT_READ
from monkey_py_plugins.proxy_reverse.fleet.errors import RedisTimeout, RedisUnavailable
from monkey_py_plugins.proxy_reverse.fleet.link import RedisParameters
from monkey_py_plugins.proxy_reverse.fleet.pubsub import RedisSubscriber
from redis_support import ask, ask_all, run_for, run_until

LOGGER = "monkey_py.proxy_reverse.fleet"


@pytest.fixture
def fleet_log(caplog):
    """The fleet's log records of WARNING and INFO, as (level, message)."""
    caplog.set_level(logging.INFO, LOGGER)
    return lambda: [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER]


@pytest.fixture
def listener():
    """A loopback socket that listens but is no Redis."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock
    sock.close()


def test_a_late_reply_fails_every_waiting_command_then_the_link_comes_back(
        loop, own_redis, connect, fleet_log):
    client = connect(own_redis.url())
    got = []
    own_redis.call("CLIENT", "PAUSE", 700, "ALL")
    sent = time.monotonic()
    for _ in range(3):
        client.command("PING", callback=lambda reply, error: got.append((reply, error)))
    pipelined = []
    client.pipeline([("PING",), ("PING",)], callback=lambda *outcome: pipelined.append(outcome))
    run_until(loop, lambda: len(got) == 3 and pipelined)
    assert 0.15 <= time.monotonic() - sent < 0.6  # 0.2s from the loop's last clock read
    assert all(reply is None and isinstance(error, RedisTimeout) for reply, error in got)
    assert isinstance(pipelined[0][1], RedisTimeout) and pipelined[0][0] is None
    assert "no reply from Redis in 0.2s" in str(got[0][1])
    assert not client.up and client.state.timeouts == 5 and client.state.errors == 5
    run_until(loop, lambda: client.up, timeout=5)  # once the pause is over
    assert time.monotonic() - sent >= 0.6
    assert ask(loop, client, "PING") == (b"PONG", None)
    levels = [level for level, _ in fleet_log()]
    assert levels == ["WARNING", "INFO"], fleet_log()
    assert "no reply from Redis in 0.2s" in fleet_log()[0][1]
    assert client.state.outages == 1 and len(got) == 3 and len(pipelined) == 1


def test_redis_killed_then_restarted(loop, own_redis, connect, fleet_log):
    client = connect(own_redis.url())
    changes = []
    client.watch(changes.append)
    ask(loop, client, "SET", "before", "1")
    own_redis.kill()
    run_until(loop, lambda: not client.up)
    assert changes == [False]

    # Down: a command fails at once, without waiting for anything.
    got = []
    started = time.monotonic()
    client.command("GET", "before", callback=lambda reply, error: got.append(error))
    loop.run_once()
    assert len(got) == 1 and time.monotonic() - started < 0.05
    assert isinstance(got[0], RedisUnavailable) and "is down" in str(got[0])
    replies, error = ask_all(loop, client, [("GET", "before"), ("GET", "after")])
    assert replies is None and isinstance(error, RedisUnavailable)
    assert client.state.errors == 3

    run_for(loop, 0.6)  # several attempts to reconnect, all refused
    assert fleet_log() == [("WARNING", fleet_log()[0][1])]
    assert f"commands link to redis://127.0.0.1:{own_redis.port}/0 is down" in fleet_log()[0][1]
    assert "requests carry on without Redis" in fleet_log()[0][1]
    state = client.state.as_dict()
    assert state["up"] is False and state["outages"] == 1 and state["last_error"]
    down_since = state["since"]

    own_redis.start()
    run_until(loop, lambda: client.up, timeout=2)
    assert changes == [False, True]
    assert ask(loop, client, "SET", "after", "1") == (b"OK", None)
    assert [level for level, _ in fleet_log()] == ["WARNING", "INFO"]
    assert "is back after" in fleet_log()[1][1]
    assert client.state.since > down_since and client.state.outages == 1


def test_reconnects_back_off_doubling_to_the_cap_with_jitter(loop, listener, connect,
                                                              fleet_log):
    accepted = []

    def accept(_mask):
        conn, _ = listener.accept()
        accepted.append(time.monotonic())
        conn.close()  # not Redis: the handshake gets no answer

    listener.setblocking(False)
    loop.add(listener, EVENT_READ, accept)
    params = RedisParameters(retry_min=0.05, retry_max=0.4)
    client = connect(f"redis://127.0.0.1:{listener.getsockname()[1]}", params=params,
                     wait=False)
    run_for(loop, 1.7)
    gaps = [b - a for a, b in zip(accepted, accepted[1:])]
    assert len(gaps) >= 5, gaps
    for attempt, gap in enumerate(gaps):
        wait = min(0.4, 0.05 * 2 ** attempt)
        assert wait / 2 <= gap <= wait + 0.15, (attempt, gaps)
    assert fleet_log() == [("WARNING", fleet_log()[0][1])]
    assert client.state.outages == 1 and not client.up


def test_the_waits_start_over_once_a_connection_has_held(loop, redis, connect):
    params = RedisParameters(retry_min=0.05, retry_max=0.3)
    client = connect(redis.url(), params=params)
    changes = []
    client.watch(lambda up: changes.append((up, time.monotonic())))

    def reconnect() -> float:
        """Kill the client's connection: how long until it is up again."""
        count = len(changes)
        redis.call("CLIENT", "KILL", "TYPE", "normal")
        run_until(loop, lambda: len(changes) == count + 2)
        return changes[-1][1] - changes[-2][1]

    flapping = [reconnect() for _ in range(4)]  # none holds: 0.05, 0.1, 0.2, 0.3 at most
    assert flapping[-1] >= 0.15, flapping
    run_for(loop, 0.35)  # this one holds longer than retry_max
    assert reconnect() < 0.15, flapping  # 0.05 at most, again


def test_commands_fail_at_once_while_connecting(loop, listener, connect, fleet_log):
    # The kernel completes the connection, but nobody answers the handshake.
    client = connect(f"redis://127.0.0.1:{listener.getsockname()[1]}", wait=False)
    reply, error = ask(loop, client, "PING")
    assert isinstance(error, RedisUnavailable) and client.state.outages == 0
    run_until(loop, lambda: client.state.outages)
    assert "not connected in 0.5s" in client.state.last_error
    assert "not connected in 0.5s" in fleet_log()[0][1]


def test_no_descriptor_is_left_behind_by_reconnects_or_close(loop, redis, connect):
    before = len(os.listdir("/proc/self/fd"))
    quick = RedisParameters(retry_min=0.01, retry_max=0.02)
    client = connect(redis.url(), params=quick)
    subscriber = connect(redis.url(), kind=RedisSubscriber, params=quick)
    subscriber.subscribe("fds", lambda channel, message: None)
    run_until(loop, lambda: redis.call("PUBSUB", "NUMSUB", "fds")[1] == 1)
    for cycle in range(20):
        kind = "normal" if cycle % 2 else "pubsub"
        link = client if cycle % 2 else subscriber
        redis.call("CLIENT", "KILL", "TYPE", kind)
        run_until(loop, lambda: not link.up)
        run_until(loop, lambda: link.up)
    assert client.state.outages == 10 and subscriber.state.outages == 10
    assert len(os.listdir("/proc/self/fd")) == before + 2  # one connection each
    client.close()
    subscriber.close()
    assert len(os.listdir("/proc/self/fd")) == before
