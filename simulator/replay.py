"""``eir sim replay``: send the requests of a capture to an agent and compare its answers with the captured ones.

The capture is read by ``replay_read`` (scapy) and paired by ``replay_items``; then, in frame order:

- S13: every ECR goes over one Diameter connection opened as an MME (CER/CEA first, DPR at
  the end). The captured octets are sent with the routing AVPs made ours: Origin-Host and
  Origin-Realm become the emulated MME's (the agent checks them against the CER), a
  Destination-Host is dropped (it named the captured EIR), the T bit is cleared and the
  Hop-by-Hop and End-to-End identifiers are fresh; every other AVP is sent as captured;
- MAP: every TCAP Begin is sent as captured (its transaction id, dialogue portion and
  invoke octets) in an SCCP UDT over M3UA, as ``simulator.msc.send_begin`` does;
- with a lab control socket (an agent started with ``--lab-clock``), the lab clock is set to
  the frame's time before each request when that is later than the clock (forward only), so a
  capture made on the lab clock over several days replays with its days.

Each answer is read as the captured one was (``replay_items.Answer``) and compared field by
field; a request the capture holds no answer for is replayed and counted as unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from diameter.constants import FLAG_T
from diameter.message import Message
from diameter.message import decode_message as decode_diameter
from diameter.transport import CapabilitiesRefused, PeerConnection, connect
from simulator import msc
from simulator.lab_client import LabControl
from simulator.mme import MmeIdentity, os_error_text
from simulator.replay_items import S13, Answer, Request, Requests, map_answer, requests_of, s13_answer
from simulator.replay_read import DIAMETER_PORT, M3UA_PORT, CaptureError, read_capture

__all__ = ["CaptureError", "ReplayFailed", "ReplayReport", "ReplayResult", "load_requests", "replay", "replay_file"]


class ReplayFailed(Exception):
    """The replay could not go on (the agent refused the connection...): one line."""


@dataclass
class ReplayResult:
    """One request of the capture, its captured answer and the agent's."""

    request: Request
    replayed: Answer
    differences: list[tuple[str, Any, Any]] = field(default_factory=list)

    @property
    def unanswered(self) -> bool:
        return self.request.answer is None

    def to_json(self) -> dict[str, Any]:
        return {**self.request.to_json(), "replayed": self.replayed.to_json(),
                "differences": [{"field": name, "captured": captured, "replayed": replayed}
                                for name, captured, replayed in self.differences]}

    def lines(self) -> list[str]:
        request = self.request
        head = f"frame {request.frame} {request.label} IMEI {request.imei}"
        if self.unanswered:
            return [f"{head}: no answer in the capture; the agent answered {self.replayed.text()}"]
        return [f"{head}: {name} captured {captured} (frame {request.answer_frame}), replayed {replayed}"
                for name, captured, replayed in self.differences]


