"""The Redis client on a real loop against a real redis-server: commands and replies,
binary values, error replies, pipelining, AUTH and SELECT, and callbacks' guarantees."""

from __future__ import annotations

import logging

from monkey_py_plugins.proxy_reverse.fleet.errors import RedisReplyError, RedisUnavailable
from monkey_py_plugins.proxy_reverse.fleet.link import RedisParameters
from redis_support import RedisServer, ask, ask_all, run_for, run_until


def test_set_get_del_expire(loop, redis, connect):
    client = connect(redis.url())
    assert ask(loop, client, "SET", "basics", "value") == (b"OK", None)
    assert ask(loop, client, "GET", "basics") == (b"value", None)
    assert ask(loop, client, "EXPIRE", "basics", 100) == (1, None)
    ttl, error = ask(loop, client, "TTL", "basics")
    assert error is None and 99 <= ttl <= 100
    assert ask(loop, client, "DEL", "basics") == (1, None)
    assert ask(loop, client, "GET", "basics") == (None, None)
    assert ask(loop, client, "SET", "basics:px", 1.5, "PX", 60000) == (b"OK", None)
    assert redis.call("GET", "basics:px") == b"1.5"


def test_binary_values_round_trip(loop, redis, connect):
    client = connect(redis.url())
    every_byte = bytes(range(256)) * 4
    large = b"\r\n\x00$*" * 300_000  # 1.5 MB, RESP's own bytes included
    assert ask(loop, client, "SET", b"binary:\xff\x00", every_byte) == (b"OK", None)
    assert ask(loop, client, "GET", b"binary:\xff\x00") == (every_byte, None)
    assert ask(loop, client, "SET", "binary:large", large) == (b"OK", None)
    assert ask(loop, client, "GET", "binary:large") == (large, None)
    assert ask(loop, client, "SET", "binary:text", "é") == (b"OK", None)
    assert ask(loop, client, "GET", "binary:text") == ("é".encode(), None)


def test_an_error_reply_is_an_error_and_the_connection_goes_on(loop, redis, connect):
    client = connect(redis.url())
    ask(loop, client, "SET", "wrongtype", "a string")
    reply, error = ask(loop, client, "HGET", "wrongtype", "field")
    assert reply is None and isinstance(error, RedisReplyError)
    assert str(error).startswith("WRONGTYPE")
    reply, error = ask(loop, client, "NOSUCHCOMMAND")
    assert isinstance(error, RedisReplyError) and "unknown command" in str(error)
    assert ask(loop, client, "GET", "wrongtype") == (b"a string", None)
    state = client.state
    assert (state.up, state.errors, state.timeouts, state.outages) == (True, 2, 0, 0)
    assert state.commands == 4


def test_1000_commands_of_one_iteration_leave_in_one_write(loop, redis, connect):
    client = connect(redis.url())
    got = []
    for _ in range(1000):
        client.command("INCR", "pipelined", callback=lambda reply, error: got.append(reply))
    conn = client.connection
    assert len(conn.outgoing) == 1000 and len(conn.waiting) == 1000
    loop.run_once()  # the iteration's end: one write for all of them
    assert conn.outgoing == []
    run_until(loop, lambda: len(got) == 1000)
    assert got == list(range(1, 1001))
    assert not conn.waiting and client.connection is conn


def test_no_callback_is_called_by_the_call_that_sends(loop, redis, connect):
    client = connect(redis.url())
    got = []
    client.command("PING", callback=lambda reply, error: got.append(reply))
    client.pipeline([], callback=lambda replies, error: got.append(replies))
    assert got == []
    run_until(loop, lambda: len(got) == 2)
    assert sorted(got, key=repr) == [[], b"PONG"]


def test_pipeline_gives_every_reply_to_one_callback(loop, redis, connect):
    client = connect(redis.url())
    commands = [("SET", "pipe", "1"), ("INCR", "pipe"), ("GET", "pipe")]
    assert ask_all(loop, client, commands) == ([b"OK", 2, b"2"], None)


