"""Request path to file path: normalisation, traversal tricks and symbolic links."""

from __future__ import annotations

import os

import pytest

from monkey_py.static.paths import Forbidden, resolve, url_to_relpath


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/", ""),
        (b"/index.html", "index.html"),
        (b"/static/css/app.css", "static/css/app.css"),
        (b"/docs/", "docs/"),
        (b"/docs", "docs"),
        (b"//etc/passwd", "etc/passwd"),
        (b"/a//b///c", "a/b/c"),
        (b"/a/./b", "a/b"),
        (b"/./", ""),
        (b"/.", ""),
        (b"/a/b/..", "a/"),
        (b"/a/b/.", "a/b/"),
        (b"/a/b/../c", "a/c"),
        (b"/a/..", ""),
        (b"/a/../", ""),
        (b"/a/.hidden", "a/.hidden"),
        (b"/a/...", "a/..."),
        (b"/a/..b/c..", "a/..b/c.."),
        (b"/index.html?x=1", "index.html"),
        (b"/index.html?x=/../../etc", "index.html"),
        (b"/index.html#frag", "index.html"),
        (b"/dir/?", "dir/"),
        (b"/a%20b.txt", "a b.txt"),
        (b"/caf%C3%A9", "caf\u00e9"),
        (b"/caf\xc3\xa9", "caf\u00e9"),
        (b"/100%25", "100%"),
        (b"/%3f.txt", "?.txt"),
        (b"/%252e%252e/x", "%2e%2e/x"),
        (b"/%252e", "%2e"),
        (b"/%252f", "%2f"),
        (b"/a/%2e/b", "a/b"),
        (b"/a/%2e%2e/b", "b"),
        (b"/a/.%2E/b", "b"),
        (b"/a/%2E./b/", "b/"),
    ],
)
def test_url_to_relpath_normalises(raw: bytes, expected: str) -> None:
    assert url_to_relpath(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"/..",
        b"/../",
        b"/../etc/passwd",
        b"/a/../../etc/passwd",
        b"/a/b/../../..",
        b"/./../x",
        b"//../x",
        b"/%2e%2e/etc/passwd",
        b"/%2E%2e/etc/passwd",
        b"/.%2e/etc/passwd",
        b"/%2e./etc/passwd",
        b"/a/%2e%2e/%2e%2e/etc/passwd",
        b"/%2E%2e%2fetc/passwd",
        b"/..%2fetc/passwd",
        b"/..%2Fetc/passwd",
        b"/a%2fb",
        b"/%2F",
        b"/..%5c..%5cetc",
        b"/a%5Cb",
        b"/..\\..\\etc\\passwd",
        b"/a\\b",
        b"/a\x00.html",
        b"/a%00.html",
        b"/a%00",
        b"/a%0d%0aSet-Cookie:x",
        b"/a%0A",
        b"/a%7f",
        b"/a\nb",
        b"/a\x7f",
        b"/%zz",
        b"/%4",
        b"/%",
        b"/a%g0",
        b"/%c0%ae%c0%ae/etc/passwd",
        b"/%c0%af",
        b"/%ff",
        b"/\xff",
        b"/%ed%a0%80",
        b"",
        b"index.html",
        b"../etc/passwd",
        b"%2fetc/passwd",
        b"http://example.com/",
        b"*",
        b"?/",
    ],
)
def test_url_to_relpath_refuses(raw: bytes) -> None:
    with pytest.raises(Forbidden):
        url_to_relpath(raw)


def test_double_encoding_is_decoded_once(tmp_path) -> None:
    rel = url_to_relpath(b"/%252e%252e/secret")
    assert rel == "%2e%2e/secret"
    assert resolve(str(tmp_path), rel, False) == os.path.join(str(tmp_path), "%2e%2e", "secret")


@pytest.fixture
def root(tmp_path):
    """A document root with a file, a subdirectory, and a secret file outside it."""
    docroot = tmp_path / "htdocs"
    (docroot / "sub").mkdir(parents=True)
    (docroot / "index.html").write_text("home")
    (docroot / "sub" / "page.html").write_text("page")
    (tmp_path / "secret.txt").write_text("secret")
    return docroot


