"""The statistics as one self-contained HTML page: inline CSS and SVG, no script.

The page is made of sections, each a function of the report that returns its markup:
the summary, the charts, the cache's store, the entries. ``render_html`` composes
``SECTIONS``; another section is one more function in that tuple (or passed as
``sections``). It fits a window 1000 px wide.

Every value from the configuration or the network is escaped. The page reloads itself
every few seconds. The markup is also well-formed XML (void elements are closed), which
lets a test check it with a strict parser. The figures a test reads carry a
``data-figure`` attribute.
"""

from __future__ import annotations

import time
from html import escape
from typing import TYPE_CHECKING, Callable, Sequence

from ..cache.figures import CacheFigures, StoreFigures
from ..snapshots import UpstreamSnapshot
from .charts import Series, sparkline, time_chart
from .fleet import fleet_html

if TYPE_CHECKING:
    from .report import EntryStatus, StatusReport

REFRESH_SECONDS = 5
DASH = "<span class=\"muted\">-</span>"

STYLE = """
* { box-sizing: border-box; }
body { font: 13px/1.4 system-ui, sans-serif; margin: 0 auto; padding: 12px 16px;
       max-width: 1000px; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .3em; }
h2 { font-size: 1.1em; margin: 1.4em 0 .2em; }
p { margin: .2em 0; color: #555; }
code { font: 12px ui-monospace, monospace; background: #f3f3f3; padding: 0 .25em;
       overflow-wrap: anywhere; }
table { border-collapse: collapse; margin-top: .5em; width: 100%; }
th, td { padding: .25em .4em; border-bottom: 1px solid #ddd; text-align: right;
         vertical-align: top; white-space: nowrap; }
th { background: #f6f6f6; font-weight: 600; }
th.text, td.text { text-align: left; }
td.name { white-space: normal; overflow-wrap: anywhere; max-width: 13em; }
tr.server td { border-bottom: none; }
tr.detail td { color: #555; white-space: normal; overflow-wrap: anywhere;
               padding-top: 0; }
tr.detail svg { float: right; margin-left: 1em; }
.up { color: #17702e; font-weight: 600; }
.offline { color: #b3261e; font-weight: 600; }
.partly { color: #9a5b00; font-weight: 600; }
.muted { color: #888; }
.summary { display: flex; flex-wrap: wrap; gap: 8px; margin: .6em 0; }
.summary div { flex: 1 1 0; min-width: 140px; border: 1px solid #ddd; border-radius: 4px;
               padding: .4em .7em; }
.summary .value { display: block; font-size: 1.6em; font-weight: 600; }
.summary .bad .value { color: #b3261e; }
.charts { display: flex; flex-wrap: wrap; gap: 8px; }
svg { display: block; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
svg .chart-title { font-weight: 600; fill: #222; }
svg .grid { stroke: #e4e4e4; }
svg .axis-line { stroke: #888; }
svg .series { fill: none; stroke-width: 1.5; }
svg .series.requests { stroke: #2f6db5; }
svg .series.errors { stroke: #b3261e; }
svg .series.latency { stroke: #6b3fa0; }
svg .dot.requests { fill: #2f6db5; }
svg .dot.errors { fill: #b3261e; }
svg .dot.latency { fill: #6b3fa0; }
svg .legend.requests { fill: #2f6db5; }
svg .legend.errors { fill: #b3261e; }
svg .legend.latency { fill: #6b3fa0; }
svg.spark .requests { fill: #cfe0f5; stroke: #2f6db5; stroke-width: 1; }
svg.spark .failures { fill: none; stroke: #b3261e; stroke-width: 1.2; }
"""

STATE_CLASS = {"up": "up", "offline": "offline", "partly offline": "partly", "down": "offline"}


