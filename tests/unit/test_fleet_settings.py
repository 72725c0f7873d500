"""The fleet keys of [PROXY_DEFAULTS]: Fleet (a Redis URL) and FleetName, with its
default, its rules and the errors they give at file:line."""

from __future__ import annotations

import socket

import pytest

from monkey_py.config import ConfigError, Location, load_config
from monkey_py_plugins.proxy_reverse.fleet.settings import fleet_name
from monkey_py_plugins.proxy_reverse.settings import read_settings
from proxy_support import entry, proxy_conf
from support import site, write_confdir

HERE = Location("proxy_reverse.conf", 3)


def settings_of(tmp_path, port: int = 2001, **defaults):
    docroot = tmp_path / "htdocs"
    docroot.mkdir()
    conf = proxy_conf(entry("^/", "127.0.0.1:8080", Name="api"), **defaults)
    confdir = write_confdir(tmp_path, [f"Listen 127.0.0.1:{port}", "Listen 127.0.0.1:2002"],
                            {"default": site("localhost", docroot)}, ["proxy_reverse"],
                            {"proxy_reverse": conf})
    return read_settings(load_config(confdir))


def test_no_fleet_without_the_key(tmp_path):
    assert settings_of(tmp_path).fleet is None


def test_a_fleet_is_a_redis_url_and_a_name(tmp_path):
    fleet = settings_of(tmp_path, Fleet="redis://:pw@127.0.0.1:6400/3",
                        FleetName="web-3").fleet
    assert (fleet.name, str(fleet.redis), fleet.redis.password) == (
        "web-3", "redis://127.0.0.1:6400/3", "pw")


def test_the_name_defaults_to_the_host_and_the_first_listen_port(tmp_path):
    fleet = settings_of(tmp_path, port=2101, Fleet="redis://127.0.0.1").fleet
    assert fleet.name == f"{socket.gethostname().split('.')[0]}:2101"
    assert fleet_name(fleet.name, HERE) == fleet.name


def test_a_wrong_fleet_url_stops_the_start_at_its_line(tmp_path):
    with pytest.raises(ConfigError) as raised:
        settings_of(tmp_path, Fleet="http://127.0.0.1:6379")
    assert "starts with redis:// or rediss://" in raised.value.message
    assert raised.value.location.file.endswith("proxy_reverse.conf")
    assert raised.value.location.line == 2          # [PROXY_DEFAULTS] is line 1


@pytest.mark.parametrize("value", ["web-3", "host.example:2001", "a_1"])
def test_fleet_names(value):
    assert fleet_name(value, HERE) == value


@pytest.mark.parametrize("value", ["-web", "a b", "a/b", "x" * 101])
def test_fleet_names_refused(value):
    with pytest.raises(ConfigError) as raised:
        fleet_name(value, HERE)
    assert "is not a valid fleet name" in raised.value.message
    assert raised.value.location == HERE
