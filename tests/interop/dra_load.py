"""The MME side of a DRA failover run: ECRs at a steady rate through a Diameter relay to two
agents, one of them SIGKILLed on the way and started again, and the figures of what came back.

Used by tests/interop/test_dra_failover.py (freeDiameter and the agents on the host, TCP) and
by tests/uml/guest_dra.py (the same inside User-Mode Linux, over SCTP). The MME is our own
Diameter stack (``diameter.transport.connect``), connected to the relay alone; each ECR is
waited for on its own, so the run knows for each one when it left, when and from whom its
answer came, or why none came.

``Plan`` says how hard and when: RATE ECRs per second leave in bursts every ``tick``, and
``kill_delay`` after the first burst past ``kill_at`` the victim gets SIGKILL, so that a burst
is on its way to it or inside it. The run goes on for ``duration`` at least, and then until the
victim, started again, answered once more (or ``last_call``).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from diameter.answers import result_code_of
from diameter.capabilities import LocalNode
from diameter.constants import EquipmentStatus, ResultCode
from diameter.transport import PeerConnection
from registry.imei import luhn_check_digit
from simulator.agent_process import AgentProcess, run_eir
from simulator.mme import build_ecr
from tests.interop.freediameter import FreeDiameterRelay

MME = LocalNode("mme01.localdomain", "localdomain", product_name="eir-failover-mme")


def import_devices(url: str, folder: Path, white: int = 200, black: int = 50) -> dict[str, int]:
    """``white`` white and ``black`` black IMEIs imported into the registry at ``url`` with the
    real CLI (``eir registry init``, then ``eir registry import``; CSV files in ``folder``);
    each IMEI with the Equipment-Status it must get."""
    run_eir(url, "registry", "init")
    imeis = [key + luhn_check_digit(key) for key in (f"35209977{n:06d}" for n in range(white + black))]
    lists = {"white": imeis[:white], "black": imeis[white:]}
    for name, members in lists.items():
        path = folder / f"{name}.csv"
        path.write_text("imei,reason\n" + "".join(f"{imei},failover test\n" for imei in members))
        run_eir(url, "registry", "import", name, str(path))
    return {**dict.fromkeys(lists["white"], int(EquipmentStatus.WHITELISTED)),
            **dict.fromkeys(lists["black"], int(EquipmentStatus.BLACKLISTED))}


@dataclass(frozen=True)
class Plan:
    """How hard the MME asks, whom it kills and when (seconds since the load began)."""

    victim: str  # the Origin-Host of the agent killed and started again
    survivor: str
    rate: int  # ECRs per second
    duration: float  # seconds of load, at least
    kill_at: float
    tick: float = 0.1  # a burst of rate * tick ECRs every tick
    kill_delay: float = 0.003  # from a burst leaving to the SIGKILL
    answer_timeout: float = 5.0  # an ECR without an answer by then is counted unanswered
    last_call: float = 25.0  # the load stops here even if the victim never answered again
    rejoin_wait: float = 11.0  # how long to watch the relay's log for the victim's STATE_OPEN again


@dataclass
class Ask:
    """One ECR: when it left, and what came back (times in seconds since the load began)."""

    imei: str
    sent: float
    answered: float | None = None
    origin: str | None = None
    result: int | None = None
    status: int | None = None
    failure: str | None = None  # why no answer came: TimeoutError, ConnectionError

    @property
    def open(self) -> bool:
        return self.answered is None and self.failure is None


@dataclass
class Events:
    """What happened to the victim, when."""

    killed: float | None = None
    in_flight_at_kill: int = 0  # ECRs without an answer at that moment, the victim's and the survivor's
    listening: float | None = None  # started again, on the same port
    reopened: float | None = None  # the relay's log shows it in STATE_OPEN again
    restarted: AgentProcess | None = None
    restart: asyncio.Future[None] | None = None  # the task that starts it again


@dataclass
class Load:
    """ECRs at the plan's rate on one connection to the relay."""

    connection: PeerConnection
    devices: dict[str, int]  # IMEI -> the Equipment-Status it must get
    plan: Plan
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
            answer = await self.connection.request(request, self.plan.answer_timeout)
        except (TimeoutError, ConnectionError) as exc:
            entry.failure = type(exc).__name__
            return
        entry.answered, entry.origin = self.now(), answer.value("Origin-Host")
        entry.result, entry.status = result_code_of(answer), answer.value("Equipment-Status")

    async def run(self, events: Events, kill: Callable[[], None]) -> None:
        """Send at the plan's rate, a burst every tick, until the run is over; at ``kill_at``,
        ``kill_delay`` after a burst left, ``kill()``."""
        self.started = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        sent = 0
        while not self._done(events):
            due = int(self.now() * self.plan.rate)
            for n in range(sent, due):
                task = asyncio.ensure_future(self.ask(n))
                pending.add(task)
                task.add_done_callback(pending.discard)
            sent = max(sent, due)
            if events.killed is None and self.now() >= self.plan.kill_at:
                await asyncio.sleep(self.plan.kill_delay)
                events.killed, events.in_flight_at_kill = self.now(), self.in_flight()
                kill()
            await asyncio.sleep(self.plan.tick)
        await asyncio.gather(*pending)

    def _done(self, events: Events) -> bool:
        elapsed = self.now()
        if elapsed < self.plan.duration:
            return False
        back = events.listening is not None and self.answered_by(self.plan.victim, events.listening) > 0
        return back or elapsed > self.plan.last_call


