"""The command-line overrides of ``monkey`` (-p, -o, -w) applied to a loaded configuration."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest

from monkey_py.cli import load
from monkey_py.config import ConfigError, Listen, Location

REPO = Path(__file__).resolve().parents[2]
COMMAND_LINE = Location("command line", 0)


def v4(host: str, port: int) -> Listen:
    return Listen(host, port, socket.AF_INET)


@pytest.fixture
def confdir(tmp_path: Path) -> Path:
    """Three Listen lines as the shipped configuration has, and an IPv6 one."""
    conf = tmp_path / "conf"
    (conf / "sites").mkdir(parents=True)
    (conf / "monkey.conf").write_text(textwrap.dedent("""\
        [SERVER]
            Listen 2001
            Listen 127.0.0.1:2002
            Listen 2003
            Listen [::1]:2004
        """))
    (conf / "sites" / "default").write_text(f"[HOST]\n    ServerName a\n    DocumentRoot {tmp_path}\n")
    return conf


def test_port_merges_the_addresses_it_makes_the_same(confdir: Path) -> None:
    listen = load(confdir, port=2041).server.listen
    assert listen == [v4("0.0.0.0", 2041), Listen("::1", 2041, socket.AF_INET6)]


def test_port_on_the_shipped_configuration_listens_once() -> None:
    assert load(REPO / "etc" / "monkey", port=2041).server.listen == [v4("0.0.0.0", 2041)]


def test_port_applies_to_listen_options_and_merges_them(confdir: Path) -> None:
    listen = load(confdir, port=9000, listen=("127.0.0.1:1", "127.0.0.2:2", "127.0.0.1:3"))
    assert listen.server.listen == [v4("127.0.0.1", 9000), v4("127.0.0.2", 9000)]


def test_listen_option_given_twice_is_an_error(confdir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(confdir, listen=("127.0.0.1:8080", "8081", "127.0.0.1:8080"))
    assert str(info.value) == "command line: -o 127.0.0.1:8080 is given twice; remove one"


def test_listen_options_inside_a_wildcard_are_an_error(confdir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(confdir, listen=("8080", "127.0.0.1:8080"))
    assert str(info.value) == (
        "command line: -o 127.0.0.1:8080 overlaps -o 0.0.0.0:8080: 0.0.0.0:8080 already "
        "accepts connections to every IPv4 address on port 8080; remove one"
    )


def test_workers_option_is_bounded_like_the_key(confdir: Path) -> None:
    assert load(confdir, workers=1024).server.workers == 1024
    for count in (1025, 100000000, -1):
        with pytest.raises(ConfigError) as info:
            load(confdir, workers=count)
        assert str(info.value) == (
            f"command line: Workers {count}: expected 0 (one worker per CPU) to 1024 worker "
            "processes"
        )


def test_port_keeps_the_tls_flag_of_the_first_address_it_merges(confdir: Path) -> None:
    (confdir / "monkey.conf").write_text(
        "[SERVER]\n    Listen 127.0.0.1:2443 tls\n    Listen 127.0.0.1:2001\n    Listen 2002 tls\n")
    listen = load(confdir, port=9000).server.listen
    assert listen == [Listen("0.0.0.0", 9000, socket.AF_INET, tls=True)]
    listen = load(confdir, listen=("127.0.0.1:8443 tls", "127.0.0.2:8080")).server.listen
    assert listen == [Listen("127.0.0.1", 8443, socket.AF_INET, tls=True), v4("127.0.0.2", 8080)]
