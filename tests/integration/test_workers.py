"""Worker processes: the master replaces dead workers, drains on SIGTERM, reloads on SIGHUP."""

from __future__ import annotations

import http.client
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from rawhttp import Client
from support import free_port, site, write_confdir

INDEX = b"<h1>workers</h1>\n"
BIG_SIZE = 32 * 1024 * 1024


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns a true value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def make_docroot(base):
    root = base / "htdocs"
    root.mkdir(exist_ok=True)
    (root / "index.html").write_bytes(INDEX)
    return root


def get_index(port: int, host: str = "localhost"):
    with Client(port, timeout=5) as client:
        return client.request("GET", "/", host=host)


def refused(port: int) -> bool:
    """True when a connection to ``port`` is refused; one that is accepted is closed."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def is_zombie(pid: int) -> bool:
    """True once process ``pid`` has exited and waits for its parent to reap it."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def replaced(server, old_pids: set[int], count: int = 2):
    """True once ``count`` workers run and none of them is one of ``old_pids``."""
    pids = set(server.worker_pids())
    return len(pids) == count and not pids & old_pids


@pytest.fixture(scope="module")
def shared(module_monkey, tmp_path_factory):
    root = make_docroot(tmp_path_factory.mktemp("workers"))
    server = module_monkey(server=["Workers 2"], sites={"default": site("localhost", root)})
    wait_until(lambda: len(server.worker_pids()) == 2)
    return server


@pytest.fixture
def two_workers(start_monkey, tmp_path):
    """A server of its own, for tests that signal or reconfigure it."""
    root = make_docroot(tmp_path)
    with open(root / "big.bin", "wb") as f:
        f.write(os.urandom(1024) * (BIG_SIZE // 1024))
    server = start_monkey(server=["Workers 2", "Timeout 5"],
                          sites={"default": site("localhost", root)})
    wait_until(lambda: len(server.worker_pids()) == 2)
    return server


def test_workers_setting_starts_that_many_processes(shared):
    pids = shared.worker_pids()
    assert len(pids) == 2
    assert shared.pid not in pids
    for pid in pids:
        status = open(f"/proc/{pid}/status").read()
        assert f"PPid:\t{shared.pid}\n" in status


def test_the_master_lifts_its_descriptor_limit_for_its_listeners(tmp_path):
    """The master holds a listener per address and worker: 3 x 12 here, over a limit of 32."""
    root = make_docroot(tmp_path)
    ports = [free_port() for _ in range(3)]
    conf = write_confdir(tmp_path, [*(f"Listen 127.0.0.1:{port}" for port in ports),
                                    "Workers 12"], {"default": site("localhost", root)})
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "monkey_py", "-c", str(conf)], stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (32, hard)),
    )
    try:
        wait_until(lambda: proc.poll() is not None or not refused(ports[-1]))
        assert proc.poll() is None, proc.stderr.read().decode()
        for port in ports:
            assert get_index(port).status == 200
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        proc.stderr.close()


def test_killed_worker_is_replaced_and_requests_go_on(shared):
    before = wait_until(lambda: len(shared.worker_pids()) == 2 and shared.worker_pids())
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    statuses = [get_index(shared.port).status for _ in range(20)]
    assert statuses == [200] * 20
    wait_until(lambda: len(shared.worker_pids()) == 2 and victim not in shared.worker_pids())
    assert before[1] in shared.worker_pids()
    assert [get_index(shared.port).status for _ in range(20)] == [200] * 20
    assert "exited with signal SIGKILL" in shared.log()


