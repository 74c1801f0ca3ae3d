"""Socket-level fuzzing of a running agent (issue 12, Proof): the frames of
``simulator.fuzz_frames`` sent over one loopback connection per layer, pipelined in
batches, each batch followed by a probe (a valid request for a white IMEI) whose answer
is checked. Counted per layer:

- crashes: the agent process exited, or a fresh connection's request got no answer in
  time (checked every ``health_every`` frames and at the end);
- hangs: a probe with no answer within ``probe_timeout`` while the connection stayed up;
- aborted associations: the agent closed or reset the connection, or sent DPR, although
  every frame's lower-layer framing was valid (the driver reconnects and goes on);
- wrong answers: a probe answered with anything but WHITELISTED / whiteListed;
- the agent's peak RSS (VmHWM) and what it logged during the layer (lines and bytes).

The frames behind the first aborts and hangs are kept; ``find_culprit`` replays them and
leaves out all it can while the fault still shows, to name the few frames at fault.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from diameter.constants import APP_COMMON, Command
from diameter.errors import FramingError as DiameterFramingError
from diameter.framing import frame_length as diameter_frame_length
from diameter.message import make_message
from sigtran.m3ua import FramingError as M3uaFramingError
from sigtran.m3ua import frame_length as m3ua_frame_length
from simulator.agent_process import LOOPBACK, AgentProcess
from simulator.fuzz_frames import FUZZ_NODE, LAYERS, FrameSource, source_for

MAX_ANSWER = 1 << 20  # an answer frame longer than this is taken as broken framing from the agent
KEPT_INCIDENTS = 3
SETTLE = 0.05  # seconds between replayed frames and the restoring messages after them


def _frame_length(framing: str, buffer: bytearray, offset: int) -> int | None:
    """The length of the agent's frame at ``offset`` (None: its header is not all there yet),
    read by the layer's own framing; raises that layer's FramingError past ``MAX_ANSWER``."""
    if framing == "diameter":
        return diameter_frame_length(buffer, MAX_ANSWER, offset)
    return m3ua_frame_length(buffer, MAX_ANSWER, offset)


class FuzzLink(asyncio.Protocol):
    """One connection to the agent: cuts the agent's frames, hands the probes' answers to
    whoever waits for them, answers the agent's DWR, and notes a DPR or a close."""

    def __init__(self, source: FrameSource) -> None:
        self.source = source
        self.framing = source.framing
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiting: dict[int, asyncio.Future[bytes]] = {}
        self.after_barrier: dict[int, bytes] = {}  # what to write when the barrier's answer comes
        self.handshake: asyncio.Future[bytes] = self.loop.create_future()
        self.lost: asyncio.Future[str] = self.loop.create_future()
        self.received = 0
        self.closing = False  # we close it ourselves

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(f"connection {'reset' if exc else 'closed'} by the agent{f': {exc}' if exc else ''}")

    def data_received(self, data: bytes) -> None:
        buffer, offset = self.buffer, 0
        buffer += data
        while True:
            try:
                length = _frame_length(self.framing, buffer, offset)
            except (DiameterFramingError, M3uaFramingError) as exc:
                self._broken(f"the agent sent a frame that cannot be trusted: {exc}")
                return
            if length is None or len(buffer) - offset < length:
                break
            self._frame(bytes(buffer[offset:offset + length]))
            offset += length
        del buffer[:offset]

    def _frame(self, frame: bytes) -> None:
        self.received += 1
        if not self.handshake.done():
            if self.source.handshake_done(frame):
                self.handshake.set_result(frame)
            return
        if self.framing == "diameter" and frame[4] & 0x80:
            self._agent_request(frame)
            return
        if self.after_barrier:
            barrier = self.source.barrier_key(frame)
            if barrier is not None and self.transport is not None:
                # what restores the state after every frame written so far, then the probe
                self.transport.write(self.source.batch_end() + self.after_barrier.pop(barrier, b""))
                return
        key = self.source.probe_key(frame)
        waiter = self.waiting.pop(key, None) if key is not None else None
        if waiter is not None and not waiter.done():
            waiter.set_result(frame)

    def _agent_request(self, frame: bytes) -> None:
        command = int.from_bytes(frame[5:8], "big")
        if command == Command.DISCONNECT_PEER:
            self._broken("the agent sent DPR")
        elif command == Command.DEVICE_WATCHDOG and self.transport is not None:
            dwa = make_message(Command.DEVICE_WATCHDOG, request=False, application_id=APP_COMMON)
            dwa.add("Result-Code", 2001).add("Origin-Host", FUZZ_NODE.origin_host)
            dwa.add("Origin-Realm", FUZZ_NODE.origin_realm)
            dwa.hop_by_hop, dwa.end_to_end = int.from_bytes(frame[12:16], "big"), int.from_bytes(frame[16:20], "big")
            self.transport.write(dwa.to_bytes())

    def _broken(self, reason: str) -> None:
        if not self.lost.done():
            self.lost.set_result(reason)
        if self.transport is not None:
            self.transport.abort()

    def expect(self, key: int) -> asyncio.Future[bytes]:
        waiter: asyncio.Future[bytes] = self.loop.create_future()
        self.waiting[key] = waiter
        return waiter

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()


