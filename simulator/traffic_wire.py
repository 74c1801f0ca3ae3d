"""The wire of a traffic run: a day's attaches as S13 ECRs and MAP CheckIMEIs, many in
flight on one connection each, every answer kept by the attach it answers.

The load generators' machinery is reused (simulator/load.py, simulator/load_map.py): their
connection classes do the handshakes (CER/CEA, ASPUP/ASPAC), the watchdogs, the window of
requests in flight with its timeouts, and the goodbyes (DPR, ASPDN). A traffic link only
changes what is sent and how an answer is read: instead of cycling over a list of IMEIs
for a duration, it sends one day's attaches, each once, and keeps each answer at the
attach's position. Every line (an IMEI with its SIM) is encoded once for the whole run
(the ECR with its IMSI in User-Name; the CheckIMEI v2 with the vendor variant's IMSI, as
the scenario runs send it); sending is copying it and writing the ids in place.

Where the agent's answer log names the rule, a request is found again by its key: the
ECR's Session-Id counter is ``day * 10**8 + position``, the TCAP otid ``day << 21 | position``.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Sequence

from diameter.constants import HEADER_LENGTH
from diameter.framing import frame_ends
from sigtran.m3ua import DEFAULT_MAX_MESSAGE_LENGTH
from simulator.load import LoadConfig, LoadConnection
from simulator.load_common import LinkState, LoadFailed, LoadStats, RequestWindow, connect_link
from simulator.load_map import MapLoadConfig, MapLoadConnection
from simulator.load_map_wire import RETURNED, UNDECODABLE, UNEXPECTED, MapTemplates
from simulator.load_wire import COUNTER_WIDTH, ECA, HEADER, IDS, MASK_32, R_BIT, EcrTemplates, changed_runs
from simulator.mme import MmeIdentity, build_ecr
from simulator.msc import MscIdentity, encode_request, map_imei

Outcome = tuple[object, int | None]  # S13: (Result-Code, Equipment-Status); MAP: (result, EquipmentStatus)
DAY_SPAN = 10**8  # Session-Id counter: day * DAY_SPAN + position
OTID_DAY_SHIFT = 21  # otid: day << 21 | position
MAX_POSITIONS = 1 << OTID_DAY_SHIFT  # attaches of one day on one interface
MAX_DAYS = (1 << (32 - OTID_DAY_SHIFT)) - 1
MAP_VERSION = 2  # with the IMSI after the IMEI (the vendor variant MSCs send), as scenario runs do
TIMEOUT = 10.0
STATUS_WORDS = {0: "white", 1: "black", 2: "grey"}
_U32 = struct.Struct(">I")
_FRAME = struct.Struct(">II")
_DATA_HEADER = 0x01000101


class Pacer:
    """At most ``rate`` requests a second over every link that shares it (None: no limit);
    a token bucket holding at most a tenth of a second's worth."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.tokens = 0.0
        self.at = time.monotonic()

    def take(self, wanted: int) -> int:
        if self.rate is None:
            return wanted
        now = time.monotonic()
        self.tokens = min(self.tokens + (now - self.at) * self.rate, max(1.0, self.rate / 10))
        self.at = now
        granted = min(wanted, int(self.tokens))
        self.tokens -= granted
        return granted

    def wait(self) -> float:
        """Seconds until one more request may go."""
        return 0.0 if self.rate is None else max(0.001, (1 - self.tokens) / self.rate)


class DayPlan:
    """One day's requests on one link: the lines to ask about, in order, and the answers."""

    def __init__(self, day: int, lines: Sequence[int], pacer: Pacer) -> None:
        if len(lines) > MAX_POSITIONS:
            raise LoadFailed(f"{len(lines)} attaches in a day on one interface: at most {MAX_POSITIONS}")
        self.day = day
        self.lines = lines
        self.pacer = pacer
        self.next = 0
        self.results: list[Outcome | None] = [None] * len(lines)


