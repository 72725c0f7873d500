"""The master process: owns the listeners, forks workers, replaces the dead, reloads.

Each worker slot has its own ``SO_REUSEPORT`` listener, created here and inherited by
the worker at fork. The master keeps every listener open until it stops or a reload
drops its address, so a replaced or reloaded worker takes over a socket whose accept
queue was never closed: no connection is refused across a crash or a reload. The first listener of an address is
opened exclusively, so another server already on that address (another monkey_py
included) makes the start fail instead of sharing its traffic. Signals only enqueue;
the loop dispatches them.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field

from .config import Config, ConfigError, Listen, Location
from .loop import EventLoop
from .pluginmanager import build_plugin_manager, claimed_site_sections
from .worker import STOP_SIGNALS, Worker, raise_fd_limit

log = logging.getLogger(__name__)

BACKLOG = 1024
# A worker that dies sooner than this after its start is restarted after a pause.
MIN_WORKER_LIFE = 1.0
RESPAWN_DELAY = 1.0
KILL_MARGIN = 5.0
ADDRESS_IN_USE_HINT = (
    " (another server listens there; stop it, or listen on another address)"
)


def prepare(config: Config):
    """Build and check everything a configuration needs; raises ConfigError."""
    pm = build_plugin_manager(config.plugins)
    config.check_site_sections(claimed_site_sections(pm))
    if config.server.tls_listens() and not pm.hook.monkey_tls_context.get_hookimpls():
        raise ConfigError(
            f"Listen {config.server.tls_listens()[0]}: a TLS listener needs a plugin that "
            "provides certificates: add 'Load tls' to plugins.load (see docs/tls.md)",
            Location(str(config.directory / "monkey.conf")))
    pm.hook.monkey_check_config(config=config)
    return pm


def tls_context(gen: "Generation"):
    """The TLS context of a configuration's ``tls`` listeners, from its plugin; or None."""
    if not gen.config.server.tls_listens():
        return None
    return gen.pm.hook.monkey_tls_context(config=gen.config)


@dataclass
class Generation:
    """The workers of one configuration."""

    config: Config
    pm: object
    count: int
    slots: dict[int, list[socket.socket]]
    workers: dict[int, tuple[int, float]] = field(default_factory=dict)  # pid -> (slot, start)
    # The TLS listeners (their sockets' ids) and their context.
    secure: set[int] = field(default_factory=set)
    tls: object = None


