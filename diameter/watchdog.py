"""Transport watchdog for Diameter peers: RFC 3539 (AAA Transport Profile), section 3.4.

RFC 6733 5.5 takes its Device-Watchdog exchange (DWR/DWA) from RFC 3539; this module is
the state machine of RFC 3539 section 3.4.1 and Appendix A, one row of that table per
entry in ``_TRANSITIONS``. It is sans-I/O: the caller reports what happened on the
transport together with the current time, and carries out the returned actions.

Driving it:

- ``connection_up(now)`` once the peer connection is open (capabilities exchanged),
  ``connection_down(now)`` when the transport reports it closed or an open attempt failed;
- ``message_received(now, is_dwa)`` for every message from the peer, request or answer;
- ``handle_timer(now)`` when ``now >= next_deadline()``; an earlier call does nothing;
- ``start(now)`` (optional) arms the INITIAL timer so that it asks for open attempts
  (ATTEMPT_OPEN) every Tw until the first connection comes up.

Actions, in the order the RFC lists them:

- SEND_DWR: send a Device-Watchdog-Request (SendWatchdog());
- CLOSE_CONNECTION: close the transport connection (CloseConnection()); on a connection
  already reported down this only releases what is left of it;
- ATTEMPT_OPEN: try to open the connection again (AttemptOpen());
- FAILOVER: stop sending to this peer, move its outstanding requests elsewhere (Failover());
- FAILBACK: the peer may carry traffic again (Failback());
- THROWAWAY: do not deliver the received message to the application (Throwaway()).
  Base protocol requests (a DWR in particular) are still answered by the peer state
  machine, or two peers both in REOPEN would never see each other's DWAs.

SetWatchdog() arms the timer at ``now + tw_init + uniform(-jitter, +jitter)``; RFC 3539
3.4.1 sets Tw_init to 30 s by default, never below 6 s, jittered by +/- 2 s.
"""

import enum
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

TW_INIT_DEFAULT = 30.0
TW_INIT_MINIMUM = 6.0
JITTER_DEFAULT = 2.0


class WatchdogState(enum.Enum):
    """The five states of RFC 3539 Appendix A."""

    INITIAL = "initial"
    OKAY = "okay"
    SUSPECT = "suspect"
    DOWN = "down"
    REOPEN = "reopen"


class WatchdogAction(enum.Enum):
    """What the caller must do next (the RFC's action procedures)."""

    SEND_DWR = "send_dwr"
    CLOSE_CONNECTION = "close_connection"
    ATTEMPT_OPEN = "attempt_open"
    FAILOVER = "failover"
    FAILBACK = "failback"
    THROWAWAY = "throwaway"


class _Event(enum.Enum):
    CONNECTION_UP = enum.auto()
    CONNECTION_DOWN = enum.auto()
    RECEIVE_DWA = enum.auto()
    RECEIVE_NON_DWA = enum.auto()
    TIMER_EXPIRES = enum.auto()


class _Op(enum.Enum):
    """Steps of the table that only change the watchdog's own variables."""

    SET_WATCHDOG = enum.auto()
    PENDING_TRUE = enum.auto()
    PENDING_FALSE = enum.auto()
    NUM_DWA_ZERO = enum.auto()
    NUM_DWA_INCREMENT = enum.auto()
    NUM_DWA_MINUS_ONE = enum.auto()


_Step = WatchdogAction | _Op
_Guard = Callable[[bool, int], bool]  # (Pending, NumDWA) -> does the row apply


def _always(pending: bool, num_dwa: int) -> bool:
    return True


def _pending(pending: bool, num_dwa: int) -> bool:
    return pending


def _not_pending(pending: bool, num_dwa: int) -> bool:
    return not pending


def _num_dwa_below_two(pending: bool, num_dwa: int) -> bool:
    return num_dwa < 2


def _num_dwa_two(pending: bool, num_dwa: int) -> bool:
    return num_dwa == 2


def _pending_num_dwa_negative(pending: bool, num_dwa: int) -> bool:
    return pending and num_dwa < 0


def _pending_num_dwa_not_negative(pending: bool, num_dwa: int) -> bool:
    return pending and num_dwa >= 0


@dataclass(frozen=True, slots=True)
class _Row:
    guard: _Guard
    steps: tuple[_Step, ...]
    target: WatchdogState


_S = WatchdogState
_A = WatchdogAction
_E = _Event
_O = _Op

