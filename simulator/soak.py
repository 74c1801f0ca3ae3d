"""A soak and fault run against a real ``eir serve`` (S13 over TCP, MAP over M3UA/TCP):
an hour of a busy node's life compressed into a bounded run that stops by itself.

Throughout, an MME and an MSC ask at a steady rate about a population whose right answers
are known (``simulator.soak_population``), and every answer is judged. Around them, at
fixed points of the run (fractions of its length):

- 0.05-0.95  idle connections on both ports, never saying a word (reopened when closed);
- 0.08-0.25  and 0.80-0.92: fuzzed Diameter and M3UA frames on side connections;
- 0.28-0.40  an MME that sends requests and never reads its answers;
- 0.45       another process holds ``BEGIN EXCLUSIVE`` on the registry for a while;
- 0.58       the agent is killed (SIGKILL) and started again on the same registry;
- 0.72       the registry is locked again, and the agent is killed in the middle of it;
             the lock goes, the agent comes back.

After each kill (agent dead, before the restart) and at the end, every first sight an
answer rested on must be in the sighting table, first seen no later than the answer came.
The agent's RSS is sampled all along. Latency is measured per answer by the client, from
send to receipt; the fault windows (each lock, each restart, plus a second after each)
are told apart. Hostile peers run in a process of their own (``simulator.soak_peers``).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.agent_process import LOOPBACK, AgentProcess, free_port
from simulator.soak_load import OK, REFUSED, UNANSWERED, WRONG, MapLoad, S13Load, Tally, Target
from simulator.soak_population import Population

ANSWERED = (2001, 0)  # the answer log's result of an S13 and a MAP answer with a status
FAULT_TAIL = 1.0  # seconds after a fault still counted in its window
P99_TARGET_MS = 10.0
# The hostile peers' windows, as fractions of the run (the faults' points are in Director.run).
IDLE = (0.05, 0.95)
FUZZ = ((0.08, 0.25), (0.80, 0.92))
NON_READER = (0.28, 0.40)
LOCK_SCRIPT = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
connection.execute("ROLLBACK")
"""


@dataclass(frozen=True)
class Options:
    duration: float = 600.0  # seconds
    s13_rate: float = 200.0  # requests a second
    map_rate: float = 100.0
    population: int = 500  # IMEIs per list
    new_share: float = 0.05  # queries about an unregistered IMEI never asked before (a first sight)
    fuzz_rate: int = 400  # frames a second per fuzzed connection
    idle_count: int = 50  # idle connections per port
    non_reader_rate: int = 1000  # requests a second from the peer that never reads
    max_rss_mib: float = 200.0


@dataclass(frozen=True)
class Schedule:
    start: float  # monotonic
    duration: float

    def at(self, fraction: float) -> float:
        return self.start + fraction * self.duration

    def window(self, low: float, high: float) -> tuple[float, float]:
        return self.at(low), self.at(high)

    @property
    def lock_seconds(self) -> float:
        return min(30.0, max(3.0, self.duration * 0.025))

    def hostile_plan(self, options: Options, s13_port: int, m3ua_port: int) -> dict[str, Any]:
        return {"host": LOOPBACK, "s13_port": s13_port, "m3ua_port": m3ua_port,
                "fuzz": [self.window(*FUZZ[0]), self.window(*FUZZ[1])], "fuzz_rate": options.fuzz_rate,
                "idle": [self.window(*IDLE)], "idle_count": options.idle_count,
                "non_reader": [self.window(*NON_READER)], "non_reader_rate": options.non_reader_rate}

    def phases(self) -> list[tuple[str, float, float]]:
        return [("fuzz", *self.window(*FUZZ[0])), ("fuzz", *self.window(*FUZZ[1])),
                ("non-reader", *self.window(*NON_READER))]


@dataclass
class Report:
    tally: Tally
    duration: float
    faults: list[tuple[str, float, float]] = field(default_factory=list)  # (what, start, end) monotonic
    phases: list[tuple[str, float, float]] = field(default_factory=list)  # the hostile peers' windows
    lost_after_kill: list[int] = field(default_factory=list)
    lost_at_end: list[tuple[str, str]] = field(default_factory=list)
    rss_start_mib: float = 0.0
    rss_peak_mib: float = 0.0
    restarts: int = 0
    hostile: dict[str, int] = field(default_factory=dict)
    rule_mismatches: list[str] = field(default_factory=list)
    rules_checked: int = 0
    answer_log_lines: int = 0
    connects: dict[str, int] = field(default_factory=dict)  # connections the load made, by interface
    exit_code: int | None = None


