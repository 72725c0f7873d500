"""The tls plugin's configuration: Monkey's ``plugins/tls/tls.conf`` and a site's own
``[TLS]`` section.

``tls.conf`` holds the server's certificate, as Monkey's tls plugin reads it; a relative
path starts at the plugin's configuration directory. A site file may name a certificate
of its own (chosen by SNI for the site's ``ServerName`` names) and turn on the redirect
of its plain HTTP requests to HTTPS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monkey_py.config import ConfigError, Key, Location, plugin_section, read_section
from monkey_py.config import values

NAME = "tls"
SECTION = "TLS"
_FILES = (("CertificateFile", "certificate"), ("CertificateChainFile", "chain"),
          ("RSAKeyFile", "key"), ("DHParameterFile", "dh_parameters"))


@dataclass(frozen=True)
class Certificate:
    """A certificate, its optional chain, its private key and optional Diffie-Hellman
    parameters (PEM files), with the line that named each."""

    certificate: Path
    key: Path
    chain: Path | None
    dh_parameters: Path | None
    lines: dict[str, Location]


@dataclass(frozen=True)
class SiteTls:
    """A site's ``[TLS]``: its server names, its own certificate (or None), and whether
    its plain HTTP requests are redirected to HTTPS."""

    names: tuple[str, ...]
    certificate: Certificate | None
    redirect: bool


@dataclass(frozen=True)
class TlsSettings:
    """The server's certificate (from tls.conf) and the sites' own ``[TLS]``."""

    certificate: Certificate | None
    sites: dict[str, SiteTls]


def _keys(base, site: bool) -> list[Key]:
    keys = [Key(name, values.path(base), attr=attr) for name, attr in _FILES]
    if site:
        keys.append(Key("RedirectHTTP", values.boolean, default=False, attr="redirect"))
    return keys


def _certificate(section, read: dict) -> Certificate | None:
    """The certificate a section names, or None when it names none."""
    if read["certificate"] is None and read["key"] is None:
        if read["chain"] is not None or read["dh_parameters"] is not None:
            raise ConfigError(f"[{SECTION}] names a chain or DH parameters but no "
                              "CertificateFile and RSAKeyFile", section.location)
        return None
    for name, attr in (("CertificateFile", "certificate"), ("RSAKeyFile", "key")):
        if read[attr] is None:
            raise ConfigError(f"[{SECTION}] needs {name} as well: a certificate goes with "
                              "its private key (both PEM files)", section.location)
    lines = {name: section.get(name).location for name, _ in _FILES if section.get(name)}
    return Certificate(read["certificate"], read["key"], read["chain"],
                       read["dh_parameters"], lines)


def read_settings(config) -> TlsSettings:
    """Read ``tls.conf`` and the sites' ``[TLS]`` sections; raise ConfigError at file:line."""
    certificate = None
    section = plugin_section(config, NAME, SECTION)
    if section is not None:
        base = config.plugin_config_path(NAME).parent
        certificate = _certificate(section, read_section(section, _keys(base, False)))
    sites = {}
    for site in config.sites:
        found = site.sections.get(SECTION)
        if not found:
            continue
        if len(found) > 1:
            raise ConfigError(f"[{SECTION}] appears twice in site {site.name}",
                              found[1].location)
        read = read_section(found[0], _keys(None, True))
        sites[site.name] = SiteTls(tuple(site.server_names), _certificate(found[0], read),
                                   read["redirect"])
    if config.server.tls_listens() and certificate is None:
        where = config.plugin_config_path(NAME)
        raise ConfigError(f"Listen {config.server.tls_listens()[0]} needs a certificate: "
                          f"set CertificateFile and RSAKeyFile in [{SECTION}] of {where}",
                          Location(str(where)))
    return TlsSettings(certificate, sites)
