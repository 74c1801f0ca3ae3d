"""The Diameter peer state machine (RFC 6733 5), sans-I/O.

One ``Peer`` is the relationship with one remote node. It is fed bytes and the time
(``receive_data(data, now)``, ``handle_timer(now)``), returns events, and queues bytes
for ``data_to_send()``. It does capabilities exchange (5.3), the RFC 3539 watchdog
(DWR/DWA), disconnection (DPR/DPA, 5.4), matching answers by Hop-by-Hop id, request
timeouts, retransmission with the T flag after a connection is lost (5.5.4), duplicate
detection of T-flagged requests, and error answers for every bad request it receives.
The asyncio layer (``diameter.transport``) only moves bytes and calls these methods.

Peer identity. An application request names its originator in Origin-Host (RFC 6733 6.3;
relays must not change it), and every relay or proxy on its way appends a Route-Record
holding the identity of the peer it received the request from, as that peer gave it in
CER/CEA (6.1.9, 6.7.1). So a request without Route-Record came straight from its
originator: its Origin-Host must be the peer's CER Origin-Host. And in a relayed request
the first Route-Record, written by the first relay, names the node that relay received it
from, which is the originator: it must be the Origin-Host too. DiameterIdentity is an FQDN,
compared without regard to case. Only the first entry can be checked: the others name
nodes beyond our peer, and the last one names whoever our peer (the relay) received the
request from, never the peer itself, so it is not compared with the CER identity. A
direct peer can forge Route-Records as well as Origin-Host: for relayed requests the
trust rests on which relays the node admits at all (the agent's peers.allow, by name and
source address).

A request that fails either check is answered 5003 DIAMETER_AUTHORIZATION_REJECTED, with
the Origin-Host in Failed-AVP and both identities in Error-Message, and is not given to
the application or to the duplicate cache (a T-flagged request claiming another node's
Origin-Host would otherwise be sent that node's cached answer). Why 5003 (7.1.5: "a
request was received for which the user could not be authorized ... the service requested
is not permitted"): the request is well formed and reached the node that serves it; what
is refused is serving it for the identity it claims, and that will not change if the same
request is sent again, which is what a permanent failure says. The alternatives fit worse:
3010 DIAMETER_UNKNOWN_PEER is defined for "a CER ... from an unknown peer" (7.1.3), and
here answers a CER; 3002 DIAMETER_UNABLE_TO_DELIVER says no host of the realm could take
the request, inviting a retry at another EIR and hiding the cause; and a 3xxx protocol
error is handled per hop, where a relay may retry or rewrite it, whereas a relay must pass
a failure Result-Code on unchanged (6.2.2), so the originator hears it. As 7.1.5 asks for
permanent failures, the answer keeps the application's grammar (an ECA with
Auth-Session-State) and has no E bit.
"""

from __future__ import annotations

import enum
import random
import struct
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from diameter.answers import answer_to, error_answer, finish_answer, result_code_of, select_problem
from diameter.avp import Avp
from diameter.capabilities import (
    LocalNode,
    PeerInfo,
    build_cer,
    capability_avp_list,
    capability_avps,
    common_applications,
    peer_info,
)
from diameter.constants import (
    APP_COMMON,
    FLAG_T,
    Command,
    DisconnectCause,
    ResultCode,
)
from diameter.errors import AvpProblem, FramingError
from diameter.message import DEFAULT_MAX_MESSAGE_LENGTH, Message, MessageReader, decode_message, make_message
from diameter.watchdog import Watchdog, WatchdogAction, WatchdogState

_ROUTE_RECORD, _DESTINATION_HOST, _DESTINATION_REALM, _ORIGIN_HOST_CODE, _SESSION_ID_CODE = 282, 293, 283, 264, 263
_ROUTING_AVPS = frozenset({_ROUTE_RECORD, _DESTINATION_HOST, _DESTINATION_REALM, _ORIGIN_HOST_CODE})
_SHOWN = 80  # characters of an identity from the wire an Error-Message repeats
_BASE_COMMANDS = frozenset({Command.DEVICE_WATCHDOG, Command.DISCONNECT_PEER, Command.CAPABILITIES_EXCHANGE})
_U32 = struct.Struct(">I")


