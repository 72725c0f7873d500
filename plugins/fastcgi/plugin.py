"""The fastcgi plugin's hooks: requests a ``[HANDLERS] Match ... fastcgi`` rule names.

As in Monkey, a site sends requests with a rule such as ``Match \\.php$ fastcgi``; the
rule may name the ``[FASTCGI_SERVER]`` (``Match \\.php$ fastcgi php``), else the site's
``[FASTCGI] Server``, else the first server serves it. The script is looked up as the
cgi plugin does (the static handler's path rules; PATH_INFO after it): a path naming no
file gets 404 here, never reaching the server. Worker 0 tries each server once when it
starts and says in the log whether it answers.
"""

from __future__ import annotations

import os

from monkey_py import __version__
from monkey_py.hookspec import hookimpl
from monkey_py.static.paths import Forbidden
from monkey_py_plugins.cgi.environ import ScriptNotFound, locate_script, meta_variables

from .exchange import Exchange
from .servers import FcgiServer, Probe
from .settings import SITE_SECTION, Settings


class FastCgi:
    """Per-worker state: the settings, the servers and their pools."""

    def __init__(self) -> None:
        self.settings: Settings | None = None
        self.servers: dict[str, FcgiServer] = {}
        self.roots: dict[str, str] = {}
        self.follow_symlinks = False
        self.software = b""

    @hookimpl
    def monkey_site_sections(self):
        return [SITE_SECTION]

    @hookimpl
    def monkey_check_config(self, config):
        Settings(config)

    @hookimpl
    def monkey_worker_start(self, worker):
        config = worker.config
        self.settings = Settings(config)
        self.servers = {name: FcgiServer(spec, worker.loop)
                        for name, spec in self.settings.servers.items()}
        self.roots = {site.name: os.path.realpath(site.document_root) for site in config.sites}
        self.follow_symlinks = config.server.symlink
        self.software = b"Monkey" if config.server.hide_version else (
            b"Monkey/" + __version__.encode())
        if worker.index == 0:
            for spec in self.settings.servers.values():
                Probe(spec, worker.loop)

    @hookimpl
    def monkey_worker_stop(self, worker):
        for server in self.servers.values():
            server.close()

    @hookimpl
    def monkey_request_handler(self, request):
        site_name = request.site.name
        rules = self.settings.rules.get(site_name)
        if not rules:
            return None
        path = request.path.decode("latin-1")
        for rule in rules:
            if rule.matches(path):
                return self.handle(request, rule.params)
        return None

    def handle(self, request, params: list[str]) -> bool:
        settings = self.settings
        site_name = request.site.name
        try:
            script = locate_script(self.roots[site_name], request.path, self.follow_symlinks)
        except Forbidden:
            request.error(403)
            return True
        except ScriptNotFound:
            request.error(404)
            return True
        if request.content_length < 0:
            request.error(411, "A FastCGI request needs the body's Content-Length.")
            return True
        server = self.servers[settings.server_for(site_name, params)]
        variables = meta_variables(request, script, self.software,
                                   settings.site_env.get(site_name, ()),
                                   pass_authorization=True)
        Exchange(server, request, variables).start()
        return True


plugin = FastCgi()