async def open_link(host: str, port: int, source: FrameSource, timeout: float = 5.0) -> FuzzLink:
    """A connection that has done its handshake (CER/CEA, or ASPUP and ASPAC to ASP-ACTIVE)."""
    loop = asyncio.get_running_loop()
    _, link = await asyncio.wait_for(loop.create_connection(lambda: FuzzLink(source), host, port), timeout)
    link.write(source.handshake())
    waiting: set[asyncio.Future[bytes] | asyncio.Future[str]] = {link.handshake, link.lost}
    done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if link.handshake not in done:
        link.close()
        why = link.lost.result() if link.lost.done() else "timeout"
        raise ConnectionError(f"{source.layer}: no handshake answer ({why})")
    return link


async def ask(link: FuzzLink, timeout: float) -> tuple[str, str]:
    """One probe on ``link``: ("ok" | "wrong" | "hang" | "lost", what happened)."""
    probe = link.source.probe()
    waiter = link.expect(probe.key)
    link.write(probe.wire)
    return await settle(link, waiter, timeout)


async def settle(link: FuzzLink, waiter: asyncio.Future[bytes], timeout: float) -> tuple[str, str]:
    waiting: set[asyncio.Future[bytes] | asyncio.Future[str]] = {waiter, link.lost}
    done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if waiter in done:
        ok, said = link.source.answer_ok(waiter.result())
        return ("ok" if ok else "wrong"), said
    if link.lost.done():
        return "lost", link.lost.result()
    return "hang", f"no answer in {timeout} s"


async def healthy(host: str, port: int, layer: str, timeout: float = 5.0) -> tuple[bool, str]:
    """Whether a fresh connection's valid request is answered right within ``timeout``."""
    try:
        link = await open_link(host, port, source_for(layer, 0), timeout)
    except (TimeoutError, OSError, ConnectionError) as exc:
        return False, f"cannot connect: {exc}"
    try:
        outcome, said = await ask(link, timeout)
    finally:
        link.close()
    return outcome == "ok", said


# --- one layer -------------------------------------------------------------------------------

@dataclass
class LayerReport:
    layer: str
    seed: int
    frames: int = 0
    probes: int = 0
    answers: int = 0  # frames the agent sent back
    crashes: int = 0
    hangs: int = 0
    aborts: int = 0
    wrong: int = 0
    seconds: float = 0.0
    peak_rss_kb: int = 0
    log_lines: int = 0
    log_bytes: int = 0
    longest_log_line: int = 0
    incidents: list[str] = field(default_factory=list)
    suspects: list[list[bytes]] = field(default_factory=list)  # the frames before each kept incident

    @property
    def clean(self) -> bool:
        return self.crashes == self.hangs == self.aborts == self.wrong == 0

    def line(self) -> str:
        per = 10_000 / max(self.frames, 1)
        rate = self.frames / max(self.seconds, 1e-9)
        return (f"{self.layer:8} frames {self.frames:>9,}  probes {self.probes:>6,}  answers {self.answers:>9,}  "
                f"crashes {self.crashes}  hangs {self.hangs}  aborts {self.aborts}  wrong {self.wrong}  "
                f"{self.seconds:7.1f} s ({rate:,.0f}/s)  peak RSS {self.peak_rss_kb / 1024:.1f} MB  "
                f"log {self.log_lines * per:.1f} lines, {self.log_bytes * per:,.0f} B per 10k frames "
                f"(longest line {self.longest_log_line} B)")

    def note(self, what: str, suspects: list[bytes]) -> None:
        if len(self.incidents) < KEPT_INCIDENTS:
            self.incidents.append(f"{self.layer} seed {self.seed}: {what}")
            self.suspects.append(suspects)


