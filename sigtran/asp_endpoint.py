"""What both M3UA ASP state machines share (RFC 4666 4.3): the states, the events they
return, the (state, trigger) tables they are driven by, and the receive loop.

A trigger is a message kind (``sigtran.m3ua.Kind``) or a ``Local`` event: a layer
management request, an SCTP indication, a timer. Each side (``sigtran.asp_server``,
``sigtran.asp_client``) lists its transitions in two tables, ``MESSAGES`` and ``LOCAL``,
{(state, trigger): Transition(action, target)}: the action is a small method that sends
what the RFC says and returns events; ``target`` is the ASP state afterwards, set in one
place (``AspEndpoint._enter``) once the action returned. An action that raises
``M3uaError`` (a bad parameter) leaves the state as it was. A trigger that has no row in
the current state goes through ``AspEndpoint._not_allowed``: a message is answered with
ERR Unexpected Message (0x06), an ``M3uaError`` like every other bad message; a local
event changes nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, TypeVar

from sigtran.m3ua import (
    ErrorCode,
    FramingError,
    Kind,
    M3uaError,
    Message,
    MessageReader,
    ProtocolData,
    Tag,
    build_data,
    decode_message,
    error_from,
)


class AspState(enum.Enum):
    """RFC 4666 4.3.1: the state of the ASP as this connection sees it."""

    DOWN = "ASP-DOWN"
    INACTIVE = "ASP-INACTIVE"
    ACTIVE = "ASP-ACTIVE"


class Local(enum.Enum):
    """A trigger that is not a message, named as RFC 4666 names it where it does."""

    M_ASP_UP_REQUEST = "M-ASP_UP request"  # the ASP side starts (connection_made)
    M_ASP_DOWN_REQUEST = "M-ASP_DOWN request"  # the ASP side leaves (close)
    M_SCTP_RELEASE_REQUEST = "M-SCTP_RELEASE request"  # we end the association: untrusted framing
    SCTP_CDI = "SCTP CDI"  # Communication Down Indication: the connection is gone (connection_lost)
    T_ACK_EXPIRY = "T(ack) expiry"  # an ASPSM/ASPTM request of the ASP side went unanswered
    T_R_EXPIRY = "T(r) expiry"  # the AS was AS-PENDING for T(r) and no ASP came back (4.3.2)
    ACTIVATION_EXPIRY = "activation timer expiry"  # ours: not ASP-ACTIVE in time, close


# --- events ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class AspUp:
    asp_identifier: int | None


@dataclass(frozen=True)
class AspActive:
    traffic_mode: int | None
    routing_contexts: tuple[int, ...]


@dataclass(frozen=True)
class AspInactive:
    routing_contexts: tuple[int, ...]


@dataclass(frozen=True)
class AspDown:
    pass


@dataclass(slots=True)
class DataReceived:
    """DATA from an active peer; answer with ``send_data(data.reply(...), routing_context)``."""

    data: ProtocolData
    routing_context: int | None


@dataclass(frozen=True)
class NotifyReceived:
    status_type: int
    status_info: int
    routing_contexts: tuple[int, ...]


@dataclass(frozen=True)
class ErrorReceived:
    code: int
    diagnostic: bytes | None


@dataclass(frozen=True)
class MessageReceived:
    """A network management message (SSNM) for the application."""

    message: Message


@dataclass(frozen=True)
class BadMessage:
    """Bad input we answered with ERR; for the log line and the counter."""

    code: int
    reason: str
    message: str


@dataclass(frozen=True)
class DataDiscarded:
    """DATA we had queued for an AS-PENDING AS and will never send (RFC 4666 4.3.2)."""

    count: int
    reason: str


@dataclass(frozen=True)
class CloseConnection:
    reason: str


Event = (AspUp | AspActive | AspInactive | AspDown | DataReceived | NotifyReceived | ErrorReceived
         | MessageReceived | BadMessage | DataDiscarded | CloseConnection)


# --- tables ---------------------------------------------------------------------------------

# An action is a method of the endpoint (hence Any for self): a message action is called with
# the decoded message and the time, a local action with the time alone.
MessageAction = Callable[[Any, Message, float], list[Event]]


class Transition(NamedTuple):
    action: Callable[..., list[Event]]  # a message action or a local action, as its table says
    target: AspState


T = TypeVar("T", Kind, Local)
MessageTable = dict[tuple[AspState, Kind], Transition]
LocalTable = dict[tuple[AspState, Local], Transition]


def every_state(rows: Mapping[T, Callable[..., list[Event]]], target: AspState | None = None
                ) -> dict[tuple[AspState, T], Transition]:
    """Rows alike in every state: to ``target``, or leaving the state as it is."""
    return {(state, trigger): Transition(action, target or state)
            for state in AspState for trigger, action in rows.items()}


def unexpected(kind: Kind, state: AspState) -> M3uaError:
    """ERR Unexpected Message (RFC 4666 3.8.1): ``kind`` has no row in ``state``."""
    return M3uaError(ErrorCode.UNEXPECTED_MESSAGE, f"{kind.name} in {state.value}")


_NO_TIME = float("nan")  # for the local events whose actions read no clock (SCTP CDI)


def _describe(frame: bytes) -> str:
    return f"class {frame[2]} type {frame[3]}" if len(frame) >= 4 else "framing"


class AspEndpoint:
    """What both sides share: the receive loop, the table dispatch, ERR answers, BEAT, and the
    reports of ERR, NTFY and SSNM. ``state`` is read-only: only the tables change it."""

    MESSAGES: ClassVar[MessageTable] = {}
    LOCAL: ClassVar[LocalTable] = {}
    _message_rows: ClassVar[dict[AspState, dict[Kind, Transition]]] = {}
    _local_rows: ClassVar[dict[AspState, dict[Local, Transition]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Index each table by state, so a message costs one dict lookup in the current row."""
        super().__init_subclass__(**kwargs)
        cls._message_rows = {s: {kind: t for (state, kind), t in cls.MESSAGES.items() if state is s}
                             for s in AspState}
        cls._local_rows = {s: {local: t for (state, local), t in cls.LOCAL.items() if state is s}
                           for s in AspState}

    def __init__(self, max_message_length: int, max_diagnostic: int) -> None:
        self._state = AspState.DOWN
        self._row = self._message_rows[AspState.DOWN]
        self.closed = False
        self._max_diagnostic = max_diagnostic
        self._max_length = max_message_length
        self._reader = MessageReader(max_message_length)
        self._out: list[bytes] = []

    @property
    def state(self) -> AspState:
        return self._state

    def data_to_send(self) -> bytes:
        data = b"".join(self._out)
        self._out.clear()
        return data

    def send_data(self, data: ProtocolData, routing_context: int | None = None) -> bool:
        """Queue a DATA message for an active ASP (see ``sigtran.asp`` for what happens
        otherwise); False when it was dropped, never an exception."""
        message = build_data(data.opc, data.dpc, data.si, data.ni, data.mp, data.sls, data.user_data,
                             routing_context=routing_context)
        if self._state is AspState.ACTIVE:
            self._send(message)
            return True
        return self._hold(message)

    def _hold(self, message: Message) -> bool:
        """DATA for an ASP that is not active: dropped here; AspServer queues it while AS-PENDING."""
        return False

    def send_message(self, message: Message) -> None:
        """Queue a message the application built (an SSNM such as DUNA or DUPU, or an ERR
        about the contents of a DATA message)."""
        self._send(message)

    def connection_lost(self) -> list[Event]:
        return self._happen(Local.SCTP_CDI, _NO_TIME)

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        if self.closed:
            return []
        try:
            frames = self._reader.feed(data)
        except FramingError as exc:
            return self._framing_failed(exc, now)
        events: list[Event] = []
        for frame in frames:
            events.extend(self._receive_frame(frame, now))
        if self._reader.error is not None:  # whole messages came before the bad header
            events.extend(self._framing_failed(self._reader.error, now))
        return events

    # --- the dispatch: the one place the state changes --------------------------------------

    def _receive_frame(self, frame: bytes, now: float) -> list[Event]:
        try:
            message = decode_message(frame, self._max_length)
            transition = self._row.get(message.kind)
            if transition is None:
                return self._not_allowed(message.kind)
            events: list[Event] = transition.action(self, message, now)
            if transition.target is not self._state:
                self._enter(transition.target)
            return events
        except M3uaError as exc:
            self._send(error_from(exc, frame, self._max_diagnostic))
            return [BadMessage(exc.code, exc.reason, _describe(frame))]

    def _happen(self, local: Local, now: float) -> list[Event]:
        transition = self._local_rows[self._state].get(local)
        if transition is None:
            return self._not_allowed(local)
        events: list[Event] = transition.action(self, now)
        if transition.target is not self._state:
            self._enter(transition.target)
        return events

    def _enter(self, state: AspState) -> None:
        self._state = state
        self._row = self._message_rows[state]

    def _not_allowed(self, trigger: Kind | Local) -> list[Event]:
        """A trigger with no row in this state. A message: ERR Unexpected Message (0x06) quoting
        it, reported as ``BadMessage``, the state unchanged. A local event: nothing happens."""
        if isinstance(trigger, Kind):
            raise unexpected(trigger, self._state)
        return []

    def _framing_failed(self, exc: FramingError, now: float) -> list[Event]:
        self._send(error_from(exc, self._reader.peek(self._max_diagnostic), self._max_diagnostic))
        return [BadMessage(exc.code, exc.reason, "framing"), *self._happen(Local.M_SCTP_RELEASE_REQUEST, now),
                CloseConnection(str(exc))]

    def _send(self, message: Message) -> None:
        self._out.append(message.to_bytes())

    def _check_routing_contexts(self, rcs: tuple[int, ...]) -> tuple[int, ...]:
        return rcs

    def _connection_gone(self) -> None:
        self.closed = True
        self._out.clear()