class DayWindow(RequestWindow):
    """What both traffic links add to a load connection's window: a day's plan at a time
    (``play``), sent once each, paced, and done when every request is answered or timed out.
    It comes first among a link's bases, so its ``_send`` (the pacing and the one write) is
    the link's; a link says only how its requests are encoded (``encode``)."""

    plan: DayPlan | None = None
    waking = False

    def begin(self, plan: DayPlan) -> None:
        """Make ready for ``plan`` (a subclass sets its own ids first)."""

    async def play(self, plan: DayPlan) -> list[Outcome | None]:
        self.plan = plan
        self.begin(plan)
        self.drained = self.loop.create_future()
        if not plan.lines:
            return plan.results
        if self.started:
            self.running = True
            self._refill(time.perf_counter_ns())
        else:
            self.start(time.perf_counter_ns() + 10**15)  # no deadline: the plan ends the day
        await self.drained
        return plan.results

    def _send(self, count: int) -> None:
        """Send the plan's next requests, as many as ``count`` and the pacer allow, in one write."""
        plan = self.plan
        if self.transport is None or self.state != LinkState.OPEN or plan is None:
            return
        count = plan.pacer.take(min(count, len(plan.lines) - plan.next))
        if count:
            self.transport.write(self.encode(plan, count, time.perf_counter_ns()))
        self.sent(plan, count)

    def encode(self, plan: DayPlan, count: int, now: int) -> bytearray:
        """The plan's next ``count`` requests, their ids written in and each kept as pending
        since ``now``."""
        raise NotImplementedError

    def sent(self, plan: DayPlan, count: int) -> None:
        """After ``count`` requests went: the plan is done, or wake up when the pacer allows more."""
        plan.next += count
        self.stats.sent += count
        if plan.next == len(plan.lines):
            self.running = False
            if not self.pending and not self.drained.done():
                self.drained.set_result(None)
        elif not self.waking and len(self.pending) < self.inflight:
            self.waking = True
            self.loop.call_later(plan.pacer.wait(), self._wake)

    def _wake(self) -> None:
        self.waking = False
        self._refill(time.perf_counter_ns())


# --- S13 -------------------------------------------------------------------------------------

class LineEcrs(EcrTemplates):
    """One ECR per line (IMEI and IMSI), encoded once by ``build_ecr``; the Session-Id ends
    in a COUNTER_WIDTH-digit counter at ``counter_at``. (EcrTemplates derives its IMSIs from
    a prefix and the position; a traffic line carries its own.)"""

    def __init__(self, identity: MmeIdentity, lines: Sequence[tuple[str, str]], session_prefix: str) -> None:
        node = identity.node()
        self.imsi_width = 15
        self.counter_at = HEADER_LENGTH + 8 + len(f"{node.origin_host};{session_prefix}".encode())
        zeros = "0" * COUNTER_WIDTH
        self.requests = [build_ecr(node, imei, imsi, session=session_prefix + zeros,
                                   destination_realm=identity.destination_realm).to_bytes() for imei, imsi in lines]


class EcrLink(DayWindow, LoadConnection):
    """One Diameter connection answering a day's plan at a time (``play``)."""

    def __init__(self, config: LoadConfig, stats: LoadStats, ecrs: LineEcrs) -> None:
        super().__init__(config, stats, ecrs, 0)
        self.ecrs = ecrs
        self.hop_base = 0

    def begin(self, plan: DayPlan) -> None:
        self.hop_base = self._next_hop()

    def encode(self, plan: DayPlan, count: int, now: int) -> bytearray:
        requests, counter_at, pack_ids = self.ecrs.requests, self.ecrs.counter_at, IDS.pack_into
        out = bytearray()
        for position in range(plan.next, plan.next + count):
            base = len(out)
            out += requests[plan.lines[position]]
            hop = (self.hop_base + position) & MASK_32
            pack_ids(out, base + 12, hop, hop)
            out[base + counter_at:base + counter_at + COUNTER_WIDTH] = b"%012d" % (plan.day * DAY_SPAN + position)
            self.pending[hop] = now
        return out

    def data_received(self, data: bytes) -> None:
        if self._buffer:
            data = self._buffer + data
        ends, framing_error = frame_ends(data)
        offset = 0
        plan = self.plan
        for end in ends:
            _, flags_command, _, hop, _ = HEADER.unpack_from(data, offset)
            if flags_command & 0xFFFFFF == ECA and not flags_command & R_BIT:
                if self.pending.pop(hop, None) is None or plan is None:
                    self.stats.errors["unmatched_answers"] += 1
                else:
                    plan.results[(hop - self.hop_base) & MASK_32] = self._scan(data, offset + HEADER_LENGTH, end)
                    self.stats.answers += 1
            else:
                self._other(data[offset:end])
            offset = end
        if framing_error is not None:
            self._framing_error()
            return
        self._buffer = data[offset:] if offset < len(data) else b""
        self._refill(time.perf_counter_ns())


async def open_ecr_link(host: str, port: int, identity: MmeIdentity, ecrs: LineEcrs, inflight: int = 64) -> EcrLink:
    """A connection whose CER says ``identity``: the Origin-Host the ECRs of ``ecrs`` carry."""
    config = LoadConfig(host, port, [], inflight=inflight, timeout=TIMEOUT, identity=identity)
    stats = LoadStats()
    link = await connect_link(lambda: EcrLink(config, stats, ecrs), host, port, 5.0, "CEA")
    if link.state != LinkState.OPEN:
        raise LoadFailed(f"{host}:{port} refused the capabilities exchange (CEA {link.cea_result})")
    return link


# --- MAP -------------------------------------------------------------------------------------

