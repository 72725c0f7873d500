"""Declare the keys of a section once; read it into a dict with file:line errors.

The core reads ``[SERVER]`` and ``[HOST]`` with these helpers, and plugins read their
own sections the same way, so every key mistake gets the same kind of message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .errors import ConfigError, Location
from .syntax import Document, Entry, Section
from .values import Converter

_MISSING: Any = object()
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def attr_name(key: str) -> str:
    """The Python name of a key: ``MaxRequestSize`` -> ``max_request_size``."""
    return _CAMEL_RE.sub("_", key).replace("-", "_").lower()


@dataclass(frozen=True)
class Key:
    """One key a section may hold.

    - ``convert``: a converter from :mod:`monkey_py.config.values`.
    - ``default``: the value when the key is absent (already converted); a repeatable
      key without one defaults to ``[]``, any other key to None.
    - ``repeatable``: the key may appear several times; the result is a list, and a
      converter returning a list (``words``) extends it instead of nesting.
    - ``unique``: with ``repeatable``, the same value twice is an error.
    - ``required``: absence is an error at the section header.
    - ``attr``: the name in the result dict; by default ``attr_name(name)``.
    """

    name: str
    convert: Converter[Any]
    default: Any = _MISSING
    repeatable: bool = False
    required: bool = False
    unique: bool = False
    attr: str | None = None

    @property
    def attribute(self) -> str:
        """The name this key's value gets in :func:`read_section`'s result."""
        return self.attr or attr_name(self.name)

    def absent_value(self) -> Any:
        """The value used when the section does not set this key."""
        if self.default is not _MISSING:
            return list(self.default) if isinstance(self.default, list) else self.default
        return [] if self.repeatable else None


def where_first(first: Location, here: Location) -> str:
    """How an error at ``here`` refers to ``first``: "line N", or file:line elsewhere."""
    return f"line {first.line}" if first.file == here.file else str(first)


def read_section(
    section: Section,
    keys: Iterable[Key],
    *,
    ignored: Iterable[str] = (),
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """Convert ``section``'s entries as ``keys`` describe; map each key's attribute to its value.

    Keys named in ``ignored`` (Monkey keys a reader accepts without implementing) are
    not converted; each occurrence adds "file:line: Key has no effect in monkey_py" to
    ``warnings``.
    """
    by_name = {key.name.lower(): key for key in keys}
    skipped = {name.lower() for name in ignored}
    result = {key.attribute: key.absent_value() for key in by_name.values()}
    first_seen: dict[str, Entry] = {}
    seen_values: dict[str, dict[Any, Location]] = {}
    for entry in section.entries:
        lowered = entry.key.lower()
        if lowered in skipped:
            if warnings is not None:
                warnings.append(f"{entry.location}: {entry.key} has no effect in monkey_py")
            continue
        key = by_name.get(lowered)
        if key is None:
            valid = ", ".join(k.name for k in by_name.values()) or "none"
            raise ConfigError(
                f"unknown key '{entry.key}' in [{section.name}]; valid keys: {valid}",
                entry.location,
            )
        first = first_seen.setdefault(lowered, entry)
        if not key.repeatable and first is not entry:
            raise ConfigError(
                f"'{key.name}' is set twice in [{section.name}] (first at "
                f"{where_first(first.location, entry.location)}); keep one",
                entry.location,
            )
        value = key.convert(entry.value, entry.location)
        if not key.repeatable:
            result[key.attribute] = value
            continue
        if first is entry:
            result[key.attribute] = []
        items = value if isinstance(value, list) else [value]
        if key.unique:
            _check_unique(key, items, entry, seen_values.setdefault(lowered, {}))
        result[key.attribute].extend(items)
    for key in by_name.values():
        if key.required and key.name.lower() not in first_seen:
            raise ConfigError(f"[{section.name}] needs a '{key.name}' key", section.location)
    return result


def _check_unique(key: Key, items: list[Any], entry: Entry, seen: dict[Any, Location]) -> None:
    for item in items:
        first = seen.get(item)
        if first is not None:
            raise ConfigError(
                f"{key.name} {item} is given twice (first at "
                f"{where_first(first, entry.location)}); remove one",
                entry.location,
            )
        seen[item] = entry.location


def check_sections(document: Document, allowed: Mapping[str, bool]) -> None:
    """Reject sections not in ``allowed`` (upper-case name -> may repeat) and unwanted repeats."""
    first_seen: dict[str, Section] = {}
    for section in document.sections:
        if section.name not in allowed:
            valid = ", ".join(f"[{name}]" for name in allowed)
            raise ConfigError(
                f"unknown section [{section.name}]; valid sections here: {valid}",
                section.location,
            )
        first = first_seen.setdefault(section.name, section)
        if first is not section and not allowed[section.name]:
            raise ConfigError(
                f"section [{section.name}] appears twice (first at "
                f"{where_first(first.location, section.location)}); merge them into one",
                section.location,
            )


def one_section(document: Document, name: str, required: bool = False) -> Section | None:
    """The single section ``name`` of ``document``; error if repeated, or absent and required."""
    found = document.sections_named(name)
    if len(found) > 1:
        raise ConfigError(
            f"section [{found[1].name}] appears twice (first at "
            f"{where_first(found[0].location, found[1].location)}); merge them into one",
            found[1].location,
        )
    if not found:
        if required:
            raise ConfigError(f"no [{name.upper()}] section: add one", Location(document.path))
        return None
    return found[0]


def plugin_section(config, plugin: str, name: str) -> Section | None:
    """The ``[NAME]`` section of plugin ``plugin``'s own file, for a file that holds that
    one section and nothing else; None without the file or the section. Another section,
    or ``[NAME]`` twice, is a ConfigError at its line."""
    document = config.plugin_config(plugin)
    if document is None:
        return None
    check_sections(document, {name: False})
    return one_section(document, name)
