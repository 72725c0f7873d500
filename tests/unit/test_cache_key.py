"""Primary and secondary cache keys (RFC 9111 §2, §4.1)."""

from __future__ import annotations

from monkey_py_plugins.proxy_reverse.cache.rules.key import (
    normalize_uri,
    origin,
    primary_key,
    resolve,
    secondary_key,
    vary_names,
)


def test_primary_key_from_origin_form() -> None:
    assert primary_key("http", b"example.com", b"/a/b?x=1") == b"http://example.com/a/b?x=1"


def test_primary_key_normalises_scheme_host_and_default_port() -> None:
    assert primary_key("HTTP", b"Example.COM:80", b"/p") == b"http://example.com/p"
    assert primary_key("https", b"example.com:443", b"/p") == b"https://example.com/p"
    assert primary_key("http", b"example.com:8080", b"/p") == b"http://example.com:8080/p"
    assert primary_key("http", b"[::1]:81", b"/") == b"http://[::1]:81/"


def test_path_and_query_stay_as_sent() -> None:
    assert primary_key("http", b"h", b"/A%2fB?Q=1") == b"http://h/A%2fB?Q=1"
    assert primary_key("http", b"h", b"/a") != primary_key("http", b"h", b"/a?")


def test_absolute_form_overrides_host() -> None:
    assert primary_key("http", b"other", b"http://Example.com:80") == b"http://example.com/"


def test_uncacheable_targets() -> None:
    assert primary_key("http", b"h", b"*") is None
    assert primary_key("http", b"h", b"example.com:443") is None
    assert primary_key("http", b"", b"/a") is None
    assert primary_key("http", b"h", b"ftp://h/a") is None
    assert normalize_uri(b"http://user@h/a") is None
    assert normalize_uri(b"http://h:notaport/a") is None
    assert normalize_uri("http://h\u00e9/".encode()) is None


def test_resolve_and_origin() -> None:
    base = b"http://example.com/a/b"
    assert resolve(base, b"/c") == b"http://example.com/c"
    assert resolve(base, b"d?x") == b"http://example.com/a/d?x"
    assert resolve(base, b"http://EXAMPLE.com:80/e#frag") == b"http://example.com/e"
    assert resolve(base, b"mailto:x@y") is None
    assert origin(b"http://example.com:81/a?b") == b"http://example.com:81"
    assert origin(b"http://example.com?b") == b"http://example.com"


def test_vary_names() -> None:
    assert vary_names([]) == ()
    assert vary_names([(b"Vary", b"Accept-Encoding, accept-language"),
                       (b"vary", b"ACCEPT-ENCODING")]) == (b"accept-encoding", b"accept-language")
    assert vary_names([(b"Vary", b"Accept, *")]) is None


def test_secondary_key_empty_without_vary() -> None:
    assert secondary_key((), [(b"accept", b"x")]) == b""


def test_secondary_key_normalises_values() -> None:
    one = secondary_key((b"accept-encoding",), [(b"accept-encoding", b"gzip,  br")])
    two = secondary_key((b"accept-encoding",), [(b"accept-encoding", b"gzip ,br")])
    three = secondary_key((b"accept-encoding",), [(b"accept-encoding", b"gzip"),
                                                  (b"accept-encoding", b"br")])
    assert one == two == three == b"accept-encoding:gzip,br"


def test_secondary_key_uses_request_names_case_insensitively() -> None:
    assert secondary_key((b"x-a",), [(b"X-A", b"1")]) == b"x-a:1"


def test_secondary_key_distinguishes_absent_from_empty_and_values() -> None:
    names = (b"accept", b"x-a")
    absent = secondary_key(names, [(b"accept", b"text/html")])
    empty = secondary_key(names, [(b"accept", b"text/html"), (b"x-a", b"")])
    other = secondary_key(names, [(b"accept", b"text/plain")])
    assert len({absent, empty, other}) == 3
    assert absent == b"accept:text/html\nx-a"


def test_accept_language_and_encoding_are_normalised_conservatively() -> None:
    def key(name: bytes, *values: bytes) -> bytes:
        return secondary_key((name,), [(name, value) for value in values])
    language = b"accept-language"
    same = {key(language, b"en, de"), key(language, b" en ,   de"), key(language, b"EN,De"),
            key(language, b"en;q=1.0, de"), key(language, b"en", b"de"),
            key(language, b"en,,de;Q=1")}
    assert len(same) == 1
    assert key(language, b"de, en") not in same          # the order may matter
    assert key(language, b"en;q=0.50") == key(language, b"en ; q = 0.5")
    assert key(language, b"en;q=0.5") != key(language, b"en;q=0.6")
    assert key(language, b"en;q=1.5") == b"accept-language:en;q=1.5"  # not a qvalue
    encoding = b"accept-encoding"
    assert key(encoding, b"gzip, br") == key(encoding, b"GZIP,BR")
    assert key(encoding, b"gzip, br") != key(encoding, b"br, gzip")
    assert key(encoding, b"gzip;q=0") != key(encoding, b"gzip")
    # Other headers keep their case: only whitespace is normalised there.
    assert key(b"accept", b"Text/HTML") != key(b"accept", b"text/html")
