"""Value converters and section schemas that the core and plugins share."""

from __future__ import annotations

import os
import pwd
import socket
from pathlib import Path

import pytest

from monkey_py.config import (
    ConfigError,
    Key,
    Listen,
    Location,
    attr_name,
    check_sections,
    one_section,
    parse_text,
    read_section,
)
from monkey_py.config import values

HERE = Location("x.conf", 3)


def fails(converter, value: str) -> str:
    with pytest.raises(ConfigError) as info:
        converter(value, HERE)
    assert info.value.location == HERE
    return info.value.message


@pytest.mark.parametrize(("text", "expected"), [("On", True), ("off", False), ("ON", True)])
def test_boolean(text: str, expected: bool) -> None:
    assert values.boolean(text, HERE) is expected


@pytest.mark.parametrize("text", ["yes", "true", "1", "Onn"])
def test_boolean_rejects_everything_else(text: str) -> None:
    assert "valid values: On, Off" in fails(values.boolean, text)


def test_integer_bounds() -> None:
    between = values.integer(1, 10)
    assert between("10", HERE) == 10
    assert "out of range; expected a number from 1 to 10" in fails(between, "11")
    assert "not a whole number >= 0" in fails(values.integer(0), "1.5")
    assert "not a whole number <= 3" in fails(values.integer(maximum=3), "1_0")
    assert values.integer()("-4", HERE) == -4


def test_size_kb_and_seconds() -> None:
    assert values.size_kb("32", HERE) == 32768
    assert "out of range" in fails(values.size_kb, "0")
    assert values.seconds("15", HERE) == 15.0
    assert values.seconds("0.5", HERE) == 0.5
    assert "greater than 0" in fails(values.seconds, "0")
    assert "not a number of seconds" in fails(values.seconds, "-1")
    assert "not a number of seconds" in fails(values.seconds, "inf")


def test_words_and_word() -> None:
    assert values.words("a  b\tc", HERE) == ["a", "b", "c"]
    assert values.word("one", HERE) == "one"
    assert "single word" in fails(values.word, "two words")


def test_path_resolution(tmp_path: Path) -> None:
    assert values.path(tmp_path)("htdocs/../www", HERE) == tmp_path / "www"
    assert values.path(tmp_path)("/srv/x", HERE) == Path("/srv/x")
    in_file = Location(str(tmp_path / "plugins" / "p.conf"), 1)
    assert values.path()("logs/a.log", in_file) == tmp_path / "plugins" / "logs" / "a.log"


def test_choice_returns_the_canonical_spelling() -> None:
    balancer = values.choice(["RoundRobin", "First-Alive"])
    assert balancer("roundrobin", HERE) == "RoundRobin"
    assert "valid values: RoundRobin, First-Alive" in fails(balancer, "Random")
    strict = values.choice(["GET"], case_sensitive=True)
    assert "valid values: GET" in fails(strict, "get")


def test_system_user() -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    assert values.system_user(me, HERE) == me
    assert "unknown user 'no-such-user-x1'" in fails(values.system_user, "no-such-user-x1")


def test_url() -> None:
    assert values.url("https://example.com/a", HERE) == "https://example.com/a"
    assert "not an http:// or https:// URL" in fails(values.url, "example.com")
    assert "not an http:// or https:// URL" in fails(values.url, "ftp://example.com")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com:8080", "example.com:8080"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]:2001", "[::1]:2001"),
        ("localhost.", "localhost."),
    ],
)
def test_host_name(text: str, expected: str) -> None:
    assert values.host_name(text, HERE) == expected


@pytest.mark.parametrize("text", ["exa mple", "a/b", "-x.com", "a..b", "[zz]", "[::1]x"])
def test_host_name_rejects(text: str) -> None:
    assert "is not a host name" in fails(values.host_name, text)


def test_host_name_port_range() -> None:
    assert "port 70000 is out of range" in fails(values.host_name, "a.com:70000")
    assert "'b' is not a port number" in fails(values.host_name, "a:b")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2001", Listen("0.0.0.0", 2001, socket.AF_INET)),
        ("127.0.0.1:8080", Listen("127.0.0.1", 8080, socket.AF_INET)),
        ("0.0.0.0:1", Listen("0.0.0.0", 1, socket.AF_INET)),
        ("[::1]:2001", Listen("::1", 2001, socket.AF_INET6)),
        ("[0:0::1]:2001", Listen("::1", 2001, socket.AF_INET6)),
    ],
)
def test_listen_forms(text: str, expected: Listen) -> None:
    assert values.listen(text, HERE) == expected


def test_listen_display() -> None:
    assert str(Listen("::1", 2001, socket.AF_INET6)) == "[::1]:2001"
    assert str(Listen("0.0.0.0", 2001, socket.AF_INET)) == "0.0.0.0:2001"


def test_listen_resolves_host_names() -> None:
    resolved = values.listen("localhost:2001", HERE)
    assert resolved.port == 2001
    assert resolved.host in ("127.0.0.1", "::1")


