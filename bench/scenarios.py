"""The benchmark scenarios and the runner that executes one of them.

A scenario is a name, a ``prepare`` step that writes the configurations and returns the
servers to start (monkey_py, nginx, the floor when the scenario has one, and helpers such
as upstreams) with the URL path to load, and a ``measure`` step. Throughput scenarios
share one measure step built by ``throughput()`` from the wrk parameters, so a new one is
a ``prepare`` function and one ``Scenario(...)`` line in ``SCENARIOS``.
"""

from __future__ import annotations

import os
import resource
import urllib.request
from pathlib import Path
from typing import Callable

import loads
import procfs
from measures import compare_stores, download, measure_idle, throughput, url, with_reference
from model import MONKEY, Context, Outcome, Scenario, Setup, SetupError
from servers import (Certificate, ServerFailed, ServerProcess, free_port, make_certificate,
                     monkey_server, nginx_cache_config, nginx_proxy_config, nginx_server,
                     nginx_static_body, proxy_floor, redis_server, static_floor,
                     write_nginx_config)

STATIC_FILE = "8k.bin"
STATIC_SIZE = 8192
SMALL_FILE = "200b.txt"
LARGE_FILE = "1g.bin"
LARGE_SIZE = 1_000_000_000


def expect_body(expected: bytes) -> Callable[[str], str | None]:
    """A check that one GET of the URL answers 200 with exactly ``expected``."""
    def verify(url: str) -> str | None:
        status, body = loads.fetch(url)
        if status != 200:
            return f"GET {url} answered {status}"
        if body != expected:
            return f"GET {url} returned {len(body)} bytes that differ from the expected file"
        return None
    return verify


def expect_any_of(bodies: list[bytes], tries: int = 4) -> Callable[[str], str | None]:
    """A check that GETs answer 200 with one of ``bodies`` and reach each of them."""
    def verify(url: str) -> str | None:
        seen = set()
        for _ in range(tries):
            status, body = loads.fetch(url)
            if status != 200 or body not in bodies:
                return f"GET {url} answered {status} with an unexpected {len(body)}-byte body"
            seen.add(body)
        if len(seen) < len(bodies):
            return f"{tries} GETs of {url} reached only {len(seen)} of {len(bodies)} upstreams"
        return None
    return verify


def expect_status(expected: int = 200) -> Callable[[str], str | None]:
    """A check that a GET answers ``expected``, reading only the start of a large body."""
    def verify(url: str) -> str | None:
        status, _ = loads.fetch(url, limit=65536)
        return None if status == expected else f"GET {url} answered {status}"
    return verify


def make_docroot(path: Path, files: dict[str, bytes | int]) -> Path:
    """A document root with the given files; an int makes a sparse file of that size."""
    path.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if isinstance(content, int):
            with open(path / name, "wb") as handle:
                handle.truncate(content)
        else:
            (path / name).write_bytes(content)
    return path


def static_setup(ctx: Context, workdir: Path, certificate: Certificate | None = None
                 ) -> Setup:
    """monkey_py and nginx (with ``open_file_cache``) serving the same random 8 KB file
    from one document root; over HTTPS with ``certificate``."""
    body = os.urandom(STATIC_SIZE)
    docroot = make_docroot(workdir / "htdocs", {STATIC_FILE: body})
    monkey = monkey_server(workdir, MONKEY, free_port(), ctx.server_cpu, docroot=docroot,
                           certificate=certificate)
    port = free_port()
    conf = write_nginx_config(workdir / "nginx", port,
                              nginx_static_body(docroot, open_file_cache=True),
                              connections=max(16384, ctx.idle_connections + 1024),
                              certificate=certificate)
    nginx = nginx_server(workdir, "nginx", port, ctx.server_cpu, conf,
                         scheme="https" if certificate else "http")
    return Setup(monkey, nginx, f"/{STATIC_FILE}", expect_body(body))


def prepare_static(ctx: Context, workdir: Path) -> Setup:
    """The static setup, and the static floor answering the same file from memory."""
    setup = static_setup(ctx, workdir)
    setup.floor = static_floor(workdir, free_port(), ctx.server_cpu,
                               workdir / "htdocs" / STATIC_FILE)
    return setup