# --- actions both sides take (called as methods: the endpoint is their first argument) ------

def beat(endpoint: AspEndpoint, message: Message, now: float) -> list[Event]:
    """RFC 4666 4.3.4.6: BEAT is answered BEAT-ACK with its Heartbeat Data, in every state."""
    ack = Message(Kind.BEAT_ACK)
    ack.parameters.extend(p for p in message.parameters if p.tag == Tag.HEARTBEAT_DATA)
    endpoint.send_message(ack)
    return []


def beat_ack(endpoint: AspEndpoint, message: Message, now: float) -> list[Event]:
    return []


def report_error(endpoint: AspEndpoint, message: Message, now: float) -> list[Event]:
    code = message.error_code
    assert code is not None  # mandatory: decode_message checked
    return [ErrorReceived(code, message.get(Tag.DIAGNOSTIC_INFORMATION))]


def report_notify(endpoint: AspEndpoint, message: Message, now: float) -> list[Event]:
    status = message.status
    assert status is not None  # mandatory: decode_message checked
    return [NotifyReceived(status[0], status[1], message.routing_contexts)]


def report_ssnm(endpoint: AspEndpoint, message: Message, now: float) -> list[Event]:
    """A network management message for the application (DUNA, DAVA, SCON, DUPU, DRST)."""
    return [MessageReceived(message)]


