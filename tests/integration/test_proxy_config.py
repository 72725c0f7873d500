"""Mistakes in the proxy's configuration stop ``monkey check`` (and the server) with the
file, the line and what to write instead."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from proxy_support import balancer_package, entry, proxy_conf
from support import free_port, section, site, write_confdir

# The built-in balancers and the example one the Makefile installs; any other installed
# balancer may be listed among them.
EXPECTED = {"First-Alive", "HeaderHash", "LeastConnections", "LockingRoundRobin", "Naive",
            "RandomTwoChoices", "RoundRobin", "SourceHash"}


def confdir_with(tmp_path, conf: str, *site_sections: str):
    docroot = tmp_path / "htdocs"
    docroot.mkdir()
    return write_confdir(
        tmp_path, [f"Listen 127.0.0.1:{free_port()}", "Workers 1"],
        {"default": site("localhost", docroot, *site_sections)},
        ["proxy_reverse"], {"proxy_reverse": conf},
    )


def monkey(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monkey_py", *args],
                          capture_output=True, text=True, timeout=20, env=env)


def line_of(path, text: str) -> int:
    """The 1-based number of the first line of ``path`` containing ``text``."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} is not in {path}")


def listed_balancers(stderr: str) -> list[str]:
    """The names after "installed balancers: " in an error message."""
    return stderr.split("installed balancers: ", 1)[1].strip().split(", ")


def assert_check_fails(confdir, path, culprit: str, *message: str,
                       lists_balancers: bool = False, env: dict | None = None) -> None:
    result = monkey("check", "-c", str(confdir), env=env)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"monkey: {path}:{line_of(path, culprit)}: "), result.stderr
    for part in message:
        assert part in result.stderr
    if lists_balancers:
        listed = listed_balancers(result.stderr)
        assert EXPECTED <= set(listed), listed
        assert listed == sorted(listed, key=str.lower)


def conf_path(confdir):
    return confdir / "plugins" / "proxy_reverse" / "proxy_reverse.conf"


@pytest.mark.parametrize("conf, culprit, message", [
    (proxy_conf(entry("^/a/", "127.0.0.1:8080", LoadBalancer="Fastest")),
     "LoadBalancer Fastest", ["unknown load balancer 'Fastest'"]),
    (proxy_conf(entry("^/a/", "127.0.0.1:8080"), LoadBalancer="RoundRobbin"),
     "LoadBalancer RoundRobbin", ["unknown load balancer 'RoundRobbin'"]),
    # Even when no entry inherits it.
    (proxy_conf(LoadBalancer="RoundRobbin"),
     "LoadBalancer RoundRobbin", ["unknown load balancer 'RoundRobbin'"]),
    (proxy_conf(entry("^/a/", "127.0.0.1:8080"), entry("^/(unclosed", "127.0.0.1:8080")),
     "Match ^/(unclosed", ["invalid regular expression '^/(unclosed'"]),
    (proxy_conf(entry("^/a/", "127.0.0.1:8080 nohost.invalid:8080")),
     "nohost.invalid", ["cannot resolve upstream host 'nohost.invalid'"]),
    (proxy_conf(entry("^/a/", "127.0.0.1:8080", PanicThreshold="150")),
     "PanicThreshold 150", ["150 is out of range; expected a number from 0 to 100"]),
    (proxy_conf(entry("^/a/", "127.0.0.1:8080", HealthCheck="health")),
     "HealthCheck health", ["'health' is not a URL path", "HealthCheck /health",
                            "HealthCheck Off"]),
    (proxy_conf(entry("^/a/", "127.0.0.1:8080", HealthCheckStatus="2xx 30x")),
     "HealthCheckStatus", ["'30x' is not a status code", "200, 200-299 or 2xx"]),
    (proxy_conf(entry("^/a/", "127.0.0.1:8080", Name="api v2")),
     "Name api v2", ["'api v2' is not a valid entry name", "letters, digits"]),
    (proxy_conf(entry("^/a/", "127.0.0.1:8080"), Name="api"),
     "Name api", ["unknown key 'Name' in [PROXY_DEFAULTS]", "valid keys: ", "PanicThreshold",
                  "MaxConnections", "HealthCheck"]),
    (proxy_conf(entry("^/a/", "127.0.0.1:8080", SlowStart="-1")),
     "SlowStart -1", ["'-1' is not a number of seconds"]),
], ids=["unknown-balancer", "unknown-default-balancer", "unused-default-balancer",
        "invalid-regex", "unresolvable-host", "panic-threshold", "health-check-path",
        "health-check-status", "entry-name", "name-in-defaults",
        "slow-start"])
def test_check_names_the_file_and_line(tmp_path, conf, culprit, message):
    confdir = confdir_with(tmp_path, conf)
    assert_check_fails(confdir, conf_path(confdir), culprit, *message,
                       lists_balancers="load balancer" in message[0])


def test_two_entries_may_not_share_a_name(tmp_path):
    confdir = confdir_with(tmp_path, proxy_conf(entry("^/a/", "127.0.0.1:8080", Name="api")),
                           entry("^/b/", "127.0.0.1:8080", Name="api"))
    site_file = confdir / "sites" / "default"
    first = line_of(conf_path(confdir), "Name api")
    assert_check_fails(confdir, site_file, "Name api",
                       f"entry name 'api' is already used at {conf_path(confdir)}:{first}; "
                       "give each [PROXY_ENTRY] its own Name")


def test_a_site_entry_is_checked_in_the_site_file(tmp_path):
    confdir = confdir_with(tmp_path, proxy_conf(),
                           entry("^/b/", "127.0.0.1:8080", LoadBalancer="Sticky"))
    assert_check_fails(confdir, confdir / "sites" / "default", "LoadBalancer Sticky",
                       "unknown load balancer 'Sticky'", lists_balancers=True)


def test_a_third_party_balancer_installed_beside_the_built_ins_is_listed_too(tmp_path):
    """The check holds whatever else is installed: here one more balancer package."""
    env = {**os.environ, "PYTHONPATH": balancer_package(
        tmp_path, "Mosaic = monkey_more_balancers:Mosaic\n")}
    confdir = confdir_with(tmp_path, proxy_conf(entry("^/a/", "127.0.0.1:8080",
                                                      LoadBalancer="Fastest")))
    assert_check_fails(confdir, conf_path(confdir), "LoadBalancer Fastest",
                       "unknown load balancer 'Fastest'", "Mosaic", lists_balancers=True,
                       env=env)


def test_the_server_does_not_start_with_an_unknown_balancer(tmp_path):
    confdir = confdir_with(tmp_path, proxy_conf(entry("^/a/", "127.0.0.1:8080",
                                                      LoadBalancer="Fastest")))
    result = monkey("-c", str(confdir))
    assert result.returncode == 2
    assert "unknown load balancer 'Fastest'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_correct_configuration_passes(tmp_path):
    confdir = confdir_with(tmp_path, proxy_conf(
        entry("^/a/", "127.0.0.1:8080 weight=2 localhost:8081 127.0.0.1:8082 backup",
              LoadBalancer="header_hash"),
        LoadBalancer="least-connections",
    ), section("PROXY_REVERSE", "Enabled Off"))
    result = monkey("check", "-c", str(confdir))
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout
