"""The soak run's measuring load: an MME (S13 over Diameter/TCP) and an MSC (MAP CheckIMEI
over M3UA/TCP, one association, many dialogues) sending queries of the population at a
steady rate, open loop, and judging every answer against the one expected (``Tally``).
Both reconnect when the agent goes away and comes back."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from diameter.answers import result_code_of
from diameter.capabilities import LocalNode
from diameter.constants import ResultCode
from diameter.transport import PeerConnection, connect
from sigtran import tcap
from sigtran.asp import AspClient, AspState, CloseConnection, DataReceived, Event
from sigtran.m3ua import SI_SCCP
from sigtran.sccp import SccpError, Udt, Xudt
from sigtran.sccp import decode_message as decode_sccp
from simulator.mme import build_ecr
from simulator.msc import (
    CheckImeiFailed,
    MscIdentity,
    MscLink,
    asp_handshake,
    check_imei_begin,
    check_imei_udt,
    describe,
    map_imei,
    request_data,
)
from simulator.soak_population import Case, FirstSights, Population

MME = LocalNode("mme.soak.localdomain", "localdomain", product_name="eir-soak-mme")
TIMEOUT = 2.0  # seconds: an answer later than this counts as unanswered (and as this latency)
REFUSED_S13 = {ResultCode.DIAMETER_UNABLE_TO_COMPLY, ResultCode.DIAMETER_TOO_BUSY}
REFUSED_MAP = {"SYSTEM_FAILURE", "abort"}
OK, WRONG, REFUSED, UNANSWERED = "ok", "wrong", "refused", "unanswered"
L = TypeVar("L")  # the link a load sends on: a Diameter peer connection, an M3UA association


@dataclass
class Tally:
    """Every answer judged: counts by (interface, class, verdict), the latencies with when
    each request left (to tell the fault windows apart afterwards), the first wrong answers
    in words, and the first sights the right answers rested on."""

    verdicts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    sent_at: list[float] = field(default_factory=list)  # monotonic
    latency: list[float] = field(default_factory=list)  # seconds
    new_pair: list[bool] = field(default_factory=list)  # the answer had to wait for a first sight's commit
    unanswered: list[bool] = field(default_factory=list)
    wrong_examples: list[str] = field(default_factory=list)
    first_sights: FirstSights = field(default_factory=FirstSights)
    # (peer, session) as the answer log names them -> the expected rule: (Origin-Host,
    # Session-Id) on S13, (calling GT, otid in hex) on MAP
    sessions: dict[tuple[str, str], str] = field(default_factory=dict)

    def is_new(self, case: Case) -> bool:
        """Whether an answer to ``case`` now would rest on a first sight not yet answered on."""
        return case.expected.observed and (case.key, case.imsi or "") not in self.first_sights.answered

    def record(self, interface: str, case: Case, sent: float, verdict: str, got: str, new: bool) -> None:
        self.verdicts[(interface, case.kind, verdict)] += 1
        self.sent_at.append(sent)
        self.new_pair.append(new)
        self.unanswered.append(verdict == UNANSWERED)
        self.latency.append(min(time.monotonic() - sent, TIMEOUT) if verdict != UNANSWERED else TIMEOUT)
        if verdict == WRONG and len(self.wrong_examples) < 10:
            self.wrong_examples.append(f"{interface} {case.kind} {case.key} IMSI {case.imsi}: expected "
                                       f"{case.expected.status} ({case.expected.rule}), got {got}")
        if verdict == OK and case.expected.observed:
            self.first_sights.note(case, datetime.now(UTC))

    def count(self, verdict: str | None = None) -> int:
        return sum(n for (_, _, v), n in self.verdicts.items() if verdict is None or v == verdict)


class Target:
    """Where the agent listens now (the same ports across restarts)."""

    def __init__(self, host: str, s13_port: int, m3ua_port: int) -> None:
        self.host, self.s13_port, self.m3ua_port = host, s13_port, m3ua_port


async def paced(rate: float, until: float, send: Any) -> None:
    """Call ``send()`` ``rate`` times a second until ``until`` (monotonic), open loop: a
    late tick is not made up for more than a second back."""
    interval = 1 / rate
    tick = time.monotonic()
    while tick < until:
        await send()
        tick += interval
        now = time.monotonic()
        if tick < now - 1:
            tick = now
        await asyncio.sleep(max(0.0, tick - now))


class PacedLoad(Generic[L]):
    """One interface's load: a query ``rate`` times a second on the link it holds (made
    again, and counted in ``connects``, whenever the agent went away), each answer judged
    in its own task; ``run`` waits for the last answer and closes the link."""

    def __init__(self, target: Target, population: Population, tally: Tally) -> None:
        self.target, self.population, self.tally = target, population, tally
        self.tasks: set[asyncio.Task[None]] = set()
        self.connects = 0

    async def run(self, rate: float, until: float) -> None:
        await paced(rate, until, self._send)
        await asyncio.gather(*self.tasks)
        await self._close()

    async def _send(self) -> None:
        link = await self._connected()
        if link is None:
            return
        task = asyncio.create_task(self._query(link))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _connected(self) -> L | None:
        """The link, made again when it is gone; None when the agent cannot be reached now."""
        raise NotImplementedError

    def _query(self, link: L) -> Coroutine[Any, Any, None]:
        """The next query on ``link``: its case is picked now, its answer awaited in a task."""
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError


# --- S13 ----------------------------------------------------------------------------------------

class S13Load(PacedLoad[PeerConnection]):
    def __init__(self, target: Target, population: Population, tally: Tally) -> None:
        super().__init__(target, population, tally)
        self.connection: PeerConnection | None = None
        self.numbers = itertools.count()

    def _query(self, link: PeerConnection) -> Coroutine[Any, Any, None]:
        return self._ask(link, self.population.pick(), next(self.numbers))

    async def _close(self) -> None:
        if self.connection is not None and self.connection.transport is not None:
            await self.connection.disconnect(timeout=2)

    async def _connected(self) -> PeerConnection | None:
        if self.connection is not None and not self.connection.closed.done():
            return self.connection
        self.connection = None
        try:
            self.connection = await asyncio.wait_for(connect(MME, self.target.host, self.target.s13_port), 2)
            self.connects += 1
        except (OSError, TimeoutError):
            await asyncio.sleep(0.1)
        return self.connection

    async def _ask(self, connection: PeerConnection, case: Case, number: int) -> None:
        session = f"soak;{number}"
        self.tally.sessions[(MME.origin_host, f"{MME.origin_host};{session}")] = case.expected.rule
        request = build_ecr(MME, case.key, case.imsi, session=session)
        new = self.tally.is_new(case)
        sent = time.monotonic()
        try:
            answer = await connection.request(request, timeout=TIMEOUT)
        except (TimeoutError, ConnectionError, RuntimeError):  # RuntimeError: closed since we looked
            self.tally.record("S13", case, sent, UNANSWERED, "no answer", new)
            return
        code = result_code_of(answer)
        status = answer.value("Equipment-Status")
        if code == ResultCode.DIAMETER_SUCCESS and status is not None and int(status) == case.expected.status:
            verdict = OK
        elif code in REFUSED_S13:
            verdict = REFUSED
        else:
            verdict = WRONG
        self.tally.record("S13", case, sent, verdict, f"result {code} status {status}", new)


# --- MAP ----------------------------------------------------------------------------------------

class MapAssociation(MscLink):
    """An ASP association that carries many CheckIMEI dialogues at once: answers go to the
    dialogue whose otid they name."""

    def __init__(self, asp: AspClient, identity: MscIdentity, otids: Iterator[int]) -> None:
        super().__init__(asp)
        self.identity = identity
        self.otids = otids  # shared by the load's associations: an otid is never used twice in a run
        self.waiting: dict[bytes, tuple[asyncio.Future[tuple[str, int | None]], int]] = {}
        self.active = False
        self.sessions: dict[tuple[str, str], str] = {}  # the load sets its tally's (see Tally.sessions)

    def _flush(self, events: list[Event]) -> None:
        out = self.asp.data_to_send()
        if out and self.transport is not None:
            self.transport.write(out)
        for event in events:
            if isinstance(event, DataReceived):
                self._answer(event)
            elif not self.active:
                self.events.put_nowait(event)  # for the handshake
            if isinstance(event, CloseConnection) and self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        for future, _ in self.waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("association lost"))
        self.waiting.clear()

    def _answer(self, event: DataReceived) -> None:
        if event.data.si != SI_SCCP:
            return
        try:
            sccp = decode_sccp(event.data.user_data)
            if not isinstance(sccp, Udt | Xudt):
                return
            message = tcap.decode(sccp.data)
        except (SccpError, tcap.TcapError):
            return
        waiting = self.waiting.pop(message.dtid or b"", None)
        if waiting is not None and not waiting[0].done():
            future, version = waiting
            future.set_result(describe(message, peer="", imei="", imei_sent="", version=version).result_key())

    async def ask(self, case: Case, version: int) -> tuple[str, int | None]:
        otid = (next(self.otids) & 0xFFFFFFFF).to_bytes(4, "big")
        self.sessions[(self.identity.calling_gt, otid.hex())] = case.expected.rule
        future: asyncio.Future[tuple[str, int | None]] = self.loop.create_future()
        self.waiting[otid] = (future, version)
        begin = check_imei_begin(otid, map_imei(case.imei15), version, case.imsi)
        try:
            self.send(request_data(self.identity, check_imei_udt(self.identity, begin), otid[-1] & 0x0F),
                      self.identity.routing_context)
        except RuntimeError as error:  # the ASP is no longer active: the association is going away
            self.waiting.pop(otid, None)
            raise ConnectionError(str(error)) from None
        try:
            return await asyncio.wait_for(future, TIMEOUT)
        finally:
            self.waiting.pop(otid, None)


class MapLoad(PacedLoad[MapAssociation]):
    """CheckIMEI dialogues: a third v3 (no IMSI: only classes the SIM cannot change), the rest
    v2 with the vendor variant's IMSI, which reaches the decision as S13's User-Name does."""

    def __init__(self, target: Target, population: Population, tally: Tally) -> None:
        super().__init__(target, population, tally)
        self.identity = MscIdentity()
        self.otids = itertools.count(1)
        self.association: MapAssociation | None = None

    def _query(self, link: MapAssociation) -> Coroutine[Any, Any, None]:
        v3 = self.population.rng.random() < 1 / 3
        return self._ask(link, self.population.pick(with_imsi=not v3), 3 if v3 else 2)

    async def _close(self) -> None:
        if self.association is not None and self.association.transport is not None:
            self.association.transport.close()

    async def _connected(self) -> MapAssociation | None:
        association = self.association
        if association is not None and association.transport is not None and association.asp.state is AspState.ACTIVE:
            return association
        if association is not None and association.transport is not None:
            association.transport.close()
        self.association = None
        loop = asyncio.get_running_loop()
        try:
            _, link = await asyncio.wait_for(loop.create_connection(
                lambda: MapAssociation(AspClient(self.identity.settings()), self.identity, self.otids),
                self.target.host, self.target.m3ua_port), 2)
        except (OSError, TimeoutError):
            await asyncio.sleep(0.1)
            return None
        try:
            await asp_handshake(link, "agent", 2)
        except CheckImeiFailed:  # the agent went away again, or is still starting
            if link.transport is not None:
                link.transport.close()
            await asyncio.sleep(0.1)
            return None
        link.active = True
        link.sessions = self.tally.sessions
        self.association = link
        self.connects += 1
        return link

    async def _ask(self, association: MapAssociation, case: Case, version: int) -> None:
        new = self.tally.is_new(case)
        sent = time.monotonic()
        try:
            outcome, status = await association.ask(case, version)
        except (TimeoutError, ConnectionError):
            self.tally.record(f"MAP v{version}", case, sent, UNANSWERED, "no answer", new)
            return
        if outcome == "result" and status == case.expected.status:
            verdict = OK
        elif outcome in REFUSED_MAP:
            verdict = REFUSED
        else:
            verdict = WRONG
        self.tally.record(f"MAP v{version}", case, sent, verdict, f"{outcome} {status}", new)