def test_pipeline_with_an_error_reply_keeps_the_replies(loop, redis, connect):
    client = connect(redis.url())
    commands = [("SET", "pipe:err", "x"), ("INCR", "pipe:err"), ("GET", "pipe:err")]
    replies, error = ask_all(loop, client, commands)
    assert isinstance(error, RedisReplyError) and replies[1] is error
    assert replies[0] == b"OK" and replies[2] == b"x"


def test_a_transaction_through_pipeline(loop, redis, connect):
    client = connect(redis.url())
    commands = [("MULTI",), ("SET", "tx", "a"), ("APPEND", "tx", "b"), ("EXEC",)]
    assert ask_all(loop, client, commands) == ([b"OK", b"QUEUED", b"QUEUED", [b"OK", 2]], None)


def test_select_chooses_the_database(loop, redis, connect):
    client = connect(redis.url(db=5))
    assert ask(loop, client, "SET", "in-db-5", "yes") == (b"OK", None)
    assert redis.call("GET", "in-db-5", db=5) == b"yes"
    assert redis.call("GET", "in-db-5", db=0) is None


def test_auth_with_a_password_and_with_an_acl_user(loop, tmp_path, connect):
    server = RedisServer(tmp_path / "redis", password="s3cret")
    try:
        client = connect(server.url(db=2))
        assert ask(loop, client, "SET", "authed", "1") == (b"OK", None)
        assert server.call("GET", "authed", db=2) == b"1"
        assert server.call("ACL", "SETUSER", "alice", "on", ">w0nder", "~*", "&*",
                           "+@all") == b"OK"
        alice = connect(f"redis://alice:w0nder@127.0.0.1:{server.port}/2")
        assert ask(loop, alice, "ACL", "WHOAMI") == (b"alice", None)
        assert ask(loop, alice, "GET", "authed") == (b"1", None)
    finally:
        server.stop()


def test_a_wrong_password_keeps_the_link_down_and_says_why(loop, tmp_path, connect, caplog):
    server = RedisServer(tmp_path / "redis", password="s3cret")
    try:
        with caplog.at_level(logging.WARNING, "monkey_py.proxy_reverse.fleet"):
            client = connect(f"redis://:n0t-it@127.0.0.1:{server.port}/0", wait=False)
            run_until(loop, lambda: client.state.outages)
            reply, error = ask(loop, client, "GET", "x")
        assert isinstance(error, RedisUnavailable) and "WRONGPASS" in str(error)
        assert "WRONGPASS" in client.state.last_error and not client.up
        assert [r.levelname for r in caplog.records] == ["WARNING"]
        assert "WRONGPASS" in caplog.text and "n0t-it" not in caplog.text
    finally:
        server.stop()


def test_a_failing_callback_costs_no_other_reply(loop, redis, connect, caplog):
    client = connect(redis.url())
    got = []

    def broken(reply, error):
        raise ValueError("a caller's bug")

    client.command("PING", callback=broken)
    client.command("PING", callback=lambda reply, error: got.append(reply))
    run_until(loop, lambda: got)
    assert got == [b"PONG"] and client.up
    assert "a caller's bug" in caplog.text


def test_over_max_waiting_commands_fail_at_once(loop, redis, connect):
    client = connect(redis.url(), params=RedisParameters(max_waiting=10))
    got = []
    for _ in range(11):
        client.command("PING", callback=lambda reply, error: got.append((reply, error)))
    run_until(loop, lambda: len(got) == 11)
    refused = [error for _, error in got if error is not None]
    assert len(refused) == 1 and "10 Redis commands await replies" in str(refused[0])
    assert got.count((b"PONG", None)) == 10 and client.up


def test_close_fails_what_waits_once_and_reconnects_no_more(loop, redis, connect):
    client = connect(redis.url())
    got = []
    for _ in range(3):
        client.command("PING", callback=lambda reply, error: got.append(error))
    client.close()
    assert len(got) == 3 and all(isinstance(e, RedisUnavailable) for e in got)
    client.command("PING", callback=lambda reply, error: got.append(error))
    run_for(loop, 0.1)  # longer than FAST's first wait to reconnect
    assert len(got) == 4 and not client.up
