"""Shared fixtures: a factory that starts real monkey_py servers on ephemeral ports."""

from __future__ import annotations

import pytest

from support import MonkeyProcess, free_port, site, write_confdir


@pytest.fixture
def docroot(tmp_path):
    root = tmp_path / "htdocs"
    root.mkdir()
    (root / "index.html").write_text("<h1>home</h1>\n")
    return root


@pytest.fixture
def start_monkey(tmp_path):
    """Start a server: ``start_monkey(server=[...], sites={...}, plugins=[...])``."""
    started: list[MonkeyProcess] = []

    def start(server=(), sites=None, plugins=(), plugin_confs=None, args=(), root=None):
        port = free_port()
        base = root or tmp_path
        default_root = base / "htdocs"
        default_root.mkdir(exist_ok=True)
        confdir = write_confdir(
            base, [f"Listen 127.0.0.1:{port}", "Workers 1", *server],
            sites or {"default": site("127.0.0.1 localhost", default_root)},
            list(plugins), plugin_confs,
        )
        proc = MonkeyProcess(confdir, port, *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
