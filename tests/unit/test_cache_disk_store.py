"""The disk store: atomic files shared by processes, persistence, damage, eviction, sendfile."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket

import pytest

from monkey_py.loop import EventLoop
from monkey_py_plugins.proxy_reverse.cache.stores import disk
from monkey_py_plugins.proxy_reverse.cache.stores.disk import TEMP_GRACE, DiskStore
from monkey_py_plugins.proxy_reverse.cache.stores.disk_files import HEAD, file_name
from monkey_py_plugins.proxy_reverse.cache.stores.store import Meta
from monkey_py_plugins.proxy_reverse.cache.verify import BodyVerifier

T0 = 1_700_000_000.0
MB = 1 << 20


def meta(*fields: tuple[bytes, bytes], status: int = 200) -> Meta:
    return Meta(status, [(b"Cache-Control", b"max-age=60"), *fields], T0 - 1, T0)


def put(store, primary: bytes, body: bytes, *fields, request=(), chunk: int = 7) -> bool:
    writer = store.begin(primary, list(request), meta(*fields))
    if writer is None:
        return False
    for start in range(0, len(body), chunk):
        if not writer.write(body[start:start + chunk]):
            return False
    return writer.commit()


def body_of(store, primary: bytes, request=()) -> bytes | None:
    stored = store.lookup(primary, list(request))
    if stored is None:
        return None
    try:
        return stored.read(0, stored.body_length)
    finally:
        stored.close()


def cache_files(directory) -> list[str]:
    return sorted(os.listdir(directory))


@pytest.fixture
def directory(tmp_path):
    return str(tmp_path / "cache")


def test_store_and_lookup(directory) -> None:
    store = DiskStore(directory, MB, 64 * 1024)
    assert store.lookup(b"http://h/a", []) is None
    assert put(store, b"http://h/a", b"hello world", (b"ETag", b'"1"'), (b"X-L", b"\xe9"))
    stored = store.lookup(b"http://h/a", [])
    assert stored.status == 200 and stored.body_length == 11
    assert stored.headers == [(b"Cache-Control", b"max-age=60"), (b"ETag", b'"1"'),
                              (b"X-L", b"\xe9")]
    assert stored.request_time == T0 - 1 and stored.response_time == T0
    assert stored.read(6, 100) == b"world"
    stored.close()
    assert cache_files(directory) == [file_name(b"http://h/a")]
    stats = store.stats()
    assert stats["stores"] == 1 and stats["hits"] == 1 and stats["misses"] == 1
    assert stats["entries"] == 1 and stats["bytes"] == os.path.getsize(
        os.path.join(directory, file_name(b"http://h/a")))


def test_a_large_body_can_be_sent_with_sendfile(directory) -> None:
    store = DiskStore(directory, MB, 256 * 1024)
    body = bytes(range(256)) * 400
    put(store, b"k", body, chunk=10000)
    stored = store.lookup(b"k", [])
    fd = stored.take_fd()
    assert stored.fd is None
    left, right = socket.socketpair()
    with left, right:
        sent = 0
        while sent < stored.body_length:
            sent += os.sendfile(left.fileno(), fd, stored.body_offset + sent,
                                stored.body_length - sent)
        os.close(fd)
        left.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := right.recv(65536):
            received += chunk
    assert received == body


def test_a_half_written_response_is_never_visible(directory) -> None:
    writer_store = DiskStore(directory, MB, 64 * 1024)
    reader = DiskStore(directory, MB, 64 * 1024)
    put(writer_store, b"k", b"old version")
    writer = writer_store.begin(b"k", [], meta((b"X-V", b"2")))
    assert writer.write(b"new ver")
    assert body_of(reader, b"k") == b"old version"
    assert any(name.startswith(".tmp-") for name in cache_files(directory))
    assert writer.write(b"sion")
    assert writer.commit()
    assert body_of(reader, b"k") == b"new version"
    assert not any(name.startswith(".tmp-") for name in cache_files(directory))


def test_abort_leaves_nothing(directory) -> None:
    store = DiskStore(directory, MB, 64 * 1024)
    writer = store.begin(b"k", [], meta())
    writer.write(b"partial")
    writer.abort()
    assert not writer.commit()
    assert cache_files(directory) == []
    assert store.lookup(b"k", []) is None


def test_persists_across_instances(directory) -> None:
    put(DiskStore(directory, MB, 64 * 1024), b"http://h/p", b"kept", (b"ETag", b'"p"'))
    again = DiskStore(directory, MB, 64 * 1024)
    assert body_of(again, b"http://h/p") == b"kept"
    assert again.stats()["entries"] == 1


def test_max_object_aborts_and_removes_the_temporary_file(directory) -> None:
    store = DiskStore(directory, MB, 10)
    writer = store.begin(b"k", [], meta())
    assert writer.write(b"0123456789")
    assert not writer.write(b"x")
    assert not writer.commit()
    assert cache_files(directory) == []
    assert store.stats()["aborts"] == 1
    assert store.begin(b"k", [], meta((b"Content-Length", b"11"))) is None


def test_body_shorter_than_its_content_length_is_not_committed(directory) -> None:
    store = DiskStore(directory, MB, 64 * 1024)
    assert not put(store, b"k", b"abc", (b"Content-Length", b"4"))
    assert cache_files(directory) == []
    assert put(store, b"k", b"abcd", (b"Content-Length", b"4"))


def test_variants_by_vary(directory) -> None:
    store = DiskStore(directory, MB, 64 * 1024)
    vary = (b"Vary", b"Accept-Encoding")
    assert put(store, b"k", b"gz", vary, request=[(b"accept-encoding", b"gzip")])
    assert put(store, b"k", b"plain", vary)
    other = DiskStore(directory, MB, 64 * 1024)
    assert body_of(other, b"k", [(b"accept-encoding", b"gzip")]) == b"gz"
    assert body_of(other, b"k") == b"plain"
    assert body_of(other, b"k", [(b"accept-encoding", b"br")]) is None
    assert len(cache_files(directory)) == 3  # the marker and two variants
    assert store.begin(b"k", [], meta((b"Vary", b"*"))) is None


def test_new_vary_names_orphan_the_older_variants(directory) -> None:
    store = DiskStore(directory, MB, 64 * 1024)
    put(store, b"k", b"a", (b"Vary", b"Accept"), request=[(b"accept", b"x")])
    put(store, b"k", b"b", (b"Vary", b"Accept-Language"), request=[(b"accept", b"x")])
    assert body_of(store, b"k", [(b"accept", b"x")]) == b"b"
    put(store, b"k", b"c", (b"Vary", b"Accept"), request=[(b"accept", b"y")])
    assert body_of(store, b"k", [(b"accept", b"x")]) is None


def test_a_plain_response_replaces_variants_and_back(directory) -> None:
    store = DiskStore(directory, MB, 64 * 1024)
    put(store, b"k", b"variant", (b"Vary", b"Accept"), request=[(b"accept", b"x")])
    put(store, b"k", b"plain")
    assert body_of(store, b"k", [(b"accept", b"x")]) == b"plain"
    put(store, b"k", b"variant2", (b"Vary", b"Accept"), request=[(b"accept", b"x")])
    assert body_of(store, b"k", [(b"accept", b"x")]) == b"variant2"


def test_invalidate_removes_every_variant_for_good(directory) -> None:
    store = DiskStore(directory, MB, 64 * 1024)
    vary = (b"Vary", b"Accept")
    put(store, b"k", b"one", vary, request=[(b"accept", b"1")])
    put(store, b"k", b"two", vary, request=[(b"accept", b"2")])
    store.invalidate(b"k")
    assert store.stats()["invalidations"] == 1
    assert body_of(store, b"k", [(b"accept", b"1")]) is None
    put(store, b"k", b"one again", vary, request=[(b"accept", b"1")])
    assert body_of(store, b"k", [(b"accept", b"1")]) == b"one again"
    assert body_of(store, b"k", [(b"accept", b"2")]) is None


def test_purge(directory) -> None:
    store = DiskStore(directory, MB, 64 * 1024)
    put(store, b"a", b"1")
    put(store, b"b", b"2")
    assert store.purge(b"a") == 1
    assert store.purge(b"a") == 0
    assert body_of(store, b"b") == b"2"
    assert store.purge() == 1
    assert cache_files(directory) == []
    assert store.stats()["bytes"] == 0


def entry_path(directory, primary: bytes = b"k") -> str:
    return os.path.join(directory, file_name(primary))


def damage_truncate(path: str) -> None:
    os.truncate(path, os.path.getsize(path) - 1)


def damage_extend(path: str) -> None:
    with open(path, "ab") as file:
        file.write(b"x")


def damage_magic(path: str) -> None:
    with open(path, "r+b") as file:
        file.write(b"XXXX")


def damage_metadata(path: str) -> None:
    with open(path, "r+b") as file:
        file.seek(HEAD.size + 3)
        byte = file.read(1)
        file.seek(HEAD.size + 3)
        file.write(bytes([byte[0] ^ 1]))


def damage_empty(path: str) -> None:
    os.truncate(path, 0)


@pytest.mark.parametrize("damage", [damage_truncate, damage_extend, damage_magic,
                                    damage_metadata, damage_empty])
def test_damaged_files_are_misses_and_removed(directory, damage) -> None:
    store = DiskStore(directory, MB, 64 * 1024)
    put(store, b"k", b"some body")
    damage(entry_path(directory))
    assert store.lookup(b"k", []) is None
    assert cache_files(directory) == []
    assert put(store, b"k", b"some body")
    assert body_of(store, b"k") == b"some body"


def test_foreign_files_are_left_alone(directory) -> None:
    store = DiskStore(directory, MB, 64 * 1024)
    with open(os.path.join(directory, "README"), "w") as file:
        file.write("not a cache file")
    store.evict()
    assert store.stats()["entries"] == 0
    assert "README" in cache_files(directory)


def test_update_headers_after_304(directory) -> None:
    store = DiskStore(directory, MB, 64 * 1024)
    put(store, b"k", b"the body", (b"ETag", b'"1"'))
    stored = store.lookup(b"k", [])
    headers = [(b"Cache-Control", b"max-age=600"), (b"ETag", b'"1"')]
    assert store.update_headers(stored, headers, T0 + 100, T0 + 101)
    assert stored.read(0, 100) == b"the body"  # the open file still reads
    stored.close()
    fresh = DiskStore(directory, MB, 64 * 1024).lookup(b"k", [])
    assert fresh.headers == headers
    assert fresh.request_time == T0 + 100 and fresh.response_time == T0 + 101
    assert fresh.read(0, 100) == b"the body"
    fresh.close()
    assert not any(name.startswith(".tmp-") for name in cache_files(directory))


def test_update_headers_of_a_variant_without_its_descriptor(directory) -> None:
    store = DiskStore(directory, MB, 256 * 1024)
    request = [(b"accept", b"x")]
    body = b"varied" * 20000
    put(store, b"k", body, (b"Vary", b"Accept"), request=request, chunk=4096)
    stored = store.lookup(b"k", request)
    os.close(stored.take_fd())
    assert store.update_headers(stored, [(b"X-New", b"1")], T0, T0)
    fresh = store.lookup(b"k", request)
    assert fresh.headers == [(b"X-New", b"1")] and fresh.read(0, 12) == b"variedvaried"
    fresh.close()
    small = [(b"accept", b"y")]
    put(store, b"k", b"small", (b"Vary", b"Accept"), request=small)
    stored = store.lookup(b"k", small)
    assert stored.fd is None and stored.body == b"small"
    assert store.update_headers(stored, [(b"X-New", b"2")], T0, T0)
    assert store.lookup(b"k", small).body == b"small"  # the checksum came along


def test_update_headers_refuses_a_replaced_entry(directory) -> None:
    store = DiskStore(directory, MB, 64 * 1024)
    put(store, b"k", b"first")
    stored = store.lookup(b"k", [])
    put(DiskStore(directory, MB, 64 * 1024), b"k", b"second")
    assert not store.update_headers(stored, [(b"X", b"1")], T0, T0)
    stored.close()
    assert body_of(store, b"k") == b"second"
    store.purge()
    assert not store.update_headers(stored, [(b"X", b"1")], T0, T0)


def set_mtime(directory, primary: bytes, when: float) -> None:
    os.utime(entry_path(directory, primary), (when, when))


def test_eviction_removes_the_least_recently_used(directory) -> None:
    now = [T0]
    store = DiskStore(directory, 10 * 1024, 4096, clock=lambda: now[0])
    body = b"x" * 2000
    for index, primary in enumerate((b"a", b"b", b"c", b"d")):
        put(store, primary, body, chunk=500)
        set_mtime(directory, primary, T0 - 1000 + index)
    now[0] = T0
    store.lookup(b"a", []).close()  # a hit refreshes "a"
    put(store, b"e", body, chunk=500)
    put(store, b"f", body, chunk=500)
    remaining = {p for p in (b"a", b"b", b"c", b"d", b"e", b"f") if body_of(store, p)}
    assert b"b" not in remaining and b"a" in remaining and {b"e", b"f"} <= remaining
    total = sum(os.path.getsize(os.path.join(directory, n)) for n in cache_files(directory))
    assert total <= 10 * 1024
    assert store.stats()["evictions"] >= 1 and store.stats()["bytes"] == total


def test_hits_refresh_the_modification_time_at_most_every_interval(directory) -> None:
    now = [T0]
    store = DiskStore(directory, MB, 4096, clock=lambda: now[0])
    put(store, b"k", b"body")
    set_mtime(directory, b"k", T0 - 5)
    store.lookup(b"k", []).close()
    assert os.path.getmtime(entry_path(directory)) == T0 - 5
    now[0] = T0 + disk.TOUCH_INTERVAL
    store.lookup(b"k", []).close()
    assert os.path.getmtime(entry_path(directory)) == T0 + disk.TOUCH_INTERVAL


def test_an_evicted_file_keeps_serving_its_open_reader(directory) -> None:
    store = DiskStore(directory, MB, 256 * 1024)
    put(store, b"k", b"still here" * 10000, chunk=4096)
    stored = store.lookup(b"k", [])
    assert stored.fd is not None
    store.purge()
    assert stored.read(0, 20) == b"still herestill here"
    stored.close()


def flip_body_bytes(path: str, offset_from_end: int, count: int = 16) -> None:
    """Damage a body in place, as a failing disk (or a stray writer) would."""
    size = os.path.getsize(path)
    with open(path, "r+b") as file:
        file.seek(size - offset_from_end)
        data = file.read(count)
        file.seek(size - offset_from_end)
        file.write(bytes(byte ^ 0xFF for byte in data))


def test_a_small_body_is_read_checked_and_a_damaged_one_removed(directory) -> None:
    store = DiskStore(directory, MB, 64 * 1024)
    put(store, b"k", b"a small body of some bytes")
    stored = store.lookup(b"k", [])
    assert stored.fd is None and stored.body == b"a small body of some bytes"
    flip_body_bytes(entry_path(directory), 20)
    assert store.lookup(b"k", []) is None
    assert cache_files(directory) == [] and store.stats()["damaged"] == 1


def test_a_large_body_is_checked_in_steps_on_the_loop(directory) -> None:
    store = DiskStore(directory, 4 * MB, MB)
    body = bytes(range(256)) * 3000
    put(store, b"good", body, chunk=65536)
    put(store, b"bad", body, chunk=65536)
    flip_body_bytes(entry_path(directory, b"bad"), 1000)
    loop = EventLoop()
    verifier = BodyVerifier(loop, store)
    for primary in (b"good", b"bad"):
        stored = store.lookup(primary, [])
        assert stored.fd is not None  # left for sendfile
        verifier.check(stored)
        stored.close()
    turns = 0
    while store.stats()["damaged"] == 0 or verifier._running:
        loop.run_once()
        turns += 1
        assert turns < 100
    assert turns > 2  # a step at a time, not the whole body in one call
    assert cache_files(directory) == [file_name(b"good")]
    stored = store.lookup(b"good", [])
    verifier.check(stored)  # checked lately: not again
    assert not verifier._running
    stored.close()
    loop.close()


def test_dead_writers_temporary_files_are_removed_by_the_scan(directory) -> None:
    now = [T0]
    store = DiskStore(directory, MB, 4096, clock=lambda: now[0])
    writer = store.begin(b"k", [], meta())
    writer.write(b"abandoned")
    temp = [n for n in cache_files(directory) if n.startswith(".tmp-")]
    os.utime(os.path.join(directory, temp[0]), (T0 - 10, T0 - 10))
    store.evict()
    assert temp[0] in cache_files(directory)
    now[0] = T0 + TEMP_GRACE
    store.evict()
    assert cache_files(directory) == []


def test_a_directory_that_cannot_be_used_is_a_clear_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cache directory"):
        DiskStore(str(blocker / "cache"), MB, 4096)
    with pytest.raises(ValueError, match="positive"):
        DiskStore(str(tmp_path / "c"), 0, 4096)


def writer_process(directory: str, worker: int, rounds: int) -> None:
    store = DiskStore(directory, 120_000, 16_000)
    for index in range(rounds):
        primary = b"http://h/%d" % (index % 25)
        body = (b"%d-%d;" % (worker, index)) * (50 + (index * 37 + worker * 11) % 1500)
        digest = hashlib.sha256(body).hexdigest().encode()
        writer = store.begin(primary, [], meta((b"X-Digest", digest)))
        for start in range(0, len(body), 4096):
            writer.write(body[start:start + 4096])
        writer.commit()
        check_entry(store, b"http://h/%d" % ((index * 7) % 25))


def check_entry(store, primary: bytes) -> bool:
    """The stored body, if any, is whole: it matches the digest in its own head."""
    stored = store.lookup(primary, [])
    if stored is None:
        return False
    try:
        digest = dict(stored.headers)[b"X-Digest"]
        body = stored.read(0, stored.body_length)
        assert hashlib.sha256(body).hexdigest().encode() == digest
        return True
    finally:
        stored.close()


def test_concurrent_writers_in_two_processes(directory) -> None:
    DiskStore(directory, 120_000, 16_000)
    pids = []
    for worker in range(2):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                writer_process(directory, worker, 400)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    names = cache_files(directory)
    assert not any(name.startswith(".tmp-") for name in names)
    total = sum(os.path.getsize(os.path.join(directory, name)) for name in names)
    # Each process scans after writing 1/16 of the limit: the overshoot stays small.
    assert total <= 120_000 + 2 * (120_000 // 16 + 16_000)
    store = DiskStore(directory, 120_000, 16_000)
    assert store.stats()["bytes"] <= 120_000
    found = [check_entry(store, b"http://h/%d" % index) for index in range(25)]
    assert sum(found) >= 5


def test_io_trouble_means_not_stored_never_an_exception(directory) -> None:
    store = DiskStore(directory, MB, 4096)
    writer = store.begin(b"k", [], meta())
    assert writer.write(b"partial")
    shutil.rmtree(directory)
    assert not writer.commit()
    assert store.begin(b"k", [], meta()) is None
    assert store.lookup(b"k", []) is None
    store.evict()
    assert store.stats()["errors"] == 2
