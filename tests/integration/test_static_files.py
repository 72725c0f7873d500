"""The static file handler over real sockets: confinement, index files, MIME, validators, ranges."""

from __future__ import annotations

import http.client
import os

import pytest

from rawhttp import Client
from support import site, wait_for

SECRET = b"TOP SECRET: outside the document root\n"
INDEX = b"<h1>root index</h1>\n"
TEXT = b"plain text file\n"
DATA = bytes(i % 251 for i in range(1000))
DEFAULT_TYPE = "application/x-monkey-default"


@pytest.fixture(scope="module")
def docroot(tmp_path_factory):
    base = tmp_path_factory.mktemp("static")
    (base / "secret.txt").write_bytes(SECRET)
    root = base / "htdocs"
    root.mkdir()
    (root / "index.html").write_bytes(INDEX)
    (root / "file.txt").write_bytes(TEXT)
    (root / "data.bin").write_bytes(DATA)
    (root / "style.css").write_bytes(b"body { color: black }\n")
    (root / "data.json").write_bytes(b"{}\n")
    (root / "file.unknownext").write_bytes(b"mystery\n")
    (root / "README").write_bytes(b"no extension\n")
    (root / "sub").mkdir()
    (root / "sub" / "index.html").write_bytes(b"<h1>sub index</h1>\n")
    (root / "sub" / "page.html").write_bytes(b"<p>page</p>\n")
    (root / "alt").mkdir()
    (root / "alt" / "index.html").write_bytes(b"second choice\n")
    (root / "alt" / "default.htm").write_bytes(b"first choice\n")
    (root / "empty").mkdir()
    os.symlink(root / "file.txt", root / "link_in.txt")
    os.symlink(base / "secret.txt", root / "link_out.txt")
    os.symlink(root / "sub", root / "linkdir")
    return root


@pytest.fixture(scope="module")
def server(module_monkey, docroot):
    return module_monkey(
        server=["Indexfile default.htm index.html", f"DefaultMimeType {DEFAULT_TYPE}"],
        sites={"default": site("localhost", docroot)},
    )


@pytest.fixture(scope="module")
def permissive(module_monkey, docroot):
    """SymLink On and Resume Off, on the same files."""
    return module_monkey(
        server=["SymLink On", "Resume Off"], sites={"default": site("localhost", docroot)},
    )


def get(port: int, target: str, method: str = "GET", headers=(), host: str = "localhost"):
    with Client(port) as client:
        return client.request(method, target, headers=list(headers), host=host)


