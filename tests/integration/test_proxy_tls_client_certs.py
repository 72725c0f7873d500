"""Client certificates to HTTPS upstreams (``UpstreamCertificate``, mutual TLS), against
the real server and real TLS upstreams that require one: the certificate presented (key
in its own file or in the certificate's), kept for pooled and resumed connections and for
health checks; no certificate, or one the upstream does not trust, is a 502; mistakes in
the key stop the start at its line."""

from __future__ import annotations

import ssl

import pytest
from cryptography.hazmat.primitives import serialization

from proxy_support import check_fails, entry, proxy_conf, total_active
from rawhttp import Client
from support import section, wait_for
from tls_support import Certificates

CLIENT_NAME = "proxy.internal"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    certs = Certificates(tmp_path_factory.mktemp("private-ca"))
    certs.issue("upstream", "localhost")
    certificate, key = certs.issue("client", CLIENT_NAME)
    (certs.root / "bundle.pem").write_bytes(certificate.read_bytes() + key.read_bytes())
    return certs


@pytest.fixture(scope="module")
def strangers(tmp_path_factory):
    """Another CA, which the upstreams do not trust, and a client certificate of its own."""
    strangers = Certificates(tmp_path_factory.mktemp("other-ca"))
    strangers.issue("client", CLIENT_NAME)
    return strangers


def requiring(certs: Certificates) -> ssl.SSLContext:
    """An upstream's context that wants a client certificate from the private CA."""
    context = certs.server_context("upstream")
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(certs.ca_file())
    return context


@pytest.fixture(scope="module")
def setup(module_monkey, module_upstreams, certs, strangers):
    ups = {name: module_upstreams(name, tls=requiring(certs))
           for name in ("mutual", "bundle", "none", "stranger", "checked")}
    ups["asks-nothing"] = module_upstreams("asks-nothing", tls=certs.server_context("upstream"))
    client = f"{certs.root / 'client.crt'} {certs.root / 'client.key'}"
    ca = {"UpstreamCAFile": certs.ca_file()}

    def https(name: str) -> str:
        return f"https://localhost:{ups[name].port}"

    proxy = module_monkey(plugins=["proxy_reverse"], plugin_confs={"proxy_reverse": proxy_conf(
        entry("^/mutual/", https("mutual"), **ca, UpstreamCertificate=client),
        entry("^/bundle/", https("bundle"), **ca,
              UpstreamCertificate=certs.root / "bundle.pem"),
        entry("^/none/", https("none"), **ca),
        entry("^/stranger/", https("stranger"), **ca, UpstreamCertificate=(
            f"{strangers.root / 'client.crt'} {strangers.root / 'client.key'}")),
        entry("^/asks-nothing/", https("asks-nothing"), **ca, UpstreamCertificate=client),
        entry("^/checked/", https("checked"), **ca, UpstreamCertificate=client,
              HealthCheck="/health", HealthCheckInterval=0.2, KeepAliveConnections=0),
    )})
    return proxy, ups


def names_in(certificate: dict) -> list[str]:
    return [value for kind, value in certificate.get("subjectAltName", ()) if kind == "DNS"]


def test_the_upstream_gets_the_proxys_certificate_and_serves(proxy, ups):
    with Client(proxy.port) as client:
        for _ in range(3):
            assert client.request("GET", "/mutual/x").status == 200
            assert client.request("GET", "/bundle/x").status == 200
    for name in ("mutual", "bundle"):
        upstream = ups[name]
        assert upstream.requests == 3 and upstream.handshakes == 1, name
        assert [names_in(c) for c in upstream.client_certificates] == [[CLIENT_NAME]]


@pytest.mark.parametrize("path", ["/none/", "/stranger/"])
def test_no_certificate_or_an_untrusted_one_is_a_502_and_nothing_is_served(proxy, ups, path):
    upstream = ups[path.strip("/")]
    with Client(proxy.port) as client:
        response = client.request("GET", path + "x")
        assert response.status == 502
        assert client.request("GET", "/mutual/x").status == 200
    assert upstream.requests == 0 and upstream.handshakes == 0
    assert upstream.handshake_failures >= 1
    assert wait_for(lambda: total_active(proxy.port) == 0)


def test_a_server_that_asks_for_no_certificate_is_sent_none(proxy, ups):
    with Client(proxy.port) as client:
        assert client.request("GET", "/asks-nothing/x").status == 200
    assert ups["asks-nothing"].client_certificates == [{}]


def test_health_checks_present_the_certificate_too(proxy, ups):
    checked = ups["checked"]
    assert checked.wait_until(lambda up: up.handshakes >= 2, timeout=10)
    assert checked.handshake_failures == 0
    assert all(names_in(c) == [CLIENT_NAME] for c in checked.client_certificates)
    with Client(proxy.port) as client:
        assert client.request("GET", "/checked/x").status == 200


# -- configuration mistakes ---------------------------------------------------------------
def certificate_entry(value: str) -> str:
    return section("PROXY_ENTRY", "Match ^/", "ServerList https://localhost",
                   f"UpstreamCertificate {value}")


def test_a_missing_certificate_file_stops_the_start_at_its_line(tmp_path):
    check_fails(tmp_path, certificate_entry("missing.crt"), "UpstreamCertificate",
                "cannot read", "missing.crt", "No such file or directory")


def test_a_key_that_is_not_the_certificates_stops_the_start_at_its_line(
        tmp_path, certs, strangers):
    check_fails(tmp_path, certificate_entry(
        f"{certs.root / 'client.crt'} {strangers.root / 'client.key'}"),
        "UpstreamCertificate", f"the key {strangers.root / 'client.key'} is not the key "
        f"of the certificate {certs.root / 'client.crt'}")


def test_a_certificate_without_its_key_stops_the_start_at_its_line(tmp_path, certs):
    check_fails(tmp_path, certificate_entry(str(certs.root / "client.crt")),
                "UpstreamCertificate", str(certs.root / "client.crt"),
                "do not hold a PEM certificate and its unencrypted private key")


def test_an_encrypted_key_is_refused_at_start_not_asked_for(tmp_path, certs):
    encrypted = tmp_path / "encrypted.key"
    key = serialization.load_pem_private_key((certs.root / "client.key").read_bytes(), None)
    encrypted.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    check_fails(tmp_path, certificate_entry(f"{certs.root / 'client.crt'} {encrypted}"),
                "UpstreamCertificate", "unencrypted private key")


def test_more_than_two_files_stop_the_start_at_its_line(tmp_path):
    check_fails(tmp_path, certificate_entry("a.crt b.key c.pem"), "UpstreamCertificate",
                "takes a certificate file and, when its key is not in it, the key's file")
