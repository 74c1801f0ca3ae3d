"""A country's attach traffic (``eir sim traffic``): a seeded population
(simulator/traffic_population.py) plays its daily attaches (S13 ECRs) and location updates
(MAP CheckIMEI) against one ``eir serve --lab-clock`` on a registry of its own, day by day:

1. the registry rows (TAC catalogue, subscriber data, white and paired white lists) go in
   through the lab endpoint, as the national system feeds an operator;
2. each day: the day's registrations and stolen reports (lab endpoint), then every attach
   of the lines active that day, many in flight (simulator/traffic_wire.py), at most
   ``rate`` a second when asked; then the clock moves one day;
3. each answer is compared with the model's prediction for that line on that day: the
   status from the answer itself, the rule from the agent's answer log (read as it is
   flushed); the notices the agent queued that day are counted from the registry.

Each day gives a ``TrafficDay`` (simulator/report_data.py) and one printed line; the
mismatches are kept (the first ones printed in full) and make the run fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from registry.clock import stamp
from registry.profile import Profile, load_profile
from simulator.agent_process import AgentProcess
from simulator.lab_client import LabControl, LabControlError
from simulator.load_common import LoadFailed
from simulator.mme import MmeIdentity
from simulator.msc import MscIdentity
from simulator.report_data import TrafficDay
from simulator.traffic_population import Line, Model, Population, Settings, rule_matches
from simulator.traffic_wire import (
    MAX_DAYS,
    CheckImeiLink,
    DayPlan,
    EcrLink,
    LineChecks,
    LineEcrs,
    Outcome,
    Pacer,
    close_links,
    map_position,
    map_word,
    open_ecr_link,
    open_map_link,
    s13_position,
    s13_word,
)

DAY = timedelta(days=1)
SHOWN_MISMATCHES = 20
LOG_WAIT = 10.0  # seconds to wait for a day's answer log lines (the agent flushes every 0.2 s)
MME = MmeIdentity(origin_host="mme.traffic.localdomain")
INTERFACES = ("s13", "map")


class TrafficError(Exception):
    """The run could not be played (the agent would not start, the rows were refused...)."""


@dataclass
class TrafficOptions:
    profile: str
    settings: Settings
    start: datetime  # the lab clock on day 1 (aware)
    interfaces: tuple[str, ...] = INTERFACES
    rate: float | None = None
    keep: Path | None = None
    grace_shift: int = 0  # a deliberately wrong model: every grace window this many days longer
    inflight: int = 64


@dataclass
class Mismatch:
    day: int
    line: Line
    interface: str
    expected: tuple[str, str]  # status, rule
    received: str
    rule: str | None

    def text(self) -> str:
        return (f"day {self.day:>3}  device {self.line.device} ({self.line.kind}) IMEI {self.line.imei} "
                f"IMSI {self.line.imsi} {self.interface}: expected {self.expected[0]} ({self.expected[1]}), "
                f"received {self.received} ({self.rule or 'no rule logged'})")


@dataclass
class TrafficResult:
    days: list[TrafficDay] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    mismatch_count: int = 0  # answers and days whose notices differ from the model
    answer_mismatches: int = 0
    notice_mismatches: list[str] = field(default_factory=list)  # the first ones, as text
    answers: int = 0
    phases: dict[str, float] = field(default_factory=dict)  # seconds by phase: population, start, import... days
    seconds: float = 0.0


class AnswerLogTail:
    """The lines the agent appended to its answer log since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        data = self.rest + data
        cut = data.rfind(b"\n") + 1
        self.rest = data[cut:]
        return [json.loads(line) for line in data[:cut].splitlines() if line.strip()]