def http_get(port: int, target: str, headers: dict | None = None, method: str = "GET"):
    """A request through http.client: (response, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, target, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


# -- confinement ---------------------------------------------------------------------------
@pytest.mark.parametrize("target", [
    "/../secret.txt",
    "/sub/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/.%2e/secret.txt",
    "/sub/%2e%2e/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/sub%2f..%2f..%2fsecret.txt",
    "/..%5csecret.txt",
    "/..\\secret.txt",
    "/sub/..%2F..%2Fsecret.txt",
    "/%00../secret.txt",
    "/file.txt%00.html",
    "/%c0%ae%c0%ae/secret.txt",
    "/%",
    "/%zz",
])
def test_traversal_is_forbidden(server, target):
    response = get(server.port, target)
    assert response.status == 403
    assert b"SECRET" not in response.body


def test_traversal_on_a_kept_alive_connection_leaves_it_usable(server):
    with Client(server.port) as client:
        denied = client.request("GET", "/%2e%2e/secret.txt")
        allowed = client.request("GET", "/file.txt")
    assert denied.status == 403
    assert (allowed.status, allowed.body) == (200, TEXT)


def test_double_encoding_is_decoded_once(server):
    response = get(server.port, "/%252e%252e/secret.txt")
    assert response.status == 404
    assert b"SECRET" not in response.body


def test_dot_segments_inside_the_root_are_resolved(server):
    response = get(server.port, "/sub/../file.txt")
    assert (response.status, response.body) == (200, TEXT)
    response = get(server.port, "/./sub/./page.html")
    assert (response.status, response.body) == (200, b"<p>page</p>\n")


@pytest.mark.parametrize("target", ["/link_out.txt", "/link_in.txt", "/linkdir/page.html",
                                    "/linkdir/"])
def test_symlinks_are_forbidden_when_symlink_is_off(server, target):
    response = get(server.port, target)
    assert response.status == 403
    assert b"SECRET" not in response.body


def test_symlinks_are_followed_when_symlink_is_on(permissive):
    assert get(permissive.port, "/link_in.txt").body == TEXT
    assert get(permissive.port, "/link_out.txt").body == SECRET
    response = get(permissive.port, "/linkdir/page.html")
    assert (response.status, response.body) == (200, b"<p>page</p>\n")


@pytest.mark.parametrize("target", ["/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt"])
def test_traversal_is_forbidden_when_symlink_is_on(permissive, target):
    response = get(permissive.port, target)
    assert response.status == 403
    assert b"SECRET" not in response.body


# -- directories --------------------------------------------------------------------------
def test_root_serves_the_index_file(server):
    response, body = http_get(server.port, "/")
    assert response.status == 200 and body == INDEX
    assert response.getheader("Content-Type").startswith("text/html")


def test_directory_serves_the_first_index_file_found(server):
    assert get(server.port, "/sub/").body == b"<h1>sub index</h1>\n"
    assert get(server.port, "/alt/").body == b"first choice\n"


def test_directory_without_index_file_is_forbidden(server):
    assert get(server.port, "/empty/").status == 403


@pytest.mark.parametrize("host, target, location", [
    ("localhost", "/sub", "http://localhost/sub/"),
    ("localhost:8080", "/sub", "http://localhost:8080/sub/"),
    ("other.test", "/alt?a=1&b=2", "http://other.test/alt/?a=1&b=2"),
    ("localhost", "/sub?", "http://localhost/sub/?"),
])
def test_directory_without_slash_redirects(server, host, target, location):
    response = get(server.port, target, host=host)
    assert response.status == 301
    assert response.header("Location") == location
    assert int(response.header("Content-Length")) == len(response.body)


def test_directory_redirect_to_head_has_no_body(server):
    with Client(server.port) as client:
        head = client.request("HEAD", "/sub")
        after = client.request("GET", "/file.txt")
    assert head.status == 301 and head.header("Location") == "http://localhost/sub/"
    assert after.body == TEXT


def test_file_with_trailing_slash_is_not_found(server):
    assert get(server.port, "/file.txt/").status == 404


def test_missing_file_is_not_found(server):
    assert get(server.port, "/nothing-here.html").status == 404
    assert get(server.port, "/file.txt/deeper").status == 404


# -- MIME types ---------------------------------------------------------------------------
@pytest.mark.parametrize("target, expected", [
    ("/index.html", "text/html"),
    ("/style.css", "text/css"),
    ("/file.txt", "text/plain"),
    ("/data.json", "application/json"),
    ("/data.bin", "application/octet-stream"),
    ("/file.unknownext", DEFAULT_TYPE),
    ("/README", DEFAULT_TYPE),
])
def test_content_type_by_extension(server, target, expected):
    response, _ = http_get(server.port, target)
    assert response.status == 200
    assert response.getheader("Content-Type").split(";")[0] == expected


# -- conditional requests -----------------------------------------------------------------
@pytest.fixture(scope="module")
def validators(server):
    response, body = http_get(server.port, "/file.txt")
    assert body == TEXT
    return response.getheader("ETag"), response.getheader("Last-Modified")


def test_validators_are_sent(validators):
    etag, last_modified = validators
    assert etag.startswith('"') and etag.endswith('"')
    assert last_modified.endswith(" GMT")


@pytest.mark.parametrize("header, value, status", [
    ("If-None-Match", "{etag}", 304),
    ("If-None-Match", '"other", {etag}', 304),
    ("If-None-Match", "W/{etag}", 304),
    ("If-None-Match", "*", 304),
    ("If-None-Match", '"other"', 200),
    ("If-Modified-Since", "{last_modified}", 304),
    ("If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT", 200),
    ("If-Modified-Since", "not a date", 200),
    ("If-Match", "{etag}", 200),
    ("If-Match", "*", 200),
    ("If-Match", '"other"', 412),
    ("If-Match", "W/{etag}", 412),
    ("If-Unmodified-Since", "Sat, 01 Jan 2000 00:00:00 GMT", 412),
    ("If-Unmodified-Since", "{last_modified}", 200),
])
def test_conditional_get(server, validators, header, value, status):
    etag, last_modified = validators
    value = value.format(etag=etag, last_modified=last_modified)
    with Client(server.port) as client:
        response = client.request("GET", "/file.txt", headers=[(header, value)])
        # The next response on the connection proves the framing of this one.
        after = client.request("GET", "/file.txt")
    assert response.status == status
    if status == 304:
        assert response.body == b""
        assert response.header("ETag") == etag
        assert response.header("Last-Modified") == last_modified
    elif status == 200:
        assert response.body == TEXT
    assert after.status == 200 and after.body == TEXT


def test_if_none_match_wins_over_if_modified_since(server, validators):
    etag, last_modified = validators
    response = get(server.port, "/file.txt",
                   headers=[("If-None-Match", '"other"'), ("If-Modified-Since", last_modified)])
    assert response.status == 200 and response.body == TEXT


def test_conditional_head(server, validators):
    etag, _ = validators
    response = get(server.port, "/file.txt", method="HEAD", headers=[("If-None-Match", etag)])
    assert response.status == 304


def test_etag_changes_when_the_file_changes(server, docroot, validators):
    path = docroot / "changing.txt"
    path.write_bytes(b"one\n")
    first, _ = http_get(server.port, "/changing.txt")
    path.write_bytes(b"two two\n")
    # The open-file cache trusts what it opened for OpenFileCacheValid (1 s by default).
    answers = []

    def changed():
        answers.append(http_get(server.port, "/changing.txt",
                                headers={"If-None-Match": first.getheader("ETag")}))
        return answers[-1][0].status != 304

    assert wait_for(changed, timeout=3)
    second, body = answers[-1]
    assert second.status == 200 and body == b"two two\n"
    assert second.getheader("ETag") != first.getheader("ETag")


# -- ranges --------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, first, last", [
    ("bytes=0-9", 0, 9),
    ("bytes=990-", 990, 999),
    ("bytes=-5", 995, 999),
    ("bytes=0-0", 0, 0),
    ("bytes=500-5000", 500, 999),
    ("bytes=-5000", 0, 999),
])
def test_single_range(server, spec, first, last):
    response = get(server.port, "/data.bin", headers=[("Range", spec)])
    assert response.status == 206
    assert response.header("Content-Range") == f"bytes {first}-{last}/{len(DATA)}"
    assert response.header("Content-Length") == str(last - first + 1)
    assert response.header("Content-Type") == "application/octet-stream"
    assert response.body == DATA[first:last + 1]


def parse_byteranges(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart/byteranges body into (headers, data) parts (RFC 2046 §5.1.1)."""
    media_type, _, params = content_type.partition(";")
    assert media_type.strip() == "multipart/byteranges"
    name, _, boundary = params.strip().partition("=")
    assert name == "boundary" and boundary
    boundary = boundary.strip('"').encode()
    delimiter = b"\r\n--" + boundary
    if body.startswith(delimiter[2:]):
        body = b"\r\n" + body
    preamble, *parts = body.split(delimiter)
    assert preamble == b"", "no preamble expected before the first part"
    assert parts[-1] == b"--\r\n", "the body must end with the close delimiter"
    parsed = []
    for part in parts[:-1]:
        assert part.startswith(b"\r\n")
        head, _, data = part[2:].partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        parsed.append((headers, data))
    return parsed


