"""Benchmark monkey_py side by side with nginx (and a bare Python floor) and print a table.

Usage: ``bench/run.py [SCENARIO ...] [--duration SECONDS]``. With no scenario named, every
scenario whose prerequisites are installed runs. Results also go to
``bench/results/latest.json``. See docs/benchmarks.md for what is measured.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scenarios import BY_NAME, SCENARIOS, Context, Outcome, run_scenario
from servers import nginx_binary

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
TOOLS = {"nginx": "nginx-light", "wrk": "wrk", "curl": "curl", "taskset": "util-linux",
         "openssl": "openssl", "redis-server": "redis-server"}


def missing_tools() -> dict[str, str]:
    """Tools not found on this machine, mapped to the Debian package that provides them."""
    found = {"nginx": nginx_binary()}
    return {tool: package for tool, package in TOOLS.items()
            if not (found.get(tool) or shutil.which(tool))}


def ensure_tools() -> None:
    """Install nginx, wrk, curl and redis-server with apt-get when missing and root; else
    say what to do."""
    missing = missing_tools()
    if not missing:
        return
    packages = sorted(set(missing.values()))
    command = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"bench: missing {', '.join(sorted(missing))}; install them first, "
                 f"e.g. `sudo {' '.join(command)}`")
    print(f"bench: installing {' '.join(packages)} with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    quiet = {"stdout": subprocess.DEVNULL, "env": env}
    if subprocess.run(command, **quiet).returncode != 0:
        subprocess.run(["apt-get", "update"], check=False, **quiet)
        subprocess.run(command, check=False, **quiet)
    still = missing_tools()
    if still:
        sys.exit(f"bench: could not install {', '.join(sorted(still))} with apt-get")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__.split("\n\n")[0],
        epilog="scenarios: " + "; ".join(f"{s.name}: {s.description}" for s in SCENARIOS))
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"scenarios to run, of: {', '.join(BY_NAME)} (default: all "
                             "whose prerequisites are installed)")
    parser.add_argument("--duration", type=int, default=10, metavar="SECONDS",
                        help="seconds of each measured wrk run (default 10)")
    parser.add_argument("--warmup", type=int, default=2, metavar="SECONDS",
                        help="seconds of the wrk warm-up before each measured run (default 2)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="measured runs per server, alternating; the best is reported "
                             "(default 2)")
    parser.add_argument("--connections", type=int, default=32,
                        help="wrk connections (default 32)")
    parser.add_argument("--idle-connections", type=int, default=10000, metavar="N",
                        help="idle keep-alive connections in the idle scenario (default 10000)")
    parser.add_argument("--json", type=Path, default=RESULTS, metavar="PATH",
                        help="where to write the results (default bench/results/latest.json)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the generated configurations and logs, and print their path")
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    for option in ("duration", "rounds", "connections", "idle_connections"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    if (os.cpu_count() or 1) < 2:
        parser.error("the benchmark pins servers and load to two different CPUs; "
                     "this machine has one")
    return args


def number(value: float | None, unit: str) -> str:
    """A table cell: counts and large values whole, others to three significant digits."""
    if value is None:
        return "-"
    if unit == "count" or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def ratio_cell(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}"


def has_floor(outcomes: list[Outcome]) -> bool:
    """Whether any scenario measured a floor."""
    return any(metric.floor is not None for outcome in outcomes for metric in outcome.metrics)


def table(outcomes: list[Outcome]) -> str:
    """The comparison table: scenario, metric, monkey_py, nginx, monkey_py/nginx; with the
    floor's figure and monkey_py/floor too when a scenario had a floor."""
    with_floor = has_floor(outcomes)
    header = ("scenario", "metric", "monkey_py", "nginx", "monkey/nginx")
    if with_floor:
        header = ("scenario", "metric", "monkey_py", "nginx", "floor", "monkey/nginx",
                  "monkey/floor")
    rows: list[tuple[str, ...]] = []
    for outcome in outcomes:
        if outcome.status != "ok":
            rows.append((outcome.scenario, f"{outcome.status}: {outcome.error}"))
            continue
        for metric in outcome.metrics:
            cells = [outcome.scenario, f"{metric.name} [{metric.unit}]",
                     number(metric.monkey, metric.unit), number(metric.nginx, metric.unit)]
            if with_floor:
                cells += [number(metric.floor, metric.unit), ratio_cell(metric.ratio),
                          ratio_cell(metric.floor_ratio)]
            else:
                cells.append(ratio_cell(metric.ratio))
            rows.append(tuple(cells))
    full = [header, *(row for row in rows if len(row) == len(header))]
    widths = [max(len(row[column]) for row in full) for column in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        if len(row) < len(header):
            return f"{row[0]:<{widths[0]}}  {row[1]}"
        cells = [f"{row[0]:<{widths[0]}}", f"{row[1]:<{widths[1]}}"]
        cells += [f"{cell:>{widths[column]}}" for column, cell in enumerate(row[2:], 2)]
        return "  ".join(cells)

    first = line(header)
    return "\n".join([first, "-" * len(first), *(line(row) for row in rows)])


def tool_versions() -> dict[str, str]:
    versions = {}
    for tool, argv in {"nginx": [nginx_binary() or "nginx", "-v"], "wrk": ["wrk", "-v"],
                       "curl": ["curl", "--version"]}.items():
        done = subprocess.run(argv, capture_output=True, text=True)
        versions[tool] = (done.stdout + done.stderr).strip().splitlines()[0]
    return versions


def write_json(path: Path, args: argparse.Namespace, outcomes: list[Outcome]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "python": platform.python_version(), **tool_versions()},
        "options": {"duration": args.duration, "warmup": args.warmup, "rounds": args.rounds,
                    "connections": args.connections,
                    "idle_connections": args.idle_connections},
        "scenarios": [outcome.to_json() for outcome in outcomes],
    }
    path.write_text(json.dumps(report, indent=2) + "\n")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    ensure_tools()
    if args.scenarios:
        chosen = [BY_NAME[name] for name in args.scenarios]
    else:
        chosen = []
        for scenario in SCENARIOS:
            reason = scenario.missing_prerequisite()
            if reason:
                print(f"bench: skipping {scenario.name}: {reason}")
            else:
                chosen.append(scenario)
    # The harness itself stays off the server CPU.
    os.sched_setaffinity(0, {Context.load_cpu})
    workdir = Path(tempfile.mkdtemp(prefix="monkey-bench-"))
    outcomes = []
    started = time.monotonic()
    try:
        for scenario in chosen:
            print(f"== {scenario.name}: {scenario.description}", flush=True)
            ctx = Context(workdir, args.duration, args.warmup, args.rounds, args.connections,
                          args.idle_connections, log=lambda line: print(line, flush=True))
            outcome = run_scenario(scenario, ctx)
            outcomes.append(outcome)
            if outcome.status != "ok":
                print(f"  FAILED: {outcome.error}")
                if outcome.output_tail:
                    print("  server output (last lines):")
                    print("\n".join(f"    | {line}" for line in outcome.output_tail.splitlines()))
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"bench: configurations and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table(outcomes))
    for outcome in outcomes:
        for note in outcome.notes:
            print(f"note ({outcome.scenario}): {note}")
    write_json(args.json, args, outcomes)
    floor = (" monkey/floor = monkey_py / the bare Python floor (bench/floor)."
             if has_floor(outcomes) else "")
    print(f"\nmonkey/nginx = monkey_py / nginx.{floor} {time.monotonic() - started:.0f}s; "
          f"results written to {args.json}")
    return 0 if all(outcome.status == "ok" for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