def killer(load: Load, events: Events, victim: AgentProcess, relay: FreeDiameterRelay,
           start_again: Callable[[], AgentProcess]) -> Callable[[], None]:
    """What the load calls at ``kill_at``: SIGKILL the victim, then (in a task) wait for it to be
    gone, ``start_again()`` (in a thread: it blocks until the agent listens), and watch the
    relay's log for the victim in STATE_OPEN a second time."""
    async def restart() -> None:
        await asyncio.to_thread(victim.process.wait, 10)
        events.restarted = await asyncio.to_thread(start_again)
        events.listening = load.now()
        if await asyncio.to_thread(relay.wait_peer_open, load.plan.victim, load.plan.rejoin_wait, 2):
            events.reopened = load.now()

    def kill() -> None:
        victim.process.kill()
        events.restart = asyncio.ensure_future(restart())
    return kill


def retransmitted_requests(agent_log: str) -> int:
    """The T-flagged requests an agent served (not found among its answers: another node's
    failover), from the counters its last log line gives at exit; 0 when it counted none."""
    found = re.findall(r"'retransmitted_requests': (\d+)", agent_log)
    return int(found[-1]) if found else 0


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a live process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Figures:
    """What the run measured, flat (JSON as it is: the UML guest writes it to result.json)."""

    ecrs: int
    seconds: float
    killed: float
    in_flight_at_kill: int
    failed_over: int  # "Failing over message sent to VICTIM" in the relay's debug log (-dd)
    victim_before: int  # answers from the victim before the kill
    survivor_before: int
    survivor_after: int
    victim_again: int  # answers from the victim after it was started again
    served: int  # answers with DIAMETER_SUCCESS
    wrong: int  # ... whose Equipment-Status is not the device's
    agent_errors: dict[str, int]  # Result-Codes other than success from the agents -> answers
    relay_errors: dict[str, int]  # ... from anyone else: the relay itself (3002 UNABLE_TO_DELIVER, ...)
    unanswered: dict[str, int]  # why -> ECRs
    straddling: int  # sent before the kill, answered after it
    last_straddling: float  # seconds after the kill, the last of those
    longest_silence: float  # seconds between two answers, from 1 s before the kill on
    latency_before: tuple[float, float]  # median and largest of the ECRs sent before the kill
    latency_after: tuple[float, float]
    listening: float | None
    reopened: float | None
    first_again: float | None  # the first answer from the victim started again
    survivor_cpu_per_answer: float

    @property
    def lost(self) -> int:
        """ECRs the failover could be blamed for: no answer, or an error from the relay itself."""
        return sum(self.unanswered.values()) + sum(self.relay_errors.values())

    @classmethod
    def of(cls, load: Load, events: Events, relay: FreeDiameterRelay, survivor_cpu: float) -> Figures:
        plan = load.plan
        killed = events.killed if events.killed is not None else float("inf")
        back = events.listening if events.listening is not None else float("inf")
        done = [(ask, ask.answered) for ask in load.asks if ask.answered is not None]
        times = sorted(at for _, at in done)
        phase = Counter(_phase(ask.origin == plan.victim, at, killed, back) for ask, at in done)
        straddling = [at - killed for ask, at in done if ask.sent < killed < at]
        served = [ask for ask, _ in done if ask.result == ResultCode.DIAMETER_SUCCESS]
        survivor = phase["survivor before"] + phase["survivor after"]
        return cls(
            ecrs=len(load.asks), seconds=load.asks[-1].sent if load.asks else 0.0, killed=killed,
            in_flight_at_kill=events.in_flight_at_kill,
            failed_over=relay.log_text().count(f"Failing over message sent to '{plan.victim}'"),
            victim_before=phase["victim before"], survivor_before=phase["survivor before"],
            survivor_after=phase["survivor after"], victim_again=phase["victim again"],
            served=len(served), wrong=sum(1 for ask in served if ask.status != load.devices[ask.imei]),
            agent_errors=_codes(ask for ask, _ in done if ask.origin in (plan.victim, plan.survivor)),
            relay_errors=_codes(ask for ask, _ in done if ask.origin not in (plan.victim, plan.survivor)),
            unanswered={str(why): n for why, n in Counter(ask.failure for ask in load.asks
                                                           if ask.answered is None).items()},
            straddling=len(straddling), last_straddling=max(straddling, default=0.0),
            longest_silence=max((b - a for a, b in pairwise(times) if a > killed - 1.0), default=0.0),
            latency_before=_spread([at - ask.sent for ask, at in done if ask.sent < killed]),
            latency_after=_spread([at - ask.sent for ask, at in done if ask.sent >= killed]),
            listening=events.listening, reopened=events.reopened,
            first_again=min((at for ask, at in done if ask.origin == plan.victim and at > back), default=None),
            survivor_cpu_per_answer=survivor_cpu / max(1, survivor))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Figures:
        return cls(**{**data, "latency_before": tuple(data["latency_before"]),
                      "latency_after": tuple(data["latency_after"])})

    def text(self, plan: Plan, relay: str) -> str:
        def ms(spread: tuple[float, float]) -> str:
            return f"{spread[0] * 1000:.0f}/{spread[1] * 1000:.0f}"
        unanswered = sum(self.unanswered.values())
        return (
            f"\nDRA failover: {self.ecrs} ECRs at {plan.rate}/s over {self.seconds:.1f} s through {relay};\n"
            f"  {plan.victim} SIGKILLed at {self.killed:.2f} s, {self.in_flight_at_kill} ECRs in flight "
            "(both agents'); "
            f"the relay failed {self.failed_over} of them over to {plan.survivor} (T flag);\n"
            f"  answers: victim before the kill {self.victim_before}, survivor before {self.survivor_before}, "
            f"survivor after {self.survivor_after}, victim after it rejoined {self.victim_again}; wrong statuses "
            f"{self.wrong}; error answers from the agents {self.agent_errors} (3004: too busy), from the relay "
            f"{self.relay_errors}; no answer {unanswered} {self.unanswered};\n"
            f"  sent before the kill and answered after it: {self.straddling}, the last "
            f"{self.last_straddling * 1000:.0f} ms after the kill; longest silence between two answers from 1 s "
            f"before the kill: {self.longest_silence * 1000:.0f} ms; latency median/max in ms: sent before the kill "
            f"{ms(self.latency_before)}, after {ms(self.latency_after)}; the survivor's CPU per answer "
            f"{self.survivor_cpu_per_answer * 1000:.2f} ms;\n"
            f"  victim started again at {_at(self.listening)}, the relay had it OPEN at {_at(self.reopened)} "
            f"({_since(self.reopened, self.listening)} after it listened), its first answer again at "
            f"{_at(self.first_again)}")


