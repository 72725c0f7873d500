"""Helpers for the reverse proxy's integration tests: its configuration, a server running
it, and its statistics."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from rawhttp import Client
from support import free_port, section, site, wait_for, write_confdir

STATUS_URL = "/proxy-status"


def servers(*items) -> str:
    """A ServerList value: upstreams (by address) and plain words like ``weight=2``."""
    return " ".join(getattr(item, "address", item) for item in items)


def entry(match: str, *server_list, **keys) -> str:
    """A ``[PROXY_ENTRY]`` section; ``keys`` are config keys, e.g. ``LoadBalancer="Naive"``."""
    lines = [f"Match {match}"]
    if server_list:
        lines.append(f"ServerList {servers(*server_list)}")
    lines.extend(f"{key} {value}" for key, value in keys.items())
    return section("PROXY_ENTRY", *lines)


def proxy_conf(*entries: str, **defaults) -> str:
    """``proxy_reverse.conf``: ``[PROXY_DEFAULTS]`` (StatisticsURL on) and the entries."""
    defaults.setdefault("StatisticsURL", STATUS_URL)
    lines = [f"{key} {value}" for key, value in defaults.items()]
    return section("PROXY_DEFAULTS", *lines) + "".join(entries)


def start_proxy(factory, *entries: str, workers: int = 1, sites=None, server=(), **defaults):
    """A server running the proxy with ``entries``; ``factory``: start_monkey or module_monkey."""
    return factory(
        server=[f"Workers {workers}", *server], sites=sites, plugins=["proxy_reverse"],
        plugin_confs={"proxy_reverse": proxy_conf(*entries, **defaults)},
    )


def balancer_package(root: Path, entry_points: str, modules: dict[str, str] = {}) -> str:
    """An installed distribution under ``root`` declaring ``monkey_py.balancers`` entry
    points (``Name = module:Class`` lines) and holding ``modules`` (name: source); the
    PYTHONPATH that installs it beside everything else for a server started after."""
    packages = root / "site"
    info = packages / "monkey_test_balancers-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: monkey-test-balancers\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text("[monkey_py.balancers]\n" + entry_points)
    for name, source in modules.items():
        (packages / f"{name}.py").write_text(source)
    return os.pathsep.join(filter(None, [str(packages), os.environ.get("PYTHONPATH")]))


def get(port: int, target: str, **kwargs):
    """One request on a fresh connection; returns the rawhttp Response."""
    with Client(port) as client:
        return client.request("GET", target, **kwargs)


class ClientFrom(Client):
    """A rawhttp Client whose connection leaves from ``source`` (e.g. ``127.0.0.5``)."""

    def __init__(self, port: int, source: str, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout,
                                             source_address=(source, 0))
        self.timeout = timeout
        self.buffer = bytearray()


def half_close_upgraded(client: Client, target: str = "/collect/") -> None:
    """Upgrade to a raw byte stream at ``target`` (``Upgrade: collect``, see the upstream
    behaviour ``collect_then_answer``) with ``first, `` behind the request and ``second``
    after the 101, then end the client's side of the connection."""
    client.send(b"GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: collect\r\n"
                b"Connection: Upgrade\r\n\r\nfirst, " % target.encode())
    assert client.read_head().status == 101
    client.send(b"second")
    client.sock.shutdown(socket.SHUT_WR)


def proxy_stats(port: int) -> list[dict]:
    """Every upstream's figures from the statistics page's JSON, all entries together."""
    with Client(port) as client:
        response = client.request("GET", STATUS_URL + ".json")
    assert response.status == 200, response
    return [upstream for found in json.loads(response.body)["entries"]
            for upstream in found["upstreams"]]


def total_active(port: int) -> int:
    return sum(row["active"] for row in proxy_stats(port))


def assert_settled(port: int) -> None:
    """Every upstream attempt has ended: the proxy's (and the balancers') active counts are 0."""
    assert wait_for(lambda: total_active(port) == 0), proxy_stats(port)


def check_fails(tmp_path, proxy_text: str, key: str, *message: str) -> None:
    """``monkey check`` of a configuration whose proxy_reverse.conf is ``proxy_text``
    stops at the line of ``key`` in that file, with each of ``message`` in its words."""
    docroot = tmp_path / "htdocs"
    docroot.mkdir()
    conf = write_confdir(tmp_path, [f"Listen 127.0.0.1:{free_port()}", "Workers 1"],
                         {"default": site("localhost", docroot)}, ["proxy_reverse"],
                         {"proxy_reverse": proxy_text})
    result = subprocess.run([sys.executable, "-m", "monkey_py", "check", "-c", str(conf)],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    path = conf / "plugins" / "proxy_reverse" / "proxy_reverse.conf"
    line = next(number for number, text in enumerate(path.read_text().splitlines(), 1)
                if text.strip().startswith(key))
    assert result.stderr.startswith(f"monkey: {path}:{line}: "), result.stderr
    for part in message:
        assert part in result.stderr, result.stderr
