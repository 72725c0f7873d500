"""HTTPS listeners (``Listen PORT tls`` and the tls plugin) against the real server: static
files over TLS with keep-alive, SNI choosing a site's own certificate, plain HTTP on the
TLS port, stalled handshakes, the HTTP-to-HTTPS redirect, reload with a renewed
certificate, and the configuration mistakes that stop the start."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import warnings

import pytest

from support import free_port, open_fds, raw_request, section, site, wait_for, write_confdir
from tls_support import Certificates, https_get, peer_names, tls_connect

LARGE = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    certs = Certificates(tmp_path_factory.mktemp("certs"))
    certs.issue("server", "localhost", "127.0.0.1", intermediate=True)
    certs.issue("shop", "shop.test")
    return certs


def tls_conf(certs, name: str = "server", chain: bool = True) -> str:
    lines = [f"CertificateFile {certs.root / f'{name}.crt'}",
             f"RSAKeyFile {certs.root / f'{name}.key'}"]
    if chain:
        lines.append(f"CertificateChainFile {certs.root / f'{name}.chain'}")
    return section("TLS", *lines)


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def served(module_monkey, certs, tmp_path_factory):
    """A server with a plain and a TLS listener: the default site (the server's
    certificate) and shop.test with its own certificate and the redirect to HTTPS."""
    base = tmp_path_factory.mktemp("tls")
    home, shop = base / "home", base / "shop"
    home.mkdir()
    shop.mkdir()
    (home / "index.html").write_text("<h1>home</h1>\n")
    (shop / "index.html").write_text("<h1>shop</h1>\n")
    (home / "large.bin").write_bytes(os.urandom(LARGE))
    tls_port = free_port()
    server = module_monkey(
        server=[f"Listen 127.0.0.1:{tls_port} tls", "Timeout 2"],
        sites={"default": site("localhost 127.0.0.1", home),
               "shop": site("shop.test", shop, section(
                   "TLS", f"CertificateFile {certs.root / 'shop.crt'}",
                   f"RSAKeyFile {certs.root / 'shop.key'}", "RedirectHTTP On"))},
        plugins=["tls"], plugin_confs={"tls": tls_conf(certs)}, root=base)
    server.tls_port = tls_port
    server.home = home
    return server


def test_https_static_with_keep_alive_alpn_and_modern_tls(served, certs):
    with tls_connect(served.tls_port, certs.client_context()) as sock:
        assert sock.selected_alpn_protocol() is None  # the client offered none
        assert sock.version() == "TLSv1.3"
        for _ in range(3):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            head, body = read_response(sock)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert body == b"<h1>home</h1>\n"
    context = certs.client_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with tls_connect(served.tls_port, context) as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"
        assert sock.version() == "TLSv1.2"


def test_tls_below_1_2_is_refused(served, certs):
    context = certs.client_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is, that's the point
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        tls_connect(served.tls_port, context).close()
    # The server still serves.
    assert https_get(served.tls_port, certs.client_context())[0] == 200


def read_response(sock) -> tuple[bytes, bytes]:
    """One response with a Content-Length body from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    assert len(body) == length
    return head, body