@pytest.mark.parametrize("follow", [False, True])
def test_resolve_plain_paths(root, follow: bool) -> None:
    base = str(root)
    assert resolve(base, "", follow) == base
    assert resolve(base, "index.html", follow) == base + "/index.html"
    assert resolve(base, "sub/", follow) == base + "/sub"
    assert resolve(base, "sub/page.html", follow) == base + "/sub/page.html"
    assert resolve(base + "/", "sub/page.html", follow) == base + "/sub/page.html"


@pytest.mark.parametrize("follow", [False, True])
def test_resolve_missing_file_is_left_to_the_caller(root, follow: bool) -> None:
    path = resolve(str(root), "nope/deeper/file.html", follow)
    assert path == str(root) + "/nope/deeper/file.html"
    assert not os.path.exists(path)


def test_resolve_path_through_a_file_is_left_to_the_caller(root) -> None:
    path = resolve(str(root), "index.html/x", False)
    assert path == str(root) + "/index.html/x"


@pytest.mark.parametrize("follow", [False, True])
@pytest.mark.parametrize(
    "relpath", ["../secret.txt", "sub/../../secret.txt", "/etc/passwd", "..", "a\x00"]
)
def test_resolve_refuses_escaping_relpaths(root, relpath: str, follow: bool) -> None:
    with pytest.raises(Forbidden):
        resolve(str(root), relpath, follow)


def test_resolve_accepts_dotted_names(root) -> None:
    assert resolve(str(root), "a..b/..c", False) == str(root) + "/a..b/..c"


def test_symlink_to_outside_file(root) -> None:
    os.symlink(root.parent / "secret.txt", root / "leak.txt")
    with pytest.raises(Forbidden):
        resolve(str(root), "leak.txt", False)
    path = resolve(str(root), "leak.txt", True)
    with open(path) as f:
        assert f.read() == "secret"


def test_symlinked_directory_in_the_middle(root) -> None:
    os.symlink(root.parent, root / "up")
    with pytest.raises(Forbidden):
        resolve(str(root), "up/secret.txt", False)
    with pytest.raises(Forbidden):
        resolve(str(root), "up/", False)
    with open(resolve(str(root), "up/secret.txt", True)) as f:
        assert f.read() == "secret"


def test_symlink_inside_the_root_is_refused_too(root) -> None:
    os.symlink("page.html", root / "sub" / "alias.html")
    with pytest.raises(Forbidden):
        resolve(str(root), "sub/alias.html", False)
    assert resolve(str(root), "sub/alias.html", True) == str(root) + "/sub/alias.html"


def test_dangling_symlink_is_refused(root) -> None:
    os.symlink(root / "missing", root / "dangling")
    with pytest.raises(Forbidden):
        resolve(str(root), "dangling", False)


def test_document_root_may_itself_be_a_symlink(root, tmp_path) -> None:
    link = tmp_path / "site"
    os.symlink(root, link)
    path = resolve(str(link), "sub/page.html", False)
    assert path == str(link) + "/sub/page.html"
    with open(path) as f:
        assert f.read() == "page"


def test_end_to_end_traversal_never_reaches_outside(root) -> None:
    for raw in (b"/../secret.txt", b"/%2e%2e/secret.txt", b"/sub/..%2f..%2fsecret.txt"):
        with pytest.raises(Forbidden):
            resolve(str(root), url_to_relpath(raw), False)


def test_resolve_can_leave_the_last_component_to_an_o_nofollow_open(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "dir").mkdir()
    (root / "link").symlink_to(root / "dir")
    (root / "dir" / "last").symlink_to(tmp_path)
    assert resolve(str(root), "dir/last", False, check_last=False) == str(root / "dir" / "last")
    with pytest.raises(Forbidden):
        resolve(str(root), "link/file", False, check_last=False)
