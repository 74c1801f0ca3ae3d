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
connections and merge their counts.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
from diameter.message import Message, decode_message, make_message
from simulator.load_wire import (
    _AVP,
    _ECA,
    _HEADER,
    _IDS,
    _MASK,
    _R_BIT,
    _SESSION_ID,
    CONNECTION_SPAN,
    COUNTER_WIDTH,
    HISTOGRAM_US,
    MAX_CONNECTIONS,
    AnswerScanner,
    EcrTemplates,
)
from simulator.mme import MmeIdentity, code_name, os_error_text, status_name


@dataclass
class LoadStats:
    """What one process measured; merged across processes by ``merge``."""

    sent: int = 0
    answers: int = 0
    outcomes: Counter[tuple[int | None, int | None]] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_US)
    slow_us: list[int] = field(default_factory=list)
    started_ns: int = 0
    finished_ns: int = 0
    cpu_s: float = 0.0

    def merge(self, other: LoadStats) -> None:
        self.sent += other.sent
        self.answers += other.answers
        self.outcomes.update(other.outcomes)
        self.errors.update(other.errors)
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]
        self.slow_us.extend(other.slow_us)
        self.started_ns = min(self.started_ns, other.started_ns) if self.started_ns else other.started_ns
        self.finished_ns = max(self.finished_ns, other.finished_ns)
        self.cpu_s += other.cpu_s

    def percentile_us(self, p: float) -> int | None:
        total = sum(self.histogram) + len(self.slow_us)
        if total == 0:
            return None
        rank = max(1, math.ceil(p / 100 * total))
        seen = 0
        for us, count in enumerate(self.histogram):
            seen += count
            if seen >= rank:
                return us
        return sorted(self.slow_us)[rank - seen - 1]

    def max_us(self) -> int | None:
        if self.slow_us:
            return max(self.slow_us)
        return next((us for us in range(HISTOGRAM_US - 1, -1, -1) if self.histogram[us]), None)


def _ms(us: int | None) -> float | None:
    return None if us is None else round(us / 1000, 3)


def report(stats: LoadStats, config: LoadConfig) -> dict[str, Any]:
    """The JSON object of ``eir sim load --json``."""
    elapsed = max(stats.finished_ns - stats.started_ns, 1) / 1e9
    by_status: Counter[str] = Counter()
    by_code: Counter[str] = Counter()
    for (code, status), count in stats.outcomes.items():
        by_status["NONE" if status is None else status_name(status)] += count
        by_code["none" if code is None else str(code)] += count
    errors = {name: stats.errors.get(name, 0) for name in ERROR_KINDS}
    return {
        "peer": f"{config.host}:{config.port}", "connections": config.connections, "inflight": config.inflight,
        "processes": config.processes, "imeis": len(config.imeis), "duration_s": round(elapsed, 3),
        "requests": stats.sent, "answers": stats.answers, "answers_per_s": round(stats.answers / elapsed, 1),
        "by_status": dict(by_status.most_common()), "by_result_code": dict(by_code.most_common()),
        "result_code_names": {code: code_name(int(code)) for code in by_code if code != "none"},
        "errors": errors, "error_total": sum(errors.values()),
        "latency_ms": {f"p{p}": _ms(stats.percentile_us(p)) for p in (50, 90, 99)} | {"max": _ms(stats.max_us())},
        "generator_cpu_s": round(stats.cpu_s, 3),
    }


ERROR_KINDS = ("timeouts", "connection_losses", "lost_in_flight", "unmatched_answers", "bad_answers",
               "unexpected_messages", "peer_disconnects")


# --- one connection ------------------------------------------------------------------------

