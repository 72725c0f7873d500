"""The proxy's statistics at StatisticsURL, from a real server with two workers and real
upstreams: totals summed across workers, the HTML page, Prometheus text, JSON, the
client address check, and failures as the page and the error log report them."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monkey_py_plugins.proxy_reverse.stats import PUBLISH_SECONDS
from proxy_support import ClientFrom
from rawhttp import Client
from support import free_port, section, wait_for
from upstreams import Exchange, Upstream

URL = "/proxy-status"
DELAY = 0.03


def get(port: int, target: str, method: str = "GET", source: str | None = None, **kwargs):
    """One request on a fresh connection (so either worker may take it)."""
    with (Client(port) if source is None else ClientFrom(port, source)) as client:
        return client.request(method, target, **kwargs)


def published() -> None:
    """Let every worker publish what it counted (each does every quarter second)."""
    time.sleep(PUBLISH_SECONDS + 0.1)


def status(port: int) -> dict:
    published()
    response = get(port, URL + ".json")
    assert response.status == 200, response
    return json.loads(response.body)


def upstreams_of(document: dict, match: str) -> dict:
    """{upstream address: figures} of the entry whose Match is ``match``."""
    for entry in document["entries"]:
        if entry["match"] == [match]:
            return {row["upstream"]: row for row in entry["upstreams"]}
    raise AssertionError(f"no entry matches {match}: {document}")


@pytest.fixture(scope="module")
def upstream_pair():
    started = [Upstream("a"), Upstream("b")]
    yield started
    for upstream in started:
        upstream.stop()


def by_path(exchange: Exchange) -> bool:
    """Answers the status the path names (/mixed/404 -> 404) after DELAY seconds."""
    time.sleep(DELAY)
    status = int(exchange.request.target.rsplit("/", 1)[-1])
    return exchange.respond(status, b"x" * status)


@pytest.fixture(scope="module")
def mixed():
    upstream = Upstream("mixed", by_path)
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def proxy(module_monkey, upstream_pair, mixed):
    a, b = upstream_pair
    dead = f"127.0.0.1:{free_port()}"
    conf = (
        section("PROXY_DEFAULTS", f"StatisticsURL {URL}", f"ServerList {a.address} {b.address}")
        + section("PROXY_ENTRY", "Match ^/count/")
        + section("PROXY_ENTRY", "Match ^/prom/", f"ServerList {a.address}")
        + section("PROXY_ENTRY", "Match ^/flaky/", f"ServerList {dead} {a.address}",
                  "LoadBalancer First-Alive", "AttemptsCount 1", "OfflineTimeOut 300")
        + section("PROXY_ENTRY", "Match ^/mixed/", f"ServerList {mixed.address}")
    )
    server = module_monkey(server=["Workers 2"], plugins=["proxy_reverse"],
                           plugin_confs={"proxy_reverse": conf})
    return server, dead


def test_totals_equal_the_requests_served_by_both_workers(proxy, upstream_pair):
    server, _ = proxy
    a, b = upstream_pair
    before = a.requests + b.requests
    count = 40
    for number in range(count):
        response = get(server.port, f"/count/{number}")
        assert response.status == 200 and response.body in (b"a", b"b")
    assert a.requests + b.requests - before == count
    # Whichever worker answers, it reads every worker's row.
    for _ in range(6):
        rows = upstreams_of(status(server.port), "^/count/")
        assert sum(row["requests"] for row in rows.values()) == count
        assert sum(row["responses"] for row in rows.values()) == count
        assert all(row["failures"] == 0 and row["active"] == 0 for row in rows.values())
        assert all(row["requests"] > 0 and row["state"] == "up" for row in rows.values())
        assert all(row["mean_latency_ms"] > 0 for row in rows.values())
        assert all(row["latency_seconds"]["buckets"]["+Inf"] == row["responses"]
                   for row in rows.values())
    # Once the second is over, the per-second history holds them too.
    assert wait_for(lambda: sum(
        sum(row["requests_per_second"]) for row in
        upstreams_of(status(server.port), "^/count/").values()) == count, timeout=3)


def test_html_page_shows_every_upstream_with_a_chart(proxy, upstream_pair):
    server, dead = proxy
    response = get(server.port, URL)
    assert response.status == 200
    assert response.header("Content-Type") == "text/html; charset=utf-8"
    assert response.header("Cache-Control") == "no-store"
    page = response.body.decode()
    root = ET.fromstring(page)
    for upstream in upstream_pair:
        assert upstream.address in page
    assert dead in page
    charts = root.findall(".//{http://www.w3.org/2000/svg}svg")
    assert [svg.get("class") for svg in charts] == ["chart"] * 2 + ["spark"] * 6
    assert get(server.port, URL + "?format=html").body.startswith(b"<!DOCTYPE html>")


def prometheus_requests(port: int, target: str, match: str, upstream: str) -> float:
    """monkey_proxy_upstream_requests_total of ``upstream`` in the entry matching ``match``."""
    published()
    response = get(port, target)
    assert response.status == 200
    assert response.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    assert response.header("Cache-Control") == "no-store"
    found = {}
    for family in text_string_to_metric_families(response.body.decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    assert found["monkey_proxy_workers"][0].value == 2
    (entry,) = [s.labels["entry"] for s in found["monkey_proxy_entry_info"]
                if s.labels["match"] == match]
    labels = {"entry": entry, "upstream": upstream}
    (requests,) = [s.value for s in found["monkey_proxy_upstream_requests_total"]
                   if s.labels == labels]
    (responses,) = [s.value for s in found["monkey_proxy_upstream_response_seconds_count"]
                    if s.labels == labels]
    assert responses == requests
    return requests


@pytest.mark.parametrize("target", [URL + "/metrics", URL + "?format=prometheus"])
def test_prometheus_text_parses_and_counts(proxy, upstream_pair, target):
    server, _ = proxy
    a, _ = upstream_pair
    before = prometheus_requests(server.port, target, "^/prom/", a.address)
    for _ in range(5):
        assert get(server.port, "/prom/x").status == 200
    assert prometheus_requests(server.port, target, "^/prom/", a.address) == before + 5


def test_json_under_both_urls(proxy):
    server, _ = proxy
    for target in (URL + ".json", URL + "?format=json", URL + ".json?format=json"):
        response = get(server.port, target)
        assert response.status == 200
        assert response.header("Content-Type") == "application/json"
        document = json.loads(response.body)
        assert document["workers"] == 2
        assert [entry["match"] for entry in document["entries"]] == [
            ["^/count/"], ["^/prom/"], ["^/flaky/"], ["^/mixed/"]]


def test_head_post_and_unknown_formats(proxy):
    server, _ = proxy
    head = get(server.port, URL, method="HEAD")
    assert head.status == 200 and head.body == b""
    assert int(head.header("Content-Length")) > 0
    post = get(server.port, URL, method="POST", headers=[("Content-Length", "0")])
    assert post.status == 405 and post.header("Allow") == "GET, HEAD"
    bad = get(server.port, URL + "?format=xml")
    assert bad.status == 400 and b"html, json or prometheus" in bad.body
    assert get(server.port, URL + "/metrics?format=json").status == 400
    assert get(server.port, URL + "/other").status == 404


def test_a_failing_upstream_shows_its_error_goes_offline_and_is_logged(proxy, upstream_pair):
    server, dead = proxy
    a, _ = upstream_pair
    before = a.requests
    for _ in range(4):
        response = get(server.port, "/flaky/x")
        assert response.status == 200 and response.body == b"a"
    assert a.requests - before == 4
    rows = upstreams_of(status(server.port), "^/flaky/")
    failing = rows[dead]
    # Each worker that met the refusal holds the server offline and never tries it again.
    assert 1 <= failing["failures"] == failing["offline_workers"] <= 2
    assert failing["requests"] == failing["failures"] and failing["responses"] == 0
    assert failing["state"] in ("offline", "partly offline")
    assert failing["last_error"] == "connect: Connection refused"
    assert 0 <= failing["last_error_age"] < 30
    assert 250 < failing["offline_for"] <= 300
    assert rows[a.address]["requests"] == 4 and rows[a.address]["state"] == "up"
    # The error log says which server failed, for which request, why, and what followed.
    lines = wait_for(lambda: [line for line in server.log().splitlines() if dead in line])
    assert any("[ERROR]" in line and "GET /flaky/x" in line and "Connection refused" in line
               for line in lines), lines
    assert any("offline" in line and "300" in line for line in lines), lines
    page = get(server.port, URL).body.decode()
    assert "connect: Connection refused" in page and "offline" in page


def test_clients_outside_statistics_allow_are_refused(start_monkey, upstream_pair):
    a, _ = upstream_pair
    conf = section("PROXY_DEFAULTS", f"StatisticsURL {URL}", "StatisticsAllow 10.0.0.0/8",
                   "StatisticsAllow 127.0.0.5") + section(
        "PROXY_ENTRY", "Match ^/api/", f"ServerList {a.address}")
    server = start_monkey(server=["Workers 2"], plugins=["proxy_reverse"],
                          plugin_confs={"proxy_reverse": conf})
    for target in (URL, URL + ".json", URL + "/metrics", URL + "?format=prometheus"):
        response = get(server.port, target)
        assert response.status == 403, target
        assert b"upstream" not in response.body and a.address.encode() not in response.body
        assert get(server.port, target, source="127.0.0.5").status == 200
    assert get(server.port, "/api/x").body == b"a"


def prometheus_samples(port: int) -> dict:
    """{(sample name, frozenset of labels): value} of the Prometheus text."""
    found = {}
    for family in text_string_to_metric_families(get(port, URL + "/metrics").body.decode()):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def test_json_and_prometheus_carry_the_figures_the_traffic_made(proxy, mixed):
    server, _ = proxy
    codes = [200] * 6 + [204, 304, 404, 500, 502, 503]
    for code in codes:
        assert get(server.port, f"/mixed/{code}").status == code
    # Every response is published and its second complete: the figures stay put now.
    assert wait_for(lambda: sum(upstreams_of(status(server.port), "^/mixed/")[mixed.address][
        "requests_per_second"]) == len(codes), timeout=3)
    document = status(server.port)
    samples = prometheus_samples(server.port)
    (entry,) = [item for item in document["entries"] if item["match"] == ["^/mixed/"]]
    (row,) = entry["upstreams"]
    labels = {("entry", entry["entry"]), ("upstream", mixed.address)}

    assert row["status_classes"] == {"1xx": 0, "2xx": 7, "3xx": 1, "4xx": 1, "5xx": 3}
    assert row["errors_per_second"].count(0) < len(row["errors_per_second"])
    assert sum(row["errors_per_second"]) == 3
    for code, count in row["status_classes"].items():
        assert samples["monkey_proxy_upstream_responses_total",
                       frozenset(labels | {("code", code)})] == count
    # Bytes in: all the upstream sent; bytes out: every request head it received.
    assert row["bytes_in"] == mixed.sent
    assert row["bytes_out"] > 0 and row["bytes_out"] == samples[
        "monkey_proxy_upstream_sent_bytes_total", frozenset(labels)]
    assert samples["monkey_proxy_upstream_received_bytes_total", frozenset(labels)] == mixed.sent
    # Every answer took DELAY at least: the quantiles are above it, within a third.
    for name, q in (("latency_p50_ms", "0.5"), ("latency_p99_ms", "0.99")):
        assert DELAY * 1000 <= row[name] < DELAY * 1000 * 4 / 3 + 50
        quantile = samples["monkey_proxy_upstream_response_quantile_seconds",
                           frozenset(labels | {("quantile", q)})]
        assert round(quantile * 1000, 3) == row[name]
    assert row["latency_p50_ms"] <= row["latency_p99_ms"]
    assert row["state"] == "up" and row["state_age"] > 0
    assert samples["monkey_proxy_upstream_state_seconds", frozenset(labels)] == pytest.approx(
        row["state_age"], abs=2)

    summary = document["summary"]
    assert summary["servers"] == 6 and summary["servers_down"] + summary[
        "servers_partly_offline"] == 1              # the dead server of ^/flaky/
    assert sum(summary["last_minute"]["errors"]) == 3
    assert summary["error_rate"] == round(3 / summary["window_seconds"], 3)
    for key, metric in (("servers", "monkey_proxy_servers"),
                        ("servers_down", "monkey_proxy_servers_down"),
                        ("request_rate", "monkey_proxy_requests_per_second"),
                        ("error_rate", "monkey_proxy_responses_5xx_per_second"),
                        ("error_ratio", "monkey_proxy_responses_5xx_ratio"),
                        ("failure_rate", "monkey_proxy_failures_per_second")):
        assert samples[metric, frozenset()] == pytest.approx(summary[key], abs=5e-4), metric
