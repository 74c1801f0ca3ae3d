"""What the enforcement report shows, as plain data built from scenario results: per run,
its devices, and per device the events of each day (the status the network was given and
the rule that decided it, the notices queued with their deadlines, SIM, border and list
events, failed steps with their differences). simulator/report.py renders it;
simulator/report_charts.py draws it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

from registry.profile import ProfileError, load_profile
from simulator.scenario_model import Action, Scenario
from simulator.scenario_run import DAY, RunResult, StepResult

STATUS_WORDS = ("white", "grey", "black", "unknown")
SIM_ACTIONS = (Action.INSERT, Action.REMOVE, Action.SWAP, Action.MOVE)
BORDER_ACTIONS = (Action.LEAVE, Action.ENTER)
LIST_ACTIONS = (Action.REGISTER, Action.STOLEN, Action.RECOVER)


@dataclass
class Event:
    """One thing that happened to a device on a day of the scenario (day 1 = its start)."""

    day: int
    kind: str  # answer, check, notice, notices, sim, border, register, stolen, recover
    text: str
    status: str | None = None  # white, grey, black, unknown: what the network was told
    rule: str | None = None
    why: str | None = None  # the rule's reason, as the agent logged it
    deadline: date | None = None  # a notice's or a check's deadline, on the local calendar
    received: str = ""
    differences: list[str] = field(default_factory=list)
    step: int | None = None  # the scenario step (number) and its line in the file
    line: int | None = None

    @property
    def failed(self) -> bool:
        return bool(self.differences)


@dataclass
class DayView:
    day: int
    date: date
    events: list[Event]


@dataclass
class DeviceView:
    label: str
    imei: str
    handset: str | None
    events: list[Event] = field(default_factory=list)

    @property
    def statuses(self) -> list[tuple[int, str]]:
        """(day, status) of every answer and check, by day: the lane the chart draws."""
        found = [(event.day, event.status) for event in self.events
                 if event.kind in ("answer", "check") and event.status in STATUS_WORDS]
        return sorted(found, key=lambda pair: pair[0])

    @property
    def cut_off(self) -> bool:
        """Answered black at least once (service refused)."""
        return any(status == "black" for _, status in self.statuses)

    @property
    def failures(self) -> int:
        return sum(event.failed for event in self.events)


@dataclass
class RunView:
    result: RunResult
    devices: list[DeviceView]
    start_date: date  # day 1 on the profile's local calendar
    last_day: int
    local_start: datetime  # the start on the local clock (naive)
    utc_offset: timedelta

    @property
    def start_text(self) -> str:
        minutes = int(self.utc_offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        return f"{self.local_start:%Y-%m-%d %H:%M} (UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d})"

    @property
    def file(self) -> str:
        """The scenario file, relative to the folder the run was started in when it is under it."""
        try:
            return str(self.scenario.path.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(self.scenario.path)

    @property
    def profile_name(self) -> str:
        return profile_name(self.scenario.profile)

    @property
    def scenario(self) -> Scenario:
        return self.result.scenario

    @property
    def anchor(self) -> str:
        return f"run-{self.scenario.suite}-{self.scenario.name}-{self.result.interface}"

    @property
    def verdict(self) -> str:
        if self.result.skipped is not None:
            return "skipped"
        if self.result.error is not None:
            return "error"
        return "passed" if self.result.passed else "failed"

    @property
    def notices_sent(self) -> int:
        return sum(event.kind == "notice" for device in self.devices for event in device.events)

    @property
    def cut_off(self) -> int:
        return sum(device.cut_off for device in self.devices)

    def date_of(self, day: int) -> date:
        return self.start_date + timedelta(days=day - 1)

    def days(self, device: DeviceView) -> list[DayView]:
        ordered = sorted(device.events, key=lambda event: event.day)  # stable: step order within a day
        return [DayView(day, self.date_of(day), list(events)) for day, events in groupby(ordered, lambda e: e.day)]


def profile_name(profile: str) -> str:
    """A profile as a reader knows it: its name (tj), or a profile file's name."""
    return profile.replace("\\", "/").rsplit("/", 1)[-1]


def run_views(results: Iterable[RunResult]) -> list[RunView]:
    return [run_view(result) for result in results]


def run_view(result: RunResult) -> RunView:
    scenario = result.scenario
    builder = _DeviceEvents(scenario, _utc_offset(scenario.profile))
    for step in result.steps:
        builder.add(step)
    days = [event.day for device in builder.devices.values() for event in device.events]
    days += [step.day for step in result.steps]
    local_start = scenario.start.astimezone(UTC) + builder.offset
    return RunView(result, list(builder.devices.values()), local_start.date(), max(days, default=1),
                   local_start.replace(tzinfo=None), builder.offset)


def _utc_offset(profile: str) -> timedelta:
    try:
        return load_profile(profile).utc_offset
    except (ProfileError, OSError, ValueError):
        return timedelta()


