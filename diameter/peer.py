"""The Diameter peer state machine (RFC 6733 5.6), sans-I/O.

One ``Peer`` is the relationship with one remote node over one transport connection. It
is fed bytes and the time (``receive_data(data, now)``, ``handle_timer(now)``), returns
events (``diameter.peer_events``), and queues bytes for ``data_to_send()``. The asyncio
layer (``diameter.transport``) only moves bytes and calls these methods.

Every call becomes an event of RFC 6733 5.6 and goes through ``TRANSITIONS``, a table
keyed by (state, event) whose actions return the next state and the events for the I/O
layer; ``_enter`` is the one place the state changes. An event the table does not list
for the current state takes the one not-allowed path (``_not_allowed``): a message
received is reported and the connection closed (RFC 6733 5.6 "Error"), a call the I/O
layer should not have made raises, ``Stop`` closes at once, and a timer does nothing.

The procedures live beside this module, one each: capabilities exchange
(``diameter.capabilities``: Process-CER, Process-CEA), the watchdog (``diameter.watchdog``,
RFC 3539), disconnection (``diameter.disconnect``: DPR/DPA), pending requests, their timers
and retransmission with the T flag (``diameter.pending``), duplicate detection
(``diameter.duplicates``), and the checks a request passes before the application sees it
(``diameter.request_checks``: routing, the originator's identity, application support).

The RFC's states and ours. A Peer is one connection, so the election of 5.6.4 (two
connections between the same two nodes, one of them dropped) has no place in it:

    RFC 6733 5.6           PeerState             how
    Closed                 CLOSED                no connection, or one being closed (a
                                                 message received now is not allowed)
    Wait-Conn-Ack          (the I/O layer)       ``connect`` in diameter.transport; a refused
                                                 connection (I-Rcv-Conn-Nack) never reaches a Peer
    (R-Conn-CER, split)    WAIT_CER "Wait-CER"   accepted (R-Accept), CER not read yet
    Wait-I-CEA             WAIT_CEA              CER sent, waiting for CEA
    Wait-Conn-Ack/Elect    -                     not implemented: no election
    Wait-Returns           -                     not implemented: no election
    I-Open, R-Open         OPEN                  one state; ``role`` says I- or R-
    Closing                CLOSING               DPR sent, or DPA sent to the peer's DPR

Events: Start is ``connection_made`` (I-Rcv-Conn-Ack for an initiator, R-Accept for a
responder); I-/R-Peer-Disc is ``connection_lost``; Timeout is the state's timer (CER, CEA,
DPA, the peer's close after its DPR); Stop is ``disconnect``; Send-Message is
``send_request``; the received messages are told apart by command (Rcv-CER, Rcv-CEA,
Rcv-DWR, Rcv-DWA, Rcv-DPR, Rcv-DPA, Rcv-Message as a request or an answer; I-Rcv-Non-CEA
is the row of any other answer in Wait-I-CEA). Two events are ours: Tw, the watchdog's
timer (RFC 3539), and Untrusted-Stream, framing the connection cannot recover from.
Win-Election and R-Conn-CER on a second connection do not exist here. Also ours, and
kept from before this table: a request received in Wait-I-CEA is handled as on an open
connection (the watchdog throws application requests away until the connection is up,
DWR and DPR are answered), where the RFC has I-Rcv-Non-CEA; a CER on an open connection
is answered 5012 and the connection stays; requests and answers still flow in Closing;
and answering a request already received (``send_answer``) is part of its Process, not
a Send-Message, so it is not refused in any state.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from diameter.answers import answer_to, error_answer, finish_answer
from diameter.avp import Avp
from diameter.capabilities import (
    AcceptPeer,
    LocalNode,
    PeerInfo,
    build_cea,
    build_cer,
    capability_avp_list,
    process_cea,
    process_cer,
)
from diameter.constants import APP_COMMON, FLAG_T, Command, DisconnectCause, ResultCode
from diameter.disconnect import after_peer_dpr, build_dpr, closing_timeout_reason, disconnect_cause
from diameter.duplicates import DuplicateCache, answer_again, remember_answer
from diameter.errors import AvpProblem, FramingError
from diameter.message import DEFAULT_MAX_MESSAGE_LENGTH, Message, MessageReader, decode_message, make_message
from diameter.peer_events import (
    AnswerReceived,
    BadMessage,
    CapabilitiesExchanged,
    CloseConnection,
    Event,
    PeerDisconnecting,
    ReconnectWanted,
    RequestReceived,
    RequestTimedOut,
    WatchdogChanged,
)
from diameter.pending import IdGenerator, PendingRequests
from diameter.request_checks import RequestChecks
from diameter.watchdog import Watchdog, WatchdogAction, WatchdogState

# Names that lived here before the procedures had modules of their own; callers outside
# diameter/ (the agent, the tests) import them from here.
__all__ = [
    "TRANSITIONS",
    "AnswerReceived",
    "BadMessage",
    "CapabilitiesExchanged",
    "CloseConnection",
    "DuplicateCache",
    "Event",
    "IdGenerator",
    "Peer",
    "PeerDisconnecting",
    "PeerEvent",
    "PeerSettings",
    "PeerState",
    "ReconnectWanted",
    "RequestReceived",
    "RequestTimedOut",
    "Role",
    "WatchdogChanged",
    "allowed",
]


class Role(enum.Enum):
    INITIATOR = "initiator"  # we connect and send CER
    RESPONDER = "responder"  # we accept and wait for CER


class PeerState(enum.Enum):
    CLOSED = "Closed"
    WAIT_CER = "Wait-CER"
    WAIT_CEA = "Wait-I-CEA"
    OPEN = "Open"
    CLOSING = "Closing"  # DPR sent, waiting for DPA; or DPA sent, waiting for the peer to close


class PeerEvent(enum.Enum):
    """The events of RFC 6733 5.6 as one connection sees them (see the module docstring)."""

    START = "Start"  # connection_made: I-Rcv-Conn-Ack, or R-Accept
    PEER_DISC = "Peer-Disc"  # connection_lost
    TIMEOUT = "Timeout"  # the state's timer
    TW = "Tw"  # the watchdog's timer (RFC 3539); ours
    UNTRUSTED_STREAM = "Untrusted-Stream"  # framing that cannot be trusted; ours
    STOP = "Stop"  # disconnect
    SEND_MESSAGE = "Send-Message"  # send_request
    RCV_CER = "Rcv-CER"
    RCV_CEA = "Rcv-CEA"
    RCV_DWR = "Rcv-DWR"
    RCV_DWA = "Rcv-DWA"
    RCV_DPR = "Rcv-DPR"
    RCV_DPA = "Rcv-DPA"
    RCV_REQUEST = "Rcv-Message (request)"
    RCV_ANSWER = "Rcv-Message (answer)"


_RECEIVED = frozenset({PeerEvent.RCV_CER, PeerEvent.RCV_CEA, PeerEvent.RCV_DWR, PeerEvent.RCV_DWA,
                       PeerEvent.RCV_DPR, PeerEvent.RCV_DPA, PeerEvent.RCV_REQUEST, PeerEvent.RCV_ANSWER})
_REQUEST_EVENTS: dict[int, PeerEvent] = {
    int(Command.CAPABILITIES_EXCHANGE): PeerEvent.RCV_CER, int(Command.DEVICE_WATCHDOG): PeerEvent.RCV_DWR,
    int(Command.DISCONNECT_PEER): PeerEvent.RCV_DPR}
_ANSWER_EVENTS: dict[int, PeerEvent] = {
    int(Command.CAPABILITIES_EXCHANGE): PeerEvent.RCV_CEA, int(Command.DEVICE_WATCHDOG): PeerEvent.RCV_DWA,
    int(Command.DISCONNECT_PEER): PeerEvent.RCV_DPA}
_TIMEOUT_REASONS = {PeerState.WAIT_CER: "no CER in time", PeerState.WAIT_CEA: "no CEA in time"}
_NOT_ALLOWED_WHERE = {PeerState.WAIT_CER: "before CER"}  # else "in state <state>"

Transition = tuple[PeerState, list[Event]]


@dataclass
class PeerSettings:
    tw_init: float = 30.0
    tw_jitter: float = 2.0
    request_timeout: float = 10.0
    cer_timeout: float = 10.0  # how long a new connection may wait for CER or CEA
    dpa_timeout: float = 5.0
    max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH
    # Whether a peer may connect, from its CER and its transport address: True admits it,
    # False or a sentence saying why refuses it (CEA 3010; the sentence goes to the
    # BadMessage event, not on the wire). None accepts all.
    accept_peer: AcceptPeer | None = None
    duplicate_cache_size: int = 4096
    rng: random.Random = field(default_factory=random.Random)


class Peer:
    """The state of our relationship with one remote Diameter node."""

    def __init__(self, node: LocalNode, role: Role, settings: PeerSettings | None = None,
                 now_epoch: float = 0.0, duplicates: DuplicateCache | None = None) -> None:
        self.node = node
        self.role = role
        self.settings = settings or PeerSettings()
        self.state = PeerState.CLOSED
        self._actions = _BY_STATE[self.state]
        self.remote: PeerInfo | None = None
        self.applications: frozenset[int] = frozenset()
        self.ids = IdGenerator(self.settings.rng, now_epoch)
        self.pending = PendingRequests(self.ids)
        self.watchdog = Watchdog(self.settings.tw_init, self.settings.tw_jitter, self.settings.rng)
        self.duplicates = duplicates or DuplicateCache(self.settings.duplicate_cache_size)
        self.checks = RequestChecks(node)
        self._reader = MessageReader(self.settings.max_message_length)
        self._out: list[bytes] = []
        self._state_deadline: float | None = None
        self._peer_left = False  # the peer sent DPR (we answered DPA): Closing, closed by it or by the timer
        self._watchdog_seen = self.watchdog.state
        self.cea_result: int | None = None  # Result-Code of the CEA, for an initiator
        self.remote_address: Any = None  # set by the I/O layer: the peer's transport address

    # --- what the I/O layer calls ------------------------------------------------------

    def connection_made(self, now: float) -> list[Event]:
        return self.handle_event(PeerEvent.START, None, now)

    def connection_lost(self, now: float) -> list[Event]:
        """The transport is gone: keep application requests for retransmission with T."""
        return self.handle_event(PeerEvent.PEER_DISC, None, now)

    def disconnect(self, now: float, cause: DisconnectCause = DisconnectCause.REBOOTING) -> list[Event]:
        """Send DPR (RFC 6733 5.4); the connection closes on DPA or after dpa_timeout."""
        return self.handle_event(PeerEvent.STOP, build_dpr(self.node, cause), now)

    def send_request(self, request: Message, now: float) -> Message:
        """Queue an application request; ids are assigned here. Returns the request."""
        self.handle_event(PeerEvent.SEND_MESSAGE, request, now)
        return request

    def send_answer(self, request: Message, answer: Message) -> None:
        """Queue the application's answer to ``request``; remembered for duplicates by the
        request's own Origin-Host and End-to-End id (``diameter.duplicates``)."""
        wire = answer.to_bytes()
        self._out.append(wire)
        remember_answer(self.duplicates, request, wire, self.remote.origin_host if self.remote else None)

    def data_to_send(self) -> bytes:
        data = b"".join(self._out)
        self._out.clear()
        return data

    def next_deadline(self) -> float | None:
        candidates = [d for d in (self._state_deadline, self.pending.next_deadline()) if d is not None]
        if self.state in (PeerState.OPEN, PeerState.CLOSING):
            wd = self.watchdog.next_deadline()
            if wd is not None:
                candidates.append(wd)
        return min(candidates) if candidates else None

    def handle_timer(self, now: float) -> list[Event]:
        events: list[Event] = []
        if self._state_deadline is not None and now >= self._state_deadline:
            self._state_deadline = None
            events.extend(self.handle_event(PeerEvent.TIMEOUT, None, now))
        events.extend(RequestTimedOut(request) for request in self.pending.expired(now))
        events.extend(self.handle_event(PeerEvent.TW, None, now))
        return events

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        try:
            frames = self._reader.feed(data)
        except FramingError as exc:
            return self.handle_event(PeerEvent.UNTRUSTED_STREAM, exc, now)
        events: list[Event] = []
        for frame in frames:
            try:
                message = decode_message(frame, max_length=self.settings.max_message_length)
            except FramingError as exc:  # cannot happen for a frame the reader cut; kept as a guard
                return [*events, *self.handle_event(PeerEvent.UNTRUSTED_STREAM, exc, now)]
            if message.is_request:
                event = _REQUEST_EVENTS.get(message.command_code, PeerEvent.RCV_REQUEST)
            else:
                event = _ANSWER_EVENTS.get(message.command_code, PeerEvent.RCV_ANSWER)
            events.extend(self.handle_event(event, message, now))
            if self.state is PeerState.CLOSED:
                break
        return events

    # --- the table's dispatcher -----------------------------------------------------------

    def handle_event(self, event: PeerEvent, subject: Any, now: float) -> list[Event]:
        """Run ``event`` through the table: ``subject`` is the message received (Rcv-*),
        the request to send (Send-Message), the DPR (Stop), the FramingError
        (Untrusted-Stream), None for the rest. The methods above call this; so may tests."""
        action = self._actions.get(event)
        if action is None:
            state, events = self._not_allowed(event, subject, now)
        else:
            state, events = action(self, subject, now)
        if state is not self.state:
            self._enter(state)
        return events

    def _enter(self, state: PeerState) -> None:
        """The one place the state changes."""
        self.state = state
        self._actions = _BY_STATE[state]

    def _not_allowed(self, event: PeerEvent, subject: Any, now: float) -> Transition:
        """Every (state, event) pair the table does not list."""
        if event in _RECEIVED:  # RFC 6733 5.6 "Error": report it, close the connection
            where = _NOT_ALLOWED_WHERE.get(self.state, f"in state {self.state.value}")
            reason = f"{subject.name} {where}"
            return PeerState.CLOSED, [BadMessage(0, reason, subject.name, answered=False), CloseConnection(reason)]
        if event is PeerEvent.STOP:
            return PeerState.CLOSED, [CloseConnection("disconnect before the peer was open")]
        if event is PeerEvent.SEND_MESSAGE:
            raise RuntimeError(f"cannot send a request in state {self.state.value}")
        if event is PeerEvent.START:
            raise RuntimeError(f"connection made in state {self.state.value}: the old one was not reported lost")
        return self.state, []  # a timer of another state: nothing to do

    # --- Start, Peer-Disc, Timeout, Untrusted-Stream ------------------------------------------

    def _start(self, subject: None, now: float) -> Transition:
        """Closed, Start: an initiator sends CER (I-Snd-CER); a responder waits for it."""
        self._reader = MessageReader(self.settings.max_message_length)
        self._state_deadline = now + self.settings.cer_timeout
        self._peer_left = False
        if self.role is Role.INITIATOR:
            self._send_request(build_cer(self.node), now, internal=True)
            return PeerState.WAIT_CEA, []
        return PeerState.WAIT_CER, []

    def _disc(self, subject: None, now: float) -> Transition:
        """Peer-Disc before the connection was open (or after it was closed): release it."""
        self._release()
        return PeerState.CLOSED, []

    def _disc_open(self, subject: None, now: float) -> Transition:
        """Peer-Disc (I-Disc, R-Disc) of an open or closing connection: the watchdog hears it."""
        self._release()
        # The connection is already gone: only the state change matters, not CloseConnection.
        actions = [a for a in self.watchdog.connection_down(now) if a is not WatchdogAction.CLOSE_CONNECTION]
        return PeerState.CLOSED, self._watchdog_actions(actions, now)

    def _release(self) -> None:
        self._state_deadline = None
        self.pending.connection_lost()
        self._out.clear()

    def _timeout(self, subject: None, now: float) -> Transition:
        """Timeout: Error, Closed."""
        if self.state is PeerState.CLOSING:
            reason = closing_timeout_reason(self._peer_left)
        else:
            reason = _TIMEOUT_REASONS[self.state]
        return PeerState.CLOSED, [CloseConnection(reason)]

    def _untrusted_stream(self, exc: FramingError, now: float) -> Transition:
        reason = str(exc)
        return PeerState.CLOSED, [BadMessage(0, reason, "framing", answered=False), CloseConnection(reason)]

    # --- capabilities exchange: Process-CER, Process-CEA ----------------------------------------

    def _process_cer(self, cer: Message, now: float) -> Transition:
        """Wait-CER, Rcv-CER (the CER of R-Conn-CER): Process-CER, R-Snd-CEA, R-Open; or
        the error CEA and Closed."""
        verdict = process_cer(self.node, cer, self.settings.accept_peer, self.remote_address)
        if verdict.problem is not None:
            self._answer_error(cer, verdict.problem, capability_avp_list(self.node))
            return PeerState.CLOSED, [BadMessage(verdict.problem.result_code, verdict.why or verdict.problem.reason,
                                                 cer.name, answered=True), CloseConnection(verdict.problem.reason)]
        self._out.append(build_cea(self.node, cer).to_bytes())
        return PeerState.OPEN, self._opened(verdict.peer, verdict.applications, now)

    def _process_cea(self, cea: Message, now: float) -> Transition:
        """Wait-I-CEA, I-Rcv-CEA: Process-CEA, I-Open; or Closed when it refuses us. A CEA
        that answers no CER of ours is a Non-CEA."""
        if self.pending.answered(cea.hop_by_hop) is None:
            return self._non_cea(cea, now)
        verdict = process_cea(self.node, cea)
        self.cea_result = verdict.result_code
        if verdict.failure is not None:
            return PeerState.CLOSED, [CloseConnection(verdict.failure)]
        return PeerState.OPEN, self._opened(verdict.peer, verdict.applications, now)

    def _non_cea(self, answer: Message, now: float) -> Transition:
        """Wait-I-CEA, I-Rcv-Non-CEA: Error, Closed."""
        self.pending.answered(answer.hop_by_hop)
        return PeerState.CLOSED, [CloseConnection(f"{answer.name} received while waiting for CEA")]

    def _opened(self, info: PeerInfo, common: frozenset[int], now: float) -> list[Event]:
        self.remote = info
        self.checks.peer_opened(info)
        self.applications = common
        self._state_deadline = None
        events: list[Event] = [CapabilitiesExchanged(info, common)]
        events.extend(self._watchdog_actions(self.watchdog.connection_up(now), now))
        if self.watchdog.state is WatchdogState.OKAY:
            self._flush_retransmissions(now)
        return events

    def _rcv_cer_open(self, cer: Message, now: float) -> Transition:
        """Rcv-CER on an open connection: 5012, and the connection stays (ours)."""
        events, go_on = self._screen(cer, now)
        if go_on:
            problem = AvpProblem(ResultCode.DIAMETER_UNABLE_TO_COMPLY, "CER on an open connection")
            events.append(self._refuse(cer, problem, capability_avp_list(self.node)))
        return self.state, events

    # --- messages on an open connection ----------------------------------------------------------

    def _rcv_request(self, request: Message, now: float) -> Transition:
        """Rcv-Message (a request): Process. A T-flagged request answered before gets that
        answer again (``diameter.duplicates``); any other goes to the application."""
        events, go_on = self._screen(request, now)
        if go_on:
            cached = None
            if request.flags & FLAG_T:
                cached = answer_again(self.duplicates, request, self.remote.origin_host if self.remote else None)
            if cached is not None:
                self._out.append(cached)
            else:
                events.append(RequestReceived(request))
        return self.state, events

    def _rcv_dwr(self, dwr: Message, now: float) -> Transition:
        """Rcv-DWR: Process-DWR, Snd-DWA."""
        events, go_on = self._screen(dwr, now)
        if go_on:
            self._answer_base(dwr)
        return self.state, events

    def _rcv_dpr(self, dpr: Message, now: float) -> Transition:
        """Rcv-DPR: Snd-DPA, Closing; the peer closes the connection, and if it does not
        within dpa_timeout, we do."""
        events, go_on = self._screen(dpr, now)
        if not go_on:
            return self.state, events
        self._answer_base(dpr)
        self._peer_left = True
        self._state_deadline = now + self.settings.dpa_timeout
        events.append(PeerDisconnecting(disconnect_cause(dpr)))
        return PeerState.CLOSING, events

    def _screen(self, request: Message, now: float) -> tuple[list[Event], bool]:
        """What every request goes through first: the watchdog hears it (an application
        request is thrown away while it says so; base requests are still answered, or two
        peers both in REOPEN would never see each other's DWAs), then the request checks
        and, once the peer has sent DPR, the 3002 of ``diameter.disconnect``. Returns the
        events so far and whether the request goes on."""
        actions = self.watchdog.message_received(now, is_dwa=False)
        events = self._watchdog_actions(actions, now) if actions or self._watchdog_moved() else []
        if WatchdogAction.THROWAWAY in actions and request.application_id != APP_COMMON:
            return events, False
        problem = self.checks.problem(request, self.applications)
        if problem is None and self._peer_left:
            problem = after_peer_dpr(request)
        if problem is not None:
            events.append(self._refuse(request, problem))
            return events, False
        return events, True

    def _rcv_answer(self, answer: Message, now: float) -> Transition:
        """Rcv-Message (an answer), Rcv-DWA (Process-DWA): matched by Hop-by-Hop id."""
        pending = self.pending.answered(answer.hop_by_hop)
        actions = self.watchdog.message_received(now, is_dwa=answer.command_code == Command.DEVICE_WATCHDOG)
        events = self._watchdog_actions(actions, now)
        if pending is None:
            events.append(self._unknown_answer(answer))
        elif not pending.internal and WatchdogAction.THROWAWAY not in actions:
            events.append(AnswerReceived(answer, pending.request))
        return self.state, events

    def _rcv_dpa(self, dpa: Message, now: float) -> Transition:
        """Closing, Rcv-DPA: I-Disc/R-Disc, Closed."""
        pending = self.pending.answered(dpa.hop_by_hop)
        events = self._watchdog_actions(self.watchdog.message_received(now, is_dwa=False), now)
        if pending is None:
            events.append(self._unknown_answer(dpa))
            return self.state, events
        events.append(CloseConnection("DPA received"))
        return PeerState.CLOSED, events

    @staticmethod
    def _unknown_answer(answer: Message) -> BadMessage:
        return BadMessage(0, f"answer with unknown Hop-by-Hop 0x{answer.hop_by_hop:08x}", answer.name,
                          answered=False)

    # --- sending ---------------------------------------------------------------------------------

    def _send_message(self, request: Message, now: float) -> Transition:
        """Send-Message: Snd-Message."""
        self._send_request(request, now, internal=False)
        return self.state, []

    def _stop(self, dpr: Message, now: float) -> Transition:
        """Stop: Snd-DPR, Closing."""
        self._send_request(dpr, now, internal=True)
        self._state_deadline = now + self.settings.dpa_timeout
        return PeerState.CLOSING, []

    def _send_request(self, request: Message, now: float, internal: bool, timeout: float | None = None) -> None:
        deadline = now + (self.settings.request_timeout if timeout is None else timeout)
        self._out.append(self.pending.send(request, deadline, internal))

    def _flush_retransmissions(self, now: float) -> None:
        """RFC 6733 5.5.4: requests pending on a lost connection go again with the T flag."""
        for request in self.pending.retransmissions():
            self._send_request(request, now, internal=False)

    # --- answers of our own ----------------------------------------------------------------------

    def _answer_base(self, request: Message) -> None:
        answer = answer_to(request, self.node.origin_host, self.node.origin_realm, ResultCode.DIAMETER_SUCCESS)
        if request.command_code == Command.DEVICE_WATCHDOG:
            answer.add("Origin-State-Id", self.node.origin_state_id)
        self._out.append(finish_answer(request, answer).to_bytes())

    def _answer_error(self, request: Message, problem: AvpProblem, extra: list[Avp] | None = None) -> None:
        answer = error_answer(request, self.node.origin_host, self.node.origin_realm, problem, extra)
        self._out.append(answer.to_bytes())

    def _refuse(self, request: Message, problem: AvpProblem, extra: list[Avp] | None = None) -> BadMessage:
        """Answer ``request`` with ``problem``'s error; the event that tells the application."""
        self._answer_error(request, problem, extra)
        return self.checks.refused(request, problem)

    # --- watchdog (RFC 3539) -----------------------------------------------------------------------

    def _tw(self, subject: None, now: float) -> Transition:
        """Open, Tw: the watchdog's timer; Closed when it gives up on the peer."""
        actions = self.watchdog.handle_timer(now)
        events = self._watchdog_actions(actions, now)
        closed = WatchdogAction.CLOSE_CONNECTION in actions
        return (PeerState.CLOSED if closed else self.state), events

    def _watchdog_moved(self) -> bool:
        return self.watchdog.state is not self._watchdog_seen

    def _watchdog_actions(self, actions: Sequence[WatchdogAction], now: float) -> list[Event]:
        events: list[Event] = []
        for action in actions:
            if action is WatchdogAction.SEND_DWR:
                dwr = make_message(Command.DEVICE_WATCHDOG, request=True, application_id=APP_COMMON)
                dwr.add("Origin-Host", self.node.origin_host).add("Origin-Realm", self.node.origin_realm)
                dwr.add("Origin-State-Id", self.node.origin_state_id)
                # The watchdog, not the request timer, decides when a DWA is overdue.
                overdue = 2 * (self.settings.tw_init + self.settings.tw_jitter)
                self._send_request(dwr, now, internal=True, timeout=overdue)
            elif action is WatchdogAction.CLOSE_CONNECTION:
                events.append(CloseConnection("watchdog: peer did not answer DWR"))
            elif action is WatchdogAction.ATTEMPT_OPEN and self.role is Role.INITIATOR:
                events.append(ReconnectWanted())
            elif action is WatchdogAction.FAILBACK:
                self._flush_retransmissions(now)
        if self.watchdog.state is not self._watchdog_seen:
            events.append(WatchdogChanged(self._watchdog_seen, self.watchdog.state))
            self._watchdog_seen = self.watchdog.state
        return events


