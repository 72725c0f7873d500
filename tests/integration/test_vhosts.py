"""Virtual hosts: the Host header picks the site, the first site answers unknown hosts."""

from __future__ import annotations

import http.client

import pytest

from rawhttp import Client
from support import site

DEFAULT_PAGE = b"default site\n"
SECOND_PAGE = b"second site\n"


@pytest.fixture(scope="module")
def server(module_monkey, tmp_path_factory):
    base = tmp_path_factory.mktemp("vhosts")
    roots = {}
    for name, page in (("default", DEFAULT_PAGE), ("second", SECOND_PAGE), ("moved", b"")):
        root = roots[name] = base / name
        root.mkdir()
        (root / "page.txt").write_bytes(page)
    (roots["default"] / "only-default.txt").write_bytes(b"only here\n")
    return module_monkey(sites={
        "default": site("localhost 127.0.0.1", roots["default"]),
        "second": site("second.test www.second.test", roots["second"]),
        "moved": site("moved.test", roots["moved"], "    Redirect http://elsewhere.test/new/\n"),
    })


def page(port: int, host: str | None, target: str = "/page.txt", version: str = "HTTP/1.1"):
    with Client(port) as client:
        return client.request("GET", target, host=host, version=version)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "unknown.test", "LOCALHOST",
                                  "[::1]:8080", "localhost:2001", "second.test.evil"])
def test_default_site_answers_unknown_hosts(server, host):
    response = page(server.port, host)
    assert (response.status, response.body) == (200, DEFAULT_PAGE)


def test_default_site_answers_http10_without_host(server):
    response = page(server.port, None, version="HTTP/1.0")
    assert (response.status, response.body) == (200, DEFAULT_PAGE)


@pytest.mark.parametrize("host", ["second.test", "www.second.test", "SECOND.Test",
                                  "second.test:8080", "www.second.test:1"])
def test_second_site_answers_its_server_names(server, host):
    response = page(server.port, host)
    assert (response.status, response.body) == (200, SECOND_PAGE)


def test_sites_do_not_share_files(server):
    assert page(server.port, "localhost", "/only-default.txt").status == 200
    assert page(server.port, "second.test", "/only-default.txt").status == 404


def test_one_connection_may_visit_several_sites(server):
    with Client(server.port) as client:
        bodies = [client.request("GET", "/page.txt", host=host).body
                  for host in ("second.test", "localhost", "www.second.test", "other.test")]
    assert bodies == [SECOND_PAGE, DEFAULT_PAGE, SECOND_PAGE, DEFAULT_PAGE]


def test_absolute_form_authority_picks_the_site(server):
    with Client(server.port) as client:
        response = client.request("GET", "http://second.test/page.txt", host="localhost")
    assert (response.status, response.body) == (200, SECOND_PAGE)


def test_http_client_library_sends_host_with_port(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/page.txt", headers={"Host": f"second.test:{server.port}"})
        response = conn.getresponse()
        assert response.status == 200 and response.read() == SECOND_PAGE
    finally:
        conn.close()


@pytest.mark.parametrize("target, location", [
    ("/", "http://elsewhere.test/new/"),
    ("/page.txt", "http://elsewhere.test/new/page.txt"),
    ("/a/b?x=1&y=2", "http://elsewhere.test/new/a/b?x=1&y=2"),
])
def test_redirect_site_sends_every_request_elsewhere(server, target, location):
    with Client(server.port) as client:
        response = client.request("GET", target, host="moved.test")
        after = client.request("GET", "/page.txt", host="second.test")
    assert response.status == 301
    assert response.header("Location") == location
    assert after.body == SECOND_PAGE


def test_redirect_applies_to_every_method(server):
    with Client(server.port) as client:
        response = client.request("HEAD", "/page.txt", host="moved.test")
    assert response.status == 301
    assert response.header("Location") == "http://elsewhere.test/new/page.txt"
