"""The one place in ``diameter`` that touches sockets: asyncio over TCP or kernel SCTP.

It moves bytes between a socket and a sans-I/O ``Peer``, runs the Peer's timers on the
event loop clock, hands clean application requests to a handler, and resolves the
futures of requests we sent. Sockets come from ``netio`` (no SIGTRAN here): SCTP uses the
kernel through ``netio.sctp`` (one-to-one sockets, one Diameter message per SCTP message,
PPID 46, stream 0); where the kernel has no SCTP, ``SctpUnavailable`` says so at start-up
and nothing falls back to TCP. Requests in progress and the answers that come later are
counted and written as ``netio.flow.InProgress`` does for every connection: past a bound
of ``load`` a request is marked ``busy`` before the handler sees it (agent/admission.py).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from diameter.capabilities import LocalNode, PeerInfo
from diameter.constants import DisconnectCause
from diameter.duplicates import DuplicateCache
from diameter.framing import split_messages
from diameter.message import Message
from diameter.peer import Peer, PeerSettings, PeerState, Role
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
from diameter.watchdog import WatchdogState
from netio import sctp, transports
from netio.accepting import capped, throttle_accept_errors
from netio.bad_input import BadInput
from netio.flow import InProgress, Load, ReadPausing
from netio.logs import PerSecond, Throttled

if TYPE_CHECKING:
    from netio.capture import Capture

log = logging.getLogger("diameter.transport")
_events = PerSecond(log)  # connections opened and closed, DPRs, watchdog changes of every peer

DIAMETER_PORT = 3868
SCTP_PPID_DIAMETER = 46

RequestHandler = Callable[[Message, "PeerConnection"], "Message | Awaitable[Message] | None"]


class CapabilitiesRefused(ConnectionError):
    """The peer closed the connection during capabilities exchange; ``result_code`` is
    the CEA's Result-Code when it sent one (3010 unknown peer, 5010 no common application)."""

    def __init__(self, result_code: int | None, message: str) -> None:
        super().__init__(message)
        self.result_code = result_code


def diameter_split(data: bytes, outbound: int) -> list[tuple[bytes, int]]:
    """Each Diameter message its own SCTP message, all on stream 0 (RFC 6733 leaves the stream
    to us; one stream keeps requests and answers in the order they were written)."""
    return [(message, 0) for message in split_messages(data)]


SCTP_DIAMETER = sctp.Payload(SCTP_PPID_DIAMETER, diameter_split)