Action = Callable[..., Transition]  # (peer, subject, now) -> (next state, events)
_S, _E, _P = PeerState, PeerEvent, Peer

# RFC 6733 5.6, for one connection: the rows of Closed, Wait-I-CEA, I-Open/R-Open and
# Closing, with Wait-CER for the responder's half of R-Conn-CER. Rows marked "ours" are not
# in the RFC's table (see the module docstring). Untrusted-Stream closes in every state.
TRANSITIONS: dict[tuple[PeerState, PeerEvent], Action] = {
    (_S.CLOSED, _E.START): _P._start,  # I-Rcv-Conn-Ack: I-Snd-CER, Wait-I-CEA; R-Accept: Wait-CER
    (_S.CLOSED, _E.PEER_DISC): _P._disc,  # ours: the transport confirms a close the Peer asked for
    (_S.WAIT_CER, _E.RCV_CER): _P._process_cer,  # R-Conn-CER: Process-CER, R-Snd-CEA, R-Open
    (_S.WAIT_CER, _E.TIMEOUT): _P._timeout,
    (_S.WAIT_CER, _E.PEER_DISC): _P._disc,
    (_S.WAIT_CEA, _E.RCV_CEA): _P._process_cea,  # I-Rcv-CEA: Process-CEA, I-Open
    (_S.WAIT_CEA, _E.RCV_ANSWER): _P._non_cea,  # I-Rcv-Non-CEA: Error, Closed
    (_S.WAIT_CEA, _E.RCV_DWA): _P._non_cea,
    (_S.WAIT_CEA, _E.RCV_DPA): _P._non_cea,
    (_S.WAIT_CEA, _E.RCV_REQUEST): _P._rcv_request,  # ours (kept): requests as on an open connection
    (_S.WAIT_CEA, _E.RCV_DWR): _P._rcv_dwr,  # ours (kept)
    (_S.WAIT_CEA, _E.RCV_DPR): _P._rcv_dpr,  # ours (kept)
    (_S.WAIT_CEA, _E.RCV_CER): _P._rcv_cer_open,  # ours (kept)
    (_S.WAIT_CEA, _E.TIMEOUT): _P._timeout,  # Timeout: Error, Closed
    (_S.WAIT_CEA, _E.PEER_DISC): _P._disc,  # I-Peer-Disc: I-Disc, Closed
    (_S.OPEN, _E.SEND_MESSAGE): _P._send_message,  # Send-Message: Snd-Message
    (_S.OPEN, _E.RCV_REQUEST): _P._rcv_request,  # Rcv-Message: Process
    (_S.OPEN, _E.RCV_ANSWER): _P._rcv_answer,  # Rcv-Message: Process
    (_S.OPEN, _E.RCV_DWR): _P._rcv_dwr,  # Rcv-DWR: Process-DWR, Snd-DWA
    (_S.OPEN, _E.RCV_DWA): _P._rcv_answer,  # Rcv-DWA: Process-DWA
    (_S.OPEN, _E.RCV_CER): _P._rcv_cer_open,  # ours: 5012, the connection stays
    (_S.OPEN, _E.RCV_CEA): _P._rcv_answer,  # ours: an answer like any other (unknown Hop-by-Hop)
    (_S.OPEN, _E.RCV_DPA): _P._rcv_answer,  # ours: an answer like any other
    (_S.OPEN, _E.STOP): _P._stop,  # Stop: Snd-DPR, Closing
    (_S.OPEN, _E.RCV_DPR): _P._rcv_dpr,  # Rcv-DPR: Snd-DPA, Closing
    (_S.OPEN, _E.PEER_DISC): _P._disc_open,  # Peer-Disc: Disc, Closed
    (_S.OPEN, _E.TW): _P._tw,  # ours: RFC 3539
    (_S.CLOSING, _E.RCV_DPA): _P._rcv_dpa,  # Rcv-DPA: Disc, Closed
    (_S.CLOSING, _E.TIMEOUT): _P._timeout,  # Timeout: Error, Closed
    (_S.CLOSING, _E.PEER_DISC): _P._disc_open,  # Peer-Disc: Disc, Closed
    (_S.CLOSING, _E.RCV_REQUEST): _P._rcv_request,  # ours (kept): 3002 once the peer sent DPR
    (_S.CLOSING, _E.RCV_ANSWER): _P._rcv_answer,  # ours (kept)
    (_S.CLOSING, _E.RCV_DWR): _P._rcv_dwr,  # ours (kept)
    (_S.CLOSING, _E.RCV_DWA): _P._rcv_answer,  # ours (kept)
    (_S.CLOSING, _E.RCV_DPR): _P._rcv_dpr,  # ours (kept): DPA again, the timer re-armed
    (_S.CLOSING, _E.RCV_CER): _P._rcv_cer_open,  # ours (kept)
    (_S.CLOSING, _E.RCV_CEA): _P._rcv_answer,  # ours (kept)
    **{(state, _E.UNTRUSTED_STREAM): _P._untrusted_stream for state in PeerState},
}

# The table by state, so that a message costs one dict lookup and no allocation.
_BY_STATE: dict[PeerState, dict[PeerEvent, Action]] = {
    state: {event: action for (s, event), action in TRANSITIONS.items() if s is state} for state in PeerState
}


def allowed(state: PeerState, event: PeerEvent) -> bool:
    """Whether the table lists ``event`` in ``state``; if not, it takes the not-allowed path."""
    return (state, event) in TRANSITIONS
