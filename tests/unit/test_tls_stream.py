"""TLS on the stream layer, on real socket pairs with certificates made by trustme:
the handshake, data both ways, files in chunks, plain bytes sniffed on a TLS port."""

from __future__ import annotations

import socket
import ssl

import pytest
import trustme

from monkey_py.http.stream import Stream
from monkey_py.http.tls import TlsLayer, describe_error


class Recorder:
    def __init__(self) -> None:
        self.calls: list = []
        self.data = b""

    def data_received(self, data: bytes) -> None:
        self.data += data

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args: self.calls.append((name, *args))


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def contexts(ca):
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("example.test").configure_cert(server)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client)
    return server, client


def run(loop, until, rounds: int = 500) -> None:
    for _ in range(rounds):
        if until():
            return
        loop.call_later(0.01, lambda: None)
        loop.run_once()
    raise AssertionError("the condition was not reached")


def pair(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    server, client = Recorder(), Recorder()
    return Stream(a, loop, server), server, Stream(b, loop, client), client


def test_handshake_then_data_both_ways(loop, contexts):
    server_ctx, client_ctx = contexts
    server_stream, server, client_stream, client = pair(loop)
    TlsLayer(server_stream, server_ctx, True).sniff()
    TlsLayer(client_stream, client_ctx, False, "example.test").start()
    run(loop, lambda: ("connected",) in client.calls)
    client_stream.write(b"hello over tls")
    run(loop, lambda: server.data == b"hello over tls")
    assert server_stream.write(b"x" * 300_000) is True or server_stream.queue
    run(loop, lambda: len(client.data) == 300_000)
    assert client.data == b"x" * 300_000


def test_a_file_goes_through_tls_in_chunks(loop, contexts, tmp_path):
    server_ctx, client_ctx = contexts
    server_stream, server, client_stream, client = pair(loop)
    TlsLayer(server_stream, server_ctx, True).sniff()
    TlsLayer(client_stream, client_ctx, False, "example.test").start()
    run(loop, lambda: ("connected",) in client.calls)
    content = bytes(range(256)) * 4096           # 1 MiB
    path = tmp_path / "f"
    path.write_bytes(content)
    import os
    fd = os.open(path, os.O_RDONLY)
    released = []
    server_stream.write(b"<")
    server_stream.sendfile(fd, 10, len(content) - 20, released.append)
    server_stream.write(b">")
    run(loop, lambda: len(client.data) == len(content) - 20 + 2)
    assert client.data == b"<" + content[10:-10] + b">" and released == [fd]
    os.close(fd)


def test_a_certificate_for_another_name_fails_the_handshake(loop, contexts):
    server_ctx, client_ctx = contexts
    server_stream, server, client_stream, client = pair(loop)
    TlsLayer(server_stream, server_ctx, True).sniff()
    TlsLayer(client_stream, client_ctx, False, "other.test").start()
    run(loop, lambda: client.calls)
    name, exc = client.calls[0]
    assert name == "connection_lost" and isinstance(exc, ssl.SSLCertVerificationError)
    assert client_stream.closed


def test_plain_bytes_on_a_tls_port_are_handed_on_as_they_are(loop, contexts):
    server_ctx, _ = contexts
    a, b = socket.socketpair()
    a.setblocking(False)
    server = Recorder()
    stream = Stream(a, loop, server)
    TlsLayer(stream, server_ctx, True).sniff()
    b.sendall(b"GET / HTTP/1.1\r\n\r\n")
    run(loop, lambda: server.data)
    assert server.calls == [("plain_on_tls_port",)]
    assert server.data == b"GET / HTTP/1.1\r\n\r\n" and stream.tls is None
    b.close()


def test_a_stream_made_on_a_detached_tls_socket_carries_on_with_tls(loop, contexts):
    server_ctx, client_ctx = contexts
    server_stream, server, client_stream, client = pair(loop)
    TlsLayer(server_stream, server_ctx, True).sniff()
    TlsLayer(client_stream, client_ctx, False, "example.test").start()
    run(loop, lambda: ("connected",) in client.calls)
    client_stream.write(b"before")
    run(loop, lambda: server.data == b"before")
    sock, unsent = server_stream.detach()     # a tunnel takes the server side over
    assert isinstance(sock, ssl.SSLSocket) and unsent == b""
    tunnel = Recorder()
    adopted = Stream(sock, loop, tunnel)
    assert adopted.tls is not None
    adopted.update()
    client_stream.write(b"after")
    run(loop, lambda: tunnel.data == b"after")
    adopted.write(b"y" * 200_000)
    run(loop, lambda: len(client.data) == 200_000)
    assert client.data == b"y" * 200_000
    adopted.close()
    client_stream.close()


def connected_pair(loop, contexts, session=None):
    """A TLS server stream and client stream, the handshake done."""
    server_ctx, client_ctx = contexts
    server_stream, server, client_stream, client = pair(loop)
    TlsLayer(server_stream, server_ctx, True).sniff()
    TlsLayer(client_stream, client_ctx, False, "example.test", session).start()
    run(loop, lambda: ("connected",) in client.calls)
    return server_stream, server, client_stream, client


def test_a_client_resumes_the_session_it_is_given(loop, contexts):
    server_stream, server, client_stream, client = connected_pair(loop, contexts)
    server_stream.write(b"hi")        # a TLS 1.3 session ticket comes before it
    run(loop, lambda: client.data == b"hi")
    first = client_stream.tls.sock
    assert not first.session_reused
    session = first.session
    server_stream.close()
    client_stream.close()
    _, _, again, _ = connected_pair(loop, contexts, session)
    assert again.tls.sock.session_reused
    again.close()


def test_a_failed_client_handshake_is_the_protocols_to_report(loop, contexts, caplog):
    server_ctx, client_ctx = contexts
    server_stream, server, client_stream, client = pair(loop)
    TlsLayer(server_stream, server_ctx, True).sniff()
    TlsLayer(client_stream, client_ctx, False, "other.test").start()
    run(loop, lambda: client.calls)
    assert describe_error(client.calls[0][1]) == (
        "certificate verify failed: Hostname mismatch, certificate is not valid for "
        "'other.test'")
    # The server side logs its own failed handshakes; the client's stream does not.
    assert not [r for r in caplog.records if "other.test" in r.getMessage()]
    server_stream.close()


@pytest.mark.parametrize("error, text", [
    (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"),
     "wrong version number"),
    (ConnectionRefusedError(111, "Connection refused"), "Connection refused"),
    (TimeoutError("timed out"), "timed out"),
])
def test_describe_error(error, text):
    assert describe_error(error) == text


def test_an_idle_tls_stream_is_alive_until_the_peer_ends_it(loop, contexts):
    server_stream, server, client_stream, client = connected_pair(loop, contexts)
    client_stream.set_reading(False)             # as if idle and not yet read
    # The server's TLS 1.3 session tickets arrive after the handshake: no data.
    run(loop, lambda: server_stream.setup is None and _readable(client_stream.sock))
    assert client_stream.idle_alive()
    assert not _readable(client_stream.sock)     # they were taken in passing
    server_stream.write(b"unasked")
    run(loop, lambda: _readable(client_stream.sock))
    assert not client_stream.idle_alive()        # data nobody asked for: not reusable
    server_stream, server, client_stream, client = connected_pair(loop, contexts)
    client_stream.set_reading(False)
    server_stream.close()
    run(loop, lambda: _readable(client_stream.sock))
    assert not client_stream.idle_alive()


def test_an_idle_plain_stream_is_alive_until_the_peer_ends_it(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    stream = Stream(a, loop, Recorder(), reading=False)
    assert stream.idle_alive()
    b.close()
    assert not stream.idle_alive()
    stream.close()


def _readable(sock) -> bool:
    """Whether the raw socket has anything to read: bytes, an end or a reset."""
    try:
        socket.socket.recv(sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        pass
    return True
