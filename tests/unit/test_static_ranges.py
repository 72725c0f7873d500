"""Range parsing, Content-Range and multipart/byteranges layout (RFC 9110 §14)."""

from __future__ import annotations

import email.parser
import email.policy

import pytest

from monkey_py.static.ranges import (
    MAX_RANGES,
    Unsatisfiable,
    content_range,
    multipart_byteranges,
    parse_range,
    unsatisfied_content_range,
)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-499", 10000, [(0, 499)]),
        ("bytes=500-999", 10000, [(500, 999)]),
        ("bytes=-500", 10000, [(9500, 9999)]),
        ("bytes=9500-", 10000, [(9500, 9999)]),
        ("bytes=0-0", 10000, [(0, 0)]),
        ("bytes=-1", 10000, [(9999, 9999)]),
        ("bytes=0-", 1, [(0, 0)]),
        ("bytes=0-99999", 100, [(0, 99)]),
        ("bytes=-99999", 100, [(0, 99)]),
        ("bytes=-100", 100, [(0, 99)]),
        ("bytes=99-", 100, [(99, 99)]),
        ("bytes=0-99999999999999999999999999", 100, [(0, 99)]),
        ("bytes=-99999999999999999999999999", 100, [(0, 99)]),
        ("BYTES=1-2", 100, [(1, 2)]),
        ("Bytes=1-2", 100, [(1, 2)]),
        ("  bytes=1-2  ", 100, [(1, 2)]),
        ("bytes=0-0,-1", 10000, [(0, 0), (9999, 9999)]),
        ("bytes=500-600,601-999", 10000, [(500, 999)]),
        ("bytes=500-700,601-999", 10000, [(500, 999)]),
        ("bytes=0-1, 5-6 ,\t9-9", 100, [(0, 1), (5, 6), (9, 9)]),
        ("bytes=50-59,0-9", 100, [(50, 59), (0, 9)]),
        ("bytes=50-59,0-9,5-20", 100, [(0, 20), (50, 59)]),
        ("bytes=0-9,10-19,20-29", 100, [(0, 29)]),
        ("bytes=0-50,10-20", 100, [(0, 50)]),
        ("bytes=0-10,-5", 10, [(0, 9)]),
        ("bytes=,0-1,,", 100, [(0, 1)]),
        ("bytes=200-300,0-1", 100, [(0, 1)]),
        ("bytes=0-1,-0", 100, [(0, 1)]),
        ("bytes=00-01", 100, [(0, 1)]),
    ],
)
def test_parse_range(header: str, size: int, expected) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    "header",
    [
        "",
        "bytes",
        "bytes=",
        "bytes=,",
        "bytes= ,  ,",
        "items=0-1",
        "bytes =0-1",
        "bytes=-",
        "bytes=1",
        "bytes=a-b",
        "bytes=1-a",
        "bytes=5-1",
        "bytes=0-1,5-1",
        "bytes=0-1,x",
        "bytes=1 - 2",
        "bytes=+1-2",
        "bytes=-+1",
        "bytes=0x1-2",
        "bytes=1-2-3",
        "bytes=\u0661-\u0662",
        "bytes=\u00b2-3",
        "bytes=99999999999999999999999999-5",
    ],
)
def test_invalid_headers_are_ignored(header: str) -> None:
    assert parse_range(header, 100) is None


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=100-", 100),
        ("bytes=100-200", 100),
        ("bytes=-0", 100),
        ("bytes=0-", 0),
        ("bytes=-5", 0),
        ("bytes=0-0", 0),
        ("bytes=100-,200-300,-0", 100),
        ("bytes=99999999999999999999999999-", 100),
    ],
)
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)


def test_range_count_limit_after_coalescing() -> None:
    many_disjoint = "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(MAX_RANGES))
    assert len(parse_range(many_disjoint, 100000)) == MAX_RANGES
    too_many = "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(MAX_RANGES + 1))
    assert parse_range(too_many, 100000) is None


def test_many_overlapping_ranges_collapse() -> None:
    header = "bytes=" + ",".join("0-" for _ in range(1000))
    assert parse_range(header, 5000) == [(0, 4999)]
    unordered = "bytes=" + ",".join(f"{i}-{i + 5}" for i in reversed(range(0, 900, 3)))
    assert parse_range(unordered, 5000) == [(0, 902)]


def test_content_range() -> None:
    assert content_range(0, 499, 1234) == "bytes 0-499/1234"
    assert unsatisfied_content_range(1234) == "bytes */1234"


def _assemble(parts, closing, data: bytes) -> bytes:
    body = bytearray()
    for header, offset, count in parts:
        body += header
        body += data[offset : offset + count]
    body += closing
    return bytes(body)


def test_multipart_layout_exact() -> None:
    parts, closing, total = multipart_byteranges([(0, 1), (5, 7)], 10, "text/plain", "XYZ")
    assert parts == [
        (b"\r\n--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n", 0, 2),
        (b"\r\n--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-7/10\r\n\r\n", 5, 3),
    ]
    assert closing == b"\r\n--XYZ--\r\n"
    body = _assemble(parts, closing, b"0123456789")
    assert total == len(body)
    assert body == (
        b"\r\n--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01"
        b"\r\n--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-7/10\r\n\r\n567"
        b"\r\n--XYZ--\r\n"
    )


def test_multipart_parses_with_the_email_package() -> None:
    data = bytes(range(256)) * 40
    ranges = parse_range("bytes=0-99,-50,1000-1999", len(data))
    boundary = "3d6b6a416f9b5"
    parts, closing, total = multipart_byteranges(
        ranges, len(data), "application/octet-stream", boundary
    )
    body = _assemble(parts, closing, data)
    assert total == len(body)
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: multipart/byteranges; boundary=" + boundary.encode()
        + b"\r\n\r\n" + body
    )
    assert message.is_multipart()
    assert message.defects == []
    received = message.get_payload()
    assert len(received) == len(ranges)
    for part, (first, last) in zip(received, ranges):
        assert part.defects == []
        assert part["Content-Type"] == "application/octet-stream"
        assert part["Content-Range"] == f"bytes {first}-{last}/{len(data)}"
        assert part.get_payload(decode=True) == data[first : last + 1]
    assert message.epilogue in ("", None)


@pytest.mark.parametrize(
    "boundary", ["", "x" * 71, "ends with space ", "bad\r\nboundary", "semi;colon"]
)
def test_multipart_rejects_bad_boundaries(boundary: str) -> None:
    with pytest.raises(ValueError):
        multipart_byteranges([(0, 1)], 10, "text/plain", boundary)


def test_multipart_rejects_header_injection() -> None:
    with pytest.raises(ValueError):
        multipart_byteranges([(0, 1)], 10, "text/plain\r\nX-Evil: 1", "b")
