"""The disk store checks what it serves and says what it cannot write: bodies carry a
checksum (small ones checked on every read, large ones in the background), and write
failures are logged and counted, through the real proxy (docs/proxy_cache.md, Stores)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cache_support import Answer, Routes, fetches, store_figures
from proxy_support import entry, proxy_conf
from rawhttp import Client
from support import MonkeyProcess, free_port, site, wait_for, write_confdir
from upstreams import Upstreams, payload

from monkey_py_plugins.proxy_reverse.cache.stores.disk_files import file_name

MAX_AGE = [("Cache-Control", "max-age=600")]
SMALL = payload(10_000)
LARGE = payload(300_000)


@pytest.fixture
def upstream():
    with Upstreams() as start:
        routes = Routes()
        routes.set("/small", Answer(body=SMALL, headers=MAX_AGE))
        routes.set("/large", Answer(body=LARGE, headers=MAX_AGE))
        yield start("origin", routes)


class DiskProxy:
    """A proxy with a disk store in ``directory``, which can be restarted on it."""

    def __init__(self, tmp_path: Path, upstream) -> None:
        self.tmp_path = tmp_path
        self.upstream = upstream
        self.port = free_port()
        self.directory = tmp_path / "conf" / "cache"
        (tmp_path / "htdocs").mkdir()
        self.process: MonkeyProcess | None = None

    def start(self) -> None:
        confdir = write_confdir(
            self.tmp_path, [f"Listen 127.0.0.1:{self.port}", "Workers 2"],
            {"default": site("localhost", self.tmp_path / "htdocs")}, ["proxy_reverse"],
            {"proxy_reverse": proxy_conf(entry("^/", self.upstream, Cache="On"),
                                         CacheStore="disk", CacheDirectory="cache")})
        self.process = MonkeyProcess(confdir, self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def get(self, target: str) -> bytes:
        with Client(self.port, timeout=10) as client:
            response = client.request("GET", target)
        assert response.status == 200
        return response.body

    def file(self, target: str) -> Path:
        return self.directory / file_name(b"http://localhost" + target.encode())


@pytest.fixture
def disk(tmp_path, upstream):
    proxy = DiskProxy(tmp_path, upstream)
    proxy.start()
    yield proxy
    proxy.stop()


def flip(path: Path, offset_from_end: int = 5000, count: int = 16) -> int:
    """Flip ``count`` body bytes in place; returns the file's inode."""
    with open(path, "r+b") as file:
        file.seek(-offset_from_end, os.SEEK_END)
        data = file.read(count)
        file.seek(-offset_from_end, os.SEEK_END)
        file.write(bytes(byte ^ 0xFF for byte in data))
    return path.stat().st_ino


def replaced(path: Path, inode: int) -> bool:
    """The damaged file is gone (removed, or stored anew under another inode)."""
    try:
        return path.stat().st_ino != inode
    except FileNotFoundError:
        return True


def check_served_intact(disk: DiskProxy, target: str, body: bytes) -> None:
    """After damage: a small body is never served damaged; a large one (sent with
    sendfile) at most until its background check removes it; then 20 of 20 intact."""
    # The response is stored when its last byte is written: it may be on its way first.
    assert wait_for(lambda: disk.file(target).exists())
    inode = flip(disk.file(target))
    if body is LARGE:
        disk.get(target)  # this hit starts the check, and may carry the damage
        assert wait_for(lambda: replaced(disk.file(target), inode), timeout=10)
    for _ in range(20):
        assert disk.get(target) == body


@pytest.mark.parametrize("target, body", [("/small", SMALL), ("/large", LARGE)],
                         ids=["small", "large"])
def test_a_body_damaged_on_disk_is_dropped_not_served(disk, upstream, target, body):
    assert disk.get(target) == body
    check_served_intact(disk, target, body)
    assert fetches(upstream, target) == 2
    assert "does not match its checksum" in disk.process.log()


@pytest.mark.parametrize("target, body", [("/small", SMALL), ("/large", LARGE)],
                         ids=["small", "large"])
def test_a_body_damaged_while_the_server_was_down_is_dropped(disk, upstream, target, body):
    assert disk.get(target) == body
    disk.stop()
    disk.start()
    check_served_intact(disk, target, body)
    assert fetches(upstream, target) == 2


class ReadOnly:
    """Makes directories read-only for this server, root included: immutable as root
    (permission bits do not stop root), mode 0555 otherwise."""

    def __init__(self, *directories: Path) -> None:
        self.directories = directories
        self.root = os.geteuid() == 0

    def __enter__(self) -> "ReadOnly":
        for directory in self.directories:
            if self.root:
                subprocess.run(["chattr", "+i", str(directory)], check=True)
            else:
                directory.chmod(0o555)
        return self

    def __exit__(self, *exc) -> None:
        for directory in self.directories:
            if self.root:
                subprocess.run(["chattr", "-i", str(directory)], check=True)
            else:
                directory.chmod(0o700)


def test_a_read_only_cache_directory_is_logged_once_and_counted(disk, upstream):
    for index in range(10):
        upstream.behaviour.set(f"/ro/{index}", Answer(body=b"still served", headers=MAX_AGE))
    with ReadOnly(disk.directory, disk.directory / ".locks"):
        for index in range(10):
            with Client(disk.port, timeout=10) as client:
                answer = client.request("GET", f"/ro/{index}")
            assert answer.body == b"still served"
            assert answer.header("Cache-Status") == "monkey_py; fwd=miss; fwd-status=200"
        store = store_figures(disk.port)
        assert store["write_errors"] == {"no-space": 0, "read-only": 10, "other": 0}
        log = disk.process.log()
        # Once per worker and cause within the interval, not once per request.
        assert 1 <= log.count("cannot create a file") <= 2
        assert 1 <= log.count("collapsing across workers is off") <= 2
        assert "responses are not stored until this is repaired" in log
        disk.stop()
        # At start, a cache directory the server cannot write stops it (file and line).
        with pytest.raises(RuntimeError, match="cache directory .*: Permission denied"):
            disk.start()


def test_lock_files_that_cannot_be_made_are_said_at_start(disk):
    disk.stop()
    with ReadOnly(disk.directory / ".locks"):
        disk.start()
        started = disk.process.log()
        assert "cannot create lock files" in started
        assert "collapsing across workers is off" in started
        assert disk.get("/small") == SMALL
