"""The fleet as the statistics page shows it: instances up, stale or gone by the age of
their last publication, or stopped as they said, totals over those up, and the HTML, JSON and Prometheus forms
(names escaped, nothing of the fleet outside one)."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monkey_py_plugins.proxy_reverse.fleet.figures import FleetView, instances_from
from monkey_py_plugins.proxy_reverse.status.fleet import fleet_html, fleet_json, fleet_metrics

NOW = 1_700_000_000_000
LINK = {"role": "commands", "up": True, "since": 1_700_000_000.0, "last_error": None,
        "commands": 12, "errors": 0, "timeouts": 0, "outages": 0}


def figures(requests: int, **more) -> bytes:
    return json.dumps({"requests": requests, "responses": requests - 1, "failures": 1,
                       "active": 2, "workers": 2, **more}).encode()


def view() -> FleetView:
    reply = [NOW,
             b"a", str(NOW - 400).encode(), figures(10),
             b"<b>", str(NOW - 2900).encode(), figures(5),
             b"c", str(NOW - 3500).encode(), None,
             b"d", str(NOW - 60_000).encode(), None,
             b"e", str(NOW - 1000).encode(), b"not json",
             b"f", str(NOW - 300_000).encode(), figures(7, stopped=True)]
    return FleetView("a", "redis://10.0.0.5:6379/0", [LINK], instances_from(reply))


def test_instances_are_up_stale_or_gone_by_the_age_of_their_figures_or_stopped():
    found = {instance.name: (instance.state, instance.age) for instance in view().instances}
    assert found == {"a": ("up", 0.4), "<b>": ("up", 2.9), "c": ("stale", 3.5),
                     "d": ("gone", 60.0), "e": ("stale", 1.0), "f": ("stopped", 300.0)}


def test_totals_count_the_instances_up():
    assert view().totals == {"requests": 15, "responses": 13, "failures": 2, "active": 4,
                             "up": 2, "stale": 2, "stopped": 1, "gone": 1}


def test_the_json_member():
    document = fleet_json(view())
    assert document["name"] == "a" and document["error"] is None
    assert document["links"] == [LINK]
    assert document["instances"][0] == {"name": "a", "state": "up", "age": 0.4,
                                        "figures": json.loads(figures(10))}
    assert document["totals"]["requests"] == 15
    assert fleet_json(None) is None


def test_the_html_section_escapes_names_and_says_when_redis_cannot_be_read():
    html = fleet_html(view())
    assert "&lt;b&gt;" in html and "<b>" not in html
    assert ("<th class=\"text\">2 up, 2 stale, 1 stopped, 1 gone</th><th></th><th>15</th>"
            in html)
    assert "<td class=\"text partly\">stale</td>" in html
    assert "<td class=\"text muted\">stopped</td>" in html
    failed = FleetView("a", "redis://10.0.0.5:6379/0",
                       [{**LINK, "up": False, "last_error": "Connection <refused>"}],
                       error="the fleet's figures could not be read: down")
    html = fleet_html(failed)
    assert "Connection &lt;refused&gt;" in html and "offline\">down since" in html
    assert "could not be read: down" in html and "<th>Instance</th>" not in html
    assert fleet_html(None) == ""


class Collector:
    def __init__(self, found) -> None:
        self.found = found

    def collect(self):
        yield from fleet_metrics(self.found)


def metrics(found) -> dict:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(found))
    text = generate_latest(registry).decode()
    return {family.name: {tuple(sample.labels.values()): sample.value
                          for sample in family.samples}
            for family in text_string_to_metric_families(text)}


def test_prometheus_shows_the_instances_by_state_and_the_links_not_the_totals():
    found = metrics(view())
    assert found["monkey_proxy_fleet_instances"] == {("up",): 2, ("stale",): 2,
                                                     ("stopped",): 1, ("gone",): 1}
    assert found["monkey_proxy_fleet_redis_up"] == {("commands",): 1}
    assert found["monkey_proxy_fleet_redis_outages"] == {("commands",): 0}
    assert not any("requests" in name for name in found)
    failed = metrics(FleetView("a", "r", [LINK], error="down"))
    assert failed["monkey_proxy_fleet_instances"] == {}
    assert metrics(None) == {}