# RFC 3539 Appendix A, row for row; within a (state, event) pair the first row whose
# guard holds applies. A pair that is absent (connection up while already up, connection
# down while INITIAL or DOWN) leaves the watchdog as it is.
_TRANSITIONS: dict[tuple[WatchdogState, _Event], tuple[_Row, ...]] = {
    (_S.INITIAL, _E.CONNECTION_UP): (_Row(_always, (_O.SET_WATCHDOG,), _S.OKAY),),
    (_S.INITIAL, _E.TIMER_EXPIRES): (_Row(_always, (_A.ATTEMPT_OPEN, _O.SET_WATCHDOG), _S.INITIAL),),
    (_S.INITIAL, _E.RECEIVE_DWA): (_Row(_always, (_O.PENDING_FALSE, _A.THROWAWAY), _S.INITIAL),),
    (_S.INITIAL, _E.RECEIVE_NON_DWA): (_Row(_always, (_A.THROWAWAY,), _S.INITIAL),),
    (_S.OKAY, _E.RECEIVE_DWA): (_Row(_always, (_O.PENDING_FALSE, _O.SET_WATCHDOG), _S.OKAY),),
    (_S.OKAY, _E.RECEIVE_NON_DWA): (_Row(_always, (_O.SET_WATCHDOG,), _S.OKAY),),
    (_S.OKAY, _E.TIMER_EXPIRES): (
        _Row(_not_pending, (_A.SEND_DWR, _O.SET_WATCHDOG, _O.PENDING_TRUE), _S.OKAY),
        _Row(_pending, (_A.FAILOVER, _O.SET_WATCHDOG), _S.SUSPECT),
    ),
    (_S.OKAY, _E.CONNECTION_DOWN): (_Row(_always, (_A.CLOSE_CONNECTION, _A.FAILOVER, _O.SET_WATCHDOG), _S.DOWN),),
    (_S.SUSPECT, _E.RECEIVE_DWA): (_Row(_always, (_O.PENDING_FALSE, _A.FAILBACK, _O.SET_WATCHDOG), _S.OKAY),),
    (_S.SUSPECT, _E.RECEIVE_NON_DWA): (_Row(_always, (_A.FAILBACK, _O.SET_WATCHDOG), _S.OKAY),),
    (_S.SUSPECT, _E.TIMER_EXPIRES): (_Row(_always, (_A.CLOSE_CONNECTION, _O.SET_WATCHDOG), _S.DOWN),),
    (_S.SUSPECT, _E.CONNECTION_DOWN): (_Row(_always, (_A.CLOSE_CONNECTION, _O.SET_WATCHDOG), _S.DOWN),),
    (_S.DOWN, _E.TIMER_EXPIRES): (_Row(_always, (_A.ATTEMPT_OPEN, _O.SET_WATCHDOG), _S.DOWN),),
    (_S.DOWN, _E.CONNECTION_UP): (
        _Row(_always, (_O.NUM_DWA_ZERO, _A.SEND_DWR, _O.SET_WATCHDOG, _O.PENDING_TRUE), _S.REOPEN),
    ),
    (_S.DOWN, _E.RECEIVE_DWA): (_Row(_always, (_O.PENDING_FALSE, _A.THROWAWAY), _S.DOWN),),
    (_S.DOWN, _E.RECEIVE_NON_DWA): (_Row(_always, (_A.THROWAWAY,), _S.DOWN),),
    (_S.REOPEN, _E.RECEIVE_DWA): (
        _Row(_num_dwa_below_two, (_O.PENDING_FALSE, _O.NUM_DWA_INCREMENT), _S.REOPEN),
        _Row(_num_dwa_two, (_O.PENDING_FALSE, _O.NUM_DWA_INCREMENT, _A.FAILBACK), _S.OKAY),
    ),
    (_S.REOPEN, _E.RECEIVE_NON_DWA): (_Row(_always, (_A.THROWAWAY,), _S.REOPEN),),
    (_S.REOPEN, _E.TIMER_EXPIRES): (
        _Row(_not_pending, (_A.SEND_DWR, _O.SET_WATCHDOG, _O.PENDING_TRUE), _S.REOPEN),
        _Row(_pending_num_dwa_negative, (_A.CLOSE_CONNECTION, _O.SET_WATCHDOG), _S.DOWN),
        _Row(_pending_num_dwa_not_negative, (_O.NUM_DWA_MINUS_ONE, _O.SET_WATCHDOG), _S.REOPEN),
    ),
    (_S.REOPEN, _E.CONNECTION_DOWN): (_Row(_always, (_A.CLOSE_CONNECTION, _O.SET_WATCHDOG), _S.DOWN),),
}


