"""Loading a configuration directory: monkey.conf, plugins.load, sites/, plugin files."""

from __future__ import annotations

import os
import pwd
import socket
import textwrap
from pathlib import Path

import pytest

from monkey_py.config import Config, ConfigError, Listen, Location, load_config

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.fixture
def confdir(tmp_path: Path) -> Path:
    """The smallest valid directory: Listen, an empty plugins.load, one default site."""
    conf = tmp_path / "conf"
    write(conf / "monkey.conf", "[SERVER]\n    Listen 2001\n")
    write(conf / "plugins.load", "")
    (conf / "htdocs").mkdir()
    write(conf / "sites" / "default", "[HOST]\n    ServerName localhost\n    DocumentRoot htdocs\n")
    return conf


def load_error(confdir: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(confdir)
    return info.value


def at(error: ConfigError, path: Path, line: int) -> None:
    assert error.location == Location(str(path), line), str(error)


def test_shipped_configuration_loads() -> None:
    config = load_config(REPO / "etc" / "monkey")
    assert config.server.listen == [
        Listen("0.0.0.0", 2001, socket.AF_INET), Listen("0.0.0.0", 2443, socket.AF_INET, True),
        *(Listen("0.0.0.0", port, socket.AF_INET) for port in (2002, 2003)),
    ]
    assert config.plugin_names == ["logger", "proxy_reverse", "fastcgi", "tls"]
    assert [site.name for site in config.sites] == ["default", "upstream-a", "upstream-b"]
    assert config.default_site.server_names == ["127.0.0.1", "localhost"]
    assert config.default_site.document_root == REPO / "etc" / "monkey" / "htdocs"
    assert config.warnings == []


def test_minimal_directory_gets_defaults(confdir: Path) -> None:
    config = load_config(confdir)
    server = config.server
    assert server.listen == [Listen("0.0.0.0", 2001, socket.AF_INET)]
    assert (server.workers, server.timeout, server.keepalive) == (0, 15.0, True)
    assert (server.keepalive_timeout, server.max_keepalive_request) == (5.0, 1000)
    assert server.max_request_size == 32 * 1024
    assert server.index_files == ["index.html", "index.htm"]
    assert (server.hide_version, server.resume, server.symlink) == (False, True, False)
    assert server.default_mime_type == "text/plain"
    assert (server.pid_file, server.user) == (None, None)
    assert server.worker_count() == (os.cpu_count() or 1)
    assert config.plugins == []
    assert config.directory == confdir
    site = config.default_site
    assert site.document_root == confdir / "htdocs"
    assert (site.redirect, site.error_pages, site.handlers, site.sections) == (None, {}, [], {})


def test_every_server_key(confdir: Path) -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    write(
        confdir / "monkey.conf",
        f"""
        [SERVER]
            Listen 127.0.0.1:8080
            Listen [::1]:8080
            Workers 3
            Timeout 0.5
            KeepAlive off
            KeepAliveTimeout 2
            MaxKeepAliveRequest 10
            MaxRequestSize 64
            Indexfile default.html
            HideVersion On
            Resume Off
            SymLink On
            DefaultMimeType application/octet-stream
            PidFile run/monkey.pid
            User {me}
        """,
    )
    server = load_config(confdir).server
    assert server.listen == [
        Listen("127.0.0.1", 8080, socket.AF_INET),
        Listen("::1", 8080, socket.AF_INET6),
    ]
    assert (server.workers, server.worker_count(), server.timeout) == (3, 3, 0.5)
    assert (server.keepalive, server.keepalive_timeout, server.max_keepalive_request) == (
        False,
        2.0,
        10,
    )
    assert server.max_request_size == 65536
    assert server.index_files == ["default.html"]
    assert (server.hide_version, server.resume, server.symlink) == (True, False, True)
    assert server.default_mime_type == "application/octet-stream"
    assert server.pid_file == confdir.absolute() / "run" / "monkey.pid"
    assert server.user == me


def test_monkey_keys_without_effect_are_warnings(confdir: Path) -> None:
    main = write(
        confdir / "monkey.conf", "[SERVER]\n    Listen 2001\n    FDT On\n    transportlayer liana\n"
    )
    config = load_config(confdir)
    assert config.warnings == [
        f"{main}:3: FDT has no effect in monkey_py",
        f"{main}:4: transportlayer has no effect in monkey_py",
    ]


def test_workers_is_bounded(confdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(confdir / "monkey.conf", "[SERVER]\n    Workers 1024\n")
    assert load_config(confdir).server.worker_count() == 1024
    write(confdir / "monkey.conf", "[SERVER]\n    Workers 0\n")
    monkeypatch.setattr(os, "cpu_count", lambda: 4096)
    assert load_config(confdir).server.worker_count() == 1024


def test_wildcards_of_both_families_and_other_ports_do_not_overlap(confdir: Path) -> None:
    write(confdir / "monkey.conf",
          "[SERVER]\n    Listen 2001\n    Listen [::]:2001\n    Listen 127.0.0.1:2002\n")
    assert [str(a) for a in load_config(confdir).server.listen] == [
        "0.0.0.0:2001", "[::]:2001", "127.0.0.1:2002"
    ]


SERVER = "[SERVER]\n    Listen 1\n"


@pytest.mark.parametrize(
    ("text", "line", "gist"),
    [
        (
            "[SERVER]\n    Listen 2001\n    Listen 0.0.0.0:2001\n",
            3,
            "Listen 0.0.0.0:2001 is given twice (first at line 2)",
        ),
        ("[SERVER]\n    Listen 70000\n", 2, "port 70000 is out of range"),
        ("[SERVER]\n    Workers -1\n", 2, "Workers -1: expected 0 (one worker per CPU) to 1024"),
        ("[SERVER]\n    Workers 100000000\n", 2, "Workers 100000000: expected 0 (one"),
        ("[SERVER]\n    Workers many\n", 2, "Workers many: expected 0 (one worker per CPU)"),
        (
            "[SERVER]\n    Listen 2001\n    Listen 127.0.0.1:2001\n",
            3,
            "Listen 127.0.0.1:2001 overlaps Listen 0.0.0.0:2001 (line 2): 0.0.0.0:2001 already "
            "accepts connections to every IPv4 address on port 2001; remove one",
        ),
        (
            "[SERVER]\n    Listen [::1]:2001\n    Listen [::]:2001\n",
            3,
            "Listen [::]:2001 overlaps Listen [::1]:2001 (line 2): [::]:2001 already "
            "accepts connections to every IPv6 address on port 2001",
        ),
        ("[SERVER]\n    Timeout 0\n", 2, "greater than 0"),
        ("[SERVER]\n    KeepAlive yes\n", 2, "valid values: On, Off"),
        ("[SERVER]\n    MaxKeepAliveRequest 0\n", 2, "expected a number >= 1"),
        ("[SERVER]\n    MaxRequestSize 32k\n", 2, "'32k' is not a whole number"),
        ("[SERVER]\n    Indexfile a/index.html\n", 2, "must be a file name, without '/'"),
        ("[SERVER]\n    DefaultMimeType plain\n", 2, "'plain' is not a MIME type"),
        ("[SERVER]\n    User no-such-user-x1\n", 2, "unknown user 'no-such-user-x1'"),
        (
            "[SERVER]\n    Port 2001\n",
            2,
            "unknown key 'Port' in [SERVER]; valid keys: Listen, Workers",
        ),
        (
            "[SERVER]\n    Timeout 1\n    Timeout 2\n",
            3,
            "'Timeout' is set twice in [SERVER] (first at line 2)",
        ),
        (SERVER + "[SERVER]\n    Workers 1\n", 3, "section [SERVER] appears twice"),
        (
            SERVER + "[HOST]\n    ServerName x\n",
            3,
            "unknown section [HOST]; valid sections here: [SERVER], [PLUGINS]",
        ),
        (SERVER + "[PLUGINS]\n    Load /usr/lib/monkey/monkey-liana.so\n", 4, "by name"),
        (SERVER + "[PLUGINS]\n    Load two words\n", 4, "a plugin name is one word"),
        (
            SERVER + "[PLUGINS]\n    Plugin logger\n",
            4,
            "unknown key 'Plugin' in [PLUGINS]; valid keys: Load",
        ),
    ],
)
def test_monkey_conf_errors(confdir: Path, text: str, line: int, gist: str) -> None:
    main = confdir / "monkey.conf"
    main.write_text(text)
    error = load_error(confdir)
    at(error, main, line)
    assert gist in error.message


def test_missing_server_section(confdir: Path) -> None:
    main = write(confdir / "monkey.conf", "# nothing\n")
    error = load_error(confdir)
    assert str(error) == f"{main}: no [SERVER] section: add one"


def test_missing_directory_and_main_file(tmp_path: Path) -> None:
    error = load_error(tmp_path / "absent")
    assert str(error).startswith(f"{tmp_path / 'absent'}: configuration directory")
    assert "does not exist" in error.message
    error = load_error(tmp_path)
    assert error.location == Location(str(tmp_path / "monkey.conf"))
    assert "monkey.conf is missing" in error.message


def test_plugins_from_both_files_in_order(confdir: Path) -> None:
    write(confdir / "monkey.conf", "[SERVER]\n    Listen 2001\n[PLUGINS]\n    Load first\n")
    load = write(confdir / "plugins.load", "[PLUGINS]\n    Load logger\n    Load proxy_reverse\n")
    config = load_config(confdir)
    assert config.plugin_names == ["first", "logger", "proxy_reverse"]
    assert config.plugins[2].location == Location(str(load), 3)


def test_plugins_load_is_optional(confdir: Path) -> None:
    (confdir / "plugins.load").unlink()
    assert load_config(confdir).plugins == []


def test_plugin_loaded_twice(confdir: Path) -> None:
    main = write(confdir / "monkey.conf", "[SERVER]\n    Listen 2001\n[PLUGINS]\n    Load logger\n")
    load = write(confdir / "plugins.load", "[PLUGINS]\n    Load logger\n")
    error = load_error(confdir)
    at(error, load, 2)
    assert f"plugin 'logger' is loaded twice (first at {main}:4)" in error.message


def test_plugins_load_rejects_other_sections(confdir: Path) -> None:
    load = write(confdir / "plugins.load", "[PLUGINS]\n    Load a\n[SERVER]\n    Listen 1\n")
    error = load_error(confdir)
    at(error, load, 3)
    assert "valid sections here: [PLUGINS]" in error.message


HOST = "[HOST]\n    ServerName a\n    DocumentRoot htdocs\n"


def site(confdir: Path, name: str, text: str) -> Path:
    return write(confdir / "sites" / name, text)


def test_sites_order_default_first_and_ignored_files(confdir: Path) -> None:
    (confdir / "www").mkdir()
    site(confdir, "alpha", "[HOST]\n    ServerName alpha.test\n    DocumentRoot www\n")
    site(confdir, "zeta", "[HOST]\n    ServerName zeta.test\n    DocumentRoot www\n")
    site(confdir, ".hidden", "broken")
    site(confdir, "alpha~", "broken")
    (confdir / "sites" / "subdir").mkdir()
    config = load_config(confdir)
    assert [s.name for s in config.sites] == ["default", "alpha", "zeta"]
    assert config.default_site.name == "default"


def test_a_dangling_symbolic_link_in_sites_is_reported(confdir: Path) -> None:
    link = confdir / "sites" / "blog"
    link.symlink_to("../available/blog")
    error = load_error(confdir)
    at(error, link, 0)
    assert "symbolic link to '../available/blog', which does not exist" in error.message


def test_a_fifo_in_sites_is_reported(confdir: Path) -> None:
    fifo = confdir / "sites" / "pipe"
    os.mkfifo(fifo)
    error = load_error(confdir)
    at(error, fifo, 0)
    assert "named pipe (FIFO), not a regular file" in error.message


def test_a_directory_named_default_is_refused(confdir: Path) -> None:
    (confdir / "sites" / "default").unlink()
    (confdir / "sites" / "default").mkdir()
    site(confdir, "other", HOST)
    error = load_error(confdir)
    at(error, confdir / "sites" / "default", 0)
    assert "is a directory, but the default site is a file holding a [HOST] section" in (
        error.message
    )


def test_a_byte_order_mark_in_monkey_conf_is_accepted(confdir: Path) -> None:
    (confdir / "monkey.conf").write_bytes(b"\xef\xbb\xbf[SERVER]\r\n    Listen 2002\r\n")
    assert [a.port for a in load_config(confdir).server.listen] == [2002]


def test_a_dangling_plugins_load_or_plugin_file_is_reported(confdir: Path) -> None:
    (confdir / "plugins.load").unlink()
    (confdir / "plugins.load").symlink_to("nowhere.load")
    assert "symbolic link to 'nowhere.load'" in load_error(confdir).message
    (confdir / "plugins.load").unlink()
    config = load_config(confdir)
    (confdir / "plugins" / "logger").mkdir(parents=True)
    os.mkfifo(confdir / "plugins" / "logger" / "logger.conf")
    with pytest.raises(ConfigError) as info:
        config.plugin_config("logger")
    assert "named pipe (FIFO)" in info.value.message


def test_without_default_the_first_site_by_name_is_default(confdir: Path) -> None:
    (confdir / "sites" / "default").rename(confdir / "sites" / "b")
    site(confdir, "a", "[HOST]\n    ServerName a.test\n    DocumentRoot htdocs\n")
    assert load_config(confdir).default_site.name == "a"


def test_no_sites(confdir: Path) -> None:
    (confdir / "sites" / "default").unlink()
    error = load_error(confdir)
    assert error.location == Location(str(confdir / "sites"))
    assert "no site in" in error.message
    (confdir / "sites").rmdir()
    assert "sites is missing" in load_error(confdir).message


def test_full_site(confdir: Path) -> None:
    write(confdir / "plugins.load", "[PLUGINS]\n    Load proxy_reverse\n    Load logger\n")
    write(confdir / "htdocs" / "errors" / "404.html", "gone")
    path = site(
        confdir,
        "default",
        """
        [HOST]
            ServerName Example.COM www.example.com:8080
            ServerName [::1]
            DocumentRoot htdocs
            Redirect https://example.org/
        [ERROR_PAGES]
            404 errors/404.html
        [HANDLERS]
            Match ^/api/ proxy_reverse a b
            Match \\.php$ logger
        [LOGGER]
            AccessLog logs/access.log
        [PROXY_ENTRY]
            ServerList 127.0.0.1:8080
        [PROXY_ENTRY]
            ServerList 127.0.0.1:8081
        """,
    )
    got = load_config(confdir).default_site
    assert got.path == path
    assert got.server_names == ["example.com", "www.example.com:8080", "[::1]"]
    assert got.redirect == "https://example.org/"
    assert got.error_pages == {404: confdir / "htdocs" / "errors" / "404.html"}
    first, second = got.handlers
    assert (first.plugin, first.params, first.location) == (
        "proxy_reverse",
        ["a", "b"],
        Location(str(path), 9),
    )
    assert first.matches("/v1/api/x") is False
    assert first.matches("/api/x") is True
    assert second.matches("/index.php") and not second.matches("/index.PHP")
    assert second.params == []
    assert list(got.sections) == ["LOGGER", "PROXY_ENTRY"]
    assert got.sections["LOGGER"][0].get("AccessLog").value == "logs/access.log"
    assert len(got.sections["PROXY_ENTRY"]) == 2


@pytest.mark.parametrize(
    ("text", "line", "gist"),
    [
        ("# empty\n", 0, "no [HOST] section"),
        ("[HOST]\n    DocumentRoot htdocs\n", 1, "[HOST] needs a 'ServerName' key"),
        ("[HOST]\n    ServerName a\n", 1, "[HOST] needs a 'DocumentRoot' key"),
        ("[HOST]\n    ServerName a\n    DocumentRoot nowhere\n", 3, "nowhere does not exist"),
        (
            "[HOST]\n    ServerName a\n    DocumentRoot monkey.conf\n",
            3,
            "monkey.conf is not a directory",
        ),
        (
            "[HOST]\n    ServerName a b\n    ServerName A\n    DocumentRoot htdocs\n",
            3,
            "ServerName a is given twice (first at line 2)",
        ),
        (
            "[HOST]\n    ServerName bad/name\n    DocumentRoot htdocs\n",
            2,
            "'bad/name' is not a host name",
        ),
        (HOST + "    Redirect elsewhere\n", 4, "not an http:// or https:// URL"),
        (
            HOST + "    Alias x\n",
            4,
            "unknown key 'Alias' in [HOST]; valid keys: ServerName, DocumentRoot, Redirect",
        ),
        (HOST + "[HOST]\n    ServerName b\n", 4, "section [HOST] appears twice (first at line 1)"),
        (HOST + "[ERROR_PAGES]\n    302 x.html\n", 5, "status codes from 400 to 599"),
        (HOST + "[ERROR_PAGES]\n    NotFound x.html\n", 5, "'NotFound' is not an error status"),
        (
            HOST + "[ERROR_PAGES]\n    404 missing.html\n",
            5,
            "missing.html is not a file; name a file relative to DocumentRoot",
        ),
        (
            HOST + "[ERROR_PAGES]\n    404 e.html\n    404 e.html\n",
            6,
            "error page 404 is set twice (first at line 5)",
        ),
        (
            HOST + "[ERROR_PAGES]\n    404 e.html\n[ERROR_PAGES]\n    500 e.html\n",
            6,
            "section [ERROR_PAGES] appears twice",
        ),
        (HOST + "[HANDLERS]\n    Match /api/\n", 5, "write 'Match <regex> <plugin> [params...]'"),
        (
            HOST + "[HANDLERS]\n    Match /(api logger\n",
            5,
            "invalid regular expression '/(api': missing ), unterminated subpattern",
        ),
        (
            HOST + "[HANDLERS]\n    Match /api/ proxy_reverse\n",
            5,
            "plugin 'proxy_reverse' is not loaded (loaded plugins: logger); "
            "add 'Load proxy_reverse' to plugins.load",
        ),
        (
            HOST + "[HANDLERS]\n    Rule /api/ logger\n",
            5,
            "unknown key 'Rule' in [HANDLERS]; valid keys: Match",
        ),
    ],
)
def test_site_errors(confdir: Path, text: str, line: int, gist: str) -> None:
    write(confdir / "plugins.load", "[PLUGINS]\n    Load logger\n")
    write(confdir / "htdocs" / "e.html", "error")
    path = site(confdir, "default", text)
    error = load_error(confdir)
    at(error, path, line)
    assert gist in error.message


def test_handler_with_no_plugins_loaded(confdir: Path) -> None:
    path = site(confdir, "default", HOST + "[HANDLERS]\n    Match / x\n")
    error = load_error(confdir)
    at(error, path, 5)
    assert "(loaded plugins: none)" in error.message


def test_server_name_shared_by_two_sites(confdir: Path) -> None:
    other = site(
        confdir,
        "other",
        "[HOST]\n    ServerName www.test\n    ServerName LOCALHOST\n    DocumentRoot htdocs\n",
    )
    error = load_error(confdir)
    at(error, other, 3)
    assert "ServerName localhost is already served by site 'default'" in error.message
    assert str(confdir / "sites" / "default") + ":2" in error.message


def test_site_include(confdir: Path) -> None:
    write(confdir / "sites" / ".shared" / "pages.inc", "[ERROR_PAGES]\n    404 e.html\n")
    write(confdir / "htdocs" / "e.html", "error")
    site(
        confdir,
        "default",
        "[HOST]\n    ServerName a\n    DocumentRoot htdocs\n@INCLUDE .shared/*.inc\n",
    )
    assert list(load_config(confdir).default_site.error_pages) == [404]


def test_check_site_sections(confdir: Path) -> None:
    path = site(
        confdir,
        "default",
        HOST + "[LOGGER]\n    AccessLog x\n[LOGGRE]\n    AccessLog y\n",
    )
    config = load_config(confdir)
    config.check_site_sections({"logger", "LOGGRE"})
    with pytest.raises(ConfigError) as info:
        config.check_site_sections({"logger"})
    at(info.value, path, 6)
    assert (
        "unknown section [LOGGRE] in site 'default'; "
        "valid sections: ERROR_PAGES, HANDLERS, HOST, LOGGER" in info.value.message
    )


def test_plugin_config_is_parsed_once_or_none(confdir: Path) -> None:
    config: Config = load_config(confdir)
    assert config.plugin_config("proxy_reverse") is None
    conf = write(confdir / "plugins" / "logger" / "logger.conf", "[LOGGER]\n    Format combined\n")
    document = config.plugin_config("logger")
    assert document is not None and document.path == str(conf)
    assert document.sections_named("logger")[0].get("format").value == "combined"
    assert config.plugin_config("logger") is document
    conf.write_text("[LOGGER]\n    Broken\n")
    assert config.plugin_config("logger") is document


def test_plugin_config_errors_have_locations(confdir: Path) -> None:
    conf = write(confdir / "plugins" / "logger" / "logger.conf", "[LOGGER]\n    Broken\n")
    with pytest.raises(ConfigError) as info:
        load_config(confdir).plugin_config("logger")
    at(info.value, conf, 2)