def test_multiple_ranges_are_multipart(server):
    response = get(server.port, "/data.bin", headers=[("Range", "bytes=0-9,100-109,-5")])
    assert response.status == 206
    assert response.header("Content-Range") is None
    assert int(response.header("Content-Length")) == len(response.body)
    parts = parse_byteranges(response.header("Content-Type"), response.body)
    expected = [(0, 9), (100, 109), (995, 999)]
    assert len(parts) == len(expected)
    for (headers, data), (first, last) in zip(parts, expected):
        assert headers["content-type"] == "application/octet-stream"
        assert headers["content-range"] == f"bytes {first}-{last}/{len(DATA)}"
        assert data == DATA[first:last + 1]


def test_overlapping_ranges_are_merged(server):
    response = get(server.port, "/data.bin", headers=[("Range", "bytes=0-9,5-19")])
    assert response.status == 206
    assert response.header("Content-Range") == f"bytes 0-19/{len(DATA)}"
    assert response.body == DATA[:20]


def test_multipart_ranges_keep_the_connection_usable(server):
    with Client(server.port) as client:
        client.request("GET", "/data.bin", headers=[("Range", "bytes=1-2,7-8")])
        after = client.request("GET", "/file.txt")
    assert after.body == TEXT


@pytest.mark.parametrize("spec", ["bytes=1000-", "bytes=5000-6000", "bytes=1000-1001,2000-"])
def test_unsatisfiable_range_is_416(server, spec):
    response = get(server.port, "/data.bin", headers=[("Range", spec)])
    assert response.status == 416
    assert response.header("Content-Range") == f"bytes */{len(DATA)}"