# --- the agent and what is done to it ------------------------------------------------------------

class Node:
    """The agent under test: started, killed and started again on the same ports and registry."""

    def __init__(self, folder: Path, url: str) -> None:
        self.folder, self.url = folder, url
        self.s13_port, self.m3ua_port = free_port(), free_port()
        self.incarnation = 0
        self.agent = self._start()

    def _start(self) -> AgentProcess:
        return AgentProcess(self.folder, self.url, "--m3ua-listen", f"{LOOPBACK}:{self.m3ua_port}",
                            port=self.s13_port)

    @property
    def database(self) -> Path:
        return self.folder / "registry.db"

    def kill(self) -> None:
        self.agent.process.kill()
        self.agent.process.wait()
        self.agent.stop()  # closes its log file
        self.incarnation += 1
        self.agent.stderr_path.rename(self.folder / f"agent-{self.s13_port}.killed-{self.incarnation}.log")

    def restart(self) -> None:
        self.agent = self._start()


class Lock:
    """Another process holding ``BEGIN EXCLUSIVE`` on the registry until released."""

    def __init__(self, database: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", LOCK_SCRIPT, str(database)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)

    def wait_locked(self) -> None:
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "locked":
            raise RuntimeError("the lock holder could not lock the registry")

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(30)


def rss_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else None


class Director:
    """Runs the schedule's faults, samples the agent's RSS, and keeps the report."""

    def __init__(self, node: Node, schedule: Schedule, report: Report) -> None:
        self.node, self.schedule, self.report = node, schedule, report

    async def sample_rss(self, until: float) -> None:
        while time.monotonic() < until:
            value = rss_mib(self.node.agent.process.pid)
            if value is not None:
                self.report.rss_peak_mib = max(self.report.rss_peak_mib, value)
                if not self.report.rss_start_mib and time.monotonic() >= self.schedule.at(0.04):
                    self.report.rss_start_mib = value
            await asyncio.sleep(0.2)

    async def run(self) -> None:
        seconds = self.schedule.lock_seconds
        await self._until(0.45)
        await self.locked(seconds, kill_at=None)
        await self._until(0.58)
        began = time.monotonic()
        await self.kill()
        await self.restart()
        self.report.faults.append(("SIGKILL, restart", began, time.monotonic() + FAULT_TAIL))
        await self._until(0.72)
        await self.locked(seconds, kill_at=seconds / 2)

    async def _until(self, fraction: float) -> None:
        await asyncio.sleep(max(0.0, self.schedule.at(fraction) - time.monotonic()))

    async def locked(self, seconds: float, kill_at: float | None) -> None:
        """The registry locked for ``seconds``; with ``kill_at``, the agent killed that many
        seconds into the lock and started again once the lock is gone."""
        began = time.monotonic()
        lock = Lock(self.node.database)
        await asyncio.to_thread(lock.wait_locked)
        if kill_at is not None:
            await asyncio.sleep(kill_at)
            await self.kill()
        await asyncio.sleep(max(0.0, began + seconds - time.monotonic()))
        await asyncio.to_thread(lock.release)
        what = "lock"
        if kill_at is not None:
            await self.restart()
            what = "lock, SIGKILL inside it, restart"
        self.report.faults.append((what, began, time.monotonic() + FAULT_TAIL))

    async def kill(self) -> None:
        self.node.kill()
        await asyncio.sleep(0.3)  # answers already on our side of the socket are judged first
        answered = dict(self.report.tally.first_sights.answered)
        lost = await asyncio.to_thread(self.report.tally.first_sights.lost, self.node.database, answered)
        self.report.lost_after_kill.append(len(lost))

    async def restart(self) -> None:
        await asyncio.to_thread(self.node.restart)
        self.report.restarts += 1


# --- the run ---------------------------------------------------------------------------------------

def start_hostile(plan: dict[str, Any], folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "simulator.soak_peers", json.dumps(plan)], stdout=subprocess.PIPE,
                            stderr=(folder / "hostile.log").open("w"), text=True)


async def drive(node: Node, options: Options, schedule: Schedule, report: Report) -> None:
    target = Target(LOOPBACK, node.s13_port, node.m3ua_port)
    population = Population(options.population, options.new_share)
    director = Director(node, schedule, report)
    end = schedule.at(1.0)
    s13, map_load = S13Load(target, population, report.tally), MapLoad(target, population, report.tally)
    try:
        await asyncio.gather(s13.run(options.s13_rate, end), map_load.run(options.map_rate, end),
                             director.run(), director.sample_rss(end))
    finally:
        report.connects = {"S13": s13.connects, "MAP": map_load.connects}


