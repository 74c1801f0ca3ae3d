"""What the S13 and MAP load generators share: the counts one process measures, the
common part of the report, and the run itself (open the connections, keep them busy
until the deadline, drain, close; fork worker processes that split the connections and
merge their counts). Each protocol brings its own connection class, which only has to
look like ``LoadLink``.

With ``--pcap`` each connection is made through the capture tap (``netio.capture``): every
write and read is also written as frames, which slows the generator; without it the
connections are made as before and the hot path is the same code.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from simulator.captures import capturing, merge_parts, part_path
from simulator.load_wire import HISTOGRAM_US, MAX_CONNECTIONS
from simulator.mme import os_error_text

if TYPE_CHECKING:
    from netio.capture import Capture


class LinkState(StrEnum):
    """Where one connection of a load generator is (its values are what reports and tests read)."""

    CONNECTING = "connecting"
    WAIT_CEA = "wait_cea"  # Diameter: CER sent, waiting for the CEA (RFC 6733 Wait-I-CEA)
    HANDSHAKE = "handshake"  # M3UA: ASPUP and ASPAC sent, waiting for the ASP to be active
    OPEN = "open"  # requests may be sent
    DOWN = "down"  # M3UA: the gateway took the ASP down
    DISCONNECTED_BY_PEER = "disconnected_by_peer"  # Diameter: the peer sent DPR
    CLOSING = "closing"  # we sent DPR or ASPDN
    REFUSED = "refused"  # the capabilities exchange failed
    CLOSED = "closed"


class LoadFailed(Exception):
    """The load could not start: a connection or its handshake failed."""


@dataclass
class LoadStats:
    """What one process measured; merged across processes by ``merge``.

    ``outcomes`` counts answers by a protocol's own key: (result code, Equipment-Status)
    for S13, (result, EquipmentStatus) for MAP."""

    sent: int = 0
    answers: int = 0
    outcomes: Counter[tuple[Any, int | None]] = field(default_factory=Counter)
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


@dataclass(frozen=True)
class RunShape:
    """How the load was spread, as the report states it."""

    peer: str
    connections: int
    inflight: int
    processes: int
    imeis: int


def build_report(stats: LoadStats, shape: RunShape, breakdown: dict[str, Any],
                 error_kinds: Sequence[str]) -> dict[str, Any]:
    """The JSON object of ``eir sim load --json``: the shape and the counts, the protocol's
    ``breakdown`` of the answers (by status, by result), errors, latency and CPU."""
    elapsed = max(stats.finished_ns - stats.started_ns, 1) / 1e9
    errors = {name: stats.errors.get(name, 0) for name in error_kinds}
    return {
        "peer": shape.peer, "connections": shape.connections, "inflight": shape.inflight,
        "processes": shape.processes, "imeis": shape.imeis, "duration_s": round(elapsed, 3),
        "requests": stats.sent, "answers": stats.answers, "answers_per_s": round(stats.answers / elapsed, 1),
        **breakdown,
        "errors": errors, "error_total": sum(errors.values()),
        "latency_ms": {f"p{p}": _ms(stats.percentile_us(p)) for p in (50, 90, 99)} | {"max": _ms(stats.max_us())},
        "generator_cpu_s": round(stats.cpu_s, 3),
    }


# --- the window of requests in flight -------------------------------------------------------

class RequestWindow(asyncio.Protocol):
    """What both generators' connections do alike: keep ``inflight`` requests pending from
    ``start`` to the deadline, refill as answers come, count and replace timed-out ones,
    and say ``drained`` once stopped with nothing pending. Subclasses send (``_send``) and
    set ``state`` (``LinkState.OPEN`` while requests may be sent) and ``transport``."""

    def __init__(self, stats: LoadStats, inflight: int, timeout: float) -> None:
        self.stats = stats
        self.inflight = inflight
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = self.loop.create_future()
        self.drained: asyncio.Future[None] = self.loop.create_future()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.state = LinkState.CONNECTING
        self.pending: dict[int, int] = {}
        self.running = False
        self.started = False  # drained means something only once the load has started
        self.deadline_ns = 0
        self._sweeper: asyncio.TimerHandle | None = None
        self._timeout_ns = int(timeout * 1e9)
        # Refill in slices of half a window, so that the peer has work while we read on.
        self._low_water = inflight - max(1, inflight // 2)

    def _send(self, count: int) -> None:
        raise NotImplementedError

    def start(self, deadline_ns: int) -> None:
        """Fill the window; from now on every answer is replaced until the deadline."""
        self.running = self.started = True
        self.deadline_ns = deadline_ns
        self._send(self.inflight)
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
                missing = self.inflight - len(self.pending)
                if missing > 0:
                    self._send(missing)
        if not self.running and self.started and not self.pending and not self.drained.done():
            self.drained.set_result(None)

    def _sweep(self) -> None:
        """Requests older than the timeout are counted and replaced."""
        self._sweeper = None
        if self.state != LinkState.OPEN:
            return
        limit = time.perf_counter_ns() - self._timeout_ns
        expired = [key for key, sent in self.pending.items() if sent < limit]
        for key in expired:
            del self.pending[key]
        if expired:
            self.stats.errors["timeouts"] += len(expired)
            self._refill(time.perf_counter_ns())
        self._sweeper = self.loop.call_later(0.1, self._sweep)

    def _lost(self) -> None:
        """The connection is gone: what was pending is lost, the futures are done."""
        self.stats.errors["lost_in_flight"] += len(self.pending)  # never answered
        self.pending.clear()
        self.state = LinkState.CLOSED
        self.running = False
        self.transport = None
        if self._sweeper is not None:
            self._sweeper.cancel()
        for future in (self.opened, self.drained, self.closed):
            if not future.done():
                future.set_result(None)


# --- running ---------------------------------------------------------------------------------

class LoadLink(Protocol):
    """One connection of a load generator, as the run drives it."""

    pending: dict[int, int]
    closed: asyncio.Future[None]
    drained: asyncio.Future[None]

    def start(self, deadline_ns: int) -> None: ...

    def stop(self) -> None: ...

    async def disconnect(self, timeout: float = 2.0) -> None: ...


Opener = Callable[[LoadStats, int], Awaitable[LoadLink]]
L = TypeVar("L", bound=asyncio.Protocol)


async def connect_link(factory: Callable[[], L], host: str, port: int, timeout: float, handshake: str,
                       capture: Capture | None = None) -> L:
    """The connection ``factory`` makes to host:port, once its ``opened`` future is done (the
    protocol's ``handshake``: CER/CEA, ASPUP/ASPAC); LoadFailed, in one line, if either takes
    more than ``timeout`` or the connection cannot be made. The caller judges the handshake.
    With a ``capture``, the connection is recorded there (the protocol is wrapped; without
    one nothing is: the hot path stays as it is)."""
    peer = f"{host}:{port}"
    try:
        connection = await asyncio.wait_for(_connect(factory, host, port, capture), timeout)
        await asyncio.wait_for(asyncio.shield(connection.opened), timeout)  # type: ignore[attr-defined]
    except TimeoutError:
        raise LoadFailed(f"{peer}: no connection or {handshake} within {timeout:g} s") from None
    except OSError as exc:
        raise LoadFailed(f"cannot connect to {peer}: {os_error_text(exc)}") from None
    return connection


async def _connect(factory: Callable[[], L], host: str, port: int, capture: Capture | None) -> L:
    loop = asyncio.get_running_loop()
    if capture is None:
        return (await loop.create_connection(factory, host, port))[1]
    made, tap = await loop.create_connection(capture.factory(factory), host, port)
    return tap.opened(made)[1]


async def drive(open_link: Opener, numbers: Sequence[int], duration: float, timeout: float,
                ready: Any = None) -> LoadStats:
    """Open the connections ``numbers``, run the load for ``duration``, drain, disconnect.

    ``ready`` (a multiprocessing Barrier) makes the workers of one run start together."""
    stats = LoadStats()
    opened = await asyncio.gather(*(open_link(stats, n) for n in numbers), return_exceptions=True)
    good = [c for c in opened if not isinstance(c, BaseException)]
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
    deadline = stats.started_ns + int(duration * 1e9)
    for connection in good:
        connection.start(deadline)
    await asyncio.wait([asyncio.gather(*(c.closed for c in good))], timeout=duration)
    for connection in good:
        connection.stop()
    await asyncio.wait([c.drained for c in good], timeout=timeout)
    for connection in good:  # still pending once the drain has timed out
        stats.errors["timeouts"] += len(connection.pending)
        connection.pending.clear()
    stats.cpu_s = time.process_time() - cpu
    await asyncio.gather(*(c.disconnect() for c in good))
    return stats


Worker = Callable[[Sequence[int], Any, "Capture | None"], Coroutine[Any, Any, LoadStats]]


def _captured(worker: Worker, numbers: Sequence[int], ready: Any, pcap: Path | None, processes: int) -> LoadStats:
    """One process's run, its connections recorded in its part of ``pcap`` (simulator.captures)."""
    with capturing(None if pcap is None else part_path(pcap, numbers, processes)) as capture:
        return asyncio.run(worker(numbers, ready, capture))


def _worker_main(worker: Worker, numbers: Sequence[int], ready: Any, pipe: Any, pcap: Path | None,
                 processes: int) -> None:
    try:
        pipe.send(_captured(worker, numbers, ready, pcap, processes))
    except BaseException as exc:  # reported to the parent, which prints it
        pipe.send(LoadFailed(str(exc)))
    finally:
        pipe.close()


def check_spread(connections: int, processes: int) -> None:
    if not 1 <= connections <= MAX_CONNECTIONS:
        raise LoadFailed(f"--connections must be 1 to {MAX_CONNECTIONS}")
    if connections < processes:
        raise LoadFailed(f"{processes} processes need at least as many connections")


def run_processes(worker: Worker, connections: int, processes: int, connect_timeout: float,
                  pcap: Path | None = None) -> LoadStats:
    """``worker(numbers, ready, capture)`` over all the connections, in this process or forked
    into ``processes`` workers (each takes every processes-th connection); the merged counts.
    With ``pcap``, every connection is recorded there: each worker writes its own part, merged
    into ``pcap`` once all are done (simulator.captures).

    Whatever the caller prepared before (pre-encoded requests) is shared by the fork."""
    check_spread(connections, processes)
    if processes <= 1:
        return _captured(worker, range(connections), None, pcap, processes)
    try:
        return _forked(worker, connections, processes, connect_timeout, pcap)
    finally:
        if pcap is not None:
            merge_parts(pcap, processes)


def _forked(worker: Worker, connections: int, processes: int, connect_timeout: float,
            pcap: Path | None) -> LoadStats:
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(processes, timeout=connect_timeout * 4)
    workers = []
    for number in range(processes):
        receive, send = context.Pipe(duplex=False)
        numbers = range(number, connections, processes)
        process = context.Process(target=_worker_main, args=(worker, numbers, ready, send, pcap, processes),
                                  daemon=True)
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
    return total
