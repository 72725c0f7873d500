"""Parser for Monkey's configuration syntax: sections, indented keys, comments, @INCLUDE.

The rules are Monkey's (mk_core/mk_rconf.c): a ``[SECTION]`` header at column 0, then
indented ``Key value`` lines, all indented exactly like the file's first key line.
The parser knows no key names; :mod:`monkey_py.config.schema` gives them meaning.
"""

from __future__ import annotations

import glob
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, Location

INCLUDE = "@INCLUDE"
# The most a configuration file may hold: real ones are a few kilobytes; the bound keeps
# a mistaken path (/dev/zero, a log file) from exhausting memory.
MAX_FILE_SIZE = 1024 * 1024
_SECTION_RE = re.compile(r"\[([A-Za-z0-9_.-]+)\]")
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Entry:
    """One ``Key value`` line; ``key`` keeps the spelling of the file."""

    key: str
    value: str
    location: Location


@dataclass
class Section:
    """A ``[NAME]`` header (name stored upper-case) and its entries in file order."""

    name: str
    location: Location
    entries: list[Entry] = field(default_factory=list)

    def get(self, key: str) -> Entry | None:
        """The first entry named ``key`` (case-insensitive), or None."""
        wanted = key.lower()
        for entry in self.entries:
            if entry.key.lower() == wanted:
                return entry
        return None

    def get_all(self, key: str) -> list[Entry]:
        """Every entry named ``key`` (case-insensitive), in file order."""
        wanted = key.lower()
        return [entry for entry in self.entries if entry.key.lower() == wanted]


@dataclass
class Document:
    """A parsed file: its sections in order, those of included files in place."""

    path: str
    sections: list[Section] = field(default_factory=list)

    def sections_named(self, name: str) -> list[Section]:
        """Every section called ``name`` (case-insensitive), in order."""
        wanted = name.upper()
        return [section for section in self.sections if section.name == wanted]


def parse_file(path: str | os.PathLike[str]) -> Document:
    """Parse the file at ``path`` and the files it includes; raise ConfigError on a mistake."""
    name = os.fspath(path)
    document = Document(name)
    _parse_into(document.sections, name, None, ())
    return document


def parse_text(text: str, path: str | os.PathLike[str]) -> Document:
    """Parse ``text`` as if read from ``path`` (includes resolve against its directory)."""
    name = os.fspath(path)
    document = Document(name)
    _Parser(document.sections, name, (_real(name),)).feed(text)
    return document


def _real(path: str) -> str:
    return os.path.realpath(path)


def _read(path: str, included_at: Location | None) -> str:
    """The text of the configuration file at ``path``; a UTF-8 byte order mark is dropped.

    Editors on Windows start UTF-8 files with a byte order mark; it carries no meaning,
    so it is accepted rather than reported as an unindented line.
    """
    where = included_at or Location(path)
    try:
        data = _read_regular_file(path)
    except _NotReadable as exc:
        raise ConfigError(f"cannot read {path}: {exc}", where) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", where) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {path}: not UTF-8 text ({exc.reason})", where) from None


class _NotReadable(Exception):
    """Why a path is not a configuration file this parser reads."""


def _read_regular_file(path: str) -> bytes:
    """The bytes of the regular file at ``path``, refused past MAX_FILE_SIZE.

    The type is checked before opening, because opening a FIFO waits for a writer and
    opening a device may act on it; the open is non-blocking and checked again with
    fstat, in case the path was replaced in between. Reading stops one byte past the
    limit, so a file that grows while it is read cannot exhaust memory either.
    """
    try:
        _check_regular(os.stat(path).st_mode)
    except FileNotFoundError:
        if os.path.islink(path):
            raise _NotReadable(
                f"it is a symbolic link to '{os.readlink(path)}', which does not exist; "
                "fix the link or remove it"
            ) from None
        raise _NotReadable("no such file") from None
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as handle:
        status = os.fstat(fd)
        _check_regular(status.st_mode)
        data = handle.read(MAX_FILE_SIZE + 1)
    if len(data) > MAX_FILE_SIZE:
        size = max(status.st_size, len(data))
        raise _NotReadable(
            f"{size} bytes is more than a configuration file may hold "
            f"({MAX_FILE_SIZE // (1024 * 1024)} MB); check that the path names the intended file"
        )
    return data


