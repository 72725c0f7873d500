"""The cgi plugin in a real server: RFC 3875 variables, bodies, headers, limits, reaping."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rawhttp import Client
from support import section, site, wait_for, write_confdir

PYTHON = sys.executable
SCRIPTS = {
    "env.cgi": f"""#!{PYTHON}
import os
print("Content-Type: text/plain")
print()
for name in sorted(os.environ):
    print(f"{{name}}={{os.environ[name]}}")
""",
    "echo.cgi": f"""#!{PYTHON}
import hashlib, os, sys
data = sys.stdin.buffer.read(int(os.environ.get("CONTENT_LENGTH", "0")))
sys.stdout.write("Content-Type: text/plain\\r\\n\\r\\n")
sys.stdout.write(f"{{len(data)}} {{hashlib.sha256(data).hexdigest()}}\\n")
""",
    "status.cgi": "#!/bin/sh\nprintf 'Status: 404 Gone Away\\nContent-Type: text/plain\\n\\n"
                  "not here\\n'\n",
    "redirect.cgi": "#!/bin/sh\nprintf 'Location: http://example.com/elsewhere\\n\\n'\n",
    "nph.cgi": "#!/bin/sh\nprintf 'HTTP/1.1 203 Fine\\r\\nContent-Type: text/plain\\r\\n\\r\\n"
               "nph\\n'\n",
    "big.cgi": f"""#!{PYTHON}