class Role(enum.Enum):
    INITIATOR = "initiator"  # we connect and send CER
    RESPONDER = "responder"  # we accept and wait for CER


class PeerState(enum.Enum):
    CLOSED = "Closed"
    WAIT_CER = "Wait-CER"
    WAIT_CEA = "Wait-I-CEA"
    OPEN = "Open"
    CLOSING = "Closing"  # DPR sent, waiting for DPA


# --- events returned to the I/O layer ------------------------------------------------

@dataclass(frozen=True)
class CapabilitiesExchanged:
    peer: PeerInfo
    applications: frozenset[int]


@dataclass(slots=True)
class RequestReceived:
    """An application request that decoded cleanly; the application must answer it.
    (Not frozen: one is made per request, and a frozen dataclass costs twice as much to make.)"""

    message: Message


@dataclass(slots=True)
class AnswerReceived:
    message: Message
    request: Message


@dataclass(frozen=True)
class RequestTimedOut:
    request: Message


@dataclass(frozen=True)
class BadMessage:
    """Bad input we answered (or dropped); for the log line, the counter and, when answered,
    the answer log (``session`` and ``origin_host``: the request's, when they decoded)."""

    result_code: int
    reason: str
    command: str
    answered: bool
    session: str | None = None
    origin_host: str | None = None


@dataclass(frozen=True)
class PeerDisconnecting:
    """The peer sent DPR; we answered DPA and expect it to close the connection."""

    cause: int | None


@dataclass(frozen=True)
class CloseConnection:
    """The I/O layer must close the transport connection now (after flushing)."""

    reason: str


@dataclass(frozen=True)
class WatchdogChanged:
    old: WatchdogState
    new: WatchdogState


@dataclass(frozen=True)
class ReconnectWanted:
    """RFC 3539 AttemptOpen: an initiator should try to connect again."""


Event = (CapabilitiesExchanged | RequestReceived | AnswerReceived | RequestTimedOut | BadMessage
         | PeerDisconnecting | CloseConnection | WatchdogChanged | ReconnectWanted)


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
    accept_peer: Callable[[PeerInfo, Any], bool | str] | None = None
    duplicate_cache_size: int = 4096
    rng: random.Random = field(default_factory=random.Random)


@dataclass
class _Pending:
    request: Message
    deadline: float
    internal: bool  # a DWR, DPR or CER of our own: not reported to the application


class DuplicateCache:
    """Answers as sent, by (Origin-Host, End-to-End id), to re-send for T-flagged requests
    (RFC 6733 6.1.9); the oldest go first once ``size`` are kept."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._answers: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    def remember(self, origin_host: str, end_to_end: int, answer: bytes) -> None:
        answers = self._answers
        answers[(origin_host, end_to_end)] = answer
        if len(answers) > self._size:
            answers.popitem(last=False)

    def lookup(self, origin_host: str, end_to_end: int) -> bytes | None:
        return self._answers.get((origin_host, end_to_end))


def _origin_host(message: Message) -> str | None:
    """The Origin-Host AVP's value (base AVP 264), None when it has none."""
    return _text_of(message, _ORIGIN_HOST_CODE)


def _text_of(message: Message, code: int) -> str | None:
    """The text value of a base AVP of ``message``, None when it has none that decoded."""
    for avp in message.avps:
        if avp.code == code and not avp.vendor_id:
            value = avp.value
            return value if isinstance(value, str) else None
    return None