class TrafficRun:
    """One traffic run: ``await TrafficRun(options, out).play()``."""

    def __init__(self, options: TrafficOptions, out: Callable[[str], None] = print,
                 progress: TextIO | None = None) -> None:
        if not 1 <= options.settings.days <= MAX_DAYS:
            raise TrafficError(f"--days must be 1 to {MAX_DAYS}")
        if options.settings.subscribers < 1:
            raise TrafficError("--subscribers must be at least 1")
        self.options = options
        self.out = out
        self.progress = progress
        self.profile: Profile = load_profile(options.profile)
        self.result = TrafficResult()
        self.population: Population | None = None
        self.model: Model | None = None
        self.agent: AgentProcess | None = None
        self.control: LabControl | None = None
        self.links: dict[str, EcrLink | CheckImeiLink] = {}
        self.registry: Path | None = None
        self.log: AnswerLogTail | None = None
        self.black_seen: set[int] = set()  # lines answered black so far
        self.answers_csv: _CsvFile | None = None
        self.day_mismatches: Counter[int] = Counter()
        self.notified: set[tuple[str, str, str]] = set()  # (IMEI key, IMSI, event) the model has queued

    async def play(self) -> TrafficResult:
        started = time.monotonic()
        folder = Path(tempfile.mkdtemp(prefix="eir-traffic-"))
        played = False
        try:
            await self._play_in(folder)
            played = True
        finally:
            try:
                await self._stop(played)  # after a fault, that fault is the one to tell
            finally:
                self.result.seconds = time.monotonic() - started
                self._keep(folder)
        return self.result

    def _phase(self, name: str, since: float) -> float:
        now = time.monotonic()
        self.result.phases[name] = self.result.phases.get(name, 0.0) + now - since
        return now

    async def _play_in(self, folder: Path) -> None:
        options = self.options
        mark = time.monotonic()
        self.population = population = Population(options.settings, self.profile)
        self.model = Model(population, options.start, options.grace_shift)
        mark = self._phase("population", mark)
        await self._start_agent(folder)
        mark = self._phase("start", mark)
        await self._import(population)
        mark = self._phase("import", mark)
        await self._open_links(population)
        mark = self._phase("encode and connect", mark)
        if options.keep is not None:
            self.answers_csv = _answers_writer(folder / "answers.csv")
        for day in range(1, options.settings.days + 1):
            await self._day(day)
            self._show_progress(day)
        self._phase("days", mark)  # the sum of the "day: ..." phases and the printing

    async def _start_agent(self, folder: Path) -> None:
        self.registry = folder / "registry.db"
        extra = ["--profile", self.options.profile]
        try:
            self.agent = agent = await asyncio.to_thread(
                lambda: AgentProcess(folder, f"sqlite:///{self.registry}", *extra,
                                     m3ua="map" in self.options.interfaces, lab_clock=self.options.start.isoformat()))
        except (RuntimeError, OSError) as error:
            raise TrafficError(f"cannot start the agent: {error}") from None
        assert agent.control_path is not None
        self.control = await LabControl.connect(agent.control_path)
        self.log = AnswerLogTail(agent.answer_log)

    async def _import(self, population: Population) -> None:
        for kind, text in population.rows():
            await self._import_rows(kind, text)

    async def _import_rows(self, kind: str, text: str) -> None:
        """Import through the lab endpoint; a refused file or row is a TrafficError."""
        assert self.control is not None
        try:
            reply = await self.control.import_rows(kind, text)
        except LabControlError as error:
            raise TrafficError(f"the {kind} rows were refused: {error}") from None
        bad = reply.get("bad") or []
        if bad:
            raise TrafficError(f"the {kind} rows were refused: " + "; ".join(
                f"CSV line {item['line']}: {item['reason']}" for item in bad[:5]))

    async def _open_links(self, population: Population) -> None:
        assert self.agent is not None
        pairs = [(line.imei, line.imsi) for line in population.lines]
        try:
            if "s13" in self.options.interfaces:
                ecrs = LineEcrs(MME, pairs, f"traffic{self.options.settings.seed};")
                self.links["s13"] = await open_ecr_link(*self.agent.address, MME, ecrs, self.options.inflight)
            if "map" in self.options.interfaces:
                checks = LineChecks(MscIdentity(), pairs)
                self.links["map"] = await open_map_link(*self.agent.m3ua_address, checks, self.options.inflight)
        except LoadFailed as error:
            raise TrafficError(str(error)) from None

    # --- one day -------------------------------------------------------------------------------

    async def _day(self, day: int) -> None:
        """One day: the lab's changes, the model's predictions, the attaches, the answer log's
        rules, the comparison, the notices; each timed into ``phases`` ("day: ...")."""
        assert self.control is not None and self.population is not None and self.model is not None
        mark = time.monotonic()
        if day > 1:
            await self.control.advance(DAY.total_seconds())
        await self._changes("white", self.population.registrations.get(day, []), "registered through the portal")
        await self._changes("stolen", self.population.reports.get(day, []), "reported stolen to the police")
        mark = self._phase("day: lab clock, registrations, stolen reports", mark)
        active = self.population.active(day)
        expected = [self.model.expect(line, day) for line in active]
        notices = self._expected_notices(day, active, expected)
        mark = self._phase("day: the model", mark)
        numbers = [line.number for line in active]
        pacer = Pacer(self.options.rate)
        names = list(self.links)
        answers = await asyncio.gather(*(self.links[name].play(DayPlan(day, numbers, pacer)) for name in names))
        mark = self._phase("day: attaches", mark)
        rules = await self._rules(day, sum(1 for found in answers for outcome in found if outcome is not None))
        mark = self._phase("day: answer log", mark)
        traffic = TrafficDay(day, self.profile.local_date(self.model.at(day)), devices=len(active))
        for name, outcomes in zip(names, answers, strict=True):
            self._compare(day, name, active, expected, outcomes, rules, traffic)
        mark = self._phase("day: comparing", mark)
        traffic.notices = await self._notices(day)
        if traffic.notices != notices:
            self._notice_mismatch(day, notices, traffic.notices)
        self._phase("day: notices", mark)
        self.result.days.append(traffic)
        self.out(day_line(traffic, self.day_mismatches[day]))

    async def _changes(self, kind: str, imeis: list[str], reason: str) -> None:
        """The day's registrations (white) or stolen reports as the national system's daily
        file: one import through the lab endpoint."""
        if imeis:
            await self._import_rows(kind, "imei,reason\n" + "".join(f"{imei},{reason}\n" for imei in imeis))

    def _compare(self, day: int, interface: str, active: list[Line], expected: list[tuple[str, str]],
                 outcomes: list[Outcome | None], rules: dict[tuple[str, int], str], traffic: TrafficDay) -> None:
        word = s13_word if interface == "s13" else map_word
        for position, (line, outcome) in enumerate(zip(active, outcomes, strict=True)):
            status = word(outcome)
            rule = rules.get((interface, position))
            traffic.answers[status] = traffic.answers.get(status, 0) + 1
            traffic.rules[rule or "not logged"] = traffic.rules.get(rule or "not logged", 0) + 1
            self.result.answers += 1
            if status == "black" and line.number not in self.black_seen:
                self.black_seen.add(line.number)
                traffic.cut_off += 1
            want = expected[position]
            if status != want[0] or (rule is not None and not rule_matches(want[1], rule)):
                self._mismatch(Mismatch(day, line, interface, want, status, rule))
            if self.answers_csv is not None:
                self.answers_csv.writerow([day, line.device, line.kind, line.imei, line.imsi, interface, *want,
                                           status, rule or ""])

    def _expected_notices(self, day: int, active: list[Line], expected: list[tuple[str, str]]) -> dict[str, int]:
        """The notices the model says the day's attaches queue: each (IMEI, SIM, event) once."""
        assert self.model is not None
        counts: Counter[str] = Counter()
        for line, (_, rule) in zip(active, expected, strict=True):
            for event in self.model.notices(line, day, rule):
                if (line.key, line.imsi, event) not in self.notified:
                    self.notified.add((line.key, line.imsi, event))
                    counts[event] += 1
        return dict(sorted(counts.items()))

    def _notice_mismatch(self, day: int, expected: dict[str, int], queued: dict[str, int]) -> None:
        self.result.mismatch_count += 1
        self.day_mismatches[day] += 1
        if len(self.result.notice_mismatches) < SHOWN_MISMATCHES:
            self.result.notice_mismatches.append(f"day {day:>3}  notices queued: expected {_counts(expected)}, "
                                                 f"the registry holds {_counts(queued)}")

    def _mismatch(self, mismatch: Mismatch) -> None:
        self.result.mismatch_count += 1
        self.result.answer_mismatches += 1
        if len(self.result.mismatches) < SHOWN_MISMATCHES:
            self.result.mismatches.append(mismatch)
        self.day_mismatches[mismatch.day] += 1

    async def _rules(self, day: int, expected: int) -> dict[tuple[str, int], str]:
        """The rule of each of the day's answers, by (interface, position), from the answer
        log: read until it holds ``expected`` lines of this day or LOG_WAIT has passed."""
        assert self.log is not None
        found: dict[tuple[str, int], str] = {}
        deadline = time.monotonic() + LOG_WAIT
        while len(found) < expected and time.monotonic() < deadline:
            for line in self.log.read():
                interface = str(line.get("interface"))
                session = str(line.get("session") or "")
                where = s13_position(session) if interface == "s13" else map_position(session)
                if where is not None and where[0] == day:
                    found[(interface, where[1])] = str(line.get("rule"))
            if len(found) < expected:
                await asyncio.sleep(0.05)
        return found

    async def _notices(self, day: int) -> dict[str, int]:
        """The notices queued with this day's lab time, by event, read from the registry (the
        agent commits an answer's notices before it answers: agent/service.py)."""
        assert self.model is not None and self.registry is not None
        return await asyncio.to_thread(_notice_counts, self.registry, stamp(self.model.at(day)))

    def _show_progress(self, day: int) -> None:
        if self.progress is None:
            return
        days = self.options.settings.days
        done = int(30 * day / days)
        self.progress.write(f"\r[{'#' * done}{'.' * (30 - done)}] day {day}/{days}, {self.result.answers:,} answers, "
                            f"{self.result.mismatch_count} mismatches ")
        if day == days:
            self.progress.write("\n")
        self.progress.flush()

    async def _stop(self, check: bool = True) -> None:
        """Close everything this run opened; with ``check``, TrafficError if the agent did not exit 0."""
        links, self.links = list(self.links.values()), {}
        await close_links(links)
        control, self.control = self.control, None
        if control is not None:
            await control.close()
        if self.answers_csv is not None:
            self.answers_csv.close()
            self.answers_csv = None
        agent, self.agent = self.agent, None
        if agent is not None:
            code = await asyncio.to_thread(agent.stop)
            if code != 0 and check:
                raise TrafficError(f"eir serve exited with {code}: {agent.log()[-500:]}")

    def _keep(self, folder: Path) -> None:
        keep = self.options.keep
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
            return
        if self.population is not None:
            _write_devices(folder / "devices.csv", self.population)
        (folder / "days.json").write_text(json.dumps([_day_json(day) for day in self.result.days], indent=1))
        shutil.rmtree(keep, ignore_errors=True)
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(folder, keep)


