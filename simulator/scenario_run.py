"""Play a scenario against a real agent: ``run_all`` starts, for each scenario and
interface, its own ``eir serve --lab-clock`` on a throwaway registry (or aims at a
``--target`` EIR we did not start), plays every step over real sockets and the lab
control socket, and returns one ``RunResult`` per scenario and interface.

An attach's status is compared when its answer arrives; its rule, from the agent's answer
log, once the agent has stopped (the log is flushed then), so a run costs no waiting on
the log between steps.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from registry.clock import parse_stamp
from registry.profile import load_profile
from simulator.agent_process import EIR, AgentProcess
from simulator.captures import CaptureError, SteppedClock, capturing, run_path
from simulator.lab_client import LabControl, LabControlError
from simulator.population import Population, PopulationError
from simulator.scenario_checks import answer_differences, check_differences, notice_differences, wire_differences
from simulator.scenario_model import Action, ImportRows, Scenario, Step, Via
from simulator.scenario_wire import DEFAULT_MAP, Answer, Network

if TYPE_CHECKING:
    from netio.capture import Capture

INTERFACES = ("s13", "map")
DAY = timedelta(days=1)


@dataclass
class StepResult:
    step: Step
    day: int
    received: str = ""
    differences: list[str] = field(default_factory=list)
    compared: bool = False  # the step had something to compare
    log_key: str | None = None  # an attach's answer log key, for its rule
    expected_rule: str | None = None
    why: str | None = None  # the rule and reason the agent logged for an attach's answer
    status: str | None = None  # an attach's equipment status (white, grey, black), or a check's
    rule: str | None = None  # the rule that decided it (the answer log's, or eir check's)
    notices: list[dict[str, Any]] = field(default_factory=list)  # a notices step: what was queued
    deadline: str | None = None  # a check's deadline, ISO (UTC)

    @property
    def ok(self) -> bool:
        return not self.differences

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        head = f"  {mark} step {self.step.number:>2} (line {self.step.line}) day {self.day:>3}  {self.step.text}"
        why = f"  [{self.why}]" if self.why else ""
        if self.ok:
            return head + (f" -> {self.received}" if self.received else "") + why
        return head + " -> " + "; ".join(self.differences) + why


@dataclass
class RunResult:
    scenario: Scenario
    interface: str
    steps: list[StepResult] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None  # the run could not be played (the agent would not start...)
    seconds: float = 0.0
    pcap: Path | None = None  # where its messages were recorded (--pcap)

    @property
    def failures(self) -> list[StepResult]:
        return [step for step in self.steps if not step.ok]

    @property
    def passed(self) -> bool:
        return self.skipped is None and self.error is None and not self.failures

    def title(self) -> str:
        return f"{self.scenario.suite}/{self.scenario.name} [{self.interface}]"

    def lines(self) -> list[str]:
        if self.skipped is not None:
            return [f"SKIP {self.title()}: {self.skipped}"]
        verdict = "PASS" if self.passed else "FAIL"
        lines = [f"{verdict} {self.title()}: {self.scenario.title} ({self.seconds:.1f} s)"]
        lines += [step.line() for step in self.steps]
        if self.error is not None:
            lines.append(f"  ERROR {self.error}")
        if self.pcap is not None:
            lines.append(f"  pcap {self.pcap}")
        return lines


@dataclass
class RunSettings:
    interfaces: tuple[str, ...] = INTERFACES
    jobs: int = 0  # runs side by side (0: the CPUs)
    target: tuple[str, int] | None = None  # an EIR we did not start (S13)
    map_target: tuple[str, int] | None = None  # its M3UA address
    template: Path | None = None  # a SQLite registry file every run starts from
    keep: Path | None = None  # where each run's folder is kept
    pcap: Path | None = None  # every message of a run recorded (simulator.captures: one file per run)

    @property
    def external(self) -> bool:
        return self.target is not None or self.map_target is not None


async def run_all(scenarios: list[Scenario], settings: RunSettings,
                  report: Callable[[RunResult], None] = lambda result: None) -> list[RunResult]:
    """Every scenario on every interface of ``settings``, ``jobs`` at a time; ``report`` is
    called for each result in file order as soon as it and those before it are done."""
    gate = asyncio.Semaphore(settings.jobs or os.cpu_count() or 2)
    with tempfile.TemporaryDirectory(prefix="eir-scenarios-") as scratch:
        template = settings.template or (None if settings.external else _empty_registry(Path(scratch)))

        single = len(scenarios) * len(settings.interfaces) == 1

        async def one(scenario: Scenario, interface: str) -> RunResult:
            async with gate:
                run = ScenarioRun(scenario, interface, settings, template)
                if settings.pcap is not None:
                    run.result.pcap = settings.pcap if single else run_path(settings.pcap, scenario.suite,
                                                                            scenario.name, interface)
                try:
                    return await run.play()
                except Exception as error:  # a fault of the runner itself: reported, the other runs go on
                    run.result.error = f"the runner failed: {type(error).__name__}: {error}"
                    return run.result

        tasks = [asyncio.ensure_future(one(scenario, interface))
                 for scenario in scenarios for interface in settings.interfaces]
        results = []
        for task in tasks:
            result = await task
            report(result)
            results.append(result)
    return results


def _empty_registry(folder: Path) -> Path:
    """One empty registry at this eir's schema, copied for every run (cheaper than an
    ``eir registry init`` each)."""
    from registry.store import Registry

    path = folder / "template.db"
    Registry(f"sqlite:///{path}", create=True).close()
    return path


def copy_registry(template: Path | None, path: Path) -> None:
    """A copy of the SQLite registry ``template`` at ``path``, through SQLite's backup API:
    whole and consistent even when the template is in WAL mode with pages not yet
    checkpointed (a plain file copy would miss them); the template is only read."""
    if template is None:
        raise ValueError("no registry template to copy")
    source = sqlite3.connect(f"file:{template}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(path)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()


class ScenarioRun:
    """One scenario on one interface."""

    def __init__(self, scenario: Scenario, interface: str, settings: RunSettings, template: Path | None) -> None:
        self.scenario = scenario
        self.interface = interface
        self.settings = settings
        self.template = template
        self.result = RunResult(scenario, interface)
        self.population = Population(scenario)
        self.now = scenario.start
        self.agent: AgentProcess | None = None
        self.control: LabControl | None = None
        self.network: Network | None = None
        self.registry_url = ""
        self.profile = load_profile(scenario.profile)
        self.local_offset = self.profile.utc_offset
        # The time of the frames of --pcap: the lab's (a jump of the lab clock is a jump of the
        # capture's, the real seconds between steps kept), the wall clock against --target.
        self.lab_time = SteppedClock(self.now.timestamp())
        self.capture: Capture | None = None

    async def play(self) -> RunResult:
        started = time.monotonic()
        why = self._skip()
        if why is not None:
            self.result.skipped = why
            self.result.pcap = None  # nothing played, nothing written
            return self.result
        folder = Path(tempfile.mkdtemp(prefix=f"eir-{self.scenario.name}-{self.interface}-"))
        try:
            with capturing(self.result.pcap, self.lab_time) as self.capture:
                await self._play_in(folder)
        except CaptureError as error:
            self.result.error = str(error)
            self.result.pcap = None
        finally:
            self.result.seconds = time.monotonic() - started
            self._keep(folder)
        return self.result

    def _skip(self) -> str | None:
        steps = [step for step in self.scenario.steps if self._applies(step)]
        if not steps:
            return f"no step of this scenario speaks {self.interface}"
        if not self.settings.external:
            return None
        if self.scenario.needs_lab:
            return (f"needs our own agent (lab clock and registry changes: {', '.join(self.scenario.needs_lab)}); "
                    "not run against --target")
        address = self.settings.target if self.interface == "s13" else self.settings.map_target
        if address is None:
            return f"no {'--target' if self.interface == 's13' else '--map-target'} given for {self.interface}"
        return None

    def _applies(self, step: Step) -> bool:
        """Whether the step plays on this run: all do, but a wire check only on its own interface."""
        if step.action is not Action.WIRE:
            return True
        from simulator.conformance import CHECKS

        return CHECKS[step.check or ""].interface == ("diameter" if self.interface == "s13" else "map")

    async def _play_in(self, folder: Path) -> None:
        """Start, play every step of this interface, stop (whatever happened: no agent is left
        running), then compare the rules from the answer log."""
        try:
            if await self._started(folder):
                for step in self.scenario.steps:
                    if self._applies(step):
                        self.result.steps.append(await self._play(step))
        finally:
            await self._stop()
        if self.agent is not None:
            self._compare_rules(self.agent.answers())

    async def _started(self, folder: Path) -> bool:
        try:
            await self._start(folder)
        except (RuntimeError, OSError) as error:
            self.result.error = f"cannot start the agent: {error}"
            return False
        except LabControlError as error:
            self.result.error = f"the scenario's registry rows were refused: {error}"
            return False
        return True

    async def _start(self, folder: Path) -> None:
        if self.settings.external:
            self.network = Network(self.settings.target, self.settings.map_target, f"{self.scenario.name}",
                                   self.capture)
            self.lab_time.set(time.time())
            return
        path = folder / "registry.db"
        copy_registry(self.template, path)
        self.registry_url = f"sqlite:///{path}"
        extra = ["--profile", self.scenario.profile]
        for pattern in self.scenario.allow_peer:
            extra += ["--allow-peer", pattern]
        start = self.scenario.start.isoformat()
        self.agent = agent = await asyncio.to_thread(
            lambda: AgentProcess(folder, self.registry_url, *extra, m3ua=True, lab_clock=start))
        assert agent.control_path is not None  # started in lab mode
        self.control = await LabControl.connect(agent.control_path)
        self.lab_time.set(self.now.timestamp())  # the agent's lab clock starts now
        self.network = Network(agent.address, agent.m3ua_address, f"{self.scenario.name}-{self.interface}",
                               self.capture)
        for rows in self._setup_rows():
            await self._import(rows)

    def _setup_rows(self) -> list[ImportRows]:
        typed = [handset for handset in self.scenario.handsets.values() if handset.device_type]
        rows = list(self.scenario.setup)
        if typed:
            types = {f"{imei[:8]},{handset.device_type}" for handset in typed for imei in handset.imeis}
            lines = ["tac,device_type", *sorted(types)]
            rows.insert(0, ImportRows("tac", "\n".join(lines) + "\n", 0))
        return rows

    async def _import(self, rows: ImportRows) -> str:
        """Import list rows through the lab endpoint; a refused file or row is an error
        naming the scenario line the rows come from."""
        assert self.control is not None
        where = f"{rows.kind} rows of line {rows.line}" if rows.line else f"{rows.kind} rows (the handsets' types)"
        try:
            reply = await self.control.import_rows(rows.kind, rows.csv)
        except LabControlError as error:
            raise LabControlError(f"{where}: {error}") from None
        bad = reply.get("bad") or []
        if bad:
            raise LabControlError(f"{where}: " + "; ".join(f"CSV line {item['line']}: {item['reason']}"
                                                           for item in bad))
        return f"{reply.get('imported', 0)} {rows.kind} rows imported"

    async def _stop(self) -> None:
        if self.network is not None:
            await self.network.close()
        if self.control is not None:
            await self.control.close()
        if self.agent is not None:
            code = await asyncio.to_thread(self.agent.stop)
            if code != 0 and self.result.error is None:
                self.result.error = f"eir serve exited with {code}: {self.agent.log()[-500:]}"

    def _keep(self, folder: Path) -> None:
        if self.settings.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
            return
        destination = self.settings.keep / f"{self.scenario.suite}-{self.scenario.name}-{self.interface}"
        shutil.rmtree(destination, ignore_errors=True)
        self.settings.keep.mkdir(parents=True, exist_ok=True)
        shutil.move(folder, destination)

    # the steps

    @property
    def day(self) -> int:
        return int((self.now - self.scenario.start) // DAY) + 1  # the start is day 1

    async def _play(self, step: Step) -> StepResult:
        result = StepResult(step, self.day)
        try:
            await self.ACTIONS[step.action](self, step, result)
        except (PopulationError, LabControlError) as error:
            result.differences.append(str(error))
        result.day = self.day if step.action in (Action.WAIT, Action.AT) else result.day
        return result

    async def _population(self, step: Step, result: StepResult) -> None:
        result.received = self.population.apply(step)

    async def _attach(self, step: Step, result: StepResult) -> None:
        device = step.device
        assert device is not None and self.network is not None
        imsi = None
        if device.handset is not None:
            imsi = self.population.sim_in(device.handset, device.slot).imsi
        elif device.sim is not None:
            imsi = self.scenario.subscribers[device.sim].imsi
        via = step.via or (Via.S13 if self.interface == "s13" else DEFAULT_MAP)
        answer: Answer = await self.network.attach(via, device.imei, imsi)
        result.received = answer.text()
        result.log_key = answer.log_key
        result.status = answer.status
        if step.expect is not None:
            interface = "s13" if via is Via.S13 else "map"
            expected = step.expect.on(interface)
            result.compared = True
            result.differences += answer_differences(expected, answer, interface)
            result.expected_rule = expected.get("rule")

    async def _move_clock(self, step: Step, result: StepResult) -> None:
        assert self.control is not None
        if step.action is Action.WAIT:
            reply = await self.control.advance((step.duration or timedelta()).total_seconds())
        else:
            reply = await self.control.set((step.at or self.now).isoformat())
        self.now = datetime.fromisoformat(reply)
        self.lab_time.set(self.now.timestamp())
        result.received = f"lab clock {self.now.isoformat(timespec='minutes')}"

    async def _listed(self, step: Step, result: StepResult) -> None:
        assert self.control is not None and step.device is not None
        calls: dict[Action, Callable[[str, str], Awaitable[Any]]] = {
            Action.REGISTER: self.control.register, Action.STOLEN: self.control.block,
            Action.RECOVER: self.control.unblock}
        await calls[step.action](step.device.imei, step.reason or "scenario")
        result.received = "done"

    async def _import_step(self, step: Step, result: StepResult) -> None:
        assert step.rows is not None
        result.received = await self._import(step.rows)

    async def _notices(self, step: Step, result: StepResult) -> None:
        assert self.control is not None and step.device is not None
        found = await self.control.notices(step.device.imei)
        result.notices = found
        result.received = ", ".join(f"{item['event']}" + (f" (deadline {self._local_date(item['deadline'])})"
                                                          if item.get("deadline") else "") for item in found) or "none"
        if step.notices is not None:
            result.compared = True
            result.differences += notice_differences(list(step.notices), found, self.local_offset)

    async def _check(self, step: Step, result: StepResult) -> None:
        assert step.device is not None
        at = step.at or (self.scenario.start + DAY * (step.at_day - 1) if step.at_day is not None else self.now)
        command = [*EIR, "--registry", self.registry_url, "check", step.device.imei, "--profile",
                   self.scenario.profile, "--at", at.isoformat(), "--json"]
        if step.sim is not None:
            command += ["--imsi", self.scenario.subscribers[step.sim].imsi]
        process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        try:
            found = json.loads(out)
        except ValueError:
            result.differences.append(f"eir check exited {process.returncode}: {err.decode(errors='replace')[-300:]}")
            return
        result.status, result.rule, result.deadline = found["status"], found["rule"], found.get("deadline")
        result.received = f"{found['status']} ({found['rule']})" + (
            f", deadline {self._local_date(result.deadline)}" if result.deadline else "")
        if step.expect is not None:
            result.compared = True
            result.differences += check_differences(step.expect.common, found, self.local_offset)

    def _local_date(self, stamp: str) -> str:
        """An ISO time as the date it is in the profile's local time (as deadlines are told)."""
        return str(self.profile.local_date(parse_stamp(stamp)))

    async def _wire(self, step: Step, result: StepResult) -> None:
        from simulator.conformance import CheckOptions, run_check

        address = self._wire_address(step)
        options = CheckOptions(**step.options, capture=self.capture)
        observation = await run_check(step.check or "", *address, options=options)
        result.received = observation.detail
        if step.expect is not None:
            result.compared = True
            result.differences += wire_differences(step.expect.common, observation.fields)

    def _wire_address(self, step: Step) -> tuple[str, int]:
        if self.settings.external:
            found = self.settings.target if self.interface == "s13" else self.settings.map_target
            assert found is not None
            return found
        assert self.agent is not None
        return self.agent.address if self.interface == "s13" else self.agent.m3ua_address

    ACTIONS: ClassVar[dict[Action, Callable[[ScenarioRun, Step, StepResult], Awaitable[None]]]] = {
        Action.INSERT: _population, Action.REMOVE: _population, Action.SWAP: _population, Action.MOVE: _population,
        Action.LEAVE: _population, Action.ENTER: _population, Action.ATTACH: _attach, Action.WAIT: _move_clock,
        Action.AT: _move_clock, Action.REGISTER: _listed, Action.STOLEN: _listed, Action.RECOVER: _listed,
        Action.IMPORT: _import_step, Action.NOTICES: _notices, Action.CHECK: _check, Action.WIRE: _wire,
    }

    def _compare_rules(self, lines: list[dict[str, Any]]) -> None:
        logged = {str(line.get("session")): line for line in lines}
        for step in self.result.steps:
            line = logged.get(step.log_key or "")
            if line is not None:
                step.why = f"{line.get('rule')}: {line.get('reason')}"
                step.rule = str(line.get("rule"))
            if step.expected_rule is None or step.log_key is None:
                continue
            found = None if line is None else line.get("rule")
            if found != step.expected_rule:
                step.differences.append(f"rule: expected {step.expected_rule}, answer log says {found or 'nothing'}")


def print_result(result: RunResult, out: Callable[[str], None] = print) -> None:
    for line in result.lines():
        out(line)
    sys.stdout.flush()
