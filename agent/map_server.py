"""MAP CheckIMEI over M3UA: the SCCP routing of the EIR subsystem and the M3UA connections.

``SccpRouter`` (sans-I/O) takes the Protocol Data of an M3UA DATA message and says what
goes back:

- an SCCP UDT or XUDT for the EIR (called SSN 9, or a called address routed on a global
  title without SSN, which the STP translated to us) is answered by the MapAnswerer, in
  the same message type and protocol class, to the calling address; the answer's calling
  address is our global title with SSN 9 when one is configured, else the called address
  as received; the M3UA routing label is the request's, turned round;
- a user part other than SCCP gets DUPU (unequipped remote user); a DPC other than ours
  (when ours is configured) gets DUNA; an SCCP message that cannot be decoded gets M3UA
  ERR (invalid parameter value, quoting the DATA); one for another subsystem, or a
  segment to reassemble, goes back as UDTS/XUDTS when it asked for return on error, and
  is dropped otherwise; a UDTS/XUDTS (one of our answers returned) is dropped. Each is
  counted and logged.

``M3uaConnection`` drives one AspServer (an ASP connected to us) or AspClient (we joined a
signalling gateway) over an asyncio transport: TCP, or kernel SCTP through ``sigtran.sctp``
(PPID 3, DATA on a stream other than 0, everything else on stream 0; DATA received on
stream 0 gets ERR Invalid Stream Identifier). Each connection counts its DATA in progress
(agent/admission.py): past the bounds the MAP answerer aborts the dialogue at once; an
answer resting on a first sight is written once that is on disk (agent/durable.py). An
answer whose ASP left ASP-ACTIVE before it was ready (DATA and ASPIA in one read, or a
commit that took a while) is queued while the AS is AS-PENDING and sent if the ASP is
active again within T(r), else discarded (RFC 4666 4.3.2, see ``sigtran.asp``): counted as
``m3ua_answers_discarded``, logged, the association kept.

Who may connect (``m3ua.allow``; by default loopback only, like S13): a connection from an
address no entry allows is closed at once. DATA whose OPC no entry for its address allows
gets ERR Refused - Management Blocking (0x0D), the DATA quoted: RFC 4666 3.8.1 gives that
code for what is refused "for management reasons", which an operator's allow-list is;
DUNA would say our point code is unreachable, for every OPC of the association, and a
silent drop would leave the MSC waiting. DATA naming a routing context the entry does not
allow gets ERR Invalid Routing Context (0x19), one naming none where the entry wants one
ERR Missing Parameter (0x16), as RFC 4666 3.8.1 gives them. An association not ASP-ACTIVE
within ``m3ua.activation_timeout`` is closed; each listener keeps at most
``m3ua.max_connections`` connections and closes new ones at once past it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.admission import Admission
from agent.bad_input import BadInput
from agent.config import GatewayLink, Listen, M3uaConfig, M3uaPeer
from agent.durable import then
from agent.map import MapAnswerer
from sigtran import sccp
from sigtran.asp import (
    AspActive,
    AspClient,
    AspDown,
    AspInactive,
    AspServer,
    AspUp,
    BadMessage,
    ClientSettings,
    CloseConnection,
    DataDiscarded,
    DataReceived,
    ErrorReceived,
    Event,
    NotifyReceived,
    ServerSettings,
)
from sigtran.m3ua import SI_SCCP, ErrorCode, Kind, Message, Parameter, ProtocolData, Tag, error_message, u32
from sigtran.sccp import SSN_EIR, ReturnCause, SccpAddress, SccpError, Udt, Xudt
from sigtran.sctp import (
    M3UA,
    MessageProtocol,
    PerSecond,
    Received,
    Refused,
    Throttled,
    capped,
    check_sctp,
    m3ua_transfer,
    throttle_accept_errors,
)
from sigtran.sctp import connect as sctp_connect
from sigtran.sctp import start_server as sctp_listen

log = logging.getLogger("eir.m3ua")
UNEQUIPPED_REMOTE_USER = 2  # DUPU cause (RFC 4666 3.4.5)
RECONNECT_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds before each new attempt to reach a gateway
CONNECT_TIMEOUT = 5.0  # seconds for a gateway to accept the connection (a silent one would hold it minutes)
_USER_CAUSE = struct.Struct(">HH")


@dataclass(frozen=True, slots=True)
class Reply:
    """What goes back for one DATA: a DATA carrying ``data``, or an M3UA ``message``."""

    data: ProtocolData | None = None
    message: Message | None = None


class SccpRouter:
    def __init__(self, answerer: MapAnswerer, point_code: int | None = None, global_title: str | None = None) -> None:
        self.answerer = answerer
        self.point_code = point_code
        self.own_address = (sccp.gt_address(global_title, SSN_EIR, point_code=None)
                            if global_title is not None else None)
        self.counters: Counter[str] = Counter()
        self._bad = BadInput(log, self.counters)

    def route(self, data: ProtocolData, routing_context: int | None, peer: str, received_at: float | None = None,
              busy: bool = False) -> Reply | asyncio.Future[Reply | None] | None:
        """What goes back for one DATA (a future of it when the answer waits for a commit);
        ``busy``: past the bounds on requests in progress (the MAP answerer aborts)."""
        if data.si != SI_SCCP:
            return self._refuse("user_part", f"user part {data.si} is not SCCP: DUPU", peer,
                                _dupu(data, routing_context))
        if self.point_code is not None and data.dpc != self.point_code:
            return self._refuse("point_code", f"DPC {data.dpc} is not ours ({self.point_code}): DUNA", peer,
                                _duna(data.dpc, routing_context))
        try:
            message = sccp.decode_message(data.user_data)
        except SccpError as error:
            return self._refuse("sccp", f"SCCP not decodable ({error.reason}): ERR", peer, error_message(
                ErrorCode.INVALID_PARAMETER_VALUE, _data_message(data, routing_context)))
        if not isinstance(message, Udt | Xudt):
            self._bad("sccp_returned", f"{type(message).__name__} (cause {message.return_cause}) dropped", peer)
            return None
        cause = self._undeliverable(message)
        if cause is not None:
            return self._return(message, cause, data, peer)
        answer = self.answerer(message.data, _asker(message.calling, data), received_at, busy)
        if answer is None or isinstance(answer, bytes):
            return self._reply(message, data, answer)
        return then(answer, lambda tcap_answer: self._reply(message, data, tcap_answer))

    def _reply(self, message: Udt | Xudt, data: ProtocolData, answer: bytes | None) -> Reply | None:
        if answer is None:
            return None
        reply = sccp.answer(message, answer)
        if self.own_address is not None:
            reply = _replace_calling(reply, self.own_address)
        return Reply(data.reply(sccp.encode_message(reply)))

    @staticmethod
    def _undeliverable(message: Udt | Xudt) -> ReturnCause | None:
        ssn = message.called.ssn
        if ssn is not None and ssn != SSN_EIR:
            return ReturnCause.UNEQUIPPED_USER
        if ssn is None and not message.called.route_on_gt:
            return ReturnCause.UNEQUIPPED_USER
        if isinstance(message, Xudt) and message.needs_reassembly:
            return ReturnCause.CANNOT_REASSEMBLE
        return None

    def _return(self, message: Udt | Xudt, cause: ReturnCause, data: ProtocolData, peer: str) -> Reply | None:
        what = f"SCCP {type(message).__name__} to SSN {message.called.ssn}: {cause.name}"
        if not message.return_on_error:
            self._bad("sccp_undeliverable", f"{what}, dropped (no return option)", peer)
            return None
        self._bad("sccp_undeliverable", f"{what}, returned", peer)
        return Reply(data.reply(sccp.encode_message(sccp.undeliverable(message, cause))))

    def _refuse(self, kind: str, reason: str, peer: str, message: Message) -> Reply:
        self._bad(kind, reason, peer)
        return Reply(message=message)


def _asker(calling: SccpAddress, data: ProtocolData) -> str:
    """Who asked, for the answer log: the calling global title, else the point code."""
    return calling.digits or f"pc:{calling.point_code if calling.point_code is not None else data.opc}"


def _replace_calling(reply: Udt | Xudt, own: SccpAddress) -> Udt | Xudt:
    if isinstance(reply, Xudt):
        return Xudt(reply.called, own, reply.data, reply.protocol_class, reply.return_on_error,
                    reply.hop_counter, reply.segmentation, reply.importance, reply.other_optional)
    return Udt(reply.called, own, reply.data, reply.protocol_class, reply.return_on_error)


def _data_message(data: ProtocolData, routing_context: int | None) -> bytes:
    message = Message(Kind.DATA)
    if routing_context is not None:
        message.add(Tag.ROUTING_CONTEXT, u32(routing_context))
    return message.add(Tag.PROTOCOL_DATA, data.encode()).to_bytes()


def _ssnm(kind: Kind, routing_context: int | None) -> Message:
    message = Message(kind)
    if routing_context is not None:
        message.add(Tag.ROUTING_CONTEXT, u32(routing_context))
    return message


def _duna(point_code: int, routing_context: int | None) -> Message:
    return _ssnm(Kind.DUNA, routing_context).add(Tag.AFFECTED_POINT_CODE, u32(point_code))


def _dupu(data: ProtocolData, routing_context: int | None) -> Message:
    return (_ssnm(Kind.DUPU, routing_context).add(Tag.AFFECTED_POINT_CODE, u32(data.dpc))
            .add(Tag.USER_CAUSE, _USER_CAUSE.pack(UNEQUIPPED_REMOTE_USER, data.si)))


# --- connections ------------------------------------------------------------------------------


Allowed = Callable[[str | None], tuple[M3uaPeer, ...]]  # the allow-list entries for an address
_events = PerSecond(log)  # connections, ASP states, NTFY and ERR of every association
_refused_log = Throttled(log)  # connections from addresses not allowed
_cap_log = Throttled(log)  # connections past a listener's cap


class M3uaConnection(MessageProtocol):
    """One transport connection driving one ASP state machine; not read while its answers
    wait above the write buffer's high-water mark (``sigtran.sctp.ReadPausing``).
    ``allowed``: the allow-list (None: anyone, as for the gateways we connect to)."""

    paused_counter = "m3ua_connections_paused"
    paused_log = Throttled(log)

    def __init__(self, endpoint: AspServer | AspClient, router: SccpRouter, bad: BadInput,
                 admission: Admission | None = None, sctp: bool = False,
                 allowed: Allowed | None = None) -> None:
        self.endpoint = endpoint
        self.allowed = allowed
        self.admitted: tuple[M3uaPeer, ...] | None = None  # the entries this peer's DATA is screened by
        self.router = router
        self.bad = bad  # shared by the service's connections, as its counters
        self.counters = bad.counters
        self.admission = admission
        self.in_progress = 0  # DATA being answered: those of the read being handled, and those waiting
        self._answered = 0
        self._write_due = False
        self.sctp = sctp
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.active: asyncio.Future[None] = self.loop.create_future()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.limit_writes(transport)
        peername = transport.get_extra_info("peername")
        self.peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        if self.allowed is not None:
            self.admitted = self.allowed(peername[0] if isinstance(peername, tuple) else None)
            if not self.admitted:
                self._refuse(transport)
                return
        if self.sctp:
            self._check_streams(transport.get_extra_info("sctp_streams"))
        _events(logging.INFO, "M3UA connection with %s", self.peer)
        if isinstance(self.endpoint, AspClient):
            self._dispatch(self.endpoint.connection_made(self.loop.time()))
        else:
            self.endpoint.connection_made(self.loop.time())
            self._arm_timer()

    def _refuse(self, transport: asyncio.Transport) -> None:
        """Not on the allow-list: closed at once, counted, logged (throttled)."""
        self.counters["m3ua_refused_address"] += 1
        _refused_log("M3UA connection from %s refused: no m3ua.allow entry admits the address "
                     "(m3ua_refused_address: %d so far)", self.peer, self.counters["m3ua_refused_address"])
        self.endpoint.closed = True
        transport.abort()

    def data_received(self, data: bytes) -> None:
        received_at = time.perf_counter()
        events = self.endpoint.receive_data(data, self.loop.time())
        self._dispatch(events, received_at)

    def message_received(self, data: bytes, received: Received) -> None:
        """One SCTP message: DATA on stream 0 is refused with ERR (RFC 4666 3.8.1), not read."""
        if received.stream == 0 and received.starts and m3ua_transfer(data):
            self.endpoint.send_message(error_message(ErrorCode.INVALID_STREAM_IDENTIFIER, data))
            self._dispatch([BadMessage(ErrorCode.INVALID_STREAM_IDENTIFIER, "DATA on SCTP stream 0", "DATA")])
            return
        self.data_received(data)

    def _check_streams(self, streams: tuple[int, int] | None) -> None:
        if streams is not None and streams[1] < 2:
            log.warning("SCTP association with %s grants %d outbound stream(s): DATA must go on stream 0",
                        self.peer, streams[1])

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._timer is not None:
            self._timer.cancel()
        self._handle(self.endpoint.connection_lost(), time.perf_counter())
        if self.admitted != ():
            _events(logging.INFO, "M3UA connection with %s closed%s", self.peer, f": {exc}" if exc else "")
        if not self.active.done():
            self.active.set_exception(ConnectionError(f"M3UA connection with {self.peer} closed before ASP-ACTIVE"))
            self.active.exception()  # retrieved: the link loop reports it
        if not self.closed.done():
            self.closed.set_result(None)

    def leave(self) -> None:
        """ASPDN when we are the ASP; the connection closes on ASPDN-ACK."""
        if isinstance(self.endpoint, AspClient):
            self._dispatch(self.endpoint.close(self.loop.time()))
        elif self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _dispatch(self, events: list[Event], received_at: float | None = None) -> None:
        close = self._handle(events, received_at or time.perf_counter())
        self._write()
        if self._answered:
            self._release(self._answered)
            self._answered = 0
        if close is not None and self.transport is not None:
            _events(logging.WARNING, "closing the M3UA connection with %s: %s", self.peer, close)
            self.transport.close()
        self._arm_timer()

    def _handle(self, events: list[Event], received_at: float) -> str | None:
        close = None
        for event in events:
            if isinstance(event, DataReceived):
                self._on_data(event, received_at)
            elif isinstance(event, BadMessage):
                self.bad(f"m3ua.{event.code:#04x}", f"M3UA ERR {event.code:#04x} for {event.message}: {event.reason}",
                         self.peer)
            elif isinstance(event, CloseConnection):
                close = event.reason
            elif isinstance(event, DataDiscarded):
                self._discarded(event.count, event.reason)
            else:
                self._on_state(event)
        return close

    def _write(self) -> None:
        data = self.endpoint.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def _release(self, count: int) -> None:
        self.in_progress -= count
        if self.admission is not None:
            self.admission.in_progress -= count

    def _on_data(self, event: DataReceived, received_at: float) -> None:
        refusal = self._screen(event)
        if refusal is not None:
            self.endpoint.send_message(refusal)
            return
        self.in_progress += 1
        admission = self.admission
        if admission is not None:
            admission.in_progress += 1
        busy = admission is not None and admission.full(self)
        reply = self.router.route(event.data, event.routing_context, self.peer, received_at, busy)
        if isinstance(reply, asyncio.Future):
            reply.add_done_callback(lambda done: self._reply_later(event, done))
            return
        self._answered += 1
        self._send(event, reply)

    def _reply_later(self, event: DataReceived, done: asyncio.Future[Reply | None]) -> None:
        """The reply to a DATA whose answer waited for a commit."""
        self._release(1)
        if done.cancelled() or self.transport is None:
            return
        if done.exception() is not None:
            log.error("the answer to a DATA from %s failed: %r", self.peer, done.exception())
            return
        self._send(event, done.result())
        if not self._write_due:  # one write for the replies a commit resolved together
            self._write_due = True
            self.loop.call_soon(self._write_later)

    def _write_later(self) -> None:
        self._write_due = False
        self._write()

    def _send(self, event: DataReceived, reply: Reply | None) -> None:
        if reply is None:
            return
        if reply.data is not None:
            if not self.endpoint.send_data(reply.data, event.routing_context):
                self._discarded(1, f"the ASP is {self.endpoint.state.value}")
        elif reply.message is not None:
            self.endpoint.send_message(reply.message)

    def _screen(self, event: DataReceived) -> Message | None:
        """The ERR for DATA the allow-list does not admit from this peer; None: admitted."""
        data, rc = event.data, event.routing_context
        if self.admitted is None or any(peer.admits(data.opc, rc) for peer in self.admitted):
            return None
        wire = _data_message(data, rc)
        if not any(peer.point_codes is None or data.opc in peer.point_codes for peer in self.admitted):
            self.bad("m3ua.refused_point_code", f"OPC {data.opc} is not allowed from this address: ERR 0x0d", self.peer)
            return error_message(ErrorCode.REFUSED_MANAGEMENT_BLOCKING, wire)
        if rc is None:
            self.bad("m3ua.refused_routing_context", "DATA names no routing context, this peer must: ERR 0x16",
                     self.peer)
            return error_message(ErrorCode.MISSING_PARAMETER, wire)
        self.bad("m3ua.refused_routing_context", f"routing context {rc} is not allowed from this address: ERR 0x19",
                 self.peer)
        return error_message(ErrorCode.INVALID_ROUTING_CONTEXT, wire, (Parameter(Tag.ROUTING_CONTEXT, u32(rc)),))

    def _discarded(self, count: int, reason: str) -> None:
        """Answers the ASP left before they could be sent (RFC 4666 4.3.2): counted, logged."""
        self.counters["m3ua_answers_discarded"] += count
        self.bad("m3ua.answer_discarded", f"{count} answer(s) discarded: {reason}", self.peer)

    def _on_state(self, event: Event) -> None:
        if isinstance(event, AspActive):
            _events(logging.INFO, "ASP %s active (traffic mode %s, routing contexts %s)", self.peer,
                    event.traffic_mode, list(event.routing_contexts) or "none")
            if not self.active.done():
                self.active.set_result(None)
        elif isinstance(event, AspUp | AspInactive | AspDown):
            _events(logging.INFO, "ASP %s: %s", self.peer, type(event).__name__)
        elif isinstance(event, ErrorReceived):
            self.counters["m3ua_err_received"] += 1
            _events(logging.WARNING, "M3UA ERR %#04x from %s", event.code, self.peer)
        elif isinstance(event, NotifyReceived):
            _events(logging.INFO, "NTFY from %s: type %d info %d", self.peer, event.status_type, event.status_info)

    def _arm_timer(self) -> None:
        deadline = self.endpoint.next_deadline()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None and self.transport is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch(self.endpoint.handle_timer(self.loop.time()))


def _sockets(server: asyncio.AbstractServer) -> tuple[socket.socket, ...]:
    return tuple(getattr(server, "sockets", ()))


class M3uaService:
    """Every M3UA listener and gateway link of one agent."""

    def __init__(self, config: M3uaConfig, answerer: MapAnswerer, admission: Admission | None = None,
                 max_message_length: int = 65536, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.config = config
        self.router = SccpRouter(answerer, config.point_code, config.global_title)
        self.connect_timeout = connect_timeout
        self.admission = admission
        self.max_message_length = max_message_length
        self.counters: Counter[str] = Counter()
        self.bad = BadInput(log, self.counters)  # M3UA trouble of every connection
        self.servers: list[asyncio.AbstractServer] = []
        self.connections: set[M3uaConnection] = set()
        self._links: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [s.getsockname()[:2] for server in self.servers for s in _sockets(server)]

    async def start(self) -> None:
        throttle_accept_errors(asyncio.get_running_loop())
        if any(link.listen.transport == "sctp" for link in self.config.connect):
            check_sctp()  # at start-up, in one line, not in the link's retries
        for listen in self.config.listen:
            self.servers.append(await self._listen(listen))
        for link in self.config.connect:
            self._links.append(asyncio.create_task(self._keep_linked(link)))

    async def close(self, timeout: float = 2.0) -> None:
        self._stopping = True
        for server in self.servers:
            server.close()
        for task in self._links:
            task.cancel()
        for connection in list(self.connections):
            connection.leave()
        pending = [c.closed for c in self.connections if not c.closed.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        for connection in list(self.connections):
            connection.abort()
        for server in self.servers:
            await server.wait_closed()

    def _track(self, connection: M3uaConnection) -> M3uaConnection:
        self.connections.add(connection)
        connection.closed.add_done_callback(lambda _: self.connections.discard(connection))
        return connection

    def _server_endpoint(self) -> AspServer:
        point_codes = frozenset({self.config.point_code}) if self.config.point_code is not None else frozenset()
        return AspServer(ServerSettings(routing_contexts=self.config.routing_contexts, point_codes=point_codes,
                                        max_message_length=self.max_message_length,
                                        activation_timeout=self.config.activation_timeout))

    async def _listen(self, listen: Listen) -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        sctp = listen.transport == "sctp"

        def connection() -> M3uaConnection:
            return self._track(M3uaConnection(self._server_endpoint(), self.router, self.bad,
                                              self.admission, sctp, self.config.peers_at))

        factory: Callable[[], M3uaConnection | Refused] = capped(
            connection, self.config.max_connections, f"M3UA listener {listen}", self.counters,
            "m3ua_refused_over_cap", _cap_log)
        if not sctp:
            return await loop.create_server(factory, listen.host, listen.port, reuse_address=True)
        return await sctp_listen(factory, listen.host, listen.port, M3UA)

    async def _keep_linked(self, link: GatewayLink) -> None:
        """Join the gateway as an ASP, and again whenever the connection is lost."""
        failures = 0
        while not self._stopping:
            try:
                connection = await self._connect(link)
                failures = 0
                # shielded: cancelling this task on close() must not cancel ``closed``, which
                # close() waits on for the ASPDN-ACK before aborting
                await asyncio.shield(connection.closed)
            except (OSError, ConnectionError) as error:
                log.warning("M3UA gateway %s: %s", link.listen, error)
            delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
            failures += 1
            await asyncio.sleep(delay)

    async def _connect(self, link: GatewayLink) -> M3uaConnection:
        loop = asyncio.get_running_loop()
        settings = ClientSettings(asp_identifier=link.asp_identifier, traffic_mode=self.config.traffic_mode,
                                  routing_contexts=(link.routing_context,) if link.routing_context is not None else (),
                                  max_message_length=self.max_message_length)
        sctp = link.listen.transport == "sctp"

        def factory() -> M3uaConnection:
            return self._track(M3uaConnection(AspClient(settings), self.router, self.bad, self.admission, sctp))

        connection: Any
        opening = (sctp_connect(factory, link.listen.host, link.listen.port, M3UA) if sctp
                   else loop.create_connection(factory, link.listen.host, link.listen.port))
        try:
            _, connection = await asyncio.wait_for(opening, self.connect_timeout)
        except TimeoutError:
            raise TimeoutError(f"no connection within {self.connect_timeout:g} s") from None
        await connection.active
        log.info("joined M3UA gateway %s as an ASP", link.listen)
        return connection