def prepare_idle(ctx: Context, workdir: Path) -> Setup:
    """The static setup, once the machine is known to allow that many connections."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < ctx.idle_connections + 100:
        raise SetupError(f"the hard open-file limit is {hard}, too low for "
                         f"{ctx.idle_connections} connections: raise it (ulimit -Hn) "
                         "or pass a smaller --idle-connections")
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    if high - low + 1 < ctx.idle_connections + 100:
        raise SetupError(f"the ephemeral port range {low}-{high} is too small for "
                         f"{ctx.idle_connections} connections: widen "
                         "net.ipv4.ip_local_port_range or pass a smaller --idle-connections")
    return static_setup(ctx, workdir)


def upstreams(ctx: Context, workdir: Path, server_body: Callable[[int, Path], str]
              ) -> list[ServerProcess]:
    """Two nginx upstreams on the load CPU, serving what ``server_body(index, docroot)`` says.

    They share the load CPU with wrk so that the server CPU runs nothing but the proxy
    under test, and its CPU time per request is the proxy's alone.
    """
    servers = []
    for index in (1, 2):
        docroot = make_docroot(workdir / f"upstream{index}-htdocs", {})
        port = free_port()
        conf = write_nginx_config(workdir / f"upstream{index}", port,
                                  server_body(index, docroot))
        servers.append(nginx_server(workdir, f"upstream{index}", port, ctx.load_cpu, conf))
    return servers


def proxies(ctx: Context, workdir: Path, helpers: list[ServerProcess],
            certificate: Certificate | None = None) -> tuple[ServerProcess, ServerProcess]:
    """monkey_py's proxy_reverse and an nginx proxy_pass to the same upstreams; their
    clients speak HTTPS with ``certificate``."""
    addresses = [f"127.0.0.1:{helper.port}" for helper in helpers]
    docroot = make_docroot(workdir / "htdocs", {})
    monkey = monkey_server(workdir, MONKEY, free_port(), ctx.server_cpu, docroot=docroot,
                           proxy_servers=addresses, certificate=certificate)
    port = free_port()
    nginx = nginx_server(workdir, "nginx", port, ctx.server_cpu,
                         nginx_proxy_config(workdir / "nginx", port, addresses, certificate),
                         scheme="https" if certificate else "http")
    return monkey, nginx


def small_body(index: int) -> bytes:
    """A 200-byte body that names its upstream, so round robin can be checked."""
    return f"upstream {index} ".encode().ljust(200, b".")


def small_answer(index: int, _docroot: Path) -> str:
    """An upstream's server body: ``small_body(index)`` from memory, the cheapest answer
    nginx has, to spare the load CPU."""
    return f'location / {{ return 200 "{small_body(index).decode()}"; }}'


def prepare_proxy(ctx: Context, workdir: Path) -> Setup:
    """Both proxies in front of two upstreams that answer 200 bytes from memory."""
    helpers = upstreams(ctx, workdir, small_answer)
    monkey, nginx = proxies(ctx, workdir, helpers)
    floor = proxy_floor(workdir, free_port(), ctx.server_cpu,
                        [f"127.0.0.1:{helper.port}" for helper in helpers])
    return Setup(monkey, nginx, f"/{SMALL_FILE}",
                 expect_any_of([small_body(1), small_body(2)]), helpers, floor)


def prepare_https_static(ctx: Context, workdir: Path) -> Setup:
    """The static setup over HTTPS: the same certificate, protocols and keep-alive."""
    return static_setup(ctx, workdir, make_certificate(workdir / "certificate"))


def prepare_https_proxy(ctx: Context, workdir: Path) -> Setup:
    """The proxy setup with HTTPS clients (plain upstreams), as TLS terminators."""
    helpers = upstreams(ctx, workdir, small_answer)
    monkey, nginx = proxies(ctx, workdir, helpers, make_certificate(workdir / "certificate"))
    return Setup(monkey, nginx, f"/{SMALL_FILE}",
                 expect_any_of([small_body(1), small_body(2)]), helpers)


def prepare_proxy_large(ctx: Context, workdir: Path) -> Setup:
    """Both proxies in front of two upstreams that serve a 1 GB sparse file."""
    def large_file(_index: int, docroot: Path) -> str:
        make_docroot(docroot, {LARGE_FILE: LARGE_SIZE})
        return nginx_static_body(docroot)

    helpers = upstreams(ctx, workdir, large_file)
    monkey, nginx = proxies(ctx, workdir, helpers)
    return Setup(monkey, nginx, f"/{LARGE_FILE}", expect_status(200), helpers)


def expect_cache_hit(expected: bytes) -> Callable[[str], str | None]:
    """A check that a GET answers ``expected`` and the next one is a cache hit."""
    def verify(target: str) -> str | None:
        status, body = loads.fetch(target)
        if status != 200 or body != expected:
            return f"GET {target} answered {status} with an unexpected {len(body)}-byte body"
        with urllib.request.urlopen(target, timeout=10) as response:
            hit = (response.headers.get("Cache-Status", "").startswith("monkey_py; hit")
                   or response.headers.get("X-Cache-Status") == "HIT")
            body = response.read()
        if not hit or body != expected:
            return f"a second GET of {target} was not a cache hit with the same body"
        return None
    return verify


def cacheable_answer(_index: int, _docroot: Path) -> str:
    """An upstream's server body: the same 200 bytes from both, cacheable for an hour."""
    return ('location / { add_header Cache-Control "max-age=3600"; '
            f'return 200 "{small_body(1).decode()}"; }}')


