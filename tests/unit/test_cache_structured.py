"""Structured Field Dictionaries (RFC 8941 §4.2.2) and the targeted cache-control
fields read with them (RFC 9213)."""

from __future__ import annotations

import pytest

from monkey_py_plugins.proxy_reverse.cache.rules.control import (
    response_cache_control,
    targeted_cache_control,
)
from monkey_py_plugins.proxy_reverse.cache.rules.structured import (
    Decimal,
    Token,
    parse_dictionary,
)


def test_members_and_types():
    parsed = parse_dictionary(b'max-age=60, no-store, a=?0, b=-5, c=1.25, d="x\\"y", '
                              b'e=tok/en, f=:aGk=:, g=(1 "two" three);p=1, h;q=2')
    assert parsed == {"max-age": 60, "no-store": True, "a": False, "b": -5, "c": "1.25",
                      "d": 'x"y', "e": "tok/en", "f": b"hi", "g": [1, "two", "three"],
                      "h": True}
    assert isinstance(parsed["c"], Decimal) and isinstance(parsed["e"], Token)


def test_a_key_given_twice_keeps_the_last_value():
    assert parse_dictionary(b"max-age=1, max-age=2") == {"max-age": 2}


@pytest.mark.parametrize("value", [
    b"max-age=10000, &&&&&", b"MaX-aGe=3600", b"max-age =100", b"max-age= 100",
    b"max-age=60,", b'd="unterminated', b"n=1234567890123456", b"n=1.2345", b"x=?2",
    b"\xff", b"a=(1 2", b"a b",
])
def test_what_does_not_parse(value):
    assert parse_dictionary(value) is None


def test_the_first_valid_targeted_field_wins_over_cache_control():
    headers = [(b"Cache-Control", b"max-age=1"), (b"CDN-Cache-Control", b"&&"),
               (b"X-Cache-Control", b"max-age=3600, private")]
    targets = (b"cdn-cache-control", b"x-cache-control")
    cc = response_cache_control(headers, targets)
    assert cc.targeted and cc.seconds("max-age") == 3600 and "private" in cc
    assert not response_cache_control(headers).targeted
    assert response_cache_control(headers, (b"cdn-cache-control",)).seconds("max-age") == 1


def test_values_of_the_wrong_type_do_not_count():
    cc = targeted_cache_control([b'max-age="60", s-maxage=1.5, no-cache="Set-Cookie", x=?0'])
    assert cc.seconds("max-age") == 0 and cc.seconds("s-maxage") == 0
    assert cc.value("no-cache") == "Set-Cookie" and "x" not in cc
    assert targeted_cache_control([]) is None and targeted_cache_control([b""]) is None
