"""Content-Type by extension: system tables, web additions, configured types, fallback."""

from __future__ import annotations

import pytest

from monkey_py.static.mime import WEB_TYPES, MimeTypes


@pytest.fixture(scope="module")
def builtin() -> MimeTypes:
    """Python's own table only: the same on every machine."""
    return MimeTypes("application/octet-stream", files=())


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("/srv/www/style.css", "text/css; charset=utf-8"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("module.mjs", "text/javascript; charset=utf-8"),
        ("data.json", "application/json; charset=utf-8"),
        ("code.wasm", "application/wasm"),
        ("logo.svg", "image/svg+xml"),
        ("photo.webp", "image/webp"),
        ("photo.avif", "image/avif"),
        ("font.woff", "font/woff"),
        ("font.woff2", "font/woff2"),
        ("photo.png", "image/png"),
        ("photo.jpg", "image/jpeg"),
        ("doc.pdf", "application/pdf"),
    ],
)
def test_known_types(builtin: MimeTypes, path: str, expected: str) -> None:
    assert builtin.guess(path) == expected


@pytest.mark.parametrize("path", ["INDEX.HTML", "/a/b/Index.Html", "x.hTmL"])
def test_extension_is_case_insensitive(builtin: MimeTypes, path: str) -> None:
    assert builtin.guess(path) == "text/html; charset=utf-8"


@pytest.mark.parametrize(
    "path",
    [
        "README",
        "/srv/www.example/README",
        "/srv/www/.htaccess",
        ".profile",
        "file.",
        "archive.unknownext",
        "",
        "/",
        "dir.d/",
    ],
)
def test_fallback_to_default(builtin: MimeTypes, path: str) -> None:
    assert builtin.guess(path) == "application/octet-stream"


def test_extension_of_last_component_only(builtin: MimeTypes) -> None:
    assert builtin.guess("/srv/site.html/data.json") == "application/json; charset=utf-8"
    assert builtin.guess("/srv/site.html/.hidden") == "application/octet-stream"


def test_textual_default_gets_a_charset() -> None:
    types = MimeTypes("text/plain", files=())
    assert types.default_type == "text/plain; charset=utf-8"
    assert types.guess("README") == "text/plain; charset=utf-8"


def test_type_with_parameters_is_kept_as_is() -> None:
    types = MimeTypes(
        "text/plain; charset=iso-8859-1", extra={"md": "text/markdown; variant=GFM"}, files=()
    )
    assert types.guess("README") == "text/plain; charset=iso-8859-1"
    assert types.guess("a.md") == "text/markdown; variant=GFM"


def test_application_javascript_gets_a_charset() -> None:
    types = MimeTypes(extra={".js": "application/javascript"}, files=())
    assert types.guess("a.js") == "application/javascript; charset=utf-8"


def test_system_files_are_read_and_web_types_win(tmp_path) -> None:
    table = tmp_path / "mime.types"
    table.write_text(
        "# comment\n"
        "application/x-monkey-test\tmonkeytest mkt\n"
        "application/x-wrong-js\tjs\n"
    )
    types = MimeTypes(files=[str(tmp_path / "missing.types"), str(table)])
    assert types.guess("a.monkeytest") == "application/x-monkey-test"
    assert types.guess("a.MKT") == "application/x-monkey-test"
    assert types.guess("a.js") == "text/javascript; charset=utf-8"


def test_extra_types_win_over_everything(tmp_path) -> None:
    table = tmp_path / "mime.types"
    table.write_text("application/x-from-system\tfoo\n")
    types = MimeTypes(
        "application/octet-stream",
        extra={"foo": "application/x-configured", ".JSON": "application/x-configured-json"},
        files=[str(table)],
    )
    assert types.guess("a.foo") == "application/x-configured"
    assert types.guess("a.json") == "application/x-configured-json"


def test_default_construction_reads_the_system_tables() -> None:
    types = MimeTypes()
    assert types.default_type == "application/octet-stream"
    for ext, media_type in WEB_TYPES.items():
        assert types.guess("x" + ext).split(";")[0] == media_type
