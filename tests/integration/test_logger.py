"""The logger plugin: combined-format access log lines from a real server."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
import time
from datetime import datetime

import pytest

from monkey_py import __version__
from monkey_py.http.status import error_page
from monkey_py_plugins.logger import FLUSH_BYTES, AccessLog
from support import raw_request, section, site, write_confdir

# host ident user [time] "request" status bytes "referer" "agent"
COMBINED = re.compile(
    r'(?P<host>\S+) - - \[(?P<time>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
    r'"(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) (?P<bytes>\d+|-) '
    r'"(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)"'
)
def error_404(target: bytes) -> int:
    """The size of the built-in 404 page for ``target``."""
    return len(error_page(404, "", target, f"Monkey/{__version__}"))


def get(port, path, headers=None, method="GET", host="localhost"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, headers={"Host": host, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def parse(text: str) -> list[dict]:
    lines = text.splitlines()
    parsed = [COMBINED.fullmatch(line) for line in lines]
    assert all(parsed), [line for line, match in zip(lines, parsed) if not match]
    return [match.groupdict() for match in parsed]


@pytest.fixture
def logged(start_monkey, tmp_path, docroot):
    """A server logging the default site to access.log; site 'other' logs nothing."""
    other = tmp_path / "other"
    other.mkdir()
    access = tmp_path / "logs" / "access.log"
    access.parent.mkdir()
    server = start_monkey(
        plugins=["logger"],
        sites={
            "default": site("127.0.0.1 localhost", docroot, section("LOGGER", f"AccessLog {access}")),
            "other": site("other.test", other),
        },
    )
    return server, access


def test_lines_are_combined_format_with_status_and_sizes(logged):
    server, access = logged
    before = datetime.now().astimezone().replace(microsecond=0)
    assert get(server.port, "/")[0] == 200
    assert get(server.port, "/index.html", method="HEAD")[0] == 200
    assert get(server.port, "/missing?q=1", {"Referer": "http://example.com/a",
                                              "User-Agent": "tester/1.0"})[0] == 404
    assert raw_request(server.port, b"GET /index.html HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200")
    assert get(server.port, "/", host="other.test")[0] == 403
    assert server.stop() == 0  # SIGTERM: the workers flush their buffers
    after = datetime.now().astimezone()

    lines = parse(access.read_text())
    assert [(line["request"], line["status"], line["bytes"]) for line in lines] == [
        ("GET / HTTP/1.1", "200", "14"),
        ("HEAD /index.html HTTP/1.1", "200", "-"),
        ("GET /missing?q=1 HTTP/1.1", "404", str(error_404(b"/missing?q=1"))),
        ("GET /index.html HTTP/1.0", "200", "14"),
    ]
    assert {line["host"] for line in lines} == {"127.0.0.1"}
    assert (lines[2]["referer"], lines[2]["agent"]) == ("http://example.com/a", "tester/1.0")
    assert (lines[3]["referer"], lines[3]["agent"]) == ("-", "-")
    for line in lines:
        when = datetime.strptime(line["time"], "%d/%b/%Y:%H:%M:%S %z")
        assert before <= when <= after


def test_quotes_and_unprintable_bytes_are_escaped(logged):
    server, access = logged
    agent = b'evil" 200 1 "-" "forged\\ \t\xc3\xa9'
    request = b"GET /a%22b HTTP/1.1\r\nHost: localhost\r\nUser-Agent: " + agent + b"\r\n" \
              b"Connection: close\r\n\r\n"
    assert raw_request(server.port, request).startswith(b"HTTP/1.1 404")
    assert server.stop() == 0
    text = access.read_bytes().decode("ascii")
    assert text.count("\n") == 1
    assert text.endswith(r'"GET /a%22b HTTP/1.1" 404 ' + str(error_404(b"/a%22b"))
                         + r' "-" "evil\" 200 1 \"-\" \"forged\\ \t\xc3\xa9"' + "\n")
    assert parse(text)[0]["agent"] == r'evil\" 200 1 \"-\" \"forged\\ \t\xc3\xa9'


def test_lines_are_written_within_a_second_without_a_stop(logged):
    server, access = logged
    assert get(server.port, "/")[0] == 200
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not access.read_text():
        time.sleep(0.05)
    assert parse(access.read_text())[0]["request"] == "GET / HTTP/1.1"


def test_buffer_is_written_when_it_reaches_64_kb(tmp_path):
    path = tmp_path / "access.log"
    access_log = AccessLog(path)
    line = b"x" * 1023 + b"\n"
    for _ in range(FLUSH_BYTES // len(line) - 1):
        access_log.add(line)
    assert path.read_bytes() == b""
    access_log.add(line)
    assert path.stat().st_size == FLUSH_BYTES
    access_log.add(b"tail\n")
    access_log.close()
    assert path.read_bytes().endswith(line + b"tail\n")


def check(confdir) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monkey_py", "check", "-c", str(confdir)],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("lines, where, message", [
    (["AccessLog missing/access.log"], "sites/default:5", "AccessLog "),
    (["AccessLogs access.log"], "sites/default:5",
     "unknown key 'AccessLogs' in [LOGGER]; valid keys: AccessLog"),
])
def test_config_errors_name_file_and_line(tmp_path, docroot, lines, where, message):
    confdir = write_confdir(tmp_path, ["Listen 127.0.0.1:2001"],
                            {"default": site("localhost", docroot, section("LOGGER", *lines))},
                            ["logger"])
    result = check(confdir)
    assert result.returncode == 2, result.stderr
    assert f"{confdir}/{where}: {message}" in result.stderr


def test_logger_section_twice_is_an_error(tmp_path, docroot):
    logger = section("LOGGER", "AccessLog a.log")
    confdir = write_confdir(tmp_path, ["Listen 127.0.0.1:2001"],
                            {"default": site("localhost", docroot, logger, logger)}, ["logger"])
    result = check(confdir)
    assert result.returncode == 2
    assert f"{confdir}/sites/default:6: [LOGGER] appears twice in site default" in result.stderr


def test_relative_access_log_starts_at_the_configuration_directory(start_monkey, docroot):
    server = start_monkey(plugins=["logger"], sites={
        "default": site("127.0.0.1 localhost", docroot, section("LOGGER", "AccessLog access.log")),
    })
    assert get(server.port, "/")[0] == 200
    assert server.stop() == 0
    assert parse((server.confdir / "access.log").read_text())[0]["status"] == "200"
