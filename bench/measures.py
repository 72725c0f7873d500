"""Measure steps: load the servers of a scenario the same way and turn runs into metrics.

Every measured run is wrapped in ``watch_cpu``, which reads the server's CPU time and how
much of each pinned CPU other processes took meanwhile, so that a noisy figure says so.
"""

from __future__ import annotations

import resource
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, TypeVar

import loads
import procfs
from model import FLOOR, MONKEY, NGINX, Context, Measure, Metric, Outcome, Setup
from servers import ServerProcess

MIB = 1024 * 1024
OTHER_LOAD_WARNING = 10.0
SATURATED = 90.0
T = TypeVar("T")


def url(server: ServerProcess, path: str) -> str:
    return f"{server.scheme}://127.0.0.1:{server.port}{path}"


def percent(seconds: float, elapsed: float) -> float:
    """CPU seconds over a wall-clock interval, as a percentage of one CPU (never negative)."""
    return max(seconds, 0.0) / elapsed * 100 if elapsed else 0.0


@dataclass
class CpuUse:
    """The server's CPU seconds in one run, and the share of each pinned CPU others took."""

    server: float
    elapsed: float
    others_on_server_cpu: float
    others_on_load_cpu: float
    exited: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)

    @property
    def busy(self) -> float:
        """Percent of its CPU the server used."""
        return percent(self.server, self.elapsed)


def watch_cpu(ctx: Context, setup: Setup, server: ServerProcess,
              action: Callable[[], T]) -> tuple[T, CpuUse]:
    """Run ``action`` (a load tool run as a child process) and account the CPU it cost.

    "Others" on the load CPU excludes the load tool itself and the scenario's helpers
    (upstreams); on the server CPU it excludes the server. The server's processes are
    read at both ends from its master down (``procfs.tree_cpu``), so a process of the
    server that exits or starts during the run is counted, and named in ``exited`` or
    ``started``, instead of failing the run.
    """
    roots, helper_roots = [server.root_pid()], setup.helper_roots()
    before = procfs.sample_cpu(roots, helper_roots, ctx.server_cpu, ctx.load_cpu)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    result = action()
    elapsed = time.monotonic() - started
    used = procfs.sample_cpu(roots, helper_roots, ctx.server_cpu, ctx.load_cpu) - before
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    tool = (children.ru_utime - children_before.ru_utime
            + children.ru_stime - children_before.ru_stime)
    return result, CpuUse(
        server=used.server, elapsed=elapsed,
        others_on_server_cpu=percent(used.server_cpu_busy - used.server, elapsed),
        others_on_load_cpu=percent(used.load_cpu_busy - tool - used.helpers, elapsed),
        exited=[f"{pid} ({name})" for pid, name in sorted(used.exited.items())],
        started=[f"{pid} ({name})" for pid, name in sorted(used.started.items())])


def note_cpu(ctx: Context, outcome: Outcome, label: str, use: CpuUse) -> str:
    """Add notes when other processes took a pinned CPU; return a summary for the log."""
    for cpu, share in ((ctx.server_cpu, use.others_on_server_cpu),
                       (ctx.load_cpu, use.others_on_load_cpu)):
        if share > OTHER_LOAD_WARNING:
            outcome.notes.append(f"{label}: other processes or the host took {share:.0f}% of "
                                 f"CPU {cpu}; figures are noisy")
    for verb, processes in (("exited", use.exited), ("started", use.started)):
        if processes:
            noun = "process" if len(processes) == 1 else "processes"
            outcome.notes.append(f"{label}: {noun} {', '.join(processes)} of the server "
                                 f"{verb} during the run (CPU time counted)")
    return (f"server CPU {use.busy:.0f}% busy; others took {use.others_on_server_cpu:.0f}% "
            f"of CPU {ctx.server_cpu} and {use.others_on_load_cpu:.0f}% of CPU {ctx.load_cpu}")


def note_unsaturated(outcome: Outcome, best: dict[str, dict], what: str) -> None:
    """Say when a side's best run left its CPU idle: its rate was limited by something else."""
    for side, run in best.items():
        if run["busy_percent"] + run["others_on_server_cpu"] < SATURATED:
            outcome.notes.append(
                f"{side}: the server CPU was only {run['busy_percent']:.0f}% busy in its best "
                f"run, so something else (the load CPU, or waiting) limited it: its {what} is "
                "a lower bound of what its CPU could do")


def cpu_fields(use: CpuUse) -> dict:
    return {"cpu_seconds": use.server, "busy_percent": use.busy,
            "others_on_server_cpu": use.others_on_server_cpu,
            "others_on_load_cpu": use.others_on_load_cpu,
            "processes_exited": use.exited, "processes_started": use.started}


def best_runs(runs: dict[str, list[dict]], key: Callable[[dict], float]) -> dict[str, dict]:
    """The best run of each side; noise on a shared machine only ever slows a run down."""
    return {side: max(side_runs, key=key) for side, side_runs in runs.items()}


