"""Read a configuration directory (monkey.conf, plugins.load, sites/) into a Config."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from .addresses import check_distinct
from .errors import ConfigError, Location
from .model import MAX_WORKERS, Config, Handler, Listen, PluginRef, ServerConfig, Site
from .schema import Key, check_sections, one_section, read_section, where_first
from .syntax import Document, Section, parse_file
from .values import (
    Converter,
    boolean,
    host_name,
    integer,
    listen,
    path,
    regex,
    seconds,
    size_kb,
    system_user,
    url,
    words,
)

MAIN_FILE = "monkey.conf"
PLUGINS_FILE = "plugins.load"
SITES_DIR = "sites"
DEFAULT_SITE = "default"

# Keys of Monkey's monkey.conf that monkey_py accepts but does not implement.
NO_EFFECT_KEYS = ("TransportLayer", "FDT", "OverCapacity", "FDLimit")

_PLUGIN_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_MIME_RE = re.compile(r"[\w!#$&^.+-]+/[\w!#$&^.+-]+(\s*;\s*[\w.+-]+=\S+)*")


def load_config(confdir: str | Path) -> Config:
    """Load and check the configuration directory ``confdir``; raise ConfigError on a mistake."""
    directory = Path(confdir)
    if not directory.is_dir():
        raise ConfigError(
            f"configuration directory {directory} does not exist; pass the directory "
            f"holding {MAIN_FILE} (e.g. -c etc/monkey)",
            Location(str(directory)),
        )
    main_path = directory / MAIN_FILE
    if not main_path.is_file():
        raise ConfigError(
            f"{main_path} is missing: every configuration directory needs a {MAIN_FILE} "
            "with a [SERVER] section",
            Location(str(main_path)),
        )
    warnings: list[str] = []
    main = parse_file(main_path)
    check_sections(main, {"SERVER": False, "PLUGINS": False})
    server_section = one_section(main, "SERVER", required=True)
    assert server_section is not None
    server = _read_server(server_section, directory, warnings)

    documents = [main]
    plugins_path = directory / PLUGINS_FILE
    if os.path.lexists(plugins_path):
        plugins_document = parse_file(plugins_path)
        check_sections(plugins_document, {"PLUGINS": False})
        documents.append(plugins_document)
    plugins = _read_plugins(documents)
    sites = _read_sites(directory, [plugin.name for plugin in plugins])
    return Config(directory, server, plugins, sites, warnings)


def server_key_names() -> list[str]:
    """Every key ``[SERVER]`` accepts, the implemented ones first (the docs test uses it)."""
    return [key.name for key in _server_keys(Path("."))] + list(NO_EFFECT_KEYS)


def _server_keys(directory: Path) -> list[Key]:
    return [
        Key(
            "Listen",
            listen,
            default=[Listen("0.0.0.0", 2001, socket.AF_INET)],
            repeatable=True,
        ),
        Key("Workers", workers, default=0),
        Key("Timeout", seconds, default=15.0),
        Key("KeepAlive", boolean, default=True, attr="keepalive"),
        Key("KeepAliveTimeout", seconds, default=5.0, attr="keepalive_timeout"),
        Key("MaxKeepAliveRequest", integer(1), default=1000, attr="max_keepalive_request"),
        Key("MaxRequestSize", size_kb, default=32 * 1024),
        Key("Indexfile", _index_files, default=["index.html", "index.htm"], attr="index_files"),
        Key("HideVersion", boolean, default=False),
        Key("Resume", boolean, default=True),
        Key("SymLink", boolean, default=False, attr="symlink"),
        Key("DefaultMimeType", _mime_type, default="text/plain"),
        Key("UserDir", _user_dir, default=None),
        Key("ServerSignature", boolean, default=True),
        Key("OpenFileCache", integer(0), default=1000),
        Key("OpenFileCacheValid", seconds, default=1.0),
        Key("PidFile", path(directory)),
        Key("User", system_user),
    ]


def _read_server(section: Section, directory: Path, warnings: list[str]) -> ServerConfig:
    values = read_section(
        section, _server_keys(directory), ignored=NO_EFFECT_KEYS, warnings=warnings
    )
    listen_lines = section.get_all("Listen")
    check_distinct(
        [(address, line.location) for address, line in zip(values["listen"], listen_lines)],
        "Listen",
    )
    return ServerConfig(**values)


def workers(value: str, location: Location) -> int:
    """A worker count for ``Workers`` or ``-w``: 0 (one per CPU) to MAX_WORKERS."""
    try:
        return integer(0, MAX_WORKERS)(value, location)
    except ConfigError:
        raise ConfigError(
            f"Workers {value}: expected 0 (one worker per CPU) to {MAX_WORKERS} worker "
            "processes",
            location,
        ) from None


def _index_files(value: str, location: Location) -> list[str]:
    names = words(value, location)
    for name in names:
        if "/" in name or name in (".", ".."):
            raise ConfigError(
                f"index file '{name}' must be a file name, without '/'; e.g. index.html",
                location,
            )
    return names


def _user_dir(value: str, location: Location) -> str:
    """UserDir: a directory name inside each user's home (``public_html``)."""
    if "/" in value.strip("/") or value.strip("/") in ("", ".", ".."):
        raise ConfigError(f"UserDir '{value}' must be a directory name inside a home "
                          "directory, without '/'; e.g. public_html", location)
    return value.strip("/")


