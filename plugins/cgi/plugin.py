"""The cgi plugin's hooks: run the script a ``[HANDLERS] Match ... cgi`` rule names.

As in Monkey, a rule's first parameter is an interpreter to run the script with, its
second a Content-Type for scripts that give none::

    Match /cgi-bin/.*\\.cgi cgi
    Match \\.py$ cgi /usr/bin/python3 text/plain

Limits (per worker): ``MaxScripts`` scripts at a time (503 beyond), ``Timeout`` seconds
of silence before a script is killed (504 if it had not answered). A request body
needs a Content-Length (411 otherwise: RFC 3875 scripts read CONTENT_LENGTH bytes).
"""

from __future__ import annotations

import logging
import os

from monkey_py.config import ConfigError, Key, plugin_section, read_section, values
from monkey_py.hookspec import hookimpl
from monkey_py.settings_plugin import SettingsPlugin

from .environ import meta_variables, rules_of, set_env, site_section
from .gateway import Gateway
from .script import ScriptRun

log = logging.getLogger("monkey_py.cgi")

NAME = "cgi"
SECTION = "CGI"
FILE_KEYS = [
    Key("Timeout", values.seconds, default=30.0),
    Key("MaxScripts", values.integer(1, 10000), default=16),
    Key("Path", values.string, default="/usr/local/bin:/usr/bin:/bin"),
]


SITE_KEYS = [Key("SetEnv", set_env, repeatable=True)]


class Settings:
    def __init__(self, config) -> None:
        own = {key.attribute: key.absent_value() for key in FILE_KEYS}
        section = plugin_section(config, NAME, SECTION)
        if section is not None:
            own = read_section(section, FILE_KEYS)
        self.timeout = own["timeout"]
        self.max_scripts = own["max_scripts"]
        self.path = own["path"].encode()
        self.site_env = {}
        self.rules = {}
        for site in config.sites:
            section = site_section(site, SECTION)
            if section is not None:
                self.site_env[site.name] = read_section(section, SITE_KEYS)["set_env"]
            self.rules[site.name] = rules_of(site, NAME)
            for rule in self.rules[site.name]:
                if rule.params:
                    interpreter = rule.params[0]
                    if not (os.path.isabs(interpreter) and os.path.isfile(interpreter)
                            and os.access(interpreter, os.X_OK)):
                        raise ConfigError(f"cgi interpreter {interpreter} is not an executable "
                                          "file; give its absolute path, e.g. "
                                          "/usr/bin/python3", rule.location)


class Cgi(SettingsPlugin):
    """Per-worker state: the settings, the loop and the scripts running."""

    site_sections = (SECTION,)
    settings_class = Settings

    def __init__(self) -> None:
        self.timeout = 30.0
        self.running: set[ScriptRun] = set()
        self.gateway: Gateway | None = None

    def start_worker(self, worker) -> None:
        self.timeout = self.settings.timeout
        self.gateway = Gateway(worker.config, self.settings.rules)

    @hookimpl
    def monkey_worker_stop(self, worker):
        for run in list(self.running):
            run.stop()
        self.running.clear()

    @hookimpl
    def monkey_request_handler(self, request):
        params = self.gateway.rule_params(request)
        return None if params is None else self.handle(request, params)

    def handle(self, request, params: list[str]) -> bool:
        site = request.site
        script = self.gateway.script(request, "CGI")
        if script is None:
            return True
        interpreter = params[0] if params else None
        if interpreter is None and not os.access(script.filename, os.X_OK):
            log.error("cgi: %s is not executable (chmod +x it, or name an interpreter in "
                      "the Match rule)", script.filename)
            request.error(500)
            return True
        if len(self.running) >= self.settings.max_scripts:
            request.error(503, "Too many scripts are running; try again shortly.",
                          headers=[(b"Retry-After", b"1")])
            return True
        variables = meta_variables(request, script, self.gateway.software,
                                   self.settings.site_env.get(site.name, ()))
        env = dict(variables)
        env[b"PATH"] = self.settings.path
        argv = [interpreter, script.filename] if interpreter else [script.filename]
        content_type = params[1].encode() if len(params) > 1 else None
        run = ScriptRun(self, request, argv, env, os.path.dirname(script.filename),
                        content_type)
        try:
            run.start()
        except OSError as exc:
            log.error("cgi: cannot run %s: %s", script.filename, exc)
            request.error(500)
        return True


plugin = Cgi()
