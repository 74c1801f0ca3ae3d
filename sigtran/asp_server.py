"""The SGP (or IPSP) side of an M3UA connection an ASP opened to us (RFC 4666 4.3), as a table.

``AspServer.MESSAGES`` and ``AspServer.LOCAL`` are RFC 4666 4.3.1 (the ASP states as the SGP
sees them) and 4.3.4 (the procedures), row for row; the AS of 4.3.2 is modelled as one AS
per connection, active exactly when its ASP is, AS-PENDING for T(r) after it left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sigtran.asp_endpoint import (
    COMMON_MESSAGES,
    AspActive,
    AspDown,
    AspEndpoint,
    AspInactive,
    AspState,
    AspUp,
    BadMessage,
    CloseConnection,
    DataDiscarded,
    Event,
    Local,
    LocalTable,
    MessageTable,
    Transition,
    communication_down,
    communication_down_while_up,
    every_state,
    release,
    report_ssnm,
    transfer,
    unexpected,
)
from sigtran.m3ua import (
    DEFAULT_MAX_MESSAGE_LENGTH,
    MAX_DIAGNOSTIC_LENGTH,
    AsState,
    ErrorCode,
    Kind,
    M3uaError,
    Message,
    Parameter,
    StatusType,
    Tag,
    TrafficMode,
    build_aspac,
    build_notify,
    error_from,
    u32_list,
)

_S = AspState


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


class AspServer(AspEndpoint):
    """Our side of a connection an ASP opened to us (RFC 4666 4.3.4, SGP or IPSP)."""

    def __init__(self, settings: ServerSettings | None = None) -> None:
        self.settings = settings or ServerSettings()
        super().__init__(self.settings.max_message_length, self.settings.max_diagnostic)
        self.asp_identifier: int | None = None
        self.traffic_mode: int | None = None
        self._recovery_deadline: float | None = None
        self._activation_deadline: float | None = None
        self._pending: list[Message] = []  # DATA for the AS while AS-PENDING (RFC 4666 4.3.2)

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
            events += self._happen(Local.T_R_EXPIRY, now)
        if self._activation_deadline is not None and now >= self._activation_deadline and not self.closed:
            self._activation_deadline = None
            events += self._happen(Local.ACTIVATION_EXPIRY, now)
        return events

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

    def _check_routing_contexts(self, rcs: tuple[int, ...]) -> tuple[int, ...]:
        allowed = self.settings.routing_contexts
        if allowed is None:
            return rcs
        bad = [rc for rc in rcs if rc not in allowed]
        if bad:
            raise M3uaError(ErrorCode.INVALID_ROUTING_CONTEXT, f"routing context {bad[0]} is not configured",
                            (Parameter(Tag.ROUTING_CONTEXT, u32_list(bad)),))
        return rcs

    def _as_pending(self, now: float, rcs: tuple[int, ...] = ()) -> None:
        """The AS lost its only active ASP: AS-PENDING until T(r) runs out (RFC 4666 4.3.4.4)."""
        self._send(build_notify(StatusType.AS_STATE_CHANGE, AsState.AS_PENDING, rcs))
        self._recovery_deadline = now + self.settings.recovery_timer
        self._start_activation_timer(now)

    # --- ASPSM: ASP Up (4.3.4.1), ASP Down (4.3.4.2) ---------------------------------------

    def _aspup_ack(self, message: Message) -> int | None:
        asp_identifier = message.asp_identifier
        if asp_identifier is None and self.settings.asp_identifier_required:
            raise M3uaError(ErrorCode.ASP_IDENTIFIER_REQUIRED, "ASPUP without ASP Identifier")
        self.asp_identifier = asp_identifier
        self._send(Message(Kind.ASPUP_ACK))
        return asp_identifier

    def _aspup(self, message: Message, now: float) -> list[Event]:
        """ASPUP-ACK; the AS, with an ASP up and none active, is AS-INACTIVE."""
        asp_identifier = self._aspup_ack(message)
        self._send(build_notify(StatusType.AS_STATE_CHANGE, AsState.AS_INACTIVE))
        return [AspUp(asp_identifier)]

    def _aspup_again(self, message: Message, now: float) -> list[Event]:
        """Already ASP-INACTIVE: ASPUP-ACK and no further action."""
        self._aspup_ack(message)
        return []

    def _aspup_while_active(self, message: Message, now: float) -> list[Event]:
        """ASPUP-ACK, ERR Unexpected Message, and the ASP is ASP-INACTIVE."""
        self._aspup_ack(message)
        self._send(error_from(unexpected(message.kind, self.state), message.to_bytes(), self._max_diagnostic))
        self._as_pending(now)
        return [BadMessage(ErrorCode.UNEXPECTED_MESSAGE, "ASPUP in ASP-ACTIVE", Kind.ASPUP.name), AspInactive(())]

    def _aspdn_again(self, message: Message, now: float) -> list[Event]:
        """ASPDN-ACK even when the ASP is already ASP-DOWN."""
        self._send(Message(Kind.ASPDN_ACK))
        return []

    def _aspdn(self, message: Message, now: float) -> list[Event]:
        self._send(Message(Kind.ASPDN_ACK))
        return [AspDown()]

    def _aspdn_while_active(self, message: Message, now: float) -> list[Event]:
        """The AS's last active ASP went ASP-DOWN: AS-PENDING as for ASPIA (4.3.2), T(r) runs
        and DATA for the AS is queued; no NTFY, the ASP being down."""
        self._send(Message(Kind.ASPDN_ACK))
        self._recovery_deadline = now + self.settings.recovery_timer
        self._start_activation_timer(now)
        return [AspDown()]

    # --- ASPTM: ASP Active (4.3.4.3), ASP Inactive (4.3.4.4) -------------------------------

    def _aspac_ack(self, message: Message) -> tuple[int | None, tuple[int, ...]]:
        mode = message.traffic_mode
        if mode is not None and mode not in self.settings.traffic_modes:
            raise M3uaError(ErrorCode.UNSUPPORTED_TRAFFIC_MODE_TYPE, f"traffic mode {mode}")
        rcs = self._check_routing_contexts(message.routing_contexts)
        self._send(build_aspac(mode, rcs, Kind.ASPAC_ACK))
        return mode, rcs

    def _aspac(self, message: Message, now: float) -> list[Event]:
        """ASPAC-ACK, the AS is AS-ACTIVE (NTFY), and what was queued while AS-PENDING is sent."""
        mode, rcs = self._aspac_ack(message)
        self.traffic_mode = mode
        self._recovery_deadline = None
        self._activation_deadline = None
        self._send(build_notify(StatusType.AS_STATE_CHANGE, AsState.AS_ACTIVE, rcs))
        self._out.extend(m.to_bytes() for m in self._pending)
        self._pending.clear()
        return [AspActive(mode, rcs)]

    def _aspac_again(self, message: Message, now: float) -> list[Event]:
        self._aspac_ack(message)
        return []

    def _aspia_ack(self, message: Message) -> tuple[int, ...]:
        rcs = self._check_routing_contexts(message.routing_contexts)
        ack = Message(Kind.ASPIA_ACK)
        if rcs:
            ack.add(Tag.ROUTING_CONTEXT, u32_list(rcs))
        self._send(ack)
        return rcs

    def _aspia_again(self, message: Message, now: float) -> list[Event]:
        self._aspia_ack(message)
        return []

    def _aspia(self, message: Message, now: float) -> list[Event]:
        rcs = self._aspia_ack(message)
        self._as_pending(now, rcs)
        return [AspInactive(rcs)]

    # --- SSNM (4.4) -------------------------------------------------------------------------

    def _daud(self, message: Message, now: float) -> list[Event]:
        """Audit: our own point codes are available; of any other we know nothing (ERR 0x14)."""
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

    # --- local events -----------------------------------------------------------------------

    def _sctp_cdi(self, now: float) -> list[Event]:
        discarded = self._discard("connection lost")
        self._activation_deadline = None
        return discarded + communication_down(self, now)

    def _sctp_cdi_while_up(self, now: float) -> list[Event]:
        discarded = self._discard("connection lost")
        self._activation_deadline = None
        return discarded + communication_down_while_up(self, now)

    def _t_r_expiry(self, now: float) -> list[Event]:
        """No ASP came back within T(r): what was queued for the AS is discarded."""
        return self._discard("T(r) expired with no active ASP")

    def _t_r_expiry_as_inactive(self, now: float) -> list[Event]:
        """As ``_t_r_expiry``, and the AS, with its ASP up, is AS-INACTIVE (NTFY)."""
        events = self._discard("T(r) expired with no active ASP")
        self._send(build_notify(StatusType.AS_STATE_CHANGE, AsState.AS_INACTIVE))
        return events

    def _activation_expiry(self, now: float) -> list[Event]:
        self.closed = True
        return [CloseConnection(f"not ASP-ACTIVE within {self.settings.activation_timeout:g} s")]

    # --- the tables -------------------------------------------------------------------------
    # A message without a row in the current state is answered ERR Unexpected Message (0x06):
    # DATA unless ASP-ACTIVE; ASPAC, ASPIA, DAUD, SCON in ASP-DOWN; DUNA, DAVA, DUPU, DRST and
    # every ACK in any state. A local event without a row changes nothing.

    MESSAGES: ClassVar[MessageTable] = {
        **every_state(COMMON_MESSAGES),
        (_S.DOWN, Kind.ASPUP): Transition(_aspup, _S.INACTIVE),
        (_S.INACTIVE, Kind.ASPUP): Transition(_aspup_again, _S.INACTIVE),
        (_S.ACTIVE, Kind.ASPUP): Transition(_aspup_while_active, _S.INACTIVE),
        (_S.DOWN, Kind.ASPDN): Transition(_aspdn_again, _S.DOWN),
        (_S.INACTIVE, Kind.ASPDN): Transition(_aspdn, _S.DOWN),
        (_S.ACTIVE, Kind.ASPDN): Transition(_aspdn_while_active, _S.DOWN),
        (_S.INACTIVE, Kind.ASPAC): Transition(_aspac, _S.ACTIVE),
        (_S.ACTIVE, Kind.ASPAC): Transition(_aspac_again, _S.ACTIVE),
        (_S.INACTIVE, Kind.ASPIA): Transition(_aspia_again, _S.INACTIVE),
        (_S.ACTIVE, Kind.ASPIA): Transition(_aspia, _S.INACTIVE),
        (_S.ACTIVE, Kind.DATA): Transition(transfer, _S.ACTIVE),
        (_S.INACTIVE, Kind.DAUD): Transition(_daud, _S.INACTIVE),
        (_S.ACTIVE, Kind.DAUD): Transition(_daud, _S.ACTIVE),
        (_S.INACTIVE, Kind.SCON): Transition(report_ssnm, _S.INACTIVE),
        (_S.ACTIVE, Kind.SCON): Transition(report_ssnm, _S.ACTIVE),
    }

    LOCAL: ClassVar[LocalTable] = {
        (_S.DOWN, Local.SCTP_CDI): Transition(_sctp_cdi, _S.DOWN),
        (_S.INACTIVE, Local.SCTP_CDI): Transition(_sctp_cdi_while_up, _S.DOWN),
        (_S.ACTIVE, Local.SCTP_CDI): Transition(_sctp_cdi_while_up, _S.DOWN),
        **every_state({Local.M_SCTP_RELEASE_REQUEST: release}, _S.DOWN),
        # T(r) and the activation timer are never armed while ASP-ACTIVE.
        (_S.DOWN, Local.T_R_EXPIRY): Transition(_t_r_expiry, _S.DOWN),
        (_S.INACTIVE, Local.T_R_EXPIRY): Transition(_t_r_expiry_as_inactive, _S.INACTIVE),
        (_S.DOWN, Local.ACTIVATION_EXPIRY): Transition(_activation_expiry, _S.DOWN),
        (_S.INACTIVE, Local.ACTIVATION_EXPIRY): Transition(_activation_expiry, _S.INACTIVE),
    }
