"""Programs the tests run, installed with apt-get when missing (as ``bench/run.py``
installs nginx): only as root on a machine with apt-get; otherwise the tests fail,
saying what to install. Nothing is skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Callable


def ensure_installed(find: Callable[[], str | None], package: str, needed_by: str) -> str:
    """What ``find()`` returns (a program's path), installing the Debian ``package`` first
    when it finds nothing; ``needed_by`` names the tests in the error messages."""
    found = find()
    if found:
        return found
    command = ["apt-get", "install", "-y", "--no-install-recommends", package]
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(f"{package} is needed by {needed_by}; install it first, e.g. "
                           f"`sudo {' '.join(command)}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    if subprocess.run(command, **quiet).returncode != 0:
        subprocess.run(["apt-get", "update"], check=False, **quiet)
        subprocess.run(command, check=False, **quiet)
    found = find()
    if not found:
        raise RuntimeError(f"could not install {package} with apt-get; {needed_by} need it")
    return found
