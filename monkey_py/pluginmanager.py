"""Building the plugin manager and calling the stage hooks safely.

The manager is built inside a function, in a fixed order: hookspecs, then the entry
points ``plugins.load`` names, then ``check_pending()``. Nothing is loaded at import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

import pluggy

from . import hookspec
from .config import ConfigError

log = logging.getLogger(__name__)

PLUGIN_GROUP = "monkey_py.plugins"
BALANCER_GROUP = "monkey_py.balancers"


@dataclass(frozen=True)
class Installed:
    """An installed entry point and the distribution that provides it."""

    name: str
    group: str
    value: str
    distribution: str
    version: str


def installed(group: str) -> dict[str, EntryPoint]:
    """The entry points of ``group`` by name."""
    return {ep.name: ep for ep in entry_points(group=group)}


def describe(group: str) -> list[Installed]:
    """Installed entry points of ``group`` with their distributions, for ``monkey plugins``."""
    found = []
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        dist = ep.dist
        found.append(Installed(
            ep.name, group, ep.value,
            dist.metadata["Name"] if dist else "?", dist.version if dist else "?",
        ))
    return found


def build_plugin_manager(plugins: list) -> pluggy.PluginManager:
    """A plugin manager with the named plugins (``PluginRef`` objects) registered.

    An unknown name raises ``ConfigError`` at its ``Load`` line, listing what is installed.
    """
    pm = pluggy.PluginManager("monkey_py")
    pm.add_hookspecs(hookspec)
    available = installed(PLUGIN_GROUP)
    loaded = []
    for ref in plugins:
        ep = available.get(ref.name)
        if ep is None:
            choices = ", ".join(sorted(available)) or "none"
            raise ConfigError(
                f"unknown plugin {ref.name!r}; installed plugins: {choices}", ref.location
            )
        try:
            plugin = ep.load()
        except Exception as exc:
            raise ConfigError(
                f"plugin {ref.name!r} ({ep.value}) failed to import: {exc}", ref.location
            ) from exc
        loaded.append((ref.name, plugin))
    # pluggy calls the last registered plugin first: register in reverse so that every
    # hook runs in the order of the Load lines.
    for name, plugin in reversed(loaded):
        pm.register(plugin, name=name)
    pm.check_pending()
    return pm


def claimed_site_sections(pm: pluggy.PluginManager) -> set[str]:
    return {name.upper() for names in pm.hook.monkey_site_sections() for name in names or ()}


def plugin_of(exc: BaseException, pm: pluggy.PluginManager) -> str:
    """The name of the plugin whose code raised ``exc`` (innermost frame first)."""
    modules = {}
    for name, plugin in pm.list_name_plugin():
        module = getattr(plugin, "__name__", None) or type(plugin).__module__
        modules[module.rpartition(".")[0] or module] = name
        modules[module] = name
    tb = exc.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    for module in reversed(frames):
        while module:
            if module in modules:
                return modules[module]
            module = module.rpartition(".")[0]
    return "?"


class StageHooks:
    """Calls the stage hooks of one worker, positionally, at the cost of plain calls.

    pluggy's generic dispatch costs microseconds per call, and these run several times
    per request: the hook implementations are looked up once and called directly, in
    pluggy's own order, with the same first-result semantics. A hook nobody implements
    is None. Hooks with wrappers go through pluggy. A plugin that raises is logged with
    its name by ``report``; the caller decides what the request gets.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        hook = pm.hook
        self.accepted = _caller(hook.monkey_connection_accepted, ("connection",), True)
        self.received = _caller(hook.monkey_request_received, ("request",), True)
        self.handler = _caller(hook.monkey_request_handler, ("request", "params"), True)
        self.sent = _caller(hook.monkey_response_sent, ("request",), False)
        self.closed = _caller(hook.monkey_connection_closed, ("connection",), False)
        # A [HANDLERS] Match rule calls its plugin's handler directly.
        self.handler_of = {
            impl.plugin_name: impl for impl in hook.monkey_request_handler.get_hookimpls()
        }

    def call_plugin_handler(self, name: str, request, params: list[str]):
        impl = self.handler_of.get(name)
        if impl is None:
            return None
        args = {"request": request, "params": params}
        return impl.function(*[args[arg] for arg in impl.argnames])

    def report(self, exc: BaseException, what: str) -> None:
        name = plugin_of(exc, self.pm)
        log.error("plugin %s failed %s: %s", name, what, exc, exc_info=exc)


def _caller(hook, names: tuple[str, ...], firstresult: bool):
    """A function taking ``names`` positionally that calls every implementation of ``hook``."""
    impls = hook.get_hookimpls()
    if not impls:
        return None
    if any(impl.hookwrapper or impl.wrapper for impl in impls):
        return lambda *args: hook(**dict(zip(names, args)))
    functions = [_positional(impl, names) for impl in reversed(impls)]
    if firstresult and len(functions) == 1:
        return functions[0]
    if firstresult:
        def first(*args):
            for function in functions:
                result = function(*args)
                if result is not None:
                    return result
            return None
        return first

    def every(*args):
        for function in functions:
            function(*args)
    return every


def _positional(impl, names: tuple[str, ...]):
    """``impl``'s function, adapted to take ``names`` positionally."""
    if tuple(impl.argnames) == names:
        return impl.function
    picks = [names.index(arg) for arg in impl.argnames]
    function = impl.function
    return lambda *args: function(*[args[i] for i in picks])
