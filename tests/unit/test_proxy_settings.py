"""The proxy's own configuration values and what an entry is called: its Name, or its
file and line relative to the configuration directory; the health-check, limit and
retry keys with their defaults; ServerList's forms (host:port, http:// and https://
with their default ports) and UpstreamCAFile's checks."""

from __future__ import annotations

import socket

import pytest
import trustme

from monkey_py.config import ConfigError, Location, load_config
from monkey_py_plugins.proxy_reverse.cache.settings import cache_store
from monkey_py_plugins.proxy_reverse.settings import read_settings
from monkey_py_plugins.proxy_reverse.values import (
    ca_file, entry_name, percent, seconds_or_zero, server_list, status_set,
)
from proxy_support import entry, proxy_conf
from support import free_port, section, site, write_confdir

HERE = Location("proxy_reverse.conf", 4)


def failure(convert, value: str) -> str:
    """The message ``convert`` refuses ``value`` with, at the line it was given."""
    try:
        convert(value, HERE)
    except ConfigError as error:
        assert error.location == HERE
        return error.message
    raise AssertionError(f"{value!r} was accepted")


# -- values ---------------------------------------------------------------------------------
def test_status_sets_take_codes_ranges_and_classes():
    accepted = status_set("200 204-206 3xx", HERE)
    assert [code for code in (199, 200, 201, 204, 206, 207, 300, 399, 400) if code in accepted] \
        == [200, 204, 206, 300, 399]
    assert accepted.text == "200 204-206 3xx"
    assert 503 in status_set("5XX", HERE)


@pytest.mark.parametrize("value, message", [
    ("2yy", "'2yy' is not a status code"),
    ("600", "'600' is not a status code"),
    ("299-200", "the range ends before it starts"),
])
def test_status_set_mistakes(value, message):
    assert message in failure(status_set, value)


def test_per_cents():
    assert percent("50", HERE) == 50 and percent("0%", HERE) == 0
    assert "out of range" in failure(percent, "101")


def test_seconds_or_zero():
    assert seconds_or_zero("0", HERE) == 0.0 and seconds_or_zero("2.5", HERE) == 2.5
    assert "not a number of seconds" in failure(seconds_or_zero, "soon")


@pytest.mark.parametrize("value", ["api", "api-v2", "shop.images_1", "7"])
def test_entry_names(value):
    assert entry_name(value, HERE) == value


@pytest.mark.parametrize("value", ["-api", "a b", "api:v2", "a/b", "x" * 65])
def test_entry_names_refused(value):
    assert "is not a valid entry name" in failure(entry_name, value)


# -- entries --------------------------------------------------------------------------------
def settings_of(tmp_path, conf: str, *site_sections: str):
    docroot = tmp_path / "htdocs"
    docroot.mkdir()
    confdir = write_confdir(tmp_path, [f"Listen 127.0.0.1:{free_port()}"],
                            {"default": site("localhost", docroot, *site_sections)},
                            ["proxy_reverse"], {"proxy_reverse": conf})
    return read_settings(load_config(confdir))


def test_an_entry_is_labelled_by_its_name_or_its_place_in_the_configuration(tmp_path):
    settings = settings_of(
        tmp_path, proxy_conf(entry("^/a/", "127.0.0.1:8080", Name="api"),
                             entry("^/b/", "127.0.0.1:8080")),
        entry("^/c/", "127.0.0.1:8080"))
    named, placed = settings.entries
    (own,) = settings.site_entries.values()
    assert (named.label, named.name) == ("api", "api")
    assert named.where == "plugins/proxy_reverse/proxy_reverse.conf:3"
    assert (placed.label, placed.name) == ("plugins/proxy_reverse/proxy_reverse.conf:7", None)
    assert own[0].label == "sites/default:4"


