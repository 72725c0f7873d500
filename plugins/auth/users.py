"""Users files: one ``name:hash`` line per user, as ``monkey passwd`` writes them.

Blank lines and lines starting with ``#`` are ignored. A file is read whole when the
configuration is checked (never on the event loop); every mistake is reported at its
``file:line``. Monkey's ``{SHA1}`` lines are refused: SHA-1 is not a password hash.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from monkey_py.config import ConfigError, Location

from .passwords import PasswordHash, decoy, parse

MAX_FILE_SIZE = 4 * 1024 * 1024


def valid_user_name(name: str) -> str | None:
    """Why ``name`` cannot be a user name (Basic credentials split at the first ':'), or None."""
    if not name:
        return "a user name cannot be empty"
    if ":" in name:
        return "a user name cannot hold ':'"
    if any(ord(c) < 32 or ord(c) == 127 for c in name) or name != name.strip():
        return "a user name cannot hold control characters or start or end with blanks"
    if name.startswith("#"):
        return "a user name cannot start with '#' (that line would be a comment)"
    return None


@dataclass(frozen=True)
class UsersFile:
    """The users of one file, and a decoy hash checked for names it does not hold."""

    path: Path
    users: dict[str, PasswordHash]
    decoy: PasswordHash

    def check(self, name: str, password: bytes) -> bool:
        """True when ``name`` is a user and ``password`` is theirs.

        An unknown name is checked against the decoy, which has the users' cost: an
        unknown user and a wrong password take the same time and give the same answer.
        """
        stored = self.users.get(name)
        if stored is None:
            self.decoy.matches(password)
            return False
        return stored.matches(password)


def read_users(path: Path, location: Location) -> UsersFile:
    """Read and check ``path``; ``location`` is the ``Users`` line naming it."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            # Opening a FIFO would wait for a writer.
            raise ConfigError(f"Users {path}: not a regular file", location)
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_SIZE + 1)
    except OSError as exc:
        raise ConfigError(f"Users {path}: cannot read the users file: {exc.strerror}; "
                          "create it with 'monkey passwd -c FILE USER'", location) from None
    if len(data) > MAX_FILE_SIZE:
        raise ConfigError(f"Users {path}: larger than {MAX_FILE_SIZE >> 20} MiB", location)
    users: dict[str, PasswordHash] = {}
    first_line: dict[str, int] = {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        here = Location(str(path), number)
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            raise ConfigError("the line is not valid UTF-8", here) from None
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, stored = line.partition(":")
        problem = valid_user_name(name) if sep else "expected 'name:hash'"
        if problem:
            raise ConfigError(f"{problem}; write users with 'monkey passwd'", here)
        if name in users:
            raise ConfigError(f"user '{name}' is listed twice (first at line "
                              f"{first_line[name]}); keep one", here)
        if stored.startswith("{SHA1}"):
            raise ConfigError(f"user '{name}' has a SHA-1 hash from Monkey's mk_passwd, which "
                              "is not a password hash; set the password again with "
                              f"'monkey passwd {path} {name}'", here)
        try:
            users[name] = parse(stored)
        except ValueError as exc:
            raise ConfigError(f"user '{name}': {exc}; set the password again with "
                              f"'monkey passwd {path} {name}'", here) from None
        first_line[name] = number
    if not users:
        raise ConfigError(f"Users {path}: the file lists no user; add one with "
                          f"'monkey passwd {path} USER'", location)
    usual_cost = Counter(h.cost for h in users.values()).most_common(1)[0][0]
    return UsersFile(path, users, decoy(usual_cost))