def _notice_counts(registry: Path, at: str) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(f"file:{registry}?mode=ro", uri=True)) as connection:
        rows = connection.execute("SELECT event, count(*) FROM notice WHERE created_at = ? GROUP BY event",
                                  (at,)).fetchall()
    return {str(event): int(count) for event, count in sorted(rows)}


class _CsvFile:
    def __init__(self, path: Path) -> None:
        self.handle = path.open("w", newline="")
        self.writer = csv.writer(self.handle)

    def writerow(self, row: list[Any]) -> None:
        self.writer.writerow(row)

    def close(self) -> None:
        self.handle.close()


def _answers_writer(path: Path) -> _CsvFile:
    writer = _CsvFile(path)
    writer.writerow(["day", "device", "kind", "imei", "imsi", "interface", "expected", "expected_rule", "received",
                     "rule"])
    return writer


def _write_devices(path: Path, population: Population) -> None:
    registered = {imei[:14]: day for day, imeis in population.registrations.items() for imei in imeis}
    stolen = {imei[:14]: day for day, imeis in population.reports.items() for imei in imeis}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["device", "kind", "imei", "imsi", "first_day", "last_day", "registered_day", "stolen_day"])
        for line in population.lines:
            writer.writerow([line.device, line.kind, line.imei, line.imsi, line.first_day, line.last_day,
                             registered.get(line.key, ""), stolen.get(line.key, "")])