def test_sni_chooses_the_site_certificate_and_unknown_names_get_the_default(served, certs):
    context = certs.client_context()
    with tls_connect(served.tls_port, context, "shop.test") as sock:
        assert peer_names(sock) == {"shop.test"}
        sock.sendall(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        assert read_response(sock)[1] == b"<h1>shop</h1>\n"
    with tls_connect(served.tls_port, context, "localhost") as sock:
        assert "localhost" in peer_names(sock)
    unchecked = certs.client_context()
    unchecked.check_hostname = False
    for name in ("unknown.test", None):  # another name, and no SNI at all
        with tls_connect(served.tls_port, unchecked, name) as sock:
            assert "localhost" in peer_names(sock)


def test_a_large_file_goes_out_in_bounded_chunks_as_the_client_reads(served, certs):
    worker = served.worker_pids()[0]
    expected = hashlib.sha256((served.home / "large.bin").read_bytes()).hexdigest()
    before = rss_kib(worker)
    with tls_connect(served.tls_port, certs.client_context()) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET /large.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        time.sleep(0.5)  # the client does not read: the server must wait, not buffer
        grown = rss_kib(worker) - before
        assert grown < 2048, f"the worker grew by {grown} KiB for an unread 8 MiB file"
        head, body = read_response(sock)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert hashlib.sha256(body).hexdigest() == expected


def test_plain_http_on_the_tls_port_gets_a_clear_400(served):
    answer = raw_request(served.tls_port, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"The plain HTTP request was sent to HTTPS port." in answer
    assert b"Connection: Close\r\n" in answer  # and raw_request saw the close


def test_stalled_handshakes_are_dropped_at_timeout_without_leaking(served):
    worker = served.worker_pids()[0]
    baseline = open_fds(worker)
    socks = [socket.create_connection(("127.0.0.1", served.tls_port)) for _ in range(10)]
    started = time.monotonic()
    for index, sock in enumerate(socks):
        if index % 2:
            sock.sendall(b"\x16\x03\x01\x02\x00\x01")  # a ClientHello that never ends
    for sock in socks:
        sock.settimeout(10)
        try:
            assert sock.recv(1024) == b""
        except ConnectionResetError:
            pass
        sock.close()
    elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 6, elapsed  # Timeout 2
    assert wait_for(lambda: open_fds(worker) <= baseline)


def test_redirect_http_sends_plain_requests_of_the_site_to_https(served, certs):
    port = served.port
    answer = raw_request(port, b"GET /a/b?c=1 HTTP/1.1\r\nHost: shop.test:%d\r\n"
                               b"Connection: close\r\n\r\n" % port)
    assert answer.startswith(b"HTTP/1.1 301 ")
    assert b"\r\nLocation: https://shop.test:%d/a/b?c=1\r\n" % served.tls_port in answer
    answer = raw_request(port, b"POST /form HTTP/1.1\r\nHost: shop.test\r\n"
                               b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 308 ")
    # Over HTTPS the site answers; the default site is not redirected.
    assert https_get(served.tls_port, certs.client_context(), host="shop.test")[2] == \
        b"<h1>shop</h1>\n"
    answer = raw_request(port, b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK")


def test_reload_serves_a_renewed_certificate_without_dropping_a_transfer(
        start_monkey, tmp_path):
    old, new = Certificates(tmp_path / "old"), Certificates(tmp_path / "new")
    old.issue("server", "localhost")
    live = Certificates(tmp_path / "live")
    for suffix in ("crt", "key"):
        (live.root / f"server.{suffix}").write_bytes((old.root / f"server.{suffix}").read_bytes())
    docroot = tmp_path / "htdocs"
    docroot.mkdir()
    (docroot / "large.bin").write_bytes(os.urandom(LARGE))
    tls_port = free_port()
    server = start_monkey(server=[f"Listen 127.0.0.1:{tls_port} tls"],
                          sites={"default": site("localhost", docroot)}, plugins=["tls"],
                          plugin_confs={"tls": tls_conf(live, chain=False)})
    with tls_connect(tls_port, old.client_context()) as transfer:
        transfer.sendall(b"GET /large.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        first = transfer.recv(65536)
        new.issue("server", "localhost")
        for suffix in ("crt", "key"):
            (live.root / f"server.{suffix}").write_bytes(
                (new.root / f"server.{suffix}").read_bytes())
        server.signal(signal.SIGHUP)
        assert wait_for(lambda: "configuration reloaded" in server.log(), timeout=10)

        def renewed() -> bool:
            try:
                tls_connect(tls_port, new.client_context()).close()
                return True
            except ssl.SSLCertVerificationError:
                return False
        assert wait_for(renewed, timeout=10)
        rest = read_rest(transfer, first)
    assert rest == (docroot / "large.bin").read_bytes()


def read_rest(sock, data: bytes) -> bytes:
    """The body of the response that begins with ``data``, read to its end."""
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    parts = [body]
    received = len(body)
    while received < length:
        chunk = sock.recv(1 << 20)
        assert chunk, f"closed after {received} of {length} bytes"
        parts.append(chunk)
        received += len(chunk)
    return b"".join(parts)


# -- configuration mistakes -------------------------------------------------------------
def monkey(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monkey_py", *args],
                          capture_output=True, text=True, timeout=20)


def confdir_with(tmp_path, tls: str | None, plugins=("tls",), listen_tls=True, site_tls=""):
    docroot = tmp_path / "htdocs"
    docroot.mkdir(parents=True, exist_ok=True)
    server = [f"Listen 127.0.0.1:{free_port()}", "Workers 1"]
    if listen_tls:
        server.append(f"Listen 127.0.0.1:{free_port()} tls")
    return write_confdir(tmp_path, server, {"default": site("localhost", docroot, site_tls)},
                         list(plugins), {"tls": tls} if tls is not None else None)


def assert_fails_at(confdir, path, key: str, *message: str) -> None:
    result = monkey("check", "-c", str(confdir))
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    line = next(number for number, text in enumerate(path.read_text().splitlines(), 1)
                if text.strip().startswith(key))
    assert result.stderr.startswith(f"monkey: {path}:{line}: "), result.stderr
    for part in message:
        assert part in result.stderr, result.stderr


def test_a_key_that_does_not_match_its_certificate_stops_the_start(tmp_path, certs):
    conf = confdir_with(tmp_path, section(
        "TLS", f"CertificateFile {certs.root / 'server.crt'}",
        f"RSAKeyFile {certs.root / 'shop.key'}"))
    path = conf / "plugins" / "tls" / "tls.conf"
    assert_fails_at(conf, path, "RSAKeyFile", "is not the key of")
    # The server itself refuses to start, with the same message.
    result = monkey("-c", str(conf))
    assert result.returncode == 2 and "is not the key of" in result.stderr


def test_a_file_that_is_not_a_certificate_stops_the_start(tmp_path, certs):
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate\n")
    conf = confdir_with(tmp_path, section(
        "TLS", f"CertificateFile {garbage}", f"RSAKeyFile {certs.root / 'server.key'}"))
    assert_fails_at(conf, conf / "plugins" / "tls" / "tls.conf", "CertificateFile",
                    "is not a PEM certificate")


def test_an_unreadable_key_stops_the_start(tmp_path, certs):
    unreadable = tmp_path / "keys"   # a directory: no user can read it as a file
    unreadable.mkdir()
    conf = confdir_with(tmp_path, section(
        "TLS", f"CertificateFile {certs.root / 'server.crt'}", f"RSAKeyFile {unreadable}"))
    assert_fails_at(conf, conf / "plugins" / "tls" / "tls.conf", "RSAKeyFile",
                    "cannot read", "Is a directory")


def test_a_missing_file_stops_the_start(tmp_path, certs):
    conf = confdir_with(tmp_path, section(
        "TLS", f"CertificateFile {tmp_path / 'nowhere.crt'}",
        f"RSAKeyFile {certs.root / 'server.key'}"))
    assert_fails_at(conf, conf / "plugins" / "tls" / "tls.conf", "CertificateFile",
                    "nowhere.crt")


def test_a_site_certificate_is_checked_at_its_line(tmp_path, certs):
    conf = confdir_with(tmp_path, tls_conf(certs), site_tls=section(
        "TLS", f"CertificateFile {certs.root / 'shop.crt'}",
        f"RSAKeyFile {certs.root / 'server.key'}"))
    assert_fails_at(conf, conf / "sites" / "default", "RSAKeyFile", "is not the key of")


def test_a_tls_listener_needs_the_plugin_and_a_certificate(tmp_path, certs):
    conf = confdir_with(tmp_path / "a", None, plugins=())
    result = monkey("check", "-c", str(conf))
    assert result.returncode == 2
    assert "add 'Load tls' to plugins.load" in result.stderr
    conf = confdir_with(tmp_path / "b", None)
    result = monkey("check", "-c", str(conf))
    assert result.returncode == 2
    assert "needs a certificate: set CertificateFile and RSAKeyFile" in result.stderr


def test_redirect_http_needs_a_tls_listener(tmp_path, certs):
    conf = confdir_with(tmp_path, None, listen_tls=False,
                        site_tls=section("TLS", "RedirectHTTP On"))
    assert_fails_at(conf, conf / "sites" / "default", "RedirectHTTP",
                    "needs a TLS listener", "Listen 443 tls")


def test_listener_flags_other_than_tls_are_refused(tmp_path):
    conf = confdir_with(tmp_path, None, plugins=(), listen_tls=False)
    path = conf / "monkey.conf"
    path.write_text(path.read_text() + "    Listen 127.0.0.1:1 h2\n")
    assert_fails_at(conf, path, "Listen 127.0.0.1:1 h2", "the only listener flag is 'tls'")