def _mime_type(value: str, location: Location) -> str:
    if not _MIME_RE.fullmatch(value):
        raise ConfigError(f"'{value}' is not a MIME type; write e.g. text/plain", location)
    return value


def _plugin_name(value: str, location: Location) -> str:
    if "/" in value:
        raise ConfigError(
            f"'Load {value}': monkey_py loads plugins by name (an entry point of group "
            "monkey_py.plugins), not by file path; write e.g. 'Load logger'",
            location,
        )
    if not _PLUGIN_NAME_RE.fullmatch(value):
        raise ConfigError(
            f"'Load {value}': a plugin name is one word of letters, digits, '_', '-', '.'; "
            "write e.g. 'Load logger'",
            location,
        )
    return value


def _read_plugins(documents: list[Document]) -> list[PluginRef]:
    plugins: list[PluginRef] = []
    seen: dict[str, Location] = {}
    load = Key("Load", _plugin_name, repeatable=True)
    for document in documents:
        section = one_section(document, "PLUGINS")
        if section is None:
            continue
        names = read_section(section, [load])["load"]
        for name, entry in zip(names, section.get_all("Load")):
            if name in seen:
                raise ConfigError(
                    f"plugin '{name}' is loaded twice (first at "
                    f"{where_first(seen[name], entry.location)}); remove one Load line",
                    entry.location,
                )
            seen[name] = entry.location
            plugins.append(PluginRef(name, entry.location))
    return plugins


def _site_files(directory: Path) -> list[Path]:
    sites_dir = directory / SITES_DIR
    if not sites_dir.is_dir():
        raise ConfigError(
            f"{sites_dir} is missing: create it with a site file '{DEFAULT_SITE}' holding "
            "a [HOST] section",
            Location(str(sites_dir)),
        )
    default = sites_dir / DEFAULT_SITE
    if default.is_dir():
        raise ConfigError(
            f"{default} is a directory, but the default site is a file holding a [HOST] "
            f"section; move the directory away (e.g. to {sites_dir / ('.' + DEFAULT_SITE)}) "
            "and write the site file in its place",
            Location(str(default)),
        )
    files = [entry for entry in sites_dir.iterdir() if not _not_a_site(entry)]
    if not files:
        raise ConfigError(
            f"no site in {sites_dir}: create a site file '{DEFAULT_SITE}' holding a [HOST] "
            "section with ServerName and DocumentRoot",
            Location(str(sites_dir)),
        )
    return sorted(files, key=lambda entry: (entry.name != DEFAULT_SITE, entry.name))


def _not_a_site(entry: Path) -> bool:
    """True for what sites/ may hold besides sites: hidden names, editor backups (``~``),
    directories. Anything else is read as a site, so that a dangling symbolic link or a
    FIFO is reported instead of silently skipped.
    """
    return entry.name.startswith(".") or entry.name.endswith("~") or entry.is_dir()


