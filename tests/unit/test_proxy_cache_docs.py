"""docs/proxy_cache.md covers every cache key of the proxy and every cache metric."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monkey_py_plugins.proxy_reverse import settings
from monkey_py_plugins.proxy_reverse.cache.figures import CacheStats
from monkey_py_plugins.proxy_reverse.stats import ProxyStats
from monkey_py_plugins.proxy_reverse.status.prometheus import render_prometheus
from monkey_py_plugins.proxy_reverse.status.report import EntryStatus, StatusReport

PAGE = Path(__file__).resolve().parents[2] / "docs" / "proxy_cache.md"


def cache_keys() -> list[str]:
    names = {key.name for key in settings._defaults_keys() + settings._entry_keys()}
    return sorted(name for name in names if name.startswith("Cache"))


def cache_metrics() -> list[str]:
    cache = CacheStats(["e:1"], workers=1, kind="memory", max_bytes=1024)
    stats = ProxyStats([("e:1", "h:1", False)], workers=1)
    report = StatusReport("/s", 0.0, 1, [EntryStatus("e:1", ["^/"], "Naive", stats.snapshot(),
                                                     cache.entries()[0])], cache.store())
    names = set()
    for family in text_string_to_metric_families(render_prometheus(report).decode()):
        if family.name.startswith("monkey_proxy_cache"):
            names.add(family.name + ("_total" if family.type == "counter" else ""))
    return sorted(names)


def test_the_lists_are_found():
    assert {"Cache", "CacheStore", "CacheLockTimeout"} <= set(cache_keys())
    assert "monkey_proxy_cache_responses_total" in cache_metrics()


@pytest.mark.parametrize("key", cache_keys())
def test_every_cache_key_has_a_row_with_its_default(key):
    rows = re.findall(rf"^\| `{key}` \|.*$", PAGE.read_text(), re.M)
    assert rows, f"docs/proxy_cache.md has no table row for {key}"
    assert rows[0].count("|") >= 6, f"the row of {key} lacks a column"


@pytest.mark.parametrize("metric", cache_metrics())
def test_every_cache_metric_is_documented(metric):
    assert f"`{metric}`" in PAGE.read_text(), f"docs/proxy_cache.md omits {metric}"


def test_the_site_switch_and_the_reference_link_are_documented():
    assert "`[PROXY_REVERSE] Cache On`" in PAGE.parent.joinpath("proxy_reverse.md").read_text()
    assert "(proxy_cache.md)" in PAGE.parent.joinpath("proxy_reverse.md").read_text()