class LineChecks(MapTemplates):
    """One M3UA DATA with a CheckIMEI v2 (vendor IMSI) per line, encoded once by
    ``encode_request``; the TCAP otid sits at ``otid_at[line]``."""

    def __init__(self, identity: MscIdentity, lines: Sequence[tuple[str, str]]) -> None:
        self.identity = identity
        self.version = MAP_VERSION
        self.imsi_prefix = None
        self.requests = []
        self.otid_at = []
        where: dict[int, int] = {}  # encoded length -> the otid's offset
        for index, (imei, imsi) in enumerate(lines):
            digits = map_imei(imei)
            request = encode_request(identity, bytes(4), digits, MAP_VERSION, imsi, self.sls(index))
            offset = where.get(len(request))
            if offset is None:
                other = encode_request(identity, b"\xff" * 4, digits, MAP_VERSION, imsi, self.sls(index))
                runs = changed_runs(request, other)
                if [end - start for start, end in runs] != [4]:
                    raise ValueError(f"cannot locate the otid of a CheckIMEI for IMEI {imei}")
                offset = where[len(request)] = runs[0][0]
            self.requests.append(request)
            self.otid_at.append(offset)


class CheckImeiLink(DayWindow, MapLoadConnection):
    """One M3UA association (as an ASP) answering a day's plan at a time (``play``)."""

    def __init__(self, config: MapLoadConfig, stats: LoadStats, checks: LineChecks) -> None:
        super().__init__(config, stats, checks, 0)
        self.checks = checks

    def encode(self, plan: DayPlan, count: int, now: int) -> bytearray:
        requests, offsets, pack = self.checks.requests, self.checks.otid_at, _U32.pack_into
        out = bytearray()
        for position in range(plan.next, plan.next + count):
            line = plan.lines[position]
            base = len(out)
            out += requests[line]
            otid = plan.day << OTID_DAY_SHIFT | position
            pack(out, base + offsets[line], otid)
            self.pending[otid] = now
        return out

    def data_received(self, data: bytes) -> None:
        if self._buffer:
            data = self._buffer + data
        end, offset = len(data), 0
        plan = self.plan
        while end - offset >= 8:
            first, length = _FRAME.unpack_from(data, offset)
            if first >> 24 != 1 or length < 8 or length & 3 or length > DEFAULT_MAX_MESSAGE_LENGTH:
                self._framing_error()
                return
            if offset + length > end:
                break
            if first == _DATA_HEADER and self.state == LinkState.OPEN:
                dtid, outcome = self.reader.read(data, offset, offset + length)
                sent = self.pending.pop(dtid, None) if dtid is not None else None
                if dtid is None or sent is None or plan is None or outcome in (RETURNED, UNDECODABLE, UNEXPECTED):
                    self._not_an_answer(outcome)
                else:
                    plan.results[dtid & (MAX_POSITIONS - 1)] = outcome
                    self.stats.answers += 1
            else:
                self.receive(data[offset:offset + length])
            offset += length
        self._buffer = data[offset:] if offset < end else b""
        self._refill(time.perf_counter_ns())


async def open_map_link(host: str, port: int, checks: LineChecks, inflight: int = 64) -> CheckImeiLink:
    config = MapLoadConfig(host, port, [], inflight=inflight, timeout=TIMEOUT, version=MAP_VERSION)
    stats = LoadStats()
    link = await connect_link(lambda: CheckImeiLink(config, stats, checks), host, port, 5.0, "ASP handshake")
    if link.state != LinkState.OPEN:
        raise LoadFailed(f"{host}:{port} refused the ASP handshake: {link.refusal or 'closed the connection'}")
    return link


# --- reading answers -------------------------------------------------------------------------

def s13_word(outcome: Outcome | None) -> str:
    """white, grey, black; or what came instead (``result 5004``, ``no answer``)."""
    if outcome is None:
        return "no answer"
    code, status = outcome
    if code == 2001 and status in STATUS_WORDS:
        return STATUS_WORDS[status]
    return f"result {code}" + (f" status {status}" if status is not None else "")


def map_word(outcome: Outcome | None) -> str:
    if outcome is None:
        return "no answer"
    result, status = outcome
    if result == "result" and status in STATUS_WORDS:
        return STATUS_WORDS[status]
    return str(result)


def s13_position(session: str) -> tuple[int, int] | None:
    """(day, position) of an answer log's S13 session key, None if not one of ours."""
    counter = session[-COUNTER_WIDTH:]
    if not counter.isdigit():
        return None
    day, position = divmod(int(counter), DAY_SPAN)
    return day, position


def map_position(session: str) -> tuple[int, int] | None:
    """(day, position) of an answer log's MAP session key (the otid in hex)."""
    try:
        otid = int(session, 16)
    except ValueError:
        return None
    return otid >> OTID_DAY_SHIFT, otid & (MAX_POSITIONS - 1)


async def close_links(links: Sequence[EcrLink | CheckImeiLink]) -> None:
    await asyncio.gather(*(link.disconnect() for link in links), return_exceptions=True)
