"""A worker process: one event loop accepting on its own listeners until told to stop."""

from __future__ import annotations

import errno
import logging
import os
import pwd
import resource
import signal
import socket
from functools import partial

from .loop import EVENT_READ, EventLoop
from .server import Server

log = logging.getLogger(__name__)

ACCEPT_BATCH = 64
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP}


class Worker:
    """Runs in the child process after the fork; ``run()`` returns the exit status."""

    def __init__(self, config, pm, index: int, listeners: list[tuple[socket.socket, object]]
                 ) -> None:
        """``listeners``: each socket with its TLS context (None: plain)."""
        self.config = config
        self.pm = pm
        self.index = index
        self.listeners = listeners
        self.loop: EventLoop | None = None
        self.server: Server | None = None
        self._stopping = False
        self._instance_stopping = False

    def run(self) -> int:
        raise_fd_limit()
        if self.config.server.user:
            drop_privileges(self.config.server.user)
        self.loop = loop = EventLoop()
        self.server = Server(self.config, self.pm, loop)
        self.server.on_empty = self._maybe_finish
        loop.add_signal_handler(signal.SIGTERM, self._graceful)
        loop.add_signal_handler(signal.SIGINT, self._graceful)
        loop.add_signal_handler(signal.SIGQUIT, lambda _: loop.stop())
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        # The master blocked these around the fork; a signal that came since is
        # delivered now, to the handlers above.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        for sock, tls in self.listeners:
            sock.setblocking(False)
            loop.add(sock, EVENT_READ, partial(self._accept, sock, tls))
        self.pm.hook.monkey_worker_start(worker=self)
        try:
            loop.run()
        finally:
            for conn in list(self.server.connections):
                conn.close()
            self.server.static.close()
            self.pm.hook.monkey_worker_stop(worker=self)
            loop.close()
        return 0

    def _accept(self, listener: socket.socket, tls, _mask: int) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors: stop accepting for a moment instead of spinning.
                    log.error("accept failed: %s; pausing accepts for 1 second", exc)
                    self.loop.remove(listener)
                    self.loop.call_later(1.0, partial(self._resume_accept, listener, tls))
                    return
                continue
            sock.setblocking(False)
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.server.accept(sock, peer, tls)

    def _resume_accept(self, listener: socket.socket, tls) -> None:
        if not self._stopping:
            self.loop.add(listener, EVENT_READ, partial(self._accept, listener, tls))

    def _graceful(self, signum: int) -> None:
        """Stop accepting, let in-flight requests finish (bounded by Timeout), then exit.

        SIGINT says the whole instance stops (the master sends it then, as a terminal's
        Ctrl-C does to every process); SIGTERM alone retires this worker (a reload).
        """
        if signum == signal.SIGINT and not self._instance_stopping:
            self._instance_stopping = True
            try:
                self.pm.hook.monkey_instance_stopping(worker=self)
            except Exception:
                log.exception("a plugin failed when told the instance is stopping")
        if self._stopping:
            return
        self._stopping = True
        for sock, _ in self.listeners:
            self.loop.remove(sock)
            sock.close()
        self.server.drain()
        self.loop.call_later(self.server.params.timeout, self.loop.stop)
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if self._stopping and not self.server.connections:
            self.loop.stop()


def raise_fd_limit() -> None:
    """Lift the soft descriptor limit to the hard one: each connection is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def drop_privileges(user: str) -> None:
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
