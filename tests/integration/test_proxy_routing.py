"""Which requests the reverse proxy takes: entries in file order, Match rules, per-site
switches and per-site entries. Anything no entry matches is left to the static files."""

from __future__ import annotations

import pytest

from proxy_support import assert_settled, entry, get, start_proxy
from support import section, site


@pytest.fixture(scope="module")
def routes(module_monkey, module_upstreams, tmp_path_factory):
    base = tmp_path_factory.mktemp("routing")
    main, off, own = base / "main", base / "off", base / "own"
    for root in (main, off, own):
        root.mkdir()
        (root / "page.txt").write_text(f"static page of {root.name}\n")
    a, b, c = (module_upstreams(name) for name in "abc")
    proxy = start_proxy(
        module_monkey,
        entry("^/shop/v1/", a),
        entry("^/shop/", b),
        entry("^/shop/v1/special", c),
        entry(r"\.JPG$", c),
        entry("middle", a),
        sites={
            "default": site("127.0.0.1 localhost", main),
            "off": site("off.test", off, section("PROXY_REVERSE", "Enabled Off")),
            "own": site("own.test", own, entry("^/own/", c)),
        },
    )
    return proxy, (a, b, c)


@pytest.fixture
def proxy(routes):
    proxy, upstreams = routes
    for upstream in upstreams:
        upstream.reset()
    yield proxy
    assert_settled(proxy.port)


def served_by(port: int, target: str, host: str = "localhost") -> str:
    response = get(port, target, host=host)
    assert response.status == 200, (target, response)
    return response.header("X-Upstream")


def untouched(routes) -> bool:
    return all(upstream.requests == 0 for upstream in routes[1])


def test_unmatched_requests_go_to_the_static_files(proxy, routes):
    page = get(proxy.port, "/page.txt")
    assert page.status == 200 and page.body == b"static page of main\n"
    assert page.header("X-Upstream") is None
    assert get(proxy.port, "/nothing/here").status == 404
    assert get(proxy.port, "/shopping").status == 404
    assert untouched(routes)


def test_entries_are_tried_in_file_order_and_the_first_match_wins(proxy, routes):
    assert served_by(proxy.port, "/shop/v1/items") == "a"
    assert served_by(proxy.port, "/shop/v2/items") == "b"
    # The third entry is more specific, but the first one matches before it.
    assert served_by(proxy.port, "/shop/v1/special") == "a"
    assert routes[1][0].last().target == "/shop/v1/special"


def test_match_is_case_insensitive_and_unanchored(proxy):
    assert served_by(proxy.port, "/photos/cat.jpg") == "c"
    assert served_by(proxy.port, "/PHOTOS/CAT.JPG") == "c"
    assert served_by(proxy.port, "/a/b/Middle/c?q=1") == "a"
    assert served_by(proxy.port, "/SHOP/V2/") == "b"


def test_a_site_with_the_proxy_off_is_never_proxied(proxy, routes):
    assert get(proxy.port, "/shop/v1/items", host="off.test").status == 404
    assert get(proxy.port, "/photo.jpg", host="off.test").status == 404
    page = get(proxy.port, "/page.txt", host="off.test")
    assert page.status == 200 and page.body == b"static page of off\n"
    assert untouched(routes)


def test_a_site_with_its_own_entries_uses_them_instead_of_the_global_ones(proxy, routes):
    assert served_by(proxy.port, "/own/thing", host="own.test") == "c"
    # The global entries do not apply to this site: these fall through to its files.
    assert get(proxy.port, "/shop/v1/items", host="own.test").status == 404
    assert get(proxy.port, "/page.txt", host="own.test").body == b"static page of own\n"
    a, b, c = routes[1]
    assert (a.requests, b.requests, c.requests) == (0, 0, 1)
