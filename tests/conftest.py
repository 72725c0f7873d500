"""Shared fixtures: factories that start real monkey_py servers on ephemeral ports."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import leftovers
from monkey_py.loop import EventLoop
from support import MonkeyProcess, free_port, site, wait_for, write_confdir

RUN_MARK = leftovers.mark_run()


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    """Fail the run if a process a test started outlives it (then kill it)."""
    yield
    if wait_for(lambda: not leftovers.left_behind(RUN_MARK), timeout=10):
        return
    left = leftovers.left_behind(RUN_MARK)
    leftovers.kill(left)
    if left:
        pytest.fail("processes left running after the tests: " + "; ".join(
            f"{pid} {command}" for pid, command in left.items()), pytrace=False)


@pytest.fixture
def loop():
    """A worker's event loop, closed after the test."""
    loop = EventLoop()
    yield loop
    loop.close()


@pytest.fixture
def docroot(tmp_path):
    root = tmp_path / "htdocs"
    root.mkdir()
    (root / "index.html").write_text("<h1>home</h1>\n")
    return root


class ServerFactory:
    """Starts servers, each on its own port, and stops them all at the end of its scope.

    ``Workers 1`` is added unless ``server`` has its own ``Workers`` line.
    """

    def __init__(self, make_base) -> None:
        self._make_base = make_base
        self.started: list[MonkeyProcess] = []

    def __call__(self, server=(), sites=None, plugins=(), plugin_confs=None, args=(), root=None):
        port = free_port()
        base = root or self._make_base()
        default_root = base / "htdocs"
        default_root.mkdir(exist_ok=True)
        workers = [] if any(line.split()[0] == "Workers" for line in server) else ["Workers 1"]
        confdir = write_confdir(
            base, [f"Listen 127.0.0.1:{port}", *workers, *server],
            sites or {"default": site("127.0.0.1 localhost", default_root)},
            list(plugins), plugin_confs,
        )
        proc = MonkeyProcess(confdir, port, *args)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            proc.stop()


@pytest.fixture
def start_monkey(tmp_path):
    """Start a server: ``start_monkey(server=[...], sites={...}, plugins=[...])``.

    The first server's files (``htdocs/``, ``conf/``) are under ``tmp_path``; each later
    one gets ``tmp_path/server-N`` (a reload must read its own configuration back).
    """
    started = itertools.count(1)

    def make_base() -> Path:
        number = next(started)
        if number == 1:
            return tmp_path
        base = tmp_path / f"server-{number}"
        base.mkdir()
        return base

    factory = ServerFactory(make_base)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def module_monkey(tmp_path_factory):
    """``start_monkey`` for module-scoped fixtures: one server shared by a module's tests.

    Each server gets a fresh base directory (``htdocs/`` and ``conf/`` inside it).
    """
    factory = ServerFactory(lambda: tmp_path_factory.mktemp("monkey"))
    yield factory
    factory.stop_all()
