"""The statistics as one self-contained HTML page: inline CSS and SVG, no script.

Every value from the configuration or the network is escaped. The page reloads itself
every few seconds. The markup is also well-formed XML (void elements are closed), which
lets a test check it with a strict parser.
"""

from __future__ import annotations

import time
from html import escape
from typing import TYPE_CHECKING

from ..cache.figures import CacheFigures, StoreFigures
from ..stats import HISTORY_SECONDS, UpstreamSnapshot
from .fleet import fleet_html

if TYPE_CHECKING:
    from .report import EntryStatus, StatusReport

REFRESH_SECONDS = 5
CHART_WIDTH = 120
CHART_HEIGHT = 24

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .3em; }
h2 { font-size: 1.1em; margin: 1.6em 0 .2em; }
p { margin: .2em 0; color: #555; }
code { font: 13px ui-monospace, monospace; background: #f3f3f3; padding: 0 .25em; }
table { border-collapse: collapse; margin-top: .5em; }
th, td { padding: .3em .7em; border-bottom: 1px solid #ddd; text-align: right;
         vertical-align: middle; white-space: nowrap; }
th { background: #f6f6f6; font-weight: 600; }
th.text, td.text { text-align: left; }
td.error { white-space: normal; max-width: 28em; }
.up { color: #17702e; font-weight: 600; }
.offline { color: #b3261e; font-weight: 600; }
.partly { color: #9a5b00; font-weight: 600; }
.muted { color: #888; }
svg { display: block; }
svg .requests { fill: #cfe0f5; stroke: #2f6db5; stroke-width: 1; }
svg .failures { fill: none; stroke: #b3261e; stroke-width: 1.2; }
"""

STATE_CLASS = {"up": "up", "offline": "offline", "partly offline": "partly", "down": "offline"}


def render_html(report: StatusReport) -> bytes:
    """The whole page for ``report``."""
    url = report.url
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.since))
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n",
        f"<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\" />\n",
        "<title>Reverse proxy status</title>\n",
        f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>Reverse proxy status</h1>\n",
        f"<p>{report.workers} worker(s), counting since {since} (start or last reload); "
        f"this page reloads every {REFRESH_SECONDS} s. Also as "
        f"<a href=\"{escape(url + '.json')}\">JSON</a> and "
        f"<a href=\"{escape(url.rstrip('/') + '/metrics')}\">Prometheus text</a>.</p>\n",
    ]
    if report.cache_store is not None:
        parts.append(_store(report.cache_store, report.workers))
    if not report.entries:
        parts.append("<p>No proxy entry is configured.</p>\n")
    for entry in report.entries:
        parts.append(_entry(entry))
    parts.append(fleet_html(report.fleet))
    parts.append("</body>\n</html>\n")
    return "".join(parts).encode()


def _entry(entry: EntryStatus) -> str:
    match = " ".join(f"<code>{escape(pattern)}</code>" for pattern in entry.match) or (
        "<span class=\"muted\">(none)</span>")
    rows = "".join(_row(upstream) for upstream in entry.upstreams)
    where = f" <span class=\"muted\">({escape(entry.location)})</span>" if entry.name else ""
    return (
        f"<h2>Entry <code>{escape(entry.label)}</code>{where}</h2>\n"
        f"<p>Match {match}, "
        f"load balancer {escape(entry.balancer)}</p>\n"
        + _load(entry) +
        "<table>\n<thead><tr><th class=\"text\">Upstream</th><th class=\"text\">State</th>"
        "<th class=\"text\">Health check</th><th>Weight</th>"
        "<th>Active</th><th>Requests</th><th>Failures</th><th>Mean latency</th>"
        "<th class=\"text\">Last error</th>"
        f"<th class=\"text\">Requests/s, last {HISTORY_SECONDS} s</th></tr></thead>\n"
        f"<tbody>\n{rows}</tbody>\n</table>\n"
        + ("" if entry.cache is None else _cache(entry.cache))
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
    return f"<p>{'; '.join(parts)}.</p>\n" if parts else ""


def _cache(figures: CacheFigures) -> str:
    """The entry's cache counters as a one-row table."""
    ratio = figures.hit_ratio
    shown = "<span class=\"muted\">-</span>" if ratio is None else f"{ratio * 100:.1f}%"
    return (
        "<table>\n<thead><tr><th class=\"text\">Cache</th><th>Hits</th><th>Stale</th>"
        "<th>Misses</th><th>Revalidated</th><th>Stored</th><th>Purged</th>"
        "<th>Collapsed</th><th>Hit ratio</th></tr></thead>\n"
        f"<tbody>\n<tr><td class=\"text\">responses</td><td>{figures.hits}</td>"
        f"<td>{figures.stale}</td><td>{figures.misses}</td><td>{figures.revalidated}</td>"
        f"<td>{figures.stored}</td><td>{figures.purged}</td><td>{figures.collapsed}</td>"
        f"<td>{shown}</td></tr>\n</tbody>\n</table>\n"
    )


def _store(store: StoreFigures, workers: int) -> str:
    """One line on the cache's store: kind, size against its limit, evictions."""
    scope = (f"in {workers} worker(s), at most {_mib(store.max_bytes)} each"
             if store.kind == "memory" else f"on disk, at most {_mib(store.max_bytes)}")
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


def _row(up: UpstreamSnapshot) -> str:
    name = escape(up.name) + (" <span class=\"muted\">(backup)</span>" if up.backup else "")
    latency = ("<span class=\"muted\">-</span>" if up.mean_latency is None
               else f"{up.mean_latency * 1000:.1f} ms")
    if up.last_error:
        error = f"{escape(up.last_error)} <span class=\"muted\">({_age(up.last_error_age)})</span>"
    else:
        error = "<span class=\"muted\">none</span>"
    if up.check is None:
        check = "<span class=\"muted\">-</span>"
    else:
        check = (f"<span class=\"{'offline' if up.check.state == 'down' else 'up'}\">"
                 f"{escape(up.check.state)}</span> <span class=\"muted\">"
                 f"({escape(up.check.last_result or 'not checked yet')})</span>")
    weight = f"{up.weight * up.weight_share:g}" + (
        "" if up.weight_share == 1 else f" <span class=\"muted\">of {up.weight}</span>")
    return (
        f"<tr><td class=\"text\">{name}</td>"
        f"<td class=\"text {STATE_CLASS[up.state]}\">{escape(_state(up))}</td>"
        f"<td class=\"text\">{check}</td><td>{weight}</td>"
        f"<td>{up.active}</td><td>{up.requests}</td><td>{up.failures}</td>"
        f"<td>{latency}</td><td class=\"text error\">{error}</td>"
        f"<td class=\"text\">{sparkline(up.requests_per_second, up.failures_per_second)}</td>"
        "</tr>\n"
    )


def _state(up: UpstreamSnapshot) -> str:
    if up.state in ("up", "down"):
        return up.state
    back = f"retried in {up.offline_for:.0f} s"
    if up.state == "offline":
        return f"offline, {back}"
    return f"offline in {up.offline_workers} of {up.workers} workers, {back}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def sparkline(requests: list[int], failures: list[int]) -> str:
    """An inline SVG chart: requests per second as an area, failures as a red line."""
    peak = max(max(requests, default=0), max(failures, default=0), 1)
    step = CHART_WIDTH / max(len(requests) - 1, 1)
    top = 2

    def points(values: list[int]) -> str:
        return " ".join(f"{i * step:.1f},{CHART_HEIGHT - (CHART_HEIGHT - top) * v / peak:.1f}"
                        for i, v in enumerate(values))

    label = (f"Requests per second over the last {len(requests)} s: "
             f"last second {requests[-1] if requests else 0}, peak {max(requests, default=0)}; "
             f"failures in that time: {sum(failures)}")
    shapes = [f"<polygon class=\"requests\" points=\"0,{CHART_HEIGHT} {points(requests)} "
              f"{CHART_WIDTH},{CHART_HEIGHT}\" />"]
    if any(failures):
        shapes.append(f"<polyline class=\"failures\" points=\"{points(failures)}\" />")
    return (
        f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{CHART_WIDTH}\" "
        f"height=\"{CHART_HEIGHT}\" viewBox=\"0 0 {CHART_WIDTH} {CHART_HEIGHT}\" role=\"img\" "
        f"aria-label=\"{escape(label)}\"><title>{escape(label)}</title>{''.join(shapes)}</svg>"
    )
