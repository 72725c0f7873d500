"""The mandril plugin's hooks: refuse clients at stage 10, requests at stage 20.

``plugins/mandril/mandril.conf`` holds Monkey's ``[RULES]`` for every site; a site file
may add its own in a ``[MANDRIL]`` section. Clients refused by a global IP rule are
closed at stage 10, before anything is read: nothing is parsed or answered for them
(Monkey does the same). Every other refusal is a 403 at stage 20, so a site's own IP
rules and all URL and hotlink rules answer with a page. Each refusal is logged, at most
``LOG_PER_SECOND`` lines a second per worker (then a count of the lines left out).
"""

from __future__ import annotations

import logging

from monkey_py.config import ConfigError, plugin_section
from monkey_py.hookspec import hookimpl
from monkey_py.settings_plugin import SettingsPlugin

from .rules import Rules, spellings

log = logging.getLogger("monkey_py.mandril")

NAME = "mandril"
FILE_SECTION = "RULES"
SITE_SECTION = "MANDRIL"
LOG_PER_SECOND = 20


class Settings:
    """The rules of one configuration: global, and each site's own by site name."""

    def __init__(self, config) -> None:
        self.everywhere = Rules()
        section = plugin_section(config, NAME, FILE_SECTION)
        if section is not None:
            self.everywhere = Rules.read(section)
        self.sites: dict[str, Rules] = {}
        for site in config.sites:
            sections = site.sections.get(SITE_SECTION, [])
            for section in sections[1:]:
                raise ConfigError(f"[{SITE_SECTION}] appears twice in site {site.name}; "
                                  "merge them into one", section.location)
            if sections:
                self.sites[site.name] = Rules.read(sections[0])


class RefusalLog:
    """Log lines for refusals, at most ``LOG_PER_SECOND`` a second."""

    def __init__(self) -> None:
        self.second = -1
        self.count = 0
        self.left_out = 0

    def refused(self, now: float, what: str, address: str, rule) -> None:
        second = int(now)
        if second != self.second:
            if self.left_out:
                log.warning("mandril: %d more refusal(s) not logged", self.left_out)
            self.second, self.count, self.left_out = second, 0, 0
        self.count += 1
        if self.count > LOG_PER_SECOND:
            self.left_out += 1
            return
        log.warning("mandril: refused %s from %s by rule %s", what, address, rule)


class Mandril(SettingsPlugin):
    site_sections = (SITE_SECTION,)
    settings_class = Settings

    def __init__(self) -> None:
        self.log = RefusalLog()

    @hookimpl
    def monkey_connection_accepted(self, connection):
        rule = self.settings.everywhere.refusing_address(connection.peer[0])
        if rule is None:
            return None
        self.log.refused(self.loop.now, "a connection", connection.peer[0], rule)
        return False

    @hookimpl
    def monkey_request_received(self, request):
        settings = self.settings
        own = settings.sites.get(request.site.name)
        if not settings.everywhere.urls and not settings.everywhere.hotlinks and own is None:
            return None
        paths = spellings(request.path)
        referer = request.header(b"referer")
        address = request.peer[0]
        rule = settings.everywhere.refusing_request(paths, request.host, referer)
        if rule is None and own is not None:
            rule = own.refusing_address(address) or own.refusing_request(
                paths, request.host, referer)
        if rule is None:
            return None
        self.log.refused(self.loop.now, f"{request.method} {request.path.decode('latin-1')}",
                         address, rule)
        request.error(403)
        return True


plugin = Mandril()
