"""The balancer contract: the servers a balancer orders and the class it implements.

The shared memory through which the workers of one server see the same state is the
core's ``monkey_py.shared.SharedMemory``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterable, Sequence

from monkey_py.shared import SharedMemory


@dataclass(frozen=True)
class Server:
    """One primary server of a proxy entry, as the balancer sees it.

    ``index`` is its position in the entry's list of primary servers (0-based), ``name``
    the ``host:port`` written in the configuration.
    """

    index: int
    name: str
    weight: int = 1


class Balancer(ABC):
    """Orders an entry's servers for one request.

    One instance per proxy entry is made in the master process, before the workers are
    forked; each worker then calls ``worker_started`` on its inherited copy. State kept in
    ``self`` is per worker after the fork; state every worker must see lives in
    ``self.shared``. ``self.servers`` is the tuple of servers, ``servers[i].index == i``;
    ``self.available`` the servers the proxy uses now (see ``set_available``).
    """

    def __init__(self, servers: Sequence[Server], shared: SharedMemory | None) -> None:
        if not servers:
            raise ValueError("a balancer needs at least one server")
        for position, server in enumerate(servers):
            if server.index != position:
                raise ValueError(f"server {server.name} has index {server.index}, expected {position}")
            if server.weight < 1:
                raise ValueError(f"server {server.name} has weight {server.weight}, expected 1 or more")
        needed = self.shared_size(servers, 1)
        if needed and (shared is None or shared.size < needed):
            raise ValueError(
                f"{type(self).__name__} needs {needed} bytes of shared memory or more: "
                "create it with Balancer.create()"
            )
        self.servers = tuple(servers)
        self.available = self.servers
        self.shared = shared

    @classmethod
    def create(cls, servers: Sequence[Server], workers: int) -> Balancer:
        """A balancer for ``servers`` with the shared memory ``workers`` workers need.

        Call it in the master, before forking the workers.
        """
        size = cls.shared_size(servers, workers)
        return cls(servers, SharedMemory.of_size(size) if size > 0 else None)

    @classmethod
    def shared_size(cls, servers: Sequence[Server], workers: int) -> int:
        """Bytes of shared memory this balancer needs for ``workers`` workers; 0: none."""
        return 0

    def worker_started(self, index: int, workers: int) -> None:
        """Called in worker ``index`` (0 to ``workers - 1``) after the fork."""

    def set_available(self, available: Sequence[Server]) -> None:
        """The servers to balance over from now on, in this worker.

        Called when the set changes: a server goes offline or comes back, a slow start
        moves a step, panic mode starts or ends. ``available`` is in list order and
        holds the servers the proxy may use now, each with its current weight, which is
        lower than the configured one while the server warms up after coming back
        (weights are relative: while one server warms up they are all scaled up). A
        balancer that spreads load (a rotation, a least-loaded choice) orders these and
        may leave the others out; the proxy skips the servers it holds offline anyway.
        The default keeps them in ``self.available``.
        """
        self.available = tuple(available)

    @abstractmethod
    def candidates(self, request) -> Iterable[Server]:
        """The servers to try for ``request``, in order: every server, or every
        server of ``self.available``.

        The proxy skips the servers it holds offline and fails over to the next one.
        """

    def connection_opened(self, server: Server) -> None:
        """An upstream connection to ``server`` became active (the request was sent)."""

    def connection_closed(self, server: Server) -> None:
        """The request sent to ``server`` finished or failed."""
