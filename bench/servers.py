"""Start and stop the servers a benchmark compares: monkey_py, nginx and the floor.

Every server gets its configuration written into a private work directory, listens on
an ephemeral loopback port and runs pinned to one CPU with ``taskset`` (children inherit
the affinity), so nothing outside the work directory is read or written.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import procfs

INDENT = "    "
FLOOR_DIR = Path(__file__).resolve().parent / "floor"
# nginx's open-file cache where it serves static files under test: monkey_py keeps open
# files of its own, revalidated at most once a second, so nginx gets the same help.
NGINX_OPEN_FILE_CACHE = ("open_file_cache max=1000 inactive=20s; open_file_cache_valid 1s; "
                         "open_file_cache_min_uses 1; open_file_cache_errors off;")
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


@dataclass(frozen=True)
class Certificate:
    """A certificate and its private key (PEM files)."""

    cert: Path
    key: Path


class ServerFailed(RuntimeError):
    """A server did not start, or died; carries the tail of its output."""

    def __init__(self, name: str, reason: str, output_tail: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason
        self.output_tail = output_tail


# Ports already given out: the kernel may offer a port again once its probe is closed.
_given: set[int] = set()


def free_port() -> int:
    """Return a loopback TCP port that is free right now and was not given out before."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _given:
            _given.add(port)
            return port


def nginx_binary() -> str | None:
    """Path of the nginx executable, also when /usr/sbin is not on PATH."""
    found = shutil.which("nginx")
    if found:
        return found
    return next((path for path in NGINX_CANDIDATES if os.access(path, os.X_OK)), None)


def monkey_command(confdir: Path) -> list[str]:
    """The command that starts monkey_py: the venv's console script, else ``-m monkey_py``."""
    script = Path(sys.executable).parent / "monkey"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "-c", str(confdir)]
    return [sys.executable, "-m", "monkey_py", "-c", str(confdir)]


