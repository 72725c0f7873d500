"""The statistics page: URL-to-format mapping, client address checks, and the HTML and
JSON made from a report."""

from __future__ import annotations

import ipaddress
import json
import re
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest

from monkey_py_plugins.proxy_reverse.stats import HISTORY_SECONDS, ProxyStats
from monkey_py_plugins.proxy_reverse.status.charts import (
    Series,
    nice_ceiling,
    sparkline,
    time_chart,
)
from monkey_py_plugins.proxy_reverse.status.html import render_html
from monkey_py_plugins.proxy_reverse.status.json import render_json
from monkey_py_plugins.proxy_reverse.status.report import build_report
from monkey_py_plugins.proxy_reverse.status.serve import allowed, chosen_format, implied_format

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert('x')</script>&"


def fake_state(labels, entries, workers=1, now=500.5):
    """A ProxyState stand-in: its entries, the settings the page reads and real shared
    statistics; ``entries`` are made by ``fake_entry``, whose servers ``labels`` name."""
    stats = ProxyStats(labels, workers, clock=lambda: now)
    stats.worker_started(0)
    for entry in entries:
        entry.settings.servers = [SimpleNamespace(name=name, weight=1)
                                  for label, name, _ in labels if label == entry.label]
    settings = SimpleNamespace(site_cache={}, statistics_url="/proxy-status")
    return SimpleNamespace(settings=settings, stats=stats, cache=None, checks=None,
                           entries=lambda: entries)


def fake_entry(label: str, *patterns: str, balancer="RoundRobin"):
    """An entry as the report reads it: its settings (the keys' defaults) and balancer."""
    settings = SimpleNamespace(
        label=label, name=None, where=label, match=[re.compile(p) for p in patterns],
        cache=False, servers=[], panic_threshold=50, slow_start=0.0, max_connections=0,
        queue_size=100, queue_timeout=5.0, retry_budget=20, retry_budget_min=3,
        retry_statuses=None, health_check=None)
    return SimpleNamespace(label=label, settings=settings, balancer_name=balancer)


# -- URLs and formats -----------------------------------------------------------------------
@pytest.mark.parametrize("path, expected", [
    (b"/proxy-status", ""),
    (b"/proxy-status.json", "json"),
    (b"/proxy-status/metrics", "prometheus"),
    (b"/proxy-status/", None),
    (b"/proxy-statusx", None),
    (b"/proxy-status/metrics/x", None),
    (b"/other", None),
])
def test_status_urls(path, expected):
    assert implied_format(path, b"/proxy-status") == expected


def test_a_statistics_url_with_a_trailing_slash_keeps_one_slash_before_metrics():
    assert implied_format(b"/status/metrics", b"/status/") == "prometheus"


@pytest.mark.parametrize("query, implied, expected", [
    (None, "", "html"),
    (b"format=json", "", "json"),
    (b"format=Prometheus", "", "prometheus"),
    (b"format=html&x=1", "", "html"),
    (None, "json", "json"),
    (b"format=json", "json", "json"),
    (b"refresh=1", "prometheus", "prometheus"),
])
def test_format_parameter(query, implied, expected):
    assert chosen_format(query, implied, b"/proxy-status") == expected


@pytest.mark.parametrize("query, implied", [
    (b"format=xml", ""),
    (b"format=html", "json"),
    (b"format=json", "prometheus"),
])
def test_an_unknown_or_contradicting_format_is_refused_with_the_choices(query, implied):
    with pytest.raises(ValueError, match="html, json or prometheus"):
        chosen_format(query, implied, b"/proxy-status")


# -- who may read it ------------------------------------------------------------------------
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


