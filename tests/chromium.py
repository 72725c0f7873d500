"""Headless Chromium for the tests that check pages as a browser renders them: installed
with apt-get when missing (``apt.ensure_installed``), run with a profile of its own, and
the DOM it dumps parsed into a small tree. Nothing is skipped: without Chromium the tests
fail, saying how to install it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser

from apt import ensure_installed

# Debian's package and program are "chromium"; Ubuntu's older ones "chromium-browser".
PROGRAMS = ("chromium", "chromium-browser")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
        "source", "track", "wbr"}


def chromium_binary() -> str | None:
    return next(filter(None, map(shutil.which, PROGRAMS)), None)


def ensure_chromium() -> str:
    """The Chromium program, installing the Debian package first when it is missing."""
    return ensure_installed(chromium_binary, "chromium", "the dashboard tests")


def dump_dom(binary: str, url: str, width: int = 1000, height: int = 900,
             timeout: float = 30.0) -> str:
    """The DOM of ``url`` once loaded, serialised by headless Chromium in a window of
    ``width`` x ``height`` CSS pixels."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        done = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars",
             f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "--virtual-time-budget=2000", "--dump-dom", url],
            capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not done.stdout.strip():
        raise AssertionError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


@dataclass
class Node:
    """An element of a dumped DOM: its tag, attributes, children and text."""

    tag: str
    attrs: dict[str, str]
    children: list["Node"] = field(default_factory=list)
    parts: list = field(default_factory=list)      # strings and child nodes, in order

    @property
    def text(self) -> str:
        return "".join(part if isinstance(part, str) else part.text for part in self.parts)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list["Node"]:
        """Descendants (and itself) with ``tag`` whose attributes include ``attrs``;
        ``class_`` matches one of the classes."""
        wanted = attrs.pop("class_", None)
        return [node for node in self.iter()
                if (tag is None or node.tag == tag)
                and (wanted is None or wanted in node.classes)
                and all(node.attrs.get(name.replace("_", "-")) == value
                        for name, value in attrs.items())]

    def find(self, tag: str | None = None, **attrs: str) -> "Node":
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag}> with {attrs}"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {name: value or "" for name, value in attrs})
        parent = self.stack[-1]
        parent.children.append(node)
        parent.parts.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data):
        self.stack[-1].parts.append(data)


def parse(markup: str) -> Node:
    """The tree of ``markup`` (a DOM as Chromium serialises it)."""
    builder = _Builder()
    builder.feed(markup)
    builder.close()
    return builder.root
