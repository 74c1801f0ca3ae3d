"""Time, as one object passed in: the command line makes one clock and hands it down to the
registry (its stamps and snapshot ages), the recorder (sights and notices are stamped with
the query's time), the EquipmentCheck service (the time of each query, so of each policy
date: grace deadlines, reminders) and the answer log. Nothing below the command line reads
the machine's time on its own: ``SystemClock`` is the only place that does.

A clock gives two times:

- ``now()``: the calendar time, an aware UTC datetime: what is stamped and decided with.
- ``monotonic()``: seconds that never go back, for elapsed time: snapshot ages, timeouts,
  log rate limits.

``ManualClock`` is moved by hand and never backwards (tests): both its times move only when
told. ``LabClock`` is the clock of ``eir serve --lab-clock`` (the simulator moves it through
the agent's control endpoint, agent/lab.py): its ``now()`` stands still until moved, so a
scenario's dates and deadlines come out exact, and only forward; its ``monotonic()`` is the
machine's plus every second the clock was moved, so real timers keep running and every
cache keyed on monotonic time (the service's millisecond clock, the answer log's stamp,
the registry's read snapshot) expires the moment time is moved. The asyncio drivers of the protocol cores
(diameter/, sigtran/) keep their event loop's time for protocol timers: those are waits
on sockets, not the time a decision is made at.

Library constructors default to ``SYSTEM_CLOCK`` (or to the registry's clock), so a test or
a script may omit it; the command line always passes its own.

Also here, how a time is stored: ``stored`` (naive UTC, for the DateTime columns), ``stamp``
and ``parse_stamp`` (the text the recorder writes and SQLite gives back).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from typing import Any, Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "ForwardClock", "LabClock", "ManualClock", "SystemClock", "parse_moment",
           "parse_stamp", "stamp", "stored"]

_STAMP = "%Y-%m-%d %H:%M:%S.%f"  # as SQLAlchemy writes DateTime on SQLite: the strings sort by time


class Clock(Protocol):
    """What time it is (``now``) and how much has elapsed (``monotonic``)."""

    def now(self) -> datetime:
        """The calendar time, aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going back."""
        ...


class SystemClock:
    """The machine's clock."""

    __slots__ = ()

    # The builtin itself, so a caller that keeps ``clock.monotonic`` pays one C call, as
    # with ``time.monotonic`` (the store reads it once per lookup).
    monotonic = staticmethod(time.monotonic)

    def now(self) -> datetime:
        return datetime.now(UTC)


SYSTEM_CLOCK = SystemClock()


class ForwardClock:
    """What the hand-moved clocks share: ``now()`` stands still until moved, ``advance`` by a
    duration or ``set`` to a later time, never back. A subclass keeps its monotonic time
    in step through ``_moved``, which runs after ``now`` has moved."""

    __slots__ = ("_at",)

    def __init__(self, at: datetime) -> None:
        self._at = _aware_utc(at)

    def now(self) -> datetime:
        return self._at

    def advance(self, by: float | timedelta) -> datetime:
        """Move forward by ``by`` (seconds or a timedelta, not negative); the new time.
        ValueError for a negative or non-finite move."""
        seconds = by.total_seconds() if isinstance(by, timedelta) else float(by)
        if not math.isfinite(seconds):
            raise ValueError(f"a clock moves by a finite number of seconds, not {seconds}")
        if seconds < 0:
            raise ValueError(f"a clock never goes back (asked to move {seconds:g} s)")
        self._at += timedelta(seconds=seconds)
        self._moved(seconds)
        return self._at

    def set(self, at: datetime) -> datetime:
        """Move forward to ``at`` (naive: UTC; not earlier than now); the new time."""
        target = _aware_utc(at)
        if target < self._at:
            raise ValueError(f"a clock never goes back (asked to set {target.isoformat()}, "
                             f"before its now {self._at.isoformat()})")
        return self.advance(target - self._at)

    def _moved(self, seconds: float) -> None:
        """The clock's now was moved forward by ``seconds``."""


class ManualClock(ForwardClock):
    """A clock that moves only when told, and only forward: ``advance`` by a duration,
    ``set`` to a later time. ``monotonic`` moves with it, by the same seconds."""

    __slots__ = ("_monotonic",)

    def __init__(self, at: datetime, monotonic: float = 0.0) -> None:
        super().__init__(at)
        self._monotonic = monotonic

    def monotonic(self) -> float:
        return self._monotonic

    def _moved(self, seconds: float) -> None:
        self._monotonic += seconds


class LabClock(ForwardClock):
    """The lab's clock: ``now()`` stands still until moved (``advance``, ``set``), only
    forward; ``monotonic()`` is the base clock's (the machine's) monotonic time plus every
    second moved so far, so it never goes back and jumps with the calendar. Moved on the event loop and
    read from threads too: ``now`` moves first, then ``monotonic``, so a cache that sees the
    new monotonic time reads the new now."""

    __slots__ = ("_ahead", "_base")

    def __init__(self, at: datetime, base: Clock | None = None) -> None:
        """Start at ``at`` (naive: UTC); ``base``: the clock whose monotonic time runs on
        (the machine's unless given)."""
        super().__init__(at)
        self._ahead = 0.0  # seconds moved so far
        self._base = (base or SYSTEM_CLOCK).monotonic

    def monotonic(self) -> float:
        return self._base() + self._ahead

    @property
    def moved(self) -> float:
        """Seconds the clock was moved since it started."""
        return self._ahead

    def _moved(self, seconds: float) -> None:
        self._ahead += seconds


def _aware_utc(at: datetime) -> datetime:
    """``at`` in UTC; a naive time is taken as UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def parse_moment(text: str, date_hour: int = 12) -> datetime:
    """A time as people give one (``eir check --at``, a scenario, the lab clock): an ISO time,
    aware (UTC when it carries no offset, else its own), or a date alone: ``date_hour``:00
    UTC that day. ValueError for anything else."""
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), time_of_day(date_hour), UTC)
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def stored(at: datetime) -> datetime:
    """A time as the tables' DateTime columns hold it: naive UTC (a naive time is UTC already)."""
    return at if at.tzinfo is None else at.astimezone(UTC).replace(tzinfo=None)


def stamp(at: datetime) -> str:
    """A time as the registry stores it, as text (the recorder's writes, SQLite's columns):
    naive UTC."""
    return at.astimezone(UTC).strftime(_STAMP)


def parse_stamp(value: Any) -> datetime:
    """A stored time (text from SQLite, a datetime elsewhere) as an aware UTC datetime."""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