def test_sigterm_finishes_the_request_in_flight_then_exits_0(two_workers):
    with Client(two_workers.port, timeout=10, rcvbuf=65536) as client:
        client.send(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head = client.read_head()
        assert head.status == 200 and head.header("Content-Length") == str(BIG_SIZE)
        two_workers.signal(signal.SIGTERM)
        start = time.monotonic()
        time.sleep(0.5)
        # The response is far from sent: the server must still be waiting for it.
        assert two_workers.proc.poll() is None
        body = client.read_to_close()
        # The connection closes as soon as the response is complete, not at a timeout.
        assert time.monotonic() - start < 3.0
    assert len(body) == BIG_SIZE
    with open(two_workers.confdir.parent / "htdocs" / "big.bin", "rb") as f:
        assert body == f.read()
    assert two_workers.proc.wait(10) == 0
    assert time.monotonic() - start < 4.0
    with pytest.raises(OSError):
        Client(two_workers.port, timeout=1)


def test_sigterm_refuses_new_connections_at_once_while_requests_finish(two_workers):
    """Clients and load balancers must see the port closed, not a connect that hangs."""
    with Client(two_workers.port, timeout=10, rcvbuf=65536) as client:
        client.send(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert client.read_head().status == 200
        two_workers.signal(signal.SIGTERM)
        wait_until(lambda: refused(two_workers.port), timeout=1.0)
        assert two_workers.proc.poll() is None
        body = client.read_to_close()
    assert len(body) == BIG_SIZE
    assert two_workers.proc.wait(10) == 0


def test_sigterm_to_the_process_group_stops_the_workers_without_replacing_them(two_workers):
    """As systemd and Ctrl-C do, the master and its workers get the signal together."""
    pids = two_workers.worker_pids()
    # Hold the master still while the workers exit: it then gets their exits and its own
    # SIGTERM at once, the order in which an idle worker's quick exit can put them.
    two_workers.signal(signal.SIGSTOP)
    os.killpg(two_workers.pid, signal.SIGTERM)
    wait_until(lambda: all(is_zombie(pid) for pid in pids))
    two_workers.signal(signal.SIGCONT)
    assert two_workers.proc.wait(10) == 0
    log = two_workers.log()
    assert "[ERROR]" not in log and "starting a new one" not in log
    for pid in pids:
        assert f"[INFO] [pid {two_workers.pid}] worker" in log
        assert f"(pid {pid}) stopped\n" in log
    assert log.splitlines()[-1].endswith(f"[INFO] [pid {two_workers.pid}] stopped")


def test_sigterm_closes_idle_keepalive_connections_and_exits_at_once(two_workers):
    idle = [Client(two_workers.port) for _ in range(3)]
    try:
        for client in idle:
            assert client.request("GET", "/").status == 200
        start = time.monotonic()
        two_workers.signal(signal.SIGTERM)
        assert two_workers.proc.wait(10) == 0
        assert time.monotonic() - start < 2.0
        for client in idle:
            assert client.is_closed()
    finally:
        for client in idle:
            client.close()


def test_sigterm_answers_a_connection_whose_request_had_not_arrived(two_workers):
    with Client(two_workers.port) as client:
        # Give the worker a moment to accept the connection before it is told to stop.
        time.sleep(0.2)
        two_workers.signal(signal.SIGTERM)
        time.sleep(0.2)
        response = client.request("GET", "/")
        assert (response.status, response.body) == (200, INDEX)
        assert response.header("Connection") == "Close"
        assert client.is_closed()
    assert two_workers.proc.wait(10) == 0


class LoadClient(threading.Thread):
    """Requests the index in a loop: a new connection each time, or one kept alive.

    A kept-alive connection the server closes while idle is retried once on a new
    connection, as HTTP clients do (RFC 9112 §9.3.1): the request never reached a
    worker. Any other failure is recorded.
    """

    def __init__(self, port: int, keepalive: bool) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.keepalive = keepalive
        self.stop = threading.Event()
        self.ok = 0
        self.retried = 0
        self.failures: list[str] = []

    def run(self) -> None:
        conn = None
        while not self.stop.is_set():
            reused = conn is not None and conn.sock is not None
            try:
                if conn is None or not self.keepalive:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                status, body = self._get(conn)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                if not (self.keepalive and reused):
                    self.failures.append(f"new connection: {exc!r}")
                    continue
                self.retried += 1
                try:
                    status, body = self._get(conn)
                except Exception as retry_exc:
                    self.failures.append(f"retry: {retry_exc!r}")
                    continue
            except Exception as exc:
                self.failures.append(repr(exc))
                conn.close()
                continue
            if status == 200 and body == INDEX:
                self.ok += 1
            else:
                self.failures.append(f"status {status}, body {body[:60]!r}")
            if not self.keepalive:
                conn.close()
        if conn is not None:
            conn.close()

    @staticmethod
    def _get(conn: http.client.HTTPConnection):
        conn.request("GET", "/", headers={"Host": "localhost"})
        response = conn.getresponse()
        return response.status, response.read()


def reload_under_load(server, workers_after: list[int], before_reload=lambda step: None):
    """SIGHUP once per entry of ``workers_after`` while clients request in a loop.

    Each reload waits until the expected workers replaced the old ones and every
    client was served again. Returns the pids of all replaced workers and the failures.
    """
    clients = [LoadClient(server.port, keepalive) for keepalive in (False, False, True, True)]
    for client in clients:
        client.start()
    seen = set()
    try:
        wait_until(lambda: all(client.ok for client in clients))
        for step, count in enumerate(workers_after):
            old = set(server.worker_pids())
            seen |= old
            before = [client.ok for client in clients]
            before_reload(step)
            server.signal(signal.SIGHUP)
            wait_until(lambda: replaced(server, old, count))
            wait_until(lambda: all(c.ok > ok for c, ok in zip(clients, before)))
    finally:
        for client in clients:
            client.stop.set()
        for client in clients:
            client.join(10)
    return seen, [failure for client in clients for failure in client.failures]


def test_sighup_under_load_refuses_nothing(two_workers):
    replaced_pids, failures = reload_under_load(two_workers, [2, 2, 2])
    assert failures == []
    assert len(replaced_pids) == 6
    assert not replaced_pids & set(two_workers.worker_pids())


def test_sighup_changing_the_worker_count_refuses_nothing(two_workers):
    conf = two_workers.confdir / "monkey.conf"
    text = conf.read_text()
    counts = [3, 1, 2]

    def set_workers(step):
        conf.write_text(text.replace("Workers 2", f"Workers {counts[step]}"))

    _, failures = reload_under_load(two_workers, counts, set_workers)
    assert failures == []
    assert len(two_workers.worker_pids()) == 2


def test_sighup_loads_a_new_site(two_workers, tmp_path):
    new_root = tmp_path / "new_root"
    new_root.mkdir()
    (new_root / "index.html").write_bytes(b"the new site\n")
    assert get_index(two_workers.port, "new.test").body == INDEX
    (two_workers.confdir / "sites" / "new").write_text(site("new.test", new_root))
    old = set(two_workers.worker_pids())
    two_workers.signal(signal.SIGHUP)
    # Until the old workers have stopped, either generation may answer.
    wait_until(lambda: replaced(two_workers, old))
    wait_until(lambda: "reload finished" in two_workers.log())
    assert "configuration reloaded: 2 worker(s) started on it" in two_workers.log()
    # Every worker of the new generation serves it, and the old site is still there.
    for _ in range(10):
        assert get_index(two_workers.port, "new.test").body == b"the new site\n"
        assert get_index(two_workers.port, "localhost").body == INDEX


def test_sighup_with_a_broken_config_keeps_the_old_one(two_workers):
    conf = two_workers.confdir / "monkey.conf"
    good = conf.read_text()
    conf.write_text(good + "    NoSuchKey 1\n")
    broken_line = len(good.splitlines()) + 1
    pids = set(two_workers.worker_pids())
    two_workers.signal(signal.SIGHUP)
    wait_until(lambda: "reload refused" in two_workers.log())
    log = two_workers.log()
    assert f"monkey.conf:{broken_line}:" in log
    assert "NoSuchKey" in log
    assert "Traceback" not in log
    assert [get_index(two_workers.port).status for _ in range(10)] == [200] * 10
    assert set(two_workers.worker_pids()) == pids
    # Fixed again, the configuration reloads.
    conf.write_text(good)
    two_workers.signal(signal.SIGHUP)
    wait_until(lambda: replaced(two_workers, pids))
    assert get_index(two_workers.port).status == 200


def test_sighup_with_an_include_of_a_fifo_is_refused_at_once(two_workers):
    """Opening a FIFO waits for a writer: the master would hang in the middle of a reload."""
    conf = two_workers.confdir / "monkey.conf"
    good = conf.read_text()
    fifo = two_workers.confdir / "pipe.conf"
    os.mkfifo(fifo)
    conf.write_text(good + "@INCLUDE pipe.conf\n")
    pids = set(two_workers.worker_pids())
    two_workers.signal(signal.SIGHUP)
    wait_until(lambda: "reload refused" in two_workers.log(), timeout=5)
    line = len(good.splitlines()) + 1
    assert (f"{conf}:{line}: cannot read {fifo}: it is a named pipe (FIFO), not a regular "
            "file") in two_workers.log()
    assert [get_index(two_workers.port).status for _ in range(10)] == [200] * 10
    assert set(two_workers.worker_pids()) == pids


def test_sighup_onto_an_address_in_use_is_refused_and_leaves_nothing_open(two_workers):
    conf = two_workers.confdir / "monkey.conf"
    good = conf.read_text()
    added = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        conf.write_text(good + f"    Listen 127.0.0.1:{added}\n    Listen 127.0.0.1:{taken}\n")
        pids = set(two_workers.worker_pids())
        two_workers.signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in two_workers.log())
    assert (f"reload refused, keeping the running configuration: cannot listen on "
            f"127.0.0.1:{taken}: Address already in use") in two_workers.log()
    # The address the refused configuration added first was closed again.
    assert refused(added)
    assert [get_index(two_workers.port).status for _ in range(10)] == [200] * 10
    assert set(two_workers.worker_pids()) == pids


def test_sighup_widening_an_address_to_its_wildcard_reloads(two_workers):
    """127.0.0.1:P to 0.0.0.0:P: the master's own listeners must not refuse the reload."""
    conf = two_workers.confdir / "monkey.conf"
    conf.write_text(conf.read_text().replace("Listen 127.0.0.1:", "Listen "))
    old = set(two_workers.worker_pids())
    two_workers.signal(signal.SIGHUP)
    wait_until(lambda: replaced(two_workers, old))
    assert "reload refused" not in two_workers.log()
    assert [get_index(two_workers.port).status for _ in range(10)] == [200] * 10


def test_sighup_dropping_an_address_refuses_it_at_once(start_monkey, tmp_path):
    """The old workers close their listeners when told to stop: so does the master."""
    root = make_docroot(tmp_path)
    with open(root / "big.bin", "wb") as f:
        f.write(os.urandom(1024) * (BIG_SIZE // 1024))
    dropped = free_port()
    server = start_monkey(server=[f"Listen 127.0.0.1:{dropped}", "Workers 2", "Timeout 5"],
                          sites={"default": site("localhost", root)})
    conf = server.confdir / "monkey.conf"
    with Client(server.port, timeout=10, rcvbuf=65536) as client:
        client.send(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert client.read_head().status == 200
        conf.write_text(conf.read_text().replace(f"    Listen 127.0.0.1:{dropped}\n", ""))
        server.signal(signal.SIGHUP)
        wait_until(lambda: "configuration reloaded" in server.log())
        # An old worker is still sending the response: the old generation is not gone.
        wait_until(lambda: refused(dropped), timeout=1.0)
        assert get_index(server.port).status == 200
        assert len(client.read_to_close()) == BIG_SIZE
