"""Write failures of the disk store: counted by cause, logged once per cause and
interval (with how many were not logged), never raised."""

from __future__ import annotations

import errno
import logging

from monkey_py_plugins.proxy_reverse.cache.stores import disk_writer
from monkey_py_plugins.proxy_reverse.cache.stores.disk import DiskStore
from monkey_py_plugins.proxy_reverse.cache.stores.store import Meta
from monkey_py_plugins.proxy_reverse.cache.stores.trouble import (
    LOG_INTERVAL,
    FailureLog,
    cause_of,
)

MB = 1 << 20


def test_causes():
    assert cause_of(OSError(errno.ENOSPC, "full")) == "no-space"
    assert cause_of(OSError(errno.EDQUOT, "quota")) == "no-space"
    for code in (errno.EROFS, errno.EACCES, errno.EPERM):
        assert cause_of(OSError(code, "no")) == "read-only"
    assert cause_of(OSError(errno.EIO, "io")) == "other"


def test_each_cause_is_logged_once_per_interval(caplog):
    now = [1000.0]
    failures = FailureLog("nothing is stored", clock=lambda: now[0])
    full = OSError(errno.ENOSPC, "No space left on device")
    with caplog.at_level(logging.ERROR, logger="monkey_py.proxy_reverse"):
        for _ in range(5):
            failures.failed(full, "cannot write x")
        failures.failed(OSError(errno.EROFS, "Read-only file system"), "cannot write y")
        now[0] += LOG_INTERVAL
        failures.failed(full, "cannot write z")
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "cannot write x: No space left on device; nothing is stored",
        "cannot write y: Read-only file system; nothing is stored",
        "cannot write z: No space left on device; nothing is stored (4 more failure(s) of "
        "this kind in the last 60 s)",
    ]
    assert failures.counts == {"no-space": 6, "read-only": 1, "other": 0}


def test_a_full_disk_is_counted_not_raised(tmp_path, monkeypatch, caplog):
    store = DiskStore(str(tmp_path / "cache"), MB, 64 * 1024)

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(disk_writer, "write_all", full)
    meta = Meta(200, [(b"Cache-Control", b"max-age=60")], 1.0, 2.0)
    with caplog.at_level(logging.ERROR, logger="monkey_py.proxy_reverse"):
        for _ in range(3):
            assert store.begin(b"k", [], meta) is None
    stats = store.stats()
    assert stats["write-errors-no-space"] == 3 and stats["errors"] == 3
    assert len(caplog.records) == 1
    assert "No space left on device; responses are not stored" in caplog.records[0].getMessage()
    assert list((tmp_path / "cache").iterdir()) == []  # no temporary file left behind
