"""The ``monkey`` command: check, plugins, help, and one-line errors instead of tracebacks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from monkey_py import __version__
from rawhttp import Client
from support import MonkeyProcess, free_port, section, site, write_confdir
from tls_support import shipped_config

DOCS = Path(__file__).resolve().parents[2] / "docs"


def monkey(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """Run the command to its end; past ``timeout``, kill it and any workers it started."""
    with subprocess.Popen(
        [sys.executable, "-m", "monkey_py", *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The command failed with exactly one line on stderr holding every fragment."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture
def confdir(tmp_path):
    """A valid configuration directory: (path, the port it listens on)."""
    root = tmp_path / "htdocs"
    root.mkdir()
    (root / "index.html").write_text("<h1>cli</h1>\n")
    port = free_port()
    conf = write_confdir(tmp_path, [f"Listen 127.0.0.1:{port}", "Workers 1"],
                         {"default": site("localhost", root)}, ["logger"])
    return conf, port


def test_help_lists_the_commands():
    result = monkey("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage:")
    for word in ("check", "plugins", "--confdir", "SIGHUP"):
        assert word in result.stdout


def test_check_help():
    result = monkey("check", "--help")
    assert result.returncode == 0 and "--confdir" in result.stdout


def test_version():
    result = monkey("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_plugins_lists_logger():
    result = monkey("plugins")
    assert result.returncode == 0
    lines = [line.split() for line in result.stdout.splitlines()]
    assert any(words and words[0] == "logger" for words in lines)


def test_plugins_sample_in_cli_md_is_the_real_output():
    """Every line of the sample is printed, and monkey_py's own entry points are all in it.

    Other installed distributions may add lines to the real output (docs/examples are
    installed by make; a user may install more), so only monkey_py's lines must match.
    """
    text = (DOCS / "cli.md").read_text()
    start = text.index("$ monkey plugins\n") + len("$ monkey plugins\n")
    sample = text[start:text.index("```", start)].splitlines()
    real = monkey("plugins").stdout.splitlines()
    assert [line for line in sample if line not in real] == []

    def shipped(lines):
        return [line for line in lines if line.split()[1:2] == ["monkey_py"]]

    assert shipped(sample) == shipped(real)


def test_check_accepts_a_good_configuration(confdir):
    conf, _ = confdir
    result = monkey("check", "-c", str(conf))
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout
    assert "1 site(s), 1 plugin(s)" in result.stdout


def test_check_accepts_the_shipped_configuration(tmp_path):
    result = monkey("check", "-c", str(shipped_config(tmp_path / "monkey")))
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


@pytest.mark.parametrize("file, text, where, what", [
    ("monkey.conf", section("SERVER", "Listen 2001", "NoSuchKey 1"), "monkey.conf:3:",
     "NoSuchKey"),
    ("monkey.conf", section("SERVER", "Listen 2001", "Timeout soon"), "monkey.conf:3:",
     "soon"),
    ("monkey.conf", section("SERVER", "Listen 2001", "KeepAlive Maybe"), "monkey.conf:3:",
     "Maybe"),
    ("monkey.conf", "[SERVER]\n    Listen 2001\n  Workers 1\n", "monkey.conf:3:", ""),
    ("monkey.conf", section("SERVER", "Listen 2001") + "@INCLUDE /dev/zero\n", "monkey.conf:3:",
     "/dev/zero: it is a character device, not a regular file"),
    ("monkey.conf", "\ufeff" + section("SERVER", "Listen 2001", "Workers 100000000"),
     "monkey.conf:3:", "Workers 100000000: expected 0 (one worker per CPU) to 1024"),
    ("plugins.load", section("PLUGINS", "Load logger", "Load no_such_plugin"),
     "plugins.load:3:", "no_such_plugin"),
    ("sites/default", section("HOST", "ServerName localhost", "DocumentRoot /no/such/dir"),
     "sites/default:3:", "/no/such/dir"),
    ("sites/default", section("HOST", "ServerName localhost", "DocumentRoot {root}")
     + section("NOPE", "Key 1"), "sites/default:4:", "NOPE"),
    ("sites/default", section("HOST", "ServerName localhost", "DocumentRoot {root}",
                              "ServerName localhost"), "sites/default:4:", "ServerName"),
    ("sites/default", section("HOST", "ServerName localhost", "DocumentRoot {root}")
     + section("ERROR_PAGES", "404 missing.html"), "sites/default:5:", "missing.html"),
])
def test_check_reports_file_and_line(confdir, file, text, where, what):
    conf, _ = confdir
    (conf / file).write_text(text.format(root=conf.parent / "htdocs"))
    line = assert_one_line_error(monkey("check", "-c", str(conf)), where, what)
    assert line.startswith("monkey: ")


def test_check_of_a_missing_directory(tmp_path):
    assert_one_line_error(monkey("check", "-c", str(tmp_path / "nowhere")), "nowhere")


def test_start_with_a_bad_config_stops_with_file_and_line(confdir):
    conf, port = confdir
    (conf / "monkey.conf").write_text(
        section("SERVER", f"Listen 127.0.0.1:{port}", "Workers 1", "MaxRequestSize huge")
    )
    result = monkey("-c", str(conf))
    assert_one_line_error(result, "monkey.conf:4:", "huge")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_start_on_a_port_in_use_is_one_line(confdir):
    conf, port = confdir
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        result = monkey("-c", str(conf))
    assert_one_line_error(result, f"monkey: cannot listen on 127.0.0.1:{port}")


def test_a_second_server_on_the_same_address_is_refused(confdir, tmp_path):
    """SO_REUSEPORT would let it share the port and split the traffic: nginx refuses too."""
    conf, port = confdir
    first = MonkeyProcess(conf, port)
    try:
        other_root = tmp_path / "other"
        other_root.mkdir()
        (other_root / "index.html").write_text("second\n")
        other = write_confdir(other_root, [f"Listen 127.0.0.1:{port}", "Workers 1"],
                              {"default": site("localhost", other_root)})
        result = monkey("-c", str(other), timeout=10)
        assert result.returncode == 1
        assert_one_line_error(
            result, f"monkey: cannot listen on 127.0.0.1:{port}: Address already in use")
        for _ in range(10):
            with Client(port) as client:
                assert client.request("GET", "/").body == b"<h1>cli</h1>\n"
    finally:
        assert first.stop() == 0


def test_unknown_option_is_a_usage_error():
    result = monkey("--no-such-option")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "no such option" in result.stderr.lower()


def test_port_option_overrides_listen(confdir):
    conf, _ = confdir
    port = free_port()
    server = MonkeyProcess(conf, port, "-p", str(port))
    try:
        with Client(port) as client:
            response = client.request("GET", "/")
        assert (response.status, response.body) == (200, b"<h1>cli</h1>\n")
    finally:
        assert server.stop() == 0


def test_port_option_on_the_shipped_configuration_serves(tmp_path):
    """-p turns its three Listen lines into one address: one listener, not three copies."""
    conf = shipped_config(tmp_path / "monkey")
    port = free_port()
    server = MonkeyProcess(conf, port, "-p", str(port), "-w", "1")
    try:
        for _ in range(3):
            with Client(port, timeout=5) as client:
                assert client.request("GET", "/").status == 200
        log = server.log()
        assert log.count("listening on") == 1
        assert f"listening on 0.0.0.0:{port} with 1 worker(s)" in log
        assert "crashed" not in log and "ERROR" not in log
    finally:
        assert server.stop() == 0


def test_unwritable_pid_file_is_one_line(confdir, tmp_path):
    conf, port = confdir
    pid_file = tmp_path / "no" / "such" / "dir" / "monkey.pid"
    (conf / "monkey.conf").write_text(
        section("SERVER", f"Listen 127.0.0.1:{port}", "Workers 1", f"PidFile {pid_file}")
    )
    result = monkey("-c", str(conf))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"monkey: No such file or directory: {pid_file}"
    )
