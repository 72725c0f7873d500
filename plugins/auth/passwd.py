"""``monkey passwd``: add, change or remove a user of a users file (Monkey's mk_passwd).

Installed through the ``monkey_py.commands`` entry point group. The password is asked
twice on the terminal, or read from the first line of standard input with ``--stdin``;
unlike mk_passwd it is never an argument, where ``ps`` and the shell history would keep
it. The file is replaced atomically, its other lines kept as they were.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

from .passwords import hash_password
from .users import valid_user_name


def fail(message: str) -> None:
    click.echo(f"monkey passwd: {message}", err=True)
    sys.exit(1)


def read_password(from_stdin: bool) -> bytes:
    if from_stdin:
        line = sys.stdin.buffer.readline()
        password = line[:-1] if line.endswith(b"\n") else line
        password = password[:-1] if password.endswith(b"\r") else password
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                                err=True).encode("utf-8")
    if not password:
        fail("the password is empty")
    return password


def user_of(line: str) -> str | None:
    """The user a line of a users file is about, or None for comments and blank lines."""
    if not line.strip() or line.lstrip().startswith("#") or ":" not in line:
        return None
    return line.partition(":")[0]


def write_atomically(path: Path, lines: list[str], mode: int) -> None:
    """Write ``lines`` to a file beside ``path``, then rename it over ``path``."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--create", is_flag=True,
              help="Create FILE, replacing any file already there.")
@click.option("-D", "--delete", is_flag=True, help="Remove USER from FILE.")
@click.option("--stdin", "from_stdin", is_flag=True,
              help="Read the password from the first line of standard input instead of "
                   "asking twice on the terminal.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("user")
def passwd(create, delete, from_stdin, file, user):
    """Add USER to the users file FILE, change their password, or remove them (-D).

    FILE is what a site's [AUTH] Users key names. Passwords are stored as scrypt hashes.
    """
    problem = valid_user_name(user)
    if problem:
        fail(problem)
    if create and delete:
        fail("-c and -D cannot be used together")
    lines: list[str] = []
    mode = 0o640
    if not create:
        try:
            mode = file.stat().st_mode & 0o777
            lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
        except FileNotFoundError:
            fail(f"{file}: no such file; use -c to create it")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"{file}: cannot read it: {exc}")
    found = [i for i, line in enumerate(lines) if user_of(line) == user]
    if delete:
        if not found:
            fail(f"user {user} is not in {file}")
        lines = [line for i, line in enumerate(lines) if i not in found]
        message = f"[-] Deleting user {user}"
    else:
        entry = f"{user}:{hash_password(read_password(from_stdin)).encode()}\n"
        if found:
            lines[found[0]] = entry
            lines = [line for i, line in enumerate(lines) if i not in found[1:]]
            message = f"[+] Password changed for user {user}"
        else:
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
            lines.append(entry)
            message = f"[+] Adding user {user}"
    try:
        write_atomically(file, lines, mode)
    except OSError as exc:
        fail(f"{file}: cannot write it: {exc.strerror or exc}")
    click.echo(message)