@pytest.mark.parametrize(
    ("text", "gist"),
    [
        ("0", "port 0 is out of range"),
        ("65536", "port 65536 is out of range"),
        ("http", "'http' is not a port number"),
        ("127.0.0.1:", "'' is not a port number"),
        (":2001", "expected an address before ':2001'"),
        ("[::1]", "expected ':port' after the IPv6 address"),
        ("[::1:2001", "expected a closing ']'"),
        ("[nothex]:1", "'nothex' is not an IPv6 address"),
        ("::1:2001", "write IPv6 addresses in brackets"),
        ("2001 h2", "the only listener flag is 'tls' (h2 is not supported)"),
        ("2001 tls h2c", "(h2c is not supported)"),
        ("no-such-host.invalid:2001", "cannot resolve host 'no-such-host.invalid'"),
    ],
)
def test_listen_errors(text: str, gist: str) -> None:
    assert gist in fails(values.listen, text)


def test_listen_tls_flag() -> None:
    assert values.listen("443 tls", Location("x", 1)).tls
    assert values.listen("127.0.0.1:8443 TLS", Location("x", 1)).port == 8443
    assert not values.listen("2001", Location("x", 1)).tls


def test_attr_name() -> None:
    assert attr_name("KeepAliveTimeout") == "keep_alive_timeout"
    assert attr_name("FDT") == "fdt"
    assert attr_name("URLPath") == "url_path"
    assert attr_name("Max-Size") == "max_size"


KEYS = [
    Key("Name", values.word, required=True),
    Key("Size", values.size_kb, default=1024),
    Key("Tag", values.words, repeatable=True, unique=True),
    Key("Port", values.port, repeatable=True, default=[80], attr="ports"),
    Key("Mode", values.choice(["fast", "slow"])),
]


def section_of(text: str):
    return parse_text(text, "p.conf").sections[0]


def test_read_section_converts_and_defaults() -> None:
    result = read_section(section_of("[P]\n    name x\n    TAG a b\n    Tag c\n"), KEYS)
    assert result == {
        "name": "x",
        "size": 1024,
        "tag": ["a", "b", "c"],
        "ports": [80],
        "mode": None,
    }


def test_repeatable_key_replaces_its_default() -> None:
    result = read_section(section_of("[P]\n    Name x\n    Port 1\n    Port 2\n"), KEYS)
    assert result["ports"] == [1, 2]
    assert KEYS[3].default == [80]


def read_error(text: str, keys=KEYS) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        read_section(section_of(text), keys)
    return info.value


def test_unknown_key_lists_valid_keys() -> None:
    error = read_error("[P]\n    Name x\n    Colour red\n")
    assert error.location == Location("p.conf", 3)
    assert error.message == "unknown key 'Colour' in [P]; valid keys: Name, Size, Tag, Port, Mode"


def test_repeated_single_key_names_first_line() -> None:
    error = read_error("[P]\n    Name x\n    Size 1\n    size 2\n")
    assert error.location == Location("p.conf", 4)
    assert "'Size' is set twice in [P] (first at line 3)" in error.message


def test_repeated_value_of_unique_key() -> None:
    error = read_error("[P]\n    Name x\n    Tag a\n    Tag b a\n")
    assert error.location == Location("p.conf", 4)
    assert "Tag a is given twice (first at line 3)" in error.message


def test_missing_required_key_points_at_header() -> None:
    error = read_error("\n[P]\n    Size 1\n")
    assert error.location == Location("p.conf", 2)
    assert error.message == "[P] needs a 'Name' key"


def test_conversion_error_points_at_entry() -> None:
    error = read_error("[P]\n    Name x\n    Mode medium\n")
    assert error.location == Location("p.conf", 3)
    assert "valid values: fast, slow" in error.message


def test_ignored_keys_become_warnings() -> None:
    warnings: list[str] = []
    result = read_section(
        section_of("[P]\n    Name x\n    FDT On\n"), KEYS, ignored=["fdt"], warnings=warnings
    )
    assert result["name"] == "x"
    assert warnings == ["p.conf:3: FDT has no effect in monkey_py"]


def test_check_sections() -> None:
    document = parse_text("[A]\n    K v\n[B]\n    K v\n[B]\n    K v\n", "s.conf")
    check_sections(document, {"A": False, "B": True})
    with pytest.raises(ConfigError) as info:
        check_sections(document, {"A": False, "B": False})
    assert info.value.location == Location("s.conf", 5)
    assert "section [B] appears twice (first at line 3)" in info.value.message
    with pytest.raises(ConfigError) as info:
        check_sections(document, {"A": False})
    assert info.value.location == Location("s.conf", 3)
    assert "unknown section [B]; valid sections here: [A]" in info.value.message


def test_one_section() -> None:
    document = parse_text("[A]\n    K v\n[A]\n    K w\n", "s.conf")
    with pytest.raises(ConfigError) as info:
        one_section(document, "a")
    assert info.value.location == Location("s.conf", 3)
    assert one_section(document, "B") is None
    with pytest.raises(ConfigError) as info:
        one_section(document, "B", required=True)
    assert str(info.value) == "s.conf: no [B] section: add one"


def test_regex_accepts_posix_classes_and_names_unknown_ones() -> None:
    from monkey_py.config.values import regex

    here = Location("f.conf", 3)
    pattern = regex()(r"^/v[[:digit:]]+/[[:alpha:]_]+$", here)
    assert pattern.match("/v12/items_x") and not pattern.match("/vx/items")
    assert regex()("[[:space:]]", here).search("a b")
    with pytest.raises(ConfigError, match=r"f.conf:3: unknown character class '\[:digits:\]'"):
        regex()("[[:digits:]]", here)
    with pytest.raises(ConfigError, match="invalid regular expression"):
        regex()("(", here)
