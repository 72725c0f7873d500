"""HTTPS upstreams (``https://`` in ServerList) against the real server and real TLS
upstreams with trustme certificates: requests and bodies proxied, one TLS connection
kept alive for many requests, sessions resumed on new connections, SNI, verification
failures (502, logged, failed over), UpstreamVerify Off and its warning, a stalled
handshake, X-Forwarded-Proto from the client's side (and the cache keeping the schemes
apart), health checks and WebSocket over TLS on either side; configuration mistakes stop
the start at their line."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from proxy_support import (
    STATUS_URL, check_fails, entry, half_close_upgraded, proxy_conf, proxy_stats, start_proxy,
)
from rawhttp import Client
from support import free_port, open_fds, section, wait_for
from tls_support import Certificates, TlsClient
from upstreams import chunked, collect_then_answer, large, payload, read_websocket_frame, \
    websocket_accept, websocket_echo, websocket_frame

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
TEXT, CLOSE = 0x1, 0x8
LARGE = 3 * 1024 * 1024


class MuteListener:
    """Accepts connections and never says a word: a TLS handshake to it stalls."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(sock)

    def close(self) -> None:
        self.listener.close()
        for sock in self.accepted:
            sock.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    certs = Certificates(tmp_path_factory.mktemp("private-ca"))
    certs.issue("upstream", "localhost", "127.0.0.1")
    certs.issue("misnamed", "other.test")
    certs.issue("proxy", "localhost")
    return certs


@pytest.fixture(scope="module")
def rogue(tmp_path_factory):
    """A CA the proxy is not told about."""
    rogue = Certificates(tmp_path_factory.mktemp("rogue-ca"))
    rogue.issue("upstream", "localhost", "127.0.0.1")
    return rogue


@pytest.fixture(scope="module")
def mute():
    mute = MuteListener()
    yield mute
    mute.close()


def proto_for_ten_minutes(exchange) -> bool:
    """The scheme the proxy says the client used, cacheable for ten minutes."""
    return exchange.respond(200, exchange.request.header("X-Forwarded-Proto").encode(),
                            [("Cache-Control", "max-age=600")])


