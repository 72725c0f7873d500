"""The mandril plugin in a real server: refused connections (stage 10) and requests (20)."""

from __future__ import annotations

import pytest

from rawhttp import Client, build_request
from support import raw_request, section, site, wait_for


def from_address(port: int, source: str, request: bytes) -> bytes:
    """Send ``request`` from the loopback address ``source``; all bytes until close."""
    try:
        return raw_request(port, request, source=source)
    except BrokenPipeError:
        return b""  # refused before the request could be written


@pytest.fixture(scope="module")
def server(module_monkey, tmp_path_factory):
    base = tmp_path_factory.mktemp("mandril")
    root = base / "htdocs"
    for name in ("private", "imgs", "public"):
        (root / name).mkdir(parents=True)
        (root / name / "f.txt").write_text(f"{name}\n")
    other = base / "other"
    other.mkdir()
    (other / "f.txt").write_text("other\n")
    return module_monkey(
        plugins=["mandril"], root=base,
        plugin_confs={"mandril": """\
            [RULES]
                IP 127.0.0.2
                URL /private
                deny_hotlink /imgs
            """},
        sites={
            "default": site("127.0.0.1 localhost", root),
            "other": site("other.test", other, section("MANDRIL", "IP 127.0.0.3/32",
                                                        "URL secret")),
        },
    )


def test_a_refused_address_is_closed_without_an_answer(server):
    request = build_request("GET", "/public/f.txt", headers=[("Connection", "close")])
    assert from_address(server.port, "127.0.0.2", request) == b""
    assert from_address(server.port, "127.0.0.1", request).startswith(b"HTTP/1.1 200")
    assert wait_for(lambda: "refused a connection from 127.0.0.2 by rule IP 127.0.0.2" in
                    server.log())
    assert "mandril.conf:2)" in server.log()


def test_a_url_rule_answers_403_and_logs(server):
    with Client(server.port) as client:
        assert client.request("GET", "/private/f.txt").status == 403
        assert client.request("GET", "/PRIVATE/f.txt").status == 403
        # The connection is kept: a refused request is an ordinary answer.
        assert client.request("GET", "/public/f.txt").status == 200
    assert wait_for(lambda: "refused GET /private/f.txt from 127.0.0.1 by rule URL /private"
                    in server.log())


def test_hotlinking_is_refused_for_foreign_referers(server):
    with Client(server.port) as client:
        assert client.request("GET", "/imgs/f.txt").status == 200
        assert client.request("GET", "/imgs/f.txt",
                              headers=[("Referer", "http://localhost/page")]).status == 200
        assert client.request("GET", "/imgs/f.txt",
                              headers=[("Referer", "http://thief.example/")]).status == 403


def test_a_sites_own_rules_apply_to_that_site_only(server):
    request = build_request("GET", "/f.txt", host="other.test",
                            headers=[("Connection", "close")])
    assert from_address(server.port, "127.0.0.3", request).startswith(b"HTTP/1.1 403")
    assert from_address(server.port, "127.0.0.4", request).startswith(b"HTTP/1.1 200")
    with Client(server.port) as client:
        assert client.request("GET", "/secret.txt", host="other.test").status == 403
        assert client.request("GET", "/secret.txt").status == 404  # the default site


def test_mistakes_in_the_rules_stop_the_start(start_monkey, tmp_path, docroot):
    import subprocess
    import sys

    from support import write_confdir

    conf = write_confdir(tmp_path, ["Listen 127.0.0.1:1"],
                         {"default": site("localhost", docroot)}, ["mandril"],
                         {"mandril": "[RULES]\n    IP 300.1.1.1\n"})
    result = subprocess.run([sys.executable, "-m", "monkey_py", "check", "-c", str(conf)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "mandril.conf:2: IP 300.1.1.1 is not an address" in result.stderr