def render_html(report: StatusReport, sections: Sequence[Callable] | None = None) -> bytes:
    """The whole page for ``report``: its head, then ``sections`` (``SECTIONS`` by
    default) in order."""
    url = report.url
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.since))
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n",
        f"<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\" />\n",
        "<meta name=\"viewport\" content=\"width=device-width\" />\n",
        "<title>Reverse proxy status</title>\n",
        f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>Reverse proxy status</h1>\n",
        f"<p>{report.workers} worker(s), counting since {since} (start or last reload); "
        f"this page reloads every {REFRESH_SECONDS} s. Also as "
        f"<a href=\"{escape(url + '.json')}\">JSON</a> and "
        f"<a href=\"{escape(url.rstrip('/') + '/metrics')}\">Prometheus text</a>.</p>\n",
    ]
    parts.extend(section(report) for section in (SECTIONS if sections is None else sections))
    parts.append("</body>\n</html>\n")
    return "".join(parts).encode()


# -- the summary and the charts ----------------------------------------------------------
def summary_section(report: StatusReport) -> str:
    """The figures over every server: unavailable servers, requests/s, 5xx/s, failures/s."""
    summary = report.summary
    ratio = summary.error_ratio
    share = "no responses" if ratio is None else f"{ratio * 100:.1f}% of responses"
    partly = (f", {summary.servers_partly_offline} partly offline"
              if summary.servers_partly_offline else "")
    boxes = [
        ("servers-down", str(summary.servers_down),
         f"server(s) down of {summary.servers}{partly}",
         summary.servers_down or summary.servers_partly_offline),
        ("requests-per-second", f"{summary.request_rate:.2f}", "requests/s", False),
        ("errors-per-second", f"{summary.error_rate:.2f}", f"5xx responses/s ({share})",
         summary.error_rate > 0),
        ("failures-per-second", f"{summary.failure_rate:.2f}",
         "failed attempts/s (no response)", summary.failure_rate > 0),
    ]
    cells = "".join(
        f"<div class=\"{'bad' if bad else 'good'}\"><span class=\"value\" "
        f"data-figure=\"{figure}\">{value}</span>{escape(label)}</div>"
        for figure, value, label, bad in boxes)
    return (f"<section id=\"summary\">\n<h2>Summary, last {summary.window} s</h2>\n"
            f"<div class=\"summary\">{cells}</div>\n</section>\n")


def charts_section(report: StatusReport) -> str:
    """Requests/s with 5xx/s, and the mean time to the response head, over the last
    minutes (each point the mean of one interval)."""
    traffic = report.traffic
    step = traffic.interval
    latency_ms = [None if mean is None else mean * 1000 for mean in traffic.mean_latency]
    requests = time_chart(
        "chart-traffic", "Requests and 5xx responses per second", "per second", [
            Series("requests/s", "requests", [count / step for count in traffic.requests]),
            Series("5xx/s", "errors", [count / step for count in traffic.errors])], step)
    latency = time_chart("chart-latency", "Mean time to the response head", "ms",
                         [Series("latency ms", "latency", latency_ms)], step, least=0.1)
    return f"<section id=\"charts\" class=\"charts\">\n{requests}\n{latency}\n</section>\n"


# -- the cache's store -------------------------------------------------------------------
def store_section(report: StatusReport) -> str:
    """One line on the cache's store: kind, size against its limit, evictions."""
    store: StoreFigures | None = report.cache_store
    if store is None:
        return ""
    workers = report.workers
    if store.kind == "memory":
        scope = f"in {workers} worker(s), at most {_mib(store.max_bytes)} each"
    elif store.kind == "redis":
        # The figures are the memory tiers'; Redis reports its own (INFO, DBSIZE).
        scope = (f"in the memory tiers of {workers} worker(s), at most "
                 f"{_mib(store.max_bytes)} each, in front of Redis" if store.max_bytes
                 else "in Redis, without a memory tier")
    else:
        scope = f"on disk, at most {_mib(store.max_bytes)}"
    trouble = ""
    if store.damaged or any(store.write_errors.values()):
        failed = ", ".join(f"{count} {escape(cause)}" for cause, count
                           in store.write_errors.items() if count)
        trouble = (f" {store.damaged} damaged bod(ies) removed; write errors: "
                   f"{failed or 'none'}.")
    return (f"<p>Cache store: {escape(store.kind)}, {_mib(store.bytes)} in "
            f"{store.entries} response(s) {scope}; {store.evictions} eviction(s).{trouble}"
            "</p>\n")


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