class _DeviceEvents:
    """Sorts a run's steps into per-device events, following the SIMs between handsets."""

    def __init__(self, scenario: Scenario, offset: timedelta) -> None:
        self.scenario = scenario
        self.offset = offset
        self.devices: dict[str, DeviceView] = {}
        self.sims: dict[str, tuple[str, int]] = {}  # SIM name -> (handset, slot)

    def add(self, result: StepResult) -> None:
        step = result.step
        if step.action in SIM_ACTIONS:
            self._sim(result)
        elif step.action in BORDER_ACTIONS:
            for device in self._handset_lanes(step.handset or ""):
                device.events.append(self._event(result, "border"))
        elif step.device is not None:
            self._device_step(result)

    def _device_step(self, result: StepResult) -> None:
        step = result.step
        assert step.device is not None
        device = self._lane(step.device.label, step.device.imei, step.device.handset)
        if step.action is Action.ATTACH:
            device.events.append(self._event(result, "answer", status=result.status, rule=result.rule))
        elif step.action is Action.CHECK:
            device.events.append(self._check(result))
        elif step.action is Action.NOTICES:
            self._notices(device, result)
        elif step.action in LIST_ACTIONS:
            device.events.append(self._event(result, step.action.value))

    def _sim(self, result: StepResult) -> None:
        step = result.step
        where = self.sims.get(step.sim or "") if step.action is Action.REMOVE else (step.handset or "", step.slot)
        if step.action is Action.REMOVE:
            self.sims.pop(step.sim or "", None)
        elif step.sim:
            self.sims[step.sim] = (step.handset or "", step.slot)
        if where is None:  # a SIM in no handset: a failed step the run already reported
            return
        lane = self._slot_lane(*where)
        if lane is not None:
            lane.events.append(self._event(result, "sim"))

    def _check(self, result: StepResult) -> Event:
        step = result.step
        day = result.day
        if step.at_day is not None:
            day = step.at_day
        elif step.at is not None:
            day = self._day(step.at)
        event = self._event(result, "check", status=result.status, rule=result.rule, day=day)
        deadline = _field(result.received, "deadline ")
        event.deadline = date.fromisoformat(deadline) if deadline else None
        return event

    def _notices(self, device: DeviceView, result: StepResult) -> None:
        known = {(event.text, event.deadline, event.day) for event in device.events if event.kind == "notice"}
        for item in result.notices:
            event = self._notice(result, item)
            if (event.text, event.deadline, event.day) not in known:
                known.add((event.text, event.deadline, event.day))
                device.events.append(event)
        if result.differences or not result.notices:
            device.events.append(self._event(result, "notices"))

    def _notice(self, result: StepResult, item: dict[str, Any]) -> Event:
        created = _moment(item.get("created_at"))
        deadline = _moment(item.get("deadline"))
        return Event(self._day(created) if created is not None else result.day, "notice", str(item.get("event")),
                     deadline=None if deadline is None else (deadline.astimezone(UTC) + self.offset).date(),
                     step=result.step.number, line=result.step.line)

    def _event(self, result: StepResult, kind: str, status: str | None = None, rule: str | None = None,
               day: int | None = None) -> Event:
        why = result.why.split(": ", 1)[1] if result.why and ": " in result.why else result.why
        return Event(result.day if day is None else day, kind, result.step.text, status=status, rule=rule, why=why,
                     received=result.received, differences=list(result.differences), step=result.step.number,
                     line=result.step.line)

    def _day(self, moment: datetime) -> int:
        return int((moment - self.scenario.start) // DAY) + 1

    # lanes: one per IMEI (a dual-SIM handset has one per slot)

    def _lane(self, label: str, imei: str, handset: str | None) -> DeviceView:
        if label not in self.devices:
            self.devices[label] = DeviceView(label, imei, handset)
        return self.devices[label]

    def _slot_lane(self, handset: str, slot: int) -> DeviceView | None:
        known = self.scenario.handsets.get(handset)
        if known is None or slot > len(known.imeis):
            return None
        label = f"{handset} slot {slot}" if known.dual else handset
        return self._lane(label, known.imeis[slot - 1], handset)

    def _handset_lanes(self, handset: str) -> list[DeviceView]:
        known = self.scenario.handsets.get(handset)
        count = len(known.imeis) if known is not None else 0
        return [lane for slot in range(1, count + 1) if (lane := self._slot_lane(handset, slot)) is not None]


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _field(text: str, name: str) -> str | None:
    """The ISO date after ``name`` in a step's received text ("..., deadline 2024-03-31")."""
    at = text.find(name)
    if at < 0:
        return None
    value = text[at + len(name):at + len(name) + 10]
    try:
        date.fromisoformat(value)
    except ValueError:
        return None
    return value

