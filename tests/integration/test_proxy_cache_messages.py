"""How the cache keeps and replays messages, through the real proxy and both stores:
bodies framed with Content-Length or chunked, transfer codings it cannot undo, interim
(1xx) answers before the final one, the Date and Age of what it serves, and partial
content: a 206 is kept as a part and answers the range requests that lie within it
(RFC 9111 §3.3, §4); parts never stand for the complete response."""

from __future__ import annotations

import re

import pytest

from cache_support import (
    Answer,
    Raw,
    date,
    fetches,
    own_target,
    received_for,
    start_over_store,
)
from proxy_support import entry
from rawhttp import Client
from upstreams import Exchange, payload

MAX_AGE = [("Cache-Control", "max-age=600")]
BODY = bytes(range(100))
RANGE = re.compile(r"bytes=(\d+)-(\d+)")


def ranged(*headers: tuple[str, str], span_error: int = 0):
    """An upstream answering ``bytes=a-b`` with a 206 of BODY, anything else with 200."""
    def answer(exchange) -> Answer:
        match = RANGE.fullmatch(exchange.request.header("Range") or "")
        if match is None:
            return Answer(body=BODY, headers=list(headers))
        first, last = int(match[1]), int(match[2])
        return Answer(206, BODY[first:last + 1], [
            *headers, ("Content-Range", f"bytes {first}-{last + span_error}/{len(BODY)}")])
    return answer


@pytest.fixture(scope="module", params=["memory", "disk", "redis", "redis+tier"])
def proxy(request, module_monkey, upstream, tmp_path_factory):
    return start_over_store(request, module_monkey, tmp_path_factory,
                            entry("^/", upstream, Cache="On"))


@pytest.fixture
def path(request):
    return own_target(request, "/m/")


def raw_answer(head: list[tuple[str, str]], body: bytes, interim: bytes = b"",
               status: int = 200):
    """An upstream answer written byte for byte: ``interim`` answers, then the head
    and ``body`` as given (already framed)."""
    def behaviour(exchange: Exchange) -> bool:
        exchange.send(interim + exchange.head(status, head) + body)
        return exchange.keep_alive
    return Raw(behaviour)


def chunked(body: bytes, size: int = 1000) -> bytes:
    pieces = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
              for i in range(0, len(body), size)]
    return b"".join(pieces) + b"0\r\n\r\n"


def is_hit(response) -> bool:
    return (response.header("Cache-Status") or "").startswith("monkey_py; hit")


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("size", [0, 100, 200_000])
def test_a_response_is_stored_and_replayed_with_valid_framing(proxy, upstream, routes, path,
                                                              framing, size):
    body = payload(size) if size else b""
    if framing == "chunked":
        routes.set(path, raw_answer([("Transfer-Encoding", "chunked"), *MAX_AGE],
                                    chunked(body)))
    else:
        routes.set(path, Answer(body=body, headers=MAX_AGE))
    # One connection throughout: a framing error would break the requests after it.
    with Client(proxy.port, timeout=10) as client:
        first = client.request("GET", path)
        assert first.body == body and "stored" in first.header("Cache-Status")
        for _ in range(2):
            hit = client.request("GET", path)
            assert hit.status == 200 and hit.body == body and is_hit(hit)
            assert hit.header("Content-Length") == str(size)
            assert hit.header("Transfer-Encoding") is None
        head = client.request("HEAD", path)
        assert head.header("Content-Length") == str(size) and head.body == b""
        assert client.request("GET", path).body == body
    assert fetches(upstream, path) == 1


@pytest.mark.parametrize("coding", ["gzip, chunked", "chunked, chunked"])
def test_a_transfer_coding_the_cache_cannot_undo_is_not_stored(proxy, upstream, routes,
                                                               path, coding):
    routes.set(path, raw_answer([("Transfer-Encoding", coding), *MAX_AGE],
                                chunked(b"coded bytes")))
    for _ in range(2):
        with Client(proxy.port, timeout=10) as client:
            answer = client.request("GET", path)
        assert "stored" not in (answer.header("Cache-Status") or "")
    assert fetches(upstream, path) == 2