def soak(options: Options, folder: Path, out: Any = print) -> Report:
    """The whole run in ``folder``: the registry, the agent, the load, the faults, the checks."""
    population = Population(options.population)
    url = population.build_registry(folder)
    out(f"registry: {url} ({options.population} IMEIs on each of the white, black, grey, stolen and paired lists)")
    node = Node(folder, url)
    schedule = Schedule(time.monotonic() + 1.0, options.duration)
    report = Report(Tally(), options.duration, phases=schedule.phases())
    hostile = start_hostile(schedule.hostile_plan(options, node.s13_port, node.m3ua_port), folder)
    out(f"agent: pid {node.agent.process.pid}, S13 {LOOPBACK}:{node.s13_port}, M3UA {LOOPBACK}:{node.m3ua_port}; "
        f"running {options.duration:.0f} s")
    try:
        asyncio.run(drive(node, options, schedule, report))
    finally:
        report.exit_code = node.agent.stop()
        try:
            output, _ = hostile.communicate(timeout=30)
            report.hostile = json.loads(output.strip().splitlines()[-1]) if output.strip() else {}
        except (subprocess.TimeoutExpired, json.JSONDecodeError):
            hostile.kill()
    report.lost_at_end = report.tally.first_sights.lost(node.database)
    check_rules(report, node.agent.answer_log)
    return report


def check_rules(report: Report, answer_log: Path) -> None:
    """Every answer log line of a measured query names the rule the population expects."""
    if not answer_log.exists():
        return
    sessions = report.tally.sessions
    for text in answer_log.read_text().splitlines():
        report.answer_log_lines += 1
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue
        expected = sessions.get((str(line.get("peer")), str(line.get("session"))))
        if expected is None or line.get("result") not in ANSWERED:  # a refusal is judged on the wire
            continue
        report.rules_checked += 1
        if line.get("rule") != expected and len(report.rule_mismatches) < 1000:
            report.rule_mismatches.append(f"{line.get('interface')} {line.get('imei')}: expected rule {expected}, "
                                          f"logged {line.get('rule')} ({line.get('status')})")


# --- the summary -----------------------------------------------------------------------------------

