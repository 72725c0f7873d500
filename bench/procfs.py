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


def _process_table() -> dict[int, list[str]]:
    """The stat fields (after the command name) of every live process, by pid."""
    table: dict[int, list[str]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            table[int(entry.name)] = _stat_fields(int(entry.name))
        except (ProcessGone, OSError, ValueError):
            continue
    return table


def _tree(table: dict[int, list[str]], root: int) -> list[int]:
    """``root`` and all its descendants in ``table``."""
    children: dict[int, list[int]] = {}
    for pid, fields in table.items():
        children.setdefault(int(fields[1]), []).append(pid)
    found = [root]
    pending = list(children.get(root, []))
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, []))
    return found


def parent_map() -> dict[int, int]:
    """Map every live pid to its parent pid."""
    return {pid: int(fields[1]) for pid, fields in _process_table().items()}


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (children, grandchildren ...), sorted."""
    return sorted(_tree(_process_table(), pid)[1:])


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


def command_line(pid: int) -> str:
    """The command line of ``pid`` as ``ps`` shows it (nginx names its processes there)."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace").strip() or "?"
    except OSError:
        return "?"


@dataclass(frozen=True)
class TreeCpu:
    """CPU seconds so far of some process trees, and the processes they held then."""

    seconds: float
    processes: dict[int, str]


def tree_cpu(roots: list[int], table: dict[int, list[str]] | None = None) -> TreeCpu:
    """CPU seconds so far of the process trees under ``roots`` (a server's master).

    The trees are read at this moment, and every process in them counts its own user
    and system time plus that of the children it has reaped. So a process that exits
    between two readings (nginx's cache loader ends a minute after the start, a worker
    may be replaced) still counts, through its parent, and one that starts in between
    counts from its start: the difference of two readings is the CPU the servers used.
    """
    table = _process_table() if table is None else table
    ticks = 0
    processes: dict[int, str] = {}
    for root in roots:
        if root not in table:
            raise ProcessGone(root)
        for pid in _tree(table, root):
            utime, stime, cutime, cstime = map(int, table[pid][11:15])
            ticks += utime + stime + cutime + cstime
            processes[pid] = command_line(pid)
    return TreeCpu(ticks / CLOCK_TICKS, processes)


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
class CpuDelta:
    """What the server, the helper servers and the two pinned CPUs used between two
    readings, and which processes of the server left or joined its tree meanwhile."""

    server: float
    helpers: float
    server_cpu_busy: float
    load_cpu_busy: float
    exited: dict[int, str]
    started: dict[int, str]


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds so far of the server, of helper servers, and of the two pinned CPUs."""

    server: TreeCpu
    helpers: TreeCpu
    server_cpu_busy: float
    load_cpu_busy: float

    def __sub__(self, other: "CpuSample") -> CpuDelta:
        now, then = self.server.processes, other.server.processes
        return CpuDelta(self.server.seconds - other.server.seconds,
                      self.helpers.seconds - other.helpers.seconds,
                      self.server_cpu_busy - other.server_cpu_busy,
                      self.load_cpu_busy - other.load_cpu_busy,
                      exited={pid: then[pid] for pid in then.keys() - now.keys()},
                      started={pid: now[pid] for pid in now.keys() - then.keys()})


def sample_cpu(server_roots: list[int], helper_roots: list[int], server_cpu: int,
               load_cpu: int) -> CpuSample:
    """Read every CPU counter a run needs, at one moment; the roots are masters' pids."""
    table = _process_table()
    return CpuSample(tree_cpu(server_roots, table), tree_cpu(helper_roots, table),
                     cpu_busy_seconds(server_cpu), cpu_busy_seconds(load_cpu))