@pytest.mark.parametrize("interim", [
    b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nX-Interim: 1\r\n\r\n",
    b"HTTP/1.1 102 Processing\r\nX-Interim: 1\r\n\r\n"
    b"HTTP/1.1 100 Continue\r\nX-Interim: 2\r\n\r\n",
], ids=["103", "102-100"])
def test_interim_answers_are_neither_stored_nor_mixed_into_the_final_one(
        proxy, upstream, routes, path, interim):
    routes.set(path, raw_answer([("Content-Length", "5"), *MAX_AGE], b"final",
                                interim=interim))
    with Client(proxy.port, timeout=10) as client:
        first = client.request("GET", path)
        hit = client.request("GET", path)
    for answer in (first, hit):
        assert answer.status == 200 and answer.body == b"final"
        assert answer.header("Link") is None and answer.header("X-Interim") is None
    assert is_hit(hit)
    assert fetches(upstream, path) == 1


def test_the_caching_headers_of_an_interim_answer_do_not_count(proxy, upstream, routes,
                                                                path):
    routes.set(path, raw_answer([("Content-Length", "2")], b"ok",
                                interim=b"HTTP/1.1 103 Early Hints\r\n"
                                        b"Cache-Control: max-age=600\r\n\r\n"))
    for _ in range(2):
        with Client(proxy.port, timeout=10) as client:
            answer = client.request("GET", path)
        assert answer.status == 200 and answer.header("Cache-Control") is None
        assert "stored" not in answer.header("Cache-Status")
    assert fetches(upstream, path) == 2


def test_the_age_restarts_from_the_date_of_a_304(proxy, routes, path):
    routes.set(path, Answer(body=b"body", headers=[
        ("Date", date(-100)), ("Cache-Control", "max-age=50"), ("ETag", '"v"')]),
        Answer(304, headers=[("ETag", '"v"'), ("Date", date())]))
    with Client(proxy.port, timeout=10) as client:
        client.request("GET", path)
        revalidated = client.request("GET", path)
        assert "fwd-status=304" in revalidated.header("Cache-Status")
        hit = client.request("GET", path)
    # Stored with a Date 100 s old: only the 304's new Date makes it fresh again.
    assert is_hit(hit) and int(hit.header("Age")) <= 2


@pytest.mark.parametrize("ages, reused", [
    (["7200, 0"], False),          # the first member counts: too old for max-age=3600
    (["0, 7200"], True),
    (["7200", "0"], False),        # the first line counts
    (["0", "7200"], True),
    (["7200;foo=bar"], False),     # malformed: validated before reuse
    (["5;foo=111"], False),
    (["60 s"], False),
    (["abc"], True),               # no number at all: ignored (RFC 9111 §5.1)
    (["-7200"], True),
    (["7200.0"], True),
], ids=lambda value: ",".join(value) if isinstance(value, list) else str(value))
def test_age_is_parsed_as_rfc_9111_says(proxy, upstream, routes, path, ages, reused):
    routes.set(path, Answer(body=b"aged", headers=[
        ("Date", date()), ("Cache-Control", "max-age=3600"),
        *(("Age", value) for value in ages)]))
    with Client(proxy.port, timeout=10) as client:
        client.request("GET", path)
        second = client.request("GET", path)
    assert second.body == b"aged" and is_hit(second) is reused
    assert fetches(upstream, path) == (1 if reused else 2)


def test_a_304_without_age_restarts_the_age(proxy, routes, path):
    routes.set(path, Answer(body=b"body", headers=[
        ("Date", date()), ("Age", "590"), ("Cache-Control", "max-age=600"), ("ETag", '"v"')]),
        Answer(304, headers=[("ETag", '"v"'), ("Date", date())]))
    with Client(proxy.port, timeout=10) as client:
        client.request("GET", path)
        revalidated = client.request("GET", path, headers=[("Cache-Control", "no-cache")])
        assert "fwd-status=304" in revalidated.header("Cache-Status")
        hit = client.request("GET", path)
    assert is_hit(hit) and int(hit.header("Age")) <= 2


