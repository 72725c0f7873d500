"""The fastcgi plugin's hooks: requests a ``[HANDLERS] Match ... fastcgi`` rule names.

As in Monkey, a site sends requests with a rule such as ``Match \\.php$ fastcgi``; the
rule may name the ``[FASTCGI_SERVER]`` (``Match \\.php$ fastcgi php``), else the site's
``[FASTCGI] Server``, else the first server serves it. The script is looked up as the
cgi plugin does (the static handler's path rules; PATH_INFO after it): a path naming no
file gets 404 here, never reaching the server. Worker 0 tries each server once when it
starts and says in the log whether it answers.
"""

from __future__ import annotations

from monkey_py.hookspec import hookimpl
from monkey_py.settings_plugin import SettingsPlugin
from monkey_py_plugins.cgi.environ import meta_variables
from monkey_py_plugins.cgi.gateway import Gateway

from .exchange import Exchange
from .servers import FcgiServer, Probe
from .settings import SITE_SECTION, Settings


class FastCgi(SettingsPlugin):
    """Per-worker state: the settings, the servers and their pools."""

    site_sections = (SITE_SECTION,)
    settings_class = Settings

    def __init__(self) -> None:
        self.servers: dict[str, FcgiServer] = {}
        self.gateway: Gateway | None = None

    def start_worker(self, worker) -> None:
        self.servers = {name: FcgiServer(spec, worker.loop)
                        for name, spec in self.settings.servers.items()}
        self.gateway = Gateway(worker.config, self.settings.rules)
        if worker.index == 0:
            for spec in self.settings.servers.values():
                Probe(spec, worker.loop)

    @hookimpl
    def monkey_worker_stop(self, worker):
        for server in self.servers.values():
            server.close()

    @hookimpl
    def monkey_request_handler(self, request):
        params = self.gateway.rule_params(request)
        return None if params is None else self.handle(request, params)

    def handle(self, request, params: list[str]) -> bool:
        settings = self.settings
        site_name = request.site.name
        script = self.gateway.script(request, "FastCGI")
        if script is None:
            return True
        server = self.servers[settings.server_for(site_name, params)]
        variables = meta_variables(request, script, self.gateway.software,
                                   settings.site_env.get(site_name, ()),
                                   pass_authorization=True)
        Exchange(server, request, variables).start()
        return True


plugin = FastCgi()
