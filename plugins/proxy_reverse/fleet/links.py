"""One worker's links to Redis, shared by everything of the proxy that uses Redis.

The cache store, the shared health and the fleet figures may all name the same Redis:
they then share one command link and one subscription link per worker, opened on first
use and closed with the worker (docs/fleet.md, "Connections").
"""

from __future__ import annotations

from .address import RedisAddress
from .client import RedisClient
from .link import RedisParameters
from .pubsub import RedisSubscriber


class FleetLinks:
    """A worker's :class:`RedisClient` and :class:`RedisSubscriber` for each Redis it
    uses, on ``loop``; nothing is opened until a part of the proxy asks for a link."""

    def __init__(self, loop, params: RedisParameters | None = None) -> None:
        self.loop = loop
        self.params = params
        self._clients: dict[RedisAddress, RedisClient] = {}
        self._subscribers: dict[RedisAddress, RedisSubscriber] = {}

    def client(self, address: RedisAddress) -> RedisClient:
        """The started command link to ``address``."""
        return self._link(self._clients, RedisClient, address)

    def subscriber(self, address: RedisAddress) -> RedisSubscriber:
        """The started subscription link to ``address``."""
        return self._link(self._subscribers, RedisSubscriber, address)

    def _link(self, links: dict, kind: type, address: RedisAddress):
        link = links.get(address)
        if link is None:
            link = links[address] = kind(self.loop, address, self.params)
            link.start()
        return link

    def links(self) -> list:
        """Every open link (command links first), for the statistics page."""
        return [*self._clients.values(), *self._subscribers.values()]

    def close(self) -> None:
        """Close every link; each releases its descriptors."""
        for link in self.links():
            link.close()
        self._clients.clear()
        self._subscribers.clear()
