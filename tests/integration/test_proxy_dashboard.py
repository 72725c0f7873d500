"""The statistics page as an operator sees it: loaded in real headless Chromium from a
real server with two workers, real upstreams and real traffic (5xx answers, a server
that is down), with its summary, one row per server with the figures the traffic made,
charts with axes and a scale, and nothing wider than a 1000 px window."""

from __future__ import annotations

import json
import re
import time

import pytest

from chromium import dump_dom, ensure_chromium, parse
from monkey_py_plugins.proxy_reverse.history import INTERVAL_SECONDS
from monkey_py_plugins.proxy_reverse.status.charts import nice_ceiling
from proxy_support import STATUS_URL, entry, start_proxy
from rawhttp import Client
from support import free_port, site, wait_for
from upstreams import Exchange, Upstream

CHECK = {"HealthCheck": "/health", "HealthCheckInterval": 0.2, "HealthCheckTimeout": 1,
         "HealthCheckRise": 1, "HealthCheckFall": 1}
DELAY = 0.02
OK, FINE, FAILING = 20, 3, 5
WIDTH = 1000
HOSTILE_MATCH = "^/web/|/<b>&amp;"
# A page of the same origin as the statistics that shows them in a frame exactly 1000
# px wide and writes the width their content takes into its own DOM.
MEASURE = """<!DOCTYPE html>
<html><head><script>
function measure(frame) {
  var root = frame.contentDocument.documentElement;
  document.getElementById("width").textContent = root.scrollWidth + " " + root.clientWidth;
}
</script></head><body style="margin: 0">
<iframe src="%s" onload="measure(this)" style="width: %dpx; height: 800px; border: 0"></iframe>
<p id="width"></p>
</body></html>
"""


def slow(exchange: Exchange) -> bool:
    """Answers 200 after DELAY seconds (its health check at once)."""
    if exchange.request.target != "/health":
        time.sleep(DELAY)
    return exchange.respond(200, b"slow answer")


def failing(exchange: Exchange) -> bool:
    """Answers 503 to a path with "fail" in it, else 200."""
    if "fail" in exchange.request.target:
        return exchange.respond(503, b"unavailable", reason="Service Unavailable")
    return exchange.respond(200, b"fine")


def get(port: int, target: str):
    with Client(port) as client:
        return client.request("GET", target)


def document(port: int) -> dict:
    response = get(port, STATUS_URL + ".json")
    assert response.status == 200
    return json.loads(response.body)


def counted_document(port: int, total: int) -> dict | None:
    """The JSON document once its per-second history and its ten-second intervals hold
    ``total`` requests."""
    found = document(port)
    if sum(found["summary"]["last_minute"]["requests"]) != total:
        return None
    return found if sum(found["traffic"]["requests"]) == total else None


@pytest.fixture(scope="module")
def chromium():
    return ensure_chromium()


@pytest.fixture(scope="module")
def dashboard(module_monkey, tmp_path_factory):
    """A proxy with a checked entry whose second server is down, and an entry whose
    server answers 5xx to some requests; the traffic sent; its JSON once counted."""
    ups = {"slow": Upstream("slow", slow), "failing": Upstream("failing", failing)}
    dead = f"127.0.0.1:{free_port()}"
    docroot = tmp_path_factory.mktemp("htdocs")
    (docroot / "measure.html").write_text(MEASURE % (STATUS_URL, WIDTH))
    server = start_proxy(
        module_monkey,
        entry(HOSTILE_MATCH, ups["slow"], dead, Name="web", LoadBalancer="First-Alive",
              **CHECK),
        entry("^/api/", ups["failing"], Name="api"),
        workers=2, sites={"default": site("127.0.0.1 localhost", docroot)})
    down = wait_for(lambda: [row for item in document(server.port)["entries"]
                             for row in item["upstreams"] if row["state"] == "down"])
    assert [row["upstream"] for row in down] == [dead]
    for number in range(OK):
        assert get(server.port, f"/web/{number}").status == 200
    for number in range(FINE):
        assert get(server.port, f"/api/fine/{number}").status == 200
    for number in range(FAILING):
        assert get(server.port, f"/api/fail/{number}").status == 503
    # Once the last second and the last interval are complete, every request is in the
    # history the summary and the charts show.
    counted = wait_for(lambda: counted_document(server.port, OK + FINE + FAILING),
                       timeout=INTERVAL_SECONDS + 5)
    assert counted, "the traffic never reached the per-second history"
    yield server, ups, dead, counted
    for upstream in ups.values():
        upstream.stop()


