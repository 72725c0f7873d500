"""Monkey's standard plugins are documented: a page each, linked from the README, every
key of every section in it, and the commands plugins add in docs/cli.md."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import click
import pytest

from monkey_py_plugins.auth.settings import _keys as auth_keys
from monkey_py_plugins.cgi.plugin import FILE_KEYS as CGI_KEYS, SITE_KEYS as CGI_SITE_KEYS
from monkey_py_plugins.dirlisting.plugin import FILE_KEYS as DIR_KEYS
from monkey_py_plugins.dirlisting.plugin import SITE_KEYS as DIR_SITE_KEYS
from monkey_py_plugins.fastcgi.settings import SITE_KEYS as FCGI_SITE_KEYS
from monkey_py_plugins.fastcgi.settings import _keys as fastcgi_keys
from monkey_py_plugins.mandril.rules import KEYS as MANDRIL_KEYS

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "auth": auth_keys(ROOT),
    "mandril": MANDRIL_KEYS,
    "dirlisting": DIR_KEYS + DIR_SITE_KEYS,
    "cgi": CGI_KEYS + CGI_SITE_KEYS,
    "fastcgi": fastcgi_keys(ROOT) + FCGI_SITE_KEYS,
}


@pytest.mark.parametrize("plugin", sorted(KEYS))
def test_each_plugin_has_a_page_linked_from_the_readme(plugin):
    assert (ROOT / "docs" / "plugins" / f"{plugin}.md").is_file()
    assert f"(docs/plugins/{plugin}.md)" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("plugin, key", [(p, k.name) for p, keys in KEYS.items() for k in keys])
def test_every_key_is_documented(plugin, key):
    assert f"`{key}`" in (ROOT / "docs" / "plugins" / f"{plugin}.md").read_text()


@pytest.mark.parametrize("name", sorted(ep.name for ep in entry_points(group="monkey_py.commands")))
def test_plugin_commands_and_their_options_are_in_cli_md(name):
    text = (ROOT / "docs" / "cli.md").read_text()
    assert f"## monkey {name}" in text
    command = next(iter(entry_points(group="monkey_py.commands", name=name))).load()
    for param in command.params:
        if isinstance(param, click.Option):
            for option in param.opts:
                assert f"`{option}`" in text, option