@pytest.fixture(scope="module")
def setup(module_monkey, module_upstreams, certs, rogue):
    good = lambda: certs.server_context("upstream")  # noqa: E731
    untrusted = lambda: rogue.server_context("upstream")  # noqa: E731
    ups = {
        "secure": module_upstreams("secure", tls=good()),
        "by-ip": module_upstreams("by-ip", tls=good()),
        "sni": module_upstreams("sni", tls=good()),
        "reused": module_upstreams("reused", tls=good()),
        "chunky": module_upstreams("chunky", chunked([b"one", b"two", b"three"]), tls=good()),
        "large": module_upstreams("large", large(LARGE), tls=good()),
        "unpooled": module_upstreams("unpooled", tls=good()),
        "system": module_upstreams("system", tls=good()),
        "untrusted": module_upstreams("untrusted", tls=untrusted()),
        "misnamed": module_upstreams("misnamed", tls=certs.server_context("misnamed")),
        "named": module_upstreams("named", tls=certs.server_context("misnamed")),
        "named-by-ip": module_upstreams("named-by-ip", tls=certs.server_context("misnamed")),
        "bad-first": module_upstreams("bad-first", tls=untrusted()),
        "good-second": module_upstreams("good-second", tls=good()),
        "insecure": module_upstreams("insecure", tls=untrusted()),
        "ws": module_upstreams("ws", websocket_echo, tls=good()),
        "ws-plain": module_upstreams("ws-plain", websocket_echo),
        "collect": module_upstreams("collect", collect_then_answer, tls=good()),
        "checked": module_upstreams("checked", tls=good()),
        "checked-bad": module_upstreams("checked-bad", tls=untrusted()),
        "scheme": module_upstreams("scheme", proto_for_ten_minutes),
    }
    ca = {"UpstreamCAFile": certs.ca_file()}

    def https(name: str, host: str = "localhost") -> str:
        return f"https://{host}:{ups[name].port}"

    entries = [
        entry("^/secure/", https("secure"), **ca, Name="secure"),
        entry("^/by-ip/", https("by-ip", "127.0.0.1"), **ca),
        entry("^/sni/", https("sni"), **ca),
        entry("^/reused/", https("reused"), **ca),
        entry("^/chunky/", https("chunky"), **ca),
        entry("^/large/", https("large"), **ca),
        entry("^/unpooled/", https("unpooled"), **ca, KeepAliveConnections=0),
        entry("^/system/", https("system")),
        entry("^/untrusted/", https("untrusted"), **ca),
        entry("^/misnamed/", https("misnamed"), **ca),
        entry("^/named/", https("named"), **ca, UpstreamServerName="other.test"),
        entry("^/named-by-ip/", https("named-by-ip", "127.0.0.1"), **ca,
              UpstreamServerName="Other.Test"),
        entry("^/failover/", https("bad-first"), https("good-second"), **ca,
              LoadBalancer="First-Alive"),
        entry("^/insecure/", https("insecure"), UpstreamVerify="Off", Name="insecure"),
        entry("^/ws/", https("ws"), **ca),
        entry("^/ws-plain/", ups["ws-plain"]),
        entry("^/collect/", https("collect"), **ca),
        entry("^/checked/", https("checked"), **ca, HealthCheck="/health",
              HealthCheckInterval=0.2),
        entry("^/checked-bad/", https("checked-bad"), **ca, HealthCheck="/health",
              HealthCheckInterval=0.2, HealthCheckFall=2),
        entry("^/scheme/", ups["scheme"], Cache="On"),
    ]
    tls_port = free_port()
    proxy = module_monkey(
        server=[f"Listen 127.0.0.1:{tls_port} tls", "MaxRequestSize 1048576"],
        plugins=["tls", "proxy_reverse"],
        plugin_confs={
            "tls": section("TLS", f"CertificateFile {certs.root / 'proxy.crt'}",
                           f"RSAKeyFile {certs.root / 'proxy.key'}"),
            "proxy_reverse": proxy_conf(*entries),
        })
    proxy.tls_port = tls_port
    return proxy, ups


def https_client(proxy, certs) -> TlsClient:
    return TlsClient(proxy.tls_port, certs.client_context())


def stats_of(port: int, upstream) -> dict:
    return next(row for row in proxy_stats(port)
                if row["upstream"].endswith(f":{upstream.port}"))