class Master:
    def __init__(self, config: Config, pm, reload_config) -> None:
        self.loop = EventLoop()
        self.current = Generation(config, pm, config.server.worker_count(), {})
        self.old: list[Generation] = []
        self.reload_config = reload_config
        self.listeners: dict[tuple[Listen, int], socket.socket] = {}  # (address, slot)
        self.stopping = False

    # -- start --------------------------------------------------------------------
    def run(self) -> int:
        gen = self.current
        # The master holds a listener per address and worker: up to 1024 per address.
        raise_fd_limit()
        gen.pm.hook.monkey_configure(config=gen.config)
        gen.tls = tls_context(gen)
        gen.slots = self._listeners_for(gen)
        for listen in gen.config.server.listen:
            log.info("listening on %s with %d worker(s)", listen, gen.count)
        self._write_pid()
        loop = self.loop
        loop.add_signal_handler(signal.SIGCHLD, self._child_exited)
        loop.add_signal_handler(signal.SIGTERM, self._stop)
        loop.add_signal_handler(signal.SIGINT, self._stop)
        loop.add_signal_handler(signal.SIGQUIT, self._stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        for slot in range(gen.count):
            self._spawn(gen, slot)
        try:
            loop.run()
        finally:
            self._remove_pid()
            self._close_listeners()
            for generation in (self.current, *self.old):
                try:
                    generation.pm.hook.monkey_unconfigure(config=generation.config)
                except Exception:
                    log.exception("a plugin failed to release its configuration")
        log.info("stopped")
        return 0

    def _listeners_for(self, gen: Generation) -> dict[int, list[socket.socket]]:
        """One listener per (address, slot), reusing the sockets that already exist.

        When a reload lowers the worker count, the listeners of the slots beyond it stay
        open and go to the remaining workers: closing one would reset the connections
        the kernel already queued on it.
        """
        slots: dict[int, list[socket.socket]] = {}
        for listen in gen.config.server.listen:
            slot = 0
            while slot < gen.count or (listen, slot) in self.listeners:
                sock = self.listeners.get((listen, slot))
                if sock is None:
                    sock = self.listeners[listen, slot] = open_listener(
                        listen, first=not self._holds_overlapping(listen))
                slots.setdefault(slot % gen.count, []).append(sock)
                if listen.tls:
                    gen.secure.add(id(sock))
                slot += 1
        return slots

    def _holds_overlapping(self, listen: Listen) -> bool:
        """True when the master listens on ``listen`` or an address overlapping it.

        Then the address is already the master's: a new listener joins with
        ``SO_REUSEPORT``, for an exclusive one would fail on the master's own socket (a
        reload that turns ``127.0.0.1:P`` into ``0.0.0.0:P``).
        """
        return any(held.covers(listen) or listen.covers(held) for held, _ in self.listeners)

    def _spawn(self, gen: Generation, slot: int) -> None:
        # Stop signals stay blocked across the fork until the worker has its handlers,
        # so a SIGTERM sent right after a start or reload is not lost.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            raise
        if pid == 0:
            status = 1
            try:
                self.loop.close()
                for sig in (signal.SIGCHLD, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                mine = {id(s) for s in gen.slots[slot]}
                for sock in self.listeners.values():
                    if id(sock) not in mine:
                        sock.close()
                listeners = [(sock, gen.tls if id(sock) in gen.secure else None)
                             for sock in gen.slots[slot]]
                status = Worker(gen.config, gen.pm, slot, listeners).run()
            except BaseException:
                log.exception("worker %d crashed", slot)
            finally:
                os._exit(status)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        gen.workers[pid] = (slot, time.monotonic())

    def _close_listeners(self) -> None:
        for sock in self.listeners.values():
            sock.close()
        self.listeners.clear()

    def _close_unused_listeners(self) -> None:
        """Close the listeners the current workers do not use (addresses a reload dropped).

        The previous workers closed their own copies when told to stop, so nobody would
        accept from these: closed, they refuse new connections instead of queueing them.
        """
        in_use = {id(s) for socks in self.current.slots.values() for s in socks}
        for key, sock in list(self.listeners.items()):
            if id(sock) not in in_use:
                sock.close()
                del self.listeners[key]

    # -- signals ------------------------------------------------------------------
    def _child_exited(self, _signum: int) -> None:
        """Reap once every signal read with this SIGCHLD has been dispatched.

        A stop signal sent to the whole process group (systemd's default, Ctrl-C) reaches
        the master and the workers together; an idle worker can exit before the master
        has run its own handler, and the kernel then runs the SIGCHLD handler first (it
        stacks both handlers at once, the later-numbered one on top), so the self-pipe
        reads SIGCHLD before SIGTERM. Reaping after the batch lets the stop be seen
        first, so that a worker's clean exit is not taken for a crash and replaced.
        """
        self.loop.call_soon(self._reap)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            self._worker_exited(pid, status)
        if self.stopping and not self._all_workers():
            self.loop.stop()

    def _worker_exited(self, pid: int, status: int) -> None:
        gen = self.current
        if pid in gen.workers:
            slot, started = gen.workers.pop(pid)
            if self.stopping:
                log_requested_exit(slot, pid, status, logging.INFO)
                return
            log.error("worker %d (pid %d) exited with %s; starting a new one",
                      slot, pid, describe_status(status))
            delay = RESPAWN_DELAY if time.monotonic() - started < MIN_WORKER_LIFE else 0
            self.loop.call_later(delay, lambda: self._respawn(gen, slot))
            return
        for old in list(self.old):
            entry = old.workers.pop(pid, None)
            if entry is not None:
                log_requested_exit(entry[0], pid, status, logging.DEBUG)
                if not old.workers:
                    self._retire(old)

    def _respawn(self, gen: Generation, slot: int) -> None:
        if not self.stopping and gen is self.current:
            self._spawn(gen, slot)

    def _retire(self, old: Generation) -> None:
        """All workers of an old configuration are gone: release what it held."""
        self.old.remove(old)
        try:
            old.pm.hook.monkey_unconfigure(config=old.config)
        except Exception:
            log.exception("a plugin failed to release the old configuration")
        if not self.stopping:
            log.info("reload finished: the workers of the previous configuration have stopped")

    def _all_workers(self) -> list[int]:
        return [pid for gen in (self.current, *self.old) for pid in gen.workers]

    def _stop(self, signum: int) -> None:
        if self.stopping:
            return
        self.stopping = True
        log.info("stopping (%s)", signal.Signals(signum).name)
        # The workers close their copies of the listeners when they get the signal; with
        # the master's closed too, a new connection is refused at once (clients and load
        # balancers try elsewhere) instead of waiting in a queue nobody accepts from.
        self._close_listeners()
        # SIGINT, not SIGTERM, for a graceful stop: it tells the workers that the whole
        # instance is stopping (SIGTERM retires the old workers of a reload).
        sig = signal.SIGQUIT if signum == signal.SIGQUIT else signal.SIGINT
        for pid in self._all_workers():
            kill(pid, sig)
        grace = self.current.config.server.timeout + KILL_MARGIN
        self.loop.call_later(grace, self._kill_all)
        self._reap()

    def _kill_all(self) -> None:
        for pid in self._all_workers():
            log.error("worker pid %d did not stop in time; killing it", pid)
            kill(pid, signal.SIGKILL)

    def _reload(self, _signum: int) -> None:
        if self.stopping:
            return
        log.info("reloading the configuration")
        gen = self._next_generation()
        if gen is None:
            return
        old, self.current = self.current, gen
        for slot in range(gen.count):
            self._spawn(gen, slot)
        log.info("configuration reloaded: %d worker(s) started on it; the previous workers "
                 "finish their requests", gen.count)
        self.old.append(old)
        for pid in old.workers:
            kill(pid, signal.SIGTERM)
        self._close_unused_listeners()
        if not old.workers:
            self._retire(old)

    def _next_generation(self) -> Generation | None:
        """The reloaded configuration with its listeners; None, logged, if it cannot run."""
        try:
            config = self.reload_config()
            pm = prepare(config)
            pm.hook.monkey_configure(config=config)
            gen = Generation(config, pm, config.server.worker_count(), {})
            gen.tls = tls_context(gen)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return None
        try:
            gen.slots = self._listeners_for(gen)
        except OSError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc.strerror)
            self._close_unused_listeners()
            pm.hook.monkey_unconfigure(config=config)
            return None
        return gen

    # -- pid file -------------------------------------------------------------------
    def _write_pid(self) -> None:
        path = self.current.config.server.pid_file
        if path:
            with open(path, "w") as f:
                f.write(f"{os.getpid()}\n")

    def _remove_pid(self) -> None:
        path = self.current.config.server.pid_file
        if path:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def open_listener(listen: Listen, first: bool) -> socket.socket:
    """A listening socket on ``listen`` that the master's other listeners there can join.

    ``first`` is True for the first listener of an address in this master. It binds and
    listens *without* ``SO_REUSEPORT`` and turns the option on only once it listens: any
    socket already on the address makes it fail with "Address already in use", even one
    that set ``SO_REUSEPORT`` under the same user (a second monkey_py started by
    mistake), which the kernel would otherwise let share the port and its traffic. The
    master's further listeners set ``SO_REUSEPORT`` before binding and join it.

    This is race-free where probing with a throwaway socket is not (another server can
    take the address between closing the probe and binding): the listener is its own
    probe, and the kernel checks each bind and listen atomically against the sockets
    there, so of two servers starting together at most one gets to listen.
    ``SO_REUSEADDR`` lets both bind while neither listens, but not both listen.
    """
    try:
        return _listening_socket(listen, first)
    except OSError as exc:
        hint = ADDRESS_IN_USE_HINT if exc.errno == errno.EADDRINUSE else ""
        raise OSError(exc.errno, f"cannot listen on {listen}: {exc.strerror}{hint}") from None


def _listening_socket(listen: Listen, first: bool) -> socket.socket:
    sock = socket.socket(listen.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if not first:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if listen.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((listen.host, listen.port))
        sock.listen(BACKLOG)
        if first:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def log_requested_exit(slot: int, pid: int, status: int, clean_level: int) -> None:
    """Log the exit of a worker the master told to stop: a clean one at ``clean_level``."""
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        log.log(clean_level, "worker %d (pid %d) stopped", slot, pid)
    else:
        log.warning("worker %d (pid %d) stopped with %s", slot, pid, describe_status(status))


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"status {os.waitstatus_to_exitcode(status)}"
