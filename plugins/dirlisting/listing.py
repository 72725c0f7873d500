"""Read one directory (bounded) and render it with a theme.

``os.scandir`` reads at most ``max_entries`` entries and one ``stat`` each, so the time a
listing holds the loop is bounded whatever the directory's size; a longer directory is
listed in part, with a note saying so. Hidden names (starting with ``.``) are left out,
as in Monkey, and so are names that are not valid UTF-8 (no URL could reach them) and,
with ``SymLink Off``, symbolic links (the static handler would refuse them).
"""

from __future__ import annotations

import html
import os
import stat
import time
from dataclasses import dataclass
from urllib.parse import quote

from .theme import Theme

UNITS = ("K", "M", "G", "T", "P")


@dataclass(frozen=True)
class Entry:
    name: str
    is_dir: bool
    size: int
    mtime: float


def read_directory(path: str, follow_symlinks: bool, max_entries: int) -> tuple[list[Entry], bool]:
    """The entries of ``path``, directories first, then by name; and whether it was cut."""
    entries: list[Entry] = []
    truncated = False
    with os.scandir(path) as found:
        for item in found:
            name = item.name
            if name.startswith("."):
                continue
            if len(entries) >= max_entries:
                truncated = True
                break
            try:
                name.encode("utf-8")
                if not follow_symlinks and item.is_symlink():
                    continue
                st = item.stat(follow_symlinks=True)
            except (OSError, UnicodeEncodeError):
                continue  # vanished, a broken link, or a name no URL can reach
            is_dir = stat.S_ISDIR(st.st_mode)
            if not is_dir and not stat.S_ISREG(st.st_mode):
                continue
            entries.append(Entry(name, is_dir, st.st_size, st.st_mtime))
    entries.sort(key=lambda e: (not e.is_dir, e.name.casefold(), e.name))
    return entries, truncated


def human_size(size: int) -> str:
    """``512``, ``1.5K``, ``20.0M``: bytes below 1024, then one decimal."""
    if size < 1024:
        return str(size)
    value = float(size)
    for unit in UNITS:
        value /= 1024
        if value < 1024 or unit == UNITS[-1]:
            return f"{value:.1f}{unit}"
    return str(size)


def render(theme: Theme, title: str, entries: list[Entry], parent: bool,
           truncated: bool) -> bytes:
    """The page: header, one entry per item (``../`` first unless at the root), footer."""
    page_values = {
        "html_title": html.escape(title),
        "listing_note": (f'<p class="note">Only the first {len(entries)} entries are '
                         "listed.</p>" if truncated else ""),
    }
    rows = [theme.header.render(page_values)]
    if parent:
        rows.append(theme.entry.render({"target_title": "../", "target_url": "../",
                                        "target_name": "../", "target_time": "",
                                        "target_size": "-"}))
    for entry in entries:
        slash = "/" if entry.is_dir else ""
        shown = html.escape(entry.name + slash)
        rows.append(theme.entry.render({
            "target_title": shown,
            "target_url": html.escape(quote(entry.name) + slash),
            "target_name": shown,
            "target_time": time.strftime("%d-%b-%Y %H:%M", time.localtime(entry.mtime)),
            "target_size": "-" if entry.is_dir else human_size(entry.size),
        }))
    rows.append(theme.footer.render(page_values))
    return "".join(rows).encode("utf-8")