@pytest.mark.parametrize("peer, networks, expected", [
    (("127.0.0.1", 5000), LOOPBACK, True),
    (("::1", 5000, 0, 0), LOOPBACK, True),
    (("::ffff:127.0.0.1", 5000, 0, 0), LOOPBACK, True),
    (("192.168.1.9", 5000), LOOPBACK, False),
    (("10.1.2.3", 5000), [ipaddress.ip_network("10.0.0.0/8")], True),
    (("127.0.0.1", 5000), [ipaddress.ip_network("10.0.0.0/8")], False),
    (("fe80::1%eth0", 5000, 0, 2), [ipaddress.ip_network("fe80::/10")], True),
    ("/run/monkey.sock", LOOPBACK, False),
])
def test_client_addresses(peer, networks, expected):
    assert allowed(SimpleNamespace(peer=peer), networks) is expected


# -- the report, HTML and JSON ---------------------------------------------------------------
def test_the_report_groups_upstreams_by_entry_in_order():
    labels = [("a.conf:2", "h1:80", False), ("a.conf:2", "h2:80", True), ("s/x:5", "h3:80", False)]
    state = fake_state(labels, [fake_entry("a.conf:2", "^/api/"),
                                fake_entry("s/x:5", "img", balancer="Naive")])
    report = build_report(state)
    assert [(e.label, e.match, e.balancer, [u.name for u in e.upstreams])
            for e in report.entries] == [("a.conf:2", ["^/api/"], "RoundRobin", ["h1:80", "h2:80"]),
                                         ("s/x:5", ["img"], "Naive", ["h3:80"])]


def hostile_report(now=500.5):
    labels = [(HOSTILE, HOSTILE, False), (HOSTILE, "ok:80", True)]
    state = fake_state(labels, [fake_entry(HOSTILE, HOSTILE)], now=now)
    stats = state.stats
    state.settings.statistics_url = "/st\"atus"
    for _ in range(3):
        stats.responded(0, 0.004)
    stats.failed(0, HOSTILE, 0.0)
    stats.failed(1, "connect: Connection refused", now + 30)
    stats.publish()
    return state


def figures(row) -> dict:
    """{data-figure: text} of an element's cells and spans."""
    return {found.get("data-figure"): "".join(found.itertext())
            for found in row.iter() if found.get("data-figure")}


def test_html_is_well_formed_self_contained_and_escapes_every_value():
    state = hostile_report()
    state.stats.clock = lambda: 501.5
    page = render_html(build_report(state)).decode()
    root = ET.fromstring(page)               # well-formed: every element is closed
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "<link" not in page and " src=" not in page
    assert not re.search(r"""href=["'](https?:)?//""", page)
    assert root.find(".//{*}meta[@http-equiv='refresh']") is not None
    assert root.find("head/style") is not None
    text = "".join(root.itertext())
    assert HOSTILE in text                   # shown as text, not markup
    hrefs = [a.get("href") for a in root.iter("a")]
    assert hrefs == ['/st"atus.json', '/st"atus/metrics']
    rows = root.findall(".//tbody/tr[@class='server']")
    assert [row.get("data-server") for row in rows] == [HOSTILE, "ok:80"]
    assert "".join(rows[0].find("td").itertext()) == HOSTILE
    first = figures(rows[0])
    assert first["state"] == "up" and first["state-age"] == "for 1 s"
    assert [first[name] for name in ("check", "weight", "active", "requests", "failures",
                                     "1xx", "2xx", "3xx", "4xx", "5xx", "p50", "p99")] == [
        "-", "1", "0", "4", "1", "0", "3", "0", "0", "0", "3.5 ms", "4.0 ms"]
    details = root.findall(".//tbody/tr[@class='detail']")
    assert f"last error: {HOSTILE}" in "".join(details[0].itertext())
    backup = figures(rows[1])
    assert "".join(rows[1].find("td").itertext()) == "ok:80 (backup)"
    assert backup["state"] == "offline" and backup["p50"] == "-"
    assert "offline in every worker, retried in 29 s" in "".join(details[1].itertext())
    summary = figures(root.find(".//{*}section[@id='summary']"))
    assert summary["servers-down"] == "1" and summary["requests-per-second"] == "0.08"
    charts = root.findall(f".//{SVG}svg[@class='chart']")
    assert [chart.get("id") for chart in charts] == ["chart-traffic", "chart-latency"]
    assert len(root.findall(f".//{SVG}svg[@class='spark']")) == 2