def percentile_ms(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000


def latencies(report: Report, inside: list[tuple[str, float, float]] | None = None,
              outside: list[tuple[str, float, float]] | None = None, old_pairs_only: bool = False) -> list[float]:
    """The latencies of the answers whose request overlapped one of the windows ``inside``
    (None: any time) and none of ``outside``; ``old_pairs_only``: not those that waited for
    a first sight's commit."""
    tally = report.tally
    kept = []
    for sent, latency, new in zip(tally.sent_at, tally.latency, tally.new_pair, strict=True):
        def overlaps(windows: list[tuple[str, float, float]], sent: float = sent, latency: float = latency) -> bool:
            return any(sent < end and sent + latency > start for _, start, end in windows)
        if (inside is None or overlaps(inside)) and not overlaps(outside or []) and not (old_pairs_only and new):
            kept.append(latency)
    return kept


def split_latency(report: Report) -> tuple[list[float], list[float]]:
    """(latencies outside every fault window, all latencies)."""
    return latencies(report, outside=report.faults), report.tally.latency


def misses(report: Report, options: Options) -> list[str]:
    """The targets missed (an empty list: all met)."""
    outside, _ = split_latency(report)
    p99 = percentile_ms(outside, 99)
    missed = []
    if report.tally.count(WRONG):
        missed.append(f"{report.tally.count(WRONG)} wrong answers")
    if report.rule_mismatches:
        missed.append(f"{len(report.rule_mismatches)} answers logged with another rule")
    if report.lost_at_end or any(report.lost_after_kill):
        missed.append(f"{max([len(report.lost_at_end), *report.lost_after_kill])} first sights lost")
    if p99 is None or p99 > P99_TARGET_MS:
        missed.append(f"p99 outside the fault windows {_ms(p99)} (target {P99_TARGET_MS:g} ms)")
    if report.rss_peak_mib > options.max_rss_mib:
        missed.append(f"peak RSS {report.rss_peak_mib:.0f} MiB (bound {options.max_rss_mib:.0f} MiB)")
    return missed


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def unanswered_outside(report: Report) -> int:
    tally, windows = report.tally, report.faults
    return sum(1 for sent, latency, lost in zip(tally.sent_at, tally.latency, tally.unanswered, strict=True)
               if lost and not any(sent < end and sent + latency > start for _, start, end in windows))


def phase_p99(report: Report) -> str:
    """p99 with nothing going on, in the hostile peers' windows, and in the faults'."""
    everything = report.phases + report.faults
    parts = [f"quiet {_ms(percentile_ms(latencies(report, outside=everything), 99))}"]
    for name in dict.fromkeys(name for name, _, _ in report.phases):
        windows = [w for w in report.phases if w[0] == name]
        parts.append(f"{name} {_ms(percentile_ms(latencies(report, inside=windows, outside=report.faults), 99))}")
    for window in report.faults:
        parts.append(f"{window[0]} {_ms(percentile_ms(latencies(report, inside=[window]), 99))}")
    return "; ".join(parts)


def summary(report: Report, options: Options) -> list[str]:
    tally, hostile = report.tally, report.hostile
    outside, every = split_latency(report)
    answered = tally.count() - tally.count(UNANSWERED)
    rows: list[tuple[str, str]] = [
        ("run", f"{report.duration:.0f} s; S13 {options.s13_rate:g}/s, MAP {options.map_rate:g}/s, "
                f"{options.new_share:.0%} new IMEIs"),
        ("answers sent (received by the load)", f"{answered:,} of {tally.count():,} requests"),
        ("wrong answers", f"{tally.count(WRONG):,}"),
        ("refused (5012, 3004, systemFailure, abort)", f"{tally.count(REFUSED):,}"),
        ("unanswered (timeout, connection lost)",
         f"{tally.count(UNANSWERED):,}, {unanswered_outside(report):,} of them outside the fault windows"),
        ("rules checked in the answer log", f"{report.rules_checked:,}, {len(report.rule_mismatches)} mismatched"),
        ("first sights answered on", f"{len(tally.first_sights.answered):,}"),
        ("first sights lost after each SIGKILL", ", ".join(str(n) for n in report.lost_after_kill) or "-"),
        ("first sights lost at the end", f"{len(report.lost_at_end):,}"),
        ("RSS after start / peak", f"{report.rss_start_mib:.0f} MiB / {report.rss_peak_mib:.0f} MiB"),
        ("p99 outside fault windows", f"{_ms(percentile_ms(outside, 99))} ({len(outside):,} answers)"),
        ("p99 outside fault windows, no new first sight",
         _ms(percentile_ms(latencies(report, outside=report.faults, old_pairs_only=True), 99))),
        ("p99 overall", _ms(percentile_ms(every, 99))),
        ("p99 by phase", phase_p99(report)),
        ("p50 / max overall", f"{_ms(percentile_ms(every, 50))} / {_ms(percentile_ms(every, 100))}"),
        ("restarts", f"{report.restarts}"),
        ("connections the load made (S13, MAP)", f"{report.connects.get('S13', 0)}, {report.connects.get('MAP', 0)}"),
        ("fault windows", "; ".join(f"{what} {end - start:.1f} s" for what, start, end in report.faults)),
        ("fuzz frames sent (Diameter, M3UA)", f"{hostile.get('diameter_fuzz_frames', 0):,}, "
                                              f"{hostile.get('m3ua_fuzz_frames', 0):,}"),
        ("idle connections opened / closed by the agent",
         f"S13 {hostile.get('idle_s13_opened', 0):,} / {hostile.get('idle_s13_closed_by_agent', 0):,}, "
         f"M3UA {hostile.get('idle_m3ua_opened', 0):,} / {hostile.get('idle_m3ua_closed_by_agent', 0):,}"),
        ("non-reading peer: requests sent", f"{hostile.get('non_reader_requests', 0):,}"),
        ("answer log lines (every peer)", f"{report.answer_log_lines:,}"),
        ("agent exit on SIGTERM", f"{report.exit_code}"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines.append("answers by kind (interface, class: ok / wrong / refused / unanswered):")
    kinds = sorted({(interface, kind) for interface, kind, _ in tally.verdicts})
    for interface, kind in kinds:
        counts = [tally.verdicts[(interface, kind, verdict)] for verdict in (OK, WRONG, REFUSED, UNANSWERED)]
        lines.append(f"  {interface:8} {kind:13} " + " / ".join(f"{n:,}" for n in counts))
    lines += [f"  wrong: {example}" for example in tally.wrong_examples]
    lines += [f"  rule: {example}" for example in report.rule_mismatches[:10]]
    lines += [f"  lost: IMEI {key} IMSI {imsi}" for key, imsi in report.lost_at_end[:10]]
    return lines