@dataclass
class Target:
    """The agent under test: where its layer listens, and how to see it from outside."""

    host: str
    ports: dict[str, int]  # layer -> port
    alive: Callable[[], bool] = lambda: True
    pid: int | None = None
    log: Path | None = None

    def peak_rss_kb(self) -> int:
        if self.pid is None:
            return 0
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log is not None and self.log.exists() else 0

    def log_since(self, offset: int) -> bytes:
        if self.log is None or not self.log.exists():
            return b""
        with self.log.open("rb") as handle:
            handle.seek(offset)
            return handle.read()


@dataclass
class Settings:
    batch: int = 250  # fuzzed frames between two probes
    window: int = 4  # probes in flight
    probe_timeout: float = 5.0
    health_every: int = 100_000  # frames between two checks on a fresh connection


class LayerRun:
    """Fuzz one layer: batches of frames and a probe after each, ``window`` probes in flight."""

    def __init__(self, target: Target, layer: str, seed: int, settings: Settings) -> None:
        self.target, self.layer, self.settings = target, layer, settings
        self.port = target.ports["diameter" if layer == "diameter" else "m3ua"]
        self.source = source_for(layer, seed)
        self.report = LayerReport(layer, seed)
        self.link: FuzzLink | None = None
        self.pending: deque[tuple[asyncio.Future[bytes], list[bytes]]] = deque()

    async def run(self, frames: int) -> LayerReport:
        report, started = self.report, time.perf_counter()
        log_offset = self.target.log_size()
        next_health = self.settings.health_every
        while report.frames < frames and not report.crashes:
            if self.link is None and not await self._connect():
                break
            await self._send_batch(min(self.settings.batch, frames - report.frames))
            while len(self.pending) >= self.settings.window or (report.frames >= frames and self.pending):
                await self._settle_oldest()
            if report.frames >= next_health:
                next_health += self.settings.health_every
                await self._check_health()
        if not report.crashes:
            await self._check_health()
        if self.link is not None:
            report.answers += self.link.received
            self.link.close()
        report.seconds = time.perf_counter() - started
        report.peak_rss_kb = self.target.peak_rss_kb()
        logged = self.target.log_since(log_offset)
        report.log_lines, report.log_bytes = logged.count(b"\n"), len(logged)
        report.longest_log_line = max(map(len, logged.splitlines()), default=0)
        return report

    async def _connect(self) -> bool:
        try:
            self.link = await open_link(self.target.host, self.port, self.source, self.settings.probe_timeout)
            return True
        except (TimeoutError, OSError, ConnectionError) as exc:
            self._crashed(f"cannot connect: {exc}")
            return False

    async def _send_batch(self, count: int) -> None:
        assert self.link is not None
        batch = [self.source.frame() for _ in range(count)]
        probe = self.source.probe()
        barrier = self.source.barrier(probe.key)
        self.pending.append((self.link.expect(probe.key), [*batch, probe.wire]))
        if barrier:  # the probe, and what restores the state before it, once the agent has read the batch
            self.link.after_barrier[probe.key] = probe.wire
            self.link.write(b"".join(batch) + barrier)
        else:
            self.link.write(b"".join(batch) + self.source.batch_end() + probe.wire)
        self.report.frames += count
        self.report.probes += 1

    async def _settle_oldest(self) -> None:
        link = self.link
        assert link is not None
        waiter, batch = self.pending.popleft()
        outcome, said = await settle(link, waiter, self.settings.probe_timeout)
        if outcome == "wrong":
            self.report.wrong += 1
            self.report.note(f"wrong answer to a probe: {said}", batch)
        elif outcome in ("lost", "hang"):
            suspects = batch + [frame for _, later in self.pending for frame in later]
            if outcome == "lost":
                self.report.aborts += 1
            else:
                self.report.hangs += 1
            first = self.report.frames - self.settings.batch * (1 + len(self.pending))
            self.report.note(f"{outcome}: {said} (suspects: frames {first + 1:,} to {self.report.frames:,} "
                             "of the run)", suspects)
            self._drop_link()
            if not self.target.alive():
                self._crashed("the agent process exited")

    def _drop_link(self) -> None:
        if self.link is not None:
            self.report.answers += self.link.received
            self.link.close()
        self.link = None
        self.pending.clear()

    async def _check_health(self) -> None:
        ok, said = await healthy(self.target.host, self.port, self.layer, self.settings.probe_timeout)
        if not self.target.alive():
            self._crashed("the agent process exited")
        elif not ok:
            self._crashed(f"health check on a fresh connection: {said}")

    def _crashed(self, what: str) -> None:
        self.report.crashes += 1
        self.report.note(f"crash: {what}", [])


