"""The M3UA ASP state machines (RFC 4666 4.3), sans-I/O, one per connection.

``AspServer`` is our side when an ASP connects to us (we act as SGP or IPSP): it answers
ASPUP, ASPAC, ASPIA, ASPDN and BEAT, reports DATA from an active ASP, and answers every
bad or unexpected message with ERR, then keeps serving. ``AspClient`` is our side when we
connect to a signalling gateway as an ASP: ASPUP, then ASPAC, then traffic, and ASPDN to
leave. Both are fed bytes and the time (``receive_data(data, now)``, ``handle_timer(now)``),
return events and queue bytes for ``data_to_send()``, like ``diameter.peer.Peer``. Only the
framing errors of ``sigtran.m3ua.FramingError`` end the connection (``CloseConnection``).
The model is one AS per connection: the AS is active exactly when this ASP is.

DATA is sent only to an active ASP, and ``send_data`` never raises. An answer can be ready
after the ASP left ASP-ACTIVE: a DATA and an ASPIA read together are handled in order, so
the request was accepted while active but its answer is built once the ASP is inactive.
RFC 4666 4.3.2 says what an SGP does then: the AS is AS-PENDING, T(r) runs, and the SGP
SHOULD queue the AS's messages; if the ASP is active again before T(r) expires they are
sent to it (after ASPAC-ACK and the NTFY), otherwise they are discarded. ``AspServer``
does exactly that, whether the ASP went ASP-INACTIVE or ASP-DOWN (at most
``ServerSettings.max_pending`` messages; beyond, and when T(r) expires or the connection
goes, they are reported as ``DataDiscarded``).
Where there is no AS-PENDING (the ASP is down, the AS inactive, or we are the ASP),
``send_data`` drops the message and returns False for the caller to count and log. The
association is never aborted for it.

``AspServer.connection_made(now)`` starts the activation timer (``activation_timeout``):
an association whose ASP is not ASP-ACTIVE that long after it connected, or after it left
ASP-ACTIVE, is closed (``CloseConnection``), so idle connections cannot pile up. An
active ASP may stay quiet as long as it likes (BEAT is optional in RFC 4666).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from sigtran.m3ua import (
    DEFAULT_MAX_MESSAGE_LENGTH,
    MAX_DIAGNOSTIC_LENGTH,
    AsState,
    ErrorCode,
    FramingError,
    Kind,
    M3uaError,
    Message,
    MessageReader,
    Parameter,
    ProtocolData,
    StatusType,
    Tag,
    TrafficMode,
    build_aspac,
    build_data,
    build_notify,
    decode_message,
    error_from,
    u32_list,
)


class AspState(enum.Enum):
    DOWN = "ASP-DOWN"
    INACTIVE = "ASP-INACTIVE"
    ACTIVE = "ASP-ACTIVE"


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


@dataclass
class ServerSettings:
    # Routing contexts an ASP may name; None accepts any.
    routing_contexts: frozenset[int] | None = None
    traffic_modes: frozenset[int] = frozenset(TrafficMode)
    asp_identifier_required: bool = False
    point_codes: frozenset[int] = frozenset()  # ours: a DAUD for them is answered DAVA
    recovery_timer: float = 2.0  # T(r): how long the AS stays AS-PENDING after its ASP went inactive
    max_pending: int = 1024  # DATA messages queued while AS-PENDING; more are discarded
    # Seconds an ASP may stay out of ASP-ACTIVE (from connection_made, or from leaving it)
    # before the connection is closed; None: no limit.
    activation_timeout: float | None = None
    max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH
    max_diagnostic: int = MAX_DIAGNOSTIC_LENGTH


@dataclass
class ClientSettings:
    asp_identifier: int | None = None
    routing_contexts: tuple[int, ...] = ()
    traffic_mode: int | None = TrafficMode.LOADSHARE
    ack_timeout: float = 2.0  # T(ack)
    max_attempts: int = 5
    max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH
    max_diagnostic: int = MAX_DIAGNOSTIC_LENGTH


Handler = Callable[[Message, float], list[Event]]


def _unexpected(message: Message, state: AspState) -> M3uaError:
    return M3uaError(ErrorCode.UNEXPECTED_MESSAGE, f"{message.kind.name} in {state.value}")


def _describe(frame: bytes) -> str:
    return f"class {frame[2]} type {frame[3]}" if len(frame) >= 4 else "framing"


class _Endpoint:
    """What both sides share: the receive loop, ERR answers, BEAT, ERR and NTFY reports."""

    def __init__(self, max_message_length: int, max_diagnostic: int) -> None:
        self.state = AspState.DOWN
        self.closed = False
        self._max_diagnostic = max_diagnostic
        self._max_length = max_message_length
        self._reader = MessageReader(max_message_length)
        self._out: list[bytes] = []
        self._handlers: dict[Kind, Handler] = {
            Kind.BEAT: self._on_beat,
            Kind.BEAT_ACK: lambda message, now: [],
            Kind.ERR: self._on_err,
            Kind.NTFY: self._on_ntfy,
        }

    def data_to_send(self) -> bytes:
        data = b"".join(self._out)
        self._out.clear()
        return data

    def send_data(self, data: ProtocolData, routing_context: int | None = None) -> bool:
        """Queue a DATA message for an active ASP (see the module's docstring for what happens
        otherwise); False when it was dropped, never an exception."""
        message = build_data(data.opc, data.dpc, data.si, data.ni, data.mp, data.sls, data.user_data,
                             routing_context=routing_context)
        if self.state is AspState.ACTIVE:
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
        was_up = self.state is not AspState.DOWN
        self.state = AspState.DOWN
        self.closed = True
        self._out.clear()
        return [AspDown()] if was_up else []

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        if self.closed:
            return []
        try:
            frames = self._reader.feed(data)
        except FramingError as exc:
            return self._framing_failed(exc)
        events: list[Event] = []
        for frame in frames:
            events.extend(self._receive_frame(frame, now))
        if self._reader.error is not None:  # whole messages came before the bad header
            events.extend(self._framing_failed(self._reader.error))
        return events

    def _framing_failed(self, exc: FramingError) -> list[Event]:
        self._send(error_from(exc, self._reader.peek(self._max_diagnostic), self._max_diagnostic))
        self.state = AspState.DOWN
        self.closed = True
        return [BadMessage(exc.code, exc.reason, "framing"), CloseConnection(str(exc))]

    def _receive_frame(self, frame: bytes, now: float) -> list[Event]:
        try:
            message = decode_message(frame, self._max_length)
            return self._handlers.get(message.kind, self._on_unexpected)(message, now)
        except M3uaError as exc:
            self._send(error_from(exc, frame, self._max_diagnostic))
            return [BadMessage(exc.code, exc.reason, _describe(frame))]

    def _send(self, message: Message) -> None:
        self._out.append(message.to_bytes())

    def _on_unexpected(self, message: Message, now: float) -> list[Event]:
        raise _unexpected(message, self.state)

    def _on_beat(self, message: Message, now: float) -> list[Event]:
        ack = Message(Kind.BEAT_ACK)
        ack.parameters.extend(p for p in message.parameters if p.tag == Tag.HEARTBEAT_DATA)
        self._send(ack)
        return []

    def _on_err(self, message: Message, now: float) -> list[Event]:
        code = message.error_code
        assert code is not None  # mandatory: decode_message checked
        return [ErrorReceived(code, message.get(Tag.DIAGNOSTIC_INFORMATION))]

    def _on_ntfy(self, message: Message, now: float) -> list[Event]:
        status = message.status
        assert status is not None  # mandatory: decode_message checked
        return [NotifyReceived(status[0], status[1], message.routing_contexts)]

    def _on_data(self, message: Message, now: float) -> list[Event]:
        if self.state is not AspState.ACTIVE:
            raise _unexpected(message, self.state)
        data = message.protocol_data
        assert data is not None  # mandatory: decode_message checked
        rcs = self._check_routing_contexts(message.routing_contexts)
        if len(rcs) > 1:
            raise M3uaError(ErrorCode.PARAMETER_FIELD_ERROR, f"DATA names {len(rcs)} routing contexts")
        return [DataReceived(data, rcs[0] if rcs else None)]

    def _check_routing_contexts(self, rcs: tuple[int, ...]) -> tuple[int, ...]:
        return rcs


class AspServer(_Endpoint):
    """Our side of a connection an ASP opened to us (RFC 4666 4.3.4, SGP or IPSP)."""

    def __init__(self, settings: ServerSettings | None = None) -> None:
        self.settings = settings or ServerSettings()
        super().__init__(self.settings.max_message_length, self.settings.max_diagnostic)
        self.asp_identifier: int | None = None
        self.traffic_mode: int | None = None
        self._recovery_deadline: float | None = None
        self._activation_deadline: float | None = None
        self._pending: list[Message] = []  # DATA for the AS while AS-PENDING (RFC 4666 4.3.2)
        self._handlers.update({
            Kind.ASPUP: self._on_aspup,
            Kind.ASPDN: self._on_aspdn,
            Kind.ASPAC: self._on_aspac,
            Kind.ASPIA: self._on_aspia,
            Kind.DATA: self._on_data,
            Kind.DAUD: self._on_daud,
            Kind.SCON: self._on_scon,
        })

    # --- timers -----------------------------------------------------------------------------

    def connection_made(self, now: float) -> None:
        """The transport is up: the ASP has ``activation_timeout`` seconds to become active."""
        self._start_activation_timer(now)

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self._recovery_deadline, self._activation_deadline) if d is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> list[Event]:
        """T(r) expired with the ASP still inactive: the AS goes from AS-PENDING to AS-INACTIVE
        and what was queued for it is discarded. The activation timer expired: close."""
        events: list[Event] = []
        if self._recovery_deadline is not None and now >= self._recovery_deadline:
            self._recovery_deadline = None
            events += self._discard("T(r) expired with no active ASP")
            if self.state is AspState.INACTIVE:
                self._send(build_notify(StatusType.AS_STATE_CHANGE, AsState.AS_INACTIVE))
        if self._activation_deadline is not None and now >= self._activation_deadline and not self.closed:
            self._activation_deadline = None
            self.closed = True
            events.append(CloseConnection(f"not ASP-ACTIVE within {self.settings.activation_timeout:g} s"))
        return events

    def connection_lost(self) -> list[Event]:
        discarded = self._discard("connection lost")
        self._activation_deadline = None
        return discarded + super().connection_lost()

    def _start_activation_timer(self, now: float) -> None:
        timeout = self.settings.activation_timeout
        self._activation_deadline = None if timeout is None else now + timeout

    def _hold(self, message: Message) -> bool:
        if self._recovery_deadline is None or len(self._pending) >= self.settings.max_pending:
            return False
        self._pending.append(message)
        return True

    def _discard(self, reason: str) -> list[Event]:
        count = len(self._pending)
        self._pending.clear()
        return [DataDiscarded(count, reason)] if count else []

    # --- ASPSM ------------------------------------------------------------------------------

    def _on_aspup(self, message: Message, now: float) -> list[Event]:
        asp_identifier = message.asp_identifier
        if asp_identifier is None and self.settings.asp_identifier_required:
            raise M3uaError(ErrorCode.ASP_IDENTIFIER_REQUIRED, "ASPUP without ASP Identifier")
        self.asp_identifier = asp_identifier
        self._send(Message(Kind.ASPUP_ACK))
        if self.state is AspState.DOWN:
            self.state = AspState.INACTIVE
            self._send(build_notify(StatusType.AS_STATE_CHANGE, AsState.AS_INACTIVE))
            return [AspUp(asp_identifier)]
        if self.state is AspState.ACTIVE:  # RFC 4666 4.3.4.1: ASPUP-ACK, ERR, and the ASP is inactive
            self._send(error_from(_unexpected(message, self.state), message.to_bytes(), self._max_diagnostic))
            self._deactivate(now)
            return [BadMessage(ErrorCode.UNEXPECTED_MESSAGE, "ASPUP in ASP-ACTIVE", Kind.ASPUP.name),
                    AspInactive(())]
        return []

    def _on_aspdn(self, message: Message, now: float) -> list[Event]:
        self._send(Message(Kind.ASPDN_ACK))
        if self.state is AspState.ACTIVE:
            # The AS's last active ASP went ASP-DOWN: AS-PENDING as for ASPIA (RFC 4666 4.3.2),
            # T(r) runs and DATA for the AS is queued; no NTFY, the ASP being down.
            self._recovery_deadline = now + self.settings.recovery_timer
            self._start_activation_timer(now)
        was_down = self.state is AspState.DOWN
        self.state = AspState.DOWN
        return [] if was_down else [AspDown()]

    # --- ASPTM ------------------------------------------------------------------------------

    def _on_aspac(self, message: Message, now: float) -> list[Event]:
        if self.state is AspState.DOWN:
            raise _unexpected(message, self.state)
        mode = message.traffic_mode
        if mode is not None and mode not in self.settings.traffic_modes:
            raise M3uaError(ErrorCode.UNSUPPORTED_TRAFFIC_MODE_TYPE, f"traffic mode {mode}")
        rcs = self._check_routing_contexts(message.routing_contexts)
        self._send(build_aspac(mode, rcs, Kind.ASPAC_ACK))
        if self.state is AspState.ACTIVE:
            return []
        self.state = AspState.ACTIVE
        self.traffic_mode = mode
        self._recovery_deadline = None
        self._activation_deadline = None
        self._send(build_notify(StatusType.AS_STATE_CHANGE, AsState.AS_ACTIVE, rcs))
        self._out.extend(m.to_bytes() for m in self._pending)  # queued while AS-PENDING: now sent
        self._pending.clear()
        return [AspActive(mode, rcs)]

    def _on_aspia(self, message: Message, now: float) -> list[Event]:
        if self.state is AspState.DOWN:
            raise _unexpected(message, self.state)
        rcs = self._check_routing_contexts(message.routing_contexts)
        ack = Message(Kind.ASPIA_ACK)
        if rcs:
            ack.add(Tag.ROUTING_CONTEXT, u32_list(rcs))
        self._send(ack)
        if self.state is not AspState.ACTIVE:
            return []
        self._deactivate(now, rcs)
        return [AspInactive(rcs)]

    def _deactivate(self, now: float, rcs: tuple[int, ...] = ()) -> None:
        """The AS lost its only active ASP: AS-PENDING until T(r) runs out (RFC 4666 4.3.4.4)."""
        self.state = AspState.INACTIVE
        self._send(build_notify(StatusType.AS_STATE_CHANGE, AsState.AS_PENDING, rcs))
        self._recovery_deadline = now + self.settings.recovery_timer
        self._start_activation_timer(now)

    def _check_routing_contexts(self, rcs: tuple[int, ...]) -> tuple[int, ...]:
        allowed = self.settings.routing_contexts
        if allowed is None:
            return rcs
        bad = [rc for rc in rcs if rc not in allowed]
        if bad:
            raise M3uaError(ErrorCode.INVALID_ROUTING_CONTEXT, f"routing context {bad[0]} is not configured",
                            (Parameter(Tag.ROUTING_CONTEXT, u32_list(bad)),))
        return rcs

    # --- SSNM -------------------------------------------------------------------------------

    def _on_daud(self, message: Message, now: float) -> list[Event]:
        """Audit: our own point codes are available; of any other we know nothing (ERR 0x14)."""
        if self.state is AspState.DOWN:
            raise _unexpected(message, self.state)
        codes = message.affected_point_codes
        rcs = self._check_routing_contexts(message.routing_contexts)
        known = [(mask, pc) for mask, pc in codes if pc in self.settings.point_codes]
        unknown = [(mask, pc) for mask, pc in codes if pc not in self.settings.point_codes]
        if known:
            dava = Message(Kind.DAVA)
            if rcs:
                dava.add(Tag.ROUTING_CONTEXT, u32_list(rcs))
            self._send(dava.add(Tag.AFFECTED_POINT_CODE, u32_list(mask << 24 | pc for mask, pc in known)))
        if unknown:
            raise M3uaError(ErrorCode.DESTINATION_STATUS_UNKNOWN, f"point code {unknown[0][1]} is not known here",
                            (Parameter(Tag.AFFECTED_POINT_CODE, u32_list(m << 24 | pc for m, pc in unknown)),))
        return []

    def _on_scon(self, message: Message, now: float) -> list[Event]:
        if self.state is AspState.DOWN:
            raise _unexpected(message, self.state)
        return [MessageReceived(message)]


@dataclass
class _Awaiting:
    request: Message
    ack: Kind
    deadline: float
    attempts: int = 1


class AspClient(_Endpoint):
    """Our side when we connect to a signalling gateway as an ASP (RFC 4666 4.3.4, ASP side)."""

    def __init__(self, settings: ClientSettings | None = None) -> None:
        self.settings = settings or ClientSettings()
        super().__init__(self.settings.max_message_length, self.settings.max_diagnostic)
        self._awaiting: _Awaiting | None = None
        self._handlers.update({
            Kind.ASPUP_ACK: self._on_aspup_ack,
            Kind.ASPAC_ACK: self._on_aspac_ack,
            Kind.ASPDN_ACK: self._on_aspdn_ack,
            Kind.DATA: self._on_data,
            **{kind: self._on_ssnm for kind in (Kind.DUNA, Kind.DAVA, Kind.SCON, Kind.DUPU, Kind.DRST)},
        })

    def connection_made(self, now: float) -> list[Event]:
        aspup = Message(Kind.ASPUP)
        if self.settings.asp_identifier is not None:
            aspup.add(Tag.ASP_IDENTIFIER, u32_list((self.settings.asp_identifier,)))
        self._request(aspup, Kind.ASPUP_ACK, now)
        return []

    def close(self, now: float) -> list[Event]:
        """Leave: ASPDN, and close the connection on ASPDN-ACK (or when T(ack) runs out)."""
        if self.closed:
            return []
        self._request(Message(Kind.ASPDN), Kind.ASPDN_ACK, now)
        return []

    def next_deadline(self) -> float | None:
        return self._awaiting.deadline if self._awaiting else None

    def handle_timer(self, now: float) -> list[Event]:
        """T(ack) ran out: send the request again, up to ``max_attempts`` times, then give up."""
        awaiting = self._awaiting
        if awaiting is None or now < awaiting.deadline:
            return []
        if awaiting.ack is Kind.ASPDN_ACK or awaiting.attempts >= self.settings.max_attempts:
            self._awaiting = None
            self.closed = True
            return [CloseConnection(f"no {awaiting.ack.name} after {awaiting.attempts} attempts")]
        awaiting.attempts += 1
        awaiting.deadline = now + self.settings.ack_timeout
        self._send(awaiting.request)
        return []

    def _request(self, message: Message, ack: Kind, now: float) -> None:
        self._awaiting = _Awaiting(message, ack, now + self.settings.ack_timeout)
        self._send(message)

    def _acknowledged(self, message: Message) -> None:
        if self._awaiting is None or self._awaiting.ack is not message.kind:
            raise _unexpected(message, self.state)
        self._awaiting = None

    def _on_aspup_ack(self, message: Message, now: float) -> list[Event]:
        self._acknowledged(message)
        self.state = AspState.INACTIVE
        self._request(build_aspac(self.settings.traffic_mode, self.settings.routing_contexts), Kind.ASPAC_ACK, now)
        return [AspUp(message.asp_identifier)]

    def _on_aspac_ack(self, message: Message, now: float) -> list[Event]:
        self._acknowledged(message)
        self.state = AspState.ACTIVE
        return [AspActive(message.traffic_mode, message.routing_contexts)]

    def _on_aspdn_ack(self, message: Message, now: float) -> list[Event]:
        if self._awaiting is not None and self._awaiting.ack is Kind.ASPDN_ACK:
            self._awaiting = None
            self.state = AspState.DOWN
            self.closed = True
            return [AspDown(), CloseConnection("ASPDN-ACK received")]
        # Unsolicited: the gateway took us down (RFC 4666 4.3.4.2); the connection stays.
        self._awaiting = None
        was_down = self.state is AspState.DOWN
        self.state = AspState.DOWN
        return [] if was_down else [AspDown()]

    def _on_ssnm(self, message: Message, now: float) -> list[Event]:
        return [MessageReceived(message)]