def _codes(asks: Iterable[Ask]) -> dict[str, int]:
    """Result-Codes other than success -> how many answers carried each."""
    return {str(code): n for code, n in Counter(ask.result for ask in asks
                                                  if ask.result != ResultCode.DIAMETER_SUCCESS).items()}


def _phase(victim: bool, at: float, killed: float, back: float) -> str:
    """Whose answer ("victim", "survivor") and when: before the kill, after it, or "again" (the
    victim, started again)."""
    if victim and at > back:
        return "victim again"
    return f"{'victim' if victim else 'survivor'} {'after' if at > killed else 'before'}"


def _spread(values: list[float]) -> tuple[float, float]:
    """Median and largest."""
    values = sorted(values)
    return (values[len(values) // 2], values[-1]) if values else (0.0, 0.0)


def _at(moment: float | None) -> str:
    return "never" if moment is None else f"{moment:.2f} s"


def _since(later: float | None, earlier: float | None) -> str:
    return "never" if later is None or earlier is None else f"{later - earlier:.2f} s"


def check_failover(figures: Figures, rejoin_bound: float, text: str) -> None:
    """What a failover run must show: both agents took load, the survivor answered after the
    kill, every answer was right, no more ECRs went unanswered or got an error from the relay
    than the relay had in flight on the victim, the agents' only error was 3004 (the survivor
    too busy to take the whole load on a crowded host: capacity, not failover; counted and
    printed), and the victim was OPEN again within ``rejoin_bound`` of listening and answered
    again."""
    assert figures.victim_before > 0 and figures.survivor_before > 0, f"the load was not shared{text}"
    assert figures.survivor_after > 0, f"no answer from the survivor after the kill{text}"
    assert figures.wrong == 0, f"an agent answered a device wrongly{text}"
    assert figures.lost <= figures.failed_over, f"more ECRs lost than were in flight on the victim{text}"
    assert set(figures.agent_errors) <= {str(int(ResultCode.DIAMETER_TOO_BUSY))}, f"an agent answered an error{text}"
    assert figures.listening is not None and figures.reopened is not None, f"the victim never rejoined{text}"
    assert figures.reopened - figures.listening <= rejoin_bound, f"the victim rejoined too late{text}"
    assert figures.victim_again > 0, f"no answer from the victim after it rejoined{text}"
