"""The in-memory store: variants by Vary, LRU eviction by bytes, the object size limit."""

from __future__ import annotations

import pytest

from monkey_py_plugins.proxy_reverse.cache.stores.memory import MemoryStore, entry_size
from monkey_py_plugins.proxy_reverse.cache.stores.store import Meta

T0 = 1_700_000_000.0


def meta(*fields: tuple[bytes, bytes], status: int = 200) -> Meta:
    return Meta(status, [(b"Cache-Control", b"max-age=60"), *fields], T0 - 1, T0)


def put(store, primary: bytes, body: bytes, *fields, request=()) -> bool:
    writer = store.begin(primary, list(request), meta(*fields))
    if writer is None:
        return False
    for start in range(0, len(body), 4):
        if not writer.write(body[start:start + 4]):
            return False
    return writer.commit()


def test_store_and_lookup() -> None:
    store = MemoryStore(1 << 20, 1 << 16)
    assert store.lookup(b"http://h/a", []) is None
    assert put(store, b"http://h/a", b"hello world", (b"ETag", b'"1"'))
    stored = store.lookup(b"http://h/a", [])
    assert stored.status == 200 and stored.body_length == 11
    assert stored.read(0, 100) == b"hello world"
    assert stored.read(6, 3) == b"wor"
    assert (b"ETag", b'"1"') in stored.headers
    assert stored.request_time == T0 - 1 and stored.response_time == T0
    assert store.lookup(b"http://h/b", []) is None
    stats = store.stats()
    assert stats["entries"] == 1 and stats["stores"] == 1
    assert stats["hits"] == 1 and stats["misses"] == 2


def test_nothing_is_visible_before_commit_and_abort_drops_it() -> None:
    store = MemoryStore(1 << 20, 1 << 16)
    writer = store.begin(b"k", [], meta())
    writer.write(b"part")
    assert store.lookup(b"k", []) is None
    writer.abort()
    assert not writer.commit()
    assert store.lookup(b"k", []) is None


def test_variants_are_chosen_by_vary() -> None:
    store = MemoryStore(1 << 20, 1 << 16)
    vary = (b"Vary", b"Accept-Encoding")
    assert put(store, b"k", b"gzipped", vary, request=[(b"accept-encoding", b"gzip")])
    assert put(store, b"k", b"plain", vary, request=[])
    assert store.lookup(b"k", [(b"accept-encoding", b"gzip")]).body == b"gzipped"
    assert store.lookup(b"k", [(b"accept-encoding", b" gzip ")]).body == b"gzipped"
    assert store.lookup(b"k", []).body == b"plain"
    assert store.lookup(b"k", [(b"accept-encoding", b"br")]) is None
    assert store.stats()["entries"] == 2


def test_new_vary_names_replace_the_older_variants() -> None:
    store = MemoryStore(1 << 20, 1 << 16)
    put(store, b"k", b"a", (b"Vary", b"Accept"), request=[(b"accept", b"x")])
    put(store, b"k", b"b", (b"Vary", b"Accept-Language"), request=[(b"accept", b"x")])
    assert store.stats()["entries"] == 1
    assert store.lookup(b"k", [(b"accept", b"x")]).body == b"b"


def test_vary_star_is_refused() -> None:
    store = MemoryStore(1 << 20, 1 << 16)
    assert store.begin(b"k", [], meta((b"Vary", b"*"))) is None


def test_same_key_replaces() -> None:
    store = MemoryStore(1 << 20, 1 << 16)
    put(store, b"k", b"one")
    put(store, b"k", b"two!")
    assert store.lookup(b"k", []).body == b"two!"
    assert store.stats()["entries"] == 1
    assert store.stats()["bytes"] == entry_size(store.lookup(b"k", []))


def test_max_object_aborts_the_writer() -> None:
    store = MemoryStore(1 << 20, 10)
    writer = store.begin(b"k", [], meta())
    assert writer.write(b"12345")
    assert writer.write(b"67890")
    assert not writer.write(b"x")
    assert not writer.write(b"y")
    assert not writer.commit()
    assert store.lookup(b"k", []) is None
    assert store.stats()["aborts"] == 1


