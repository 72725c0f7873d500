"""The example plugin's settings: its own file and the ``[EXAMPLE]`` sections of sites.

``plugins/example/example.conf``::

    [EXAMPLE]
        RecordTo      /var/tmp/example-hooks.log
        RefuseAddress 192.0.2.7 2001:db8::7

A site file may hold::

    [EXAMPLE]
        Greeting Hello from this site

Both are read with the core's schema helpers, so a mistake stops the server (and
``monkey check``) with the file, the line and the valid choices.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from monkey_py.config import Config, ConfigError, Key, Location, check_sections, one_section
from monkey_py.config import read_section, values

NAME = "example"
SECTION = "EXAMPLE"
DEFAULT_GREETING = "Hello from the example plugin"


def address(value: str, location: Location) -> list[str]:
    """Blank-separated IPv4 or IPv6 addresses, in their canonical spelling."""
    found = []
    for word in values.words(value, location):
        try:
            found.append(str(ipaddress.ip_address(word)))
        except ValueError:
            raise ConfigError(
                f"'{word}' is not an IP address; write e.g. 192.0.2.7 or 2001:db8::7", location
            ) from None
    return found


PLUGIN_KEYS = [
    # A relative path starts at the directory of example.conf.
    Key("RecordTo", values.path(), default=None),
    Key("RefuseAddress", address, repeatable=True, unique=True, attr="refuse"),
]
SITE_KEYS = [Key("Greeting", values.string, default=DEFAULT_GREETING)]


@dataclass(frozen=True)
class Settings:
    """What the plugin needs from one configuration; ``greetings`` maps site name to text."""

    record_to: Path | None
    refuse: frozenset[str]
    greetings: dict[str, str]

    def greeting(self, site) -> str:
        return self.greetings.get(site.name, DEFAULT_GREETING)


def read_settings(config: Config) -> Settings:
    """Read and check everything; raises ``ConfigError`` at the offending line."""
    own = {"record_to": None, "refuse": []}
    document = config.plugin_config(NAME)
    if document is not None:
        check_sections(document, {SECTION: False})
        section = one_section(document, SECTION)
        if section is not None:
            own = read_section(section, PLUGIN_KEYS)
            record_to = own["record_to"]
            if record_to is not None and not record_to.parent.is_dir():
                raise ConfigError(
                    f"RecordTo {record_to}: directory {record_to.parent} does not exist; "
                    "create it or name a file in an existing directory",
                    section.get("RecordTo").location,
                )
    greetings = {}
    for site in config.sites:
        sections = site.sections.get(SECTION, [])
        if len(sections) > 1:
            raise ConfigError(
                f"[{SECTION}] appears twice in site '{site.name}'; merge them into one",
                sections[1].location,
            )
        if sections:
            greetings[site.name] = read_section(sections[0], SITE_KEYS)["greeting"]
    return Settings(own["record_to"], frozenset(own["refuse"]), greetings)
