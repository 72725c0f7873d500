"""Finding a balancer class by the name a ``LoadBalancer`` line gives.

Balancers are entry points of the group ``monkey_py.balancers``, the built-in ones
included. Names match case-insensitively with ``-`` and ``_`` ignored, so
``First-Alive``, ``first_alive`` and ``FIRSTALIVE`` are one name.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from monkey_py.config import ConfigError, Location

from .base import Balancer

GROUP = "monkey_py.balancers"


def normalize(name: str) -> str:
    """The form names are compared in: lower case, without ``-`` and ``_``."""
    return name.lower().replace("-", "").replace("_", "")


def _grouped() -> dict[str, list[EntryPoint]]:
    """Installed entry points by normalized name; a name may be claimed more than once."""
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=GROUP):
        claims = found.setdefault(normalize(ep.name), [])
        if all(ep.value != other.value for other in claims):
            claims.append(ep)
    return found


def installed_balancers() -> dict[str, EntryPoint]:
    """Installed balancers by normalized name (the first, where two share a name)."""
    return {name: claims[0] for name, claims in _grouped().items()}


def balancer_name(name: str) -> str:
    """The entry-point name of the balancer ``name`` stands for (``RoundRobin`` for
    ``round_robin``); ``name`` itself when no installed balancer has it."""
    claims = _grouped().get(normalize(name))
    return claims[0].name if claims else name


def load_balancer(name: str, location: Location | None = None) -> type[Balancer]:
    """The balancer class called ``name``.

    Raises ``ConfigError`` at ``location`` for an unknown or ambiguous name, listing
    the installed balancers, and for an entry point that fails to import or is not a
    ``Balancer`` subclass.
    """
    grouped = _grouped()
    claims = grouped.get(normalize(name))
    if not claims:
        choices = ", ".join(sorted((c[0].name for c in grouped.values()), key=str.lower))
        raise ConfigError(
            f"unknown load balancer {name!r}; installed balancers: {choices or 'none'}",
            location,
        )
    if len(claims) > 1:
        providers = " and ".join(f"{ep.name} = {ep.value}" for ep in claims)
        raise ConfigError(
            f"load balancer name {name!r} is ambiguous: {providers}; "
            "uninstall one of the packages that provide them",
            location,
        )
    ep = claims[0]
    try:
        loaded = ep.load()
    except Exception as exc:
        raise ConfigError(
            f"load balancer {ep.name!r} ({ep.value}) failed to import: {exc}", location
        ) from exc
    if not (isinstance(loaded, type) and issubclass(loaded, Balancer)):
        raise ConfigError(
            f"load balancer {ep.name!r} ({ep.value}) is not a balancer: it must name a "
            f"subclass of {__package__}.Balancer, not {loaded!r}",
            location,
        )
    return loaded
