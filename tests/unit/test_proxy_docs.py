"""docs/proxy_reverse.md covers every key of the proxy and every metric it exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monkey_py_plugins.proxy_reverse import settings
from monkey_py_plugins.proxy_reverse.forwarding.health_board import HealthBoard
from monkey_py_plugins.proxy_reverse.stats import ProxyStats
from monkey_py_plugins.proxy_reverse.status.json import render_json
from monkey_py_plugins.proxy_reverse.status.prometheus import render_prometheus
from monkey_py_plugins.proxy_reverse.status.report import EntryStatus, StatusReport

PAGE = Path(__file__).resolve().parents[2] / "docs" / "proxy_reverse.md"


def key_table_rows() -> set[str]:
    """The keys named in the first cell of a table row: ``| `Key` | ...``."""
    return set(re.findall(r"^\| `(\w+)` \|", PAGE.read_text(), re.M))


def proxy_keys() -> list[str]:
    names = {key.name for key in settings._defaults_keys() + settings._entry_keys()}
    return sorted(names)


def full_report() -> StatusReport:
    """A report with all there is to show: an entry with its settings and figures, and
    an upstream with a health check."""
    stats = ProxyStats([("e:1", "h:1", False)], workers=1)
    upstreams = stats.snapshot()
    upstreams[0].check = HealthBoard([0]).snapshot()[0]
    upstreams[0].check.state_age = 1.0
    settings = SimpleNamespace(
        panic_threshold=50, slow_start=0.0, max_connections=10, queue_size=100,
        queue_timeout=5.0, retry_budget=20, retry_budget_min=3, retry_statuses=None,
        health_check=SimpleNamespace(path="/health", interval=5.0, timeout=2.0, rise=2,
                                     fall=3, status=SimpleNamespace(text="2xx")))
    return StatusReport("/s", 0.0, 1, [EntryStatus(
        "e:1", ["^/"], "Naive", upstreams, settings=settings,
        figures=stats.entry_snapshot()[0])])


def exported_metrics() -> list[str]:
    """Every metric the fullest report exports."""
    text = render_prometheus(full_report()).decode()
    names = set()
    for family in text_string_to_metric_families(text):
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        names.add(family.name + suffix)
    return sorted(names)


def test_the_key_list_is_found():
    assert {"ServerList", "Match", "StatisticsURL"} <= set(proxy_keys())


@pytest.mark.parametrize("key", proxy_keys())
def test_every_key_has_a_row_in_the_key_table(key):
    assert key in key_table_rows(), f"docs/proxy_reverse.md has no table row for {key}"


def test_the_site_switch_is_documented():
    assert "`[PROXY_REVERSE] Enabled Off`" in PAGE.read_text()


@pytest.mark.parametrize("metric", exported_metrics())
def test_every_metric_is_documented(metric):
    assert f"`{metric}`" in PAGE.read_text(), f"docs/proxy_reverse.md omits {metric}"


def json_fields(value, inside: str = "") -> set[str]:
    """The field names of a JSON document, but for the keys of the latency buckets
    (bounds) and of the status classes (documented as such)."""
    if isinstance(value, list):
        return set().union(*(json_fields(item, inside) for item in value))
    if not isinstance(value, dict) or inside in ("buckets", "status_classes"):
        return set()
    return set(value).union(*(json_fields(item, key) for key, item in value.items()))


@pytest.mark.parametrize("field", sorted(json_fields(json.loads(render_json(full_report())))))
def test_every_json_field_is_in_the_documented_document(field):
    assert f'"{field}":' in PAGE.read_text(), f"docs/proxy_reverse.md omits {field}"
