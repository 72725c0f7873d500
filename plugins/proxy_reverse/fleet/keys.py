"""The names fleet mode uses in Redis, and how instances name a server.

A server is known across the fleet as ``ENTRY/HOST:PORT``: the entry's label (its
``Name``, else its file and line) and the server as its ``ServerList`` writes it.
Instances whose configurations differ share a server's health when both give its entry
the same ``Name`` and write the server the same way (docs/fleet.md, "Shared health").
"""

from __future__ import annotations

PREFIX = "monkey:fleet:"
# Health events: JSON messages {"kind", "server", "from", ...}.
HEALTH_CHANNEL = PREFIX + "health"
# The fleet's instances, scored by when each last published its figures (Redis's ms).
MEMBERS = PREFIX + "members"


def server_id(upstream) -> str:
    """The name of ``upstream`` (an Upstream) shared by every instance."""
    return f"{upstream.entry.label}/{upstream.name}"


def offline_key(server: str) -> str:
    """Set while ``server`` is offline after failures; its TTL is the time left."""
    return f"{PREFIX}offline:{server}"


def down_key(server: str) -> str:
    """Set while the active health checks hold ``server`` down."""
    return f"{PREFIX}down:{server}"


def lease_key(server: str) -> str:
    """Held by the instance checking ``server`` during one interval."""
    return f"{PREFIX}lease:{server}"


def figures_key(name: str) -> str:
    """The last figures the instance ``name`` published."""
    return f"{PREFIX}figures:{name}"
