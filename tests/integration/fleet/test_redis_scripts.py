"""Lua scripts by their SHA-1: loaded on each new connection, sent whole when Redis
does not know them (after SCRIPT FLUSH), and their errors delivered, never raised."""

from __future__ import annotations

from monkey_py_plugins.proxy_reverse.fleet.errors import RedisReplyError
from monkey_py_plugins.proxy_reverse.fleet.script import RedisScript, preload
from redis_support import run_until

ECHO = RedisScript("return {KEYS[1], ARGV[1]}")
FAILING = RedisScript("return redis.call('INCR', KEYS[1])")


def run(loop, client, script, keys, args):
    got = []
    script.run(client, keys, args, callback=lambda reply, error: got.append((reply, error)))
    run_until(loop, lambda: got)
    return got[0]


def test_a_script_is_preloaded_on_each_new_connection(loop, own_redis, connect):
    client = connect(own_redis.url(), wait=False)
    preload(client, (ECHO,))
    run_until(loop, lambda: own_redis.call("SCRIPT", "EXISTS", ECHO.sha) == [1])
    own_redis.restart()
    assert own_redis.call("SCRIPT", "EXISTS", ECHO.sha) == [0]
    run_until(loop, lambda: own_redis.call("SCRIPT", "EXISTS", ECHO.sha) == [1], timeout=10)


def test_a_script_redis_does_not_know_is_sent_whole(loop, redis, connect):
    client = connect(redis.url())
    redis.call("SCRIPT", "FLUSH")
    assert run(loop, client, ECHO, ["scripts:k"], ["v"]) == ([b"scripts:k", b"v"], None)
    assert redis.call("SCRIPT", "EXISTS", ECHO.sha) == [1]
    assert run(loop, client, ECHO, ["scripts:k"], [b"w"]) == ([b"scripts:k", b"w"], None)


def test_an_error_of_a_script_is_delivered(loop, redis, connect):
    client = connect(redis.url())
    redis.call("SET", "scripts:text", "not a number")
    reply, error = run(loop, client, FAILING, ["scripts:text"], [])
    assert reply is None and isinstance(error, RedisReplyError)
    assert "not an integer" in str(error)
