"""ETag, HTTP dates and precondition evaluation (RFC 9110 §8.8, §13)."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from monkey_py.static import conditional
from monkey_py.static.conditional import (
    evaluate,
    http_date,
    if_range_allows,
    make_etag,
    parse_http_date,
)

# Sun, 06 Nov 1994 08:49:37 GMT, the RFC's example date.
EXAMPLE = 784111777
ETAG = make_etag(EXAMPLE * 10**9 + 5, 1234)
MTIME = EXAMPLE + 0.75
LAST_MODIFIED = "Sun, 06 Nov 1994 08:49:37 GMT"
EARLIER = "Sun, 06 Nov 1994 08:49:36 GMT"
LATER = "Sun, 06 Nov 1994 08:49:38 GMT"


def headers(**fields: str):
    """A ``headers_get`` over keyword fields (if_match -> b"if-match")."""
    table = {
        name.replace("_", "-").encode(): value.encode("latin-1") for name, value in fields.items()
    }
    return table.get


def test_make_etag() -> None:
    assert make_etag(0x5F3A1B2C_00000000, 0x1A4) == '"5f3a1b2c00000000-1a4"'
    assert make_etag(0, 0) == '"0-0"'
    assert make_etag(1_000_000_000, 7) != make_etag(1_000_000_001, 7)


@pytest.mark.parametrize(
    "ts",
    [0, 1, EXAMPLE, 951782400, 1709164800, 2**31, 4102444800, 253402300799, -1, -86400 * 365],
)
def test_http_date_matches_the_stdlib(ts: int) -> None:
    assert http_date(ts) == formatdate(ts, usegmt=True)
    assert http_date(ts + 0.999) == formatdate(ts, usegmt=True)


def test_http_date_example_and_flooring() -> None:
    assert http_date(EXAMPLE) == LAST_MODIFIED
    assert http_date(MTIME) == LAST_MODIFIED
    assert http_date(-0.5) == "Wed, 31 Dec 1969 23:59:59 GMT"


def test_http_date_clamps_to_four_digit_years() -> None:
    assert http_date(10**12) == "Fri, 31 Dec 9999 23:59:59 GMT"
    assert http_date(-10**12) == "Mon, 01 Jan 0001 00:00:00 GMT"


def test_http_date_cache_stays_bounded() -> None:
    for second in range(conditional._CACHE_SIZE * 2 + 10):
        http_date(second)
    assert len(conditional._formatted) <= conditional._CACHE_SIZE
    assert len(conditional._parsed) <= conditional._CACHE_SIZE
    assert http_date(EXAMPLE) == LAST_MODIFIED


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Sun Nov 06 08:49:37 1994",
        "  Sun, 06 Nov 1994 08:49:37 GMT\t",
        "Mon, 06 Nov 1994 08:49:37 GMT",
    ],
)
def test_parse_http_date_three_formats(value: str) -> None:
    assert parse_http_date(value) == float(EXAMPLE)


def test_parse_http_date_details() -> None:
    assert parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT") == 1709164800.0
    assert parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0
    assert parse_http_date("Thursday, 01-Jan-70 00:00:00 GMT") == 0.0
    assert parse_http_date("Saturday, 01-Jan-00 00:00:00 GMT") == 946684800.0
    assert parse_http_date("Tuesday, 31-Dec-69 23:59:59 GMT") == 3155759999.0
    assert parse_http_date("Wed, 31 Dec 2008 23:59:60 GMT") == 1230768000.0
    for ts in (0, EXAMPLE, 1709164800, 4102444800):
        assert parse_http_date(formatdate(ts, usegmt=True)) == float(ts)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "0",
        "784111777",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 +0000",
        "Sun, 06 Nov 1994 08:49:37",
        "sun, 06 nov 1994 08:49:37 gmt",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 32 Jan 1994 08:49:37 GMT",
        "Sun, 00 Jan 1994 08:49:37 GMT",
        "Sun, 30 Feb 1994 08:49:37 GMT",
        "Sun, 29 Feb 1900 08:49:37 GMT",
        "Sun, 31 Apr 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMTx",
        "Sun, \u0660\u0666 Nov 1994 08:49:37 GMT",
        "Sun, 06-Nov-94 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994 GMT",
    ],
)
def test_parse_http_date_rejects(value: str) -> None:
    assert parse_http_date(value) is None


def test_parse_http_date_of_our_own_output_uses_the_cache() -> None:
    text = http_date(1234567890.5)
    assert conditional._parsed[text] == 1234567890
    assert parse_http_date(text) == 1234567890.0


def test_no_conditionals_proceeds() -> None:
    assert evaluate("GET", headers(), ETAG, MTIME) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ETAG, None),
        ("*", None),
        (f'"other", {ETAG}', None),
        (f'"a,b", {ETAG}', None),
        ('"other"', 412),
        (f"W/{ETAG}", 412),
        ('"a,b"', 412),
        ("garbage", 412),
        ("", 412),
    ],
)
def test_if_match_uses_strong_comparison(value: str, expected) -> None:
    assert evaluate("GET", headers(if_match=value), ETAG, MTIME) == expected


def test_if_match_never_matches_a_weak_validator() -> None:
    weak = f"W/{ETAG}"
    assert evaluate("GET", headers(if_match=weak), weak, MTIME) == 412
    assert evaluate("GET", headers(if_match="*"), weak, MTIME) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [(LAST_MODIFIED, None), (LATER, None), (EARLIER, 412), ("not a date", None)],
)
def test_if_unmodified_since(value: str, expected) -> None:
    assert evaluate("GET", headers(if_unmodified_since=value), ETAG, MTIME) == expected


def test_if_match_takes_precedence_over_if_unmodified_since() -> None:
    match_but_modified = headers(if_match=ETAG, if_unmodified_since=EARLIER)
    assert evaluate("GET", match_but_modified, ETAG, MTIME) is None
    no_match_but_unmodified = headers(if_match='"x"', if_unmodified_since=LATER)
    assert evaluate("GET", no_match_but_unmodified, ETAG, MTIME) == 412


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ETAG, 304),
        (f"W/{ETAG}", 304),
        ("*", 304),
        (f'"x", W/"y", {ETAG}', 304),
        (f'"x",{ETAG}', 304),
        (f"  {ETAG}  ", 304),
        ('"x", "y"', None),
        ('"a,b"', None),
        ("garbage", None),
        (ETAG[:-1], None),
    ],
)
def test_if_none_match_uses_weak_comparison(value: str, expected) -> None:
    assert evaluate("GET", headers(if_none_match=value), ETAG, MTIME) == expected
    assert evaluate("HEAD", headers(if_none_match=value), ETAG, MTIME) == expected


def test_if_none_match_on_other_methods_fails_with_412() -> None:
    assert evaluate("POST", headers(if_none_match=ETAG), ETAG, MTIME) == 412
    assert evaluate("PUT", headers(if_none_match="*"), ETAG, MTIME) == 412
    assert evaluate("DELETE", headers(if_none_match='"x"'), ETAG, MTIME) is None


def test_weak_own_validator_matches_if_none_match() -> None:
    weak = f"W/{ETAG}"
    assert evaluate("GET", headers(if_none_match=ETAG), weak, MTIME) == 304
    assert evaluate("GET", headers(if_none_match=weak), weak, MTIME) == 304


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (LAST_MODIFIED, 304),
        (LATER, 304),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 304),
        ("Sun Nov  6 08:49:37 1994", 304),
        (EARLIER, None),
        ("invalid", None),
        (f"{LAST_MODIFIED}, {LATER}", None),
    ],
)
def test_if_modified_since(value: str, expected) -> None:
    assert evaluate("GET", headers(if_modified_since=value), ETAG, MTIME) == expected
    assert evaluate("HEAD", headers(if_modified_since=value), ETAG, MTIME) == expected
    assert evaluate("POST", headers(if_modified_since=value), ETAG, MTIME) is None


def test_if_modified_since_compares_whole_seconds() -> None:
    assert evaluate("GET", headers(if_modified_since=LAST_MODIFIED), ETAG, EXAMPLE + 0.999) == 304
    assert evaluate("GET", headers(if_modified_since=LAST_MODIFIED), ETAG, EXAMPLE + 1.0) is None


def test_if_none_match_overrides_if_modified_since() -> None:
    other_tag_later_date = headers(if_none_match='"x"', if_modified_since=LATER)
    assert evaluate("GET", other_tag_later_date, ETAG, MTIME) is None
    same_tag_earlier_date = headers(if_none_match=ETAG, if_modified_since=EARLIER)
    assert evaluate("GET", same_tag_earlier_date, ETAG, MTIME) == 304


def test_412_takes_precedence_over_304() -> None:
    assert evaluate("GET", headers(if_match='"x"', if_none_match=ETAG), ETAG, MTIME) == 412
    modified_since_both = headers(if_unmodified_since=EARLIER, if_modified_since=LATER)
    assert evaluate("GET", modified_since_both, ETAG, MTIME) == 412
    assert evaluate("GET", headers(if_match=ETAG, if_none_match=ETAG), ETAG, MTIME) == 304


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, True),
        (ETAG, True),
        (f" {ETAG} ", True),
        (f"W/{ETAG}", False),
        ('"other"', False),
        (f"{ETAG}, {ETAG}", False),
        (LAST_MODIFIED, True),
        ("Sunday, 06-Nov-94 08:49:37 GMT", True),
        (LATER, False),
        (EARLIER, False),
        ("garbage", False),
        ("", False),
    ],
)
def test_if_range(value: str | None, expected: bool) -> None:
    raw = None if value is None else value.encode()
    assert if_range_allows(raw, ETAG, MTIME) is expected


def test_if_range_never_matches_a_weak_validator() -> None:
    weak = f"W/{ETAG}"
    assert if_range_allows(weak.encode(), weak, MTIME) is False
