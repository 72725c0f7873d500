"""Monkey's standard plugins as shipped: listed, and etc/monkey checks with all loaded."""

from __future__ import annotations

import subprocess
import sys

from tls_support import shipped_config

PLUGINS = ("auth", "mandril", "dirlisting", "fastcgi", "cgi", "tls")


def monkey(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monkey_py", *args], capture_output=True,
                          text=True, timeout=30)


def test_monkey_plugins_lists_them_and_the_passwd_command():
    result = monkey("plugins")
    names = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert set(PLUGINS) | {"passwd"} <= names


def test_every_plugin_has_its_shipped_conf_and_checks_when_loaded(tmp_path):
    conf = shipped_config(tmp_path / "monkey")
    for name in PLUGINS:
        assert (conf / "plugins" / name / f"{name}.conf").is_file()
    load = conf / "plugins.load"
    load.write_text(load.read_text().replace("# Load ", "Load "))
    result = monkey("check", "-c", str(conf))
    assert result.returncode == 0, result.stderr
    assert "(3 site(s), 8 plugin(s))" in result.stdout
