"""S13 load generator: keeps N ME-Identity-Check requests in flight on C connections.

Built to outrun the agent on one core, so the hot path never runs the codec:
- every IMEI has its ECR pre-encoded once (the codec encodes one request per IMEI
  length; the IMEI and IMSI digits are then put in place); sending a request is copying
  it and patching only the Hop-by-Hop and End-to-End ids and a fixed-width Session-Id
  counter, with struct.pack_into and a slice assignment;
- the requests that refill the window leave in one write per half window, so the
  peer has work while the answers of the last burst are still being read;
- answers are read lightly: frame length, Hop-by-Hop at offset 12, and the top-level AVP
  headers for Result-Code 268, Experimental-Result 297 (-> 298) and Equipment-Status 1445;
- latency is measured per request from the moment its write is issued to the moment the
  bytes of its answer arrive (time.perf_counter_ns), into a 1-microsecond histogram.

Capabilities exchange, the final DPR/DPA and any DWR the peer sends go through the
regular codec: they are rare. ``--processes K`` forks K workers that split the
connections and merge their counts (simulator.load_common runs both generators).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diameter.answers import answer_to, result_code_of
from diameter.capabilities import build_cer, common_applications, peer_info
from diameter.constants import (
    APP_COMMON,
    HEADER_LENGTH,
    Command,
    DisconnectCause,
    ResultCode,
)
from diameter.errors import FramingError
from diameter.framing import frame_ends
from diameter.message import Message, decode_message, make_message
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
from simulator.load_wire import (
    AVP_HEADER,
    CONNECTION_SPAN,
    COUNTER_WIDTH,
    ECA,
    HEADER,
    HISTOGRAM_US,
    IDS,
    MASK_32,
    R_BIT,
    SESSION_ID,
    AnswerScanner,
    EcrTemplates,
)
from simulator.mme import MmeIdentity, code_name, status_name

if TYPE_CHECKING:
    from netio.capture import Capture


def report(stats: LoadStats, config: LoadConfig) -> dict[str, Any]:
    """The JSON object of ``eir sim load --json``."""
    by_status: Counter[str] = Counter()
    by_code: Counter[str] = Counter()
    for (code, status), count in stats.outcomes.items():
        by_status["NONE" if status is None else status_name(status)] += count
        by_code["none" if code is None else str(code)] += count
    breakdown = {"by_status": dict(by_status.most_common()), "by_result_code": dict(by_code.most_common()),
                 "result_code_names": {code: code_name(int(code)) for code in by_code if code != "none"}}
    shape = RunShape(f"{config.host}:{config.port}", config.connections, config.inflight, config.processes,
                     len(config.imeis))
    return build_report(stats, shape, breakdown, ERROR_KINDS)


ERROR_KINDS = ("timeouts", "connection_losses", "lost_in_flight", "unmatched_answers", "bad_answers",
               "unexpected_messages", "peer_disconnects")


# --- one connection ------------------------------------------------------------------------

class LoadConnection(RequestWindow):
    """One Diameter connection of the generator: CER/CEA, N requests in flight, DPR."""

    def __init__(self, config: LoadConfig, stats: LoadStats, templates: EcrTemplates, number: int) -> None:
        super().__init__(stats, config.inflight, config.timeout)
        self.config = config
        self.templates = templates
        self.cea_result: int | None = None
        self._buffer = b""
        self._scan = AnswerScanner()
        rng = random.Random()
        self._hop = rng.getrandbits(31)
        self._e2e = ((int(time.time()) & 0xFFF) << 20) | rng.getrandbits(20)
        self._counter = number * CONNECTION_SPAN  # keeps every Session-Id of the run unique
        self._imei = (number * 7919) % len(templates.requests)  # connections start apart in the list
        node = config.identity.node()
        self._node = node
        self._cer = build_cer(node)
        self._cer.hop_by_hop = self._next_hop()
        self._cer.end_to_end = self._e2e

    def _next_hop(self) -> int:
        self._hop = (self._hop + 1) & MASK_32
        return self._hop

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.state = LinkState.WAIT_CEA
        transport.write(self._cer.to_bytes())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state in (LinkState.OPEN, LinkState.WAIT_CEA):
            self.stats.errors["connection_losses"] += 1
        self._lost()

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        if self._buffer:
            data = self._buffer + data
        ends, framing_error = frame_ends(data)
        offset = 0
        pending = self.pending
        stats = self.stats
        outcomes = stats.outcomes
        histogram = stats.histogram
        unpack = HEADER.unpack_from
        unpack_avp = AVP_HEADER.unpack_from
        memo = self._scan.memo
        low_water = self._low_water if self.running else -1
        answers = unmatched = 0
        for end in ends:
            _, flags_command, _, hop, _ = unpack(data, offset)
            if flags_command & 0xFFFFFF == ECA and not flags_command & R_BIT:
                sent = pending.pop(hop, None)
                if sent is None:
                    unmatched += 1
                else:
                    answers += 1
                    us = (now - sent) // 1000
                    if us < HISTOGRAM_US:
                        histogram[us] += 1
                    else:
                        stats.slow_us.append(us)
                    # AnswerScanner inlined: the memo, keyed by the octets after Session-Id
                    code, flags_length = unpack_avp(data, offset + HEADER_LENGTH)
                    body = offset + HEADER_LENGTH + (((flags_length & 0xFFFFFF) + 3) & ~3)
                    outcome = memo.get(data[body:end]) if code == SESSION_ID else None
                    if outcome is None:
                        outcome = self._scan(data, offset + HEADER_LENGTH, end)
                    outcomes[outcome] += 1
                    if len(pending) <= low_water:  # refill now: the peer works while we read on
                        self._refill(now)
            else:
                self._other(data[offset:end])
            offset = end
        if framing_error is not None:
            self._framing_error()
            return
        self._buffer = data[offset:] if offset < len(data) else b""
        stats.answers += answers
        if unmatched:
            stats.errors["unmatched_answers"] += unmatched
        if answers:
            stats.finished_ns = now
        self._refill(now)

    # --- requests --------------------------------------------------------------------------

    def _send(self, count: int) -> None:
        """Queue ``count`` ECRs in one write; the hot path of the generator."""
        transport = self.transport
        if transport is None or self.state != LinkState.OPEN:
            return
        requests = self.templates.requests
        n_requests = len(requests)
        counter_at = self.templates.counter_at
        pack_ids = IDS.pack_into
        if self._hop + count > MASK_32:
            self._hop = 0
        if self._e2e + count > MASK_32:
            self._e2e = 0
        first_hop = hop = self._hop
        e2e, counter, index = self._e2e, self._counter, self._imei
        out = bytearray()
        for _ in range(count):
            hop += 1
            e2e += 1
            counter += 1
            base = len(out)
            out += requests[index]
            pack_ids(out, base + 12, hop, e2e)
            at = base + counter_at
            out[at:at + COUNTER_WIDTH] = b"%012d" % counter
            index += 1
            if index == n_requests:
                index = 0
        self._hop, self._e2e, self._counter, self._imei = hop, e2e, counter, index
        transport.write(out)
        self.pending.update(dict.fromkeys(range(first_hop + 1, hop + 1), time.perf_counter_ns()))
        self.stats.sent += count

    # --- everything but ECAs: the codec --------------------------------------------------

    def _other(self, frame: bytes) -> None:
        try:
            message = decode_message(frame)
        except FramingError:
            self._framing_error()
            return
        command = message.command_code
        if self.state == LinkState.WAIT_CEA:
            self._on_cea(message)
        elif message.is_request and command in (Command.DEVICE_WATCHDOG, Command.DISCONNECT_PEER):
            answer = answer_to(message, self._node.origin_host, self._node.origin_realm, ResultCode.DIAMETER_SUCCESS)
            if command == Command.DEVICE_WATCHDOG:
                answer.add("Origin-State-Id", self._node.origin_state_id)
            if self.transport is not None:
                self.transport.write(answer.to_bytes())
            if command == Command.DISCONNECT_PEER:  # no new request; answers may still come
                self.stats.errors["peer_disconnects"] += 1
                self.state = LinkState.DISCONNECTED_BY_PEER
                self.stop()
        elif not message.is_request and command == Command.DISCONNECT_PEER and self.state == LinkState.CLOSING:
            if self.transport is not None:
                self.transport.close()
        elif not message.is_request and command == Command.DEVICE_WATCHDOG:
            pass
        else:
            self.stats.errors["unexpected_messages"] += 1

    def _on_cea(self, message: Message) -> None:
        self.cea_result = result_code_of(message)
        if message.command_code != Command.CAPABILITIES_EXCHANGE or message.is_request:
            self.stats.errors["unexpected_messages"] += 1
        elif self.cea_result == ResultCode.DIAMETER_SUCCESS and not common_applications(self._node, peer_info(message)):
            self.cea_result = ResultCode.DIAMETER_NO_COMMON_APPLICATION  # it did not advertise S13
        elif self.cea_result == ResultCode.DIAMETER_SUCCESS:
            self.state = LinkState.OPEN
            if not self.opened.done():
                self.opened.set_result(None)
            return
        self.state = LinkState.REFUSED
        if self.transport is not None:
            self.transport.close()

    def _framing_error(self) -> None:
        self.stats.errors["bad_answers"] += 1
        self._buffer = b""
        if self.transport is not None:
            self.transport.abort()

    async def disconnect(self, timeout: float = 2.0) -> None:
        """DPR, then wait for the DPA (or the peer's close) for at most ``timeout``."""
        if self.transport is None:
            return
        if self.state != LinkState.OPEN:  # the peer said DPR first, or never finished the CER/CEA
            self.transport.close()
            return
        dpr = make_message(Command.DISCONNECT_PEER, request=True, application_id=APP_COMMON,
                           hop_by_hop=self._next_hop(), end_to_end=(self._e2e + 1) & MASK_32)
        dpr.add("Origin-Host", self._node.origin_host).add("Origin-Realm", self._node.origin_realm)
        dpr.add("Disconnect-Cause", int(DisconnectCause.REBOOTING))
        self.state = LinkState.CLOSING
        self.transport.write(dpr.to_bytes())
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()


# --- running ---------------------------------------------------------------------------------

@dataclass
class LoadConfig:
    host: str
    port: int
    imeis: list[str]
    connections: int = 1
    inflight: int = 64
    duration: float = 10.0
    timeout: float = 5.0
    imsi_prefix: str | None = "43601"
    software_version: str | None = None
    identity: MmeIdentity = field(default_factory=MmeIdentity)
    processes: int = 1
    connect_timeout: float = 5.0
    pcap: Path | None = None  # every connection recorded there (simulator.captures)


async def _open(config: LoadConfig, stats: LoadStats, templates: EcrTemplates, number: int,
                capture: Capture | None = None) -> LoadConnection:
    connection = await connect_link(lambda: LoadConnection(config, stats, templates, number), config.host,
                                    config.port, config.connect_timeout, "CEA", capture)
    peer = f"{config.host}:{config.port}"
    if connection.state != LinkState.OPEN:
        code = connection.cea_result
        detail = f"CEA Result-Code {code} {code_name(code)}" if code is not None else "closed without a CEA"
        raise LoadFailed(f"{peer} refused the capabilities exchange: {detail}")
    return connection


async def run_worker(config: LoadConfig, templates: EcrTemplates, numbers: Sequence[int],
                     ready: Any = None, capture: Capture | None = None) -> LoadStats:
    """Open the connections ``numbers``, run the load for the configured duration, drain, DPR.

    ``ready`` (a multiprocessing Barrier) makes the workers of one run start together."""
    async def open_link(stats: LoadStats, number: int) -> LoadConnection:
        return await _open(config, stats, templates, number, capture)
    return await drive(open_link, numbers, config.duration, config.timeout, ready)


def run_load(config: LoadConfig) -> dict[str, Any]:
    """Run the whole load, forking ``config.processes`` workers when above 1; the report.

    The requests are pre-encoded once, before the fork: the workers share them."""
    check_spread(config.connections, config.processes)
    session_prefix = f"{int(time.time())};"
    templates = EcrTemplates(config.identity, config.imeis, session_prefix, config.imsi_prefix,
                             config.software_version)

    async def worker(numbers: Sequence[int], ready: Any, capture: Capture | None) -> LoadStats:
        return await run_worker(config, templates, numbers, ready, capture)
    return report(run_processes(worker, config.connections, config.processes, config.connect_timeout,
                                        config.pcap), config)
