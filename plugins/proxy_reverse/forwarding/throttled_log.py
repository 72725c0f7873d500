"""Error lines that a flood of requests could repeat thousands of times a second.

A condition that every request meets while it lasts (a balancer naming no server, a
full queue) is logged the first time, and then at most once per ``every`` seconds
per cause, with the number of times it happened since the last line.
"""

from __future__ import annotations

import logging

REPEAT_SECONDS = 60.0


class ThrottledLog:
    """One logger's repeated errors, keyed by cause (an entry and what happened)."""

    def __init__(self, log: logging.Logger, every: float = REPEAT_SECONDS) -> None:
        self.log = log
        self.every = every
        # cause -> [time of the last line, times since then]
        self._causes: dict[object, list] = {}

    def error(self, cause, now: float, message: str, *args) -> None:
        """Log ``message % args`` unless ``cause`` was logged less than ``every`` ago."""
        seen = self._causes.get(cause)
        if seen is None:
            self._causes[cause] = [now, 0]
            self.log.error(message, *args)
        elif now - seen[0] >= self.every:
            repeats = seen[1]
            seen[0], seen[1] = now, 0
            self.log.error(message + " (%d more time(s) in the last %.0fs)", *args,
                           repeats, self.every)
        else:
            seen[1] += 1
