"""Read process trees, CPU time and memory of the servers under test from /proc."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ProcessGone(RuntimeError):
    """A process the harness was measuring has exited."""

    def __init__(self, pid: int) -> None:
        super().__init__(f"process {pid} exited during the measurement")
        self.pid = pid


def _read(pid: int, name: str) -> str:
    try:
        return (PROC / str(pid) / name).read_text()
    except FileNotFoundError:
        raise ProcessGone(pid) from None


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    text = _read(pid, "stat")
    return text[text.rindex(")") + 2:].split()


def parent_map() -> dict[int, int]:
    """Map every live pid to its parent pid."""
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents[int(entry.name)] = int(_stat_fields(int(entry.name))[1])
        except (ProcessGone, OSError, ValueError, IndexError):
            continue
    return parents


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (children, grandchildren ...), sorted."""
    children: dict[int, list[int]] = {}
    for child, parent in parent_map().items():
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    pending = list(children.get(pid, []))
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, []))
    return sorted(found)


def group_alive(pgid: int) -> bool:
    """Whether any process of process group ``pgid`` still exists (zombies excluded)."""
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields(int(entry.name))
        except (ProcessGone, OSError, ValueError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU seconds consumed so far by ``pids`` together."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


@dataclass(frozen=True)
class Memory:
    """Resident set size now and its high-water mark, in bytes."""

    rss: int
    hwm: int

    def __add__(self, other: "Memory") -> "Memory":
        return Memory(self.rss + other.rss, self.hwm + other.hwm)


def memory(pid: int) -> Memory:
    """VmRSS and VmHWM of one process."""
    values = {}
    for line in _read(pid, "status").splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return Memory(values.get("VmRSS", 0), values.get("VmHWM", 0))


def total_memory(pids: list[int]) -> Memory:
    """Sum of VmRSS and of VmHWM over ``pids``."""
    result = Memory(0, 0)
    for pid in pids:
        result = result + memory(pid)
    return result


def cpu_busy_seconds(cpu: int) -> float:
    """Seconds CPU ``cpu`` has spent busy (any process, interrupts, or stolen by the host)."""
    for line in (PROC / "stat").read_text().splitlines():
        fields = line.split()
        if fields[0] == f"cpu{cpu}":
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
            return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS
    raise ValueError(f"no cpu{cpu} in /proc/stat")


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds so far of the server, of helper servers, and of the two pinned CPUs."""

    server: float
    helpers: float
    server_cpu_busy: float
    load_cpu_busy: float

    def __sub__(self, other: "CpuSample") -> "CpuSample":
        return CpuSample(self.server - other.server, self.helpers - other.helpers,
                         self.server_cpu_busy - other.server_cpu_busy,
                         self.load_cpu_busy - other.load_cpu_busy)


def sample_cpu(server_pids: list[int], helper_pids: list[int], server_cpu: int,
               load_cpu: int) -> CpuSample:
    """Read every CPU counter a run needs, at one moment."""
    return CpuSample(cpu_seconds(server_pids), cpu_seconds(helper_pids),
                     cpu_busy_seconds(server_cpu), cpu_busy_seconds(load_cpu))