@dataclass
class ServerProcess:
    """One server (master plus its worker children) started under ``taskset``."""

    name: str
    argv: list[str]
    port: int
    cpu: int
    log_path: Path
    extra_logs: tuple[Path, ...] = ()
    workers: int = 1
    scheme: str = "http"
    proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until its port accepts and its ``workers`` (child
        processes; 0 for a server that serves from its only process) exist."""
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                ["taskset", "-c", str(self.cpu), *self.argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise ServerFailed(self.name, f"cannot run {self.argv[0]}: {exc}", "") from exc
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not self._accepts():
            self._check_alive()
            if time.monotonic() > deadline:
                self.stop()
                raise ServerFailed(self.name, f"port {self.port} not open after {timeout:.0f}s",
                                   self.output_tail())
            time.sleep(0.05)
        while (len(procfs.descendants(self.proc.pid)) < self.workers
               and time.monotonic() < deadline):
            self._check_alive()
            time.sleep(0.05)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def alive(self) -> bool:
        """Whether the master is running."""
        return self.proc is not None and self.proc.poll() is None

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise ServerFailed(self.name, f"exited with status {self.proc.returncode}",
                               self.output_tail())

    def root_pid(self) -> int:
        """The master's pid (taskset execs the server, so it is the process started)."""
        self._check_alive()
        return self.proc.pid

    def pids(self) -> list[int]:
        """The master and all its descendants."""
        self._check_alive()
        return [self.proc.pid, *procfs.descendants(self.proc.pid)]

    def worker_pids(self) -> list[int]:
        """The worker processes; the master itself when it serves without children."""
        self._check_alive()
        return procfs.descendants(self.proc.pid) or [self.proc.pid]

    def output_tail(self, lines: int = 20) -> str:
        """The last lines the server wrote to stdout/stderr (and its own log files)."""
        collected: list[str] = []
        for path in (self.log_path, *self.extra_logs):
            try:
                collected += path.read_text(errors="replace").splitlines()
            except OSError:
                continue
        return "\n".join(collected[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the master and wait; SIGKILL whatever is left of its process group.

        The group is the server's own (it was started in a new session), so this also
        ends workers orphaned by a master that died.
        """
        if self.proc is None:
            return
        deadline = time.monotonic() + timeout
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                deadline = 0.0
            while procfs.group_alive(self.proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        if procfs.group_alive(self.proc.pid):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()


def _section(name: str, lines: list[str]) -> str:
    return f"[{name}]\n" + "".join(f"{INDENT}{line}\n" for line in lines)


def make_certificate(directory: Path) -> Certificate:
    """A self-signed RSA 2048 certificate for 127.0.0.1 and localhost, made with openssl:
    the one both servers present in the HTTPS scenarios."""
    directory.mkdir(parents=True, exist_ok=True)
    certificate = Certificate(directory / "server.crt", directory / "server.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(certificate.key), "-out", str(certificate.cert)],
                   check=True, capture_output=True)
    return certificate


def write_monkey_config(confdir: Path, port: int, docroot: Path, *,
                        keepalive_timeout: int = 60,
                        proxy_servers: list[str] | None = None,
                        balancer: str = "RoundRobin", proxy_match: str = "^/",
                        proxy_options: tuple[str, ...] = (),
                        certificate: Certificate | None = None) -> Path:
    """Write a monkey_py configuration directory; with ``proxy_servers`` it proxies the
    targets ``proxy_match`` selects, with ``proxy_options`` (e.g. ``Cache On``) added to
    ``[PROXY_DEFAULTS]``; with ``certificate`` it listens with TLS (the tls plugin)."""
    confdir.mkdir(parents=True, exist_ok=True)
    (confdir / "monkey.conf").write_text(_section("SERVER", [
        f"Listen 127.0.0.1:{port}{' tls' if certificate else ''}",
        "Workers 1",
        "KeepAlive On",
        f"KeepAliveTimeout {keepalive_timeout}",
        "MaxKeepAliveRequest 1000000",
    ]))
    sites = confdir / "sites"
    sites.mkdir(exist_ok=True)
    (sites / "default").write_text(_section("HOST", [
        "ServerName 127.0.0.1",
        f"DocumentRoot {docroot.resolve()}",
    ]))
    plugins = ["Load proxy_reverse"] if proxy_servers else []
    if certificate:
        plugins.append("Load tls")
        plugin_dir = confdir / "plugins" / "tls"
        plugin_dir.mkdir(parents=True, exist_ok=True)
        (plugin_dir / "tls.conf").write_text(_section("TLS", [
            f"CertificateFile {certificate.cert}", f"RSAKeyFile {certificate.key}"]))
    (confdir / "plugins.load").write_text(_section("PLUGINS", plugins))
    if proxy_servers:
        plugin_dir = confdir / "plugins" / "proxy_reverse"
        plugin_dir.mkdir(parents=True, exist_ok=True)
        (plugin_dir / "proxy_reverse.conf").write_text(
            _section("PROXY_DEFAULTS", [f"ServerList {' '.join(proxy_servers)}",
                                        f"LoadBalancer {balancer}", *proxy_options])
            + _section("PROXY_ENTRY", [f"Match {proxy_match}"]))
    return confdir


def _nginx_user_line() -> str:
    """Under root, keep nginx workers root: as 'nobody' they could not read a 0700 temp dir."""
    if os.geteuid() != 0:
        return ""
    return f"user {pwd.getpwuid(0).pw_name};\n"


def _nginx_temp_paths(prefix: Path, binary: str) -> str:
    """Temp-path directives inside ``prefix`` for every module this nginx was built with."""
    build = subprocess.run([binary, "-V"], capture_output=True, text=True).stderr
    lines = [f"client_body_temp_path {prefix}/client_body;",
             f"proxy_temp_path {prefix}/proxy;"]
    for module in ("fastcgi", "uwsgi", "scgi"):
        if f"--without-http_{module}_module" not in build:
            lines.append(f"{module}_temp_path {prefix}/{module};")
    return "\n    ".join(lines)


def _nginx_tls(certificate: Certificate | None) -> str:
    """The ssl directives matching monkey_py's tls plugin: TLS 1.2 and 1.3, OpenSSL's
    default ciphers, no session tickets and no session cache (monkey_py has neither)."""
    if certificate is None:
        return ""
    return (f"ssl_certificate {certificate.cert};\n        "
            f"ssl_certificate_key {certificate.key};\n        "
            "ssl_protocols TLSv1.2 TLSv1.3;\n        "
            "ssl_session_tickets off;\n        ssl_session_cache off;")


def write_nginx_config(prefix: Path, port: int, server_body: str, *, http_extra: str = "",
                       keepalive_timeout: int = 60, connections: int = 16384,
                       certificate: Certificate | None = None) -> Path:
    """Write an nginx.conf whose pid, logs and temp files all live under ``prefix``; with
    ``certificate`` its server listens with TLS."""
    binary = nginx_binary() or "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    nofile = connections + 1024
    conf = prefix / "nginx.conf"
    conf.write_text(f"""{_nginx_user_line()}worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
worker_rlimit_nofile {nofile};
events {{
    worker_connections {connections};
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout {keepalive_timeout}s;
    default_type application/octet-stream;
    types {{ text/plain txt; application/octet-stream bin; }}
    {_nginx_temp_paths(prefix, binary)}
    {http_extra}
    server {{
        listen 127.0.0.1:{port}{' ssl' if certificate else ''};
        server_name 127.0.0.1;
        {_nginx_tls(certificate)}
        {server_body}
    }}
}}
""")
    return conf


def nginx_static_body(docroot: Path, *, open_file_cache: bool = False) -> str:
    """Server block body that serves files from ``docroot``, with ``open_file_cache`` on
    when asked (the servers under test; upstreams do without)."""
    cache = f"\n        {NGINX_OPEN_FILE_CACHE}" if open_file_cache else ""
    return f"root {docroot.resolve()};{cache}"


def nginx_proxy_config(prefix: Path, port: int, upstreams: list[str],
                       certificate: Certificate | None = None) -> Path:
    """An nginx reverse proxy to ``upstreams`` with kept-alive upstream connections."""
    servers = " ".join(f"server {address};" for address in upstreams)
    http_extra = f"upstream backends {{ {servers} keepalive 32; }}"
    body = ("location / { proxy_pass http://backends; proxy_http_version 1.1; "
            'proxy_set_header Connection ""; proxy_max_temp_file_size 0; }')
    return write_nginx_config(prefix, port, body, http_extra=http_extra,
                              certificate=certificate)


def nginx_cache_config(prefix: Path, port: int, upstreams: list[str], location: str,
                       docroot: Path) -> Path:
    """An nginx proxy with ``proxy_cache`` (its cache directory inside ``prefix``) for the
    targets under ``location``; other targets are files of ``docroot`` (with
    ``open_file_cache``, as in the static scenario)."""
    servers = " ".join(f"server {address};" for address in upstreams)
    http_extra = (f"upstream backends {{ {servers} keepalive 32; }}\n    "
                  f"proxy_cache_path {prefix}/cache levels=1:2 keys_zone=bench:10m "
                  "max_size=64m inactive=60m use_temp_path=off;")
    body = (f"{nginx_static_body(docroot, open_file_cache=True)}\n        "
            f"location {location} {{ proxy_pass http://backends; proxy_http_version 1.1; "
            'proxy_set_header Connection ""; proxy_cache bench; proxy_cache_valid 200 1h; '
            "proxy_cache_key $scheme$host$request_uri; "
            "add_header X-Cache-Status $upstream_cache_status; }")
    return write_nginx_config(prefix, port, body, http_extra=http_extra)


def monkey_server(workdir: Path, name: str, port: int, cpu: int, **config) -> ServerProcess:
    """A monkey_py server with a fresh configuration directory under ``workdir``."""
    confdir = write_monkey_config(workdir / name, port, **config)
    return ServerProcess(name, monkey_command(confdir), port, cpu, workdir / f"{name}.log",
                         scheme="https" if config.get("certificate") else "http")


def nginx_server(workdir: Path, name: str, port: int, cpu: int, conf: Path,
                 scheme: str = "http") -> ServerProcess:
    """An nginx instance running ``conf`` with its prefix in the config's directory."""
    binary = nginx_binary() or "nginx"
    argv = [binary, "-p", str(conf.parent), "-e", str(conf.parent / "error.log"), "-c", str(conf)]
    return ServerProcess(name, argv, port, cpu, workdir / f"{name}.log",
                         extra_logs=(conf.parent / "error.log",), scheme=scheme)


def redis_server(workdir: Path, port: int, cpu: int) -> ServerProcess:
    """A redis-server on 127.0.0.1:``port``, persistence off, its files in ``workdir``."""
    directory = workdir / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    argv = [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1",
            "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(directory)]
    return ServerProcess("redis", argv, port, cpu, workdir / "redis.log", workers=0)


def floor_server(workdir: Path, port: int, cpu: int, program: str, *args: str) -> ServerProcess:
    """A floor program of ``bench/floor`` (one process, no workers) run with this Python."""
    argv = [sys.executable, str(FLOOR_DIR / program), str(port), *args]
    return ServerProcess("floor", argv, port, cpu, workdir / "floor.log", workers=0)


def static_floor(workdir: Path, port: int, cpu: int, file: Path) -> ServerProcess:
    """The static floor answering every request with ``file``, read once at start."""
    return floor_server(workdir, port, cpu, "static_floor.py", str(file.resolve()))


def proxy_floor(workdir: Path, port: int, cpu: int, upstreams: list[str]) -> ServerProcess:
    """The proxy floor in front of ``upstreams`` (HOST:PORT each), round robin."""
    return floor_server(workdir, port, cpu, "proxy_floor.py", *upstreams)
