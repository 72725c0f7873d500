"""Monkey-syntax configuration: the parser, value converters, schema helpers and loader."""

from .errors import ConfigError, Location
from .loader import NO_EFFECT_KEYS, load_config
from .model import Config, Handler, Listen, PluginRef, ServerConfig, Site
from .schema import Key, attr_name, check_sections, one_section, plugin_section, read_section
from .syntax import Document, Entry, Section, parse_file, parse_text

__all__ = [
    "NO_EFFECT_KEYS",
    "Config",
    "ConfigError",
    "Document",
    "Entry",
    "Handler",
    "Key",
    "Listen",
    "Location",
    "PluginRef",
    "Section",
    "ServerConfig",
    "Site",
    "attr_name",
    "check_sections",
    "load_config",
    "one_section",
    "plugin_section",
    "parse_file",
    "parse_text",
    "read_section",
]
