"""SettingsPlugin: a plugin built on it, loaded by its entry-point name into the server's
own plugin manager, has the three hooks the base implements; they claim its site
section, stop the check at a bad line, and build the settings and state of each worker."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from types import SimpleNamespace

import pytest

from monkey_py import pluginmanager
from monkey_py.config import ConfigError, Key, Location, load_config, read_section, values
from monkey_py.loop import EventLoop
from monkey_py.master import prepare
from monkey_py.pluginmanager import claimed_site_sections
from monkey_py.settings_plugin import SettingsPlugin
from monkey_py.worker import Worker
from support import section, site, write_confdir

SECTION = "GREETING"
KEYS = [Key("Text", values.string, required=True)]


class Greetings:
    """Each site's ``[GREETING] Text``."""

    def __init__(self, config) -> None:
        self.texts = {s.name: read_section(found, KEYS)["text"]
                      for s in config.sites for found in s.sections.get(SECTION, [])}


class Greeter(SettingsPlugin):
    site_sections = (SECTION,)
    settings_class = Greetings

    def __init__(self) -> None:
        self.started: list[tuple[Greetings, int]] = []

    def start_worker(self, worker) -> None:
        self.started.append((self.settings, worker.index))


plugin: Greeter | None = None  # what the entry point "greeter" loads; set by the fixture


@pytest.fixture
def greeter(monkeypatch) -> Greeter:
    """A new Greeter, installed as the plugin ``greeter`` next to the real ones."""
    monkeypatch.setattr(sys.modules[__name__], "plugin", Greeter())
    entry_point = EntryPoint("greeter", f"{__name__}:plugin", pluginmanager.PLUGIN_GROUP)
    installed = pluginmanager.installed
    monkeypatch.setattr(pluginmanager, "installed",
                        lambda group: {**installed(group), "greeter": entry_point})
    return plugin


def confdir(tmp_path: Path, *greeting: str, load: bool = True) -> Path:
    """A configuration whose default site has ``[GREETING]`` with the lines ``greeting``."""
    tmp_path.joinpath("htdocs").mkdir(exist_ok=True)
    text = site("localhost", tmp_path / "htdocs", section(SECTION, *greeting))
    return write_confdir(tmp_path, ["Listen 2001"], {"default": text},
                         plugins=["greeter"] if load else [])


def test_pluggy_finds_the_hooks_the_base_class_implements(greeter, tmp_path):
    pm = prepare(load_config(confdir(tmp_path, "Text Hello")))
    for hook in ("monkey_site_sections", "monkey_check_config", "monkey_worker_start"):
        impls = getattr(pm.hook, hook).get_hookimpls()
        assert [(impl.plugin_name, impl.plugin) for impl in impls] == [("greeter", greeter)]
    assert pm.hook.monkey_request_handler.get_hookimpls() == []
    assert not hasattr(pm.hook, "start_worker")


def test_the_site_sections_are_claimed(greeter, tmp_path):
    pm = prepare(load_config(confdir(tmp_path, "Text Hello")))
    assert claimed_site_sections(pm) == {SECTION}
    with pytest.raises(ConfigError, match=r"unknown section \[GREETING\]"):
        prepare(load_config(confdir(tmp_path, "Text Hello", load=False)))


def test_a_bad_setting_stops_the_check_at_its_line_and_starts_nothing(greeter, tmp_path):
    conf = confdir(tmp_path, "Txt Hello")
    with pytest.raises(ConfigError, match="unknown key 'Txt'") as info:
        prepare(load_config(conf))
    assert info.value.location == Location(str(conf / "sites" / "default"), 5)
    assert greeter.settings is None and greeter.started == []


def test_each_worker_reads_the_settings_then_builds_its_own_state(greeter, tmp_path):
    config = load_config(confdir(tmp_path, "Text Hello"))
    pm = prepare(config)
    assert greeter.settings is None  # checking keeps nothing
    worker = Worker(config, pm, 3, [])
    worker.loop = EventLoop()
    try:
        pm.hook.monkey_worker_start(worker=worker)
    finally:
        worker.loop.close()
    assert greeter.settings.texts == {"default": "Hello"}
    assert greeter.loop is worker.loop
    assert greeter.started == [(greeter.settings, 3)]


def test_a_plain_function_may_read_the_settings_and_start_worker_is_optional():
    def settings_of(config):
        return ("settings of", config)

    class FromFunction(SettingsPlugin):
        site_sections = ("A", "B")
        settings_class = settings_of

    config = object()
    function_plugin = FromFunction()
    function_plugin.monkey_check_config(config)
    assert function_plugin.monkey_site_sections() == ["A", "B"]
    function_plugin.monkey_worker_start(SimpleNamespace(config=config, loop="loop", index=0))
    assert function_plugin.settings == ("settings of", config)
    assert function_plugin.loop == "loop"