@pytest.mark.parametrize("spec", ["bytes=abc", "bytes=9-1", "lines=1-2", "bytes="])
def test_invalid_range_is_ignored(server, spec):
    response = get(server.port, "/data.bin", headers=[("Range", spec)])
    assert response.status == 200 and response.body == DATA


def test_resume_on_advertises_ranges(server):
    response = get(server.port, "/data.bin")
    assert response.header("Accept-Ranges") == "bytes"
    assert response.header("Content-Length") == str(len(DATA))


def test_resume_off_sends_the_whole_file(permissive):
    response = get(permissive.port, "/data.bin", headers=[("Range", "bytes=0-9")])
    assert response.status == 200 and response.body == DATA
    assert response.header("Accept-Ranges") is None
    assert response.header("Content-Range") is None


def test_if_range(server):
    first = get(server.port, "/data.bin")
    etag, last_modified = first.header("ETag"), first.header("Last-Modified")
    cases = [
        (etag, 206),
        ('"stale"', 200),
        (f"W/{etag}", 200),
        (last_modified, 206),
        ("Sat, 01 Jan 2000 00:00:00 GMT", 200),
    ]
    for if_range, status in cases:
        response = get(server.port, "/data.bin",
                       headers=[("Range", "bytes=10-19"), ("If-Range", if_range)])
        assert response.status == status, if_range
        assert response.body == (DATA[10:20] if status == 206 else DATA)


def test_head_with_range_has_no_body(server):
    with Client(server.port) as client:
        head = client.request("HEAD", "/data.bin", headers=[("Range", "bytes=0-9")])
        after = client.request("GET", "/file.txt")
    # Range applies to GET only (RFC 9110 §14.2).
    assert head.status == 200 and head.body == b""
    assert head.header("Content-Length") == str(len(DATA))
    assert after.body == TEXT


@pytest.mark.parametrize("target", ["http://localhost/file.txt", "HTTP://localhost:80/file.txt",
                                    "http://localhost/sub/../file.txt?x=1"])
def test_absolute_form_target(server, target):
    response = get(server.port, target)
    assert (response.status, response.body) == (200, TEXT)


def test_absolute_form_target_cannot_escape_the_root(server):
    response = get(server.port, "http://localhost/../secret.txt")
    assert response.status == 403
    assert b"SECRET" not in response.body


def test_absolute_form_with_userinfo_is_400(server):
    assert get(server.port, "http://user@localhost/file.txt").status == 400