@dataclass
class ReplayReport:
    capture: str
    results: list[ReplayResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def different(self) -> int:
        return sum(1 for result in self.results if result.differences)

    @property
    def unanswered(self) -> int:
        return sum(1 for result in self.results if result.unanswered)

    @property
    def same(self) -> int:
        return len(self.results) - self.different - self.unanswered

    def summary(self) -> str:
        interfaces = {S13: 0, "MAP": 0}
        for result in self.results:
            interfaces[result.request.interface] += 1
        return (f"{self.capture}: {len(self.results)} requests ({interfaces[S13]} S13, {interfaces['MAP']} MAP): "
                f"{self.same} same, {self.different} different, {self.unanswered} unanswered in the capture")

    def lines(self) -> list[str]:
        lines = [f"note: {note}" for note in self.notes]
        lines += [line for result in self.results for line in result.lines()]
        return [*lines, self.summary()]

    def to_json(self) -> dict[str, Any]:
        return {"capture": self.capture, "requests": len(self.results), "same": self.same,
                "different": self.different, "unanswered": self.unanswered, "notes": self.notes,
                "items": [result.to_json() for result in self.results]}


def load_requests(path: str | Path, *, diameter_ports: tuple[int, ...] = (DIAMETER_PORT,),
                  m3ua_ports: tuple[int, ...] = (M3UA_PORT,)) -> Requests:
    """The requests of the capture at ``path``; CaptureError when it holds none (or is no capture)."""
    contents = read_capture(path, diameter_ports=diameter_ports, m3ua_ports=m3ua_ports)
    found = requests_of(contents)
    if not found.requests:
        ports = ", ".join(str(p) for p in (*diameter_ports, *m3ua_ports))
        raise CaptureError(f"{path}: no S13 ECR and no MAP CheckIMEI invoke in {contents.frames} frames "
                           f"(Diameter or M3UA over TCP, ports {ports} or recognised by their headers, "
                           "or SCTP PPID 46 or 3; see --diameter-port and --m3ua-port)")
    return found


def our_ecr(wire: bytes, identity: MmeIdentity) -> Message:
    """The captured ECR with our routing AVPs (see the module's docstring)."""
    ecr = decode_diameter(wire)
    ecr.flags &= ~FLAG_T
    avps = []
    for avp in ecr.avps:
        if avp.name == "Destination-Host":
            continue
        if avp.name in ("Origin-Host", "Origin-Realm"):
            value = identity.origin_host if avp.name == "Origin-Host" else identity.origin_realm
            ecr.add(avp.name, value)
            avp = ecr.avps.pop()
        avps.append(avp)
    ecr.avps = avps
    return ecr


class _Replayer:
    def __init__(self, peer: tuple[str, int], map_peer: tuple[str, int] | None, timeout: float,
                 identity: MmeIdentity, msc_identity: msc.MscIdentity) -> None:
        self.peer, self.map_peer, self.timeout = peer, map_peer, timeout
        self.identity, self.msc_identity = identity, msc_identity
        self.connection: PeerConnection | None = None
        self.clock: LabControl | None = None
        self.clock_at: datetime | None = None

    async def s13(self, request: Request) -> Answer:
        if self.connection is None or self.connection.transport is None:
            self.connection = await self._connect()
        try:
            answer = await self.connection.request(our_ecr(request.wire, self.identity), self.timeout)
        except TimeoutError:
            return Answer(f"no answer within {self.timeout:g} s")
        except ConnectionError as exc:
            return Answer(f"no answer: {exc}")
        return s13_answer(answer)

    async def _connect(self) -> PeerConnection:
        host, port = self.peer
        try:
            return await connect(self.identity.node(), host, port, timeout=self.timeout)
        except CapabilitiesRefused as exc:
            raise ReplayFailed(f"{host}:{port} refused the capabilities exchange: {exc}") from None
        except TimeoutError:
            raise ReplayFailed(f"{host}:{port}: no CEA within {self.timeout:g} s") from None
        except OSError as exc:
            raise ReplayFailed(f"cannot connect to {host}:{port}: {os_error_text(exc)}") from None

    async def map(self, request: Request) -> Answer:
        if self.map_peer is None:
            raise ReplayFailed(f"frame {request.frame} holds a MAP CheckIMEI: give --map-peer HOST:PORT")
        host, port = self.map_peer
        try:
            outcome = await msc.send_begin(host, port, request.wire, request.otid, version=request.version or 1,
                                           imei=request.imei, imei_sent=request.imei, identity=self.msc_identity,
                                           timeout=self.timeout)
        except msc.CheckImeiFailed as exc:
            if exc.kind == "connect":
                raise ReplayFailed(str(exc)) from None
            return Answer(f"no answer: {exc.reason}")
        return map_answer(outcome)

    async def set_clock(self, request: Request) -> None:
        if self.clock is None:
            return
        at = datetime.fromtimestamp(request.time, UTC)
        if self.clock_at is None:
            self.clock_at = datetime.fromisoformat(await self.clock.time())
        if at > self.clock_at:
            self.clock_at = datetime.fromisoformat(await self.clock.set(at.isoformat()))

    async def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(OSError):
                await self.connection.disconnect(timeout=min(self.timeout, 5.0))
        if self.clock is not None:
            await self.clock.close()


async def replay(found: Requests, capture: str, peer: tuple[str, int], *, map_peer: tuple[str, int] | None = None,
                 control: str | Path | None = None, timeout: float = 5.0, identity: MmeIdentity | None = None,
                 msc_identity: msc.MscIdentity | None = None) -> ReplayReport:
    """Send every request of ``found`` and compare; ReplayFailed when the agent cannot be
    reached, LabControlError when the control socket refuses."""
    replayer = _Replayer(peer, map_peer, timeout, identity or MmeIdentity(), msc_identity or msc.MscIdentity())
    report = ReplayReport(capture, notes=list(found.notes))
    try:
        if control is not None:
            replayer.clock = await LabControl.connect(control)
        for request in found.requests:
            await replayer.set_clock(request)
            replayed = await (replayer.s13(request) if request.interface == S13 else replayer.map(request))
            differences = [] if request.answer is None else request.answer.differences(replayed)
            report.results.append(ReplayResult(request, replayed, differences))
    finally:
        await replayer.close()
    return report


def replay_file(path: str | Path, peer: tuple[str, int], **options: Any) -> ReplayReport:
    """``load_requests`` then ``replay`` (``options``: diameter_ports, m3ua_ports and replay's)."""
    ports = {name: options.pop(name) for name in ("diameter_ports", "m3ua_ports") if name in options}
    found = load_requests(path, **ports)
    return asyncio.run(replay(found, str(path), peer, **options))
