"""Headers across the proxy: hop-by-hop headers stop at it in both directions, it adds
X-Forwarded-* and Via, keeps or replaces Host, and passes Upgrade only for a real upgrade."""

from __future__ import annotations

import re

import pytest

from proxy_support import entry, start_proxy
from rawhttp import Client
from upstreams import Exchange

REQUEST_HOP_BY_HOP = [
    ("Connection", "keep-alive, X-Secret"), ("X-Secret", "for the next hop only"),
    ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Trailer", "X-Checksum"),
    ("Proxy-Authorization", "Basic cHJveHk6cGFzcw=="), ("Proxy-Connection", "keep-alive"),
]
RESPONSE_HOP_BY_HOP = [
    ("Connection", "X-Internal"), ("X-Internal", "upstream secret"),
    ("Keep-Alive", "timeout=5, max=100"), ("Trailer", "X-Checksum"),
    ("Proxy-Authenticate", "Basic realm=upstream"), ("Upgrade", "h2c"),
]



class ViaPattern:
    """The proxy's Via entry: ``1.1 monkey_py`` and its instance token."""

    own = re.compile(r"1\.1 monkey_py-[0-9a-f]+")

    def fullmatch(self, value: str, previous: str = "") -> bool:
        return value.startswith(previous) and bool(self.own.fullmatch(value[len(previous):]))


VIA = ViaPattern()


def hop_by_hop_answer(exchange: Exchange) -> bool:
    """An answer carrying hop-by-hop headers and a Via of its own."""
    return exchange.respond(200, b"ok", [*RESPONSE_HOP_BY_HOP, ("Via", "1.1 backend-cache"),
                                         ("X-Kept", "yes")])


@pytest.fixture(scope="module")
def setup(module_monkey, module_upstreams):
    plain = module_upstreams("plain")
    hop = module_upstreams("hop", hop_by_hop_answer)
    six = module_upstreams("six", host="::1")
    proxy = start_proxy(
        module_monkey,
        entry("^/plain/", plain),
        entry("^/own-host/", plain, PreserveHost="Off"),
        entry("^/unforwarded/", plain, ForwardedHeaders="Off"),
        entry("^/hop/", hop),
        entry("^/six/", six, PreserveHost="Off"),
    )
    return proxy, plain, six


@pytest.fixture
def plain(setup):
    return setup[1]


def forward(port: int, target: str, headers, host: str = "www.example.test"):
    with Client(port) as client:
        response = client.request("GET", target, headers=headers, host=host)
    assert response.status == 200, response
    return response


def test_hop_by_hop_request_headers_stop_at_the_proxy(proxy, plain):
    forward(proxy.port, "/plain/x", [*REQUEST_HOP_BY_HOP, ("X-Kept", "yes")])
    received = plain.last()
    assert received.header("X-Kept") == "yes"
    dropped = {name.lower() for name, _ in REQUEST_HOP_BY_HOP}
    assert not dropped & received.names(), received.headers


def test_hop_by_hop_response_headers_stop_at_the_proxy(proxy):
    response = forward(proxy.port, "/hop/x", [])
    assert response.header("X-Kept") == "yes" and response.body == b"ok"
    for name, _ in RESPONSE_HOP_BY_HOP:
        assert response.header(name) is None, name
    assert VIA.fullmatch(response.header("Via"), "1.1 backend-cache, ")


def test_forwarded_headers_are_added_and_appended(proxy, plain):
    forward(proxy.port, "/plain/x", [("X-Forwarded-For", "203.0.113.7"),
                                     ("Via", "1.0 corporate-proxy")])
    received = plain.last()
    assert received.header_all("X-Forwarded-For") == ["203.0.113.7, 127.0.0.1"]
    assert received.header("X-Forwarded-Proto") == "http"
    assert received.header("X-Forwarded-Host") == "www.example.test"
    assert VIA.fullmatch(received.header("Via"), "1.0 corporate-proxy, ")


def test_naming_the_forwarded_headers_in_connection_does_not_remove_them(proxy, plain):
    forward(proxy.port, "/plain/x", [
        ("Connection", "X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, Via"),
        ("X-Forwarded-For", "10.0.0.1"),
    ])
    received = plain.last()
    # The client's own value was hop-by-hop, so it goes; the proxy's values stay.
    assert received.header_all("X-Forwarded-For") == ["127.0.0.1"]
    assert received.header("X-Forwarded-Proto") == "http"
    assert received.header("X-Forwarded-Host") == "www.example.test"
    assert VIA.fullmatch(received.header("Via"))


def test_forwarded_headers_off_adds_none(proxy, plain):
    forward(proxy.port, "/unforwarded/x", [("X-Forwarded-For", "203.0.113.7")])
    received = plain.last()
    assert received.header_all("X-Forwarded-For") == ["203.0.113.7"]
    assert received.header("X-Forwarded-Proto") is None
    assert received.header("X-Forwarded-Host") is None


def test_host_is_preserved_by_default(proxy, plain):
    forward(proxy.port, "/plain/x", [])
    assert plain.last().header_all("Host") == ["www.example.test"]


def test_preserve_host_off_sends_the_upstream_address(proxy, plain):
    forward(proxy.port, "/own-host/x", [])
    assert plain.last().header_all("Host") == [plain.address]


def test_preserve_host_off_brackets_an_ipv6_upstream(proxy, setup):
    six = setup[2]
    response = forward(proxy.port, "/six/x", [])
    assert response.header("X-Upstream") == "six"
    assert six.last().header_all("Host") == [f"[::1]:{six.port}"]


def test_upgrade_without_connection_upgrade_is_not_passed(proxy, plain):
    with Client(proxy.port) as client:
        response = client.request("GET", "/plain/x", headers=[("Upgrade", "websocket")])
        assert response.status == 200 and response.header("Upgrade") is None
        assert client.request("GET", "/plain/y").status == 200
    first = plain.received[0]
    assert first.header("Upgrade") is None and first.header("Connection") is None
