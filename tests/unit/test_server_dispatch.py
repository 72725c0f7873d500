"""Server.dispatch: whatever fails while handling a request, the client gets an answer."""

from __future__ import annotations

import logging

from monkey_py.config import load_config
from monkey_py.loop import EventLoop
from monkey_py.pluginmanager import build_plugin_manager
from monkey_py.server import Server


class Recorder:
    """The parts of a Request that dispatch touches; records the answer."""

    def __init__(self) -> None:
        self.method, self.target, self.host, self.path = "GET", b"/x", b"", b"/x"
        self.site = None
        self.conn = object()
        self.completed = self.response_started = False
        self.keep_alive = True
        self.answers: list[int] = []

    def error(self, status: int, detail: str = "", headers=()) -> None:
        self.answers.append(status)


def test_a_failing_static_handler_answers_500_and_logs(tmp_path, caplog):
    (tmp_path / "sites").mkdir()
    (tmp_path / "htdocs").mkdir()
    (tmp_path / "monkey.conf").write_text("[SERVER]\n    Listen 2001\n")
    (tmp_path / "sites" / "default").write_text(
        f"[HOST]\n    ServerName a\n    DocumentRoot {tmp_path / 'htdocs'}\n")
    config = load_config(tmp_path)
    loop = EventLoop()
    try:
        server = Server(config, build_plugin_manager([]), loop)

        def broken(req):
            raise RuntimeError("a bug")

        server.static.handle = broken
        req = Recorder()
        with caplog.at_level(logging.ERROR):
            server.dispatch(req)
        assert req.answers == [500] and not req.keep_alive
        assert "the static file handler failed on GET /x" in caplog.text
    finally:
        loop.close()
