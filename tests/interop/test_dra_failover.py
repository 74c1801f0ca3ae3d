"""Two real agents behind freeDiameter 1.2.1 as the DRA, on one PostgreSQL registry: one of
them is SIGKILLed under load, the DRA fails over, and the killed agent rejoins.

The registry is the session's throwaway PostgreSQL (tests/postgres.py), made with the real
``eir registry init`` and ``eir registry import``. Two ``eir serve`` processes, Origin-Host
eir-a and eir-b, are ConnectPeers of freeDiameter (TCP, TcTimer 1), and rt_default gives
both the same score for the realm: freeDiameter picks one of two equal candidates at random
for each request (``fd_rtd_candidate_reorder``), so they share the load. The MME is our own
Diameter stack, connected to the DRA alone, sending ECRs at a steady rate.

At KILL_AT, a few milliseconds after a burst of ECRs left, agent A gets SIGKILL: its kernel
closes the connection, freeDiameter sees it broken, leaves STATE_OPEN and sends the requests
it had sent to A and not yet seen answered again, with the T flag, to B (``fd_p_sr_failover``;
those still queued for A go back to routing too, ``fd_peer_failover_msg``). It never answers
them 3002 itself while B is open, so none should be lost. Its debug log (-dd) says "Failing
over message sent to 'eir-a...'" for each: that count is exactly the requests in flight on A
when it died, and the test asserts that no more requests than that went unanswered or got an
error (the MME alone cannot tell which agent holds a request: it also prints every request
in flight at the kill, A's and B's).

Then A is started again on the same port. freeDiameter tries to connect every 0 to 4 s
(TcTimer 1: ``fd_psm_next_timeout`` waits TcTimer - 2 s, at least 0, plus a random 0 to 4 s),
and after the CER/CEA it holds the peer in STATE_REOPEN for three DWR/DWA exchanges, sent
back to back (RFC 3539), before STATE_OPEN: so A is OPEN within REJOIN_BOUND of listening
again, and answers from A come back in the MME's stream.

RATE is what one agent carries alone with room to spare on this shared 2-core host (the
printout gives B's CPU time per answer): past what one agent can answer, B would fall
behind after the kill and refuse with 3004 DIAMETER_TOO_BUSY, which is capacity, not
failover. The figures are printed (``pytest -s``). With CI=true a missing freeDiameter or
PostgreSQL fails instead of skipping.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import pytest

from diameter.answers import result_code_of
from diameter.capabilities import LocalNode
from diameter.constants import EquipmentStatus, ResultCode
from diameter.transport import PeerConnection, connect
from registry.imei import luhn_check_digit
from simulator.agent_process import AgentProcess, run_eir
from simulator.mme import build_ecr
from tests.interop.freediameter import FreeDiameterRelay, Peer, RelayConfig
from tests.postgres import reset
from tests.tools import LOOPBACK, free_tcp_port, require_tool

pytestmark = pytest.mark.interop

REALM = "localdomain"
A, B = "eir-a.localdomain", "eir-b.localdomain"
MME = LocalNode("mme01.localdomain", REALM, product_name="eir-failover-mme")
RATE = 150  # ECRs per second, steady: what one agent can carry alone on a busy 2-core host
TICK = 0.1  # they leave in bursts of RATE * TICK, so that a burst is in flight when A is killed
KILL_DELAY = 0.003  # from the burst to the SIGKILL: the DRA has relayed it, A has not answered all of it
DURATION = 8.0  # seconds of load, at least; longer until A answers again (up to LAST_CALL)
KILL_AT = 3.0  # seconds into the load: SIGKILL agent A
ANSWER_TIMEOUT = 5.0  # an ECR without an answer by then is counted lost
TC_TIMER = 1  # freeDiameter's reconnection timer: an attempt every 0 to 4 s (see the module text)
REJOIN_BOUND = 4.0 + 2.0  # from A listening again to the DRA's STATE_OPEN: 4 s of timer, 2 s of CER/CEA on a busy host
LAST_CALL = 25.0  # the load stops here even if A never answered again (the test then fails)
WHITE, BLACK = 200, 50  # the imported devices; every ECR asks for one of them


@dataclass
class Ask:
    """One ECR of the load: when it left, and what came back (times in seconds since the load began)."""

    imei: str
    sent: float
    answered: float | None = None
    origin: str | None = None
    result: int | None = None
    status: int | None = None
    failure: str | None = None  # why no answer came

    @property
    def open(self) -> bool:
        return self.answered is None and self.failure is None


@dataclass
class Events:
    killed: float | None = None
    in_flight_at_kill: int = 0
    a_listening: float | None = None  # A started again, on the same port
    a_open: float | None = None  # the DRA's log shows A in STATE_OPEN again
    restarted: AgentProcess | None = None
    restart: asyncio.Future[None] | None = None  # the task that starts A again


@dataclass
class Load:
    """ECRs at RATE per second on one connection to the DRA, each waited for on its own."""

    connection: PeerConnection
    devices: dict[str, int]  # IMEI -> the Equipment-Status it must get
    asks: list[Ask] = field(default_factory=list)
    started: float = 0.0

    def now(self) -> float:
        return time.monotonic() - self.started

    def in_flight(self) -> int:
        return sum(1 for ask in self.asks if ask.open)

    def answered_by(self, origin: str, after: float) -> int:
        return sum(1 for ask in self.asks if ask.origin == origin and ask.answered is not None
                   and ask.answered > after)

    async def ask(self, n: int) -> None:
        imeis = list(self.devices)
        imei = imeis[n % len(imeis)]
        entry = Ask(imei, self.now())
        self.asks.append(entry)
        request = build_ecr(MME, imei, f"43601{n % len(imeis):010d}", session=f"failover;{n}")
        try:
            answer = await self.connection.request(request, ANSWER_TIMEOUT)
        except (TimeoutError, ConnectionError) as exc:
            entry.failure = type(exc).__name__
            return
        entry.answered, entry.origin = self.now(), answer.value("Origin-Host")
        entry.result, entry.status = result_code_of(answer), answer.value("Equipment-Status")

    async def run(self, events: Events, kill_a: Callable[[], None]) -> None:
        """Send at RATE, a burst every TICK, until DURATION has passed and A answered again
        since it came back. At KILL_AT, KILL_DELAY after a burst left, ``kill_a()``: the
        burst is then on its way to or inside A."""
        self.started = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        sent = 0
        while not self._done(events):
            due = int(self.now() * RATE)
            for n in range(sent, due):
                task = asyncio.ensure_future(self.ask(n))
                pending.add(task)
                task.add_done_callback(pending.discard)
            sent = max(sent, due)
            if events.killed is None and self.now() >= KILL_AT:
                await asyncio.sleep(KILL_DELAY)
                events.killed, events.in_flight_at_kill = self.now(), self.in_flight()
                kill_a()
            await asyncio.sleep(TICK)
        await asyncio.gather(*pending)

    def _done(self, events: Events) -> bool:
        elapsed = self.now()
        if elapsed < DURATION:
            return False
        back = events.a_listening is not None and self.answered_by(A, events.a_listening) > 0
        return back or elapsed > LAST_CALL


def make_registry(url: str, folder: Path) -> dict[str, int]:
    """WHITE white and BLACK black IMEIs imported with the real CLI; each with its status."""
    reset(url)
    run_eir(url, "registry", "init")
    imeis = [key + luhn_check_digit(key) for key in (f"35209977{n:06d}" for n in range(WHITE + BLACK))]
    lists = {"white": imeis[:WHITE], "black": imeis[WHITE:]}
    for name, members in lists.items():
        path = folder / f"{name}.csv"
        path.write_text("imei,reason\n" + "".join(f"{imei},failover test\n" for imei in members))
        run_eir(url, "registry", "import", name, str(path))
    return {**dict.fromkeys(lists["white"], EquipmentStatus.WHITELISTED),
            **dict.fromkeys(lists["black"], EquipmentStatus.BLACKLISTED)}


def start_agent(folder: Path, url: str, identity: str, port: int | None = None) -> AgentProcess:
    folder.mkdir(exist_ok=True)
    return AgentProcess(folder, url, "--origin-host", identity, "--allow-peer", "dra.localdomain",
                        "--allow-peer", "mme*.localdomain", port=port)


def killer(load: Load, events: Events, agent: AgentProcess, relay: FreeDiameterRelay, url: str,
           folder: Path) -> Callable[[], None]:
    """What the load calls at KILL_AT: SIGKILL A, then (in a task) start it again on its port
    and wait for the DRA to open it again."""
    async def restart() -> None:
        await asyncio.to_thread(agent.process.wait, 10)
        events.restarted = await asyncio.to_thread(start_agent, folder / "a-again", url, A, agent.port)
        events.a_listening = load.now()
        if await asyncio.to_thread(relay.wait_peer_open, A, REJOIN_BOUND + 5.0, 2):
            events.a_open = load.now()

    def kill() -> None:
        agent.process.kill()
        events.restart = asyncio.ensure_future(restart())
    return kill


def test_sigkill_one_agent_under_load_the_dra_fails_over_and_it_rejoins(tmp_path: Path, postgres_url: str) -> None:
    require_tool("freeDiameterd")
    devices = make_registry(postgres_url, tmp_path)
    agents = {A: start_agent(tmp_path / "a", postgres_url, A), B: start_agent(tmp_path / "b", postgres_url, B)}
    config = RelayConfig(port=free_tcp_port(), realm=REALM, tc_timer=TC_TIMER, debug_level=2,
                         peers=[Peer(identity, LOOPBACK, agent.port) for identity, agent in agents.items()],
                         routes={REALM: (A, B)})
    events = Events()
    relay = FreeDiameterRelay(tmp_path / "dra", config).start()
    try:
        for identity in agents:
            assert relay.wait_peer_open(identity, 10.0), relay.log_tail()

        async def main() -> Load:
            connection = await connect(MME, *relay.address)
            load = Load(connection, devices)
            await load.run(events, killer(load, events, agents[A], relay, postgres_url, tmp_path))
            if events.restart is not None:
                await events.restart
            await connection.disconnect()
            return load

        load = asyncio.run(main())
        b_cpu = cpu_seconds(agents[B].process.pid)
    finally:
        relay.stop()  # before the agents: else it waits for them on shutdown
        for agent in (*agents.values(), events.restarted):
            if agent is not None:
                agent.stop()
    figures = Figures.of(load, events, relay, b_cpu)
    print(figures.text())
    assert events.killed is not None and events.a_listening is not None, figures.text()
    assert figures.answered[(A, "before")] > 0 and figures.answered[(B, "before")] > 0, figures.text()
    assert figures.answered[(B, "after")] > 0, figures.text()  # answers kept coming, from B
    served = [ask for ask in load.asks if ask.result == ResultCode.DIAMETER_SUCCESS]
    assert all(ask.status == devices[ask.imei] for ask in served), "an agent answered a device wrongly"
    assert len(load.asks) - len(served) <= figures.failed_over <= len(load.asks), figures.text()
    lost = {identity: relay.times_left_open(identity, "STATE_CLOSED") for identity in (A, B)}
    assert lost == {A: 1, B: 0}, relay.log_tail()  # the DRA saw A's connection break, once, and B's never
    assert events.a_open is not None and events.a_open - events.a_listening <= REJOIN_BOUND, figures.text()
    assert figures.answered[(A, "again")] > 0, figures.text()
    restarted = events.restarted
    assert restarted is not None and any(line["peer"] == MME.origin_host for line in restarted.answers()), \
        "the answer log of A, started again, holds no answer to the MME"


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a live process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Figures:
    """What the run measured, for the assertions and the printout."""

    ecrs: int
    seconds: float
    killed: float
    in_flight_at_kill: int
    failed_over: int  # "Failing over message sent to A" in freeDiameter's debug log
    answered: Counter[tuple[str | None, str]]  # (Origin-Host, before/after the kill or "again") -> answers
    errors: Counter[int | None]  # Result-Codes other than success
    unanswered: Counter[str | None]  # why: TimeoutError, ConnectionError
    straddling: list[float]  # requests sent before the kill, answered after: seconds after the kill
    longest_silence: float  # between two answers, from 1 s before the kill on
    latency: dict[str, tuple[float, float]]  # before/after the kill: median and largest, in seconds
    a_listening: float | None
    a_open: float | None
    a_again: float | None  # the first answer from A started again
    b_cpu_per_answer: float

    @classmethod
    def of(cls, load: Load, events: Events, relay: FreeDiameterRelay, b_cpu: float) -> Figures:
        killed = events.killed if events.killed is not None else float("inf")
        back = events.a_listening if events.a_listening is not None else float("inf")
        done = [(ask, ask.answered) for ask in load.asks if ask.answered is not None]
        times = sorted(at for _, at in done)
        by_phase = Counter((ask.origin, "again" if at > back and ask.origin == A else
                            "after" if at > killed else "before") for ask, at in done)
        latency = {phase: sorted(at - ask.sent for ask, at in done if (ask.sent < killed) == (phase == "before"))
                   for phase in ("before", "after")}
        return cls(
            ecrs=len(load.asks), seconds=load.asks[-1].sent if load.asks else 0.0, killed=killed,
            in_flight_at_kill=events.in_flight_at_kill,
            failed_over=relay.log_text().count(f"Failing over message sent to '{A}'"), answered=by_phase,
            errors=Counter(ask.result for ask, _ in done if ask.result != ResultCode.DIAMETER_SUCCESS),
            unanswered=Counter(ask.failure for ask in load.asks if ask.answered is None),
            straddling=[at - killed for ask, at in done if ask.sent < killed < at],
            longest_silence=max((b - a for a, b in pairwise(times) if a > killed - 1.0),
                                default=0.0),
            latency={phase: (values[len(values) // 2], values[-1]) if values else (0.0, 0.0)
                     for phase, values in latency.items()},
            a_listening=events.a_listening, a_open=events.a_open,
            a_again=min((at for ask, at in done if ask.origin == A and at > back), default=None),
            b_cpu_per_answer=b_cpu / max(1, sum(n for (origin, _), n in by_phase.items() if origin == B)))

    def text(self) -> str:
        ms = {phase: f"{median * 1000:.0f}/{largest * 1000:.0f}" for phase, (median, largest) in self.latency.items()}
        return (
            f"\nDRA failover: {self.ecrs} ECRs at {RATE}/s over {self.seconds:.1f} s through freeDiameter 1.2.1 "
            f"(rt_default, A and B at equal score, TcTimer {TC_TIMER}), agents on PostgreSQL;\n"
            f"  A SIGKILLed at {self.killed:.2f} s, {self.in_flight_at_kill} ECRs in flight (A's and B's); "
            f"freeDiameter failed {self.failed_over} of them over to B (T flag);\n"
            f"  answers: A before the kill {self.answered[(A, 'before')]}, B before {self.answered[(B, 'before')]}, "
            f"B after {self.answered[(B, 'after')]}, A after it rejoined {self.answered[(A, 'again')]}; "
            f"error answers {dict(self.errors)}; no answer {sum(self.unanswered.values())} {dict(self.unanswered)};\n"
            f"  sent before the kill and answered after it: {len(self.straddling)}, the last "
            f"{max(self.straddling, default=0.0) * 1000:.0f} ms after the kill; longest silence between two answers "
            f"from 1 s before the kill: {self.longest_silence * 1000:.0f} ms; latency median/max in ms: "
            f"sent before the kill {ms['before']}, after {ms['after']}; B's CPU per answer "
            f"{self.b_cpu_per_answer * 1000:.2f} ms;\n"
            f"  A started again at {_at(self.a_listening)}, the DRA had it OPEN at {_at(self.a_open)} "
            f"({_since(self.a_open, self.a_listening)} after it listened), first answer from A again at "
            f"{_at(self.a_again)}")


def _at(moment: float | None) -> str:
    return "never" if moment is None else f"{moment:.2f} s"


def _since(later: float | None, earlier: float | None) -> str:
    return "never" if later is None or earlier is None else f"{later - earlier:.2f} s"
