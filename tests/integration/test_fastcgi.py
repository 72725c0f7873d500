"""The fastcgi plugin against a real php-fpm: pages, bodies, large answers, failures."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from monkey_py_plugins.auth.passwords import Cost, hash_password
from php_fpm import PhpFpm
from rawhttp import Client
from support import section, site, wait_for, write_confdir

PAGES = {
    "hello.php": '<?php header("X-Page: hello"); echo "Hello from PHP ", PHP_MAJOR_VERSION, '
                 '" ", $_SERVER["REQUEST_METHOD"], "\\n";',
    "post.php": '<?php $data = file_get_contents("php://input"); echo strlen($data), " ", '
                'hash("sha256", $data), " ", $_POST["name"] ?? "-", "\\n";',
    "big.php": '<?php $block = str_repeat("0123456789abcdef", 4096); $n = (int)$_GET["mb"] * 16;'
               ' for ($i = 0; $i < $n; $i++) { echo $block; }',
    "status.php": '<?php http_response_code(418); header("X-Reason: teapot"); echo "short\\n";',
    "redirect.php": '<?php header("Location: http://example.com/next"); ',
    "env.php": '<?php foreach (["SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REMOTE_USER", '
               '"APP_MODE", "HTTP_X_TEST", "SERVER_SOFTWARE"] as $k) { echo $k, "=", '
               '$_SERVER[$k] ?? "", "\\n"; }',
    "pid.php": "<?php echo getmypid();",
    "sleep.php": "<?php sleep(3); echo 'late';",
}
MB = 1024 * 1024


def request(port, target, method="GET", body=b"", headers=(), timeout=20.0):
    headers = list(headers)
    if method == "POST":
        headers.append(("Content-Length", str(len(body))))
    with Client(port, timeout=timeout) as client:
        return client.request(method, target, body=body, headers=headers)


def vm(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def fastcgi_conf(fpm: PhpFpm, extra: str = "") -> str:
    return (f"[FASTCGI_SERVER]\n    ServerName php\n    ServerAddr 127.0.0.1:{fpm.port}\n{extra}"
            f"\n[FASTCGI_SERVER]\n    ServerName php-unix\n    ServerPath {fpm.socket}\n")


def docroot_with_pages(base: Path) -> Path:
    root = base / "htdocs"
    root.mkdir(parents=True, exist_ok=True)
    for name, text in PAGES.items():
        (root / name).write_text(text)
    (root / "unix").mkdir(exist_ok=True)
    (root / "unix" / "hello.php").write_text(PAGES["hello.php"])
    (root / "members").mkdir(exist_ok=True)
    (root / "members" / "env.php").write_text(PAGES["env.php"])
    return root


@pytest.fixture(scope="module")
def fpm(tmp_path_factory):
    server = PhpFpm(tmp_path_factory.mktemp("php-fpm"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(module_monkey, tmp_path_factory, fpm):
    base = tmp_path_factory.mktemp("fastcgi")
    root = docroot_with_pages(base)
    users = base / "users"
    users.write_text(f"alice:{hash_password(b'pw', Cost(10, 8, 1)).encode()}\n")
    return module_monkey(
        server=["MaxRequestSize 8192"], plugins=["auth", "fastcgi"], root=base,
        plugin_confs={"fastcgi": fastcgi_conf(fpm)},
        sites={
            "default": site("127.0.0.1 localhost", root,
                            section("HANDLERS", r"Match ^/unix/.*\.php fastcgi php-unix",
                                    r"Match \.php(/|$) fastcgi"),
                            section("FASTCGI", "SetEnv APP_MODE testing"),
                            section("AUTH", "Location /members", "Title M", f"Users {users}")),
        },
    )


def test_a_php_page(server):
    response = request(server.port, "/hello.php")
    assert response.status == 200, response.body
    assert response.body.startswith(b"Hello from PHP ") and response.body.endswith(b" GET\n")
    assert response.header("X-Page") == "hello"
    assert response.header("Content-Type").startswith("text/html")
    assert "is reachable" in server.log()


def test_a_page_through_the_unix_socket_server(server):
    # The rule for /unix/ names the server listening on a Unix socket.
    response = request(server.port, "/unix/hello.php")
    assert response.status == 200 and response.body.startswith(b"Hello from PHP")
    assert wait_for(lambda: "server php-unix (ServerPath" in server.log())


def test_a_post_body_reaches_php(server):
    body = os.urandom(3 * MB)
    response = request(server.port, "/post.php", "POST", body,
                       headers=[("Content-Type", "application/octet-stream")])
    assert response.body.decode() == f"{len(body)} {hashlib.sha256(body).hexdigest()} -\n"
    form = request(server.port, "/post.php", "POST", b"name=monkey+py",
                   headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert form.body.endswith(b" monkey py\n")


def test_a_large_answer_streams_in_constant_memory(server):
    worker = server.worker_pids()[0]
    request(server.port, "/big.php?mb=1")
    before = vm(worker, "VmHWM")
    response = request(server.port, "/big.php?mb=48", timeout=60)
    assert response.status == 200 and len(response.body) == 48 * MB
    assert response.body[:16] == b"0123456789abcdef"
    assert vm(worker, "VmHWM") - before < 16 * MB


def test_status_location_and_variables(server):
    teapot = request(server.port, "/status.php")
    assert (teapot.status, teapot.header("X-Reason"), teapot.body) == (418, "teapot", b"short\n")
    moved = request(server.port, "/redirect.php")
    assert moved.status == 302 and moved.header("Location") == "http://example.com/next"
    env = request(server.port, "/env.php/extra?q=1", headers=[("X-Test", "t")]).body.decode()
    for line in ("SCRIPT_NAME=/env.php", "PATH_INFO=/extra", "QUERY_STRING=q=1",
                 "APP_MODE=testing", "HTTP_X_TEST=t", "REMOTE_USER=\n"):
        assert line in env + "\n", env


def test_the_authenticated_user_reaches_php(server):
    token = base64.b64encode(b"alice:pw").decode()
    assert request(server.port, "/members/env.php").status == 401
    env = request(server.port, "/members/env.php",
                  headers=[("Authorization", f"Basic {token}")]).body.decode()
    assert "REMOTE_USER=alice" in env


def test_connections_are_kept_for_the_next_request(server):
    # Each php-fpm child serves one connection: one kept connection, one child.
    pids = {request(server.port, "/pid.php").body for _ in range(6)}
    assert len(pids) == 1


def test_missing_scripts_and_traversal_stay_here(server):
    assert request(server.port, "/nothing.php").status == 404
    assert request(server.port, "/%2e%2e/%2e%2e/etc/x.php").status == 403
    with Client(server.port) as client:
        client.send(b"POST /post.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"1\r\na\r\n0\r\n\r\n")
        assert client.read_response().status == 411


def test_concurrent_requests_share_the_pool(server):
    results = []

    def one():
        results.append(request(server.port, "/hello.php").status)

    threads = [threading.Thread(target=one) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 12


def test_php_fpm_going_down(start_monkey, tmp_path):
    """A crash mid-request is a 502; afterwards nothing listens and requests get 503."""
    fpm = PhpFpm(tmp_path / "fpm", children=2)
    try:
        root = docroot_with_pages(tmp_path)
        monkey = start_monkey(plugins=["fastcgi"], root=tmp_path,
                              plugin_confs={"fastcgi": fastcgi_conf(fpm)},
                              sites={"default": site("127.0.0.1 localhost", root, section(
                                  "HANDLERS", r"Match \.php$ fastcgi"))})
        assert request(monkey.port, "/hello.php").status == 200
        results = {}
        thread = threading.Thread(
            target=lambda: results.setdefault("slow", request(monkey.port, "/sleep.php")))
        thread.start()
        time.sleep(0.5)  # the request is in php-fpm's hands
        fpm.kill()
        thread.join()
        assert results["slow"].status == 502
        down = request(monkey.port, "/hello.php")
        assert down.status == 503
        assert "cannot reach server php (ServerAddr 127.0.0.1:" in monkey.log()
    finally:
        fpm.stop()


def test_a_server_that_is_not_there_is_said_at_start(start_monkey, tmp_path):
    root = docroot_with_pages(tmp_path)
    monkey = start_monkey(
        plugins=["fastcgi"], root=tmp_path,
        plugin_confs={"fastcgi": f"[FASTCGI_SERVER]\n    ServerName gone\n"
                                 f"    ServerPath {tmp_path / 'no.sock'}\n"},
        sites={"default": site("127.0.0.1 localhost", root,
                               section("HANDLERS", r"Match \.php$ fastcgi"))})
    assert wait_for(lambda: "server gone (ServerPath" in monkey.log() and
                    "is not reachable" in monkey.log())
    assert request(monkey.port, "/hello.php").status == 503


@pytest.mark.parametrize("conf, handlers, where, what", [
    ("[FASTCGI_SERVER]\n    ServerName a\n", r"Match \.php$ fastcgi", "fastcgi.conf:1:",
     "needs ServerAddr"),
    ("[FASTCGI_SERVER]\n    ServerName a\n    ServerAddr 9000\n", r"Match \.php$ fastcgi",
     "fastcgi.conf:3:", "expected HOST:PORT"),
    ("[FASTCGI_SERVER]\n    ServerName a\n    ServerAddr 127.0.0.1:9000\n",
     r"Match \.php$ fastcgi b", "sites/default:5:", "unknown FastCGI server 'b'; servers: a"),
])
def test_configuration_mistakes(tmp_path, docroot, conf, handlers, where, what):
    confdir = write_confdir(tmp_path, ["Listen 127.0.0.1:1"],
                            {"default": site("localhost", docroot, section("HANDLERS", handlers))},
                            ["fastcgi"], {"fastcgi": conf})
    result = subprocess.run([sys.executable, "-m", "monkey_py", "check", "-c", str(confdir)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert where in result.stderr and what in result.stderr, result.stderr
