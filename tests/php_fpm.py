"""A private php-fpm for the FastCGI tests: installed with apt-get when missing (as
``bench/run.py`` installs nginx), started on a loopback port and a Unix socket with a
configuration of its own, stopped at the end. Nothing is skipped: without php-fpm the
tests fail, saying how to install it."""

from __future__ import annotations

import glob
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import leftovers
from apt import ensure_installed
from support import free_port

PACKAGE = "php-fpm"


def php_fpm_binary() -> str | None:
    found = sorted(glob.glob("/usr/sbin/php-fpm*")) or [shutil.which("php-fpm") or ""]
    return found[-1] or None


def ensure_php_fpm() -> str:
    """The php-fpm binary, installing the Debian package first when it is missing."""
    return ensure_installed(php_fpm_binary, PACKAGE, "the FastCGI tests")


def _pool(name: str, listen: str, children: int) -> str:
    owner = ""
    if os.geteuid() == 0:
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        owner = f"user = {user}\ngroup = {group}\n"
    return (f"[{name}]\n{owner}listen = {listen}\npm = static\n"
            f"pm.max_children = {children}\ncatch_workers_output = yes\n"
            "php_admin_value[output_buffering] = 0\nphp_admin_flag[log_errors] = on\n")


class PhpFpm:
    """A running php-fpm with a TCP pool (``port``) and a Unix-socket pool (``socket``)."""

    def __init__(self, directory: Path, children: int = 4) -> None:
        binary = ensure_php_fpm()
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.port = free_port()
        self.socket = directory / "php-fpm.sock"
        self.log_path = directory / "php-fpm.log"
        conf = directory / "php-fpm.conf"
        conf.write_text(
            f"[global]\npid = {directory / 'php-fpm.pid'}\nerror_log = {self.log_path}\n"
            "daemonize = no\n\n" + _pool("tcp", f"127.0.0.1:{self.port}", children)
            + "\n" + _pool("unix", str(self.socket), children))
        command = [binary, "--nodaemonize", "--fpm-config", str(conf)]
        if os.geteuid() == 0:
            command.append("--allow-to-run-as-root")
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        leftovers.track(self.proc)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"php-fpm exited with {self.proc.returncode}: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                if self.socket.exists():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"php-fpm did not start listening: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """Kill php-fpm and all its children at once (a crash, not a graceful stop)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
