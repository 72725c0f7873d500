"""The fastcgi plugin's configuration: Monkey's ``[FASTCGI_SERVER]`` sections, the sites'
``[FASTCGI]`` sections and their ``[HANDLERS] Match ... fastcgi [ServerName]`` rules."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from monkey_py.config import ConfigError, Key, Location, check_sections, read_section, values
from monkey_py_plugins.cgi.environ import rules_of, set_env, site_section

NAME = "fastcgi"
SERVER_SECTION = "FASTCGI_SERVER"
SITE_SECTION = "FASTCGI"


def server_addr(value: str, location: Location):
    """``HOST:PORT`` or ``[IPV6]:PORT``; a host name is resolved now."""
    if ":" not in value:
        raise ConfigError(f"ServerAddr {value}: expected HOST:PORT, e.g. 127.0.0.1:9000",
                          location)
    return values.listen(value, location)


def _keys(directory) -> list[Key]:
    return [
        Key("ServerName", values.word, required=True),
        Key("ServerAddr", server_addr, default=None),
        Key("ServerPath", values.path(directory), default=None),
        Key("MaxConnections", values.integer(1, 1024), default=4),
        Key("KeepAlive", values.boolean, default=True),
        Key("KeepAliveTimeout", values.seconds, default=2.0, attr="keepalive_timeout"),
        Key("Timeout", values.seconds, default=60.0),
    ]


SITE_KEYS = [Key("Server", values.word, default=None), Key("SetEnv", set_env, repeatable=True)]


@dataclass(frozen=True)
class ServerSpec:
    """One ``[FASTCGI_SERVER]``: where it is and how connections to it are kept."""

    name: str
    family: int
    address: object           # (host, port) or a socket path
    max_connections: int
    keep_alive: bool
    keepalive_timeout: float
    timeout: float

    def __str__(self) -> str:
        if self.family == socket.AF_UNIX:
            return f"{self.name} (ServerPath {self.address})"
        host, port = self.address[:2]
        return f"{self.name} (ServerAddr {host}:{port})"


class Settings:
    """The servers by name, and each site's default server, variables and rules."""

    def __init__(self, config) -> None:
        self.servers: dict[str, ServerSpec] = {}
        document = config.plugin_config(NAME)
        if document is not None:
            check_sections(document, {SERVER_SECTION: True})
            for section in document.sections_named(SERVER_SECTION):
                self._add_server(section, read_section(section, _keys(config.directory)))
        self.site_server: dict[str, str] = {}
        self.site_env: dict[str, list] = {}
        self.rules: dict[str, list] = {}
        for site in config.sites:
            self.rules[site.name] = rules = rules_of(site, NAME)
            section = site_section(site, SITE_SECTION)
            own = read_section(section, SITE_KEYS) if section is not None else {"server": None}
            if own["server"] is not None:
                self._known(own["server"], section.get("Server").location)
                self.site_server[site.name] = own["server"]
            self.site_env[site.name] = own.get("set_env", [])
            for rule in rules:
                if rule.params:
                    self._known(rule.params[0], rule.location)
                elif not self.servers:
                    self._known("", rule.location)

    def _add_server(self, section, own: dict) -> None:
        name = own["server_name"]
        where = section.get("ServerName").location
        if name in self.servers:
            raise ConfigError(f"ServerName {name} is used by two [{SERVER_SECTION}] sections",
                              where)
        addr, path = own["server_addr"], own["server_path"]
        if (addr is None) == (path is None):
            raise ConfigError(f"[{SERVER_SECTION}] {name} needs ServerAddr (HOST:PORT) or "
                              "ServerPath (a Unix socket), one of them", section.location)
        if path is not None:
            family, address = socket.AF_UNIX, str(path)
        else:
            family, address = addr.family, (addr.host, addr.port)
        self.servers[name] = ServerSpec(name, family, address, own["max_connections"],
                                        own["keep_alive"], own["keepalive_timeout"],
                                        own["timeout"])

    def _known(self, name: str, location: Location) -> None:
        if name not in self.servers:
            choices = ", ".join(self.servers) or "none: add a [FASTCGI_SERVER] to fastcgi.conf"
            raise ConfigError(f"unknown FastCGI server '{name}'; servers: {choices}", location)

    def server_for(self, site_name: str, params: list[str]) -> str:
        """The rule's server, else the site's ``Server``, else the first one."""
        if params:
            return params[0]
        return self.site_server.get(site_name) or next(iter(self.servers))