def test_the_page_is_composed_of_the_sections_given():
    state = hostile_report()
    page = render_html(build_report(state), [lambda report: "<p id=\"fleet\">2 nodes</p>"])
    root = ET.fromstring(page.decode())
    assert root.find(".//p[@id='fleet']").text == "2 nodes"
    assert root.find(".//{*}section[@id='summary']") is None


def test_the_summary_adds_every_server_and_takes_rates_over_the_window():
    labels = [("a:1", "h1:80", False), ("a:1", "h2:80", False), ("b:1", "h3:80", False)]
    clock = SimpleNamespace(now=800.5)
    state = fake_state(labels, [fake_entry("a:1", "^/a/"), fake_entry("b:1", "^/b/")])
    stats = state.stats
    stats.clock = lambda: clock.now
    for slot, status, latency in ((0, 200, 0.01), (0, 503, 0.03), (1, 500, 0.02),
                                  (2, 200, 0.05)):
        stats.responded(slot, latency, status)
    stats.failed(2, "connect: Connection refused", clock.now + 60)
    stats.publish()
    clock.now = 801.0
    summary = build_report(state).summary
    assert (summary.servers, summary.servers_down, summary.window) == (3, 1, HISTORY_SECONDS)
    last_minute = summary.last_minute
    assert (last_minute.interval, last_minute.seconds) == (1, HISTORY_SECONDS)
    assert last_minute.requests[-1] == 5 and last_minute.errors[-1] == 2
    assert last_minute.mean_latency[-1] == pytest.approx(0.11 / 4)
    assert last_minute.mean_latency[0] is None
    assert summary.request_rate == pytest.approx(5 / HISTORY_SECONDS)
    assert summary.error_rate == pytest.approx(2 / HISTORY_SECONDS)
    assert summary.failure_rate == pytest.approx(1 / HISTORY_SECONDS)
    assert summary.error_ratio == pytest.approx(0.5)


def test_the_summary_of_no_server_has_an_empty_window_of_the_full_length():
    summary = build_report(fake_state([], [])).summary
    assert summary.servers == 0 and summary.request_rate == 0
    assert summary.error_ratio is None and summary.window == HISTORY_SECONDS


def test_html_says_so_when_no_entry_is_configured():
    page = render_html(build_report(fake_state([], []))).decode()
    ET.fromstring(page)
    assert "No proxy entry is configured" in page


@pytest.mark.parametrize("value, ceiling", [
    (0.3, 0.5), (1, 1), (1.01, 2), (2, 2), (3, 5), (7, 10), (26, 50), (0.0042, 0.005),
])
def test_a_scale_ends_at_the_next_1_2_5_step(value, ceiling):
    assert nice_ceiling(value) == pytest.approx(ceiling)


def chart(values, step, least=1.0):
    return ET.fromstring(time_chart("c", "Title <&>", "per second",
                                    [Series("a", "requests", values),
                                     Series("b", "errors", [0] * len(values))], step, least))


def test_a_chart_of_ten_minutes_has_its_axes_labelled_in_minutes_and_scaled_to_the_peak():
    svg = chart([0] * 58 + [2.6, None], step=10)
    assert [t.text for t in svg.find(f"{SVG}g[@class='axis x']").iter(f"{SVG}text")] == [
        "-10 min", "-7.5 min", "-5 min", "-2.5 min", "now"]
    assert [t.text for t in svg.find(f"{SVG}g[@class='axis y']").iter(f"{SVG}text")] == [
        "0", "2.5", "5"]
    assert "minutes before now" in [t.text for t in svg.iter(f"{SVG}text")]
    assert svg.find(f"{SVG}title").text == "Title <&>, last 10 min, scale 0 to 5 per second"
    # A gap where there is no value; the last point with one, a step before the right edge.
    (line, flat) = svg.findall(f"{SVG}polyline")
    points = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
    assert len(points) == 59 and len(flat.get("points").split()) == 60
    left, right = 46, 480 - 10
    assert points[0][0] == pytest.approx(left + (right - left) / 60, abs=0.05)
    assert points[-1][0] == pytest.approx(right - (right - left) / 60, abs=0.05)
    assert points[-1][1] < points[0][1]
    assert svg.find(f"{SVG}circle") is None


