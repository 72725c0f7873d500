"""WebSocket through the proxy: the upgrade handshake, then a tunnel that carries frames
both ways and closes when either side does."""

from __future__ import annotations

import os

import pytest

from proxy_support import entry, half_close_upgraded, start_proxy, total_active
from support import wait_for
from rawhttp import Client
from upstreams import (
    collect_then_answer, read_websocket_frame, websocket_accept, websocket_echo,
    websocket_frame, websocket_server,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
HANDSHAKE = (
    "GET /ws/chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
    f"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
).encode()
TEXT, CLOSE = 0x1, 0x8


@pytest.fixture(scope="module")
def setup(module_monkey, module_upstreams):
    echo = module_upstreams("echo", websocket_echo)
    greeter = module_upstreams("greeter", websocket_server(greeting=b"welcome"))
    collector = module_upstreams("collector", collect_then_answer)
    proxy = start_proxy(module_monkey, entry("^/ws/", echo), entry("^/greet/", greeter),
                        entry("^/short/", echo, TunnelTimeout=0.5),
                        entry("^/collect/", collector))
    return proxy, echo


@pytest.fixture
def echo(setup):
    return setup[1]


def masked(opcode: int, data: bytes) -> bytes:
    return websocket_frame(opcode, data, os.urandom(4))


def open_socket(client: Client, first_frames: bytes = b"", target: str = "/ws/chat") -> None:
    """Send the handshake (and any frames right behind it); check the 101."""
    client.send(HANDSHAKE.replace(b"/ws/chat", target.encode()) + first_frames)
    response = client.read_head()
    assert response.status == 101, response
    assert response.header("Upgrade").lower() == "websocket"
    assert "upgrade" in response.header("Connection").lower()
    assert response.header("Sec-WebSocket-Accept") == websocket_accept(KEY)


def test_frames_are_echoed_through_the_tunnel(proxy, echo):
    with Client(proxy.port) as client:
        open_socket(client)
        for message in (b"hello", b"x" * 300, "héllo wörld".encode()):
            client.send(masked(TEXT, message))
            assert read_websocket_frame(client._take) == (TEXT, message)
        received = echo.last()
        assert received.header("Upgrade") == "websocket"
        assert received.header("Sec-WebSocket-Key") == KEY
        assert total_active(proxy.port) == 1


def test_a_frame_sent_with_the_handshake_is_not_lost(proxy):
    with Client(proxy.port) as client:
        open_socket(client, masked(TEXT, b"early"))
        assert read_websocket_frame(client._take) == (TEXT, b"early")


def test_the_tunnel_closes_when_the_client_closes(proxy, echo):
    with Client(proxy.port) as client:
        open_socket(client)
        client.send(masked(TEXT, b"ping"))
        assert read_websocket_frame(client._take) == (TEXT, b"ping")
    assert echo.wait_closed_by_peer(echo.last().connection)
    assert wait_for(lambda: total_active(proxy.port) == 0)


def test_the_tunnel_closes_when_the_upstream_closes(proxy):
    with Client(proxy.port) as client:
        open_socket(client)
        client.send(masked(CLOSE, b"\x03\xe8"))
        assert read_websocket_frame(client._take) == (CLOSE, b"\x03\xe8")
        assert client.is_closed(timeout=10)
    assert wait_for(lambda: total_active(proxy.port) == 0)


def test_a_frame_sent_with_the_101_is_not_lost(proxy):
    with Client(proxy.port) as client:
        open_socket(client, target="/greet/chat")
        assert read_websocket_frame(client._take) == (TEXT, b"welcome")
        client.send(masked(TEXT, b"hi"))
        assert read_websocket_frame(client._take) == (TEXT, b"hi")


def test_an_idle_tunnel_closes_after_tunnel_timeout(proxy):
    with Client(proxy.port) as client:
        open_socket(client, target="/short/chat")
        client.send(masked(TEXT, b"hi"))
        assert read_websocket_frame(client._take) == (TEXT, b"hi")
        assert client.is_closed(timeout=10)
    assert wait_for(lambda: total_active(proxy.port) == 0)


def test_a_refused_upgrade_is_an_ordinary_answer(proxy):
    with Client(proxy.port) as client:
        client.send(HANDSHAKE.replace(f"Sec-WebSocket-Key: {KEY}\r\n".encode(), b""))
        response = client.read_response()
        assert response.status == 400 and response.body == b"not a WebSocket handshake"
        assert client.is_closed()


def test_a_half_close_passes_through_the_tunnel(proxy):
    with Client(proxy.port) as client:
        half_close_upgraded(client)
        # The upstream saw the end of the stream, and its answer still comes back.
        assert client.read_to_close() == b"got: first, second"