def test_the_defaults_of_the_new_keys(tmp_path):
    (found,) = settings_of(tmp_path, proxy_conf(entry("^/a/", "127.0.0.1:8080"))).entries
    assert (found.panic_threshold, found.slow_start) == (50, 0.0)
    assert (found.max_connections, found.queue_size, found.queue_timeout) == (0, 100, 5.0)
    assert (found.retry_budget, found.retry_budget_min) == (20, 3)
    assert found.health_check is None


def test_a_health_check_takes_its_keys_from_the_entry_or_the_defaults(tmp_path):
    conf = proxy_conf(entry("^/a/", "127.0.0.1:8080", HealthCheckRise=5),
                      entry("^/b/", "127.0.0.1:8080", HealthCheck="Off"),
                      HealthCheck="/healthz", HealthCheckInterval="0.5",
                      HealthCheckStatus="200 204")
    checked, unchecked = settings_of(tmp_path, conf).entries
    check = checked.health_check
    assert (check.path, check.interval, check.timeout) == ("/healthz", 0.5, 2.0)
    assert (check.rise, check.fall, check.status.text) == (5, 3, "200 204")
    assert unchecked.health_check is None


def test_defaults_and_entries_in_one_section_keep_their_own_lines(tmp_path):
    conf = section("PROXY_DEFAULTS", "ServerList 127.0.0.1:8080", "MaxConnections 4") \
        + section("PROXY_ENTRY", "Match ^/", "QueueSize 0", "RetryBudget 0",
                  "RetryBudgetMin 0")
    (found,) = settings_of(tmp_path, conf).entries
    assert (found.max_connections, found.queue_size) == (4, 0)
    assert (found.retry_budget, found.retry_budget_min) == (0, 0)


# -- ServerList and UpstreamCAFile ----------------------------------------------------------
@pytest.mark.parametrize("word, name, host, port, tls", [
    ("127.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1", 8080, False),
    ("http://127.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1", 8080, False),
    ("HTTP://127.0.0.1", "127.0.0.1:80", "127.0.0.1", 80, False),
    ("https://localhost:8443", "https://localhost:8443", "localhost", 8443, True),
    ("https://localhost", "https://localhost:443", "localhost", 443, True),
    ("HTTPS://127.0.0.1", "https://127.0.0.1:443", "127.0.0.1", 443, True),
    ("https://[::1]:8443", "https://[::1]:8443", "::1", 8443, True),
    ("https://[::1]", "https://[::1]:443", "::1", 443, True),
    ("[::1]:8080", "[::1]:8080", "::1", 8080, False),
])
def test_server_forms(word, name, host, port, tls):
    [server] = server_list(word, HERE)
    assert (server.name, server.host, server.port, server.tls) == (name, host, port, tls)
    assert server.address[1] == port
    assert server.address[0] == ("127.0.0.1" if host == "localhost" else host)  # resolved
    assert server.family == (socket.AF_INET6 if ":" in host else socket.AF_INET)


def test_flags_follow_https_servers_too():
    servers = server_list("https://localhost weight=3 127.0.0.1:81 https://127.0.0.1 backup",
                          HERE)
    assert [(s.name, s.weight, s.backup, s.tls) for s in servers] == [
        ("https://localhost:443", 3, False, True), ("127.0.0.1:81", 1, False, False),
        ("https://127.0.0.1:443", 1, True, True)]


@pytest.mark.parametrize("value", [
    "127.0.0.1:80 http://127.0.0.1:80",       # the same server, written two ways
    "http://127.0.0.1 127.0.0.1:80",          # http:// means port 80
    "https://localhost https://localhost:443",
])
def test_one_server_written_twice_is_refused(value):
    assert "is listed twice in this ServerList" in failure(server_list, value)


def test_http_and_https_on_one_address_are_two_servers():
    assert len(server_list("127.0.0.1:443 https://127.0.0.1:443", HERE)) == 2


