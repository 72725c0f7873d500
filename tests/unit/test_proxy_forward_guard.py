"""A bug in the proxy's event handling costs only its request: the client gets 500."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from monkey_py_plugins.proxy_reverse.forwarding.forward import Forward


class Client:
    """The parts of a Request a Forward touches before it sends anything."""

    method, target, upgrade, content_length = "GET", b"/x", None, 0
    has_body = False
    on_abort = on_drain = None

    def __init__(self) -> None:
        self.answers: list[int] = []

    def error(self, status: int, detail: str = "", headers=()) -> None:
        self.answers.append(status)


def test_an_exception_in_an_event_answers_500(caplog):
    """The upstream connection's stream hands a callback's exception to ``crashed``
    (tests/unit/test_stream.py); the Forward answers its client and is done."""
    client = Client()
    forward = Forward(SimpleNamespace(loop=None), SimpleNamespace(settings=None), client)
    with caplog.at_level(logging.ERROR):
        forward.crashed(RuntimeError("a bug"))
    assert client.answers == [500] and forward.finished
    assert "proxy_reverse failed on GET /x" in caplog.text
    assert "a bug" in caplog.text
