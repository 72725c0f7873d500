"""The dirlisting plugin in a real server: listings, escaping, limits, themes."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from urllib.parse import unquote

import pytest

from rawhttp import Client
from support import section, site, write_confdir

ROW = re.compile(r'<a href="([^"]*)" title="[^"]*">([^<]*)</a></td><td class="time">([^<]*)'
                 r'</td><td class="size">([^<]*)</td>')
THEME = {
    "header": "<h1>%_HTML_TITLE_%</h1>[%_theme_path_%]\n<ul>\n",
    "entry": "<li>%_target_name_%|%_target_url_%|%_target_size_%</li>\n",
    "footer": "</ul>%_listing_note_%\n",
}


def get(port: int, target: str, host: str = "localhost", method: str = "GET"):
    with Client(port) as client:
        return client.request(method, target, host=host)


def rows(body: bytes) -> list[tuple[str, str, str, str]]:
    return ROW.findall(body.decode())


@pytest.fixture(scope="module")
def server(module_monkey, tmp_path_factory):
    base = tmp_path_factory.mktemp("dirlisting")
    root = base / "htdocs"
    files = root / "files"
    (files / "Sub dir").mkdir(parents=True)
    (files / "alpha").mkdir()
    (files / "b.txt").write_bytes(b"x" * 1536)
    (files / "A.txt").write_text("a")
    (files / '<b>&"q\'.txt').write_text("tricky")
    (files / "100%.txt").write_text("percent")
    (files / ".hidden").write_text("secret")
    os.symlink("/etc", files / "link")
    (root / "withindex").mkdir()
    (root / "withindex" / "index.html").write_text("the index\n")
    many = root / "many"
    many.mkdir()
    for number in range(9):
        (many / f"f{number}.txt").write_text("")
    themes = base / "conf" / "plugins" / "dirlisting" / "themes" / "plain"
    themes.mkdir(parents=True)
    for name, text in THEME.items():
        (themes / f"{name}.theme").write_text(text)
    other = base / "other"
    (other / "d").mkdir(parents=True)
    closed = base / "closed"
    (closed / "d").mkdir(parents=True)
    return module_monkey(
        plugins=["dirlisting"], root=base,
        plugin_confs={"dirlisting": "[DIRLISTING]\n    MaxEntries 6\n"},
        sites={
            "default": site("127.0.0.1 localhost", root),
            "other": site("other.test", other, section("DIRLISTING", "Theme plain")),
            "closed": site("closed.test", closed, section("DIRLISTING", "Enabled Off")),
        },
    )


def test_a_directory_is_listed_sorted_with_sizes_and_dates(server):
    response = get(server.port, "/files/")
    assert response.status == 200
    assert response.header("Content-Type") == "text/html; charset=utf-8"
    body = response.body.decode()
    assert "<title>Index of /files/</title>" in body
    found = rows(response.body)
    names = [html.unescape(name) for _, name, _, _ in found]
    assert names == ["../", "alpha/", "Sub dir/", "100%.txt", "<b>&\"q'.txt", "A.txt", "b.txt"]
    by_name = {html.unescape(name): (href, when, size) for href, name, when, size in found}
    assert by_name["Sub dir/"][0] == "Sub%20dir/"
    assert by_name["Sub dir/"][2] == "-"
    assert re.fullmatch(r"\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d", by_name["A.txt"][1])
    assert by_name["A.txt"][2] == "1"
    assert by_name["b.txt"][2] == "1.5K"
    # Names are escaped in the page, and quoted in links that lead to the file.
    assert "<b>&" not in body and "&lt;b&gt;&amp;&quot;q&#x27;.txt" in body
    for name, content in (("<b>&\"q'.txt", b"tricky"), ("100%.txt", b"percent")):
        href = html.unescape(by_name[name][0])
        assert unquote(href) == name
        assert get(server.port, "/files/" + href).body == content


def test_hidden_names_links_and_the_cap(server):
    names = [name for _, name, _, _ in rows(get(server.port, "/files/").body)]
    assert ".hidden" not in names and "link/" not in names  # SymLink Off
    many = get(server.port, "/many/")
    assert len(rows(many.body)) == 1 + 6  # ../ and MaxEntries
    assert "Only the first 6 entries are listed." in many.body.decode()
    assert "Only the first" not in get(server.port, "/files/").body.decode()


def test_what_is_left_to_the_static_handler(server):
    assert get(server.port, "/withindex/").body == b"the index\n"
    redirect = get(server.port, "/files")
    assert redirect.status == 301 and redirect.header("Location").endswith("/files/")
    assert get(server.port, "/files/link/").status == 403  # a symbolic link, SymLink Off
    assert get(server.port, "/nowhere/").status == 404
    assert get(server.port, "/files/../../").status in (403, 200)
    assert get(server.port, "/files/%2e%2e/%2e%2e/").status == 403
    with Client(server.port) as client:
        assert client.request("POST", "/files/", body=b"",
                              headers=[("Content-Length", "0")]).status == 405


def test_head_gets_the_headers_only(server):
    response = get(server.port, "/files/", method="HEAD")
    assert response.status == 200 and int(response.header("Content-Length")) > 100


def test_a_theme_of_monkey_style_files(server):
    response = get(server.port, "/", host="other.test")
    assert response.body.decode() == "<h1>/</h1>[]\n<ul>\n<li>d/|d/|-</li>\n</ul>\n"


def test_a_site_can_turn_listings_off(server):
    response = get(server.port, "/d/", host="closed.test")
    assert response.status == 403 and b"Directory listing is not allowed" in response.body


@pytest.mark.parametrize("theme_text, plugin_conf, where, what", [
    ("<p>%_target_nmae_%</p>\n", "[DIRLISTING]\n    Theme bad\n", "entry.theme:1:",
     "unknown tag %_target_nmae_%"),
    (None, "[DIRLISTING]\n    Theme missing\n", "dirlisting.conf:2:", "cannot read"),
    (None, "[DIRLISTING]\n    MaxEntries 0\n", "dirlisting.conf:2:", "out of range"),
])
def test_configuration_mistakes(tmp_path, docroot, theme_text, plugin_conf, where, what):
    conf = write_confdir(tmp_path, ["Listen 127.0.0.1:1"], {"default": site("localhost", docroot)},
                         ["dirlisting"], {"dirlisting": plugin_conf})
    if theme_text is not None:
        theme = conf / "plugins" / "dirlisting" / "themes" / "bad"
        theme.mkdir(parents=True)
        for name in ("header", "footer"):
            (theme / f"{name}.theme").write_text("x")
        (theme / "entry.theme").write_text(theme_text)
    result = subprocess.run([sys.executable, "-m", "monkey_py", "check", "-c", str(conf)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert where in result.stderr and what in result.stderr, result.stderr