async def fuzz(target: Target, layers: list[str], frames: int, seed: int,
               settings: Settings | None = None) -> list[LayerReport]:
    """Each layer in turn against ``target``; stops after a crash."""
    reports = []
    for layer in layers:
        report = await LayerRun(target, layer, seed, settings or Settings()).run(frames)
        reports.append(report)
        if report.crashes:
            break
    return reports


async def reproduces(target: Target, layer: str, frames: list[bytes], timeout: float = 5.0) -> bool:
    """Whether ``frames``, written at once on a fresh connection and followed a moment later
    by what restores the association's state and a probe, lose the connection or the
    probe's answer."""
    source = source_for(layer, 1)
    port = target.ports["diameter" if layer == "diameter" else "m3ua"]
    restore = b"" if layer == "diameter" else source.handshake()  # ASPUP and ASPAC
    link = await open_link(target.host, port, source, timeout)
    try:
        link.write(b"".join(frames))
        await asyncio.sleep(SETTLE)  # the frames are read apart from what follows them
        link.write(restore)
        outcome, _ = await ask(link, timeout)
    finally:
        link.close()
    return outcome in ("lost", "hang")


async def find_culprit(target: Target, layer: str, frames: list[bytes], timeout: float = 5.0) -> list[bytes]:
    """The fewest of ``frames`` found that, written together, still lose the connection or
    the probe's answer (frames are left out while that holds: halves, quarters, ... single
    ones); [] when all of them together do not."""
    if not await reproduces(target, layer, frames, timeout):
        return []
    kept, chunk = list(frames), max(1, len(frames) // 2)
    while True:
        at = 0
        while at < len(kept) and len(kept) > 1:
            candidate = kept[:at] + kept[at + chunk:]
            if await reproduces(target, layer, candidate, timeout):
                kept = candidate
            else:
                at += chunk
        if chunk == 1:
            return kept
        chunk = max(1, chunk // 2)


# The driver keeps up to four batches of frames in flight on one connection: more than the
# agent's default bound on requests in progress (256 a connection), past which it answers
# 3004 or aborts the dialogue (agent/admission.py), which a probe would take for a wrong answer.
AGENT_LIMITS = "limits: {in_progress_per_peer: 100000, in_progress: 100000}\n"


def fuzz_agent(folder: Path, registry: str) -> AgentProcess:
    """``eir serve`` for fuzzing: S13 and M3UA on loopback, bounds above the driver's pipeline."""
    config = folder / "fuzz-agent.yaml"
    config.write_text(AGENT_LIMITS)
    return AgentProcess(folder, registry, m3ua=True, config=config)


def target_of(agent: AgentProcess) -> Target:
    """The Target of an ``eir serve`` child process started with ``m3ua=True``."""
    ports = {"diameter": agent.port}
    if agent.m3ua_port is not None:
        ports["m3ua"] = agent.m3ua_port
    return Target(LOOPBACK, ports, lambda: agent.process.poll() is None, agent.process.pid, agent.stderr_path)


def layers_of(text: str) -> list[str]:
    """"diameter,tcap" -> ["diameter", "tcap"]; ValueError for an unknown layer."""
    layers = [layer.strip() for layer in text.split(",") if layer.strip()]
    unknown = [layer for layer in layers if layer not in LAYERS]
    if unknown or not layers:
        raise ValueError(f"layers {text!r}: a comma-separated list of {', '.join(LAYERS)}")
    return layers
