"""Helpers for integration tests: configuration directories and real server processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import leftovers

INDENT = "    "


# The ports free_port() gave out in this process: the kernel may offer a port again as
# soon as its probe socket is closed, and two listeners of one test must not get the same.
_given: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on right now, and not given out before in this run."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _given:
            _given.add(port)
            return port


def section(name: str, *lines: str) -> str:
    """``[NAME]`` followed by indented ``Key value`` lines."""
    return f"[{name}]\n" + "".join(f"{INDENT}{line}\n" for line in lines)


def write_confdir(
    root: Path,
    server: list[str],
    sites: dict[str, str],
    plugins: list[str] = (),
    plugin_confs: dict[str, str] | None = None,
) -> Path:
    """Write a configuration directory under ``root``; ``sites`` maps file name to text."""
    conf = root / "conf"
    (conf / "sites").mkdir(parents=True, exist_ok=True)
    (conf / "monkey.conf").write_text(section("SERVER", *server))
    (conf / "plugins.load").write_text(section("PLUGINS", *(f"Load {p}" for p in plugins))
                                       if plugins else "[PLUGINS]\n")
    for name, text in sites.items():
        (conf / "sites" / name).write_text(textwrap.dedent(text))
    for name, text in (plugin_confs or {}).items():
        (conf / "plugins" / name).mkdir(parents=True, exist_ok=True)
        (conf / "plugins" / name / f"{name}.conf").write_text(textwrap.dedent(text))
    return conf


def site(names: str, docroot: Path, *extra: str) -> str:
    """A site file serving ``docroot`` for ``names``, plus extra sections."""
    return section("HOST", f"ServerName {names}", f"DocumentRoot {docroot}") + "".join(extra)


class MonkeyProcess:
    """A real ``monkey`` master process started on a configuration directory."""

    def __init__(self, confdir: Path, port: int, *args: str) -> None:
        self.confdir = confdir
        self.port = port
        self.log_path = confdir.parent / f"monkey-{port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monkey_py", "-c", str(confdir), *args],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        leftovers.track(self.proc)
        self.wait_listening()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"monkey exited with {self.proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                time.sleep(0.05)
                continue
            # Every worker the master announced ("with N worker(s)") has started.
            announced = re.search(r"with (\d+) worker\(s\)", self.log())
            if self.worker_pids() and (
                    announced is None or len(self.worker_pids()) >= int(announced[1])):
                return
            time.sleep(0.05)
        raise RuntimeError(f"monkey did not start listening:\n{self.log()}")

    def worker_pids(self) -> list[int]:
        """The master's current children (the worker processes)."""
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except FileNotFoundError:
            return []
        return [int(pid) for pid in text.split()]

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def open_fds(pid: int) -> int:
    """How many file descriptors process ``pid`` holds open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_fds(pid: int) -> int:
    """Process ``pid``'s open descriptors once the connections just closed are gone (two
    readings 0.2 s apart agree)."""
    previous = open_fds(pid)
    while True:
        time.sleep(0.2)
        now = open_fds(pid)
        if now == previous:
            return now
        previous = now


def raw_request(port: int, data: bytes, timeout: float = 5.0, source: str | None = None) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it.

    ``source``: the loopback address to connect from (``127.0.0.2`` ...).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0) if source else None) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def wait_for(predicate, timeout: float = 5.0):
    """Poll ``predicate`` until it returns something true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.02)