# -- requests -----------------------------------------------------------------------------
def test_get_post_and_chunked_bodies_reach_an_https_upstream(proxy, ups):
    secure = ups["secure"]
    with Client(proxy.port) as client:
        response = client.request("GET", "/secure/a?b=c")
        assert (response.status, response.body) == (200, b"secure")
        assert response.header("X-Upstream") == "secure"
        response = client.request("POST", "/secure/form", headers=[("Content-Length", "5")],
                                  body=b"hello")
        assert response.status == 200
        assert (secure.last().method, secure.last().body) == ("POST", b"hello")
        body = payload(512 * 1024)
        response = client.request("PUT", "/secure/upload", headers=[
            ("Transfer-Encoding", "chunked")],
            body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        assert response.status == 200
        assert secure.last().chunked and secure.last().body == body
        response = client.request("GET", "/chunky/x")
        assert (response.status, response.body) == (200, b"onetwothree")
        response = client.request("GET", "/large/x")
        assert response.status == 200 and response.body == payload(LARGE)
    assert secure.last().target == "/secure/upload"
    assert secure.handshakes == 1 and secure.handshake_failures == 0


def test_requests_on_many_client_connections_share_one_tls_connection(proxy, ups):
    reused = ups["reused"]
    for _ in range(20):
        with Client(proxy.port) as client:
            assert client.request("GET", "/reused/x").status == 200
    assert (reused.requests, reused.connections, reused.handshakes) == (20, 1, 1)


def test_new_connections_resume_the_last_tls_session(proxy, ups):
    unpooled = ups["unpooled"]
    with Client(proxy.port) as client:
        for _ in range(5):
            assert client.request("GET", "/unpooled/x").status == 200
    assert wait_for(lambda: unpooled.handshakes == 5)
    assert unpooled.connections == 5
    assert unpooled.resumed == 4  # every connection after the first


def test_sni_is_the_name_in_server_list_and_host_is_the_clients(proxy, ups):
    with Client(proxy.port) as client:
        assert client.request("GET", "/sni/x", host="www.example.test").status == 200
        assert client.request("GET", "/by-ip/x").status == 200
    assert ups["sni"].server_names == ["localhost"]
    assert ups["sni"].last().header("Host") == "www.example.test"
    # An IP address is not sent as SNI; the certificate is checked for the address.
    assert ups["by-ip"].server_names == [None]


def test_upstream_server_name_is_sent_as_sni_and_checked_in_the_certificate(proxy, ups):
    # Their certificate is for other.test only: the name in ServerList would fail.
    with Client(proxy.port) as client:
        assert client.request("GET", "/named/x").status == 200
        assert client.request("GET", "/named-by-ip/x", host="www.example.test").status == 200
    assert ups["named"].server_names == ["other.test"]
    assert ups["named-by-ip"].server_names == ["other.test"]
    # The Host header is not the TLS name's business.
    assert ups["named-by-ip"].last().header("Host") == "www.example.test"


# -- verification -------------------------------------------------------------------------
@pytest.mark.parametrize("path, name, reason", [
    ("/untrusted/", "untrusted", "certificate verify failed: unable to get local issuer "
                                 "certificate"),
    ("/misnamed/", "misnamed", "certificate verify failed: Hostname mismatch, certificate "
                               "is not valid for 'localhost'"),
    # Without UpstreamCAFile the system's store is used, which knows no private CA.
    ("/system/", "system", "certificate verify failed: unable to get local issuer "
                           "certificate"),
])
def test_a_certificate_that_fails_verification_is_a_502_with_the_reason_logged(
        proxy, ups, path, name, reason):
    upstream = ups[name]
    with Client(proxy.port) as client:
        response = client.request("GET", path + "x")
    assert response.status == 502
    assert wait_for(lambda: upstream.handshake_failures == 1) and upstream.requests == 0
    line = (f"upstream https://localhost:{upstream.port} (entry "
            f"{entry_label(proxy, path)}) failed for GET {path}x: TLS handshake: {reason}; "
            "no server left")
    assert wait_for(lambda: line in proxy.log()), proxy.log()[-3000:]
    row = stats_of(proxy.port, upstream)
    assert row["last_error"] == f"TLS handshake: {reason}"


def entry_label(proxy, path: str) -> str:
    """The label of the entry matching ``path`` (file:line, its Match line being the next)."""
    conf = proxy.confdir / "plugins" / "proxy_reverse" / "proxy_reverse.conf"
    lines = conf.read_text().splitlines()
    match = next(number for number, text in enumerate(lines, 1)
                 if text.strip() == f"Match ^{path}")
    return f"plugins/proxy_reverse/proxy_reverse.conf:{match - 1}"


def test_a_verification_failure_fails_over_to_the_next_server(proxy, ups):
    with Client(proxy.port) as client:
        response = client.request("GET", "/failover/x")
    assert (response.status, response.body) == (200, b"good-second")
    assert wait_for(lambda: ups["bad-first"].handshake_failures == 1)
    assert ups["bad-first"].requests == 0
    bad = stats_of(proxy.port, ups["bad-first"])
    assert bad["failures"] == 1
    assert bad["last_error"].startswith("TLS handshake: certificate verify failed")
    assert "trying the next server" in proxy.log()


def test_upstream_verify_off_accepts_any_certificate_and_warns_at_start(proxy, ups):
    insecure = ups["insecure"]
    assert (f"[WARNING] [pid {proxy.pid}] entry insecure: UpstreamVerify Off: the "
            f"certificates of https://localhost:{insecure.port} are not verified") in proxy.log()
    with Client(proxy.port) as client:
        response = client.request("GET", "/insecure/x")
    assert (response.status, response.body) == (200, b"insecure")
    assert insecure.server_names == ["localhost"]


def test_a_handshake_that_stalls_is_a_504_at_the_connect_timeout_leaking_nothing(
        start_monkey, certs, mute):
    # A server of its own: no health check or pooled connection moves its descriptors.
    proxy = start_proxy(start_monkey, entry(
        "^/stall/", f"https://localhost:{mute.port}", UpstreamCAFile=certs.ca_file(),
        ConnectTimeout=1))
    worker = proxy.worker_pids()[0]
    before = open_fds(worker)
    for attempt in range(1, 4):
        started = time.monotonic()
        with Client(proxy.port, timeout=10) as client:
            response = client.request("GET", "/stall/x")
        elapsed = time.monotonic() - started
        assert response.status == 504
        assert 0.9 < elapsed < 3, elapsed               # ConnectTimeout 1
        assert len(mute.accepted) >= attempt            # the TCP connect went through
        # (At most 1 below: ``before`` may count a client connection on its way out; a
        # leak of one per attempt would show after the third.)
        assert wait_for(lambda: open_fds(worker) <= before), (open_fds(worker), before)
    assert proxy.log().count("TLS handshake timed out; no server left") == 3


# -- headers ------------------------------------------------------------------------------
def test_x_forwarded_proto_says_how_the_client_came(proxy, ups, certs):
    secure = ups["secure"]
    with https_client(proxy, certs) as client:
        assert client.request("GET", "/secure/x", headers=[
            ("X-Forwarded-Proto", "gopher")]).status == 200
    assert secure.last().header_all("X-Forwarded-Proto") == ["https"]
    with Client(proxy.port) as client:
        assert client.request("GET", "/secure/x").status == 200
    assert secure.last().header_all("X-Forwarded-Proto") == ["http"]


def test_the_cache_keeps_the_schemes_apart_and_invalidates_both(proxy, ups, certs):
    """An answer that depends on the scheme (as a redirect to https does) is stored per
    scheme, as nginx's $scheme in its key; an unsafe request and a PURGE remove both."""
    def get(client) -> tuple[bytes, str]:
        answer = client.request("GET", "/scheme/page")
        return answer.body, answer.header("Cache-Status")
    with Client(proxy.port) as client:
        assert get(client)[0] == b"http"
    with https_client(proxy, certs) as client:
        assert get(client)[0] == b"https"
        body, status = get(client)
        assert body == b"https" and "hit" in status
    with Client(proxy.port) as client:
        body, status = get(client)
        assert body == b"http" and "hit" in status
    assert ups["scheme"].requests == 2
    with https_client(proxy, certs) as client:
        assert client.request("POST", "/scheme/page", body=b"x",
                              headers=[("Content-Length", "1")]).status == 200
    with Client(proxy.port) as client:
        body, status = get(client)
        assert body == b"http" and "hit" not in status
    assert ups["scheme"].requests == 4
    # A PURGE names the resource: sent over http, it removes the https copy too.
    with https_client(proxy, certs) as client:
        assert get(client)[0] == b"https"
    with Client(proxy.port) as client:
        purged = client.request("PURGE", "/scheme/page")
    assert purged.status == 200 and b"2 response(s) removed" in purged.body
    with https_client(proxy, certs) as client:
        body, status = get(client)
        assert body == b"https" and "hit" not in status
    assert ups["scheme"].requests == 6


# -- health checks ------------------------------------------------------------------------
def test_health_checks_reach_https_servers_and_fail_on_their_certificates(proxy, ups):
    def check(name: str) -> dict:
        return stats_of(proxy.port, ups[name])["health_check"]
    assert wait_for(lambda: check("checked")["state"] == "up", timeout=10), check("checked")
    assert check("checked")["last_result"] == "passed (200)"
    assert wait_for(lambda: check("checked-bad")["state"] == "down", timeout=10)
    assert check("checked-bad")["last_result"] == "TLS handshake: certificate verify failed"
    assert wait_for(lambda: ups["checked"].requests >= 1 and ups["checked"].server_names)
    health = ups["checked"].last()
    assert (health.method, health.target) == ("GET", "/health")
    assert set(ups["checked"].server_names) == {"localhost"}
    assert ups["checked-bad"].requests == 0


# -- WebSocket ----------------------------------------------------------------------------
def masked(opcode: int, data: bytes) -> bytes:
    return websocket_frame(opcode, data, os.urandom(4))


@pytest.mark.parametrize("client_tls, path", [
    (True, "/ws-plain/"),    # a TLS client, a plain upstream
    (False, "/ws/"),         # a plain client, a TLS upstream
    (True, "/ws/"),          # TLS on both sides
])
def test_websocket_tunnels_over_tls_on_either_side(proxy, ups, certs, client_tls, path):
    client = https_client(proxy, certs) if client_tls else Client(proxy.port)
    with client:
        client.send((f"GET {path}chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        response = client.read_head()
        assert response.status == 101, response
        assert response.header("Sec-WebSocket-Accept") == websocket_accept(KEY)
        for message in (b"hello", b"x" * 60000):
            client.send(masked(TEXT, message))
            assert read_websocket_frame(client._take) == (TEXT, message)
        client.send(masked(CLOSE, b"\x03\xe8"))
        assert read_websocket_frame(client._take) == (CLOSE, b"\x03\xe8")
        assert client.is_closed(timeout=10)      # the upstream's end reached the client
    assert wait_for(lambda: sum(row["active"] for row in proxy_stats(proxy.port)) == 0)


def test_an_end_from_the_client_closes_a_tunnel_to_a_tls_upstream_bytes_delivered(
        proxy, ups):
    collect = ups["collect"]
    with Client(proxy.port) as client:
        half_close_upgraded(client)
        # A TLS side is not half-closed: the tunnel ends, after the bytes reached it.
        assert client.read_to_close() == b""
    assert collect.wait_until(lambda up: up.collected)
    assert collect.collected == [b"first, second"]
    assert wait_for(lambda: sum(row["active"] for row in proxy_stats(proxy.port)) == 0)


# -- configuration mistakes ---------------------------------------------------------------
def test_a_missing_ca_file_stops_the_start_at_its_line(tmp_path):
    check_fails(tmp_path, section("PROXY_ENTRY", "Match ^/", "ServerList https://localhost",
                                  "UpstreamCAFile missing-ca.pem"),
                "UpstreamCAFile", "cannot read the CA file",
                str(tmp_path / "conf" / "plugins" / "proxy_reverse" / "missing-ca.pem"),
                "No such file or directory")


@pytest.mark.parametrize("name", ["api.internal:443", "[::1]:443"])
def test_an_upstream_server_name_with_a_port_stops_the_start_at_its_line(tmp_path, name):
    check_fails(tmp_path, section("PROXY_ENTRY", "Match ^/", "ServerList https://10.0.0.9",
                                  f"UpstreamServerName {name}"),
                "UpstreamServerName", f"UpstreamServerName {name} has a port")


@pytest.mark.parametrize("server, message", [
    ("https://localhost/api", "a server is written without a path, query or user"),
    ("ftp://localhost:21", "unknown scheme 'ftp://'"),
])
def test_a_server_url_that_is_not_a_server_stops_the_start_at_its_line(
        tmp_path, server, message):
    check_fails(tmp_path, section("PROXY_ENTRY", "Match ^/", f"ServerList {server}"),
                "ServerList", message, "host:port, http://host[:port] or https://host[:port]")


def test_the_statistics_name_https_servers_by_their_url(proxy, ups):
    with Client(proxy.port) as client:
        page = json.loads(client.request("GET", STATUS_URL + ".json").body)
    names = {row["upstream"] for found in page["entries"] for row in found["upstreams"]}
    assert f"https://localhost:{ups['secure'].port}" in names
    assert f"https://127.0.0.1:{ups['by-ip'].port}" in names
    assert f"127.0.0.1:{ups['ws-plain'].port}" in names