def _read_sites(directory: Path, plugin_names: list[str]) -> list[Site]:
    sites: list[Site] = []
    owners: dict[str, tuple[str, Location]] = {}
    for file in _site_files(directory):
        document = parse_file(file)
        site = _read_site(file, document, directory, plugin_names)
        host = one_section(document, "HOST")
        assert host is not None
        for entry in host.get_all("ServerName"):
            for name in words(entry.value, entry.location):
                name = name.lower()
                if name in owners:
                    other, first = owners[name]
                    raise ConfigError(
                        f"ServerName {name} is already served by site '{other}' "
                        f"(at {first}); a name belongs to one site",
                        entry.location,
                    )
                owners[name] = (site.name, entry.location)
        sites.append(site)
    return sites


def _server_names(value: str, location: Location) -> list[str]:
    return [host_name(name, location) for name in words(value, location)]


def _read_site(file: Path, document: Document, directory: Path, plugins: list[str]) -> Site:
    host = one_section(document, "HOST", required=True)
    assert host is not None
    values = read_section(
        host,
        [
            Key(
                "ServerName",
                _server_names,
                repeatable=True,
                required=True,
                unique=True,
                attr="server_names",
            ),
            Key("DocumentRoot", path(directory), required=True),
            Key("Redirect", url),
        ],
    )
    document_root: Path = values["document_root"]
    root_entry = host.get("DocumentRoot")
    assert root_entry is not None
    if not document_root.is_dir():
        problem = "is not a directory" if document_root.exists() else "does not exist"
        raise ConfigError(
            f"DocumentRoot {document_root} {problem}; point it at the directory of the "
            "site's files (relative paths start at the configuration directory)",
            root_entry.location,
        )
    error_section = one_section(document, "ERROR_PAGES")
    handler_section = one_section(document, "HANDLERS")
    handlers: list[Handler] = []
    if handler_section is not None:
        handlers = read_section(
            handler_section, [Key("Match", _handler(plugins), repeatable=True)]
        )["match"]
    sections: dict[str, list[Section]] = {}
    for section in document.sections:
        if section.name not in ("HOST", "ERROR_PAGES", "HANDLERS"):
            sections.setdefault(section.name, []).append(section)
    return Site(
        name=file.name,
        path=file,
        server_names=values["server_names"],
        document_root=document_root,
        redirect=values["redirect"],
        error_pages=_read_error_pages(error_section, document_root),
        handlers=handlers,
        sections=sections,
    )


def _read_error_pages(section: Section | None, document_root: Path) -> dict[int, Path]:
    pages: dict[int, Path] = {}
    if section is None:
        return pages
    first_seen: dict[int, Location] = {}
    for entry in section.entries:
        if not entry.key.isdigit() or not 400 <= int(entry.key) <= 599:
            raise ConfigError(
                f"'{entry.key}' is not an error status: keys in [ERROR_PAGES] are HTTP "
                "status codes from 400 to 599, e.g. '404 404.html'",
                entry.location,
            )
        status = int(entry.key)
        if status in first_seen:
            raise ConfigError(
                f"error page {status} is set twice (first at "
                f"{where_first(first_seen[status], entry.location)}); keep one",
                entry.location,
            )
        first_seen[status] = entry.location
        page = path(document_root)(entry.value, entry.location)
        if not page.is_file():
            raise ConfigError(
                f"error page {status}: {page} is not a file; name a file relative to "
                f"DocumentRoot {document_root}",
                entry.location,
            )
        pages[status] = page
    return pages


def _handler(plugins: list[str]) -> Converter[Handler]:
    def convert_handler(value: str, location: Location) -> Handler:
        parts = value.split()
        if len(parts) < 2:
            raise ConfigError(
                f"'Match {value}': write 'Match <regex> <plugin> [params...]'", location
            )
        pattern = regex()(parts[0], location)
        if parts[1] not in plugins:
            loaded = ", ".join(plugins) or "none"
            raise ConfigError(
                f"plugin '{parts[1]}' is not loaded (loaded plugins: {loaded}); "
                f"add 'Load {parts[1]}' to {PLUGINS_FILE}",
                location,
            )
        return Handler(pattern, parts[1], parts[2:], location)

    return convert_handler