def test_announced_length_over_max_object_is_refused_at_once() -> None:
    store = MemoryStore(1 << 20, 10)
    assert store.begin(b"k", [], meta((b"Content-Length", b"11"))) is None
    assert store.begin(b"k", [], meta((b"Content-Length", b"10"))) is not None


def test_body_shorter_than_its_content_length_is_not_committed() -> None:
    store = MemoryStore(1 << 20, 1 << 16)
    assert not put(store, b"k", b"abc", (b"Content-Length", b"5"))
    assert store.lookup(b"k", []) is None
    assert put(store, b"k", b"abcde", (b"Content-Length", b"5"))


def test_lru_eviction_by_bytes() -> None:
    one = entry_size_of(b"k1", b"x" * 100)
    store = MemoryStore(one * 3, 1000)
    for name in (b"k1", b"k2", b"k3"):
        assert put(store, name, b"x" * 100)
    assert store.lookup(b"k1", []) is not None  # k1 is now the most recently used
    assert put(store, b"k4", b"x" * 100)
    assert store.lookup(b"k2", []) is None
    assert all(store.lookup(k, []) is not None for k in (b"k1", b"k3", b"k4"))
    stats = store.stats()
    assert stats["evictions"] == 1 and stats["bytes"] <= one * 3


def test_a_large_entry_evicts_several_small_ones() -> None:
    small = entry_size_of(b"k1", b"x" * 10)
    store = MemoryStore(small * 4, small * 4)
    for index in range(4):
        put(store, b"k%d" % index, b"x" * 10)
    assert put(store, b"big", b"x" * (small * 2))
    assert store.stats()["entries"] <= 2
    assert store.lookup(b"big", []) is not None


def test_memory_stays_bounded_for_many_urls() -> None:
    store = MemoryStore(64 * 1024, 4096)
    for index in range(5000):
        put(store, b"http://h/%d" % index, b"y" * (index % 700))
        assert store.stats()["bytes"] <= 64 * 1024
    stats = store.stats()
    assert stats["evictions"] > 4000
    assert stats["entries"] == len(store._lru) == sum(
        len(group.entries) for group in store._groups.values())


def test_update_headers_after_304() -> None:
    store = MemoryStore(1 << 20, 1 << 16)
    put(store, b"k", b"body")
    stored = store.lookup(b"k", [])
    headers = [(b"Cache-Control", b"max-age=600")]
    assert store.update_headers(stored, headers, T0 + 100, T0 + 101)
    fresh = store.lookup(b"k", [])
    assert fresh.headers == headers and fresh.body == b"body"
    assert fresh.request_time == T0 + 100 and fresh.response_time == T0 + 101
    assert stored.headers != headers  # the old object, maybe still being served, is intact
    assert not store.update_headers(stored, headers, T0, T0)  # replaced meanwhile
    assert store.stats()["bytes"] == entry_size(fresh)


def test_invalidate_and_purge() -> None:
    store = MemoryStore(1 << 20, 1 << 16)
    vary = (b"Vary", b"Accept")
    put(store, b"k", b"a", vary, request=[(b"accept", b"1")])
    put(store, b"k", b"b", vary, request=[(b"accept", b"2")])
    put(store, b"other", b"c")
    store.invalidate(b"k")
    assert store.lookup(b"k", [(b"accept", b"1")]) is None
    assert store.lookup(b"k", [(b"accept", b"2")]) is None
    assert store.stats()["invalidations"] == 1
    assert store.purge(b"missing") == 0
    put(store, b"k", b"a")
    assert store.purge() == 2
    assert store.stats()["entries"] == 0 and store.stats()["bytes"] == 0


def test_sizes_are_checked() -> None:
    with pytest.raises(ValueError):
        MemoryStore(0, 10)
    assert MemoryStore(100, 1000).max_object == 100


def entry_size_of(primary: bytes, body: bytes) -> int:
    store = MemoryStore(1 << 20, 1 << 20)
    put(store, primary, body)
    return store.stats()["bytes"]