def test_a_lone_value_between_gaps_is_drawn_as_a_dot():
    svg = chart([None] * 30 + [4.0] + [None] * 29, step=10)
    (dot,) = svg.findall(f"{SVG}circle")
    (line,) = [p for p in svg.findall(f"{SVG}polyline") if "requests" in p.get("class")]
    assert line.get("points") == f"{dot.get('cx')},{dot.get('cy')}"


def test_a_chart_of_a_minute_has_seconds_and_an_idle_one_its_least_scale():
    svg = chart([0] * 60, step=1, least=0.1)
    assert [t.text for t in svg.find(f"{SVG}g[@class='axis x']").iter(f"{SVG}text")] == [
        "-60 s", "-45 s", "-30 s", "-15 s", "now"]
    assert [t.text for t in svg.find(f"{SVG}g[@class='axis y']").iter(f"{SVG}text")] == [
        "0", "0.05", "0.1"]


def test_sparkline_scales_to_the_peak_and_marks_failures():
    requests = [0] * (HISTORY_SECONDS - 2) + [10, 5]
    svg = ET.fromstring(sparkline(requests, [0] * (HISTORY_SECONDS - 1) + [2]))
    polygon = svg.find(f"{SVG}polygon")
    points = [tuple(map(float, p.split(","))) for p in polygon.get("points").split()]
    height = float(svg.get("height"))
    ys = [y for _, y in points[1:-1]]
    assert ys[0] == height and min(ys) == ys[-2] and ys[-1] > ys[-2]
    assert svg.find(f"{SVG}polyline") is not None
    assert "peak 10" in svg.find(f"{SVG}title").text


def test_sparkline_of_an_idle_upstream_has_no_failure_line():
    svg = ET.fromstring(sparkline([0] * HISTORY_SECONDS, [0] * HISTORY_SECONDS))
    assert svg.find(f"{SVG}polyline") is None


def test_json_document():
    state = hostile_report()
    state.stats.clock = lambda: 502.0
    document = json.loads(render_json(build_report(state)))
    assert document["workers"] == 1 and document["since"] > 0
    (entry,) = document["entries"]
    assert entry["entry"] == HOSTILE and entry["match"] == [HOSTILE]
    first, backup = entry["upstreams"]
    assert first["upstream"] == HOSTILE and first["state"] == "up"
    assert (first["requests"], first["responses"], first["failures"]) == (4, 3, 1)
    assert first["mean_latency_ms"] == 4.0
    assert first["latency_seconds"]["buckets"]["0.005"] == 3
    assert first["latency_seconds"]["buckets"]["+Inf"] == 3
    assert first["last_error"] == HOSTILE and first["last_error_age"] == 1.5
    assert first["requests_per_second"][-2:] == [4, 0]
    assert len(first["failures_per_second"]) == HISTORY_SECONDS
    assert backup["state"] == "offline" and backup["offline_for"] == 28.5
    assert backup["backup"] is True and backup["mean_latency_ms"] is None
    assert first["status_classes"] == {"1xx": 0, "2xx": 3, "3xx": 0, "4xx": 0, "5xx": 0}
    assert first["latency_p50_ms"] == 3.5 and first["latency_p99_ms"] == 3.99
    assert first["state_age"] == 1.5 and backup["state_age"] == 1.5
    assert backup["latency_p50_ms"] is None
    summary = document["summary"]
    assert (summary["servers"], summary["servers_down"], summary["window_seconds"]) == (
        2, 1, HISTORY_SECONDS)
    assert summary["last_minute"]["interval_seconds"] == 1
    assert summary["last_minute"]["requests"][-2:] == [5, 0]
    assert summary["last_minute"]["latency_ms"][-2:] == [4.0, None]
