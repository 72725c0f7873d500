"""A worker's links to Redis: one command link and one subscription link per Redis,
shared by whatever asks, all closed with the worker."""

from __future__ import annotations

from monkey_py.config import Location
from monkey_py_plugins.proxy_reverse.fleet.address import parse_redis_url
from monkey_py_plugins.proxy_reverse.fleet.link import RedisParameters
from monkey_py_plugins.proxy_reverse.fleet.links import FleetLinks
from redis_support import ask, run_until


def test_one_link_of_each_kind_per_redis_shared_and_closed(loop, redis):
    links = FleetLinks(loop, RedisParameters(timeout=0.2, connect_timeout=0.5))
    address = parse_redis_url(redis.url(), Location("a.conf", 1))
    same = parse_redis_url(redis.url(), Location("b.conf", 7))
    other = parse_redis_url(redis.url(db=1), Location("a.conf", 2))
    client = links.client(address)
    assert links.client(same) is client
    assert links.client(other) is not client
    subscriber = links.subscriber(address)
    assert links.subscriber(same) is subscriber
    got = []
    subscriber.subscribe("links-test", lambda channel, message: got.append(message))
    run_until(loop, lambda: client.up and subscriber.up
              and redis.call("PUBSUB", "NUMSUB", "links-test")[1] == 1)
    ask(loop, client, "PUBLISH", "links-test", "hello")
    run_until(loop, lambda: got == [b"hello"])
    assert links.links() == [client, links.client(other), subscriber]
    links.close()
    assert client.closed and subscriber.closed and not client.up
    run_until(loop, lambda: redis.call("PUBSUB", "NUMSUB", "links-test")[1] == 0)
    assert links.links() == []