def wrk_rounds(ctx: Context, setup: Setup, outcome: Outcome, path: str, connections: int,
               threads: int, what: str = "", sides=None) -> dict[str, list[dict]]:
    """Warm-up then measured wrk run of ``path`` on each side in turn, ``ctx.rounds``
    times; every run's wrk figures and CPU use, by side. ``what`` names the load in logs
    and notes when a scenario runs more than one; ``sides`` (name, server) replaces the
    setup's own."""
    sides = sides or setup.sides()
    runs: dict[str, list[dict]] = {side: [] for side, _ in sides}
    for round_index in range(1, ctx.rounds + 1):
        for side, server in sides:
            target = url(server, path)
            if ctx.warmup:
                loads.run_wrk(target, seconds=ctx.warmup, connections=connections,
                              threads=threads, cpu=ctx.load_cpu, latency=False)
            result, use = watch_cpu(ctx, setup, server, lambda: loads.run_wrk(
                target, seconds=ctx.duration, connections=connections, threads=threads,
                cpu=ctx.load_cpu))
            runs[side].append({"round": round_index, **asdict(result), **cpu_fields(use)})
            label = " ".join(filter(None, (side, what, f"round {round_index}")))
            summary = note_cpu(ctx, outcome, label, use)
            ctx.log(f"  {label}: {result.requests_per_second:,.0f} req/s, "
                    f"{use.server / max(result.requests, 1) * 1e6:.1f} us CPU/req, "
                    f"{result.errors} errors; {summary}")
            if result.errors:
                outcome.notes.append(
                    f"{label}: wrk reported {result.non_2xx} non-2xx/3xx responses and "
                    f"socket errors {result.socket_errors or 'none'}")
    return runs


def cpu_per_request(run: dict) -> float:
    """Server CPU microseconds per request completed in a wrk run."""
    return run["cpu_seconds"] / max(run["requests"], 1) * 1e6


MEMORY_STORE, REDIS_STORE, REDIS_TIER = "memory store", "Redis store", "Redis + memory tier"


def throughput(connections: int | None = None, threads: int = 1) -> Measure:
    """A measure step: warm-up then measured wrk run per side, alternating, best of rounds.

    ``connections`` None means the ``--connections`` option. The best round is the one
    with the highest req/s; its CPU time and p99 are reported with it. The sides are
    monkey_py, nginx and, when the scenario has one, the floor.
    """
    def measure(ctx: Context, setup: Setup, outcome: Outcome) -> None:
        runs = wrk_rounds(ctx, setup, outcome, setup.path, connections or ctx.connections,
                          threads)
        outcome.raw["runs"] = runs
        best = best_runs(runs, lambda run: run["requests_per_second"])
        note_unsaturated(outcome, best, "req/s")

        def pick(key: Callable[[dict], float | None]) -> tuple[float | None, ...]:
            return tuple(key(best[side]) if side in best else None
                         for side in (MONKEY, NGINX, FLOOR))

        def errors(run: dict) -> int:
            return run["non_2xx"] + sum(run["socket_errors"].values())

        def all_errors(side: str) -> int | None:
            return sum(map(errors, runs[side])) if side in runs else None

        outcome.metrics += [
            Metric(f"requests/s (best of {ctx.rounds})", "req/s",
                   *pick(lambda run: run["requests_per_second"])),
            Metric("p99 latency", "ms", *pick(
                lambda run: None if run["p99_seconds"] is None else run["p99_seconds"] * 1e3),
                better="lower"),
            Metric("CPU per request", "us", *pick(cpu_per_request), better="lower"),
            Metric("server CPU busy", "%", *pick(lambda run: run["busy_percent"]), better=""),
            Metric("errors (all rounds)", "count",
                   *(all_errors(side) for side in (MONKEY, NGINX, FLOOR)), better=""),
        ]
    return measure


def with_reference(measure: Measure, path: str, label: str) -> Measure:
    """``measure``, then the same wrk load on ``path`` of the same servers, as a reference
    (a static file next to the cache hits): its req/s and CPU per request are added to
    the table, and a note gives the scenario's rate as a share of the reference's."""
    def measure_both(ctx: Context, setup: Setup, outcome: Outcome) -> None:
        measure(ctx, setup, outcome)
        runs = wrk_rounds(ctx, setup, outcome, path, ctx.connections, 1, label)
        outcome.raw["reference"] = {"path": path, "runs": runs}
        best = best_runs(runs, lambda run: run["requests_per_second"])
        rate = {side: run["requests_per_second"] for side, run in best.items()}
        cpu = {side: cpu_per_request(run) for side, run in best.items()}
        measured = outcome.metrics[0]
        outcome.metrics += [
            Metric(f"{label}: requests/s", "req/s", rate[MONKEY], rate[NGINX], rate.get(FLOOR)),
            Metric(f"{label}: CPU per request", "us", cpu[MONKEY], cpu[NGINX], cpu.get(FLOOR),
                   better="lower"),
        ]
        shares = ", ".join(
            f"{side} {value / rate[side]:.0%}" for side, value in
            ((MONKEY, measured.monkey), (NGINX, measured.nginx)) if value and rate[side])
        outcome.notes.append(f"{measured.name} as a share of {label} requests/s on the "
                             f"same server: {shares}")
    return measure_both


