"""The benchmark scenarios and the runner that executes one of them.

A scenario is a name, a ``prepare`` step that writes the configurations and returns the
servers to start (monkey_py, nginx, and helpers such as upstreams) with the URL path to
load, and a ``measure`` step. Throughput scenarios share one measure step built by
``throughput()`` from the wrk parameters, so a new one is a ``prepare`` function and one
``Scenario(...)`` line in ``SCENARIOS``.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

import loads
import procfs
from servers import (ServerFailed, ServerProcess, free_port, monkey_server, nginx_proxy_config,
                     nginx_server, nginx_static_body, write_nginx_config)

STATIC_FILE = "8k.bin"
STATIC_SIZE = 8192
SMALL_FILE = "200b.txt"
LARGE_FILE = "1g.bin"
LARGE_SIZE = 1_000_000_000
MONKEY, NGINX = "monkey_py", "nginx"
MIB = 1024 * 1024
OTHER_LOAD_WARNING = 10.0
SATURATED = 90.0


class SetupError(RuntimeError):
    """This machine cannot run a scenario as configured; the message says what to change."""


@dataclass
class Context:
    """Options of this run, shared by every scenario."""

    workdir: Path
    duration: int
    warmup: int
    rounds: int
    connections: int
    idle_connections: int
    server_cpu: int = 1
    load_cpu: int = 0
    log: Callable[[str], None] = print


@dataclass
class Metric:
    """One row of the result table; ``better`` is 'higher', 'lower' or '' (no ratio)."""

    name: str
    unit: str
    monkey: float | None
    nginx: float | None
    better: str = "higher"

    @property
    def ratio(self) -> float | None:
        """monkey_py divided by nginx, when both exist and the metric has a ratio."""
        if not self.better or self.monkey is None or not self.nginx:
            return None
        return self.monkey / self.nginx


@dataclass
class Outcome:
    """What a scenario produced: metrics and notes, or why it failed or was skipped."""

    scenario: str
    status: str = "ok"
    metrics: list[Metric] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""
    output_tail: str = ""
    raw: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        data = asdict(self)
        for row, metric in zip(data["metrics"], self.metrics):
            row["ratio"] = metric.ratio
        return data


@dataclass
class Setup:
    """The servers of one scenario and what to request from them."""

    monkey: ServerProcess
    nginx: ServerProcess
    path: str
    verify: Callable[[str], str | None]
    helpers: list[ServerProcess] = field(default_factory=list)

    def sides(self) -> list[tuple[str, ServerProcess]]:
        return [(MONKEY, self.monkey), (NGINX, self.nginx)]

    def helper_pids(self) -> list[int]:
        return [pid for helper in self.helpers for pid in helper.pids()]


Measure = Callable[[Context, Setup, Outcome], None]


@dataclass
class Scenario:
    """A named benchmark: configs and servers from ``prepare``, figures from ``measure``."""

    name: str
    description: str
    prepare: Callable[[Context, Path], Setup]
    measure: Measure
    plugins: tuple[str, ...] = ()

    def missing_prerequisite(self) -> str | None:
        """Why this scenario cannot run in this environment, or None."""
        installed = {point.name for point in metadata.entry_points(group="monkey_py.plugins")}
        missing = [name for name in self.plugins if name not in installed]
        if missing:
            return f"monkey_py plugin {', '.join(missing)} is not installed"
        return None


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


def static_servers(ctx: Context, workdir: Path) -> tuple[ServerProcess, ServerProcess, bytes]:
    """monkey_py and nginx serving the same 8 KB file from one document root."""
    body = os.urandom(STATIC_SIZE)
    docroot = make_docroot(workdir / "htdocs", {STATIC_FILE: body})
    monkey = monkey_server(workdir, MONKEY, free_port(), ctx.server_cpu, docroot=docroot)
    port = free_port()
    conf = write_nginx_config(workdir / "nginx", port, nginx_static_body(docroot),
                              connections=max(16384, ctx.idle_connections + 1024))
    nginx = nginx_server(workdir, "nginx", port, ctx.server_cpu, conf)
    return monkey, nginx, body


def prepare_static(ctx: Context, workdir: Path) -> Setup:
    monkey, nginx, body = static_servers(ctx, workdir)
    return Setup(monkey, nginx, f"/{STATIC_FILE}", expect_body(body))


def prepare_idle(ctx: Context, workdir: Path) -> Setup:
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
    return prepare_static(ctx, workdir)


def upstreams(ctx: Context, workdir: Path, server_body: Callable[[int, Path], str]
              ) -> list[ServerProcess]:
    """Two nginx upstreams on the load CPU; ``server_body(index, docroot)`` says what each serves.

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


