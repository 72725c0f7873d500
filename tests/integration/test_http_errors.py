"""Error statuses over real sockets: malformed requests, limits, methods, framing attacks."""

from __future__ import annotations

import pytest

from rawhttp import Client, build_request
from support import section, site

MAX_SIZE = 1024  # MaxRequestSize 1 (kilobytes)
FILE = b"static file\n"
CUSTOM_404 = b"<html><body>custom not found page</body></html>\n"
CUSTOM_403 = b"<html><body>custom forbidden page</body></html>\n"


@pytest.fixture(scope="module")
def server(module_monkey, tmp_path_factory):
    base = tmp_path_factory.mktemp("errors")
    plain = base / "plain"
    plain.mkdir()
    (plain / "file.txt").write_bytes(FILE)
    (plain / "empty").mkdir()
    custom = base / "custom"
    custom.mkdir()
    (custom / "file.txt").write_bytes(FILE)
    (custom / "empty").mkdir()
    (custom / "errors").mkdir()
    (custom / "errors" / "404.html").write_bytes(CUSTOM_404)
    (custom / "errors" / "403.html").write_bytes(CUSTOM_403)
    return module_monkey(
        server=["MaxRequestSize 1"],
        sites={
            "default": site("localhost", plain),
            "custom": site(
                "custom.test", custom,
                section("ERROR_PAGES", "404 errors/404.html", "403 errors/403.html"),
            ),
        },
    )


def exchange(port: int, data: bytes, method: str = "GET"):
    """Send ``data`` on a new connection and read one response."""
    with Client(port) as client:
        client.send(data)
        return client.read_response(method)


def assert_short_error_page(response, status: int) -> None:
    assert response.status == status
    assert response.header("Content-Type").startswith("text/html")
    assert int(response.header("Content-Length")) == len(response.body)
    assert str(status).encode() in response.body
    assert len(response.body) < 1024


def assert_closing_error(port: int, data: bytes, status: int) -> None:
    """``data`` gets a ``status`` page with ``Connection: close``, then the server closes."""
    with Client(port) as client:
        client.send(data)
        response = client.read_response()
        assert_short_error_page(response, status)
        assert response.header("Connection") == "Close"
        assert client.read_to_close() == b""


# -- 400 -----------------------------------------------------------------------------------
@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/1.1 extra\r\nHost: localhost\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: localhost\r\nNo colon here\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: localhost\r\nBad\x01Name: x\r\n\r\n",
], ids=["no-spaces", "no-target", "extra-field", "header-without-colon", "control-in-name"])
def test_malformed_request_is_400(server, data):
    assert_closing_error(server.port, data, 400)


def test_missing_host_in_http11_is_400(server):
    assert_closing_error(server.port, build_request(host=None), 400)


def test_missing_host_in_http10_is_allowed(server):
    response = exchange(server.port, build_request("GET", "/file.txt", host=None,
                                                   version="HTTP/1.0"))
    assert response.status == 200 and response.body == FILE


@pytest.mark.parametrize("host", ["bad host", "bad/host", "a@b", "exa\"mple"])
def test_invalid_host_is_400(server, host):
    assert_closing_error(server.port, build_request(host=host), 400)


def test_repeated_host_is_400(server):
    data = build_request(headers=[("Host", "localhost")])
    assert_closing_error(server.port, data, 400)


# -- 403, 404, 405 -------------------------------------------------------------------------
def test_directory_without_index_is_403(server):
    response = exchange(server.port, build_request("GET", "/empty/"))
    assert_short_error_page(response, 403)
    assert response.header("Connection") is None


def test_missing_file_is_404_and_keeps_the_connection(server):
    with Client(server.port) as client:
        response = client.request("GET", "/no/such/file.txt")
        assert_short_error_page(response, 404)
        assert response.header("Connection") is None
        after = client.request("GET", "/file.txt")
        assert after.status == 200 and after.body == FILE


def test_error_pages_section_replaces_the_page(server):
    with Client(server.port) as client:
        missing = client.request("GET", "/no/such/file.txt", host="custom.test")
        forbidden = client.request("GET", "/empty/", host="custom.test")
        found = client.request("GET", "/file.txt", host="custom.test")
    assert missing.status == 404 and missing.body == CUSTOM_404
    assert missing.header("Content-Type").startswith("text/html")
    assert forbidden.status == 403 and forbidden.body == CUSTOM_403
    assert found.status == 200 and found.body == FILE


