"""Monkey's standard plugins as shipped: listed, and etc/monkey checks with all loaded."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[2] / "etc" / "monkey"
PLUGINS = ("auth", "mandril", "dirlisting", "fastcgi", "cgi")


def monkey(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monkey_py", *args], capture_output=True,
                          text=True, timeout=30)


def test_monkey_plugins_lists_them_and_the_passwd_command():
    result = monkey("plugins")
    names = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert set(PLUGINS) | {"passwd"} <= names


def test_every_plugin_has_its_shipped_conf_and_checks_when_loaded(tmp_path):
    conf = tmp_path / "monkey"
    shutil.copytree(SHIPPED, conf)
    for name in PLUGINS:
        assert (conf / "plugins" / name / f"{name}.conf").is_file()
    load = conf / "plugins.load"
    load.write_text(load.read_text().replace("# Load ", "Load "))
    result = monkey("check", "-c", str(conf))
    assert result.returncode == 0, result.stderr
    assert "(3 site(s), 7 plugin(s))" in result.stdout