def proxies(ctx: Context, workdir: Path, helpers: list[ServerProcess]
            ) -> tuple[ServerProcess, ServerProcess]:
    """monkey_py's proxy_reverse and an nginx proxy_pass to the same upstreams."""
    addresses = [f"127.0.0.1:{helper.port}" for helper in helpers]
    docroot = make_docroot(workdir / "htdocs", {})
    monkey = monkey_server(workdir, MONKEY, free_port(), ctx.server_cpu, docroot=docroot,
                           proxy_servers=addresses)
    port = free_port()
    nginx = nginx_server(workdir, "nginx", port, ctx.server_cpu,
                         nginx_proxy_config(workdir / "nginx", port, addresses))
    return monkey, nginx


def small_body(index: int) -> bytes:
    """A 200-byte body that names its upstream, so round robin can be checked."""
    return f"upstream {index} ".encode().ljust(200, b".")


def prepare_proxy(ctx: Context, workdir: Path) -> Setup:
    def answer(index: int, _docroot: Path) -> str:
        # nginx answers from memory: the cheapest upstream, to spare the load CPU.
        return f'location / {{ return 200 "{small_body(index).decode()}"; }}'

    helpers = upstreams(ctx, workdir, answer)
    monkey, nginx = proxies(ctx, workdir, helpers)
    return Setup(monkey, nginx, f"/{SMALL_FILE}",
                 expect_any_of([small_body(1), small_body(2)]), helpers)


def prepare_proxy_large(ctx: Context, workdir: Path) -> Setup:
    def large_file(_index: int, docroot: Path) -> str:
        make_docroot(docroot, {LARGE_FILE: LARGE_SIZE})
        return nginx_static_body(docroot)

    helpers = upstreams(ctx, workdir, large_file)
    monkey, nginx = proxies(ctx, workdir, helpers)
    return Setup(monkey, nginx, f"/{LARGE_FILE}", expect_status(200), helpers)


