"""Reading Cache-Control, Pragma, Expires, Date, Age and Last-Modified (RFC 9111 §5)."""

from __future__ import annotations

import pytest

from monkey_py_plugins.proxy_reverse.cache.rules.control import (
    MAX_DELTA,
    CacheControl,
    age_value,
    date_value,
    delta_seconds,
    expires,
    header_value,
    header_values,
    last_modified,
    list_tokens,
    parse_cache_control,
    request_cache_control,
    response_cache_control,
)

DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"
DATE_TS = 784111777.0


def cc(*values: bytes) -> CacheControl:
    return parse_cache_control(values)


def test_tokens_and_values() -> None:
    parsed = cc(b"public, max-age=60, no-transform")
    assert parsed.directives == {"public": None, "max-age": "60", "no-transform": None}
    assert "public" in parsed and "private" not in parsed
    assert parsed.seconds("max-age") == 60
    assert parsed.seconds("s-maxage") is None


def test_names_are_case_insensitive() -> None:
    parsed = cc(b"Max-Age=5, NO-CACHE, Must-Revalidate")
    assert parsed.seconds("max-age") == 5
    assert "no-cache" in parsed and "must-revalidate" in parsed


def test_quoted_string_values_with_commas_and_escapes() -> None:
    parsed = cc(b'no-cache="Set-Cookie, X-A", private="a\\"b", max-age="30"')
    assert parsed.value("no-cache") == "Set-Cookie, X-A"
    assert parsed.value("private") == 'a"b'
    assert parsed.seconds("max-age") == 30


def test_several_field_lines_form_one_list() -> None:
    parsed = cc(b"public", b"max-age=10")
    assert "public" in parsed and parsed.seconds("max-age") == 10


def test_duplicates_keep_the_first_value() -> None:
    assert cc(b"max-age=10, max-age=1000").seconds("max-age") == 10
    assert cc(b"max-age=10", b"max-age=1000").seconds("max-age") == 10


def test_invalid_delta_seconds_read_as_zero() -> None:
    assert cc(b"max-age=soon").seconds("max-age") == 0
    assert cc(b"max-age").seconds("max-age") == 0
    assert cc(b"max-age=-5").seconds("max-age") == 0
    assert cc(b'max-age="1.5"').seconds("max-age") == 0


def test_huge_delta_seconds_are_capped() -> None:
    assert cc(b"max-age=99999999999999999999").seconds("max-age") == MAX_DELTA
    assert delta_seconds(b"4294967296") == MAX_DELTA


def test_whitespace_and_empty_members() -> None:
    parsed = cc(b" ,  public ,, max-age = 7 ,")
    assert parsed.directives == {"public": None, "max-age": "7"}


def test_malformed_members_are_skipped() -> None:
    parsed = cc(b'=x, "junk, with comma", max-age=5 6, public, no-cache="unterminated')
    assert parsed.directives == {"public": None}


def test_empty() -> None:
    assert not cc()
    assert not cc(b"")


def test_response_cache_control_ignores_pragma() -> None:
    parsed = response_cache_control([(b"Pragma", b"no-cache")])
    assert "no-cache" not in parsed


def test_request_pragma_no_cache_without_cache_control() -> None:
    assert "no-cache" in request_cache_control([(b"pragma", b"no-cache")])
    assert "no-cache" in request_cache_control([(b"pragma", b"x, No-Cache")])
    assert "no-cache" not in request_cache_control([(b"pragma", b"other")])


def test_request_cache_control_overrides_pragma() -> None:
    parsed = request_cache_control([(b"pragma", b"no-cache"), (b"cache-control", b"max-age=5")])
    assert "no-cache" not in parsed
    assert parsed.seconds("max-age") == 5


def test_header_lookup_is_case_insensitive() -> None:
    headers = [(b"Content-Type", b"a"), (b"CONTENT-TYPE", b"b"), (b"Vary", b"Accept, X-A")]
    assert header_value(headers, b"content-type") == b"a"
    assert header_values(headers, b"content-type") == [b"a", b"b"]
    assert header_value(headers, b"etag") is None
    assert list_tokens(headers, b"vary") == [b"accept", b"x-a"]


def test_dates() -> None:
    headers = [(b"Date", DATE), (b"Last-Modified", b"Sunday, 06-Nov-94 08:49:37 GMT")]
    assert date_value(headers) == DATE_TS
    assert last_modified(headers) == DATE_TS
    assert date_value([(b"Date", b"yesterday")]) is None
    assert date_value([]) is None


@pytest.mark.parametrize("value", [b"0", b"-1", b"never", b""])
def test_invalid_expires_is_in_the_past(value: bytes) -> None:
    assert expires([(b"Expires", value)]) == 0.0


def test_expires() -> None:
    assert expires([(b"Expires", DATE)]) == DATE_TS
    assert expires([(b"Expires", DATE), (b"Expires", b"Mon, 07 Nov 1994 08:49:37 GMT")]) == (
        DATE_TS)
    assert expires([]) is None


def test_age() -> None:
    assert age_value([(b"Age", b"42")]) == 42
    assert age_value([(b"Age", b"x")]) == 0
    assert age_value([(b"Age", b"-3")]) == 0
    assert age_value([(b"Age", b"7200.0")]) == 0
    assert age_value([]) == 0
    assert age_value([(b"Age", b"99999999999")]) == MAX_DELTA


def test_age_reads_the_first_member_of_the_first_line() -> None:
    assert age_value([(b"Age", b"7200, 0")]) == 7200
    assert age_value([(b"Age", b"0, 7200")]) == 0
    assert age_value([(b"Age", b"7200"), (b"Age", b"0")]) == 7200
    assert age_value([(b"Age", b" 0 , 0")]) == 0


def test_a_malformed_age_reads_as_too_old() -> None:
    for value in (b"7200;foo=bar", b"5;foo=111", b"60 s", b"1 2"):
        assert age_value([(b"Age", value)]) == MAX_DELTA, value
