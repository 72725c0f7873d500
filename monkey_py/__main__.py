"""``python -m monkey_py`` is the ``monkey`` command."""

from .cli import main

main()