def url(server: ServerProcess, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def percent(seconds: float, elapsed: float) -> float:
    """CPU seconds over a wall-clock interval, as a percentage of one CPU (never negative)."""
    return max(seconds, 0.0) / elapsed * 100 if elapsed else 0.0


def throughput(connections: int | None = None, threads: int = 1) -> Measure:
    """A measure step: warm-up then measured wrk run per side, alternating, best of rounds.

    ``connections`` None means the ``--connections`` option. The best round is the one
    with the highest req/s; its CPU time and p99 are reported with it, since noise on a
    shared machine only ever slows a run down.
    """
    def measure(ctx: Context, setup: Setup, outcome: Outcome) -> None:
        conns = connections or ctx.connections
        runs: dict[str, list[dict]] = {MONKEY: [], NGINX: []}
        for round_index in range(1, ctx.rounds + 1):
            for side, server in setup.sides():
                target = url(server, setup.path)
                if ctx.warmup:
                    loads.run_wrk(target, seconds=ctx.warmup, connections=conns,
                                  threads=threads, cpu=ctx.load_cpu, latency=False)
                pids, helper_pids = server.pids(), setup.helper_pids()
                before = procfs.sample_cpu(pids, helper_pids, ctx.server_cpu, ctx.load_cpu)
                result = loads.run_wrk(target, seconds=ctx.duration, connections=conns,
                                       threads=threads, cpu=ctx.load_cpu)
                used = procfs.sample_cpu(pids, helper_pids, ctx.server_cpu,
                                         ctx.load_cpu) - before
                run = {"round": round_index, **asdict(result), "cpu_seconds": used.server,
                       "helper_cpu_seconds": used.helpers,
                       "other_load_server_cpu": percent(
                           used.server_cpu_busy - used.server, result.seconds),
                       "other_load_load_cpu": percent(
                           used.load_cpu_busy - result.cpu_seconds - used.helpers, result.seconds)}
                runs[side].append(run)
                ctx.log(f"  {side:9} round {round_index}: {result.requests_per_second:,.0f} req/s,"
                        f" {used.server / max(result.requests, 1) * 1e6:.1f} us CPU/req,"
                        f" server CPU {percent(used.server, result.seconds):.0f}% busy,"
                        f" {result.errors} errors; others took"
                        f" {run['other_load_server_cpu']:.0f}% of CPU {ctx.server_cpu}"
                        f" and {run['other_load_load_cpu']:.0f}% of CPU {ctx.load_cpu}")
                for cpu, key in ((ctx.server_cpu, "other_load_server_cpu"),
                                 (ctx.load_cpu, "other_load_load_cpu")):
                    if run[key] > OTHER_LOAD_WARNING:
                        outcome.notes.append(
                            f"{side} round {round_index}: other processes or the host took "
                            f"{run[key]:.0f}% of CPU {cpu}; figures are noisy")
                if result.errors:
                    outcome.notes.append(
                        f"{side} round {round_index}: wrk reported {result.non_2xx} non-2xx/3xx "
                        f"responses and socket errors {result.socket_errors or 'none'}")
        outcome.raw["runs"] = runs
        best = {side: max(side_runs, key=lambda run: run["requests_per_second"])
                for side, side_runs in runs.items()}

        def pick(key: Callable[[dict], float | None]) -> tuple[float | None, float | None]:
            return key(best[MONKEY]), key(best[NGINX])

        for side, run in best.items():
            busy = percent(run["cpu_seconds"], run["seconds"])
            if busy < SATURATED:
                outcome.notes.append(
                    f"{side}: the server CPU was only {busy:.0f}% busy in its best run, so the "
                    "load side limited it: its req/s is a lower bound; compare CPU per request")
        outcome.metrics += [
            Metric("requests/s (best of %d)" % ctx.rounds, "req/s",
                   *pick(lambda run: run["requests_per_second"])),
            Metric("p99 latency", "ms", *pick(
                lambda run: run["p99_seconds"] * 1e3 if run["p99_seconds"] is not None else None),
                better="lower"),
            Metric("CPU per request", "us", *pick(
                lambda run: run["cpu_seconds"] / max(run["requests"], 1) * 1e6), better="lower"),
            Metric("server CPU busy", "%", *pick(
                lambda run: percent(run["cpu_seconds"], run["seconds"])), better=""),
            Metric("errors (all rounds)", "count",
                   sum(run["non_2xx"] + sum(run["socket_errors"].values()) for run in runs[MONKEY]),
                   sum(run["non_2xx"] + sum(run["socket_errors"].values()) for run in runs[NGINX]),
                   better=""),
        ]
    return measure


def measure_idle(ctx: Context, setup: Setup, outcome: Outcome) -> None:
    """Hold ``--idle-connections`` keep-alive connections per side; read worker memory."""
    figures: dict[str, dict] = {}
    for side, server in setup.sides():
        workers = server.worker_pids()
        before = procfs.total_memory(workers)
        with loads.IdleConnections(server.port, ctx.idle_connections, setup.path,
                                   ctx.load_cpu) as idle:
            idle.wait_ready()
            time.sleep(1.0)
            open_before, closed_before = idle.check()
            everything = procfs.total_memory(server.pids())
            worker = procfs.total_memory(workers)
            open_after, closed_after = idle.check()
        figures[side] = {
            "opened": idle.ready, "failed": idle.failed, "open": open_after,
            "closed_by_server": closed_after, "worker_rss_before": before.rss,
            "worker_rss": worker.rss, "worker_hwm": worker.hwm,
            "all_rss": everything.rss, "all_hwm": everything.hwm,
        }
        ctx.log(f"  {side:9} {open_after} open, worker RSS {worker.rss / MIB:.1f} MiB "
                f"(was {before.rss / MIB:.1f} MiB), all processes {everything.rss / MIB:.1f} MiB")
        if idle.failed:
            outcome.notes.append(f"{side}: {sum(idle.failed.values())} connections failed to "
                                 f"open: {idle.failed}")
        if open_before < ctx.idle_connections or open_after < ctx.idle_connections:
            outcome.notes.append(
                f"WARNING {side}: only {min(open_before, open_after)} of {ctx.idle_connections} "
                f"connections were open when memory was read ({max(closed_before, closed_after)}"
                " closed by the server); its memory figures are not comparable")
    outcome.raw["idle"] = figures

    def pair(key: Callable[[dict], float]) -> tuple[float, float]:
        return key(figures[MONKEY]), key(figures[NGINX])

    outcome.metrics += [
        Metric("connections held open", "count", *pair(lambda f: f["open"]), better=""),
        Metric("worker RSS", "MiB", *pair(lambda f: f["worker_rss"] / MIB), better="lower"),
        Metric("worker VmHWM", "MiB", *pair(lambda f: f["worker_hwm"] / MIB), better="lower"),
        Metric("all processes RSS", "MiB", *pair(lambda f: f["all_rss"] / MIB), better="lower"),
        Metric("all processes VmHWM", "MiB", *pair(lambda f: f["all_hwm"] / MIB), better="lower"),
        Metric("worker RSS growth per connection", "KiB", *pair(
            lambda f: (f["worker_rss"] - f["worker_rss_before"]) / max(f["open"], 1) / 1024),
            better="lower"),
    ]


def measure_download(ctx: Context, setup: Setup, outcome: Outcome) -> None:
    """Fetch the large file through each proxy with curl; best throughput of the rounds."""
    runs: dict[str, list[dict]] = {MONKEY: [], NGINX: []}
    for round_index in range(1, ctx.rounds + 1):
        for side, server in setup.sides():
            workers = server.worker_pids()
            rss_before = procfs.total_memory(workers).rss
            pids = server.pids()
            cpu_before = procfs.cpu_seconds(pids)
            result = loads.download(url(server, setup.path), cpu=ctx.load_cpu,
                                    watch_pids=workers)
            cpu_used = procfs.cpu_seconds(pids) - cpu_before
            hwm = procfs.total_memory(workers).hwm
            if result.status != 200 or result.size != LARGE_SIZE:
                raise loads.LoadError(f"{side} answered {result.status} with {result.size} of "
                                      f"{LARGE_SIZE} bytes")
            runs[side].append({"round": round_index, **vars(result), "rss_before": rss_before,
                               "worker_hwm": hwm, "cpu_seconds": cpu_used})
            ctx.log(f"  {side:9} round {round_index}: {result.megabytes_per_second:,.0f} MB/s, "
                    f"worker VmHWM {hwm / MIB:.1f} MiB")
    outcome.raw["runs"] = runs
    best = {side: max(side_runs, key=lambda run: run["size"] / run["seconds"])
            for side, side_runs in runs.items()}

    def pick(key: Callable[[dict], float]) -> tuple[float, float]:
        return key(best[MONKEY]), key(best[NGINX])

    outcome.metrics += [
        Metric("throughput (best of %d)" % ctx.rounds, "MB/s",
               *pick(lambda run: run["size"] / run["seconds"] / 1e6)),
        Metric("worker VmHWM after transfer", "MiB",
               *pick(lambda run: run["worker_hwm"] / MIB), better="lower"),
        Metric("worker peak RSS sampled in transfer", "MiB",
               *pick(lambda run: run["peak_rss"] / MIB), better="lower"),
        Metric("worker RSS before transfer", "MiB",
               *pick(lambda run: run["rss_before"] / MIB), better="lower"),
        Metric("CPU per MB", "ms", *pick(
            lambda run: run["cpu_seconds"] / (run["size"] / 1e6) * 1e3), better="lower"),
    ]


SCENARIOS = [
    Scenario("static", "the same 8 KB file, wrk -t1 -c32 with keep-alive",
             prepare_static, throughput()),
    Scenario("idle", "memory with many idle keep-alive connections", prepare_idle, measure_idle),
    Scenario("proxy", "200-byte responses through a reverse proxy to two upstreams",
             prepare_proxy, throughput(), plugins=("proxy_reverse",)),
    Scenario("proxy_large", "a 1 GB response through a reverse proxy, fetched with curl",
             prepare_proxy_large, measure_download, plugins=("proxy_reverse",)),
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
        for server in [*setup.helpers, setup.nginx, setup.monkey]:
            server.start()
            started.append(server)
        for side, server in setup.sides():
            problem = setup.verify(url(server, setup.path))
            if problem:
                raise ServerFailed(side, problem, server.output_tail())
        scenario.measure(ctx, setup, outcome)
    except ServerFailed as exc:
        outcome.status, outcome.error, outcome.output_tail = "FAILED", str(exc), exc.output_tail
    except (loads.LoadError, OSError) as exc:
        outcome.status, outcome.error = "FAILED", str(exc)
        outcome.output_tail = setup.monkey.output_tail()
    finally:
        for server in reversed(started):
            server.stop()
    return outcome
