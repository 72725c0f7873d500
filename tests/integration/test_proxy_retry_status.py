"""RetryOnStatus: an answer with one of an entry's statuses is dropped and the request
tried on the next server, when it can be replayed; the last server's answer is passed on
as it is; the answers count against the servers' health."""

from __future__ import annotations

import json

import pytest

from proxy_support import STATUS_URL, check_fails, entry, proxy_stats, start_proxy
from rawhttp import Client
from support import section


def answering(status: int, body: bytes):
    return lambda exchange: exchange.respond(status, body, [("X-Answer", body.decode())])


@pytest.fixture(scope="module")
def setup(module_monkey, module_upstreams):
    ups = {
        "busy": module_upstreams("busy", answering(503, b"busy")),
        "also-busy": module_upstreams("also-busy", answering(503, b"also-busy")),
        "missing": module_upstreams("missing", answering(404, b"missing")),
        "fine": module_upstreams("fine", answering(200, b"fine")),
        "charged": module_upstreams("charged", answering(503, b"charged")),
    }
    first_alive = {"LoadBalancer": "First-Alive"}
    proxy = start_proxy(
        module_monkey,
        entry("^/retry/", ups["busy"], ups["fine"], **first_alive,
              RetryOnStatus="502 503 504", AttemptsCount=1000),
        entry("^/all-busy/", ups["busy"], ups["also-busy"], **first_alive,
              RetryOnStatus="5xx", AttemptsCount=1000),
        entry("^/not-listed/", ups["missing"], ups["fine"], **first_alive,
              RetryOnStatus="500-599"),
        entry("^/off/", ups["busy"], ups["fine"], **first_alive),
        entry("^/charged/", ups["charged"], ups["fine"], **first_alive,
              RetryOnStatus="503", AttemptsCount=2, OfflineTimeOut=600),
    )
    return proxy, ups


def test_an_answer_with_a_listed_status_is_retried_on_the_next_server(proxy, ups):
    with Client(proxy.port) as client:
        for method in ("GET", "HEAD"):
            response = client.request(method, "/retry/x")
            assert response.status == 200
            assert response.header("X-Answer") == "fine"
        assert client.request("GET", "/retry/y").body == b"fine"
    assert (ups["busy"].requests, ups["fine"].requests) == (3, 3)


def test_a_request_with_a_body_is_not_replayed_and_gets_the_answer_as_it_is(proxy, ups):
    with Client(proxy.port) as client:
        response = client.request("POST", "/retry/form", headers=[("Content-Length", "2")],
                                  body=b"hi")
        assert (response.status, response.body) == (503, b"busy")
    assert (ups["busy"].requests, ups["fine"].requests) == (1, 0)


def test_the_last_servers_answer_is_passed_on_when_every_server_gives_one(proxy, ups):
    with Client(proxy.port) as client:
        response = client.request("GET", "/all-busy/x")
        assert (response.status, response.body) == (503, b"also-busy")
        # The connection to the client is kept, as for any answer.
        assert client.request("GET", "/retry/x").status == 200
    assert (ups["busy"].requests, ups["also-busy"].requests) == (2, 1)


@pytest.mark.parametrize("path, status, body", [("/not-listed/x", 404, b"missing"),
                                                ("/off/x", 503, b"busy")])
def test_other_statuses_and_entries_without_the_key_pass_the_answer_on(
        proxy, ups, path, status, body):
    with Client(proxy.port) as client:
        response = client.request("GET", path)
        assert (response.status, response.body) == (status, body)
    assert ups["fine"].requests == 0


def test_retried_answers_count_as_failures_and_take_a_server_offline(proxy, ups):
    with Client(proxy.port) as client:
        for _ in range(4):
            assert client.request("GET", "/charged/x").body == b"fine"
    # AttemptsCount 2: offline after its second 503, asked no more.
    assert ups["charged"].requests == 2
    stats = next(found for found in proxy_stats(proxy.port)
                 if found["upstream"].endswith(f":{ups['charged'].port}"))
    assert stats["failures"] == 2 and stats["last_error"] == "answered 503"
    assert stats["state"] == "offline" and stats["offline_workers"] == 1


@pytest.mark.parametrize("value", ["2xx", "302 503", "100-599"])
def test_statuses_that_are_not_errors_stop_the_start_at_the_line(tmp_path, value):
    check_fails(tmp_path, section("PROXY_ENTRY", "Match ^/", "ServerList 127.0.0.1:9",
                                  f"RetryOnStatus {value}"),
                "RetryOnStatus", "RetryOnStatus takes error statuses, 400 to 599")


def test_the_statistics_page_shows_the_statuses_retried(proxy):
    with Client(proxy.port) as client:
        document = json.loads(client.request("GET", STATUS_URL + ".json").body)
        page = client.request("GET", STATUS_URL).body.decode()
    limits = {tuple(found["match"]): found["limits"] for found in document["entries"]}
    assert limits[("^/retry/",)]["retry_on_status"] == "502 503 504"
    assert limits[("^/off/",)]["retry_on_status"] is None
    assert "answers 502 503 504 retried on the next server" in page