class Watchdog:
    """The RFC 3539 watchdog of one peer connection; time is always passed in (seconds)."""

    def __init__(
        self, tw_init: float = TW_INIT_DEFAULT, jitter: float = JITTER_DEFAULT, rng: random.Random | None = None
    ) -> None:
        if not math.isfinite(tw_init) or tw_init < TW_INIT_MINIMUM:
            raise ValueError(f"tw_init must be at least {TW_INIT_MINIMUM} s (RFC 3539 3.4.1), got {tw_init!r}")
        if not math.isfinite(jitter) or not 0.0 <= jitter < tw_init:
            raise ValueError(f"jitter must be at least 0 and below tw_init ({tw_init!r} s), got {jitter!r}")
        self._tw_init = tw_init
        self._jitter = jitter
        self._rng = rng if rng is not None else random.Random()
        self._state = WatchdogState.INITIAL
        self._pending = False
        self._num_dwa = 0
        self._deadline: float | None = None

    def __repr__(self) -> str:
        return (
            f"Watchdog(state={self._state.name}, pending={self._pending}, "
            f"num_dwa={self._num_dwa}, deadline={self._deadline!r})"
        )

    @property
    def state(self) -> WatchdogState:
        return self._state

    @property
    def pending(self) -> bool:
        """A DWR has been sent and its DWA not yet received."""
        return self._pending

    @property
    def num_dwa(self) -> int:
        """DWAs received since the connection reopened (RFC 3539 NumDWA; -1 after a silent Tw)."""
        return self._num_dwa

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` is next due, or None while no timer is armed."""
        return self._deadline

    def start(self, now: float) -> None:
        """Arm the INITIAL timer (SetWatchdog()); does nothing once the connection was up."""
        if self._state is WatchdogState.INITIAL:
            self._set_watchdog(now)

    def connection_up(self, now: float) -> list[WatchdogAction]:
        return self._fire(_Event.CONNECTION_UP, now)

    def connection_down(self, now: float) -> list[WatchdogAction]:
        return self._fire(_Event.CONNECTION_DOWN, now)

    def message_received(self, now: float, is_dwa: bool) -> list[WatchdogAction]:
        """Any message from the peer, request or answer; ``is_dwa`` for a Device-Watchdog-Answer."""
        if not is_dwa and self._state is WatchdogState.OKAY:
            # The row every message of an open connection takes (OKAY, non-DWA: SetWatchdog()
            # only), short-cut because it runs per message; the table says the same.
            self._set_watchdog(now)
            return []
        return self._fire(_Event.RECEIVE_DWA if is_dwa else _Event.RECEIVE_NON_DWA, now)

    def handle_timer(self, now: float) -> list[WatchdogAction]:
        """The watchdog timer expired if ``now`` has reached ``next_deadline()``; otherwise a no-op."""
        if self._deadline is None or now < self._deadline:
            return []
        return self._fire(_Event.TIMER_EXPIRES, now)

    def _fire(self, event: _Event, now: float) -> list[WatchdogAction]:
        row = self._select(event)
        if row is None:
            return []
        actions: list[WatchdogAction] = []
        for step in row.steps:
            if isinstance(step, WatchdogAction):
                actions.append(step)
            else:
                self._apply(step, now)
        self._state = row.target
        return actions

    def _select(self, event: _Event) -> _Row | None:
        for row in _TRANSITIONS.get((self._state, event), ()):
            if row.guard(self._pending, self._num_dwa):
                return row
        return None

    def _apply(self, op: _Op, now: float) -> None:
        match op:
            case _Op.SET_WATCHDOG:
                self._set_watchdog(now)
            case _Op.PENDING_TRUE:
                self._pending = True
            case _Op.PENDING_FALSE:
                self._pending = False
            case _Op.NUM_DWA_ZERO:
                self._num_dwa = 0
            case _Op.NUM_DWA_INCREMENT:
                self._num_dwa += 1
            case _Op.NUM_DWA_MINUS_ONE:
                self._num_dwa = -1

    def _set_watchdog(self, now: float) -> None:
        self._deadline = now + (self._tw_init + self._rng.uniform(-self._jitter, self._jitter))
