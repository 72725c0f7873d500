"""The vocabulary shared by scenarios and measures: options, servers, metrics, outcomes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

from servers import ServerProcess

MONKEY, NGINX, FLOOR = "monkey_py", "nginx", "floor"


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
    """One row of the result table; ``better`` is 'higher', 'lower' or '' (no ratio).

    ``floor`` is the bare Python server's figure, in the scenarios that have one.
    """

    name: str
    unit: str
    monkey: float | None
    nginx: float | None
    floor: float | None = None
    better: str = "higher"

    def _over(self, other: float | None) -> float | None:
        if not self.better or self.monkey is None or not other:
            return None
        return self.monkey / other

    @property
    def ratio(self) -> float | None:
        """monkey_py divided by nginx, when both exist and the metric has a ratio."""
        return self._over(self.nginx)

    @property
    def floor_ratio(self) -> float | None:
        """monkey_py divided by the floor, when both exist and the metric has a ratio."""
        return self._over(self.floor)


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
            row["floor_ratio"] = metric.floor_ratio
        return data


@dataclass
class Setup:
    """The servers of one scenario and what to request from them.

    ``floor``, when there is one, is a bare Python server doing the same job
    (``bench/floor``): it is loaded and measured like monkey_py and nginx, and checked
    with ``floor_verify`` when given (it has no cache to report a hit from, say), else
    with ``verify``.
    """

    monkey: ServerProcess
    nginx: ServerProcess
    path: str
    verify: Callable[[str], str | None]
    helpers: list[ServerProcess] = field(default_factory=list)
    floor: ServerProcess | None = None
    floor_verify: Callable[[str], str | None] | None = None

    def sides(self) -> list[tuple[str, ServerProcess]]:
        """The servers under test, by side name, in the order each round loads them."""
        sides = [(MONKEY, self.monkey), (NGINX, self.nginx)]
        if self.floor is not None:
            sides.append((FLOOR, self.floor))
        return sides

    def check(self, side: str) -> Callable[[str], str | None]:
        """The response check of one side."""
        return (self.floor_verify or self.verify) if side == FLOOR else self.verify

    def servers(self) -> list[ServerProcess]:
        """Every server to start, helpers (upstreams) first."""
        return [*self.helpers, *(server for _, server in self.sides())]

    def helper_roots(self) -> list[int]:
        """The master pid of every helper server."""
        return [helper.root_pid() for helper in self.helpers]


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