_FILE_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _check_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(mode), "not a file")
        raise _NotReadable(f"it is {kind}, not a regular file; configuration files must be "
                           "regular files")


def _parse_into(
    sections: list[Section], path: str, included_at: Location | None, stack: tuple[str, ...]
) -> None:
    real = _real(path)
    if real in stack:
        chain = " -> ".join([*stack, real])
        raise ConfigError(f"@INCLUDE cycle: {chain}; remove one of these includes", included_at)
    text = _read(path, included_at)
    _Parser(sections, path, (*stack, real)).feed(text)


def _describe_indent(indent: str) -> str:
    if "\t" in indent and " " in indent:
        return "tabs and spaces"
    if "\t" in indent:
        return f"{len(indent)} tab" + ("s" if len(indent) > 1 else "")
    return f"{len(indent)} space" + ("s" if len(indent) > 1 else "")


class _Parser:
    """Line-by-line state of one file: the current section and the file's indentation."""

    def __init__(self, sections: list[Section], path: str, stack: tuple[str, ...]) -> None:
        self.sections = sections
        self.path = path
        self.stack = stack
        self.current: Section | None = None
        self.indent: str | None = None
        self.indent_line = 0

    def feed(self, text: str) -> None:
        for number, raw in enumerate(text.splitlines(), start=1):
            self._line(raw, Location(self.path, number))

    def _line(self, raw: str, where: Location) -> None:
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            return
        if raw[0] in " \t":
            self._key_line(raw, where)
        elif raw.startswith("["):
            self._header(raw.rstrip(), where)
        elif raw.split(None, 1)[0] == INCLUDE:
            self._include(raw, where)
        else:
            raise ConfigError(
                f"'{stripped}' is not indented: key lines are indented under a [SECTION] "
                "header; headers are written [NAME]",
                where,
            )

    def _header(self, text: str, where: Location) -> None:
        match = _SECTION_RE.fullmatch(text)
        if match is None:
            raise ConfigError(
                f"bad section header '{text}': write [NAME] alone on the line "
                "(letters, digits, '_', '-', '.')",
                where,
            )
        self.current = Section(match.group(1).upper(), where)
        self.sections.append(self.current)

    def _key_line(self, raw: str, where: Location) -> None:
        body = raw.lstrip(" \t")
        indent = raw[: len(raw) - len(body)]
        self._check_indent(indent, where)
        body = body.rstrip()
        if body.startswith("["):
            raise ConfigError(f"section header '{body}' must start at column 0", where)
        parts = body.split(None, 1)
        key = parts[0]
        if key == INCLUDE:
            raise ConfigError(f"{INCLUDE} must start at column 0, not indented", where)
        if len(parts) < 2:
            raise ConfigError(f"key '{key}' has no value: write '{key} <value>'", where)
        if self.current is None:
            raise ConfigError(
                f"key '{key}' is outside any section: put it under a [SECTION] header "
                f"(an {INCLUDE} line ends the section before it)",
                where,
            )
        self.current.entries.append(Entry(key, parts[1].strip(), where))

    def _check_indent(self, indent: str, where: Location) -> None:
        if "\t" in indent and " " in indent:
            raise ConfigError(
                "indentation mixes tabs and spaces: indent every key line the same way", where
            )
        if self.indent is None:
            self.indent = indent
            self.indent_line = where.line
        elif indent != self.indent:
            raise ConfigError(
                f"invalid indentation level: {_describe_indent(indent)}, but line "
                f"{self.indent_line} set this file's indentation to "
                f"{_describe_indent(self.indent)}; indent every key line the same way",
                where,
            )

    def _include(self, raw: str, where: Location) -> None:
        parts = raw.split(None, 1)
        if len(parts) < 2:
            raise ConfigError(f"{INCLUDE} needs a path: write '{INCLUDE} <path or glob>'", where)
        pattern = os.path.join(os.path.dirname(self.path), parts[1].strip())
        if _GLOB_CHARS.intersection(parts[1]):
            paths = sorted(p for p in glob.glob(pattern) if not os.path.isdir(p))
        else:
            if not os.path.lexists(pattern):
                raise ConfigError(
                    f"{INCLUDE} {parts[1].strip()}: {pattern} does not exist; "
                    "fix the path (relative paths start at this file's directory)",
                    where,
                )
            paths = [pattern]
        for path in paths:
            _parse_into(self.sections, str(Path(path)), where, self.stack)
        self.current = None