def test_a_served_response_has_one_date_the_origins(
        proxy, routes, path):
    origin = date(-20)
    routes.set(path, Answer(body=b"dated", headers=[("Date", origin),
                                                    ("Cache-Control", "max-age=600")]))
    with Client(proxy.port, timeout=10) as client:
        miss = client.request("GET", path)
        hit = client.request("GET", path)
    for answer in (miss, hit):
        assert len(answer.header_all("Date")) == 1
    assert 20 <= int(hit.header("Age")) <= 23
    # The origin's Date, on the miss and on the hit (RFC 9110 §6.6.1).
    assert miss.header("Date") == hit.header("Date") == origin


# -- partial content -----------------------------------------------------------------------
def request(proxy, path: str, *headers: tuple[str, str], method: str = "GET"):
    with Client(proxy.port, timeout=10) as client:
        return client.request(method, path, headers=list(headers))


def test_a_part_answers_the_ranges_within_it(proxy, upstream, routes, path):
    routes.set(path, ranged(("Cache-Control", "max-age=600"), ("ETag", '"p"')))
    first = request(proxy, path, ("Range", "bytes=10-29"))
    assert first.status == 206 and "stored" in first.header("Cache-Status")
    for asked, span in (("bytes=10-29", (10, 29)), ("bytes=12-15", (12, 15)),
                        ("bytes=20-29", (20, 29))):
        answer = request(proxy, path, ("Range", asked))
        assert answer.status == 206 and is_hit(answer), asked
        assert answer.body == BODY[span[0]:span[1] + 1]
        assert answer.header("Content-Range") == f"bytes {span[0]}-{span[1]}/100"
        assert answer.header("Content-Length") == str(span[1] - span[0] + 1)
    assert fetches(upstream, path) == 1
    # Outside the part, another part of it, or the whole: the upstream answers.
    outside = request(proxy, path, ("Range", "bytes=25-40"))
    assert outside.status == 206 and not is_hit(outside)
    assert outside.body == BODY[25:41]
    whole = request(proxy, path)
    assert whole.status == 200 and whole.body == BODY and not is_hit(whole)
    assert received_for(upstream, path)[-1].header("Range") is None
    # Now the complete response is stored: it answers every range.
    assert is_hit(request(proxy, path, ("Range", "bytes=50-60")))
    assert fetches(upstream, path) == 3


def test_a_part_is_not_used_when_if_range_does_not_match(proxy, upstream, routes, path):
    routes.set(path, ranged(("Cache-Control", "max-age=600"), ("ETag", '"p"')))
    request(proxy, path, ("Range", "bytes=0-9"))
    assert is_hit(request(proxy, path, ("Range", "bytes=0-9"), ("If-Range", '"p"')))
    other = request(proxy, path, ("Range", "bytes=0-9"), ("If-Range", '"q"'))
    assert not is_hit(other)
    assert fetches(upstream, path) == 2


def test_a_part_whose_bytes_do_not_match_its_content_range_is_not_kept(proxy, upstream,
                                                                      routes, path):
    routes.set(path, ranged(("Cache-Control", "max-age=600"), span_error=1))
    request(proxy, path, ("Range", "bytes=0-9"))
    assert not is_hit(request(proxy, path, ("Range", "bytes=0-9")))
    assert fetches(upstream, path) == 2


def test_a_part_gets_heuristic_freshness_like_a_200(proxy, upstream, routes, path):
    routes.set(path, ranged(("Date", date()), ("Last-Modified", date(-86400))))
    request(proxy, path, ("Range", "bytes=0-9"))
    assert is_hit(request(proxy, path, ("Range", "bytes=0-9")))
    assert fetches(upstream, path) == 1


def test_purge_removes_the_part_too(proxy, upstream, routes, path):
    routes.set(path, ranged(("Cache-Control", "max-age=600")))
    request(proxy, path, ("Range", "bytes=0-9"))
    assert request(proxy, path, method="PURGE").status == 200
    assert not is_hit(request(proxy, path, ("Range", "bytes=0-9")))
    assert fetches(upstream, path) == 2