def test_error_page_of_one_site_is_not_used_by_another(server):
    response = exchange(server.port, build_request("GET", "/missing"))
    assert response.status == 404
    assert response.body != CUSTOM_404


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_on_static_files_are_405(server, method):
    with Client(server.port) as client:
        client.send(build_request(method, "/file.txt",
                                  headers=[("Content-Length", "3")], body=b"a=1"))
        response = client.read_response(method)
        assert_short_error_page(response, 405)
        assert response.header("Allow") == "GET, HEAD, POST"
        after = client.request("GET", "/file.txt")
        assert after.status == 200 and after.body == FILE


def test_a_post_to_a_static_file_reads_the_body_and_answers_the_file(server):
    """As Monkey: the body is read and discarded, the file is the answer."""
    with Client(server.port) as client:
        client.send(build_request("POST", "/file.txt", headers=[("Content-Length", "3")]))
        client.send(b"a=1")
        response = client.read_response("POST")
        assert (response.status, response.body) == (200, FILE)
        assert response.header("Connection") is None
        after = client.request("GET", "/file.txt")
        assert after.status == 200 and after.body == FILE


# -- 411, 413, 414 -----------------------------------------------------------------
def test_post_without_length_is_411(server):
    assert_closing_error(server.port, build_request("POST", "/file.txt"), 411)


def test_chunked_post_is_not_411(server):
    data = build_request("POST", "/file.txt", headers=[("Transfer-Encoding", "chunked")],
                         body=b"3\r\nabc\r\n0\r\n\r\n")
    response = exchange(server.port, data)
    assert (response.status, response.body) == (200, FILE)


def test_body_over_max_request_size_is_413(server):
    data = build_request("POST", "/file.txt",
                         headers=[("Content-Length", str(MAX_SIZE + 1))])
    assert_closing_error(server.port, data, 413)


def test_chunked_body_over_max_request_size_is_413(server):
    chunk = b"x" * 512
    body = b"".join(b"200\r\n" + chunk + b"\r\n" for _ in range(3)) + b"0\r\n\r\n"
    data = build_request("POST", "/file.txt", headers=[("Transfer-Encoding", "chunked")],
                         body=body)
    assert_closing_error(server.port, data, 413)


def test_body_within_max_request_size_is_read(server):
    data = build_request("PUT", "/file.txt", headers=[("Content-Length", str(MAX_SIZE))],
                         body=b"x" * MAX_SIZE)
    response = exchange(server.port, data, "PUT")
    assert response.status == 405


def test_url_over_max_request_size_is_414(server):
    assert_closing_error(server.port, build_request("GET", "/" + "a" * MAX_SIZE), 414)


def test_headers_over_max_request_size_is_413(server):
    headers = [(f"X-Filler-{i}", "y" * 60) for i in range(20)]
    assert_closing_error(server.port, build_request(headers=headers), 413)


def test_one_huge_header_is_413(server):
    assert_closing_error(server.port, build_request(headers=[("X-Big", "z" * 2 * MAX_SIZE)]), 413)


# -- 501, 505 ------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["FOO", "BREW"])
def test_unknown_method_is_501(server, method):
    assert_closing_error(server.port, build_request(method, "/file.txt"), 501)


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/1.2", "HTTP/3.0"])
def test_unsupported_version_is_505(server, version):
    assert_closing_error(server.port, build_request(version=version), 505)


# -- framing attacks: 400 and close ------------------------------------------------------
SMUGGLED = b"GET /file.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"