@pytest.mark.parametrize("value, message", [
    ("127.0.0.1", "'127.0.0.1' is not host:port"),
    ("ftp://127.0.0.1:21", "unknown scheme 'ftp://'"),
    ("wss://127.0.0.1", "unknown scheme 'wss://'"),
    ("https://localhost/api", "without a path, query or user"),
    ("https://localhost:8443/", "without a path, query or user"),
    ("https://user@localhost", "without a path, query or user"),
    ("https://localhost?x=1", "without a path, query or user"),
    ("https://", "'https://' is not host:port"),
    ("https://:8443", "'https://:8443' is not host:port"),
    ("https://[::1", "'https://[::1' is not host:port"),
    ("https://[::1]8443", "'https://[::1]8443' is not host:port"),
    ("https://localhost:0", "port 0 is out of range"),
    ("https://localhost:https", "'https' is not a port number"),
    ("https://no-such-host.invalid", "cannot resolve upstream host 'no-such-host.invalid'"),
])
def test_mistakes_name_the_word_and_the_valid_forms(value, message):
    text = failure(server_list, value)
    assert message in text
    if "is not host:port" in message or "scheme" in message or "path" in message:
        assert "host:port, http://host[:port] or https://host[:port]" in text


def test_ca_file_must_hold_pem_certificates(tmp_path):
    good = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(good))
    here = Location(str(tmp_path / "proxy_reverse.conf"), 3)
    assert ca_file("ca.pem", here) == good                  # relative to the file's directory
    assert ca_file(str(good), HERE) == good
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="junk.pem holds no PEM certificate"):
        ca_file("junk.pem", here)
    with pytest.raises(ConfigError, match="cannot read the CA file .*missing.pem: No such file"):
        ca_file("missing.pem", here)


# -- the Redis store ------------------------------------------------------------------------
def test_cache_store_takes_a_redis_url_with_its_keys(tmp_path):
    cache = settings_of(tmp_path, proxy_conf(
        entry("^/a/", "127.0.0.1:8080"), CacheStore="redis://:secret@127.0.0.1:6390/3",
        CacheMemoryTier="32", CacheRedisMaxObjectSize="64")).cache
    assert (cache.store, cache.redis.port, cache.redis.db, cache.redis.password) == (
        "redis", 6390, 3, "secret")
    assert (cache.memory_tier, cache.redis_max_object) == (32 * 1024 * 1024, 64 * 1024)


def test_the_redis_store_has_no_memory_tier_unless_asked(tmp_path):
    (tmp_path / "off").mkdir()
    cache = settings_of(tmp_path, proxy_conf(
        entry("^/a/", "127.0.0.1:8080"), CacheStore="redis://127.0.0.1/0")).cache
    assert (cache.redis.port, cache.memory_tier, cache.redis_max_object) == (
        6379, 0, 512 * 1024)
    off = settings_of(tmp_path / "off", proxy_conf(
        entry("^/a/", "127.0.0.1:8080"), CacheStore="redis://127.0.0.1/0",
        CacheMemoryTier="Off")).cache
    assert off.memory_tier == 0


@pytest.mark.parametrize("key, value", [("CacheMemoryTier", "16"),
                                        ("CacheRedisMaxObjectSize", "64")])
def test_the_redis_keys_are_refused_with_another_store(tmp_path, key, value):
    with pytest.raises(ConfigError) as refused:
        settings_of(tmp_path, proxy_conf(entry("^/a/", "127.0.0.1:8080"), **{key: value}))
    assert f"{key} applies to a Redis cache store only" in refused.value.message
    assert refused.value.location.file.endswith("proxy_reverse.conf")
    assert refused.value.location.line > 0


@pytest.mark.parametrize("value, message", [
    ("memcached", "valid values: memory, disk, redis://HOST:PORT/DB"),
    ("redis://127.0.0.1:99999/0", "port"),
    ("http://127.0.0.1/", "redis://"),
])
def test_a_wrong_cache_store_is_refused_at_its_line(value, message):
    assert message in failure(cache_store, value)
