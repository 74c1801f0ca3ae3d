"""The one reporter of bad input from the network, for every layer (Diameter, M3UA, SCCP,
TCAP, MAP, S13): every case counted as ``bad_input.KIND`` in the layer's counters, at most
``LOG_LIMIT`` warnings a second logged. A peer sending garbage at line rate must neither
fill the disk with log lines nor slow the answers to the peers that behave; the counters
still say how much came. Values from the wire are escaped and cut before they reach a line
(``printable``)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

LOG_LIMIT = 10  # warnings per second, then only counters


class BadInput:
    """Counts ``bad_input.KIND`` in ``counters`` and logs ``from PEER: REASON`` on ``log``,
    at most ``limit`` lines a second (0: count only, for a client that reports elsewhere)."""

    def __init__(self, log: logging.Logger, counters: Counter[str] | None = None, limit: int = LOG_LIMIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self.limit = limit
        self.clock = clock
        self._second_began = float("-inf")
        self._warnings = 0

    def __call__(self, kind: str, reason: str, peer: str) -> None:
        self.counters[f"bad_input.{kind}"] += 1
        now = self.clock()
        if now - self._second_began >= 1.0:
            self._second_began, self._warnings = now, 0
        self._warnings += 1
        if self._warnings <= self.limit:
            self.log.warning("from %s: %s", printable(peer, 128), printable(reason, TEXT_LIMIT))


TEXT_LIMIT = 300  # characters of a reason a line keeps


def printable(text: str, limit: int) -> str:
    """Text from the wire as one log line may hold it: control characters escaped (a newline
    in an AVP must not forge a line), at most ``limit`` characters (``cut``)."""
    if not text.isprintable():
        text = "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
    return cut(text, limit)


def cut(text: str, limit: int) -> str:
    """At most ``limit`` characters of ``text``, and how many were left out."""
    return text if len(text) <= limit else f"{text[:limit]}...[{len(text) - limit} more]"
