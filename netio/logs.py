"""Log lines a peer cannot multiply: ``Throttled`` (one warning every few seconds, saying
how many were held back) and ``PerSecond`` (peer events at most so many lines a second)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Throttled:
    """A warning at most every ``interval`` seconds, saying how many were held back."""

    def __init__(self, log: logging.Logger, interval: float = 5.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.log = log
        self.interval = interval
        self.clock = clock
        self._next = float("-inf")
        self._held = 0

    def __call__(self, text: str, *args: object) -> None:
        now = self.clock()
        if now < self._next:
            self._held += 1
            return
        held, self._held, self._next = self._held, 0, now + self.interval
        self.log.warning(text + (f" (and {held} more like it since)" if held else ""), *args)


class PerSecond:
    """Peer events (connections opened and closed, ASP and watchdog state changes, NTFY and
    ERR received) logged at most ``limit`` lines a second at their own level: a peer that
    flips its state at line rate must not fill the disk. Lines held back are counted and
    the next line logged says how many."""

    def __init__(self, log: logging.Logger, limit: int = 10, clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.limit = limit
        self.clock = clock
        self._second_began = float("-inf")
        self._lines = 0
        self.held = 0  # lines held back so far

    def __call__(self, level: int, text: str, *args: object) -> None:
        now = self.clock()
        if now - self._second_began >= 1.0:
            self._second_began, self._lines = now, 0
        self._lines += 1
        if self._lines > self.limit:
            self.held += 1
            return
        if self.held:
            text += f" ({self.held} peer event lines held back so far)"
        self.log.log(level, text, *args)
