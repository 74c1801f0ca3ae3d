"""The lab clock (registry/clock.py LabClock) and the lab time format (agent/lab.py): now
stands still until moved and only forward; monotonic runs on with the base clock and jumps
with every move, so the caches keyed on it (the service's millisecond clock) expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from agent.lab import parse_lab_time
from agent.service import MillisecondClock
from registry.clock import LabClock, ManualClock
from simulator.lab_client import parse_duration

T0 = datetime(2031, 5, 4, 9, 15, tzinfo=UTC)


def test_now_stands_still_while_monotonic_runs_on_with_the_base() -> None:
    base = ManualClock(T0, monotonic=100.0)
    clock = LabClock(T0, base=base)
    base.advance(5)
    assert clock.now() == T0 and clock.monotonic() == 105.0


def test_advance_and_set_move_now_and_monotonic_by_the_same_seconds() -> None:
    base = ManualClock(T0, monotonic=100.0)
    clock = LabClock(T0, base=base)
    assert clock.advance(timedelta(days=31)) == T0 + timedelta(days=31)
    assert clock.monotonic() == 100.0 + 31 * 86400 and clock.moved == 31 * 86400
    assert clock.set(datetime(2031, 7, 1, tzinfo=timezone(timedelta(hours=5)))) == datetime(2031, 6, 30, 19, tzinfo=UTC)
    assert clock.monotonic() == 100.0 + (datetime(2031, 6, 30, 19, tzinfo=UTC) - T0).total_seconds()


def test_time_never_goes_back_and_a_refused_move_changes_nothing() -> None:
    clock = LabClock(datetime(2031, 5, 4, 9, 15), base=ManualClock(T0, monotonic=1.0))  # naive: UTC
    with pytest.raises(ValueError, match="never goes back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="never goes back"):
        clock.set(T0 - timedelta(seconds=1))
    with pytest.raises(ValueError, match="finite"):
        clock.advance(float("nan"))
    with pytest.raises(OverflowError):
        clock.advance(timedelta(days=4 * 10**6))
    assert (clock.now(), clock.monotonic(), clock.moved) == (T0, 1.0, 0.0)
    assert clock.set(T0) == T0  # to now: no move, no error


def test_the_services_millisecond_cache_expires_the_moment_time_is_moved() -> None:
    clock = LabClock(T0, base=ManualClock(T0, monotonic=1.0))  # the base stands still too
    now = MillisecondClock(clock)
    assert now() == T0
    clock.advance(60)
    assert now() == T0 + timedelta(seconds=60)


@pytest.mark.parametrize(("text", "expected"), [
    ("2031-05-04", datetime(2031, 5, 4, tzinfo=UTC)),
    ("2031-05-04T09:15:00", T0),
    ("2031-05-04T14:15:00+05:00", T0),
    ("2031-05-04 09:15Z", T0),
])
def test_a_lab_time_is_an_iso_time_utc_unless_it_says_or_a_date_at_midnight_utc(text: str,
                                                                                 expected: datetime) -> None:
    assert parse_lab_time(text) == expected


@pytest.mark.parametrize("text", ["2031-13-01", "yesterday", "", "31/05/2031"])
def test_a_bad_lab_time_says_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not an ISO time .* or a date"):
        parse_lab_time(text)


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * 86400.0), ("12h", 43200.0), ("90m", 5400.0),
                                               ("45s", 45.0), ("1d12h", 129600.0), ("2.5", 2.5), ("0.5h", 1800.0)])
def test_a_duration_is_numbers_with_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-1h", "3w", "1h30", "d", "1 h"])
def test_a_bad_duration_says_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration: a number and a unit"):
        parse_duration(text)
