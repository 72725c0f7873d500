"""proxy_reverse: Monkey's reverse-proxy plugin, at the handler stage (30).

A request whose target matches a ``[PROXY_ENTRY]`` is forwarded to one of the entry's
servers, chosen by its load balancer (an entry point of ``monkey_py.balancers``); any
other request is left to the next handler. See docs/proxy_reverse.md.
"""

from __future__ import annotations

from monkey_py.hookspec import hookimpl
from monkey_py_plugins.balancers.registry import load_balancer

from .forwarding.loop_guard import new_token
from .runtime import ProxyState, ProxyWorker
from .settings import ENTRY, SITE, read_settings
from .status.serve import serve_status


class ProxyReverse:
    """The plugin: per-configuration state in the master, one ProxyWorker per worker."""

    def __init__(self) -> None:
        self.states: dict[int, ProxyState] = {}
        self.worker: ProxyWorker | None = None
        # This instance's loop-detection token, drawn at the first configuration.
        self.token: bytes | None = None

    @hookimpl
    def monkey_site_sections(self):
        return [SITE, ENTRY]

    @hookimpl
    def monkey_check_config(self, config):
        settings = read_settings(config)
        load_balancer(settings.balancer, settings.balancer_location)
        for entry in settings.all_entries():
            load_balancer(entry.balancer, entry.balancer_location)

    @hookimpl
    def monkey_configure(self, config):
        if self.token is None:
            self.token = new_token()
        state = ProxyState(config, self.token)
        if self.states:
            # A reload: the running configuration's health checks carry over.
            state.inherit(list(self.states.values())[-1])
        self.states[id(config)] = state

    @hookimpl
    def monkey_unconfigure(self, config):
        state = self.states.pop(id(config), None)
        if state is not None:
            state.release()

    @hookimpl
    def monkey_worker_start(self, worker):
        self.worker = ProxyWorker(self.states[id(worker.config)], worker)

    @hookimpl
    def monkey_instance_stopping(self, worker):
        if self.worker is not None:
            self.worker.instance_stopping()

    @hookimpl
    def monkey_worker_stop(self, worker):
        if self.worker is not None:
            self.worker.stop()

    @hookimpl
    def monkey_request_handler(self, request, params):
        worker = self.worker
        url = worker.statistics_url
        if url is not None and request.path.startswith(url) and serve_status(
            request, worker.state, worker.fleet_figures
        ):
            return True
        return True if worker.handle(request) else None


plugin = ProxyReverse()