# -- the entries -------------------------------------------------------------------------
def entries_section(report: StatusReport) -> str:
    """Each entry: its rules and load figures, then one row per server."""
    if not report.entries:
        return "<p>No proxy entry is configured.</p>\n"
    return "".join(_entry(entry) for entry in report.entries)


def _entry(entry: EntryStatus) -> str:
    match = " ".join(f"<code>{escape(pattern)}</code>" for pattern in entry.match) or (
        "<span class=\"muted\">(none)</span>")
    rows = "".join(_rows(upstream) for upstream in entry.upstreams)
    where = f" <span class=\"muted\">({escape(entry.location)})</span>" if entry.name else ""
    return (
        f"<section class=\"entry\">\n<h2>Entry <code>{escape(entry.label)}</code>{where}</h2>\n"
        f"<p>Match {match}, "
        f"load balancer {escape(entry.balancer)}</p>\n"
        + _load(entry) +
        "<table class=\"servers\">\n<thead><tr><th class=\"text\">Server</th>"
        "<th class=\"text\">State</th><th class=\"text\">Check</th><th>Weight</th>"
        "<th>Active</th><th>Requests</th><th>Failures</th><th>1xx</th><th>2xx</th>"
        "<th>3xx</th><th>4xx</th><th>5xx</th><th>In / out</th>"
        "<th title=\"over the last minute\">p50</th>"
        "<th title=\"over the last minute\">p99</th>"
        f"</tr></thead>\n<tbody>\n{rows}</tbody>\n</table>\n"
        + ("" if entry.cache is None else _cache(entry.cache))
        + "</section>\n"
    )


def _load(entry: EntryStatus) -> str:
    """One line on the entry's queue, retries and panic mode, when there is any."""
    figures, settings = entry.figures, entry.settings
    parts = []
    if settings is not None and settings.max_connections:
        waiting = figures.waiting if figures else 0
        parts.append(f"at most {settings.max_connections} connection(s) per server and "
                     f"worker, {waiting} request(s) waiting")
    if figures is not None:
        if figures.queue_full or figures.queue_timeouts:
            parts.append(f"{figures.queue_full} refused (queue full), "
                         f"{figures.queue_timeouts} timed out in the queue")
        parts.append(f"{figures.retries} retries, {figures.retries_denied} refused by "
                     "the retry budget")
        if figures.panic_workers:
            parts.append(f"<span class=\"offline\">panic mode in "
                         f"{figures.panic_workers} worker(s)</span>")
    if settings is not None and settings.retry_statuses is not None:
        parts.append(f"answers {escape(settings.retry_statuses.text)} retried on the next "
                     "server")
    return f"<p>{'; '.join(parts)}.</p>\n" if parts else ""


def _cache(figures: CacheFigures) -> str:
    """The entry's cache counters as a one-row table."""
    ratio = figures.hit_ratio
    shown = DASH if ratio is None else f"{ratio * 100:.1f}%"
    return (
        "<table class=\"cache\">\n<thead><tr><th class=\"text\">Cache</th><th>Hits</th>"
        "<th>Stale</th><th>Misses</th><th>Revalidated</th><th>Stored</th><th>Purged</th>"
        "<th>Collapsed</th><th>Hit ratio</th></tr></thead>\n"
        f"<tbody>\n<tr><td class=\"text\">responses</td><td>{figures.hits}</td>"
        f"<td>{figures.stale}</td><td>{figures.misses}</td><td>{figures.revalidated}</td>"
        f"<td>{figures.stored}</td><td>{figures.purged}</td><td>{figures.collapsed}</td>"
        f"<td>{shown}</td></tr>\n</tbody>\n</table>\n"
    )


