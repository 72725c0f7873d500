"""Balancers chosen by ``LoadBalancer <name>`` in a real proxy, third-party ones included.

The upstreams are small HTTP servers in this process that answer with their own name;
the example balancer (docs/examples/monkey-example-balancer) is installed into the venv
by the Makefile, like any third-party package.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support import MonkeyProcess, free_port, section, site, wait_for, write_confdir


class NamedUpstream:
    """An HTTP/1.1 server on a loopback port whose every answer is its name."""

    def __init__(self, name: str) -> None:
        self.name = name
        body = name.encode()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstreams():
    started = [NamedUpstream(name) for name in "abc"]
    yield started
    for upstream in started:
        upstream.close()


@pytest.fixture
def proxy(tmp_path, docroot, upstreams):
    """Start a proxy to the upstreams with ``LoadBalancer balancer`` and ``workers``."""
    started: list[MonkeyProcess] = []

    def start(balancer: str, workers: int = 1) -> MonkeyProcess:
        port = free_port()
        confdir = write_confdir(
            tmp_path, [f"Listen 127.0.0.1:{port}", f"Workers {workers}"],
            {"default": site("127.0.0.1 localhost", docroot)},
            ["proxy_reverse"],
            {"proxy_reverse": section(
                "PROXY_ENTRY",
                "ServerList " + " ".join(upstream.address for upstream in upstreams),
                f"LoadBalancer {balancer}",
                "Match ^/",
            )},
        )
        process = MonkeyProcess(confdir, port)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def answered_by(port: int, headers: dict[str, str] | None = None) -> str:
    """Which upstream answered a GET sent on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, body
        return body.decode()
    finally:
        conn.close()


def test_a_third_party_balancer_is_selected_by_its_entry_point_name(proxy):
    server = proxy("header-hash")
    # crc32(b"mike") % 3 == 1, crc32(b"bob") % 3 == 2, crc32(b"judy") % 3 == 0.
    for _ in range(3):
        assert answered_by(server.port, {"X-User": "mike"}) == "b"
        assert answered_by(server.port, {"X-User": "bob"}) == "c"
        assert answered_by(server.port, {"X-User": "judy"}) == "a"
    assert answered_by(server.port) == "a"


def test_locking_round_robin_rotates_exactly_across_two_workers(proxy):
    server = proxy("locking_round_robin", workers=2)
    assert wait_for(lambda: len(server.worker_pids()) == 2)
    answers = [answered_by(server.port) for _ in range(30)]
    assert Counter(answers) == {"a": 10, "b": 10, "c": 10}


def test_an_unknown_balancer_stops_the_server_naming_the_line_and_the_choices(
    tmp_path, docroot, upstreams
):
    confdir = write_confdir(
        tmp_path, [f"Listen 127.0.0.1:{free_port()}", "Workers 1"],
        {"default": site("127.0.0.1 localhost", docroot)},
        ["proxy_reverse"],
        {"proxy_reverse": section(
            "PROXY_ENTRY", f"ServerList {upstreams[0].address}", "LoadBalancer RoundRobbin",
            "Match ^/",
        )},
    )
    result = subprocess.run(
        [sys.executable, "-m", "monkey_py", "check", "-c", str(confdir)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    assert "proxy_reverse.conf:3: unknown load balancer 'RoundRobbin'" in result.stderr
    assert "HeaderHash" in result.stderr and "LockingRoundRobin" in result.stderr
    assert "Traceback" not in result.stderr
