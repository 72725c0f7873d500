"""The ``[AUTH]`` sections of the site files: which paths need which users.

A site may hold several ``[AUTH]`` sections, each protecting one ``Location`` (a path
prefix, matched segment by segment on the decoded, normalised path) with the users of
one file, under a realm ``Title``. The first section whose location matches wins, in
file order, as in Monkey.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monkey_py.config import ConfigError, Key, Location, check_sections, read_section
from monkey_py.config.values import path as path_value
from monkey_py.static.paths import Forbidden, url_to_relpath

from .users import UsersFile, read_users

SECTION = "AUTH"


@dataclass(frozen=True)
class Area:
    """One protected location of one site."""

    prefix: str            # normalised, with a leading '/' and no trailing '/'
    realm: str
    challenge: bytes       # the WWW-Authenticate value
    users: UsersFile

    def covers(self, path: str) -> bool:
        """True for the prefix itself and every path below it (not for /privateer)."""
        prefix = self.prefix
        return (path.startswith(prefix)
                and (len(path) == len(prefix) or path[len(prefix)] == "/" or prefix == "/"))


def _location(value: str, location: Location) -> str:
    if not value.startswith("/"):
        raise ConfigError(f"Location {value} must be a path starting with '/', e.g. /private",
                          location)
    try:
        relpath = url_to_relpath(value.encode())
    except Forbidden as exc:
        raise ConfigError(f"Location {value}: {exc}", location) from None
    return "/" + relpath.rstrip("/")


def _title(value: str, location: Location) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigError("Title cannot hold control characters", location)
    return value


def challenge(realm: str) -> bytes:
    """``Basic realm="..."``, the realm as an RFC 9110 quoted-string."""
    quoted = realm.replace("\\", "\\\\").replace('"', '\\"')
    return f'Basic realm="{quoted}"'.encode()


def _keys(directory: Path) -> list[Key]:
    return [
        Key("Location", _location, required=True),
        Key("Title", _title, required=True),
        Key("Users", path_value(directory), required=True),
    ]


def read_areas(config) -> dict[str, list[Area]]:
    """Each site's protected areas by site name; raises ConfigError at the faulty line.

    A users file named by several sections is read once.
    """
    document = config.plugin_config("auth")
    if document is not None:
        check_sections(document, {})  # the plugin reads only the sites' [AUTH] sections
    keys = _keys(config.directory)
    files: dict[Path, UsersFile] = {}
    areas: dict[str, list[Area]] = {}
    for site in config.sites:
        for section in site.sections.get(SECTION, []):
            values = read_section(section, keys)
            users_path = values["users"]
            users = files.get(users_path)
            if users is None:
                users = files[users_path] = read_users(users_path,
                                                       section.get("Users").location)
            areas.setdefault(site.name, []).append(
                Area(values["location"], values["title"], challenge(values["title"]), users))
    return areas
