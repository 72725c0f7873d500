"""The Redis URL of fleet mode: its forms, and a ConfigError at file:line for each mistake."""

from __future__ import annotations

import socket

import pytest
import trustme

from monkey_py.config import ConfigError, Location
from monkey_py_plugins.proxy_reverse.fleet.address import RedisAddress, parse_redis_url

HERE = Location("proxy_reverse.conf", 7)


def fails(value: str, location: Location = HERE) -> str:
    with pytest.raises(ConfigError) as info:
        parse_redis_url(value, location)
    assert info.value.location == location
    return info.value.message


def test_host_port_and_database():
    address = parse_redis_url("redis://127.0.0.1:6380/2", HERE)
    assert address == RedisAddress("127.0.0.1", 6380, socket.AF_INET, ("127.0.0.1", 6380), 2)
    assert str(address) == "redis://127.0.0.1:6380/2"


def test_port_6379_and_database_0_unless_given():
    for url in ("redis://127.0.0.1", "redis://127.0.0.1/", "REDIS://127.0.0.1:6379/0"):
        address = parse_redis_url(url, HERE)
        assert (address.port, address.db, address.tls) == (6379, 0, False)


def test_a_host_name_is_resolved_now_and_kept_for_tls():
    address = parse_redis_url("rediss://localhost:6380", HERE)
    assert address.host == "localhost" and address.tls
    assert address.address[0] in ("127.0.0.1", "::1")
    assert str(address) == "rediss://localhost:6380/0"


def test_ipv6():
    address = parse_redis_url("redis://[::1]:6390/1", HERE)
    assert (address.family, address.address, str(address)) == (
        socket.AF_INET6, ("::1", 6390), "redis://[::1]:6390/1")


def test_password_alone_and_acl_user():
    address = parse_redis_url("redis://:s%40cret@127.0.0.1", HERE)
    assert (address.username, address.password) == (None, "s@cret")
    address = parse_redis_url("redis://alice:pass%2Fword@127.0.0.1", HERE)
    assert (address.username, address.password) == ("alice", "pass/word")


def test_the_password_is_in_neither_str_nor_repr():
    address = parse_redis_url("redis://alice:hunter2@127.0.0.1", HERE)
    assert "hunter2" not in str(address) and "hunter2" not in repr(address)


def test_ca_file_relative_to_the_configuration_file(tmp_path):
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    location = Location(str(tmp_path / "proxy_reverse.conf"), 3)
    address = parse_redis_url("rediss://127.0.0.1:6380/0?ca_file=ca.pem", location)
    assert address.ca_file == tmp_path / "ca.pem"
    assert address.tls_context().get_ca_certs()  # the CA is loaded


@pytest.mark.parametrize(("url", "message"), [
    ("http://127.0.0.1:6379", "starts with redis:// or rediss://"),
    ("127.0.0.1:6379", "starts with redis:// or rediss://"),
    ("redis://127.0.0.1 /0", "no blanks"),
    ("redis://:6379/0", "names no host"),
    ("redis://127.0.0.1:99999", "port is not a number from 1 to 65535"),
    ("redis://127.0.0.1:port", "port is not a number from 1 to 65535"),
    ("redis://127.0.0.1/cache", "'/cache' is not a database number"),
    ("redis://alice@127.0.0.1", "a Redis user needs a password"),
    ("redis://:pa#ss@127.0.0.1", "write it %23 in a password"),
    ("redis://127.0.0.1?timeout=1", "the only parameter of a Redis URL is ca_file=PATH"),
    ("redis://127.0.0.1?ca_file=ca.pem", "with rediss://"),
    ("redis://no-such-host.invalid", "cannot resolve host 'no-such-host.invalid'"),
])
def test_mistakes(url, message):
    assert message in fails(url)


def test_every_form_is_named_in_the_message():
    message = fails("http://x")
    for form in ("redis://HOST:PORT/DB", "redis://:PASSWORD@HOST:PORT/DB",
                 "redis://USER:PASSWORD@HOST:PORT/DB", "rediss://"):
        assert form in message


def test_a_ca_file_that_is_missing_or_not_pem(tmp_path):
    location = Location(str(tmp_path / "proxy_reverse.conf"), 4)
    assert f"cannot read ca_file {tmp_path / 'missing.pem'}: No such file" in fails(
        "rediss://127.0.0.1?ca_file=missing.pem", location)
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    assert f"ca_file {tmp_path / 'junk.pem'} holds no PEM certificate" in fails(
        "rediss://127.0.0.1?ca_file=junk.pem", location)


def test_the_password_is_not_echoed_in_errors():
    assert "hunter2" not in fails("redis://:hunter2@127.0.0.1/db")
