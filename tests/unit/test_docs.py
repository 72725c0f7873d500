"""The reference pages cover every hook, every [SERVER] key and every command-line option."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from monkey_py.cli import main
from monkey_py.config.loader import server_key_names
from monkey_py.hookspec import all_hooks

DOCS = Path(__file__).resolve().parents[2] / "docs"


def headings(page: str) -> set[str]:
    """The text of the ``##`` headings of a docs page, backquotes removed."""
    text = (DOCS / page).read_text()
    return {m.group(1).strip("` ") for m in re.finditer(r"^##\s+(.+?)\s*$", text, re.M)}


def command_options() -> list[tuple[str, str]]:
    """(command, option) for every option string of ``monkey`` and its subcommands."""
    found = []
    commands = [("monkey", main)] + [
        (f"monkey {name}", command) for name, command in sorted(main.commands.items())
    ]
    for label, command in commands:
        for param in command.params:
            if isinstance(param, click.Option):
                found += [(label, opt) for opt in param.opts + param.secondary_opts]
    return found


@pytest.mark.parametrize("hook", sorted(all_hooks()))
def test_every_hook_has_a_section_in_hooks_md(hook):
    assert hook in headings("hooks.md"), f"docs/hooks.md needs a '## {hook}' section"


def test_hooks_md_documents_no_hook_that_does_not_exist():
    documented = {h for h in headings("hooks.md") if h.startswith("monkey_")}
    assert documented <= set(all_hooks())


@pytest.mark.parametrize("key", server_key_names())
def test_every_server_key_is_in_configuration_md(key):
    text = (DOCS / "configuration.md").read_text()
    assert f"`{key}`" in text, f"docs/configuration.md does not document [SERVER] {key}"


def test_command_options_are_found():
    options = {opt for _, opt in command_options()}
    assert {"--confdir", "-c", "--port", "--version"} <= options


@pytest.mark.parametrize("command, option", command_options())
def test_every_command_line_option_is_in_cli_md(command, option):
    text = (DOCS / "cli.md").read_text()
    assert re.search(rf"`{re.escape(option)}\b", text), (
        f"docs/cli.md does not document {command} {option}"
    )


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_subcommand_has_a_section_in_cli_md(name):
    assert f"monkey {name}" in headings("cli.md")