class LoadConnection(asyncio.Protocol):
    """One Diameter connection of the generator: CER/CEA, N requests in flight, DPR."""

    def __init__(self, config: LoadConfig, stats: LoadStats, templates: EcrTemplates, number: int) -> None:
        self.config = config
        self.stats = stats
        self.templates = templates
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = self.loop.create_future()
        self.drained: asyncio.Future[None] = self.loop.create_future()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.state = "connecting"
        self.cea_result: int | None = None
        self.pending: dict[int, int] = {}
        self.running = False
        self.started = False  # drained means something only once the load has started
        self.deadline_ns = 0
        self._buffer = b""
        self._scan = AnswerScanner()
        rng = random.Random()
        self._hop = rng.getrandbits(31)
        self._e2e = ((int(time.time()) & 0xFFF) << 20) | rng.getrandbits(20)
        self._counter = number * CONNECTION_SPAN  # keeps every Session-Id of the run unique
        self._imei = (number * 7919) % len(templates.requests)  # connections start apart in the list
        self._sweeper: asyncio.TimerHandle | None = None
        self._timeout_ns = int(config.timeout * 1e9)
        # Refill in slices of half a window, so that the peer has work while we read on.
        self._low_water = config.inflight - max(1, config.inflight // 2)
        node = config.identity.node()
        self._node = node
        self._cer = build_cer(node)
        self._cer.hop_by_hop = self._next_hop()
        self._cer.end_to_end = self._e2e

    def _next_hop(self) -> int:
        self._hop = (self._hop + 1) & _MASK
        return self._hop

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.state = "wait_cea"
        transport.write(self._cer.to_bytes())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state in ("open", "wait_cea"):
            self.stats.errors["connection_losses"] += 1
        self.stats.errors["lost_in_flight"] += len(self.pending)  # never answered
        self.pending.clear()
        self.state = "closed"
        self.running = False
        self.transport = None
        if self._sweeper is not None:
            self._sweeper.cancel()
        for future in (self.opened, self.drained, self.closed):
            if not future.done():
                future.set_result(None)

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
        unpack = _HEADER.unpack_from
        unpack_avp = _AVP.unpack_from
        memo = self._scan.memo
        low_water = self._low_water if self.running else -1
        answers = unmatched = 0
        while end - offset >= HEADER_LENGTH:
            version_length, flags_command, _, hop, _ = unpack(data, offset)
            length = version_length & 0xFFFFFF
            if version_length >> 24 != 1 or length < HEADER_LENGTH or length & 3:
                self._framing_error()
                return
            if offset + length > end:
                break
            if flags_command & 0xFFFFFF == _ECA and not flags_command & _R_BIT:
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
                    outcome = memo.get(data[body:offset + length]) if code == _SESSION_ID else None
                    if outcome is None:
                        outcome = self._scan(data, offset + HEADER_LENGTH, offset + length)
                    outcomes[outcome] += 1
                    if len(pending) <= low_water:  # refill now: the peer works while we read on
                        self._refill(now)
            else:
                self._other(data[offset:offset + length])
            offset += length
        self._buffer = data[offset:] if offset < end else b""
        stats.answers += answers
        if unmatched:
            stats.errors["unmatched_answers"] += unmatched
        if answers:
            stats.finished_ns = now
        self._refill(now)

    # --- requests --------------------------------------------------------------------------

    def start(self, deadline_ns: int) -> None:
        """Fill the window; from now on every answer is replaced until the deadline."""
        self.running = self.started = True
        self.deadline_ns = deadline_ns
        self._send(self.config.inflight)
        self._sweeper = self.loop.call_later(0.1, self._sweep)

    def stop(self) -> None:
        self.running = False
        if not self.pending and not self.drained.done():
            self.drained.set_result(None)

    def _refill(self, now: int) -> None:
        if self.running:
            if now >= self.deadline_ns:
                self.running = False
            else:
                missing = self.config.inflight - len(self.pending)
                if missing > 0:
                    self._send(missing)
        if not self.running and self.started and not self.pending and not self.drained.done():
            self.drained.set_result(None)

    def _send(self, count: int) -> None:
        """Queue ``count`` ECRs in one write; the hot path of the generator."""
        transport = self.transport
        if transport is None or self.state != "open":
            return
        requests = self.templates.requests
        n_requests = len(requests)
        counter_at = self.templates.counter_at
        pack_ids = _IDS.pack_into
        if self._hop + count > _MASK:
            self._hop = 0
        if self._e2e + count > _MASK:
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

    def _sweep(self) -> None:
        """Requests older than the timeout are counted and replaced."""
        self._sweeper = None
        if self.state != "open":
            return
        limit = time.perf_counter_ns() - self._timeout_ns
        expired = [hop for hop, sent in self.pending.items() if sent < limit]
        for hop in expired:
            del self.pending[hop]
        if expired:
            self.stats.errors["timeouts"] += len(expired)
            self._refill(time.perf_counter_ns())
        self._sweeper = self.loop.call_later(0.1, self._sweep)

    # --- everything but ECAs: the codec --------------------------------------------------

    def _other(self, frame: bytes) -> None:
        try:
            message = decode_message(frame)
        except FramingError:
            self._framing_error()
            return
        command = message.command_code
        if self.state == "wait_cea":
            self._on_cea(message)
        elif message.is_request and command in (Command.DEVICE_WATCHDOG, Command.DISCONNECT_PEER):
            answer = answer_to(message, self._node.origin_host, self._node.origin_realm, ResultCode.DIAMETER_SUCCESS)
            if command == Command.DEVICE_WATCHDOG:
                answer.add("Origin-State-Id", self._node.origin_state_id)
            if self.transport is not None:
                self.transport.write(answer.to_bytes())
            if command == Command.DISCONNECT_PEER:  # no new request; answers may still come
                self.stats.errors["peer_disconnects"] += 1
                self.state = "disconnected_by_peer"
                self.stop()
        elif not message.is_request and command == Command.DISCONNECT_PEER and self.state == "closing":
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
            self.state = "open"
            if not self.opened.done():
                self.opened.set_result(None)
            return
        self.state = "refused"
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
        if self.state != "open":  # the peer said DPR first, or never finished the CER/CEA
            self.transport.close()
            return
        dpr = make_message(Command.DISCONNECT_PEER, request=True, application_id=APP_COMMON,
                           hop_by_hop=self._next_hop(), end_to_end=(self._e2e + 1) & _MASK)
        dpr.add("Origin-Host", self._node.origin_host).add("Origin-Realm", self._node.origin_realm)
        dpr.add("Disconnect-Cause", int(DisconnectCause.REBOOTING))
        self.state = "closing"
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


class LoadFailed(Exception):
    """The load could not start: a connection or its capabilities exchange failed."""


async def _open(config: LoadConfig, stats: LoadStats, templates: EcrTemplates, number: int) -> LoadConnection:
    loop = asyncio.get_running_loop()
    peer = f"{config.host}:{config.port}"
    try:
        _, connection = await asyncio.wait_for(
            loop.create_connection(lambda: LoadConnection(config, stats, templates, number), config.host, config.port),
            config.connect_timeout)
        await asyncio.wait_for(asyncio.shield(connection.opened), config.connect_timeout)
    except TimeoutError:
        raise LoadFailed(f"{peer}: no connection or CEA within {config.connect_timeout:g} s") from None
    except OSError as exc:
        raise LoadFailed(f"cannot connect to {peer}: {os_error_text(exc)}") from None
    if connection.state != "open":
        code = connection.cea_result
        detail = f"CEA Result-Code {code} {code_name(code)}" if code is not None else "closed without a CEA"
        raise LoadFailed(f"{peer} refused the capabilities exchange: {detail}")
    return connection


async def run_worker(config: LoadConfig, templates: EcrTemplates, numbers: Sequence[int],
                     ready: Any = None) -> LoadStats:
    """Open the connections ``numbers``, run the load for the configured duration, drain, DPR.

    ``ready`` (a multiprocessing Barrier) makes the workers of one run start together."""
    stats = LoadStats()
    opened = await asyncio.gather(*(_open(config, stats, templates, n) for n in numbers), return_exceptions=True)
    good = [c for c in opened if isinstance(c, LoadConnection)]
    failure = next((c for c in opened if isinstance(c, BaseException)), None)
    if failure is not None:
        if ready is not None:
            ready.abort()
        await asyncio.gather(*(c.disconnect() for c in good))
        raise failure
    if ready is not None:
        await asyncio.get_running_loop().run_in_executor(None, ready.wait)
    cpu = time.process_time()
    stats.started_ns = stats.finished_ns = time.perf_counter_ns()
    deadline = stats.started_ns + int(config.duration * 1e9)
    for connection in good:
        connection.start(deadline)
    await asyncio.wait([asyncio.gather(*(c.closed for c in good))], timeout=config.duration)
    for connection in good:
        connection.stop()
    await asyncio.wait([c.drained for c in good], timeout=config.timeout)
    for connection in good:  # still pending once the drain has timed out
        stats.errors["timeouts"] += len(connection.pending)
        connection.pending.clear()
    stats.cpu_s = time.process_time() - cpu
    await asyncio.gather(*(c.disconnect() for c in good))
    return stats


def _worker_main(config: LoadConfig, templates: EcrTemplates, numbers: Sequence[int], ready: Any,
                 pipe: Any) -> None:
    try:
        pipe.send(asyncio.run(run_worker(config, templates, numbers, ready)))
    except BaseException as exc:  # reported to the parent, which prints it
        pipe.send(LoadFailed(str(exc)))
    finally:
        pipe.close()


def run_load(config: LoadConfig) -> dict[str, Any]:
    """Run the whole load, forking ``config.processes`` workers when above 1; the report.

    The requests are pre-encoded once, before the fork: the workers share them."""
    if not 1 <= config.connections <= MAX_CONNECTIONS:
        raise LoadFailed(f"--connections must be 1 to {MAX_CONNECTIONS}")
    if config.connections < config.processes:
        raise LoadFailed(f"{config.processes} processes need at least as many connections")
    session_prefix = f"{int(time.time())};"
    templates = EcrTemplates(config.identity, config.imeis, session_prefix, config.imsi_prefix,
                             config.software_version)
    if config.processes <= 1:
        return report(asyncio.run(run_worker(config, templates, range(config.connections))), config)
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(config.processes, timeout=config.connect_timeout * 4)
    workers = []
    for worker in range(config.processes):
        receive, send = context.Pipe(duplex=False)
        numbers = range(worker, config.connections, config.processes)
        process = context.Process(target=_worker_main, args=(config, templates, numbers, ready, send), daemon=True)
        process.start()
        send.close()
        workers.append((process, receive))
    total = LoadStats()
    failures: list[str] = []
    for process, receive in workers:
        try:
            result = receive.recv()
        except EOFError:
            result = LoadFailed(f"worker {process.pid} ended without a result")
        process.join()
        if isinstance(result, LoadStats):
            total.merge(result)
        else:
            failures.append(str(result))
    if failures:
        raise LoadFailed("; ".join(sorted(set(failures))))
    return report(total, config)
