"""rediss://: the client and the subscriber over TLS against redis-server's own TLS port
(certificates made with trustme), the certificate checked, and no descriptor leaked."""

from __future__ import annotations

import os

import pytest

from monkey_py_plugins.proxy_reverse.fleet.errors import RedisUnavailable
from monkey_py_plugins.proxy_reverse.fleet.link import RedisParameters
from monkey_py_plugins.proxy_reverse.fleet.pubsub import RedisSubscriber
from redis_support import RedisServer, ask, run_until
from tls_support import Certificates


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    root = tmp_path_factory.mktemp("redis-tls")
    server = RedisServer(root / "redis", password="pw", tls=Certificates(root / "certs"))
    yield server
    server.stop()


def trusted_url(server, db: int = 0) -> str:
    return f"{server.url(db)}?ca_file={server.tls.ca_file()}"


def test_commands_and_messages_over_tls(loop, tls_redis, connect):
    client = connect(trusted_url(tls_redis, db=3))
    subscriber = connect(trusted_url(tls_redis), kind=RedisSubscriber)
    large = os.urandom(1 << 20)
    assert ask(loop, client, "SET", "secure", large) == (b"OK", None)
    assert ask(loop, client, "GET", "secure") == (large, None)
    assert tls_redis.call("STRLEN", "secure", db=3) == 1 << 20
    got = []
    subscriber.subscribe("secure", lambda channel, message: got.append(message))
    run_until(loop, lambda: tls_redis.call("PUBSUB", "NUMSUB", "secure")[1] == 1)
    ask(loop, client, "PUBLISH", "secure", "over tls")
    run_until(loop, lambda: got == [b"over tls"])


def test_the_name_is_checked_against_the_certificate(loop, tls_redis, connect):
    by_name = trusted_url(tls_redis).replace("127.0.0.1", "localhost")
    assert ask(loop, connect(by_name), "PING") == (b"PONG", None)


def test_a_certificate_the_system_does_not_trust_keeps_the_link_down(loop, tls_redis,
                                                                     connect):
    client = connect(tls_redis.url(), wait=False)  # no ca_file: the system's CAs
    run_until(loop, lambda: client.state.outages)
    assert "CERTIFICATE_VERIFY_FAILED" in client.state.last_error
    reply, error = ask(loop, client, "PING")
    assert isinstance(error, RedisUnavailable) and not client.up


def test_tls_reconnects_leave_no_descriptor_behind(loop, tls_redis, connect):
    before = len(os.listdir("/proc/self/fd"))
    client = connect(trusted_url(tls_redis), params=RedisParameters(retry_min=0.01,
                                                                     retry_max=0.02))
    for _ in range(10):
        tls_redis.call("CLIENT", "KILL", "TYPE", "normal")
        run_until(loop, lambda: not client.up)
        run_until(loop, lambda: client.up)
    assert client.state.outages == 10
    client.close()
    assert len(os.listdir("/proc/self/fd")) == before
