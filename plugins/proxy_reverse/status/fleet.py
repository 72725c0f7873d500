"""The fleet on the statistics page (docs/fleet.md, "Fleet figures"): this instance's
links to Redis, every instance of the fleet with its state and figures, and the totals,
as an HTML section, a JSON member and Prometheus families."""

from __future__ import annotations

import time
from collections.abc import Iterator
from html import escape

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..fleet.figures import COUNTS, STATES, FleetView

STATE_CLASS = {"up": "up", "stale": "partly", "stopped": "muted", "gone": "offline"}
LINK_COUNTS = ("commands", "errors", "timeouts", "outages")


def fleet_json(view: FleetView | None) -> dict | None:
    """The ``fleet`` member of the JSON document; None outside a fleet."""
    if view is None:
        return None
    return {
        "name": view.name,
        "redis": view.redis,
        "links": view.links,
        "error": view.error,
        "instances": [{"name": found.name, "state": found.state, "age": found.age,
                       "figures": found.figures} for found in view.instances],
        "totals": view.totals,
    }


def fleet_html(view: FleetView | None) -> str:
    """The page's fleet section; empty outside a fleet."""
    if view is None:
        return ""
    parts = [f"<h2>Fleet</h2>\n<p>This instance is <code>{escape(view.name)}</code>, "
             f"with Redis at <code>{escape(view.redis)}</code>.</p>\n", _links(view)]
    if view.error is not None:
        parts.append(f"<p class=\"offline\">{escape(view.error)}; the figures above are "
                     "this instance's alone.</p>\n")
        return "".join(parts)
    rows = "".join(
        f"<tr><td class=\"text\">{escape(found.name)}</td>"
        f"<td class=\"text {STATE_CLASS[found.state]}\">{found.state}</td>"
        f"<td>{found.age:.1f} s ago</td>"
        + "".join(f"<td>{_count(found.figures, name)}</td>" for name in COUNTS)
        + "</tr>\n" for found in view.instances)
    totals = view.totals
    parts.append(
        "<table>\n<thead><tr><th class=\"text\">Instance</th><th class=\"text\">State</th>"
        "<th>Last published</th><th>Requests</th><th>Responses</th><th>Failures</th>"
        f"<th>Active</th></tr></thead>\n<tbody>\n{rows}"
        f"<tr><th class=\"text\">Total</th><th class=\"text\">"
        f"{', '.join(f'{totals[state]} {state}' for state in STATES)}</th><th></th>"
        + "".join(f"<th>{totals[name]}</th>" for name in COUNTS)
        + "</tr>\n</tbody>\n</table>\n")
    return "".join(parts)


def _links(view: FleetView) -> str:
    rows = []
    for link in view.links:
        state = "up" if link["up"] else "down"
        since = time.strftime("%H:%M:%S UTC", time.gmtime(link["since"]))
        error = escape(link["last_error"] or "none")
        rows.append(
            f"<tr><td class=\"text\">{escape(link['role'])}</td>"
            f"<td class=\"text {'up' if link['up'] else 'offline'}\">{state} since {since}"
            f"</td><td class=\"text error\">{error}</td>"
            + "".join(f"<td>{link[name]}</td>" for name in LINK_COUNTS) + "</tr>\n")
    return ("<table>\n<thead><tr><th class=\"text\">Redis link (this worker)</th>"
            "<th class=\"text\">State</th><th class=\"text\">Last error</th>"
            "<th>Commands</th><th>Errors</th><th>Timeouts</th><th>Outages</th></tr>"
            f"</thead>\n<tbody>\n{''.join(rows)}</tbody>\n</table>\n")


def _count(figures: dict | None, name: str) -> str:
    if figures is None or not isinstance(figures.get(name), int):
        return "<span class=\"muted\">-</span>"
    return str(figures[name])


def fleet_metrics(view: FleetView | None) -> Iterator[Metric]:
    """The fleet as this instance sees it: instances by state and the Redis links.

    The fleet's totals are left out: every instance exports its own counters, and
    Prometheus sums them (totals exported by each instance would be counted N times).
    """
    if view is None:
        return
    instances = GaugeMetricFamily(
        "monkey_proxy_fleet_instances",
        f"Instances of the fleet by state ({', '.join(STATES)}), as read from Redis; none "
        "while Redis cannot be read.", labels=["state"])
    totals = view.totals
    if view.error is None:
        for state in STATES:
            instances.add_metric([state], totals[state])
    up = GaugeMetricFamily("monkey_proxy_fleet_redis_up",
                           "1 while this worker's link to the fleet's Redis is up.",
                           labels=["link"])
    outages = CounterMetricFamily("monkey_proxy_fleet_redis_outages",
                                  "Times this worker's link to Redis went down.",
                                  labels=["link"])
    errors = CounterMetricFamily("monkey_proxy_fleet_redis_errors",
                                 "Redis commands of this worker that failed (refused while "
                                 "down, timed out, or answered with an error).",
                                 labels=["link"])
    for link in view.links:
        up.add_metric([link["role"]], 1 if link["up"] else 0)
        outages.add_metric([link["role"]], link["outages"])
        errors.add_metric([link["role"]], link["errors"])
    yield from (instances, up, outages, errors)
