"""What the cgi and fastcgi plugins share in a worker: which ``Match`` rule chose a
request, the script it names (answering 403, 404 or 411 when there is none to run), and
the server's name for ``SERVER_SOFTWARE``."""

from __future__ import annotations

import os

from monkey_py import __version__
from monkey_py.static.paths import Forbidden

from .environ import Script, ScriptNotFound, locate_script


class Gateway:
    """The script side of one worker's configuration, for one plugin's ``Match`` rules."""

    def __init__(self, config, rules: dict[str, list]) -> None:
        self.rules = rules
        self.follow_symlinks = config.server.symlink
        # The static handler resolves its roots the same way.
        self.roots = {site.name: os.path.realpath(site.document_root) for site in config.sites}
        self.software = b"Monkey" if config.server.hide_version else (
            b"Monkey/" + __version__.encode())

    def rule_params(self, request) -> list[str] | None:
        """The parameters of the first of the site's rules for this plugin that matches.

        A handler is asked both by its rules and, without parameters, for every request:
        finding the rule here answers both the same way.
        """
        rules = self.rules.get(request.site.name)
        if rules:
            path = request.path.decode("latin-1")
            for rule in rules:
                if rule.matches(path):
                    return rule.params
        return None

    def script(self, request, what: str) -> Script | None:
        """The script ``request`` runs; None once the request was answered instead."""
        try:
            script = locate_script(self.roots[request.site.name], request.path,
                                   self.follow_symlinks)
        except Forbidden:
            request.error(403)
            return None
        except ScriptNotFound:
            request.error(404)
            return None
        if request.content_length < 0:
            request.error(411, f"A {what} request needs the body's Content-Length.")
            return None
        return script
