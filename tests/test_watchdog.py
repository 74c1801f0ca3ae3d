"""RFC 3539 watchdog: every row of Appendix A, a failover/failback scenario, jitter, properties.

Time is a float passed in; nothing sleeps. Most tests use jitter 0 so deadlines are exact.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diameter.watchdog import Watchdog, WatchdogAction, WatchdogState

A = WatchdogAction
S = WatchdogState
TW = 30.0


def make(jitter: float = 0.0, seed: int = 7) -> Watchdog:
    return Watchdog(tw_init=TW, jitter=jitter, rng=random.Random(seed))


def deadline(wd: Watchdog) -> float:
    when = wd.next_deadline()
    assert when is not None
    return when


# --- Setups: each drives a fresh watchdog through the public API into one situation and
# returns it with the time of its last event (always before its deadline).


def initial() -> tuple[Watchdog, float]:
    wd = make()
    wd.start(0.0)
    return wd, 0.0


def okay() -> tuple[Watchdog, float]:
    wd = make()
    assert wd.connection_up(0.0) == []
    return wd, 0.0


def okay_pending() -> tuple[Watchdog, float]:
    wd, _ = okay()
    now = deadline(wd)
    assert wd.handle_timer(now) == [A.SEND_DWR]
    return wd, now


def suspect() -> tuple[Watchdog, float]:
    wd, _ = okay_pending()
    now = deadline(wd)
    assert wd.handle_timer(now) == [A.FAILOVER]
    assert wd.state is S.SUSPECT
    return wd, now


def down() -> tuple[Watchdog, float]:
    """DOWN after a silent SUSPECT period: Pending is still TRUE."""
    wd, _ = suspect()
    now = deadline(wd)
    assert wd.handle_timer(now) == [A.CLOSE_CONNECTION]
    assert (wd.state, wd.pending) == (S.DOWN, True)
    return wd, now


def reopen() -> tuple[Watchdog, float]:
    """REOPEN just entered: NumDWA 0, Pending TRUE."""
    wd, now = down()
    now += 1.0
    assert wd.connection_up(now) == [A.SEND_DWR]
    return wd, now


def reopen_dwas(count: int) -> Callable[[], tuple[Watchdog, float]]:
    def setup() -> tuple[Watchdog, float]:
        wd, now = reopen()
        for _ in range(count):
            now += 0.5
            assert wd.message_received(now, is_dwa=True) == []
        assert (wd.state, wd.num_dwa, wd.pending) == (S.REOPEN, count, count == 0)
        return wd, now

    setup.__name__ = f"reopen_{count}_dwas"
    return setup


def reopen_silent() -> tuple[Watchdog, float]:
    """REOPEN after one Tw without a DWA: NumDWA -1, Pending TRUE."""
    wd, _ = reopen()
    now = deadline(wd)
    assert wd.handle_timer(now) == []
    assert (wd.state, wd.num_dwa, wd.pending) == (S.REOPEN, -1, True)
    return wd, now


# --- Events, applied at the time of the last setup event plus one second, or at the deadline.

Event = Callable[[Watchdog, float], list[WatchdogAction]]


def up(wd: Watchdog, now: float) -> list[WatchdogAction]:
    return wd.connection_up(now + 1.0)


def down_event(wd: Watchdog, now: float) -> list[WatchdogAction]:
    return wd.connection_down(now + 1.0)


def dwa(wd: Watchdog, now: float) -> list[WatchdogAction]:
    return wd.message_received(now + 1.0, is_dwa=True)


def non_dwa(wd: Watchdog, now: float) -> list[WatchdogAction]:
    return wd.message_received(now + 1.0, is_dwa=False)


def timer(wd: Watchdog, now: float) -> list[WatchdogAction]:
    return wd.handle_timer(deadline(wd))


def event_time(event: Event, wd: Watchdog, now: float) -> float:
    return deadline(wd) if event is timer else now + 1.0


@dataclass(frozen=True)
class Row:
    name: str
    setup: Callable[[], tuple[Watchdog, float]]
    event: Event
    actions: list[WatchdogAction]
    state: WatchdogState
    pending: bool
    num_dwa: int | None  # None: not part of the row
    set_watchdog: bool


ROWS = [
    # Written out from RFC 3539 Appendix A independently of the module's table.
    Row("INITIAL up", initial, up, [], S.OKAY, False, None, True),
    Row("INITIAL timer", initial, timer, [A.ATTEMPT_OPEN], S.INITIAL, False, None, True),
    Row("INITIAL DWA", initial, dwa, [A.THROWAWAY], S.INITIAL, False, None, False),
    Row("INITIAL non-DWA", initial, non_dwa, [A.THROWAWAY], S.INITIAL, False, None, False),
    Row("OKAY DWA", okay_pending, dwa, [], S.OKAY, False, None, True),
    Row("OKAY non-DWA", okay_pending, non_dwa, [], S.OKAY, True, None, True),
    Row("OKAY timer !Pending", okay, timer, [A.SEND_DWR], S.OKAY, True, None, True),
    Row("OKAY timer Pending", okay_pending, timer, [A.FAILOVER], S.SUSPECT, True, None, True),
    Row("OKAY down", okay, down_event, [A.CLOSE_CONNECTION, A.FAILOVER], S.DOWN, False, None, True),
    Row("SUSPECT DWA", suspect, dwa, [A.FAILBACK], S.OKAY, False, None, True),
    Row("SUSPECT non-DWA", suspect, non_dwa, [A.FAILBACK], S.OKAY, True, None, True),
    Row("SUSPECT timer", suspect, timer, [A.CLOSE_CONNECTION], S.DOWN, True, None, True),
    Row("SUSPECT down", suspect, down_event, [A.CLOSE_CONNECTION], S.DOWN, True, None, True),
    Row("DOWN timer", down, timer, [A.ATTEMPT_OPEN], S.DOWN, True, None, True),
    Row("DOWN up", down, up, [A.SEND_DWR], S.REOPEN, True, 0, True),
    Row("DOWN DWA", down, dwa, [A.THROWAWAY], S.DOWN, False, None, False),
    Row("DOWN non-DWA", down, non_dwa, [A.THROWAWAY], S.DOWN, True, None, False),
    Row("REOPEN DWA NumDWA 0", reopen_dwas(0), dwa, [], S.REOPEN, False, 1, False),
    Row("REOPEN DWA NumDWA 1", reopen_dwas(1), dwa, [], S.REOPEN, False, 2, False),
    Row("REOPEN DWA NumDWA -1", reopen_silent, dwa, [], S.REOPEN, False, 0, False),
    Row("REOPEN DWA NumDWA 2", reopen_dwas(2), dwa, [A.FAILBACK], S.OKAY, False, 3, False),
    Row("REOPEN non-DWA", reopen, non_dwa, [A.THROWAWAY], S.REOPEN, True, 0, False),
    Row("REOPEN timer !Pending", reopen_dwas(1), timer, [A.SEND_DWR], S.REOPEN, True, 1, True),
    Row("REOPEN timer Pending NumDWA<0", reopen_silent, timer, [A.CLOSE_CONNECTION], S.DOWN, True, None, True),
    Row("REOPEN timer Pending NumDWA>=0", reopen, timer, [], S.REOPEN, True, -1, True),
    Row("REOPEN down", reopen, down_event, [A.CLOSE_CONNECTION], S.DOWN, True, None, True),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_appendix_a_row(row: Row) -> None:
    wd, now = row.setup()
    before = deadline(wd)
    when = event_time(row.event, wd, now)

    assert row.event(wd, now) == row.actions
    assert wd.state is row.state
    assert wd.pending is row.pending
    if row.num_dwa is not None:
        assert wd.num_dwa == row.num_dwa
    expected_deadline = when + TW if row.set_watchdog else before
    assert wd.next_deadline() == expected_deadline


NO_OPS = [
    ("INITIAL down", initial, down_event),
    ("DOWN down", down, down_event),
    ("OKAY up", okay, up),
    ("SUSPECT up", suspect, up),
    ("REOPEN up", reopen, up),
]


@pytest.mark.parametrize(("setup", "event"), [(s, e) for _, s, e in NO_OPS], ids=[n for n, _, _ in NO_OPS])
def test_events_outside_the_table_change_nothing(setup: Callable[[], tuple[Watchdog, float]], event: Event) -> None:
    wd, now = setup()
    before = (wd.state, wd.pending, wd.num_dwa, wd.next_deadline())
    assert event(wd, now) == []
    assert (wd.state, wd.pending, wd.num_dwa, wd.next_deadline()) == before


def test_full_failover_and_failback_scenario() -> None:
    wd = make()
    assert wd.state is S.INITIAL
    assert wd.connection_up(0.0) == []
    assert (wd.state, deadline(wd)) == (S.OKAY, 30.0)

    # Traffic keeps the timer off; silence makes it send a DWR.
    assert wd.message_received(10.0, is_dwa=False) == []
    assert deadline(wd) == 40.0
    assert wd.handle_timer(40.0) == [A.SEND_DWR]
    assert wd.pending

    # No answer within Tw: failover, then close.
    assert wd.handle_timer(70.0) == [A.FAILOVER]
    assert wd.state is S.SUSPECT
    assert wd.handle_timer(100.0) == [A.CLOSE_CONNECTION]
    assert wd.state is S.DOWN
    assert wd.handle_timer(130.0) == [A.ATTEMPT_OPEN]
    assert wd.state is S.DOWN

    # Reopened: application traffic is thrown away until three DWAs came back.
    assert wd.connection_up(131.0) == [A.SEND_DWR]
    assert wd.state is S.REOPEN
    assert wd.message_received(131.5, is_dwa=True) == []
    assert wd.message_received(132.0, is_dwa=False) == [A.THROWAWAY]
    assert wd.handle_timer(161.0) == [A.SEND_DWR]
    assert wd.message_received(161.5, is_dwa=True) == []
    assert wd.handle_timer(191.0) == [A.SEND_DWR]
    assert wd.state is S.REOPEN
    assert wd.message_received(191.5, is_dwa=True) == [A.FAILBACK]
    assert (wd.state, wd.pending, wd.num_dwa) == (S.OKAY, False, 3)

    # Back to normal watchdog duty on the timer armed by the last DWR.
    assert wd.handle_timer(221.0) == [A.SEND_DWR]
    assert wd.state is S.OKAY


def test_reopen_falls_back_to_down_after_two_silent_intervals() -> None:
    wd, _ = reopen()
    assert wd.handle_timer(deadline(wd)) == []
    assert wd.state is S.REOPEN
    assert wd.handle_timer(deadline(wd)) == [A.CLOSE_CONNECTION]
    assert wd.state is S.DOWN


def test_jitter_stays_within_tw_init_plus_minus_jitter() -> None:
    wd = Watchdog(tw_init=30.0, jitter=2.0, rng=random.Random(3539))
    intervals = []
    now = 0.0
    wd.connection_up(now)
    for _ in range(5000):
        intervals.append(deadline(wd) - now)
        now += 1.0
        wd.message_received(now, is_dwa=False)  # OKAY non-DWA: SetWatchdog()
    assert all(27.999999 <= interval <= 32.000001 for interval in intervals)
    # The draws really spread over the window rather than sitting at Tw_init.
    assert min(intervals) < 28.1
    assert max(intervals) > 31.9
    assert len({round(interval, 6) for interval in intervals}) > 4000


def test_jitter_comes_from_the_injected_rng() -> None:
    def deadlines(seed: int) -> list[float]:
        wd = Watchdog(rng=random.Random(seed))
        wd.connection_up(0.0)
        drawn = [deadline(wd)]
        for now in (1.0, 2.0, 3.0, 4.0):
            wd.message_received(now, is_dwa=False)
            drawn.append(deadline(wd))
        return drawn

    assert deadlines(1) == deadlines(1)
    assert deadlines(1) != deadlines(2)


def test_default_tw_init_is_30_seconds_with_2_seconds_jitter() -> None:
    wd = Watchdog()
    wd.connection_up(100.0)
    assert 128.0 <= deadline(wd) <= 132.0


def test_handle_timer_before_deadline_is_a_no_op() -> None:
    wd, _ = okay()
    due = deadline(wd)
    assert wd.handle_timer(due - 0.001) == []
    assert (wd.state, wd.pending, wd.next_deadline()) == (S.OKAY, False, due)
    assert wd.handle_timer(due) == [A.SEND_DWR]


def test_handle_timer_without_armed_timer_is_a_no_op() -> None:
    wd = make()
    assert wd.next_deadline() is None
    assert wd.handle_timer(1e9) == []
    assert wd.state is S.INITIAL


def test_start_only_arms_the_initial_timer() -> None:
    wd, _ = okay()
    due = deadline(wd)
    wd.start(5.0)
    assert wd.next_deadline() == due


@pytest.mark.parametrize("tw_init", [5.999, 0.0, -30.0, float("nan"), float("inf")])
def test_tw_init_below_six_seconds_is_rejected(tw_init: float) -> None:
    with pytest.raises(ValueError, match="tw_init"):
        Watchdog(tw_init=tw_init)


def test_tw_init_of_six_seconds_is_accepted() -> None:
    wd = Watchdog(tw_init=6.0, jitter=0.0)
    wd.connection_up(0.0)
    assert deadline(wd) == 6.0


@pytest.mark.parametrize("jitter", [-0.1, 30.0, float("nan")])
def test_jitter_out_of_range_is_rejected(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        Watchdog(tw_init=30.0, jitter=jitter)


# --- Property: any sequence of events, driven the way an event loop would drive it.

EVENTS = st.sampled_from(["up", "down", "dwa", "non_dwa", "early_timer", "wait"])


@settings(max_examples=300, deadline=None)
@given(
    tw_init=st.floats(min_value=6.0, max_value=120.0),
    jitter=st.floats(min_value=0.0, max_value=2.0),
    seed=st.integers(min_value=0, max_value=2**32),
    started=st.booleans(),
    steps=st.lists(st.tuples(EVENTS, st.floats(min_value=0.0, max_value=200.0)), max_size=60),
)
def test_any_event_sequence_keeps_the_machine_sound(
    tw_init: float, jitter: float, seed: int, started: bool, steps: list[tuple[str, float]]
) -> None:
    wd = Watchdog(tw_init=tw_init, jitter=jitter, rng=random.Random(seed))
    last = 0.0
    failed_over = False

    def check(actions: list[WatchdogAction], now: float) -> None:
        nonlocal failed_over
        assert isinstance(wd.state, WatchdogState)
        due = wd.next_deadline()
        assert due is None or due > now
        assert -1 <= wd.num_dwa <= 3
        if A.SEND_DWR in actions:
            assert wd.pending
        if A.CLOSE_CONNECTION in actions:
            assert wd.state is S.DOWN
        if A.FAILBACK in actions:
            assert wd.state is S.OKAY
        # Failover and failback alternate, failover first.
        for action in actions:
            if action is A.FAILOVER:
                assert not failed_over
                failed_over = True
            elif action is A.FAILBACK:
                assert failed_over
                failed_over = False

    if started:
        wd.start(last)
        check([], last)
    for kind, delay in steps:
        now = last + delay
        # The loop fires every timer that falls due before the event, at its deadline.
        while (due := wd.next_deadline()) is not None and due <= now:
            check(wd.handle_timer(due), due)
        if kind == "up":
            actions = wd.connection_up(now)
        elif kind == "down":
            actions = wd.connection_down(now)
        elif kind in ("dwa", "non_dwa"):
            actions = wd.message_received(now, is_dwa=kind == "dwa")
        elif kind == "early_timer":
            actions = wd.handle_timer(now)
            assert actions == []  # every due timer has fired already
        else:
            actions = []
        check(actions, now)
        last = now
