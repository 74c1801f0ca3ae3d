"""The M3UA link over asyncio: one transport connection (TCP, or kernel SCTP through
``netio.sctp``) driving one sans-I/O ASP (``sigtran.asp``: ``AspServer`` for an ASP that
connected to us, ``AspClient`` when we join a signalling gateway or play an MSC). The only
module of ``sigtran`` that touches the event loop.

``M3uaLink`` feeds the ASP the octets it reads and writes what the ASP has to send once a
read is handled; runs the ASP's timers (T(ack), T(r), the activation timer) on the loop's
clock; closes the connection when the ASP says so; over SCTP, sends M3UA with PPID 3 and
DATA off stream 0 (``sigtran.m3ua_streams``) and answers DATA received on stream 0 with
ERR Invalid Stream Identifier (RFC 4666 3.8.1), not reading it. As an answering end
(``pauses_reading``) it stops reading while its answers wait above the write buffer's
high-water mark (``netio.flow.ReadPausing``).

Given an ``SccpRouter`` (``sigtran.routing``), each DATA goes to it and what it says goes
back; the DATA is in progress until then (``netio.flow.InProgress``: ``load`` counts those
of every connection and says when one is past a bound, which the answering function then
refuses). An answer that waits for a commit is written once it comes, with the others that
came in the same turn of the loop. An answer whose ASP left ASP-ACTIVE before it was ready
(DATA and ASPIA in one read, or a commit that took a while) is queued by the ASP while the
AS is AS-PENDING and sent if the ASP is active again within T(r), else discarded (RFC 4666
4.3.2): counted as ``m3ua_answers_discarded`` and reported, the association kept.

Subclasses add what their application wants through small hooks: ``screen_peer`` (who may
connect), ``screen`` (whose DATA is refused), ``on_event`` (state changes, NTFY, ERR),
``closing``, or take every event themselves (``handle_events``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

from netio.bad_input import BadInput
from netio.flow import InProgress, Load
from netio.logs import Throttled
from netio.sctp import MessageProtocol, Received
from sigtran.asp import (
    AspActive,
    AspClient,
    AspServer,
    BadMessage,
    CloseConnection,
    DataDiscarded,
    DataReceived,
    Event,
)
from sigtran.m3ua import ErrorCode, Message, ProtocolData, error_message
from sigtran.m3ua_streams import m3ua_transfer
from sigtran.routing import Reply, Report, SccpRouter, Waiting

log = logging.getLogger("sigtran.link")


class M3uaLink(MessageProtocol, InProgress):
    """One transport connection driving one ASP state machine (see the module's docstring).
    ``report``: told of each piece of bad input (kind, reason, peer); by default counted
    as ``bad_input.KIND`` in ``counters``."""

    paused_counter = "m3ua_connections_paused"
    paused_log = Throttled(log)
    pauses_reading = True  # not read while answers wait to be written; False for a client that must read on

    def __init__(self, asp: AspServer | AspClient, router: SccpRouter | None = None, *,
                 counters: Counter[str] | None = None, report: Report | None = None,
                 load: Load | None = None) -> None:
        self.asp = asp
        self.router = router
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self.report: Report = report or BadInput(log, self.counters, limit=0)  # counted only
        self.load = load
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.activated: asyncio.Future[None] = self.loop.create_future()
        self._timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.pauses_reading:
            self.limit_writes(transport)
        peername = transport.get_extra_info("peername")
        self.peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        if self.screen_peer(peername):
            self.open_asp()

    def open_asp(self) -> None:
        """The connection is accepted: the ASP starts (ASPUP when we are the ASP)."""
        self._check_streams(self.transport.get_extra_info("sctp_streams") if self.transport else None)
        self.connected()
        if isinstance(self.asp, AspClient):
            self._dispatch(self.asp.connection_made(self.loop.time()))
        else:
            self.asp.connection_made(self.loop.time())
            self._arm_timer()

    def data_received(self, data: bytes) -> None:
        self.receive(data)

    def message_received(self, data: bytes, received: Received) -> None:
        """One SCTP message: DATA on stream 0 is refused with ERR (RFC 4666 3.8.1), not read."""
        if received.stream == 0 and received.starts and m3ua_transfer(data):
            self.asp.send_message(error_message(ErrorCode.INVALID_STREAM_IDENTIFIER, data))
            self._dispatch([BadMessage(ErrorCode.INVALID_STREAM_IDENTIFIER, "DATA on SCTP stream 0", "DATA")])
            return
        self.data_received(data)

    def pause_writing(self) -> None:
        if self.pauses_reading:
            super().pause_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.stop_timer()
        self.handle_events(self.asp.connection_lost(), time.perf_counter())
        self.disconnected(exc)
        if not self.activated.done():
            self.activated.set_exception(ConnectionError(
                f"M3UA connection with {self.peer} closed before ASP-ACTIVE"))
            self.activated.exception()  # retrieved: whoever waits for it reports it
        if not self.closed.done():
            self.closed.set_result(None)

    # --- API ------------------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Octets read from the connection, for the ASP."""
        received_at = time.perf_counter()
        self._dispatch(self.asp.receive_data(data, self.loop.time()), received_at)

    def send(self, data: ProtocolData, routing_context: int | None) -> bool:
        """Send a DATA now; False when the ASP dropped it (not active)."""
        sent = self.asp.send_data(data, routing_context)
        self.write_pending()
        return sent

    def leave(self) -> None:
        """ASPDN when we are the ASP (the connection closes on ASPDN-ACK); else close."""
        if isinstance(self.asp, AspClient):
            self._dispatch(self.asp.close(self.loop.time()))
        elif self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def write_pending(self) -> None:
        data = self.asp.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- hooks ----------------------------------------------------------------------------------

    def screen_peer(self, peername: Any) -> bool:
        """Whether the peer at ``peername`` may stay; a subclass closes the connection if not."""
        return True

    def connected(self) -> None:
        """The connection is accepted and its ASP about to start."""

    def screen(self, event: DataReceived) -> Message | None:
        """The M3UA message refusing this DATA (an ERR), None to route it."""
        return None

    def on_event(self, event: Event) -> None:
        """A state change, NTFY, ERR or SSNM of the ASP."""

    def closing(self, reason: str) -> None:
        """The ASP wants the connection closed; it is, once what it has to send is written."""

    def disconnected(self, exc: Exception | None) -> None:
        """The connection is gone."""

    def handle_events(self, events: list[Event], received_at: float) -> str | None:
        """Act on the ASP's events; the reason to close the connection, if one says so."""
        close = None
        for event in events:
            if isinstance(event, DataReceived) and self.router is not None:
                self._on_data(event, received_at)
            elif isinstance(event, BadMessage):
                self.report(f"m3ua.{event.code:#04x}", f"M3UA ERR {event.code:#04x} for {event.message}: "
                            f"{event.reason}", self.peer)
            elif isinstance(event, CloseConnection):
                close = event.reason
            elif isinstance(event, DataDiscarded):
                self.discarded(event.count, event.reason)
            else:
                self.on_event(event)
                if isinstance(event, AspActive) and not self.activated.done():
                    self.activated.set_result(None)
        return close

    def discarded(self, count: int, reason: str) -> None:
        """Answers the ASP left before they could be sent (RFC 4666 4.3.2): counted, reported."""
        self.counters["m3ua_answers_discarded"] += count
        self.report("m3ua.answer_discarded", f"{count} answer(s) discarded: {reason}", self.peer)

    # --- internals ------------------------------------------------------------------------------


    def _check_streams(self, streams: tuple[int, int] | None) -> None:
        if streams is not None and streams[1] < 2:
            log.warning("SCTP association with %s grants %d outbound stream(s): DATA must go on stream 0",
                        self.peer, streams[1])

    def _dispatch(self, events: list[Event], received_at: float | None = None) -> None:
        close = self.handle_events(events, received_at or time.perf_counter())
        self.write_pending()
        self.settle()
        if close is not None and self.transport is not None:
            self.closing(close)
            self.transport.close()
        self._arm_timer()

    def _on_data(self, event: DataReceived, received_at: float) -> None:
        assert self.router is not None
        refusal = self.screen(event)
        if refusal is not None:
            self.asp.send_message(refusal)
            return
        busy = self.admit()
        reply = self.router.route(event.data, event.routing_context, self.peer, received_at, busy)
        if isinstance(reply, Waiting):
            reply.answer.add_done_callback(lambda done: self._reply_later(event, reply, done))
            return
        self.answered()
        self._send_reply(event, reply)

    def _reply_later(self, event: DataReceived, waiting: Waiting, done: asyncio.Future[bytes | None]) -> None:
        """The reply to a DATA whose answer waited for a commit."""
        self.release(1)
        if done.cancelled() or self.transport is None:
            return
        try:
            reply = waiting.finish(done.result())
        except Exception as error:  # the answer failed (a bug): logged, the request released
            log.error("the answer to a DATA from %s failed: %r", self.peer, error)
            return
        self._send_reply(event, reply)
        self.write_soon()  # one write for the replies a commit resolved together

    def _send_reply(self, event: DataReceived, reply: Reply | None) -> None:
        if reply is None:
            return
        if reply.data is not None:
            if not self.asp.send_data(reply.data, event.routing_context):
                self.discarded(1, f"the ASP is {self.asp.state.value}")
        elif reply.message is not None:
            self.asp.send_message(reply.message)

    def _arm_timer(self) -> None:
        self.stop_timer()
        deadline = self.asp.next_deadline()
        if deadline is not None and self.transport is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch(self.asp.handle_timer(self.loop.time()))
