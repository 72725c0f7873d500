"""The stream layer on real socket pairs: writes, queueing and backpressure, sendfile,
the deadline, errors, detaching, connecting, and a protocol's bug."""

from __future__ import annotations

import errno
import os
import socket

import pytest

from monkey_py.http.stream import HIGH_WATER, Stream


class Recorder:
    """A protocol that records every call."""

    def __init__(self) -> None:
        self.calls: list = []

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args: self.calls.append((name, *args))


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def idle(loop, seconds: float) -> None:
    """Run the loop for ``seconds``."""
    done = []
    loop.call_later(seconds, lambda: done.append(True))
    run(loop, lambda: done)


def run(loop, until, rounds: int = 200) -> None:
    for _ in range(rounds):
        if until():
            return
        loop.run_once()
    raise AssertionError("the condition was not reached")


def test_reads_go_to_the_protocol_then_eof(loop, pair):
    ours, theirs = pair
    protocol = Recorder()
    stream = Stream(ours, loop, protocol)
    stream.update()
    theirs.sendall(b"hello")
    run(loop, lambda: protocol.calls)
    assert protocol.calls == [("data_received", b"hello")]
    theirs.shutdown(socket.SHUT_WR)
    run(loop, lambda: len(protocol.calls) == 2)
    assert protocol.calls[1] == ("eof_received",)


def test_a_stream_not_reading_is_not_read(loop, pair):
    ours, theirs = pair
    protocol = Recorder()
    stream = Stream(ours, loop, protocol, reading=False)
    stream.update()
    theirs.sendall(b"x")
    idle(loop, 0.03)
    assert protocol.calls == []
    stream.set_reading(True)
    run(loop, lambda: protocol.calls)
    assert protocol.calls == [("data_received", b"x")]


def test_a_write_the_socket_takes_leaves_nothing_queued(loop, pair):
    ours, theirs = pair
    stream = Stream(ours, loop, Recorder())
    assert stream.write(b"abc") is True
    assert not stream.queue and stream.mask == 0
    assert theirs.recv(10) == b"abc"


def test_backpressure_queue_then_drain_once(loop, pair):
    ours, theirs = pair
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    protocol = Recorder()
    stream = Stream(ours, loop, protocol, reading=False)
    chunk = b"x" * 65536
    results = [stream.write(chunk) for _ in range(8)]
    assert stream.queued > HIGH_WATER and results[-1] is False
    assert stream.mask  # waiting for the socket to be writable
    received = bytearray()
    theirs.setblocking(False)

    def drained():
        try:
            received.extend(theirs.recv(1 << 20))
        except BlockingIOError:
            pass
        return ("write_drained",) in protocol.calls

    run(loop, drained, rounds=10000)
    while len(received) < 8 * 65536:
        received.extend(theirs.recv(1 << 20))
    assert bytes(received) == chunk * 8
    assert protocol.calls.count(("write_drained",)) == 1
    assert stream.queued == 0 and stream.mask == 0


def test_sendfile_sends_the_slice_and_releases_the_descriptor(loop, pair, tmp_path):
    ours, theirs = pair
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDONLY)
    released = []
    stream = Stream(ours, loop, Recorder())
    stream.write(b"<", more=True)
    stream.sendfile(fd, 2, 5, released.append)
    stream.write(b">")
    assert theirs.recv(100) == b"<23456>"
    assert released == [fd]
    os.close(fd)


def test_closing_releases_queued_files(loop, pair, tmp_path):
    ours, theirs = pair
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    path = tmp_path / "big"
    path.write_bytes(b"y" * (4 << 20))
    fd = os.open(path, os.O_RDONLY)
    released = []
    stream = Stream(ours, loop, Recorder())
    stream.sendfile(fd, 0, 4 << 20, released.append)
    assert stream.queue and not released
    stream.close()
    assert released == [fd] and stream.closed
    os.close(fd)
    # Writing to a closed stream does nothing; a file handed to it is released at once.
    assert stream.write(b"late") is False
    fd = os.open(path, os.O_RDONLY)
    stream.sendfile(fd, 0, 10, released.append)
    assert released[-1] == fd
    os.close(fd)


def test_a_failed_write_closes_and_tells_the_protocol(loop, pair):
    ours, theirs = pair
    protocol = Recorder()
    stream = Stream(ours, loop, protocol)
    theirs.close()
    stream.write(b"a" * 100)
    stream.write(b"b" * 100)
    assert stream.closed
    name, exc = protocol.calls[0]
    assert name == "connection_lost" and exc.errno in (errno.EPIPE, errno.ECONNRESET)
    assert len(protocol.calls) == 1


def test_the_deadline_rings_once_and_moves_without_a_new_timer(loop, pair):
    ours, _ = pair
    protocol = Recorder()
    stream = Stream(ours, loop, protocol)
    stream.arm(loop.time() + 0.02)
    timer = stream.timer
    stream.arm(loop.time() + 0.05)  # later: the same timer, re-armed when it fires
    assert stream.timer is timer
    run(loop, lambda: protocol.calls)
    assert protocol.calls == [("timed_out",)]
    assert stream.deadline == 0.0


def test_a_deadline_of_zero_never_rings(loop, pair):
    ours, _ = pair
    protocol = Recorder()
    stream = Stream(ours, loop, protocol)
    stream.arm(loop.time() + 0.01)
    stream.deadline = 0.0
    idle(loop, 0.05)
    assert protocol.calls == [] and stream.timer is None


def test_write_timeout_bounds_queued_output(loop, pair):
    ours, theirs = pair
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    protocol = Recorder()
    stream = Stream(ours, loop, protocol, reading=False)
    stream.write_timeout = 0.05
    stream.write(b"z" * (1 << 20))
    assert stream.queue
    run(loop, lambda: protocol.calls)
    assert protocol.calls == [("timed_out",)]


def test_detach_returns_the_socket_and_the_unsent_bytes(loop, pair):
    ours, theirs = pair
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    stream = Stream(ours, loop, Recorder())
    stream.update()
    stream.write(b"q" * (1 << 20))
    sock, unsent = stream.detach()
    assert sock is ours and not sock._closed
    assert 0 < len(unsent) <= 1 << 20 and set(unsent) == {ord("q")}
    assert stream.closed and not stream.queue and loop.selector.get_map().get(ours) is None


def test_connect_reports_connected_or_refused(loop):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    address = listener.getsockname()
    protocol = Recorder()
    sock = socket.socket()
    sock.setblocking(False)
    stream = Stream(sock, loop, protocol, reading=False)
    stream.connect(address)
    run(loop, lambda: protocol.calls)
    assert protocol.calls == [("connected",)]
    stream.close()
    listener.close()
    protocol = Recorder()
    sock = socket.socket()
    sock.setblocking(False)
    stream = Stream(sock, loop, protocol, reading=False)
    stream.connect(address)
    run(loop, lambda: protocol.calls)
    assert protocol.calls[0][0] == "connection_lost"
    assert protocol.calls[0][1].errno == errno.ECONNREFUSED and stream.closed


def test_a_protocol_bug_is_handed_to_crashed(loop, pair):
    ours, theirs = pair

    class Broken(Recorder):
        def data_received(self, data):
            raise RuntimeError("a bug")

    protocol = Broken()
    stream = Stream(ours, loop, protocol)
    stream.update()
    theirs.sendall(b"x")
    run(loop, lambda: protocol.calls)
    name, exc = protocol.calls[0]
    assert name == "crashed" and str(exc) == "a bug"