def transfer(endpoint: AspEndpoint, message: Message, now: float) -> list[Event]:
    """DATA, in ASP-ACTIVE only: one routing context at most, a configured one."""
    data = message.protocol_data
    assert data is not None  # mandatory: decode_message checked
    rcs = endpoint._check_routing_contexts(message.routing_contexts)
    if len(rcs) > 1:
        raise M3uaError(ErrorCode.PARAMETER_FIELD_ERROR, f"DATA names {len(rcs)} routing contexts")
    return [DataReceived(data, rcs[0] if rcs else None)]


def communication_down(endpoint: AspEndpoint, now: float) -> list[Event]:
    """SCTP CDI with the ASP already down: nothing more is sent."""
    endpoint._connection_gone()
    return []


def communication_down_while_up(endpoint: AspEndpoint, now: float) -> list[Event]:
    """SCTP CDI: the ASP is ASP-DOWN (RFC 4666 4.3.1), nothing more is sent."""
    endpoint._connection_gone()
    return [AspDown()]


def release(endpoint: AspEndpoint, now: float) -> list[Event]:
    """M-SCTP_RELEASE request: the byte stream cannot be trusted; the connection closes."""
    endpoint.closed = True
    return []


# What both sides accept in every state, leaving it as it is.
COMMON_MESSAGES: dict[Kind, MessageAction] = {
    Kind.BEAT: beat,
    Kind.BEAT_ACK: beat_ack,
    Kind.ERR: report_error,
    Kind.NTFY: report_notify,
}