def rows_by_server(page) -> dict:
    """{server: {data-figure: text}} of the page's server rows."""
    return {row.attrs["data-server"]: {node.attrs["data-figure"]: node
                                       for node in row.find_all() if "data-figure" in node.attrs}
            for row in page.find_all("tr", class_="server")}


def test_the_page_in_chromium_shows_the_summary_the_servers_and_the_charts(chromium, dashboard):
    server, ups, dead, counted = dashboard
    page = parse(dump_dom(chromium, f"http://127.0.0.1:{server.port}{STATUS_URL}"))
    # What Chromium rendered is what the JSON says, and what the traffic made.
    # (The per-second lists move on with the clock; the figures over the window stay.)
    now = json.loads(get(server.port, STATUS_URL + ".json").body)["summary"]
    assert {**now, "last_minute": None} == {**counted["summary"], "last_minute": None}
    total = OK + FINE + FAILING

    summary = {node.attrs["data-figure"]: node.text
               for node in page.find("section", id="summary").find_all()
               if "data-figure" in node.attrs}
    assert summary == {"servers-down": "1", "requests-per-second": f"{total / 60:.2f}",
                       "errors-per-second": f"{FAILING / 60:.2f}",
                       "failures-per-second": "0.00"}
    assert f"{FAILING / total * 100:.1f}% of responses" in page.find(
        "section", id="summary").text

    rows = rows_by_server(page)
    assert list(rows) == [ups["slow"].address, dead, ups["failing"].address]
    upstreams = {row["upstream"]: row for item in counted["entries"]
                 for row in item["upstreams"]}
    classes = {ups["slow"].address: ["0", str(OK), "0", "0", "0"], dead: ["0"] * 5,
               ups["failing"].address: ["0", str(FINE), "0", "0", str(FAILING)]}
    for name, figures in rows.items():
        expected = upstreams[name]
        assert [figures[f"{n}xx"].text for n in range(1, 6)] == classes[name]
        assert figures["requests"].text == str(expected["requests"])
        assert figures["failures"].text == "0"
        assert figures["weight"].text.split()[0] == f"{expected['effective_weight']:g}"
        assert figures["bytes-in"].attrs["title"] == f"{expected['bytes_in']} bytes"
        assert figures["bytes-out"].attrs["title"] == f"{expected['bytes_out']} bytes"
        assert re.fullmatch(r"for \d+ s", figures["state-age"].text), figures["state-age"].text
        for quantile in ("p50", "p99"):
            value = expected[f"latency_{quantile}_ms"]
            shown = "-" if value is None else f"{value:.1f} ms"
            assert figures[quantile].text == shown
    slow_row, dead_row = rows[ups["slow"].address], rows[dead]
    assert slow_row["state"].text == "up" and slow_row["check"].text == "up"
    assert float(slow_row["p50"].text.split()[0]) >= DELAY * 1000
    assert dead_row["state"].text == "down" and dead_row["check"].text == "down"
    assert "health check: connect: Connection refused" in page.text
    assert rows[ups["failing"].address]["check"].text == "-"
    assert HOSTILE_MATCH in page.text            # escaped in the markup, shown as text

    charts = {svg.attrs["id"]: svg for svg in page.find_all("svg", class_="chart")}
    assert list(charts) == ["chart-traffic", "chart-latency"]
    for svg in charts.values():
        x_ticks = [node.text for node in svg.find("g", class_="x").find_all("text")]
        assert x_ticks == ["-10 min", "-7.5 min", "-5 min", "-2.5 min", "now"]
        assert svg.find_all("polyline", class_="series")
        assert {"minutes before now"} <= {node.text for node in svg.find_all(
            "text", class_="axis-label")}
    traffic = counted["traffic"]
    peak = max(max(traffic["requests"]) / traffic["interval_seconds"], 1)
    y_ticks = [node.text for node in charts["chart-traffic"].find("g", class_="y").find_all(
        "text")]
    assert y_ticks == ["0", f"{nice_ceiling(peak) / 2:g}", f"{nice_ceiling(peak):g}"]
    lines = {line.attrs["data-series"] for line in charts["chart-traffic"].find_all("polyline")}
    assert lines == {"requests/s", "5xx/s"}


def test_the_page_fits_a_window_1000_px_wide(chromium, dashboard):
    server = dashboard[0]
    page = parse(dump_dom(chromium, f"http://127.0.0.1:{server.port}/measure.html",
                          width=WIDTH + 100))
    measured = page.find("p", id="width").text.split()
    assert len(measured) == 2, "the frame was never measured"
    scroll_width, client_width = map(int, measured)
    assert client_width == WIDTH
    assert scroll_width <= WIDTH, f"the page is {scroll_width} px wide"