def _day_json(day: TrafficDay) -> dict[str, Any]:
    return {"day": day.day, "date": day.local_date.isoformat(), "devices": day.devices, "answers": day.answers,
            "rules": day.rules, "notices": day.notices, "cut_off": day.cut_off}


def day_line(day: TrafficDay, mismatches: int) -> str:
    """One printed line a day: answers by status, by rule, notices queued, devices cut off."""
    statuses = " ".join(f"{name} {count:,}" for name, count in sorted(day.answers.items(), key=_order))
    rules = ", ".join(f"{name} {count:,}" for name, count in sorted(day.rules.items(), key=lambda item: -item[1]))
    notices = _counts(day.notices)
    return (f"day {day.day:>3} {day.local_date}  devices {day.devices:,}  answers {sum(day.answers.values()):,}: "
            f"{statuses}  | rules: {rules} | notices: {notices} | cut off {day.cut_off:,} | mismatches {mismatches:,}")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items()) or "none"


def _order(item: tuple[str, int]) -> tuple[int, str]:
    return ({"white": 0, "grey": 1, "black": 2}.get(item[0], 3), item[0])


def summary(result: TrafficResult) -> list[str]:
    """The closing lines: totals, and the first mismatches in full."""
    lines = [f"{len(result.days)} days, {result.answers:,} answers in {result.seconds:.1f} s; "
             f"{result.mismatch_count:,} mismatches with the population model"]
    if result.mismatches:
        shown = len(result.mismatches)
        lines.append(f"answers that differ from the model (the first {shown} of {result.answer_mismatches:,}):"
                     if shown < result.answer_mismatches else "answers that differ from the model:")
        lines += [f"  {mismatch.text()}" for mismatch in result.mismatches]
    if result.notice_mismatches:
        lines.append("days whose notices differ from the model:")
        lines += [f"  {text}" for text in result.notice_mismatches]
    return lines


def run_traffic(options: TrafficOptions, out: Callable[[str], None] = print,
                progress: TextIO | None = None) -> TrafficResult:
    """Play the whole run; TrafficError when it cannot be played."""
    try:
        return asyncio.run(TrafficRun(options, out, progress).play())
    except LabControlError as error:
        raise TrafficError(f"the lab endpoint: {error}") from None
    except LoadFailed as error:
        raise TrafficError(str(error)) from None


def progress_stream() -> TextIO | None:
    """stderr when it is a terminal (a bar of its own line), else nothing."""
    return sys.stderr if sys.stderr.isatty() else None
