"""Every hook a monkey_py plugin can implement, in one place.

A plugin is a module or object whose functions are marked with ``@hookimpl`` and is
named in ``plugins.load`` by its entry-point name in the ``monkey_py.plugins`` group.
Hooks fall in two groups: the lifecycle hooks (configuration, worker start and stop)
and the five request stages, numbered as in Monkey::

    10 accepted -> 20 received -> 30 handler -> 40 sent -> 50 closed

A hook implementation may accept any subset of the parameters a spec names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import ssl

    from .config import Config
    from .http.connection import Connection
    from .http.request import Request
    from .worker import Worker

hookspec = pluggy.HookspecMarker("monkey_py")
hookimpl = pluggy.HookimplMarker("monkey_py")


# -- lifecycle ------------------------------------------------------------------
@hookspec
def monkey_site_sections() -> list[str]:
    """Name the site-file sections this plugin reads (for example ``["LOGGER"]``).

    Called once when the configuration is loaded. A site file may only hold
    ``[HOST]``, ``[ERROR_PAGES]``, ``[HANDLERS]`` and sections some loaded plugin
    claims here; any other section stops the server with its file and line.
    """


@hookspec
def monkey_check_config(config: "Config") -> None:
    """Validate this plugin's configuration, without side effects.

    Called by ``monkey check`` and before every start or reload. Read the plugin's
    own file with ``config.plugin_config(name)`` and its site sections from
    ``site.sections``. Raise :class:`monkey_py.config.ConfigError` with the file and
    line of the offending entry; the return value is ignored.
    """


@hookspec
def monkey_configure(config: "Config") -> None:
    """Build the plugin's state from a checked configuration, in the master process.

    Called once at start and once per reload, before the workers are forked, so that
    state created here (shared memory, locks, resolved addresses) is inherited by every
    worker. Raise ``ConfigError`` to refuse the configuration; the return value is
    ignored.
    """


@hookspec
def monkey_unconfigure(config: "Config") -> None:
    """Release what :func:`monkey_configure` built for ``config``.

    Called in the master when that configuration's workers have all exited (after a
    reload or at shutdown).
    """


@hookspec(firstresult=True)
def monkey_tls_context(config: "Config") -> "ssl.SSLContext | None":
    """The server-side TLS context of the listeners marked ``tls`` (``Listen 443 tls``).

    Called in the master after :func:`monkey_configure`, once per configuration that has
    such a listener; the context is inherited by the workers at the fork. Return an
    ``ssl.SSLContext`` (it may choose a certificate per server name with its
    ``sni_callback``), or None to leave it to another plugin. Stops at the first
    non-None result; the ``tls`` plugin implements it.
    """


@hookspec
def monkey_worker_start(worker: "Worker") -> None:
    """Called in each worker process after the fork, before it accepts a connection.

    ``worker.loop`` is the worker's event loop, ``worker.config`` its configuration and
    ``worker.index`` its slot number (0 to ``Workers - 1``). The return value is ignored.
    """


@hookspec
def monkey_instance_stopping(worker: "Worker") -> None:
    """Called in each worker, once, when the whole instance begins a graceful stop (not
    a reload, which retires the old workers alone), while the worker's loop still runs:
    the moment to tell others that this instance is leaving. The return value is ignored.
    """


@hookspec
def monkey_worker_stop(worker: "Worker") -> None:
    """Called in each worker process when it stops, after its connections have closed.

    The return value is ignored.
    """


# -- request stages -------------------------------------------------------------
@hookspec(firstresult=True)
def monkey_connection_accepted(connection: "Connection") -> bool | None:
    """Stage 10: a client connection was accepted, before anything is read from it.

    ``connection.peer`` is the client's ``(address, port)``. Return ``False`` to refuse
    the connection: it is closed at once and no later stage runs for it. Stops at the
    first non-None result.
    """


@hookspec(firstresult=True)
def monkey_request_received(request: "Request") -> bool | None:
    """Stage 20: a request's head was parsed and its virtual host chosen.

    ``request.site`` is the virtual host. A plugin may answer early (for example to deny
    the request) by writing a response with ``request.respond(...)`` or
    ``request.error(...)`` and returning ``True``; no handler runs then. Stops at the
    first non-None result.
    """


@hookspec(firstresult=True)
def monkey_request_handler(request: "Request", params: list[str]) -> bool | None:
    """Stage 30: choose who handles the request.

    Return ``True`` to take the request over: the plugin then owns the response and must
    finish it, at once or later from the event loop (``request.respond``,
    ``request.start_response``/``write``/``end``). Return ``None`` to let the next plugin,
    and finally the static file handler, have it. A site's ``[HANDLERS] Match`` rule
    calls its named plugin first, with the rule's extra words in ``params``; other calls
    get ``params == []``. Stops at the first non-None result. An exception answers the
    request with 500 and is logged with the plugin's name.
    """


@hookspec
def monkey_response_sent(request: "Request") -> None:
    """Stage 40: the response to ``request`` was written out (or the client left).

    ``request.status`` and ``request.bytes_sent`` describe what was sent;
    ``request.completed`` is False when the response was cut short. The place for access
    logs and statistics. The return value is ignored.
    """


@hookspec
def monkey_connection_closed(connection: "Connection") -> None:
    """Stage 50: a connection that passed stage 10 was closed.

    ``connection.requests`` is the number of requests it carried. The return value is
    ignored.
    """


def all_hooks() -> dict[str, Any]:
    """Every hookspec of this module by name (the plugin manager and the docs test use it)."""
    return {name: obj for name, obj in globals().items() if name.startswith("monkey_")}
