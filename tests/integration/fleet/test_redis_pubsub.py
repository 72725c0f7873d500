"""Pub/sub on its own connection: messages to channel and pattern handlers, unsubscribing,
and subscriptions that survive Redis restarts."""

from __future__ import annotations

from monkey_py_plugins.proxy_reverse.fleet.pubsub import RedisSubscriber
from redis_support import RedisServer, ask, run_until


def subscribed(redis, channel: str) -> bool:
    return redis.call("PUBSUB", "NUMSUB", channel)[1] > 0


def test_channel_and_pattern_handlers_get_channel_and_message(loop, redis, connect):
    client = connect(redis.url())
    subscriber = connect(redis.url(), kind=RedisSubscriber)
    got = []
    subscriber.subscribe("purge", lambda channel, message: got.append(("purge", channel,
                                                                        message)))
    subscriber.psubscribe(b"health:*", lambda channel, message: got.append(("health",
                                                                            channel, message)))
    run_until(loop, lambda: subscribed(redis, "purge")
              and redis.call("PUBSUB", "NUMPAT") == 1)
    ask(loop, client, "PUBLISH", "purge", b"/page?\x00\xff")
    ask(loop, client, "PUBLISH", "health:10.0.0.1:80", "down")
    ask(loop, client, "PUBLISH", "elsewhere", "nobody listens")
    run_until(loop, lambda: len(got) == 2)
    assert got == [("purge", b"purge", b"/page?\x00\xff"),
                   ("health", b"health:10.0.0.1:80", b"down")]
    assert subscriber.state.commands == 2 and subscriber.state.errors == 0


def test_every_handler_of_a_channel_until_unsubscribed(loop, redis, connect):
    client = connect(redis.url())
    subscriber = connect(redis.url(), kind=RedisSubscriber)
    first, second = [], []

    def one(channel, message):
        first.append(message)

    def two(channel, message):
        second.append(message)

    subscriber.subscribe("news", one)
    subscriber.subscribe("news", two)
    run_until(loop, lambda: subscribed(redis, "news"))
    ask(loop, client, "PUBLISH", "news", "1")
    run_until(loop, lambda: first == [b"1"] and second == [b"1"])
    subscriber.unsubscribe("news", one)
    ask(loop, client, "PUBLISH", "news", "2")
    run_until(loop, lambda: second == [b"1", b"2"])
    subscriber.unsubscribe("news", two)
    run_until(loop, lambda: not subscribed(redis, "news"))
    assert first == [b"1"] and second == [b"1", b"2"]


def test_a_failing_handler_stops_no_other(loop, redis, connect, caplog):
    client = connect(redis.url())
    subscriber = connect(redis.url(), kind=RedisSubscriber)
    got = []

    def broken(channel, message):
        raise RuntimeError("a handler's bug")

    subscriber.subscribe("fragile", broken)
    subscriber.subscribe("fragile", lambda channel, message: got.append(message))
    run_until(loop, lambda: subscribed(redis, "fragile"))
    ask(loop, client, "PUBLISH", "fragile", "a")
    ask(loop, client, "PUBLISH", "fragile", "b")
    run_until(loop, lambda: got == [b"a", b"b"])
    assert "a handler's bug" in caplog.text and subscriber.up


def test_subscriptions_survive_a_redis_restart(loop, own_redis, connect):
    client = connect(own_redis.url())
    subscriber = connect(own_redis.url(), kind=RedisSubscriber)
    changes, got = [], []
    subscriber.watch(changes.append)
    subscriber.subscribe("invalidate", lambda channel, message: got.append(message))
    subscriber.psubscribe("fleet:*", lambda channel, message: got.append(channel))
    run_until(loop, lambda: subscribed(own_redis, "invalidate"))
    for restart in range(2):
        own_redis.restart()
        run_until(loop, lambda: client.up and subscriber.up and len(changes) == 2 * restart + 2)
        run_until(loop, lambda: subscribed(own_redis, "invalidate"))
        ask(loop, client, "PUBLISH", "invalidate", f"after restart {restart}")
        ask(loop, client, "PUBLISH", "fleet:figures", "x")
        run_until(loop, lambda: len(got) == 2 * restart + 2)
    assert got == [b"after restart 0", b"fleet:figures", b"after restart 1", b"fleet:figures"]
    assert changes == [False, True, False, True]


def test_subscribing_while_down_takes_effect_when_up(loop, own_redis, connect):
    client = connect(own_redis.url())
    subscriber = connect(own_redis.url(), kind=RedisSubscriber)
    own_redis.kill()
    run_until(loop, lambda: not subscriber.up)
    got = []
    subscriber.subscribe("later", lambda channel, message: got.append(message))
    own_redis.start()
    run_until(loop, lambda: client.up and subscriber.up)
    run_until(loop, lambda: subscribed(own_redis, "later"))
    ask(loop, client, "PUBLISH", "later", "hello")
    run_until(loop, lambda: got == [b"hello"])


def test_a_subscription_redis_refuses_is_logged(loop, tmp_path, connect, caplog):
    server = RedisServer(tmp_path / "redis", password="pw")
    try:
        server.call("ACL", "SETUSER", "bob", "on", ">b0b", "~*", "resetchannels", "&allowed",
                    "+@all")
        subscriber = connect(f"redis://bob:b0b@127.0.0.1:{server.port}", kind=RedisSubscriber)
        subscriber.subscribe("allowed", lambda channel, message: None)
        subscriber.subscribe("forbidden", lambda channel, message: None)
        run_until(loop, lambda: "NOPERM" in caplog.text)
        assert "SUBSCRIBE b'forbidden' refused: NOPERM" in caplog.text
        assert subscriber.up and subscriber.state.errors == 1
        assert server.call("PUBSUB", "NUMSUB", "allowed")[1] == 1
    finally:
        server.stop()
