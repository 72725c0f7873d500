"""Processes a test run leaves behind: a redis-server, php-fpm or monkey_py that a test
started and never stopped keeps running after the run (orphaned, so no ``Popen`` object
remembers it).

Two ways to know a run's processes:
- the launchers of the support modules ``track`` what they start (its pid and start
  time, so that a reused pid is not mistaken for it): this covers redis-server and
  php-fpm, which rewrite their title over their environment;
- every other process of the run, a grandchild included (a monkey_py worker, a CGI
  script), inherits ``RUN_VARIABLE``, which the pytest process sets to a value of its
  own (runs side by side do not see each other's).
A live process found either way at the end of the run was left behind.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

RUN_VARIABLE = "MONKEY_PY_TEST_RUN"
_tracked: list[tuple[int, str]] = []


def mark_run() -> bytes:
    """Give this run's processes their mark; returns it as ``/proc`` shows it."""
    os.environ[RUN_VARIABLE] = uuid.uuid4().hex
    return f"{RUN_VARIABLE}={os.environ[RUN_VARIABLE]}".encode()


def track(proc) -> None:
    """Remember a process a launcher started (a ``Popen``)."""
    started = _stat(proc.pid)
    if started is not None:
        _tracked.append((proc.pid, started[1]))


def left_behind(mark: bytes) -> dict[int, str]:
    """{pid: command line} of the live processes of this run, this one excepted."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                marked = mark in (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue                  # gone meanwhile, or not ours to read
            if marked:
                _add_live(found, int(entry.name))
    for pid, started in _tracked:
        stat = _stat(pid)
        if stat is not None and stat[1] == started:
            _add_live(found, pid)
    return found


def kill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of ``pid``, or None when there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return fields[0], fields[19]


def _add_live(found: dict[int, str], pid: int) -> None:
    stat = _stat(pid)
    if stat is None or stat[0] == "Z":
        return
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return
    found[pid] = command.decode(errors="replace").strip()
