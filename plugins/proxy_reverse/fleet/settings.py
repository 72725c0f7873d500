"""The fleet keys of ``[PROXY_DEFAULTS]``: ``Fleet redis://...`` turns on the shared
health and the fleet figures; ``FleetName`` names this instance among the others."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from ..values import name_converter
from .address import RedisAddress


@dataclass(frozen=True)
class FleetSettings:
    """Where the fleet's Redis is, and this instance's name in it."""

    redis: RedisAddress
    name: str


# A ``FleetName``: letters, digits, ``.``, ``_``, ``:`` and ``-``, 100 at most.
fleet_name = name_converter("fleet name", ":", 100, "web-3")


def default_name(config) -> str:
    """The host's name and the first ``Listen`` port: unique per instance of a machine,
    as two instances cannot listen on the same port."""
    host = socket.gethostname().split(".")[0] or "monkey"
    return f"{host}:{config.server.listen[0].port}"


def fleet_settings(defaults: dict, config) -> FleetSettings | None:
    """The fleet settings of ``[PROXY_DEFAULTS]``' values; None without ``Fleet``."""
    redis = defaults["fleet"]
    if redis is None:
        return None
    return FleetSettings(redis, defaults["fleet_name"] or default_name(config))
