"""The ASP side of an M3UA connection we open to a signalling gateway (RFC 4666 4.3), as a table.

``AspClient.MESSAGES`` and ``AspClient.LOCAL`` follow RFC 4666 4.3.4 from the ASP's end: the
M-ASP_UP request sends ASPUP, ASPUP-ACK makes the ASP ASP-INACTIVE and sends ASPAC,
ASPAC-ACK makes it ASP-ACTIVE; the M-ASP_DOWN request sends ASPDN and ASPDN-ACK ends the
connection. A request unanswered for T(ack) is sent again, up to ``max_attempts`` times.
An ACK is expected only while its request is outstanding; any other is not allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sigtran.asp_endpoint import (
    COMMON_MESSAGES,
    AspActive,
    AspDown,
    AspEndpoint,
    AspState,
    AspUp,
    CloseConnection,
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
)
from sigtran.m3ua import (
    DEFAULT_MAX_MESSAGE_LENGTH,
    MAX_DIAGNOSTIC_LENGTH,
    Kind,
    Message,
    Tag,
    TrafficMode,
    build_aspac,
    u32_list,
)

_S = AspState


@dataclass
class ClientSettings:
    asp_identifier: int | None = None
    routing_contexts: tuple[int, ...] = ()
    traffic_mode: int | None = TrafficMode.LOADSHARE
    ack_timeout: float = 2.0  # T(ack)
    max_attempts: int = 5
    max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH
    max_diagnostic: int = MAX_DIAGNOSTIC_LENGTH


@dataclass
class _Awaiting:
    request: Message
    ack: Kind
    deadline: float
    attempts: int = 1


class AspClient(AspEndpoint):
    """Our side when we connect to a signalling gateway as an ASP (RFC 4666 4.3.4, ASP side)."""

    def __init__(self, settings: ClientSettings | None = None) -> None:
        self.settings = settings or ClientSettings()
        super().__init__(self.settings.max_message_length, self.settings.max_diagnostic)
        self._awaiting: _Awaiting | None = None

    def connection_made(self, now: float) -> list[Event]:
        """The M-ASP_UP request: ASPUP, then ASPAC once it is acknowledged."""
        return self._happen(Local.M_ASP_UP_REQUEST, now)

    def close(self, now: float) -> list[Event]:
        """Leave: ASPDN, and close the connection on ASPDN-ACK (or when T(ack) runs out)."""
        if self.closed:
            return []
        return self._happen(Local.M_ASP_DOWN_REQUEST, now)

    def next_deadline(self) -> float | None:
        return self._awaiting.deadline if self._awaiting else None

    def handle_timer(self, now: float) -> list[Event]:
        """T(ack) ran out: send the request again, up to ``max_attempts`` times, then give up."""
        if self._awaiting is None or now < self._awaiting.deadline:
            return []
        return self._happen(Local.T_ACK_EXPIRY, now)

    def _request(self, message: Message, ack: Kind, now: float) -> None:
        self._awaiting = _Awaiting(message, ack, now + self.settings.ack_timeout)
        self._send(message)

    def _awaits(self, ack: Kind) -> bool:
        return self._awaiting is not None and self._awaiting.ack is ack

    # --- local events -----------------------------------------------------------------------

    def _asp_up_request(self, now: float) -> list[Event]:
        aspup = Message(Kind.ASPUP)
        if self.settings.asp_identifier is not None:
            aspup.add(Tag.ASP_IDENTIFIER, u32_list((self.settings.asp_identifier,)))
        self._request(aspup, Kind.ASPUP_ACK, now)
        return []

    def _asp_down_request(self, now: float) -> list[Event]:
        self._request(Message(Kind.ASPDN), Kind.ASPDN_ACK, now)
        return []

    def _t_ack_expiry(self, now: float) -> list[Event]:
        awaiting = self._awaiting
        assert awaiting is not None  # handle_timer checked
        if awaiting.ack is Kind.ASPDN_ACK or awaiting.attempts >= self.settings.max_attempts:
            self._awaiting = None
            self.closed = True
            return [CloseConnection(f"no {awaiting.ack.name} after {awaiting.attempts} attempts")]
        awaiting.attempts += 1
        awaiting.deadline = now + self.settings.ack_timeout
        self._send(awaiting.request)
        return []

    # --- messages ---------------------------------------------------------------------------

    def _aspup_ack(self, message: Message, now: float) -> list[Event]:
        """Up: ASP-INACTIVE, and ASPAC at once."""
        if not self._awaits(Kind.ASPUP_ACK):
            return self._not_allowed(message.kind)
        self._request(build_aspac(self.settings.traffic_mode, self.settings.routing_contexts), Kind.ASPAC_ACK, now)
        return [AspUp(message.asp_identifier)]

    def _aspac_ack(self, message: Message, now: float) -> list[Event]:
        if not self._awaits(Kind.ASPAC_ACK):
            return self._not_allowed(message.kind)
        self._awaiting = None
        return [AspActive(message.traffic_mode, message.routing_contexts)]

    def _left(self) -> list[Event]:
        """The ASPDN-ACK to our ASPDN: the connection ends."""
        self._awaiting = None
        self.closed = True
        return [AspDown(), CloseConnection("ASPDN-ACK received")]

    def _aspdn_ack_while_down(self, message: Message, now: float) -> list[Event]:
        if self._awaits(Kind.ASPDN_ACK):
            return self._left()
        self._awaiting = None
        return []

    def _aspdn_ack(self, message: Message, now: float) -> list[Event]:
        """Unsolicited, the gateway took us down (RFC 4666 4.3.4.2); the connection stays."""
        if self._awaits(Kind.ASPDN_ACK):
            return self._left()
        self._awaiting = None
        return [AspDown()]

    # --- the tables -------------------------------------------------------------------------
    # A message without a row in the current state is answered ERR Unexpected Message (0x06):
    # DATA unless ASP-ACTIVE; ASPUP-ACK unless ASP-DOWN, ASPAC-ACK unless ASP-INACTIVE, each
    # also when its request is not outstanding; ASPUP, ASPDN, ASPAC, ASPIA, ASPIA-ACK and DAUD
    # in any state. A local event without a row changes nothing.

    MESSAGES: ClassVar[MessageTable] = {
        **every_state(COMMON_MESSAGES),
        **every_state({kind: report_ssnm for kind in (Kind.DUNA, Kind.DAVA, Kind.SCON, Kind.DUPU, Kind.DRST)}),
        (_S.DOWN, Kind.ASPUP_ACK): Transition(_aspup_ack, _S.INACTIVE),
        (_S.INACTIVE, Kind.ASPAC_ACK): Transition(_aspac_ack, _S.ACTIVE),
        (_S.DOWN, Kind.ASPDN_ACK): Transition(_aspdn_ack_while_down, _S.DOWN),
        (_S.INACTIVE, Kind.ASPDN_ACK): Transition(_aspdn_ack, _S.DOWN),
        (_S.ACTIVE, Kind.ASPDN_ACK): Transition(_aspdn_ack, _S.DOWN),
        (_S.ACTIVE, Kind.DATA): Transition(transfer, _S.ACTIVE),
    }

    LOCAL: ClassVar[LocalTable] = {
        (_S.DOWN, Local.M_ASP_UP_REQUEST): Transition(_asp_up_request, _S.DOWN),
        **every_state({Local.M_ASP_DOWN_REQUEST: _asp_down_request, Local.T_ACK_EXPIRY: _t_ack_expiry}),
        (_S.DOWN, Local.SCTP_CDI): Transition(communication_down, _S.DOWN),
        (_S.INACTIVE, Local.SCTP_CDI): Transition(communication_down_while_up, _S.DOWN),
        (_S.ACTIVE, Local.SCTP_CDI): Transition(communication_down_while_up, _S.DOWN),
        **every_state({Local.M_SCTP_RELEASE_REQUEST: release}, _S.DOWN),
    }