def prepare_cache(ctx: Context, workdir: Path) -> Setup:
    """Cache hits: both proxies cache a 200-byte response of two upstreams (monkey_py
    ``Cache On`` with its memory store, nginx ``proxy_cache``); both also serve the same
    200 bytes as a static file, the reference of the comparison. The floor is the static
    floor answering those 200 bytes from memory, to every target."""
    body = small_body(1)
    helpers = upstreams(ctx, workdir, cacheable_answer)
    addresses = [f"127.0.0.1:{helper.port}" for helper in helpers]
    docroot = make_docroot(workdir / "htdocs", {})
    make_docroot(docroot / "static", {SMALL_FILE: body})
    monkey = monkey_server(workdir, MONKEY, free_port(), ctx.server_cpu, docroot=docroot,
                           proxy_servers=addresses, proxy_match="^/cached/",
                           proxy_options=("Cache On",))
    port = free_port()
    nginx = nginx_server(workdir, "nginx", port, ctx.server_cpu, nginx_cache_config(
        workdir / "nginx", port, addresses, "/cached/", docroot))
    floor = static_floor(workdir, free_port(), ctx.server_cpu, docroot / "static" / SMALL_FILE)
    return Setup(monkey, nginx, f"/cached/{SMALL_FILE}", expect_cache_hit(body), helpers,
                 floor, floor_verify=expect_body(body))


def prepare_cache_redis(ctx: Context, workdir: Path) -> Setup:
    """Cache hits of the ``cache`` scenario's 200 bytes from three monkey_py servers:
    the memory store, the Redis store (a redis-server on the load CPU, as an upstream
    is), and the Redis store with a memory tier (``measures.compare_stores``)."""
    body = small_body(1)
    redis = redis_server(workdir, free_port(), ctx.load_cpu)
    helpers = [*upstreams(ctx, workdir, cacheable_answer), redis]
    addresses = [f"127.0.0.1:{helper.port}" for helper in helpers[:-1]]
    docroot = make_docroot(workdir / "htdocs", {})

    def proxy(name: str, *options: str) -> ServerProcess:
        return monkey_server(workdir, name, free_port(), ctx.server_cpu, docroot=docroot,
                             proxy_servers=addresses, proxy_match="^/cached/",
                             proxy_options=("Cache On", *options))

    store = f"CacheStore redis://127.0.0.1:{redis.port}/0"
    return Setup(proxy("redis", store), proxy("memory"), f"/cached/{SMALL_FILE}",
                 expect_cache_hit(body), helpers, proxy("redis_tier", store,
                                                        "CacheMemoryTier 16"))


SCENARIOS = [
    Scenario("static", "the same 8 KB file under wrk, keep-alive",
             prepare_static, throughput()),
    Scenario("idle", "memory with many (--idle-connections) idle keep-alive connections",
             prepare_idle, measure_idle),
    Scenario("proxy", "200-byte responses through a reverse proxy to two upstreams",
             prepare_proxy, throughput(), plugins=("proxy_reverse",)),
    Scenario("https_static", "the static scenario over HTTPS (TLS 1.3, keep-alive)",
             prepare_https_static, throughput(), plugins=("tls",)),
    Scenario("https_proxy", "the proxy scenario with HTTPS clients (TLS 1.3, keep-alive)",
             prepare_https_proxy, throughput(), plugins=("proxy_reverse", "tls")),
    Scenario("proxy_large", "a 1 GB response through a reverse proxy, fetched with curl",
             prepare_proxy_large, download(LARGE_SIZE), plugins=("proxy_reverse",)),
    Scenario("cache", "cache hits of a 200-byte response, next to the same static file",
             prepare_cache, with_reference(throughput(), f"/static/{SMALL_FILE}",
                                           "static file, same 200 B"),
             plugins=("proxy_reverse",)),
    Scenario("cache_redis", "cache hits from the Redis store, with and without its memory "
             "tier, against the memory store", prepare_cache_redis, compare_stores,
             plugins=("proxy_reverse",)),
]
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


def run_scenario(scenario: Scenario, ctx: Context) -> Outcome:
    """Prepare, start, verify and measure one scenario; failures become an Outcome."""
    outcome = Outcome(scenario.name)
    workdir = ctx.workdir / scenario.name
    try:
        setup = scenario.prepare(ctx, workdir)
    except (SetupError, OSError) as exc:
        outcome.status, outcome.error = "FAILED", str(exc)
        return outcome
    started: list[ServerProcess] = []
    try:
        for server in setup.servers():
            server.start()
            started.append(server)
        for side, server in setup.sides():
            try:
                problem = setup.check(side)(url(server, setup.path))
            except loads.LoadError as exc:
                problem = str(exc)
            if problem:
                raise ServerFailed(side, problem, server.output_tail())
        scenario.measure(ctx, setup, outcome)
    except ServerFailed as exc:
        outcome.status, outcome.error, outcome.output_tail = "FAILED", str(exc), exc.output_tail
    except (loads.LoadError, procfs.ProcessGone, OSError) as exc:
        dead = next((server for server in started if not server.alive()), None)
        shown = dead or setup.monkey
        where = (f"{dead.name} exited" if dead else "every server is still running")
        outcome.status, outcome.error = "FAILED", f"{exc} ({where}; {shown.name} output below)"
        outcome.output_tail = shown.output_tail()
    finally:
        for server in reversed(started):
            server.stop()
    return outcome
