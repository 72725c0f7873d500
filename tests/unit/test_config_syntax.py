"""Monkey's configuration syntax: sections, indentation, comments, @INCLUDE, errors."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from monkey_py.config import ConfigError, Location, parse_file, parse_text
from monkey_py.config.syntax import MAX_FILE_SIZE


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def error_of(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_file(path)
    return info.value


def test_sections_entries_and_locations(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "a.conf",
        """
        # a comment
        [server]
            Listen 2001
            # an indented comment

            Indexfile   index.html  index.htm
        [Host]
            ServerName example.com
        """,
    )
    document = parse_file(conf)
    assert [s.name for s in document.sections] == ["SERVER", "HOST"]
    server = document.sections[0]
    assert server.location == Location(str(conf), 2)
    assert [(e.key, e.value, e.location.line) for e in server.entries] == [
        ("Listen", "2001", 3),
        ("Indexfile", "index.html  index.htm", 6),
    ]
    assert str(server.entries[0].location) == f"{conf}:3"


def test_lookups_are_case_insensitive(tmp_path: Path) -> None:
    document = parse_text(
        "[SERVER]\n    Listen 1\n    LISTEN 2\n[plugins]\n    Load x\n", tmp_path / "m"
    )
    assert [s.name for s in document.sections_named("Server")] == ["SERVER"]
    server = document.sections[0]
    assert server.get("listen").value == "1"
    assert [e.value for e in server.get_all("listen")] == ["1", "2"]
    assert server.get("Workers") is None
    assert document.sections_named("plugins")[0].get("LOAD").value == "x"


def test_tab_indentation_is_fine_when_consistent(tmp_path: Path) -> None:
    document = parse_text("[A]\n\tKey value with  blanks \n\tOther\tx\n", tmp_path / "t")
    assert [(e.key, e.value) for e in document.sections[0].entries] == [
        ("Key", "value with  blanks"),
        ("Other", "x"),
    ]


def test_crlf_line_endings(tmp_path: Path) -> None:
    document = parse_text("[A]\r\n    Key value\r\n", tmp_path / "t")
    assert document.sections[0].entries[0].value == "value"


def test_empty_file_has_no_sections(tmp_path: Path) -> None:
    assert parse_file(write(tmp_path / "e", "# only a comment\n\n")).sections == []


@pytest.mark.parametrize(
    ("text", "line", "gist"),
    [
        ("[A]\n    Listen\n", 2, "key 'Listen' has no value"),
        ("[A]\n    Key v\n      Other v\n", 3, "invalid indentation level: 6 spaces, but line 2"),
        (
            "[A]\n    Key v\n\tOther v\n",
            3,
            "1 tab, but line 2 set this file's indentation to 4 spaces",
        ),
        ("[A]\n  \tKey v\n", 2, "mixes tabs and spaces"),
        ("[A]\nKey v\n", 2, "'Key v' is not indented"),
        ("    Key v\n", 1, "key 'Key' is outside any section"),
        ("[A\n", 1, "bad section header '[A'"),
        ("[A] trailing\n", 1, "bad section header"),
        ("[]\n", 1, "bad section header"),
        ("[A]\n    [B]\n", 2, "section header '[B]' must start at column 0"),
        ("[A]\n    @INCLUDE x\n", 2, "@INCLUDE must start at column 0"),
        ("@INCLUDE\n", 1, "@INCLUDE needs a path"),
    ],
)
def test_syntax_errors_name_file_and_line(tmp_path: Path, text: str, line: int, gist: str) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    error = error_of(conf)
    assert error.location == Location(str(conf), line)
    assert gist in error.message
    assert str(error).startswith(f"{conf}:{line}: ")


def test_indentation_is_fixed_per_file(tmp_path: Path) -> None:
    write(tmp_path / "inc.conf", "[B]\n\tKey v\n")
    conf = write(tmp_path / "main.conf", "[A]\n    Key v\n@INCLUDE inc.conf\n[C]\n    Key v\n")
    assert [s.name for s in parse_file(conf).sections] == ["A", "B", "C"]


def test_include_appends_sections_in_place(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "b.conf", "[B]\n    K b\n")
    conf = write(tmp_path / "main.conf", "[A]\n    K a\n@INCLUDE sub/b.conf\n[C]\n    K c\n")
    document = parse_file(conf)
    assert [s.name for s in document.sections] == ["A", "B", "C"]
    assert document.sections[1].location == Location(str(tmp_path / "sub" / "b.conf"), 1)
    assert document.path == str(conf)


def test_include_glob_is_sorted_and_may_match_nothing(tmp_path: Path) -> None:
    write(tmp_path / "d" / "20.conf", "[TWENTY]\n    K v\n")
    write(tmp_path / "d" / "10.conf", "[TEN]\n    K v\n")
    conf = write(tmp_path / "main.conf", "@INCLUDE d/*.conf\n@INCLUDE none/*.conf\n")
    assert [s.name for s in parse_file(conf).sections] == ["TEN", "TWENTY"]


def test_include_of_absolute_path(tmp_path: Path) -> None:
    other = write(tmp_path / "elsewhere" / "x.conf", "[X]\n    K v\n")
    conf = write(tmp_path / "conf" / "main.conf", f"@INCLUDE {other}\n")
    assert [s.name for s in parse_file(conf).sections] == ["X"]


def test_include_of_missing_file_is_an_error(tmp_path: Path) -> None:
    conf = write(tmp_path / "main.conf", "[A]\n    K v\n@INCLUDE missing.conf\n")
    error = error_of(conf)
    assert error.location == Location(str(conf), 3)
    assert "missing.conf does not exist" in error.message


def test_key_after_include_needs_a_section(tmp_path: Path) -> None:
    write(tmp_path / "b.conf", "[B]\n    K v\n")
    conf = write(tmp_path / "main.conf", "[A]\n    K v\n@INCLUDE b.conf\n    K w\n")
    error = error_of(conf)
    assert error.location == Location(str(conf), 4)
    assert "outside any section" in error.message


def test_include_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "b.conf", "[B]\n    K v\n@INCLUDE main.conf\n")
    conf = write(tmp_path / "main.conf", "[A]\n    K v\n@INCLUDE b.conf\n")
    error = error_of(conf)
    assert error.location == Location(str(tmp_path / "b.conf"), 3)
    assert "@INCLUDE cycle" in error.message


def test_self_include_is_a_cycle(tmp_path: Path) -> None:
    conf = write(tmp_path / "main.conf", "@INCLUDE main.conf\n")
    assert "@INCLUDE cycle" in error_of(conf).message


def test_error_inside_included_file_points_there(tmp_path: Path) -> None:
    inc = write(tmp_path / "b.conf", "[B]\n    Lonely\n")
    conf = write(tmp_path / "main.conf", "@INCLUDE b.conf\n")
    assert error_of(conf).location == Location(str(inc), 2)


def test_missing_file_is_an_error_without_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.conf"
    error = error_of(missing)
    assert error.location == Location(str(missing), 0)
    assert str(error) == f"{missing}: cannot read {missing}: no such file"


def test_directory_and_binary_files_are_errors(tmp_path: Path) -> None:
    assert "is a directory" in error_of(tmp_path).message
    binary = tmp_path / "bin.conf"
    binary.write_bytes(b"[A]\n    K \xff\n")
    assert "not UTF-8" in error_of(binary).message


def test_location_renders_line_zero_as_file_only() -> None:
    assert str(Location("monkey.conf", 0)) == "monkey.conf"
    assert str(Location("monkey.conf", 7)) == "monkey.conf:7"
    assert str(ConfigError("plain message")) == "plain message"


def include_error(tmp_path: Path, target: str) -> str:
    """The message of the error that ``@INCLUDE target`` gives, checked to be at its line."""
    conf = write(tmp_path / "main.conf", f"[A]\n    K v\n@INCLUDE {target}\n")
    error = error_of(conf)
    assert error.location == Location(str(conf), 3)
    return error.message


def test_include_of_a_device_is_refused_without_reading_it(tmp_path: Path) -> None:
    message = include_error(tmp_path, "/dev/zero")
    assert "/dev/zero: it is a character device, not a regular file" in message


def test_include_of_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.conf")
    assert "it is a named pipe (FIFO), not a regular file" in include_error(tmp_path, "pipe.conf")


def test_a_glob_include_refuses_a_fifo_and_skips_directories(tmp_path: Path) -> None:
    write(tmp_path / "conf.d" / "a.conf", "[A]\n    K v\n")
    (tmp_path / "conf.d" / "b.conf").mkdir()
    conf = write(tmp_path / "main.conf", "@INCLUDE conf.d/*.conf\n")
    assert [s.name for s in parse_file(conf).sections] == ["A"]
    os.mkfifo(tmp_path / "conf.d" / "c.conf")
    assert "named pipe" in error_of(conf).message


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.conf"
    big.write_text("[A]\n#" + "x" * (MAX_FILE_SIZE - 5) + "\n")
    assert big.stat().st_size == MAX_FILE_SIZE + 1
    message = include_error(tmp_path, "big.conf")
    assert f"{MAX_FILE_SIZE + 1} bytes is more than" in message
    assert "(1 MB)" in message
    big.write_text("[B]\n#" + "x" * (MAX_FILE_SIZE - 6) + "\n")
    assert [s.name for s in parse_file(tmp_path / "main.conf").sections] == ["A", "B"]


def test_a_dangling_symbolic_link_names_its_target(tmp_path: Path) -> None:
    (tmp_path / "link.conf").symlink_to("gone.conf")
    message = include_error(tmp_path, "link.conf")
    assert "symbolic link to 'gone.conf', which does not exist" in message


def test_a_utf8_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    conf = tmp_path / "bom.conf"
    conf.write_bytes(b"\xef\xbb\xbf[SERVER]\r\n    Listen 2001\r\n@INCLUDE inc.conf\r\n")
    (tmp_path / "inc.conf").write_bytes("\ufeff[X]\n    K v\n".encode())
    document = parse_file(conf)
    assert [s.name for s in document.sections] == ["SERVER", "X"]
    assert document.sections[0].get("Listen").value == "2001"


def test_a_byte_order_mark_inside_a_file_is_still_an_error(tmp_path: Path) -> None:
    conf = tmp_path / "bom.conf"
    conf.write_bytes("[A]\n    K v\n\ufeff[B]\n".encode())
    assert error_of(conf).location == Location(str(conf), 3)