def _rows(up: UpstreamSnapshot) -> str:
    """A server's row of figures, and under it a row of details: its state at length,
    its health check's last result, its last error and its sparkline."""
    name = escape(up.name) + (" <span class=\"muted\">(backup)</span>" if up.backup else "")
    if up.check is None:
        check = DASH
    else:
        check = f"<span class=\"{STATE_CLASS[up.check.state]}\">{escape(up.check.state)}</span>"
    weight = f"{up.weight * up.weight_share:g}" + (
        "" if up.weight_share == 1 else f" <span class=\"muted\">of {up.weight}</span>")
    classes = "".join(f"<td data-figure=\"{number}xx\">{count}</td>"
                      for number, count in enumerate(up.status_classes, 1))
    details = [escape(_state_detail(up))]
    if up.check is not None:
        details.append("health check: " + escape(up.check.last_result or "not checked yet"))
    if up.last_error:
        details.append(f"last error: {escape(up.last_error)} ({_age(up.last_error_age)})")
    return (
        f"<tr class=\"server\" data-server=\"{escape(up.name)}\">"
        f"<td class=\"text name\">{name}</td>"
        f"<td class=\"text\"><span class=\"{STATE_CLASS[up.state]}\" data-figure=\"state\">"
        f"{escape(up.state)}</span><br /><span class=\"muted\" data-figure=\"state-age\">"
        f"{_duration(up.state_age)}</span></td>"
        f"<td class=\"text\" data-figure=\"check\">{check}</td>"
        f"<td data-figure=\"weight\">{weight}</td>"
        f"<td data-figure=\"active\">{up.active}</td>"
        f"<td data-figure=\"requests\">{up.requests}</td>"
        f"<td data-figure=\"failures\">{up.failures}</td>{classes}"
        f"<td><span data-figure=\"bytes-in\" title=\"{up.bytes_in} bytes\">"
        f"{_size(up.bytes_in)}</span><br /><span data-figure=\"bytes-out\" "
        f"title=\"{up.bytes_out} bytes\">{_size(up.bytes_out)}</span></td>"
        f"<td data-figure=\"p50\">{_ms(up.latency_quantile(0.5))}</td>"
        f"<td data-figure=\"p99\">{_ms(up.latency_quantile(0.99))}</td></tr>\n"
        f"<tr class=\"detail\"><td colspan=\"15\" class=\"text\">"
        f"{sparkline(up.requests_per_second, up.failures_per_second)}"
        f"{'; '.join(details)}</td></tr>\n"
    )


def _state_detail(up: UpstreamSnapshot) -> str:
    if up.state == "up":
        return "up in every worker"
    if up.state == "down":
        return "held down by its health check"
    back = f"retried in {up.offline_for:.0f} s"
    if up.state == "offline":
        return f"offline in every worker, {back}"
    return f"offline in {up.offline_workers} of {up.workers} workers, {back}"


def _ms(seconds: float | None) -> str:
    return DASH if seconds is None else f"{seconds * 1000:.1f} ms"


def _size(count: int) -> str:
    """A byte count for people: B, KiB, MiB or GiB."""
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def _span(seconds: float) -> str:
    """A length of time for people: "12 s", "5 min", "1.5 h", "2.0 days"."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _duration(seconds: float | None) -> str:
    """Time in the current state: "for 12 s"; "-" when not known."""
    return "-" if seconds is None else f"for {_span(seconds)}"


def _age(seconds: float | None) -> str:
    return "never" if seconds is None else f"{_span(seconds)} ago"


def fleet_section(report: StatusReport) -> str:
    """The instances of the fleet and their totals (status/fleet.py); empty outside one."""
    return fleet_html(report.fleet)


SECTIONS: tuple[Callable[[StatusReport], str], ...] = (
    summary_section, charts_section, store_section, entries_section, fleet_section)