class PeerConnection(ReadPausing, InProgress):
    """One transport connection driving one sans-I/O Peer. As the responder, not read while
    its answers wait above the write buffer's high-water mark (``netio.flow.ReadPausing``).
    The initiator always reads: it waits for answers, and stopping would stall both sides."""

    paused_log = Throttled(log)

    def __init__(self, peer: Peer, handler: RequestHandler | None = None,
                 counters: Counter[str] | None = None,
                 load: Load | None = None,
                 on_bad: Callable[[PeerConnection, BadMessage], object] | None = None,
                 bad: BadInput | None = None) -> None:
        self.peer = peer
        self.handler = handler
        # Every bad message is reported (``bad``: counted as ``bad_input.diameter_CODE``, a
        # rate-limited line), then told to ``on_bad`` (the agent writes its answer-log line).
        self.on_bad = on_bad
        # Requests handed to the handler and not answered yet (``InProgress``): those of the
        # read being handled, and those whose answer the handler gives later (an awaitable).
        # ``load`` counts those of every connection; past a bound ``busy`` says so to the
        # handler, which refuses the request.
        self.load = load
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self.bad = bad or BadInput(log, self.counters)
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[PeerInfo] = self.loop.create_future()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self._waiting: dict[int, asyncio.Future[Message]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.peername: Any = None
        self.received_at = 0.0
        self.disconnect_cause: int | None = None  # the Disconnect-Cause of a DPR the peer sent

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peername = transport.get_extra_info("peername")
        if self.peer.role is Role.RESPONDER:
            self.limit_writes(transport)
        self.peer.remote_address = self.peername
        self._dispatch(self.peer.connection_made(self.loop.time()))

    def pause_writing(self) -> None:
        if self.peer.role is Role.RESPONDER:
            super().pause_writing()

    def data_received(self, data: bytes) -> None:
        self.received_at = time.perf_counter()  # for the latency an application logs
        self._dispatch(self.peer.receive_data(data, self.loop.time()))

    def connection_lost(self, exc: Exception | None) -> None:
        events = self.peer.connection_lost(self.loop.time())
        self.transport = None
        if self._timer is not None:
            self._timer.cancel()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("connection lost before the answer"))
        self._waiting.clear()
        if not self.opened.done():
            code = self.peer.cea_result
            detail = f"CEA Result-Code {code}" if code is not None else "no CEA"
            self.opened.set_exception(CapabilitiesRefused(
                code, f"connection closed before capabilities were exchanged ({detail})"))
            self.opened.exception()  # mark retrieved: a refused peer is reported, not a loop warning
        self._handle(events)
        if not self.closed.done():
            self.closed.set_result(None)

    # --- API ---------------------------------------------------------------------------

    async def request(self, message: Message, timeout: float | None = None) -> Message:
        """Send an application request and wait for its answer."""
        self.peer.send_request(message, self.loop.time())
        future: asyncio.Future[Message] = self.loop.create_future()
        self._waiting[message.hop_by_hop] = future
        self.write_pending()
        if timeout is None:
            return await future
        return await asyncio.wait_for(future, timeout)

    async def disconnect(self, cause: DisconnectCause = DisconnectCause.REBOOTING, timeout: float = 5.0) -> None:
        """DPR, wait for DPA and the close (RFC 6733 5.4)."""
        if self.transport is None:
            return
        self._dispatch(self.peer.disconnect(self.loop.time(), cause))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            self.abort()

    def run_timers(self, now: float | None = None) -> None:
        """Run the Peer's timers as if the clock read ``now`` (default: the loop's clock).
        Tests drive the watchdog over real sockets this way instead of sleeping."""
        self._dispatch(self.peer.handle_timer(self.loop.time() if now is None else now))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def remote(self) -> PeerInfo | None:
        return self.peer.remote

    def sender_of(self, event: BadMessage) -> str:
        """Who sent a bad message: its Origin-Host, else the peer's, else its address."""
        return event.origin_host or (self.remote.origin_host if self.remote else None) or str(self.peername)

    # --- internals ---------------------------------------------------------------------

    def _dispatch(self, events: list[Event]) -> None:
        self._handle(events)
        self.write_pending()
        self.settle()
        self._arm_timer()

    def write_pending(self) -> None:
        data = self.peer.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, RequestReceived):
                self._on_request(event.message)
            elif isinstance(event, AnswerReceived):
                self._resolve(event.request.hop_by_hop, event.message)
            elif isinstance(event, RequestTimedOut):
                self._fail(event.request.hop_by_hop, TimeoutError("no answer in time"))
            elif isinstance(event, CapabilitiesExchanged):
                self._on_open(event)
            else:
                self._on_other(event)

    def _on_open(self, event: CapabilitiesExchanged) -> None:
        self.counters["peers_opened"] += 1
        _events(logging.INFO, "peer %s (%s) open, applications %s", event.peer.origin_host, self.peername,
                sorted(event.applications))
        if not self.opened.done():
            self.opened.set_result(event.peer)

    def _on_other(self, event: Event) -> None:
        if isinstance(event, BadMessage):
            outcome = "answered" if event.answered else "not answered"
            self.bad(f"diameter_{event.result_code}",
                     f"{event.command}: {event.reason} (result {event.result_code}, {outcome})", self.sender_of(event))
            if self.on_bad is not None:
                self.on_bad(self, event)
        elif isinstance(event, CloseConnection):
            _events(logging.INFO, "closing connection to %s: %s", self.peername, event.reason)
            if self.transport is not None:
                self.write_pending()
                self.transport.close()
        elif isinstance(event, PeerDisconnecting):
            self.disconnect_cause = event.cause
            _events(logging.INFO, "peer %s sent DPR (cause %s)", self.peername, event.cause)
        elif isinstance(event, WatchdogChanged):
            self.counters[f"watchdog_{event.new.name.lower()}"] += 1
            level = logging.WARNING if event.new is WatchdogState.SUSPECT else logging.INFO
            _events(level, "watchdog of %s: %s -> %s", self.peername, event.old.name, event.new.name)
        elif isinstance(event, ReconnectWanted):
            log.debug("watchdog wants a reconnection to %s", self.peername)

    def _on_request(self, request: Message) -> None:
        if self.handler is None:
            log.warning("no handler for %s", request.name)
            return
        if request.is_retransmission:  # T flag, and not answered here before: another node's failover (6.1.9)
            self.counters["retransmitted_requests"] += 1
        self.admit()
        result = self.handler(request, self)
        if isinstance(result, Message):  # the common case first: inspect.isawaitable costs more
            self.peer.send_answer(request, result)
            self.answered()
        elif inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            task.add_done_callback(lambda t: self._answer_later(request, t))
        else:
            self.answered()

    def _answer_later(self, request: Message, task: asyncio.Future[Any]) -> None:
        self.release(1)
        if task.cancelled() or self.transport is None:
            return
        if task.exception() is not None:
            log.error("handler failed for %s: %r", request.name, task.exception())
            return
        answer = task.result()
        if answer is not None:
            self.peer.send_answer(request, answer)
            self.write_soon()

    def _resolve(self, hop_by_hop: int, answer: Message) -> None:
        future = self._waiting.pop(hop_by_hop, None)
        if future is not None and not future.done():
            future.set_result(answer)

    def _fail(self, hop_by_hop: int, exc: Exception) -> None:
        future = self._waiting.pop(hop_by_hop, None)
        if future is not None and not future.done():
            future.set_exception(exc)

    def _arm_timer(self) -> None:
        deadline = self.peer.next_deadline()
        if deadline is None or (self._timer_at is not None and self._timer_at <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self.peer.state is PeerState.CLOSED and self.transport is None:
            return
        self._dispatch(self.peer.handle_timer(self.loop.time()))


class DiameterServer:
    """Listening sockets and the connections they accepted (at most ``max_connections`` per
    listener when start_server is given it: past it, new ones are closed at once)."""

    cap_log = Throttled(log)

    def __init__(self, node: LocalNode) -> None:
        self.node = node
        self.servers: list[asyncio.AbstractServer] = []
        self.connections: set[PeerConnection] = set()
        self.counters: Counter[str] = Counter()
        self.bad = BadInput(log, self.counters)  # bad input of every connection: one rate limit
        self.duplicates = DuplicateCache(4096)
        self.on_bad: Callable[[PeerConnection, BadMessage], object] | None = None  # see PeerConnection

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [s.getsockname()[:2] for server in self.servers for s in getattr(server, "sockets", ())]

    async def close(self, cause: DisconnectCause = DisconnectCause.REBOOTING, timeout: float = 3.0) -> None:
        """Stop listening, send DPR to every open peer and wait for them to go."""
        for server in self.servers:
            server.close()
        open_ones = [c for c in self.connections if c.peer.state is PeerState.OPEN]
        if open_ones:
            await asyncio.gather(*(c.disconnect(cause, timeout) for c in open_ones), return_exceptions=True)
        for connection in list(self.connections):
            connection.abort()
        for server in self.servers:
            await server.wait_closed()


async def start_server(node: LocalNode, handler: RequestHandler | None, host: str = "127.0.0.1",
                       port: int = DIAMETER_PORT, *, transport: str = "tcp",
                       settings: Callable[[], PeerSettings] = PeerSettings,
                       server: DiameterServer | None = None,
                       load: Load | None = None,
                       max_connections: int | None = None, reuse_port: bool = False) -> DiameterServer:
    """Listen on host:port; each accepted connection gets a responder Peer (``load``: see
    PeerConnection). Past ``max_connections`` open on this listener, a new connection
    is closed at once (counted as ``refused_over_cap``); failed accepts are throttled
    (``netio.accepting.throttle_accept_errors``). ``reuse_port``: share the port with other
    processes (SO_REUSEPORT, ``netio.transports.listen``)."""
    server = server or DiameterServer(node)
    loop = asyncio.get_running_loop()
    throttle_accept_errors(loop)

    def make_connection() -> PeerConnection:
        peer = Peer(node, Role.RESPONDER, settings(), time.time(), server.duplicates)
        connection = PeerConnection(peer, handler, server.counters, load=load, on_bad=server.on_bad,
                                    bad=server.bad)
        server.connections.add(connection)
        connection.closed.add_done_callback(lambda _: server.connections.discard(connection))
        return connection

    factory = capped(make_connection, max_connections, f"Diameter listener {host}:{port} ({transport})",
                          server.counters, "refused_over_cap", server.cap_log)
    listener = await transports.listen(factory, host, port, transport, SCTP_DIAMETER, reuse_port=reuse_port)
    server.servers.append(listener)
    return server


async def connect(node: LocalNode, host: str, port: int = DIAMETER_PORT, *, transport: str = "tcp",
                  settings: PeerSettings | None = None, handler: RequestHandler | None = None,
                  peer: Peer | None = None, timeout: float = 10.0,
                  capture: Capture | None = None) -> PeerConnection:
    """Connect as initiator, exchange capabilities, and return the open connection.

    Pass the ``peer`` of a lost connection to reconnect: its pending requests are sent
    again with the T flag once the watchdog is back to OKAY. With a ``capture``, every
    octet of the connection is recorded there (``netio.capture``).
    """
    peer = peer or Peer(node, Role.INITIATOR, settings, time.time())
    _, connection = await transports.connect(lambda: PeerConnection(peer, handler), host, port, transport,
                                             SCTP_DIAMETER, capture)
    try:
        await asyncio.wait_for(asyncio.shield(connection.opened), timeout)
    except (TimeoutError, ConnectionError):
        connection.abort()
        raise
    return connection
