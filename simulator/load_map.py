"""MAP load generator: keeps N CheckIMEI dialogues in flight on C M3UA connections.

The S13 generator's approach (simulator.load), over M3UA/TCP as an ASP:
- every IMEI has its whole M3UA DATA (MTP3 label, SCCP UDT, TCAP Begin, CheckIMEI) encoded
  once by the same functions as ``eir sim checkimei`` (simulator.msc); every length in it
  is fixed, so sending a request is copying it and writing the 4-octet TCAP otid in place;
- the requests that refill the window leave in one write per half window;
- answers are read lightly (simulator.load_map_wire): the M3UA header, the Protocol Data
  parameter, the SCCP data pointer, the TCAP dtid, and a memo of what the octets after the
  dtid say (the answers of one run differ only in their dtid); anything else goes through
  the full decoders;
- latency is measured per request from the moment its write is issued to the moment the
  bytes of its answer arrive, into the same 1-microsecond histogram.

Each connection is an M3UA link (``sigtran.link.M3uaLink``) with a request window
(``simulator.load_common.RequestWindow``): the ASP handshake (ASPUP, ASPAC), ASPDN at the
end, and whatever else the peer sends (NTFY, ERR, BEAT) go through its
``sigtran.asp.AspClient``, its timers and its writes: they are rare.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sigtran.asp import (
    AspActive,
    AspClient,
    AspDown,
    BadMessage,
    CloseConnection,
    DataReceived,
    ErrorReceived,
    Event,
    MessageReceived,
)
from sigtran.link import M3uaLink
from sigtran.m3ua import DEFAULT_MAX_MESSAGE_LENGTH
from sigtran.map import EquipmentStatus
from simulator.load_common import (
    LinkState,
    LoadFailed,
    LoadStats,
    RequestWindow,
    RunShape,
    build_report,
    check_spread,
    connect_link,
    drive,
    run_processes,
)
from simulator.load_map_wire import RETURNED, UNDECODABLE, UNEXPECTED, AnswerReader, MapTemplates, Outcome
from simulator.load_wire import HISTOGRAM_US
from simulator.msc import MscIdentity, err_text

if TYPE_CHECKING:
    from netio.capture import Capture

ERROR_KINDS = ("timeouts", "connection_losses", "lost_in_flight", "unmatched_answers", "bad_answers",
               "returned", "m3ua_errors", "unexpected_messages", "peer_down")

_DATA_HEADER = 0x01000101  # version 1, reserved, class 1 (transfer), type 1 (DATA)
_FRAME = struct.Struct(">II")
_U32 = struct.Struct(">I")
_MASK = 0xFFFFFFFF
_NOT_ANSWERS = {RETURNED: "returned", UNDECODABLE: "bad_answers", UNEXPECTED: "unexpected_messages"}


@dataclass
class MapLoadConfig:
    host: str
    port: int
    imeis: list[str]
    connections: int = 1
    inflight: int = 64
    duration: float = 10.0
    timeout: float = 5.0
    version: int = 3
    imsi_prefix: str | None = None  # the vendor variant's IMSI, v1/v2 only
    identity: MscIdentity = field(default_factory=MscIdentity)
    processes: int = 1
    connect_timeout: float = 5.0
    pcap: Path | None = None  # every connection recorded there (simulator.captures)


def report(stats: LoadStats, config: MapLoadConfig) -> dict[str, Any]:
    """The JSON object of ``eir sim load --protocol map --json``."""
    by_status: Counter[str] = Counter()
    by_result: Counter[str] = Counter()
    for (result, status), count in stats.outcomes.items():
        by_status["NONE" if status is None else _status_name(status)] += count
        by_result[result] += count
    breakdown = {"protocol": "map", "ac_version": config.version, "by_status": dict(by_status.most_common()),
                 "by_result": dict(by_result.most_common())}
    shape = RunShape(f"{config.host}:{config.port}", config.connections, config.inflight, config.processes,
                     len(config.imeis))
    return build_report(stats, shape, breakdown, ERROR_KINDS)


def _status_name(value: int) -> str:
    try:
        return EquipmentStatus(value).name
    except ValueError:
        return f"UNKNOWN({value})"


# --- one connection ------------------------------------------------------------------------

class MapLoadConnection(M3uaLink, RequestWindow):
    """One M3UA connection of the generator: ASPUP/ASPAC, N dialogues in flight, ASPDN."""

    pauses_reading = False  # the generator reads on: it waits for its answers

    def __init__(self, config: MapLoadConfig, stats: LoadStats, templates: MapTemplates, number: int) -> None:
        M3uaLink.__init__(self, AspClient(config.identity.settings()))
        RequestWindow.__init__(self, stats, config.inflight, config.timeout)
        self.config = config
        self.templates = templates
        self.refusal: str | None = None  # why the handshake failed
        self.reader = AnswerReader(config.version)
        self._buffer = b""
        self._otid = random.Random().getrandbits(31)
        self._imei = (number * 7919) % len(templates.requests)  # connections start apart in the list

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.state = LinkState.HANDSHAKE
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state in (LinkState.OPEN, LinkState.HANDSHAKE):
            self.stats.errors["connection_losses"] += 1
        self.asp.connection_lost()
        self.stop_timer()
        self._lost()

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        if self._buffer:
            data = self._buffer + data
        end = len(data)
        offset = 0
        pending = self.pending
        stats = self.stats
        outcomes = stats.outcomes
        histogram = stats.histogram
        unpack = _FRAME.unpack_from
        read = self.reader.read
        low_water = self._low_water if self.running else -1
        is_open = self.state == LinkState.OPEN
        answers = 0
        while end - offset >= 8:
            first, length = unpack(data, offset)
            if first >> 24 != 1 or length < 8 or length & 3 or length > DEFAULT_MAX_MESSAGE_LENGTH:
                self._framing_error()
                return
            if offset + length > end:
                break
            if first == _DATA_HEADER and is_open:
                dtid, outcome = read(data, offset, offset + length)
                sent = pending.pop(dtid, None) if dtid is not None else None
                if sent is None or outcome is RETURNED or outcome is UNDECODABLE or outcome is UNEXPECTED:
                    self._not_an_answer(outcome)
                else:
                    answers += 1
                    us = (now - sent) // 1000
                    if us < HISTOGRAM_US:
                        histogram[us] += 1
                    else:
                        stats.slow_us.append(us)
                    outcomes[outcome] += 1
                    if len(pending) <= low_water:  # refill now: the peer works while we read on
                        self._refill(now)
            else:
                self.receive(data[offset:offset + length])
            offset += length
        self._buffer = data[offset:] if offset < end else b""
        stats.answers += answers
        if answers:
            stats.finished_ns = now
        self._refill(now)

    def _not_an_answer(self, outcome: Outcome) -> None:
        """A DATA that answers nothing we wait for, or says our request did not get through
        (its dialogue, if we knew it, is no longer pending)."""
        self.stats.errors[_NOT_ANSWERS.get(outcome, "unmatched_answers")] += 1

    def _framing_error(self) -> None:
        self.stats.errors["bad_answers"] += 1
        self._buffer = b""
        if self.transport is not None:
            self.transport.abort()

    # --- requests --------------------------------------------------------------------------

    def _send(self, count: int) -> None:
        """Queue ``count`` CheckIMEI dialogues in one write; the hot path of the generator."""
        transport = self.transport
        if transport is None or self.state != LinkState.OPEN:
            return
        requests = self.templates.requests
        offsets = self.templates.otid_at
        n_requests = len(requests)
        pack = _U32.pack_into
        if self._otid + count > _MASK:
            self._otid = 0
        first = otid = self._otid
        index = self._imei
        out = bytearray()
        for _ in range(count):
            otid += 1
            base = len(out)
            out += requests[index]
            pack(out, base + offsets[index], otid)
            index += 1
            if index == n_requests:
                index = 0
        self._otid, self._imei = otid, index
        transport.write(out)
        self.pending.update(dict.fromkeys(range(first + 1, otid + 1), time.perf_counter_ns()))
        self.stats.sent += count

    # --- everything but answers: the ASP state machine of the link ---------------------------

    def handle_events(self, events: list[Event], received_at: float) -> str | None:
        close = None
        for event in events:
            close = self._event(event) or close
        return close

    def _event(self, event: Event) -> str | None:
        """Counts and state; the reason to close the connection, if the event gives one."""
        if isinstance(event, AspActive) and self.state == LinkState.HANDSHAKE:
            self.state = LinkState.OPEN
            if not self.opened.done():
                self.opened.set_result(None)
        elif isinstance(event, ErrorReceived):
            if self.state == LinkState.HANDSHAKE:
                self.refusal = err_text(event.code)
                return self.refusal
            self.stats.errors["m3ua_errors"] += 1
        elif isinstance(event, AspDown) and self.state == LinkState.OPEN:  # the gateway took us down
            self.stats.errors["peer_down"] += 1
            self.state = LinkState.DOWN
            self.stop()
        elif isinstance(event, CloseConnection):
            self.refusal = self.refusal or event.reason
            return event.reason
        elif isinstance(event, BadMessage):
            self.stats.errors["bad_answers"] += 1
        elif isinstance(event, DataReceived | MessageReceived):
            self.stats.errors["unexpected_messages"] += 1
        return None

    async def disconnect(self, timeout: float = 2.0) -> None:
        """ASPDN, then wait for the ASPDN-ACK (or the peer's close) for at most ``timeout``."""
        if self.transport is None:
            return
        if self.state not in (LinkState.OPEN, LinkState.DOWN):
            self.transport.close()
            return
        self.state = LinkState.CLOSING
        self.leave()
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()


# --- running ---------------------------------------------------------------------------------

async def _open(config: MapLoadConfig, stats: LoadStats, templates: MapTemplates, number: int,
                capture: Capture | None = None) -> MapLoadConnection:
    connection = await connect_link(lambda: MapLoadConnection(config, stats, templates, number), config.host,
                                    config.port, config.connect_timeout, "ASP handshake", capture)
    peer = f"{config.host}:{config.port}"
    if connection.state != LinkState.OPEN:
        raise LoadFailed(f"{peer} refused the ASP handshake: {connection.refusal or 'closed the connection'}")
    return connection


async def run_worker(config: MapLoadConfig, templates: MapTemplates, numbers: Sequence[int],
                     ready: Any = None, capture: Capture | None = None) -> LoadStats:
    """Open the connections ``numbers``, run the load for the configured duration, drain, ASPDN."""
    async def open_link(stats: LoadStats, number: int) -> MapLoadConnection:
        return await _open(config, stats, templates, number, capture)
    return await drive(open_link, numbers, config.duration, config.timeout, ready)


def run_map_load(config: MapLoadConfig) -> dict[str, Any]:
    """Run the whole MAP load, forking ``config.processes`` workers when above 1; the report.

    The requests are pre-encoded once, before the fork: the workers share them."""
    check_spread(config.connections, config.processes)
    templates = MapTemplates(config.identity, config.imeis, config.version, config.imsi_prefix)

    async def worker(numbers: Sequence[int], ready: Any, capture: Capture | None) -> LoadStats:
        return await run_worker(config, templates, numbers, ready, capture)
    return report(run_processes(worker, config.connections, config.processes, config.connect_timeout,
                                        config.pcap), config)
