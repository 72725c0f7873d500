"""Helpers for the proxy cache's integration tests: an upstream whose answers a test
scripts per target, dates relative to now, and the cache's statistics."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Union

from monkey_py.static.conditional import http_date
from proxy_support import STATUS_URL, start_proxy
from rawhttp import Client
from upstreams import Exchange


@dataclass
class Answer:
    """What the upstream answers: status, headers and body, after ``delay`` seconds.

    ``hang_up``: close the connection without answering (a crashed upstream).
    """

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0
    hang_up: bool = False


@dataclass
class Raw:
    """A route answered by an upstream behaviour of its own (``Exchange -> keep-alive``)."""

    behaviour: Callable[[Exchange], bool]


Script = Union[Answer, Raw, Callable[[Exchange], Answer]]


class Routes:
    """An upstream behaviour: each target answers as the test set it (404 otherwise).

    A route is an Answer, a function of the exchange returning one, a ``Raw`` behaviour,
    or a list of them used one per request (the last one then repeats).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, list[Script]] = {}

    def set(self, target: str, *answers: Script) -> None:
        with self._lock:
            self._routes[target] = list(answers)

    def _next(self, target: str) -> Script | None:
        with self._lock:
            answers = self._routes.get(target)
            if not answers:
                return None
            return answers.pop(0) if len(answers) > 1 else answers[0]

    def __call__(self, exchange: Exchange) -> bool:
        script = self._next(exchange.request.target)
        if script is None:
            return exchange.respond(404, b"no route")
        if isinstance(script, Raw):
            return script.behaviour(exchange)
        answer = script(exchange) if callable(script) else script
        if answer.delay:
            time.sleep(answer.delay)
        if answer.hang_up:
            return False
        return exchange.respond(answer.status, answer.body, answer.headers)


def date(offset: float = 0.0) -> str:
    """An HTTP date ``offset`` seconds from now."""
    return http_date(time.time() + offset)


def fetches(upstream, target: str) -> int:
    """How many requests for ``target`` reached ``upstream``."""
    with upstream.cond:
        return sum(1 for received in upstream.received if received.target == target)


def received_for(upstream, target: str) -> list:
    with upstream.cond:
        return [received for received in upstream.received if received.target == target]


def status_document(port: int) -> dict:
    with Client(port) as client:
        response = client.request("GET", STATUS_URL + ".json")
    assert response.status == 200, response
    return json.loads(response.body)


def cache_figures(port: int, entry_index: int = 0) -> dict:
    """The cache counters of the ``entry_index``-th entry on the statistics page."""
    return status_document(port)["entries"][entry_index]["cache"]


def store_figures(port: int) -> dict:
    return status_document(port)["cache_store"]


def serving_worker(proxy, client: Client) -> int:
    """The pid of the worker that holds ``client``'s connection (it must have answered
    on it already), found through the socket's inode in /proc."""
    local = client.sock.getsockname()[1]
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                own, peer = fields[1].rsplit(":", 1)[1], fields[2].rsplit(":", 1)[1]
                if int(own, 16) == proxy.port and int(peer, 16) == local:
                    inodes.add(f"socket:[{fields[9]}]")
    for pid in proxy.worker_pids():
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return pid
            except FileNotFoundError:
                continue
    raise AssertionError("no worker holds the connection")


REDIS_DBS = {"redis": 0, "redis+tier": 1}
# The last command of a connection still in its handshake (or of this test's own).
HANDSHAKE = frozenset({"NULL", "auth", "select", "ping", "client|list"})


def store_keys(request, tmp_path_factory) -> dict[str, str]:
    """The [PROXY_DEFAULTS] keys of the cache store ``request.param`` names, for tests
    run over several stores: ``memory``; ``disk`` in a new directory; ``redis`` and
    ``redis+tier`` (with a memory tier): a database of the session's redis-server of
    their own, emptied first (call ``store_ready`` once the proxy has started)."""
    kind = request.param
    if kind == "memory":
        return {}
    if kind == "disk":
        return {"CacheStore": "disk", "CacheDirectory": str(tmp_path_factory.mktemp("cache"))}
    server = request.getfixturevalue("cache_redis")
    db = REDIS_DBS[kind]
    server.call("FLUSHDB", db=db)
    keys = {"CacheStore": server.url(db)}
    if kind == "redis+tier":
        keys["CacheMemoryTier"] = "16"
    return keys


def store_ready(request, workers: int = 1) -> None:
    """With a Redis store, wait until the proxy's workers have their links to it up."""
    if request.param in REDIS_DBS:
        await_redis_links(request.getfixturevalue("cache_redis"), REDIS_DBS[request.param],
                          workers)


def start_over_store(request, monkey, tmp_path_factory, *entries, **keys):
    """``start_proxy`` with the cache store ``request.param`` names (``store_keys``),
    returned once its links to Redis are up (``store_ready``)."""
    proxy = start_proxy(monkey, *entries, **keys, **store_keys(request, tmp_path_factory))
    store_ready(request)
    return proxy


def await_redis_links(server, db: int = 0, workers: int = 1, timeout: float = 10.0) -> None:
    """Wait until the ``workers`` of a proxy using Redis database ``db`` have their
    command and subscription links up (a request before that goes on without Redis, as
    it should, but a test of the shared cache wants it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        clients = [line + " " for line in server.call("CLIENT", "LIST").decode().splitlines()
                   if f" db={db} " in line]
        commands = subscribers = 0
        for line in clients:
            command = line.split(" cmd=", 1)[1].split(" ", 1)[0]
            if command == "subscribe":
                subscribers += 1
            elif command not in HANDSHAKE:
                commands += 1  # the link is up: it sent its scripts

        if commands >= workers and subscribers >= workers:
            time.sleep(0.05)
            return
        time.sleep(0.01)
    raise AssertionError(f"the proxy's Redis links are not up after {timeout}s")


def concurrently(requests: list[tuple[int, str]], timeout: float = 20) -> list:
    """A GET of each ``(port, target)``, each on its own connection, sent together; the
    responses in the same order."""
    clients = [Client(port, timeout=timeout) for port, _ in requests]
    barrier = threading.Barrier(len(requests))
    answers: list = [None] * len(requests)

    def run(index: int) -> None:
        barrier.wait()
        answers[index] = clients[index].request("GET", requests[index][1])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 10)
    for client in clients:
        client.close()
    return answers


def own_target(request, prefix: str) -> str:
    """A request target of the running test's own, under ``prefix``."""
    return prefix + re.sub(r"\W", "_", request.node.name)
