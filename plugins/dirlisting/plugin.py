"""The dirlisting plugin's hooks: directory requests at stage 30, before static files.

A ``GET`` or ``HEAD`` for a directory, asked with its trailing slash, whose directory
holds none of the ``Indexfile`` names, is answered with a listing. Everything else is
left to the static handler: a directory asked without its slash gets its redirect
there, an index file is served there. The path goes through the static handler's own
``url_to_relpath`` and ``resolve``, so a listing is never made of a directory the static
handler would not serve.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from monkey_py.config import ConfigError, Key, plugin_section, read_section, values
from monkey_py.hookspec import hookimpl
from monkey_py.settings_plugin import SettingsPlugin
from monkey_py.static.paths import Forbidden, resolve, url_to_relpath

from .listing import read_directory, render
from .theme import DEFAULT, Theme, load_theme

NAME = "dirlisting"
SECTION = "DIRLISTING"
HEADERS = b"Content-Type: text/html; charset=utf-8\r\nCache-Control: no-cache\r\n"

FILE_KEYS = [
    Key("Theme", values.word, default=None),
    Key("MaxEntries", values.integer(1, 100000), default=1000),
]
SITE_KEYS = [
    Key("Enabled", values.boolean, default=True),
    Key("Theme", values.word, default=None),
]


@dataclass(frozen=True)
class SiteListing:
    enabled: bool
    theme: Theme


def _theme(config, name: str | None, section) -> Theme:
    """The built-in theme for None or ``default``, else ``plugins/dirlisting/themes/<name>/``."""
    if name is None or name == "default":
        return DEFAULT
    directory = config.plugin_config_path(NAME).parent / "themes" / name
    return load_theme(directory, section.get("Theme").location)


class Settings:
    """What one configuration asks: the entry cap, and each site's switch and theme."""

    def __init__(self, config) -> None:
        self.max_entries = 1000
        theme = DEFAULT
        section = plugin_section(config, NAME, SECTION)
        if section is not None:
            own = read_section(section, FILE_KEYS)
            self.max_entries = own["max_entries"]
            theme = _theme(config, own["theme"], section)
        self.sites: dict[str, SiteListing] = {}
        for site in config.sites:
            sections = site.sections.get(SECTION, [])
            if len(sections) > 1:
                raise ConfigError(f"[{SECTION}] appears twice in site {site.name}; merge them "
                                  "into one", sections[1].location)
            listing = SiteListing(True, theme)
            if sections:
                own = read_section(sections[0], SITE_KEYS)
                site_theme = theme if own["theme"] is None else _theme(
                    config, own["theme"], sections[0])
                listing = SiteListing(own["enabled"], site_theme)
            self.sites[site.name] = listing


class DirListing(SettingsPlugin):
    site_sections = (SECTION,)
    settings_class = Settings

    def __init__(self) -> None:
        self.follow_symlinks = False
        self.index_files: list[str] = []
        self.roots: dict[str, str] = {}

    def start_worker(self, worker) -> None:
        config = worker.config
        self.follow_symlinks = config.server.symlink
        self.index_files = list(config.server.index_files)
        # The static handler resolves its roots the same way.
        self.roots = {site.name: os.path.realpath(site.document_root) for site in config.sites}

    @hookimpl
    def monkey_request_handler(self, request):
        if not request.path.endswith(b"/"):
            return None
        listing = self.settings.sites.get(request.site.name)
        if listing is None or not listing.enabled:
            return None
        root = self.roots[request.site.name]
        try:
            relpath = url_to_relpath(request.path)
            directory = resolve(root, relpath, self.follow_symlinks)
            if not stat.S_ISDIR(os.stat(directory).st_mode) or self._has_index(root, relpath):
                return None
        except (Forbidden, OSError):
            return None  # the static handler gives the answer (403, 404)
        if request.method not in ("GET", "HEAD"):
            # A listing is read, not written to.
            request.error(405, headers=[(b"Allow", b"GET, HEAD")])
            return True
        try:
            entries, truncated = read_directory(directory, self.follow_symlinks,
                                                self.settings.max_entries)
        except OSError:
            return None  # the static handler gives the answer
        page = render(listing.theme, "/" + relpath, entries, bool(relpath), truncated)
        request.respond(200, HEADERS, page)
        return True

    def _has_index(self, root: str, relpath: str) -> bool:
        """Whether the static handler would serve an index file for this directory."""
        for name in self.index_files:
            try:
                path = resolve(root, relpath + name, self.follow_symlinks)
                if stat.S_ISREG(os.stat(path).st_mode):
                    return True
            except (Forbidden, OSError):
                continue
        return False


plugin = DirListing()