@pytest.mark.parametrize("headers", [
    [("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
    [("Transfer-Encoding", "chunked"), ("Content-Length", "5")],
    [("Content-Length", "abc")],
    [("Content-Length", "-5")],
    [("Content-Length", "5, 5")],
    [("Content-Length", "+5")],
    [("Content-Length", "5"), ("Content-Length", "5")],
    [("Content-Length", "5"), ("Content-Length", "50")],
], ids=["cl-then-te", "te-then-cl", "cl-not-a-number", "cl-negative", "cl-list", "cl-plus",
        "cl-repeated-equal", "cl-repeated-different"])
def test_ambiguous_body_length_is_400_and_closes(server, headers):
    data = build_request("POST", "/file.txt", headers=headers, body=b"0\r\n\r\n" + SMUGGLED)
    with Client(server.port) as client:
        client.send(data)
        response = client.read_response("POST")
        assert_short_error_page(response, 400)
        assert response.header("Connection") == "Close"
        # The request hidden in the body is never answered.
        assert client.read_to_close() == b""


def test_obsolete_line_folding_is_400(server):
    data = (b"GET /file.txt HTTP/1.1\r\nHost: localhost\r\nX-Folded: one\r\n two\r\n\r\n")
    assert_closing_error(server.port, data, 400)


@pytest.mark.parametrize("line", [b"Host : localhost", b"Host\t: localhost"])
def test_whitespace_before_colon_is_400(server, line):
    data = b"GET /file.txt HTTP/1.1\r\n" + line + b"\r\n\r\n"
    assert_closing_error(server.port, data, 400)


def test_whitespace_before_colon_of_content_length_is_400(server):
    data = (b"POST /file.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length : 5\r\n\r\n"
            + b"hello" + SMUGGLED)
    with Client(server.port) as client:
        client.send(data)
        response = client.read_response("POST")
        assert response.status == 400
        assert client.read_to_close() == b""


@pytest.mark.parametrize("bad, status", [
    (b"GARBAGE\x01\r\n\r\n", 400),
    (b"BAD REQUEST LINE\r\n\r\n", 505),        # three words, no HTTP version: as Monkey
    (b"BREW /file.txt HTTP/1.1\r\n\r\n", 501),
])
def test_error_after_good_pipelined_requests_answers_the_good_ones_first(server, bad, status):
    """The requests before the garbage are answered as usual (kept alive); the garbage
    gets its own answer, and nothing after it (RFC 9112 §9.6)."""
    with Client(server.port) as client:
        client.send(build_request("GET", "/file.txt") * 2 + bad + build_request("GET", "/"))
        for _ in range(2):
            good = client.read_response()
            assert (good.status, good.body) == (200, FILE)
            assert good.header("Connection") is None
        error = client.read_response()
        assert error.status == status and error.header("Connection") == "Close"
        assert client.read_to_close() == b""


def test_binary_garbage_is_400(server):
    assert_closing_error(server.port, b"\x00\x01\x02\xff\r\n\r\n", 400)


# -- [ERROR_PAGES] of the default site for requests that could not be parsed ---------------
CUSTOM_PAGES = {status: f"<p>custom page {status}</p>\n".encode()
                for status in (400, 405, 413, 501, 505)}


@pytest.fixture(scope="module")
def custom_default(module_monkey, tmp_path_factory):
    root = tmp_path_factory.mktemp("custom_default") / "htdocs"
    root.mkdir()
    (root / "file.txt").write_bytes(FILE)
    lines = []
    for status, body in CUSTOM_PAGES.items():
        (root / f"{status}.html").write_bytes(body)
        lines.append(f"{status} {status}.html")
    return module_monkey(
        server=["MaxRequestSize 1"],
        sites={"default": site("localhost", root, section("ERROR_PAGES", *lines))},
    )


@pytest.mark.parametrize("data, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (build_request(host=None), 400),
    (build_request("FOO"), 501),
    (build_request(version="HTTP/2.0"), 505),
    (build_request("POST", headers=[("Content-Length", str(MAX_SIZE + 1))]), 413),
    (build_request("POST", headers=[("Content-Length", "5"), ("Transfer-Encoding", "chunked")]),
     400),
])
def test_error_pages_of_the_default_site_answer_unparsed_requests(custom_default, data, status):
    with Client(custom_default.port) as client:
        client.send(data)
        response = client.read_response()
        assert response.status == status
        assert response.body == CUSTOM_PAGES[status]
        assert response.header("Content-Type").startswith("text/html")
        assert response.header("Connection") == "Close"
        assert client.read_to_close() == b""


def test_custom_405_page_keeps_the_allow_header(custom_default):
    with Client(custom_default.port) as client:
        response = client.request("DELETE", "/file.txt")
        head = client.request("HEAD", "/missing.txt")
    assert response.status == 405 and response.body == CUSTOM_PAGES[405]
    assert response.header("Allow") == "GET, HEAD, POST"
    assert head.status == 404 and head.body == b""
