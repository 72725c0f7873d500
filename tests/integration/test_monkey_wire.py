"""Monkey's answers on the wire, pinned in raw bytes: the spelling of Connection, the
directory redirect, bodies sent to static files, oversized input, request lines, Host,
lenient and strict headers, error pages, ServerSignature and UserDir."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time

import pytest

from monkey_py import __version__
from rawhttp import Client
from support import site

FILE = b"static content\n"
LIMIT_KB = 2


@pytest.fixture(scope="module")
def docroot(tmp_path_factory):
    root = tmp_path_factory.mktemp("wire")
    (root / "file.txt").write_bytes(FILE)
    (root / "dir").mkdir()
    (root / "dir" / "index.html").write_bytes(b"<p>dir</p>\n")
    return root


@pytest.fixture(scope="module")
def server(module_monkey, docroot):
    return module_monkey(server=["Timeout 1", f"MaxRequestSize {LIMIT_KB}"],
                         sites={"default": site("localhost", docroot)})


def exchange(port: int, data: bytes, method: str = "GET"):
    with Client(port) as client:
        client.send(data)
        response = client.read_response(method)
        closed = client.is_closed()
    return response, closed


def head_of(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0] + b"\r\n"


# -- Connection ------------------------------------------------------------------------
def test_closing_is_spelled_connection_close(server):
    response, closed = exchange(server.port, b"GET /file.txt HTTP/1.1\r\nHost: localhost\r\n"
                                             b"Connection: close\r\n\r\n")
    assert response.header("Connection") == "Close" and closed


def test_http_1_0_without_keep_alive_is_closed(server):
    response, closed = exchange(server.port, b"GET /file.txt HTTP/1.0\r\n\r\n")
    assert response.header("Connection") == "Close" and closed


def test_http_1_0_keep_alive_is_spelled_as_monkey_and_has_no_parameters(server):
    with Client(server.port) as client:
        client.send(b"GET /file.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        response = client.read_response()
        assert response.header("Connection") == "Keep-Alive"
        assert response.header("Keep-Alive") is None
        client.send(b"GET /file.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert client.read_response().body == FILE


def test_an_unknown_connection_value_from_http_1_0_means_close(server):
    response, closed = exchange(server.port, b"GET /file.txt HTTP/1.0\r\nConnection: foo\r\n\r\n")
    assert response.header("Connection") == "Close" and closed


def test_http_1_1_kept_alive_carries_no_connection_header(server):
    response, closed = exchange(server.port, b"GET /file.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert response.header("Connection") is None and not closed


# -- the directory redirect ----------------------------------------------------------------
def test_a_directory_without_its_slash_is_a_301_with_an_empty_body(server):
    response, _ = exchange(server.port, b"GET /dir?x=1 HTTP/1.1\r\nHost: localhost:8080\r\n\r\n")
    assert response.status == 301
    assert response.header("Location") == "http://localhost:8080/dir/?x=1"
    assert response.header("Content-Length") == "0" and response.body == b""


# -- bodies sent to static files -------------------------------------------------------------
def test_a_post_to_a_file_is_answered_with_the_file_after_its_body(server):
    response, closed = exchange(server.port, b"POST /file.txt HTTP/1.1\r\nHost: localhost\r\n"
                                             b"Content-Length: 5\r\n\r\nhello", "POST")
    assert (response.status, response.body) == (200, FILE) and not closed


def test_a_body_that_never_arrives_gets_no_answer_and_is_closed_at_timeout(server):
    with Client(server.port, timeout=10) as client:
        client.send(b"POST /file.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nab")
        started = time.monotonic()
        assert client.read_to_close() == b""
        assert 0.5 <= time.monotonic() - started <= 5


def test_other_methods_on_files_are_405_with_allow(server):
    response, _ = exchange(server.port, b"DELETE /file.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
                           "DELETE")
    assert response.status == 405 and response.header("Allow") == "GET, HEAD, POST"


# -- oversized input ------------------------------------------------------------------------
@pytest.mark.parametrize("data", [
    b"POST /file.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4096\r\n\r\n",
    b"POST /file.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    b"GET /file.txt HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * 4096 + b"\r\n\r\n",
])
def test_oversized_input_is_413_naming_the_limit(server, data):
    response, closed = exchange(server.port, data, data.split(b" ")[0].decode())
    assert response.status == 413 and closed
    assert f"MaxRequestSize ({LIMIT_KB} KB)".encode() in response.body


# -- the request line ------------------------------------------------------------------------
@pytest.mark.parametrize("line, status", [
    (b"GET /file.txt http/1.0", 505),
    (b"GET /file.txt HTTP/1.2", 505),
    (b"GET /file.txt garbage", 505),
    (b"GET /file.txt ", 505),            # an empty version after a trailing space
    (b"GET /file.txt", 400),             # HTTP/0.9 style: two words
    (b"BREW /file.txt HTTP/1.1", 501),
    (b"\x01\x02 garbage", 400),
])
def test_request_lines(server, line, status):
    response, closed = exchange(server.port, line + b"\r\nHost: localhost\r\n\r\n")
    assert response.status == status and closed


# -- Host ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("host", [b"", b"localhost:0", b"localhost:65536", b"[::1]:99999"])
def test_an_empty_host_or_a_port_out_of_range_is_400(server, host):
    response, closed = exchange(server.port, b"GET /file.txt HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert response.status == 400 and closed


def test_a_port_in_range_is_fine(server):
    response, _ = exchange(server.port, b"GET /file.txt HTTP/1.1\r\nHost: localhost:65535\r\n\r\n")
    assert response.status == 200


# -- lenient where harmless, strict where it matters ----------------------------------------
def test_content_length_with_trailing_whitespace_is_accepted(server):
    response, _ = exchange(server.port, b"POST /file.txt HTTP/1.1\r\nHost: localhost\r\n"
                                        b"Content-Length: 3 \r\n\r\nabc", "POST")
    assert response.status == 200


def test_an_empty_connection_header_is_accepted(server):
    response, _ = exchange(server.port, b"GET /file.txt HTTP/1.1\r\nHost: localhost\r\n"
                                        b"Connection:\r\n\r\n")
    assert response.status == 200


@pytest.mark.parametrize("header", [b"Upgrade:", b"Transfer-Encoding:"])
def test_an_empty_upgrade_or_transfer_encoding_is_400(server, header):
    response, closed = exchange(server.port, b"POST /file.txt HTTP/1.1\r\nHost: localhost\r\n"
                                             + header + b"\r\nContent-Length: 0\r\n\r\n", "POST")
    assert response.status == 400 and closed


# -- error pages --------------------------------------------------------------------------------
def test_error_pages_show_the_uri_escaped_and_the_signature(server):
    response, _ = exchange(server.port, b"GET /<script>x</script>?a=\"1\"&b HTTP/1.1\r\n"
                                        b"Host: localhost\r\n\r\n")
    assert response.status == 404
    assert b"<script>" not in response.body
    assert b"/&lt;script&gt;x&lt;/script&gt;?a=&quot;1&quot;&amp;b" in response.body
    assert f"Powered by Monkey/{__version__}".encode() in response.body


def test_server_signature_off_leaves_the_signature_out(start_monkey, docroot):
    server = start_monkey(server=["ServerSignature Off"],
                          sites={"default": site("localhost", docroot)})
    response, _ = exchange(server.port, b"GET /missing HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert response.status == 404 and b"Powered by" not in response.body
    assert b"/missing" in response.body


# -- UserDir -----------------------------------------------------------------------------------
@pytest.fixture
def user_home(tmp_path):
    """A user whose home holds public_html: a temporary system user, when the tests run
    as root; else the current user, with a public_html made (and removed) in its home."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        public = os.path.join(entry.pw_dir, "public_html")
        if os.path.exists(public):
            pytest.fail(f"{public} exists: the test would overwrite it")
        os.mkdir(public)
        try:
            yield entry.pw_name, public
        finally:
            shutil.rmtree(public)
        return
    home = tmp_path / "home"
    home.mkdir()
    name = f"mktest{os.getpid() % 100000}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", str(home),
                    "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        os.chmod(tmp_path, 0o755)
        public = home / "public_html"
        public.mkdir()
        yield name, str(public)
    finally:
        subprocess.run(["userdel", name], check=False)


def test_user_dir_serves_a_users_pages(start_monkey, docroot, user_home):
    name, public = user_home
    with open(os.path.join(public, "page.html"), "wb") as handle:
        handle.write(b"<p>mine</p>\n")
    server = start_monkey(server=["UserDir public_html"],
                          sites={"default": site("localhost", docroot)})
    response, _ = exchange(server.port, f"GET /~{name}/page.html HTTP/1.1\r\n"
                                        f"Host: localhost\r\n\r\n".encode())
    assert (response.status, response.body) == (200, b"<p>mine</p>\n")
    response, _ = exchange(server.port, f"GET /~{name} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    assert response.status == 301 and response.header("Location") == f"http://localhost/~{name}/"
    for target in (b"/~nosuchuser123/x", b"/~root/", b"/~Bad!Name/"):
        response, _ = exchange(server.port, b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert response.status == 404, target
    # Without UserDir, ~ is just a character of a path.
    plain = start_monkey(sites={"default": site("localhost", docroot)})
    response, _ = exchange(plain.port, f"GET /~{name}/page.html HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    assert response.status == 404
