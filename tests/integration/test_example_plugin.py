"""The example third-party plugin (docs/examples/monkey-example-plugin) in a real server.

The plugin is installed into the venv by the Makefile, like any third-party package, and
loaded by its entry-point name. It records every hook call in a file, one line each:
``<hook> pid=<pid> <detail>``.
"""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from monkey_py.hookspec import all_hooks
from support import free_port, section, site, wait_for, write_confdir
from tls_support import Certificates

MASTER_HOOKS = {"monkey_site_sections", "monkey_check_config", "monkey_configure",
                "monkey_unconfigure", "monkey_tls_context"}


def read_record(path) -> list[tuple[str, int, str]]:
    """The record file as (hook, pid, detail) tuples."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        hook, pid, *detail = line.split(" ", 2)
        found.append((hook, int(pid.removeprefix("pid=")), "".join(detail)))
    return found


def get(port: int, path: str, headers=None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.fixture
def record(tmp_path):
    return tmp_path / "record.log"


@pytest.fixture
def example(start_monkey, record, docroot, tmp_path):
    """A server loading the example plugin, with a greeting and a Match rule, and a TLS
    listener (so that monkey_tls_context is called too)."""
    crt, key = Certificates(tmp_path / "certs").issue("server", "localhost")
    return start_monkey(
        server=["MaxRequestSize 65536", f"Listen 127.0.0.1:{free_port()} tls"],
        plugins=["example", "tls"],
        sites={"default": site(
            "127.0.0.1 localhost", docroot,
            section("EXAMPLE", "Greeting Hello from the default site"),
            section("HANDLERS", "Match ^/words/ example one two"),
        )},
        plugin_confs={"example": section("EXAMPLE", f"RecordTo {record}",
                                         "RefuseAddress 127.0.0.2"),
                      "tls": section("TLS", f"CertificateFile {crt}", f"RSAKeyFile {key}")},
    )


def sent_line(record, target: str) -> str | None:
    """The detail of the stage 40 record of ``target`` ("GET /x"), once written."""
    for hook, _, detail in read_record(record):
        if hook == "monkey_response_sent" and detail.startswith(target + " "):
            return detail
    return None


def test_every_hook_is_called_in_its_process(example, record):
    assert get(example.port, "/example/hello")[0] == 200
    master = example.pid
    workers = example.worker_pids()
    example.signal(signal.SIGHUP)
    # The old worker drains and exits; then the master releases the old configuration.
    # The new worker must be running before it is told to stop.
    assert wait_for(lambda: {"monkey_unconfigure", "monkey_worker_start"} <= {
        hook for hook, pid, _ in read_record(record) if pid not in workers
    })
    assert example.stop() == 0

    calls = read_record(record)
    assert {hook for hook, _, _ in calls} == set(all_hooks())
    for hook, pid, _ in calls:
        if hook in MASTER_HOOKS:
            assert pid == master, hook
        else:
            assert pid != master, hook
    # The first worker's life, in stage order (the harness's probe connections aside).
    first = [(hook, detail) for hook, pid, detail in calls if pid == workers[0]]
    assert first[0][0] == "monkey_worker_start" and first[-1][0] == "monkey_worker_stop"
    order = [first.index(call) for call in [
        ("monkey_request_received", "GET /example/hello"),
        ("monkey_request_handler", "GET /example/hello params="),
        ("monkey_connection_closed", "requests=1"),
    ]]
    assert order == sorted(order)
    assert first.index(("monkey_connection_accepted", "127.0.0.1")) < order[0]
    # Start, then the reload: each configuration is checked before it is configured;
    # the replaced one is released when its worker is gone, the last one at shutdown.
    in_master = [hook for hook, pid, _ in calls if pid == master]
    assert in_master == [
        "monkey_site_sections", "monkey_check_config", "monkey_configure", "monkey_tls_context",
        "monkey_site_sections", "monkey_check_config", "monkey_configure", "monkey_tls_context",
        "monkey_unconfigure", "monkey_unconfigure",
    ]


def test_answers_at_stage_30_with_the_site_greeting(example):
    assert get(example.port, "/example/hello") == (200, b"Hello from the default site\n")


def test_answers_later_from_a_loop_timer(example, record):
    started = time.monotonic()
    assert get(example.port, "/example/later") == (200, b"answered later\n")
    assert time.monotonic() - started >= 0.05
    detail = wait_for(lambda: sent_line(record, "GET /example/later"))
    assert "status=200" in detail and "completed=True" in detail
    assert int(detail.split(" ms=")[1].split()[0]) >= 50


def test_client_leaving_before_a_later_answer_cancels_it(example, record):
    with socket.create_connection(("127.0.0.1", example.port)) as sock:
        sock.sendall(b"GET /example/later HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert wait_for(lambda: any(h == "monkey_request_handler"
                                    for h, _, _ in read_record(record)))
    detail = wait_for(lambda: sent_line(record, "GET /example/later"))
    assert "status=0" in detail and "completed=False" in detail
    # Past the timer's deadline: a timer left armed would answer a gone request and fail.
    time.sleep(0.1)
    assert get(example.port, "/example/hello")[0] == 200
    assert "Traceback" not in example.log()


def test_denies_at_stage_20(example, record):
    status, body = get(example.port, "/example/hello", {"X-Example-Deny": "1"})
    assert status == 403 and b"Denied by the example plugin." in body
    assert wait_for(lambda: sent_line(record, "GET /example/hello"))
    assert "monkey_request_handler" not in {hook for hook, _, _ in read_record(record)}


def test_a_raising_handler_gets_500_and_the_worker_lives(example):
    workers = example.worker_pids()
    assert get(example.port, "/example/boom")[0] == 500
    assert get(example.port, "/example/hello")[0] == 200
    assert example.worker_pids() == workers
    log = wait_for(lambda: "plugin example failed" in example.log() and example.log())
    assert "plugin example failed handling GET /example/boom" in log
    assert "boom: the example plugin fails on purpose" in log


def test_match_rule_passes_its_params(example, record):
    assert get(example.port, "/words/anything") == (200, b"one two\n")
    calls = read_record(record)
    assert ("monkey_request_handler", "GET /words/anything params=one,two") in {
        (hook, detail) for hook, _, detail in calls
    }


def test_refuses_a_configured_address_at_stage_10(example, record):
    with socket.create_connection(("127.0.0.1", example.port),
                                  source_address=("127.0.0.2", 0), timeout=5) as sock:
        sock.sendall(b"GET /example/hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        try:
            data = sock.recv(1024)
        except ConnectionResetError:
            data = b""
    assert data == b""
    time.sleep(0.1)
    hooks = [(hook, detail) for hook, _, detail in read_record(record)]
    assert hooks.count(("monkey_connection_accepted", "127.0.0.2")) == 1
    # A refused connection gets no later stage, not even stage 50: every closed
    # connection is one of the 127.0.0.1 ones (the harness's probes).
    accepted = hooks.count(("monkey_connection_accepted", "127.0.0.1"))
    assert [hook for hook, _ in hooks].count("monkey_connection_closed") == accepted


def test_echo_streams_a_large_body_with_backpressure(example, record):
    body = bytes(range(256)) * (16 * 4096)  # 16 MiB
    with socket.create_connection(("127.0.0.1", example.port), timeout=10) as sock:
        head = b"POST /example/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n"
        sender = threading.Thread(target=sock.sendall, args=(head % len(body) + body,))
        sender.start()
        # Read nothing for a while: the server's buffer fills and it must stop reading.
        time.sleep(0.5)
        received = bytearray()
        while len(received) < len(body) + 1000:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            received += chunk
            if received.endswith(body):
                break
        sender.join()
    head_end = received.index(b"\r\n\r\n") + 4
    assert received[:head_end].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: %d\r\n" % len(body) in received[:head_end]
    assert received[head_end:] == body
    detail = wait_for(lambda: sent_line(record, "POST /example/echo"))
    assert f"bytes={len(body)}" in detail
    assert int(detail.split(" pauses=")[1]) >= 1


def check(confdir) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monkey_py", "check", "-c", str(confdir)],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("own, site_extra, where, message", [
    (section("EXAMPLE", "RecordTo x.log", "Recordd y.log"), "",
     "plugins/example/example.conf:3",
     "unknown key 'Recordd' in [EXAMPLE]; valid keys: RecordTo, RefuseAddress"),
    (section("EXAMPLE", "RefuseAddress 127.0.0.1 not-an-address"), "",
     "plugins/example/example.conf:2", "'not-an-address' is not an IP address"),
    (section("EXAMPLE", "RecordTo missing/dir/x.log"), "",
     "plugins/example/example.conf:2", "RecordTo "),
    (section("EXAMPLES"), "", "plugins/example/example.conf:1",
     "unknown section [EXAMPLES]; valid sections here: [EXAMPLE]"),
    (None, section("EXAMPLE", "Greetin hi"), "sites/default:5",
     "unknown key 'Greetin' in [EXAMPLE]; valid keys: Greeting"),
])
def test_config_errors_name_file_and_line(tmp_path, docroot, own, site_extra, where, message):
    confdir = write_confdir(
        tmp_path, ["Listen 127.0.0.1:2001"], {"default": site("localhost", docroot, site_extra)},
        ["example"], {"example": own} if own else None,
    )
    result = check(confdir)
    assert result.returncode == 2, result.stderr
    assert f"{confdir}/{where}: {message}" in result.stderr
    assert "Traceback" not in result.stderr


def test_site_section_needs_the_plugin_loaded(tmp_path, docroot):
    confdir = write_confdir(tmp_path, ["Listen 127.0.0.1:2001"],
                            {"default": site("localhost", docroot, section("EXAMPLE"))})
    result = check(confdir)
    assert result.returncode == 2
    assert f"{confdir}/sites/default:4: unknown section [EXAMPLE]" in result.stderr


def test_check_accepts_a_good_configuration(tmp_path, docroot):
    confdir = write_confdir(
        tmp_path, ["Listen 127.0.0.1:2001"],
        {"default": site("localhost", docroot, section("EXAMPLE", "Greeting hi"))},
        ["example"], {"example": section("EXAMPLE", "RecordTo record.log")},
    )
    result = check(confdir)
    assert result.returncode == 0, result.stderr
    assert "configuration OK (1 site(s), 1 plugin(s))" in result.stdout
    # monkey_check_config has no side effects: nothing is recorded by a check.
    assert not (confdir / "plugins" / "example" / "record.log").exists()
