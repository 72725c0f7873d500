"""Themes: Monkey's three templates (header, entry, footer) with ``%_tag_%`` fields.

A theme directory holds ``header.theme``, ``entry.theme`` and ``footer.theme``. The
header and footer are written once, the entry once per directory entry. Tags are
matched case-insensitively; a tag this plugin does not know stops the start at its
``file:line`` with the valid tags. Values are escaped by the plugin before they reach a
template: names for HTML, URLs percent-encoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from monkey_py.config import ConfigError, Location

FILES = ("header", "entry", "footer")
MAX_TEMPLATE = 64 * 1024
# Monkey's tags, and one of monkey_py's (listing_note, set when a listing is cut short).
# theme_path is empty: Monkey put the theme's directory on the server's disk there.
TAGS = ("html_title", "theme_path", "listing_note",
        "target_title", "target_url", "target_name", "target_time", "target_size")
_TAG = re.compile(r"%_([A-Za-z0-9_]*?)_%")


@dataclass(frozen=True)
class Template:
    """Text and tag names in turn: ``parts[0]`` text, ``parts[1]`` a tag, and so on."""

    parts: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, origin: str = "<built-in>") -> "Template":
        parts = _TAG.split(text)
        for index in range(1, len(parts), 2):
            tag = parts[index] = parts[index].lower()
            if tag not in TAGS:
                line = text.count("\n", 0, text.lower().find(f"%_{tag}_%")) + 1
                raise ConfigError(f"unknown tag %_{tag}_% in the theme; valid tags: "
                                  + ", ".join(f"%_{t}_%" for t in TAGS), Location(origin, line))
        return cls(tuple(parts))

    def render(self, values: dict[str, str]) -> str:
        parts = self.parts
        return "".join(part if i % 2 == 0 else values.get(part, "")
                       for i, part in enumerate(parts))


@dataclass(frozen=True)
class Theme:
    header: Template
    entry: Template
    footer: Template


def load_theme(directory: Path, location: Location) -> Theme:
    """Read ``directory``'s three templates; ``location`` is the ``Theme`` line."""
    templates = []
    for name in FILES:
        path = directory / f"{name}.theme"
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read(MAX_TEMPLATE + 1)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Theme {directory.name}: cannot read {path}: "
                              f"{getattr(exc, 'strerror', None) or exc}; a theme directory "
                              "holds header.theme, entry.theme and footer.theme",
                              location) from None
        if len(text) > MAX_TEMPLATE:
            raise ConfigError(f"{path} is larger than {MAX_TEMPLATE >> 10} KB", location)
        templates.append(Template.parse(text, str(path)))
    return Theme(*templates)


DEFAULT = Theme(
    Template.parse("""\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Index of %_html_title_%</title>
<style>
  body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
         margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }
  h1 { font-size: 1.3rem; font-weight: 600; word-break: break-all; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e5e5e5; }
  th { font-weight: 600; color: #555; border-bottom: 2px solid #ccc; }
  td.size, th.size { text-align: right; white-space: nowrap; }
  td.time { white-space: nowrap; color: #555; }
  a { color: #0b57d0; text-decoration: none; }
  a:hover { text-decoration: underline; }
  tr:hover td { background: #f6f8fa; }
  p.note { color: #8a5300; }
</style>
</head>
<body>
<h1>Index of %_html_title_%</h1>
<table>
<thead><tr><th>Name</th><th>Last modified</th><th class="size">Size</th></tr></thead>
<tbody>
"""),
    Template.parse("""\
<tr><td><a href="%_target_url_%" title="%_target_title_%">%_target_name_%</a></td>\
<td class="time">%_target_time_%</td><td class="size">%_target_size_%</td></tr>
"""),
    Template.parse("""\
</tbody>
</table>
%_listing_note_%
</body>
</html>
"""),
)
