"""Load generators: wrk runs and their parsing, curl downloads, and idle connections.

Every load runs pinned to the load CPU with ``taskset`` so that it never competes with
the server under test for the server's CPU.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import procfs

IDLE_CLIENT = Path(__file__).with_name("idle_client.py")
TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# The HTTPS scenarios' servers present a self-signed certificate made for the run; the
# checks talk to them on loopback only (wrk does not verify either).
UNVERIFIED = ssl._create_unverified_context()


class LoadError(RuntimeError):
    """A load tool failed or printed something the harness cannot read."""


@dataclass
class WrkResult:
    """What one wrk run reports."""

    requests: int
    seconds: float
    requests_per_second: float
    p99_seconds: float | None
    socket_errors: dict[str, int] = field(default_factory=dict)
    non_2xx: int = 0

    @property
    def errors(self) -> int:
        """Socket errors plus responses that were not 2xx/3xx."""
        return sum(self.socket_errors.values()) + self.non_2xx


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise LoadError(f"cannot read the duration {text!r} in wrk's output")
    return float(match.group(1)) * TIME_UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """Read request count, duration, rate, p99 latency and errors from wrk's text."""
    total = re.search(r"(\d+) requests in ([\d.]+\w+),", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not total or not rate:
        raise LoadError("wrk printed no request totals:\n" + output[-1000:])
    p99 = re.search(r"^\s+99%\s+([\d.]+\w+)\s*$", output, re.MULTILINE)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    socket_errors = {}
    if errors:
        socket_errors = {kind: int(value) for kind, value in
                         zip(("connect", "read", "write", "timeout"), errors.groups())
                         if int(value)}
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_seconds(total.group(2)),
        requests_per_second=float(rate.group(1)),
        p99_seconds=_seconds(p99.group(1)) if p99 else None,
        socket_errors=socket_errors,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def run_wrk(url: str, *, seconds: int, connections: int, threads: int, cpu: int,
            latency: bool = True) -> WrkResult:
    """Run wrk against ``url`` and parse its report."""
    argv = ["taskset", "-c", str(cpu), "wrk", f"-t{threads}", f"-c{connections}",
            f"-d{seconds}s", "--timeout", "5s"]
    if latency:
        argv.append("--latency")
    done = subprocess.run([*argv, url], capture_output=True, text=True,
                          timeout=seconds + 60)
    if done.returncode != 0:
        raise LoadError(f"wrk exited with status {done.returncode}: {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def fetch(url: str, limit: int = -1, timeout: float = 10.0) -> tuple[int, bytes]:
    """One GET with urllib: status and body, or its first ``limit`` bytes (errors included).

    The body is read as its framing says (``read()``): ``read(-1)`` would wait for the
    server to close, which only a server honouring urllib's ``Connection: close`` does.
    """
    def body(response) -> bytes:
        return response.read() if limit < 0 else response.read(limit)

    try:
        with urllib.request.urlopen(url, timeout=timeout, context=UNVERIFIED) as response:
            return response.status, body(response)
    except urllib.error.HTTPError as exc:
        return exc.code, body(exc)
    except OSError as exc:
        raise LoadError(f"GET {url} failed: {exc}") from exc


@dataclass
class Download:
    """One curl download: bytes, wall time, HTTP status, and the sampled peak RSS."""

    status: int
    size: int
    seconds: float
    peak_rss: int

    @property
    def megabytes_per_second(self) -> float:
        return self.size / self.seconds / 1e6 if self.seconds else 0.0


def download(url: str, *, cpu: int, watch_pids: list[int], timeout: float = 300.0) -> Download:
    """Fetch ``url`` to /dev/null with curl while sampling the RSS of ``watch_pids``."""
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.05):
            try:
                peak = max(peak, procfs.total_memory(watch_pids).rss)
            except procfs.ProcessGone:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        done = subprocess.run(
            ["taskset", "-c", str(cpu), "curl", "-sS", "-o", "/dev/null", "--max-time",
             str(int(timeout)), "-w", "%{http_code} %{size_download} %{time_total}", url],
            capture_output=True, text=True, timeout=timeout + 30)
    finally:
        stop.set()
        sampler.join()
    if done.returncode != 0:
        raise LoadError(f"curl exited with status {done.returncode}: {done.stderr.strip()}")
    status, size, seconds = done.stdout.split()
    return Download(int(status), int(size), float(seconds), peak)


class IdleConnections:
    """Drive ``idle_client.py`` in its own process: open, check and close idle connections."""

    def __init__(self, port: int, count: int, path: str, cpu: int) -> None:
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), sys.executable, str(IDLE_CLIENT),
             "127.0.0.1", str(port), str(count), path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.ready, self.failed = 0, {}

    def wait_ready(self) -> None:
        """Block until every connection is open and idle (or has failed)."""
        reply = self._reply()
        self.ready, self.failed = reply["ready"], reply["failed"]

    def check(self) -> tuple[int, int]:
        """How many connections are still open, and how many the server closed."""
        self.proc.stdin.write("check\n")
        self.proc.stdin.flush()
        reply = self._reply()
        return reply["open"], reply["closed"]

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise LoadError(f"idle client exited with status {self.proc.returncode}: "
                            + self.proc.stderr.read().strip()[-1000:])
        return json.loads(line)

    def close(self) -> None:
        """Tell the client to close everything and wait for it."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("exit\n")
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()

    def __enter__(self) -> "IdleConnections":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