class IdGenerator:
    """Hop-by-Hop ids count from a random start; End-to-End ids put the low 12 bits of
    the start time in the high bits and a counter in the low 20 (RFC 6733 3)."""

    def __init__(self, rng: random.Random, now_epoch: float) -> None:
        self._hop = rng.getrandbits(32)
        self._e2e_high = (int(now_epoch) & 0xFFF) << 20
        self._e2e_low = rng.getrandbits(20)

    def hop_by_hop(self) -> int:
        self._hop = (self._hop + 1) & 0xFFFFFFFF
        return self._hop

    def end_to_end(self) -> int:
        self._e2e_low = (self._e2e_low + 1) & 0xFFFFF
        return self._e2e_high | self._e2e_low


class Peer:
    """The state of our relationship with one remote Diameter node."""

    def __init__(self, node: LocalNode, role: Role, settings: PeerSettings | None = None,
                 now_epoch: float = 0.0, duplicates: DuplicateCache | None = None) -> None:
        self.node = node
        self.role = role
        self.settings = settings or PeerSettings()
        self.state = PeerState.CLOSED
        self.remote: PeerInfo | None = None
        self.applications: frozenset[int] = frozenset()
        self.ids = IdGenerator(self.settings.rng, now_epoch)
        self.watchdog = Watchdog(self.settings.tw_init, self.settings.tw_jitter, self.settings.rng)
        self.duplicates = duplicates or DuplicateCache(self.settings.duplicate_cache_size)
        self._reader = MessageReader(self.settings.max_message_length)
        self._out: list[bytes] = []
        self._pending: dict[int, _Pending] = {}
        self._retransmit: list[Message] = []
        self._state_deadline: float | None = None
        self._peer_left = False  # the peer sent DPR (we answered DPA): Closing, closed by it or by the timer
        self._watchdog_seen = self.watchdog.state
        self.cea_result: int | None = None  # Result-Code of the CEA, for an initiator
        self.remote_address: Any = None  # set by the I/O layer: the peer's transport address
        self._host_lower, self._realm_lower = node.origin_host.lower(), node.origin_realm.lower()
        self._remote_lower: str | None = None  # the peer's CER/CEA Origin-Host, lower case

    # --- connection lifecycle ----------------------------------------------------------

    def connection_made(self, now: float) -> list[Event]:
        self._reader = MessageReader(self.settings.max_message_length)
        self._state_deadline = now + self.settings.cer_timeout
        self._peer_left = False
        if self.role is Role.INITIATOR:
            self.state = PeerState.WAIT_CEA
            self._send_request(build_cer(self.node), now, internal=True)
        else:
            self.state = PeerState.WAIT_CER
        return []

    def connection_lost(self, now: float) -> list[Event]:
        """The transport is gone: keep application requests for retransmission with T."""
        was_open = self.state in (PeerState.OPEN, PeerState.CLOSING)
        self.state = PeerState.CLOSED
        self._state_deadline = None
        for pending in self._pending.values():
            if not pending.internal:
                self._retransmit.append(pending.request)
        self._pending.clear()
        self._out.clear()
        if not was_open:
            return []
        # The connection is already gone: only the state change matters, not CloseConnection.
        actions = [a for a in self.watchdog.connection_down(now) if a is not WatchdogAction.CLOSE_CONNECTION]
        return self._watchdog_actions(actions, now)

    def disconnect(self, now: float, cause: DisconnectCause = DisconnectCause.REBOOTING) -> list[Event]:
        """Send DPR (RFC 6733 5.4); the connection closes on DPA or after dpa_timeout."""
        if self.state is not PeerState.OPEN:
            self.state = PeerState.CLOSED
            return [CloseConnection("disconnect before the peer was open")]
        dpr = make_message(Command.DISCONNECT_PEER, request=True, application_id=APP_COMMON)
        dpr.add("Origin-Host", self.node.origin_host).add("Origin-Realm", self.node.origin_realm)
        dpr.add("Disconnect-Cause", int(cause))
        self._send_request(dpr, now, internal=True)
        self.state = PeerState.CLOSING
        self._state_deadline = now + self.settings.dpa_timeout
        return []

    # --- sending -------------------------------------------------------------------------

    def send_request(self, request: Message, now: float) -> Message:
        """Queue an application request; ids are assigned here. Returns the request."""
        if self.state is not PeerState.OPEN:
            raise RuntimeError(f"cannot send a request in state {self.state.value}")
        return self._send_request(request, now, internal=False)

    def send_answer(self, request: Message, answer: Message) -> None:
        """Queue the application's answer to ``request``; remembered for duplicates by the
        request's own Origin-Host and End-to-End id (RFC 6733 6.5), not the peer's: behind a
        relay, one peer carries the requests of many origins."""
        wire = answer.to_bytes()
        self._out.append(wire)
        origin = self._origin_of(request)
        if origin is not None:
            self.duplicates.remember(origin, request.end_to_end, wire)

    def data_to_send(self) -> bytes:
        data = b"".join(self._out)
        self._out.clear()
        return data

    def _send_request(self, request: Message, now: float, internal: bool, timeout: float | None = None) -> Message:
        request.hop_by_hop = self.ids.hop_by_hop()
        if request.end_to_end == 0:
            request.end_to_end = self.ids.end_to_end()
        deadline = now + (self.settings.request_timeout if timeout is None else timeout)
        self._pending[request.hop_by_hop] = _Pending(request, deadline, internal)
        self._out.append(request.to_bytes())
        return request

    # --- timers --------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        candidates = [d for d in (self._state_deadline,) if d is not None]
        if self.state in (PeerState.OPEN, PeerState.CLOSING):
            wd = self.watchdog.next_deadline()
            if wd is not None:
                candidates.append(wd)
        candidates.extend(p.deadline for p in self._pending.values())
        return min(candidates) if candidates else None

    def handle_timer(self, now: float) -> list[Event]:
        events: list[Event] = []
        if self._state_deadline is not None and now >= self._state_deadline:
            self._state_deadline = None
            reason = {PeerState.WAIT_CER: "no CER in time", PeerState.WAIT_CEA: "no CEA in time",
                      PeerState.CLOSING: "no DPA in time"}.get(self.state)
            if self._peer_left and self.state is PeerState.CLOSING:
                reason = "the peer sent DPR but did not close the connection in time"
            if reason:
                self.state = PeerState.CLOSED
                events.append(CloseConnection(reason))
        for hop, pending in list(self._pending.items()):
            if now >= pending.deadline:
                del self._pending[hop]
                if not pending.internal:
                    events.append(RequestTimedOut(pending.request))
        if self.state is PeerState.OPEN:
            events.extend(self._watchdog_actions(self.watchdog.handle_timer(now), now))
        return events

    # --- receiving -----------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        try:
            frames = self._reader.feed(data)
        except FramingError as exc:
            self.state = PeerState.CLOSED
            return [BadMessage(0, str(exc), "framing", answered=False), CloseConnection(str(exc))]
        events: list[Event] = []
        for frame in frames:
            try:
                message = decode_message(frame, max_length=self.settings.max_message_length)
            except FramingError as exc:  # cannot happen for a frame the reader cut; kept as a guard
                self.state = PeerState.CLOSED
                return [*events, CloseConnection(str(exc))]
            events.extend(self._receive(message, now))
            if self.state is PeerState.CLOSED:
                break
        return events

    def _receive(self, message: Message, now: float) -> list[Event]:
        if self.state is PeerState.WAIT_CER:
            return self._receive_cer(message, now)
        if message.is_request:
            return self._receive_request(message, now)
        return self._receive_answer(message, now)

    def _receive_request(self, request: Message, now: float) -> list[Event]:
        actions = self.watchdog.message_received(now, is_dwa=False)
        events = self._watchdog_actions(actions, now) if actions or self._watchdog_moved() else []
        if WatchdogAction.THROWAWAY in actions and request.application_id != APP_COMMON:
            return events  # RFC 3539 REOPEN: no application traffic yet; base requests are still answered
        problem = self._request_problem(request)
        if problem is not None:
            return [*events, self._refuse(request, problem)]
        code = request.command_code
        if self._peer_left and code != Command.DEVICE_WATCHDOG:  # after its DPR the peer has no more to ask
            return [*events, self._refuse(request, AvpProblem(
                ResultCode.DIAMETER_UNABLE_TO_DELIVER,
                f"{request.name} after the peer's own DPR: the connection is closing"))]
        if code not in _BASE_COMMANDS:
            cached = self._duplicate_of(request) if request.flags & FLAG_T else None
            if cached is not None:
                self._out.append(cached[:12] + _U32.pack(request.hop_by_hop) + cached[16:])
            else:
                events.append(RequestReceived(request))
        elif code == Command.DEVICE_WATCHDOG:
            self._answer_base(request)
        elif code == Command.DISCONNECT_PEER:
            self._answer_base(request)
            cause = request.value("Disconnect-Cause")
            # RFC 6733 5.6 R-Rcv-DPR: DPA sent, Closing; the peer closes the connection, and
            # if it does not within dpa_timeout, we do.
            self.state = PeerState.CLOSING
            self._peer_left = True
            self._state_deadline = now + self.settings.dpa_timeout
            events.append(PeerDisconnecting(cause))
        elif code == Command.CAPABILITIES_EXCHANGE:
            problem = AvpProblem(ResultCode.DIAMETER_UNABLE_TO_COMPLY, "CER on an open connection")
            events.append(self._refuse(request, problem, capability_avp_list(self.node)))
        return events

    def _watchdog_moved(self) -> bool:
        return self.watchdog.state is not self._watchdog_seen

    def _request_problem(self, request: Message) -> AvpProblem | None:
        """Problems the node answers itself: decoding problems, then 3007 and 3001."""
        if request.problems:
            return select_problem(request.problems)
        routing = self._routing_problem(request)
        if routing is not None:
            return routing
        app = request.application_id
        if app != APP_COMMON and app not in self.applications:
            return AvpProblem(ResultCode.DIAMETER_APPLICATION_UNSUPPORTED, f"application {app} is not supported")
        if request.definition is None or request.definition.application_id != app:
            return AvpProblem(ResultCode.DIAMETER_COMMAND_UNSUPPORTED,
                              f"command {request.command_code} is not supported in application {app}")
        return None

    def _routing_problem(self, request: Message) -> AvpProblem | None:
        """RFC 6733 6.1: this node serves requests for itself and its realm; it relays nothing.
        A Route-Record naming us is a loop (3005). Then the originator's identity (see the
        module's docstring). One pass over the AVPs: this runs per request."""
        origin = first_record = None
        for avp in request.avps:
            code = avp.code
            if code not in _ROUTING_AVPS or avp.vendor_id:
                continue
            value = avp.value
            if not isinstance(value, str):
                continue
            if code == _ORIGIN_HOST_CODE:
                origin = avp
            elif code == _ROUTE_RECORD:
                if value.lower() == self._host_lower:
                    return AvpProblem(ResultCode.DIAMETER_LOOP_DETECTED, "Route-Record names this node", avp)
                if first_record is None:
                    first_record = avp
            elif code == _DESTINATION_HOST and value.lower() != self._host_lower:
                return AvpProblem(ResultCode.DIAMETER_UNABLE_TO_DELIVER, f"Destination-Host {value} is not this node",
                                  avp)
            elif code == _DESTINATION_REALM and value.lower() != self._realm_lower:
                return AvpProblem(ResultCode.DIAMETER_REALM_NOT_SERVED, f"realm {value} is not served here", avp)
        if origin is None or request.application_id == APP_COMMON:  # base requests are the peer's own, hop by hop
            return None
        return self._identity_problem(origin, first_record)

    def _identity_problem(self, origin: Avp, first_record: Avp | None) -> AvpProblem | None:
        """5003 for a request whose Origin-Host is not who sent it: the peer's CER identity
        when it came directly (no Route-Record), else the first relay's Route-Record."""
        claimed = origin.value
        if first_record is None:
            if self._remote_lower is None or claimed.lower() == self._remote_lower:
                return None
            assert self.remote is not None
            reason = (f"Origin-Host {claimed[:_SHOWN]} is not {self.remote.origin_host[:_SHOWN]}, the identity "
                      "this peer gave in CER, and no Route-Record says the request was relayed")
        else:
            recorded = first_record.value
            if claimed.lower() == recorded.lower():
                return None
            reason = (f"Origin-Host {claimed[:_SHOWN]} is not {recorded[:_SHOWN]}, the node the first relay "
                      "received the request from (its Route-Record)")
        return AvpProblem(ResultCode.DIAMETER_AUTHORIZATION_REJECTED, reason, origin)

    def _refuse(self, request: Message, problem: AvpProblem, extra: list[Avp] | None = None) -> BadMessage:
        """Answer ``request`` with ``problem``'s error; the event that tells the application.
        A request refused for its Origin-Host is reported as from the node that did send it."""
        self._answer_error(request, problem, extra)
        origin = _origin_host(request)
        if problem.result_code == ResultCode.DIAMETER_AUTHORIZATION_REJECTED and problem.avp is not None \
                and problem.avp.code == _ORIGIN_HOST_CODE:
            origin = self._sender_of(request)
        return BadMessage(problem.result_code, problem.reason, request.name, answered=True,
                          session=_text_of(request, _SESSION_ID_CODE), origin_host=origin)

    def _sender_of(self, request: Message) -> str | None:
        """Who sent ``request`` as far as this node knows: the first Route-Record, else the peer."""
        record = _text_of(request, _ROUTE_RECORD)
        return record if record is not None else self.remote.origin_host if self.remote is not None else None

    def _origin_of(self, request: Message) -> str | None:
        """Whose request this is, for duplicate detection: its Origin-Host, else the peer's."""
        return _origin_host(request) or (self.remote.origin_host if self.remote is not None else None)

    def _duplicate_of(self, request: Message) -> bytes | None:
        """The answer already sent to this T-flagged request (same Origin-Host and
        End-to-End id), as it went on the wire."""
        origin = self._origin_of(request)
        return None if origin is None else self.duplicates.lookup(origin, request.end_to_end)

    def _receive_answer(self, answer: Message, now: float) -> list[Event]:
        pending = self._pending.pop(answer.hop_by_hop, None)
        if self.state is PeerState.WAIT_CEA:
            if pending is None or answer.command_code != Command.CAPABILITIES_EXCHANGE:
                self.state = PeerState.CLOSED
                return [CloseConnection(f"{answer.name} received while waiting for CEA")]
            return self._receive_cea(answer, now)
        actions = self.watchdog.message_received(now, is_dwa=answer.command_code == Command.DEVICE_WATCHDOG)
        events = self._watchdog_actions(actions, now)
        if pending is None:
            return [*events, BadMessage(0, f"answer with unknown Hop-by-Hop 0x{answer.hop_by_hop:08x}",
                                        answer.name, answered=False)]
        if answer.command_code == Command.DISCONNECT_PEER and self.state is PeerState.CLOSING:
            self.state = PeerState.CLOSED
            return [*events, CloseConnection("DPA received")]
        if not pending.internal and WatchdogAction.THROWAWAY not in actions:
            events.append(AnswerReceived(answer, pending.request))
        return events

    # --- capabilities exchange ------------------------------------------------------------

    def _receive_cer(self, cer: Message, now: float) -> list[Event]:
        if not cer.is_request or cer.command_code != Command.CAPABILITIES_EXCHANGE:
            self.state = PeerState.CLOSED
            return [BadMessage(0, f"{cer.name} before CER", cer.name, answered=False),
                    CloseConnection(f"{cer.name} before CER")]
        problem = select_problem(cer.problems)
        info = peer_info(cer)
        why = None  # what the log is told of a refusal; the wire only hears "not allowed"
        accept = self.settings.accept_peer
        if problem is None and accept is not None:
            verdict = accept(info, self.remote_address)
            if verdict is not True:
                problem = AvpProblem(ResultCode.DIAMETER_UNKNOWN_PEER, f"peer {info.origin_host} is not allowed")
                why = f"{problem.reason}: {verdict}" if isinstance(verdict, str) and verdict else None
        common = common_applications(self.node, info)
        if problem is None and not common:
            problem = AvpProblem(ResultCode.DIAMETER_NO_COMMON_APPLICATION, "no application in common")
        if problem is not None:
            self._answer_error(cer, problem, capability_avp_list(self.node))
            self.state = PeerState.CLOSED
            return [BadMessage(problem.result_code, why or problem.reason, cer.name, answered=True),
                    CloseConnection(problem.reason)]
        cea = answer_to(cer, self.node.origin_host, self.node.origin_realm, ResultCode.DIAMETER_SUCCESS)
        capability_avps(cea, self.node)
        self._out.append(cea.to_bytes())
        return self._opened(info, common, now)

    def _receive_cea(self, cea: Message, now: float) -> list[Event]:
        code = result_code_of(cea)
        self.cea_result = code
        info = peer_info(cea)
        common = common_applications(self.node, info)
        if code != ResultCode.DIAMETER_SUCCESS or not common:
            reason = f"CEA {code}" if code != ResultCode.DIAMETER_SUCCESS else "no application in common"
            self.state = PeerState.CLOSED
            return [CloseConnection(f"capabilities exchange failed: {reason}")]
        return self._opened(info, common, now)

    def _opened(self, info: PeerInfo, common: frozenset[int], now: float) -> list[Event]:
        self.state = PeerState.OPEN
        self.remote = info
        self._remote_lower = info.origin_host.lower()
        self.applications = common
        self._state_deadline = None
        events: list[Event] = [CapabilitiesExchanged(info, common)]
        events.extend(self._watchdog_actions(self.watchdog.connection_up(now), now))
        if self.watchdog.state is WatchdogState.OKAY:
            self._flush_retransmissions(now)
        return events

    def _flush_retransmissions(self, now: float) -> None:
        """RFC 6733 5.5.4: requests pending on a lost connection go again with the T flag."""
        for request in self._retransmit:
            request.flags |= FLAG_T
            self._send_request(request, now, internal=False)
        self._retransmit.clear()

    # --- answers of our own -----------------------------------------------------------------

    def _answer_base(self, request: Message) -> None:
        answer = answer_to(request, self.node.origin_host, self.node.origin_realm, ResultCode.DIAMETER_SUCCESS)
        if request.command_code == Command.DEVICE_WATCHDOG:
            answer.add("Origin-State-Id", self.node.origin_state_id)
        self._out.append(finish_answer(request, answer).to_bytes())

    def _answer_error(self, request: Message, problem: AvpProblem, extra: list[Avp] | None = None) -> None:
        answer = error_answer(request, self.node.origin_host, self.node.origin_realm, problem, extra)
        self._out.append(answer.to_bytes())

    # --- watchdog ---------------------------------------------------------------------------

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
                self.state = PeerState.CLOSED
                events.append(CloseConnection("watchdog: peer did not answer DWR"))
            elif action is WatchdogAction.ATTEMPT_OPEN and self.role is Role.INITIATOR:
                events.append(ReconnectWanted())
            elif action is WatchdogAction.FAILBACK:
                self._flush_retransmissions(now)
        if self.watchdog.state is not self._watchdog_seen:
            events.append(WatchdogChanged(self._watchdog_seen, self.watchdog.state))
            self._watchdog_seen = self.watchdog.state
        return events
