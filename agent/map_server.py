"""MAP CheckIMEI over M3UA: the agent's M3UA listeners and gateway links, on top of the
M3UA link (``sigtran.link``) and the SCCP router (``sigtran.routing``) of ``sigtran``.

What the agent adds to the link (``M3uaConnection``): the answering function is the MAP
answerer (agent/map.py) behind the SCCP router; each connection counts its DATA in
progress (agent/admission.py): past the bounds the MAP answerer aborts the dialogue at
once; an answer resting on a first sight is written once that is on disk
(agent/durable.py). Bad input is counted and logged by the one reporter
(netio/bad_input.py), peer events at most ten lines a second.

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
from collections import Counter
from collections.abc import Callable
from typing import Any

from agent.admission import Admission
from agent.config import GatewayLink, Listen, M3uaConfig, M3uaPeer
from agent.map import MapAnswerer
from netio import transports
from netio.accepting import Refused, capped, throttle_accept_errors
from netio.bad_input import BadInput
from netio.logs import PerSecond, Throttled
from netio.sctp import check_sctp
from sigtran.asp import (
    AspActive,
    AspClient,
    AspDown,
    AspInactive,
    AspServer,
    AspUp,
    ClientSettings,
    DataReceived,
    ErrorReceived,
    Event,
    NotifyReceived,
    ServerSettings,
)
from sigtran.link import M3uaLink
from sigtran.m3ua import ErrorCode, Message, Parameter, Tag, error_message, u32
from sigtran.m3ua_streams import M3UA
from sigtran.routing import SccpRouter, data_message

log = logging.getLogger("eir.m3ua")
RECONNECT_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds before each new attempt to reach a gateway
CONNECT_TIMEOUT = 5.0  # seconds for a gateway to accept the connection (a silent one would hold it minutes)


Allowed = Callable[[str | None], tuple[M3uaPeer, ...]]  # the allow-list entries for an address
_events = PerSecond(log)  # connections, ASP states, NTFY and ERR of every association
_refused_log = Throttled(log)  # connections from addresses not allowed
_cap_log = Throttled(log)  # connections past a listener's cap


class M3uaConnection(M3uaLink):
    """One M3UA link of the agent: its DATA answered by the MAP answerer through ``router``,
    screened by the allow-list (``allowed``; None: anyone, as for the gateways we connect
    to), counted in ``admission``; bad input reported to ``bad``, shared by the service's
    connections as its counters."""

    paused_log = Throttled(log)

    def __init__(self, endpoint: AspServer | AspClient, router: SccpRouter, bad: BadInput,
                 admission: Admission | None = None, sctp: bool = False,
                 allowed: Allowed | None = None) -> None:
        super().__init__(endpoint, router, counters=bad.counters, report=bad, load=admission)
        self.sctp = sctp  # over SCTP the link reads the association's streams itself
        self.allowed = allowed
        self.admitted: tuple[M3uaPeer, ...] | None = None  # the entries this peer's DATA is screened by

    def screen_peer(self, peername: Any) -> bool:
        """Not on the allow-list: closed at once, counted, logged (throttled)."""
        if self.allowed is None:
            return True
        self.admitted = self.allowed(peername[0] if isinstance(peername, tuple) else None)
        if self.admitted:
            return True
        self.counters["m3ua_refused_address"] += 1
        _refused_log("M3UA connection from %s refused: no m3ua.allow entry admits the address "
                     "(m3ua_refused_address: %d so far)", self.peer, self.counters["m3ua_refused_address"])
        self.asp.closed = True
        if self.transport is not None:
            self.transport.abort()
        return False

    def connected(self) -> None:
        _events(logging.INFO, "M3UA connection with %s", self.peer)

    def disconnected(self, exc: Exception | None) -> None:
        if self.admitted != ():
            _events(logging.INFO, "M3UA connection with %s closed%s", self.peer, f": {exc}" if exc else "")

    def closing(self, reason: str) -> None:
        _events(logging.WARNING, "closing the M3UA connection with %s: %s", self.peer, reason)

    def screen(self, event: DataReceived) -> Message | None:
        """The ERR for DATA the allow-list does not admit from this peer; None: admitted."""
        data, rc = event.data, event.routing_context
        if self.admitted is None or any(peer.admits(data.opc, rc) for peer in self.admitted):
            return None
        wire = data_message(data, rc)
        if not any(peer.point_codes is None or data.opc in peer.point_codes for peer in self.admitted):
            self.report("m3ua.refused_point_code", f"OPC {data.opc} is not allowed from this address: ERR 0x0d",
                        self.peer)
            return error_message(ErrorCode.REFUSED_MANAGEMENT_BLOCKING, wire)
        if rc is None:
            self.report("m3ua.refused_routing_context", "DATA names no routing context, this peer must: ERR 0x16",
                     self.peer)
            return error_message(ErrorCode.MISSING_PARAMETER, wire)
        self.report("m3ua.refused_routing_context", f"routing context {rc} is not allowed from this address: ERR 0x19",
                 self.peer)
        return error_message(ErrorCode.INVALID_ROUTING_CONTEXT, wire, (Parameter(Tag.ROUTING_CONTEXT, u32(rc)),))

    def on_event(self, event: Event) -> None:
        if isinstance(event, AspActive):
            _events(logging.INFO, "ASP %s active (traffic mode %s, routing contexts %s)", self.peer,
                    event.traffic_mode, list(event.routing_contexts) or "none")
        elif isinstance(event, AspUp | AspInactive | AspDown):
            _events(logging.INFO, "ASP %s: %s", self.peer, type(event).__name__)
        elif isinstance(event, ErrorReceived):
            self.counters["m3ua_err_received"] += 1
            _events(logging.WARNING, "M3UA ERR %#04x from %s", event.code, self.peer)
        elif isinstance(event, NotifyReceived):
            _events(logging.INFO, "NTFY from %s: type %d info %d", self.peer, event.status_type, event.status_info)


def _sockets(server: asyncio.AbstractServer) -> tuple[socket.socket, ...]:
    return tuple(getattr(server, "sockets", ()))


class M3uaService:
    """Every M3UA listener and gateway link of one agent."""

    def __init__(self, config: M3uaConfig, answerer: MapAnswerer, admission: Admission | None = None,
                 max_message_length: int = 65536, connect_timeout: float = CONNECT_TIMEOUT,
                 reuse_port: bool = False) -> None:
        self.config = config
        self.reuse_port = reuse_port  # listen with SO_REUSEPORT: other worker processes share the ports
        self.router = SccpRouter(answerer, config.point_code, config.global_title)
        self.router.report = BadInput(log, self.router.counters)  # SCCP trouble of every connection
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
        sctp = listen.transport == "sctp"

        def connection() -> M3uaConnection:
            return self._track(M3uaConnection(self._server_endpoint(), self.router, self.bad,
                                              self.admission, sctp, self.config.peers_at))

        factory: Callable[[], M3uaConnection | Refused] = capped(
            connection, self.config.max_connections, f"M3UA listener {listen}", self.counters,
            "m3ua_refused_over_cap", _cap_log)
        return await transports.listen(factory, listen.host, listen.port, listen.transport, M3UA,
                                       reuse_port=self.reuse_port)

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
        settings = ClientSettings(asp_identifier=link.asp_identifier, traffic_mode=self.config.traffic_mode,
                                  routing_contexts=(link.routing_context,) if link.routing_context is not None else (),
                                  max_message_length=self.max_message_length)
        sctp = link.listen.transport == "sctp"

        def factory() -> M3uaConnection:
            return self._track(M3uaConnection(AspClient(settings), self.router, self.bad, self.admission, sctp))

        opening = transports.connect(factory, link.listen.host, link.listen.port, link.listen.transport, M3UA)
        try:
            _, connection = await asyncio.wait_for(opening, self.connect_timeout)
        except TimeoutError:
            raise TimeoutError(f"no connection within {self.connect_timeout:g} s") from None
        await connection.activated
        log.info("joined M3UA gateway %s as an ASP", link.listen)
        return connection