import sys
out = sys.stdout.buffer
out.write(b"Content-Type: application/octet-stream\\n\\n")
block = bytes(range(256)) * 256
for _ in range(8 * 1024 * 1024 // len(block)):
    out.write(block)
""",
    "slow.cgi": "#!/bin/sh\necho $$ > \"$PIDFILE\"\nsleep 30\necho 'Content-Type: text/plain'\n",
    "garbage.cgi": "#!/bin/sh\nprintf 'this is not a header\\n\\nbody\\n'\n",
    "silent.cgi": "#!/bin/sh\nexit 3\n",
    "noexec.cgi": "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho hi\n",
}


def get(port, target, method="GET", body=b"", headers=(), host="localhost"):
    headers = list(headers)
    if body or method == "POST":
        headers.append(("Content-Length", str(len(body))))
    with Client(port, timeout=20) as client:
        return client.request(method, target, body=body, headers=headers, host=host)


def env_of(response) -> dict[str, str]:
    lines = response.body.decode().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("cgi")


@pytest.fixture(scope="module")
def server(module_monkey, base):
    root = base / "htdocs"
    cgi_bin = root / "cgi-bin"
    cgi_bin.mkdir(parents=True)
    for name, text in SCRIPTS.items():
        path = cgi_bin / name
        path.write_text(text)
        path.chmod(0o644 if name == "noexec.cgi" else 0o755)
    (root / "py").mkdir()
    (root / "py" / "hello.py").write_text(
        "print('Content-Type: text/plain')\nprint()\nprint('py')\n")
    return module_monkey(
        server=["MaxRequestSize 4096"], plugins=["cgi"], root=base,
        plugin_confs={"cgi": "[CGI]\n    Timeout 1.5\n    MaxScripts 2\n"},
        sites={"default": site(
            "127.0.0.1 localhost", root,
            section("HANDLERS", r"Match ^/cgi-bin/.*\.cgi cgi",
                    rf"Match ^/py/.*\.py$ cgi {PYTHON} text/x-python-output"),
            section("CGI", "SetEnv APP_MODE testing", f"SetEnv PIDFILE {base / 'slow.pid'}"),
        )},
    )


def test_the_meta_variables(server):
    response = get(server.port, "/cgi-bin/env.cgi/extra/path?a=1&b=%20",
                   headers=[("X-Test", "yes"), ("Cookie", "a=1"), ("Cookie", "b=2"),
                            ("Proxy", "http://evil:1"), ("Authorization", "Basic eDp5"),
                            ("X_Spoof", "no")])
    assert response.status == 200 and response.header("Content-Type") == "text/plain"
    env = env_of(response)
    root = os.path.realpath(server.confdir.parent / "htdocs")
    expected = {
        "GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET", "QUERY_STRING": "a=1&b=%20",
        "SCRIPT_NAME": "/cgi-bin/env.cgi", "PATH_INFO": "/extra/path",
        "PATH_TRANSLATED": root + "/extra/path", "SCRIPT_FILENAME": root + "/cgi-bin/env.cgi",
        "REQUEST_URI": "/cgi-bin/env.cgi/extra/path?a=1&b=%20", "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost", "SERVER_PORT": str(server.port),
        "REMOTE_ADDR": "127.0.0.1", "HTTP_X_TEST": "yes", "HTTP_COOKIE": "a=1; b=2",
        "APP_MODE": "testing", "PATH": "/usr/local/bin:/usr/bin:/bin",
    }
    assert {name: env.get(name) for name in expected} == expected
    assert env["SERVER_SOFTWARE"].startswith("Monkey/")
    # Built from scratch: nothing of the server's own environment, no httpoxy, no secrets.
    for name in ("HOME", "HTTP_PROXY", "HTTP_AUTHORIZATION", "HTTP_X_SPOOF", "CONTENT_LENGTH",
                 "PYTEST_CURRENT_TEST"):
        assert name not in env


def test_a_post_body_reaches_the_script(server):
    body = os.urandom(4000)
    response = get(server.port, "/cgi-bin/echo.cgi", "POST", body,
                   headers=[("Content-Type", "application/octet-stream")])
    assert response.body.decode() == f"4000 {hashlib.sha256(body).hexdigest()}\n"
    assert get(server.port, "/cgi-bin/echo.cgi", "POST", b"").body.startswith(b"0 ")


def test_chunked_bodies_need_a_length(server):
    with Client(server.port) as client:
        client.send(b"POST /cgi-bin/echo.cgi HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                    b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        assert client.read_response().status == 411


def test_status_location_and_nph(server):
    gone = get(server.port, "/cgi-bin/status.cgi")
    assert (gone.status, gone.reason, gone.body) == (404, "Gone Away", b"not here\n")
    moved = get(server.port, "/cgi-bin/redirect.cgi")
    assert moved.status == 302 and moved.header("Location") == "http://example.com/elsewhere"
    nph = get(server.port, "/cgi-bin/nph.cgi")
    assert (nph.status, nph.body) == (203, b"nph\n")


def test_an_interpreter_and_a_content_type_from_the_rule(server):
    response = get(server.port, "/py/hello.py")
    assert (response.status, response.body) == (200, b"py\n")
    assert response.header("Content-Type") == "text/plain"
    # The rule's Content-Type is for scripts that give none; this one gives its own.


def test_a_large_output_streams(server):
    response = get(server.port, "/cgi-bin/big.cgi")
    assert response.status == 200 and response.header("Transfer-Encoding") == "chunked"
    assert len(response.body) == 8 * 1024 * 1024
    assert response.body[:256] == bytes(range(256))


def test_scripts_that_cannot_answer(server):
    assert get(server.port, "/cgi-bin/garbage.cgi").status == 502
    assert get(server.port, "/cgi-bin/silent.cgi").status == 502
    assert get(server.port, "/cgi-bin/noexec.cgi").status == 500
    assert get(server.port, "/cgi-bin/missing.cgi").status == 404
    assert get(server.port, "/cgi-bin/../cgi-bin/%2e%2e/%2e%2e/etc/passwd.cgi").status == 403
    assert "noexec.cgi is not executable" in server.log()


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # gone, or going while read
        return False
    return state != "Z"


def zombies(server) -> list[int]:
    found = []
    for worker in server.worker_pids():
        children = Path(f"/proc/{worker}/task/{worker}/children").read_text().split()
        found += [int(pid) for pid in children if not running(int(pid))]
    return found


def test_a_silent_script_is_killed_at_the_timeout(server, base):
    pidfile = base / "slow.pid"
    pidfile.unlink(missing_ok=True)
    start = time.monotonic()
    response = get(server.port, "/cgi-bin/slow.cgi")
    assert response.status == 504
    assert 1.3 < time.monotonic() - start < 4
    pid = int(pidfile.read_text())
    assert wait_for(lambda: not running(pid))
    assert wait_for(lambda: not zombies(server))


def test_a_client_leaving_kills_its_script(server, base):
    pidfile = base / "slow.pid"
    pidfile.unlink(missing_ok=True)
    with Client(server.port) as client:
        client.send(b"GET /cgi-bin/slow.cgi HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_for(pidfile.exists)
        time.sleep(0.1)
    pid = int(pidfile.read_text())
    assert wait_for(lambda: not running(pid), timeout=3)
    assert wait_for(lambda: not zombies(server))


def test_scripts_beyond_max_scripts_get_503(server, base):
    pidfile = base / "slow.pid"
    clients = []
    for _ in range(2):
        pidfile.unlink(missing_ok=True)
        client = Client(server.port)
        client.send(b"GET /cgi-bin/slow.cgi HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_for(pidfile.exists)
        clients.append(client)
    try:
        assert get(server.port, "/cgi-bin/env.cgi").status == 503
    finally:
        for client in clients:
            client.close()
    assert wait_for(lambda: get(server.port, "/cgi-bin/env.cgi").status == 200, timeout=5)


def test_many_scripts_leave_no_zombie(server):
    threads = [threading.Thread(target=get, args=(server.port, "/cgi-bin/status.cgi"))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wait_for(lambda: not zombies(server))


@pytest.mark.parametrize("handlers, cgi_site, where, what", [
    (["Match /x cgi /no/such/interpreter"], None, "sites/default:5:", "not an executable file"),
    ([], "SetEnv PATH_INFO x", "sites/default:5:", "the server sets this variable"),
    ([], "SetEnv 9X y", "sites/default:5:", "letters, digits"),
])
def test_configuration_mistakes(tmp_path, docroot, handlers, cgi_site, where, what):
    extra = section("HANDLERS", *handlers) if handlers else section("CGI", cgi_site)
    conf = write_confdir(tmp_path, ["Listen 127.0.0.1:1"],
                         {"default": site("localhost", docroot, extra)}, ["cgi"])
    result = subprocess.run([sys.executable, "-m", "monkey_py", "check", "-c", str(conf)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert where in result.stderr and what in result.stderr, result.stderr
