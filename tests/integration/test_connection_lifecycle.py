"""Nothing is read, run or written after a closing response (RFC 9112 §9.6), and every
descriptor opened for a response is closed on every path: counted in the worker."""

from __future__ import annotations

import pytest

from proxy_support import entry, start_proxy
from rawhttp import Client, build_request
from support import settled_fds, site
from upstreams import answer_name

SMALL = b"small file\n"
GARBAGE = b"GARBAGE\x01\r\n\r\n"



@pytest.fixture(scope="module")
def static(module_monkey, tmp_path_factory):
    root = tmp_path_factory.mktemp("lifecycle")
    (root / "small.html").write_bytes(SMALL)
    (root / "large.bin").write_bytes(b"L" * (512 * 1024))
    return module_monkey(server=["MaxKeepAliveRequest 1000"],
                         sites={"default": site("localhost", root)})


def test_pipelined_requests_then_garbage_leak_nothing(static):
    (worker,) = static.worker_pids()
    before = settled_fds(worker)
    for _ in range(100):
        with Client(static.port) as client:
            client.send(build_request("GET", "/small.html") * 2 + GARBAGE)
            for _ in range(2):
                response = client.read_response()
                assert (response.status, response.body) == (200, SMALL)
            assert client.read_response().status == 400
            assert client.read_to_close() == b""
    assert settled_fds(worker) == before


def test_large_files_cut_by_a_closing_response_leak_nothing(static):
    (worker,) = static.worker_pids()
    with Client(static.port) as client:
        assert client.request("GET", "/large.bin").status == 200   # in the open-file cache
    before = settled_fds(worker)
    for _ in range(20):
        with Client(static.port) as client:
            client.send(build_request("GET", "/large.bin") * 3 + GARBAGE)
            for _ in range(3):
                assert client.read_response().status == 200
            assert client.read_response().status == 400
    assert settled_fds(worker) == before


def test_no_request_is_answered_after_max_keep_alive_request(static):
    (worker,) = static.worker_pids()
    before = settled_fds(worker)
    with Client(static.port, timeout=30) as client:
        client.send(build_request("GET", "/small.html") * 1010)
        for number in range(1, 1001):
            response = client.read_response()
            assert response.status == 200
            assert (response.header("Connection") == "Close") == (number == 1000)
        assert client.read_to_close() == b""
    assert settled_fds(worker) == before


@pytest.fixture(scope="module")
def proxy(module_monkey, module_upstreams):
    upstream = module_upstreams("orders")
    upstream.behaviour = answer_name
    return start_proxy(module_monkey, entry("^/", upstream),
                       StatisticsURL="/proxy-status"), upstream


def test_proxied_requests_before_garbage_are_answered_once(proxy):
    server, upstream = proxy
    with Client(server.port) as client:
        client.send(build_request("GET", "/proxy-status.json") + build_request("HEAD", "/nope")
                    + GARBAGE)
        assert client.read_response().status == 200
        assert client.read_response("HEAD").status == 200
        assert client.read_response().status == 400
        assert client.read_to_close() == b""
    assert "Traceback" not in server.log()


def test_a_post_before_garbage_is_run_once_and_its_answer_arrives(proxy):
    server, upstream = proxy
    before = upstream.requests
    with Client(server.port) as client:
        client.send(build_request("GET", "/proxy-status.json")
                    + build_request("POST", "/order", headers=[("Content-Length", "3")],
                                    body=b"abc")
                    + GARBAGE)
        assert client.read_response().status == 200
        answer = client.read_response()
        assert answer.status == 200 and answer.header("X-Upstream") == "orders"
        assert client.read_response().status == 400
        assert client.read_to_close() == b""
    assert upstream.requests - before == 1
    assert "Traceback" not in server.log()