def compare_stores(ctx: Context, setup: Setup, outcome: Outcome) -> None:
    """The same cache hits from monkey_py with the memory store (the ``nginx`` side of
    the setup), the Redis store (``monkey_py``) and the Redis store with a memory tier
    (``floor``): each one's req/s and CPU per request, and the Redis ones' ratios to
    the memory store's (in the monkey_py column; nginx is not part of this one)."""
    sides = [(MEMORY_STORE, setup.nginx), (REDIS_STORE, setup.monkey),
             (REDIS_TIER, setup.floor)]
    runs = wrk_rounds(ctx, setup, outcome, setup.path, ctx.connections, 1, sides=sides)
    outcome.raw["runs"] = runs
    best = best_runs(runs, lambda run: run["requests_per_second"])
    note_unsaturated(outcome, best, "req/s")
    rate = {side: run["requests_per_second"] for side, run in best.items()}
    cpu = {side: cpu_per_request(run) for side, run in best.items()}
    for side, _ in sides:
        outcome.metrics += [
            Metric(f"{side}: requests/s (best of {ctx.rounds})", "req/s", rate[side], None,
                   better=""),
            Metric(f"{side}: CPU per request", "us", cpu[side], None, better=""),
        ]
    for side in (REDIS_STORE, REDIS_TIER):
        outcome.metrics += [
            Metric(f"{side} / {MEMORY_STORE}: requests/s", "ratio",
                   rate[side] / rate[MEMORY_STORE], None, better=""),
            Metric(f"{side} / {MEMORY_STORE}: CPU per request", "ratio",
                   cpu[side] / cpu[MEMORY_STORE], None, better=""),
        ]


def measure_idle(ctx: Context, setup: Setup, outcome: Outcome) -> None:
    """Hold ``--idle-connections`` keep-alive connections per side; read server memory."""
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
        ctx.log(f"  {side}: {open_after} open, worker RSS {worker.rss / MIB:.1f} MiB "
                f"(was {before.rss / MIB:.1f} MiB), all processes {everything.rss / MIB:.1f} MiB")
        if idle.failed:
            outcome.notes.append(f"{side}: {sum(idle.failed.values())} connections failed to "
                                 f"open: {idle.failed}")
        if min(open_before, open_after) < ctx.idle_connections:
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


def download(expected_size: int) -> Measure:
    """A measure step: fetch the scenario's URL with curl per side, best throughput of rounds."""
    def measure(ctx: Context, setup: Setup, outcome: Outcome) -> None:
        runs: dict[str, list[dict]] = {MONKEY: [], NGINX: []}
        for round_index in range(1, ctx.rounds + 1):
            for side, server in setup.sides():
                workers = server.worker_pids()
                rss_before = procfs.total_memory(workers).rss
                result, use = watch_cpu(ctx, setup, server, lambda: loads.download(
                    url(server, setup.path), cpu=ctx.load_cpu, watch_pids=workers))
                hwm = procfs.total_memory(workers).hwm
                if result.status != 200 or result.size != expected_size:
                    raise loads.LoadError(f"{side} answered {result.status} with {result.size} "
                                          f"of {expected_size} bytes")
                runs[side].append({"round": round_index, **asdict(result),
                                   "rss_before": rss_before, "worker_hwm": hwm,
                                   **cpu_fields(use)})
                label = f"{side} round {round_index}"
                summary = note_cpu(ctx, outcome, label, use)
                ctx.log(f"  {label}: {result.megabytes_per_second:,.0f} MB/s, worker VmHWM "
                        f"{hwm / MIB:.1f} MiB; {summary}")
        outcome.raw["runs"] = runs
        best = best_runs(runs, lambda run: run["size"] / run["seconds"])
        note_unsaturated(outcome, best, "MB/s")

        def pick(key: Callable[[dict], float]) -> tuple[float, float]:
            return key(best[MONKEY]), key(best[NGINX])

        outcome.metrics += [
            Metric(f"throughput (best of {ctx.rounds})", "MB/s",
                   *pick(lambda run: run["size"] / run["seconds"] / 1e6)),
            Metric("worker VmHWM after transfer", "MiB",
                   *pick(lambda run: run["worker_hwm"] / MIB), better="lower"),
            Metric("worker peak RSS sampled in transfer", "MiB",
                   *pick(lambda run: run["peak_rss"] / MIB), better="lower"),
            Metric("worker RSS before transfer", "MiB",
                   *pick(lambda run: run["rss_before"] / MIB), better="lower"),
            Metric("CPU per MB", "ms", *pick(
                lambda run: run["cpu_seconds"] / (run["size"] / 1e6) * 1e3), better="lower"),
            Metric("server CPU busy", "%", *pick(lambda run: run["busy_percent"]), better=""),
        ]
    return measure
