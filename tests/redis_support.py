"""A private redis-server for the fleet tests: installed with apt-get when missing, started
on an ephemeral loopback port with persistence off and a directory of its own, and
killed, stopped or restarted on the same port as a test needs. Optionally with a
password, or with TLS only (``tls``: a :class:`tls_support.Certificates`)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import hiredis

import leftovers
from apt import ensure_installed
from support import free_port


def ensure_redis_server() -> str:
    """The redis-server binary, installing the Debian package first when it is missing."""
    return ensure_installed(lambda: shutil.which("redis-server"), "redis-server",
                            "the fleet tests")


class RedisServer:
    """A running redis-server: ``port``, ``url()``, ``call()`` and its life cycle."""

    def __init__(self, directory: Path, password: str | None = None, tls=None) -> None:
        self.binary = ensure_redis_server()
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.password = password
        self.tls = tls
        # Made once: loading the system's CAs takes a tenth of a second.
        self.client_context = None if tls is None else tls.client_context()
        self.port = free_port()
        self.log_path = directory / "redis.log"
        self.proc: subprocess.Popen | None = None
        self.start()

    def _command(self) -> list[str]:
        command = [self.binary, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", str(self.directory), "--logfile", str(self.log_path),
                   "--daemonize", "no", "--enable-debug-command", "local"]
        if self.password is not None:
            command += ["--requirepass", self.password]
        if self.tls is None:
            return command + ["--port", str(self.port)]
        cert, key = self.tls.issue("redis", "localhost", "127.0.0.1")
        return command + ["--port", "0", "--tls-port", str(self.port),
                          "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                          "--tls-ca-cert-file", str(self.tls.ca_file()),
                          "--tls-auth-clients", "no"]

    def start(self, timeout: float = 10.0) -> None:
        """Start redis-server on ``port`` and wait until it answers PING."""
        self.proc = subprocess.Popen(self._command(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        leftovers.track(self.proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: "
                                   f"{self.log()}")
            try:
                if self.call("PING") == b"PONG":
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start answering: {self.log()}")

    def url(self, db: int = 0) -> str:
        scheme = "redis" if self.tls is None else "rediss"
        auth = f":{self.password}@" if self.password is not None else ""
        return f"{scheme}://{auth}127.0.0.1:{self.port}/{db}"

    def call(self, *args, db: int = 0, timeout: float = 5.0):
        """Send one command on a fresh blocking connection and return its reply."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if self.tls is not None:
            sock = self.client_context.wrap_socket(sock, server_hostname="127.0.0.1")
        with sock:
            commands = [("SELECT", db), args]
            if self.password is not None:
                commands.insert(0, ("AUTH", self.password))
            sock.sendall(b"".join(hiredis.pack_command(command) for command in commands))
            reader = hiredis.Reader()
            replies: list = []
            while len(replies) < len(commands):
                data = sock.recv(65536)
                if not data:
                    raise ConnectionResetError("redis-server closed the connection")
                reader.feed(data)
                while (reply := reader.gets()) is not False:
                    replies.append(reply)
        return replies[-1]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, every client connection reset."""
        if self.running:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM: a clean shutdown (nothing to save: persistence is off)."""
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        """Kill, then start again on the same port."""
        self.kill()
        self.start()


def run_until(loop, done, timeout: float = 5.0) -> None:
    """Run ``loop`` until ``done()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout}s")
        loop.call_later(0.005, lambda: None)  # wakes the loop up to look again
        loop.run_once()


def run_for(loop, seconds: float) -> None:
    """Run ``loop`` for ``seconds``."""
    end = time.monotonic() + seconds
    run_until(loop, lambda: time.monotonic() >= end, seconds + 5.0)


def ask(loop, client, *args):
    """``client.command(*args)``, run until answered: ``(reply, error)``."""
    got = []
    client.command(*args, callback=lambda reply, error: got.append((reply, error)))
    run_until(loop, lambda: got)
    return got[0]


def ask_all(loop, client, commands):
    """``client.pipeline(commands)``, run until answered: ``(replies, error)``."""
    got = []
    client.pipeline(commands, callback=lambda replies, error: got.append((replies, error)))
    run_until(loop, lambda: got)
    loop.run_once()
    assert len(got) == 1, "the pipeline's callback was called more than once"
    return got[0]
