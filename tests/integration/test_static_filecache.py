"""The open-file cache of static files (OpenFileCache, OpenFileCacheValid): hot files
cost no open per request, a change or a deletion is seen within the validity, a file
replaced while it is being sent still goes out whole, and no descriptor leaks."""

from __future__ import annotations

import http.client
import os
import resource
import socket
import time

import pytest

from support import settled_fds, site, wait_for

VALID = 0.3
LARGE = 200 * 1024   # above the size kept in memory: served with sendfile from the cache



def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def docroot(tmp_path):
    root = tmp_path / "htdocs"
    root.mkdir()
    return root


@pytest.fixture
def server(start_monkey, docroot):
    return start_monkey(server=[f"OpenFileCacheValid {VALID}"],
                        sites={"default": site("localhost", docroot)})


def test_a_change_and_a_deletion_are_seen_within_the_validity(server, docroot):
    (docroot / "f.txt").write_bytes(b"one\n")
    assert get(server.port, "/f.txt") == (200, b"one\n")
    (docroot / "f.txt").write_bytes(b"two, longer\n")
    assert wait_for(lambda: get(server.port, "/f.txt") == (200, b"two, longer\n"),
                    timeout=VALID + 2)
    (docroot / "f.txt").unlink()
    assert wait_for(lambda: get(server.port, "/f.txt")[0] == 404, timeout=VALID + 2)


def test_a_hot_large_file_keeps_one_descriptor(server, docroot):
    body = os.urandom(LARGE)
    (docroot / "big.bin").write_bytes(body)
    (worker,) = server.worker_pids()
    assert get(server.port, "/big.bin") == (200, body)
    before = settled_fds(worker)
    for _ in range(30):
        assert get(server.port, "/big.bin") == (200, body)
    assert settled_fds(worker) == before


def test_a_file_replaced_while_it_is_sent_goes_out_whole_and_is_then_let_go(server, docroot):
    old = os.urandom(32 * 1024 * 1024)
    path = docroot / "moving.bin"
    path.write_bytes(old)
    (worker,) = server.worker_pids()
    baseline = settled_fds(worker)
    # A client that does not read yet keeps the old version's descriptor in use (32 MB
    # do not fit in the sockets' buffers).
    slow = socket.create_connection(("127.0.0.1", server.port))
    slow.sendall(b"GET /moving.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    first = slow.recv(4096)
    assert first.startswith(b"HTTP/1.1 200")
    new = os.urandom(LARGE)
    replacement = docroot / "moving.new"
    replacement.write_bytes(new)
    os.replace(replacement, path)
    assert wait_for(lambda: get(server.port, "/moving.bin") == (200, new), timeout=VALID + 2)
    received = bytearray(first)
    while chunk := slow.recv(1 << 16):
        received.extend(chunk)
    slow.close()
    assert bytes(received).split(b"\r\n\r\n", 1)[1] == old
    # The new version is cached now; the old one's descriptor was closed with its last
    # response.
    assert settled_fds(worker) == baseline + 1


def test_without_the_cache_every_request_opens_the_file(start_monkey, docroot):
    server = start_monkey(server=["OpenFileCache 0"], sites={"default": site("localhost", docroot)})
    (docroot / "f.txt").write_bytes(b"one\n")
    (docroot / "big.bin").write_bytes(b"x" * LARGE)
    (worker,) = server.worker_pids()
    assert get(server.port, "/f.txt") == (200, b"one\n")
    assert get(server.port, "/big.bin")[0] == 200
    before = settled_fds(worker)
    (docroot / "f.txt").write_bytes(b"two\n")
    assert get(server.port, "/f.txt") == (200, b"two\n")       # at once
    for _ in range(10):
        assert get(server.port, "/big.bin") == (200, b"x" * LARGE)
    assert settled_fds(worker) == before


def test_a_bad_validity_stops_the_start(start_monkey):
    with pytest.raises(RuntimeError, match=r"monkey.conf:\d+: 0 seconds"):
        start_monkey(server=["OpenFileCacheValid 0"])


def test_out_of_descriptors_is_503_not_403(server, docroot):
    """A worker that runs out of descriptors says so (503, Retry-After) and recovers."""
    (docroot / "late.txt").write_bytes(b"late\n")
    (worker,) = server.worker_pids()
    soft, hard = resource.prlimit(worker, resource.RLIMIT_NOFILE)
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client.sendall(b"GET /late.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"[:10])
        # The connection is accepted: now leave the worker no descriptor to open with
        # (the limit is on descriptor numbers: the lowest free one is the next it gets).
        time.sleep(0.3)
        used = {int(name) for name in os.listdir(f"/proc/{worker}/fd")}
        lowest_free = next(number for number in range(len(used) + 1) if number not in used)
        resource.prlimit(worker, resource.RLIMIT_NOFILE, (lowest_free, hard))
        try:
            client.sendall(b"GET /late.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"[10:])
            answer = client.recv(65536)
        finally:
            resource.prlimit(worker, resource.RLIMIT_NOFILE, (soft, hard))
    assert answer.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in answer
    assert "answering 503" in server.log()
    assert get(server.port, "/late.txt") == (200, b"late\n")
