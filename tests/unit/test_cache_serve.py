"""What the cache writes when it serves: the head of a stored response, and the
origin's Date it carries (docs/proxy_cache.md)."""

from __future__ import annotations

from monkey_py_plugins.proxy_reverse.cache.exchange import origin_date
from monkey_py_plugins.proxy_reverse.cache.serve import Summary
from monkey_py_plugins.proxy_reverse.cache.stores.store import Stored

ORIGIN = b"Sun, 06 Nov 1994 08:49:37 GMT"
STORED = Stored(b"http://h/", b"", 200, [
    (b"date", ORIGIN), (b"Server", b"origin"), (b"Age", b"3"), (b"Content-Length", b"2"),
    (b"ETag", b'"e"'), (b"Via", b"1.1 upstream"), (b"X-A", b"1")], 784111777.0,
    784111777.0, 2, body=b"ok")


def test_the_stored_head_has_the_origins_date_first_and_leaves_out_what_the_server_writes():
    summary = Summary(STORED, b"1.1 me")
    date = b"Date: " + ORIGIN + b"\r\n"
    assert summary.head == date + b'ETag: "e"\r\nX-A: 1\r\nVia: 1.1 upstream, 1.1 me\r\n'
    assert summary.not_modified_head == date + b'ETag: "e"\r\nVia: 1.1 upstream, 1.1 me\r\n'


def test_a_miss_carries_the_upstreams_date_unless_it_has_one():
    raw = [(b"Date", ORIGIN)]
    assert origin_date(b"X-A: 1\r\n", raw, 0.0) == b"Date: " + ORIGIN + b"\r\nX-A: 1\r\n"
    assert origin_date(b"X-A: 1\r\nDate: x\r\n", raw, 0.0) == b"X-A: 1\r\nDate: x\r\n"
    assert origin_date(b"", [], 784111777.0) == b"Date: " + ORIGIN + b"\r\n"
