"""The steps of a scenario file, read into ``Step`` values with every name resolved, and the
values steps share: times, durations, list rows."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from registry.clock import parse_moment
from simulator.scenario_model import (
    IMEI_LISTS,
    IMPORT_KINDS,
    RULES,
    STATUSES,
    Action,
    DeviceRef,
    Expectation,
    ImportRows,
    NoticeExpect,
    Scenario,
    Step,
    Via,
)
from simulator.scenario_yaml import Node

_DURATION = re.compile(r"^(\d+)\s*(day|days|hour|hours|minute|minutes|second|seconds)$")
_DAY = re.compile(r"^day\s+(\d+)$")
ALL_COLUMNS = {"paired": ("imei", "imsi", "msisdn")}  # columns a kind's file always has, even empty
_UNITS = {"day": "days", "hour": "hours", "minute": "minutes", "second": "seconds"}


def parse_time(node: Node) -> datetime:
    """An ISO time (UTC unless it says), or a date alone: 12:00 UTC that day."""
    text = node.text().strip()
    try:
        return parse_moment(text).astimezone(UTC)
    except ValueError:
        node.fail(f"{text!r} is not a date (YYYY-MM-DD) or an ISO time (2024-03-01T10:00+05:00)")


def parse_duration(node: Node) -> timedelta:
    """``20 days``, ``3 hours``, ``90 minutes``, ``30 seconds``, or ``{days: 20, hours: 3}``."""
    if node.is_mapping():
        parts = node.mapping({"days", "hours", "minutes", "seconds"})
        if not parts:
            node.fail("an empty duration")
        return timedelta(**{name: value.integer(0) for name, value in parts.items()})
    text = node.text().strip().lower()
    found = _DURATION.match(text)
    if found is None:
        node.fail(f"{text!r} is not a duration (20 days, 3 hours, 90 minutes, 30 seconds)")
    unit = _UNITS.get(found[2], found[2])
    return timedelta(**{unit: int(found[1])})


def import_rows(kind: str, node: Node, scenario: Scenario) -> ImportRows:
    """List rows as the CSV ``eir registry import KIND`` reads: bare IMEIs (or handset
    names) for the IMEI lists, mappings for every kind; an ``imei`` value may name a
    handset (its first IMEI), an ``imsi`` or ``msisdn`` value a subscriber."""
    if kind not in IMPORT_KINDS:
        node.fail(f"unknown kind {kind!r}; expected one of {', '.join(IMPORT_KINDS)}")
    rows: list[dict[str, str]] = []
    for item in node.sequence():
        if item.is_scalar() and kind in IMEI_LISTS:
            rows.append({"imei": _imei_value(item.text(), scenario), "reason": "scenario"})
        elif item.is_mapping():
            rows.append({key: _resolved(key, value, scenario) for key, value in item.mapping().items()})
        else:
            item.fail(f"a {kind} row is a mapping" + (" or an IMEI" if kind in IMEI_LISTS else ""))
    columns: list[str] = list(ALL_COLUMNS.get(kind, ()))
    for row in rows:
        columns += [key for key in row if key not in columns]
    lines = [",".join(columns)] + [",".join(_csv_field(row.get(key, "")) for key in columns) for row in rows]
    return ImportRows(kind, "\n".join(lines) + "\n", node.line)


def _csv_field(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(mark in value for mark in ',"\n') else value


def _imei_value(text: str, scenario: Scenario) -> str:
    handset = scenario.handsets.get(text)
    return handset.imeis[0] if handset is not None else text


def _resolved(key: str, node: Node, scenario: Scenario) -> str:
    text = "" if node.is_scalar() and node.plain() is None else node.text()
    if key == "imei":
        return _imei_value(text, scenario)
    subscriber = scenario.subscribers.get(text)
    if key in ("imsi", "msisdn") and subscriber is not None:
        return subscriber.imsi if key == "imsi" else subscriber.msisdn
    return text


# the optional keys each action takes besides its own
EXTRA_KEYS: dict[Action, set[str]] = {
    Action.ATTACH: {"expect", "via"},
    Action.REGISTER: {"reason"},
    Action.STOLEN: {"reason"},
    Action.RECOVER: {"reason"},
    Action.NOTICES: {"expect"},
    Action.CHECK: {"expect", "at", "sim"},
    Action.WIRE: {"expect", "options"},
}
ATTACH_EXPECT = {"status", "rule", "result", "error", "s13", "map"}
CHECK_EXPECT = {"status", "rule", "deadline"}


class StepReader:
    """One step of ``scenario``'s list, read from ``node`` (number counts from 1)."""

    def __init__(self, scenario: Scenario, node: Node, number: int) -> None:
        self.scenario = scenario
        self.node = node
        self.number = number

    def read(self) -> Step:
        fields = self.node.mapping()
        actions = [name for name in fields if name in Action.__members__.values()]
        if len(actions) > 1 and Action.AT.value in actions:
            actions.remove(Action.AT.value)  # `at:` of a check step, not the clock step
        if len(actions) != 1:
            known = ", ".join(action.value for action in Action)
            self.node.fail(f"a step has exactly one action ({known}); found {', '.join(actions) or 'none'}")
        action = Action(actions[0])
        allowed = {action.value, "note", *EXTRA_KEYS.get(action, set())}
        for name, value in fields.items():
            if name not in allowed:
                value.fail(f"not a key of a {action.value} step; it takes {', '.join(sorted(allowed))}")
        read = getattr(self, f"_{action.value}")
        step: Step = read(fields[action.value], fields)
        return step

    def _step(self, action: Action, text: str, **values: Any) -> Step:
        return Step(self.number, self.node.line, action, text, **values)

    # identities

    def sim(self, node: Node) -> str:
        name = node.text()
        if name not in self.scenario.subscribers:
            node.fail(f"no subscriber named {name!r}; declared: {', '.join(self.scenario.subscribers) or 'none'}")
        return name

    def handset(self, node: Node) -> str:
        name = node.text()
        if name not in self.scenario.handsets:
            node.fail(f"no handset named {name!r}; declared: {', '.join(self.scenario.handsets) or 'none'}")
        return name

    def slot(self, node: Node | None, handset: str) -> int:
        slots = len(self.scenario.handsets[handset].imeis)
        if node is None:
            return 1
        return node.integer(1, slots)

    def device(self, node: Node) -> DeviceRef:
        """``H``, ``{handset: H, slot: N}`` or ``{imei: X, sim: S}``."""
        if node.is_scalar():
            name = self.handset(node)
            if self.scenario.handsets[name].dual:
                node.fail(f"{name} is dual-SIM: name the slot ({{handset: {name}, slot: 1}})")
            return DeviceRef(name, self.scenario.handsets[name].imeis[0], name)
        fields = node.mapping({"handset", "slot", "imei", "sim"})
        if "imei" in fields:
            if "handset" in fields or "slot" in fields:
                node.fail("give either imei (with sim) or handset (with slot)")
            imei = fields["imei"].text()
            sim = self.sim(fields["sim"]) if "sim" in fields else None
            return DeviceRef(f"IMEI {imei}", imei, sim=sim)
        if "handset" not in fields:
            node.fail("a device is a handset name, {handset: H, slot: N} or {imei: X, sim: S}")
        name = self.handset(fields["handset"])
        slot = self.slot(fields.get("slot"), name)
        if "sim" in fields:
            fields["sim"].fail("a handset's SIM is the one inserted in it (insert, swap, move)")
        label = f"{name} slot {slot}" if self.scenario.handsets[name].dual else name
        return DeviceRef(label, self.scenario.handsets[name].imeis[slot - 1], name, slot)

    # the SIM card and the handset

    def _insert(self, node: Node, _fields: dict[str, Node]) -> Step:
        parts = node.mapping({"sim", "into", "slot"}, required=("sim", "into"))
        sim, handset = self.sim(parts["sim"]), self.handset(parts["into"])
        slot = self.slot(parts.get("slot"), handset)
        return self._step(Action.INSERT, f"insert {sim} into {handset} slot {slot}", sim=sim, handset=handset,
                          slot=slot)

    def _remove(self, node: Node, _fields: dict[str, Node]) -> Step:
        sim = self.sim(node)
        return self._step(Action.REMOVE, f"remove {sim}", sim=sim)

    def _swap(self, node: Node, _fields: dict[str, Node]) -> Step:
        parts = node.mapping({"handset", "slot", "sim"}, required=("handset", "sim"))
        handset, sim = self.handset(parts["handset"]), self.sim(parts["sim"])
        slot = self.slot(parts.get("slot"), handset)
        return self._step(Action.SWAP, f"swap {handset} slot {slot} to {sim}", sim=sim, handset=handset, slot=slot)

    def _move(self, node: Node, _fields: dict[str, Node]) -> Step:
        parts = node.mapping({"sim", "to", "slot"}, required=("sim", "to"))
        sim, handset = self.sim(parts["sim"]), self.handset(parts["to"])
        slot = self.slot(parts.get("slot"), handset)
        return self._step(Action.MOVE, f"move {sim} to {handset} slot {slot}", sim=sim, handset=handset, slot=slot)

    def _leave(self, node: Node, _fields: dict[str, Node]) -> Step:
        handset = self.handset(node)
        return self._step(Action.LEAVE, f"{handset} leaves the country", handset=handset)

    def _enter(self, node: Node, _fields: dict[str, Node]) -> Step:
        handset = self.handset(node)
        return self._step(Action.ENTER, f"{handset} enters the country", handset=handset)

    # the network asks

    def _attach(self, node: Node, fields: dict[str, Node]) -> Step:
        device = self.device(node)
        via = None
        if "via" in fields:
            text = fields["via"].text()
            if text not in Via.__members__.values():
                fields["via"].fail(f"{text!r} is not one of {', '.join(via.value for via in Via)}")
            via = Via(text)
        expect = attach_expectation(fields["expect"]) if "expect" in fields else None
        pinned = f" via {via.value}" if via else ""
        return self._step(Action.ATTACH, f"attach {device.label}{pinned}", device=device, via=via, expect=expect)

    def _check(self, node: Node, fields: dict[str, Node]) -> Step:
        device = self.device(node)
        sim = self.sim(fields["sim"]) if "sim" in fields else device.sim
        at, day = (None, None) if "at" not in fields else self.when(fields["at"])
        expect = Expectation(expectation(fields["expect"], CHECK_EXPECT)) if "expect" in fields else None
        when = "" if at is None and day is None else f" at day {day}" if day is not None else f" at {at:%Y-%m-%d %H:%M}"
        return self._step(Action.CHECK, f"eir check {device.label}{when}", device=device, sim=sim, at=at, at_day=day,
                          expect=expect)

    def when(self, node: Node) -> tuple[datetime | None, int | None]:
        found = _DAY.match(node.text().strip())
        if found is None:
            return parse_time(node), None
        if int(found[1]) < 1:
            node.fail("days count from 1 (the start is day 1)")
        return None, int(found[1])

    def _notices(self, node: Node, fields: dict[str, Node]) -> Step:
        device = self.device(node)
        notices = None
        if "expect" in fields:
            notices = tuple(notice_expectation(item) for item in fields["expect"].sequence())
        return self._step(Action.NOTICES, f"notices of {device.label}", device=device, notices=notices)

    def _wire(self, node: Node, fields: dict[str, Node]) -> Step:
        from simulator.conformance import CHECKS

        name = node.text()
        if name not in CHECKS:
            node.fail(f"no wire check named {name!r}; the checks: {', '.join(CHECKS)}")
        options = wire_options(fields["options"]) if "options" in fields else {}
        expect = Expectation(fields["expect"].plain()) if "expect" in fields else None
        if expect is not None and not isinstance(expect.common, dict):
            fields["expect"].fail("expect is a mapping of observed fields")
        return self._step(Action.WIRE, f"wire {name}", check=name, options=options, expect=expect)

    # time

    def _wait(self, node: Node, _fields: dict[str, Node]) -> Step:
        duration = parse_duration(node)
        return self._step(Action.WAIT, f"wait {_span(duration)}", duration=duration)

    def _at(self, node: Node, _fields: dict[str, Node]) -> Step:
        at, day = self.when(node)
        if day is not None:
            return self._step(Action.AT, f"clock to day {day}", at=self.scenario.start + timedelta(days=day - 1))
        assert at is not None
        if at < self.scenario.start:
            node.fail(f"{at.isoformat()} is before the start {self.scenario.start.isoformat()}: "
                      "time only moves forward")
        return self._step(Action.AT, f"clock to {at.isoformat(timespec='minutes')}", at=at)

    # the national system

    def _register(self, node: Node, fields: dict[str, Node]) -> Step:
        return self._listed(Action.REGISTER, node, fields, "registered")

    def _stolen(self, node: Node, fields: dict[str, Node]) -> Step:
        return self._listed(Action.STOLEN, node, fields, "reported stolen")

    def _recover(self, node: Node, fields: dict[str, Node]) -> Step:
        return self._listed(Action.RECOVER, node, fields, "recovered")

    def _listed(self, action: Action, node: Node, fields: dict[str, Node], what: str) -> Step:
        device = self.device(node)
        reason = fields["reason"].text() if "reason" in fields else f"scenario: {what}"
        return self._step(action, f"{device.label} {what}", device=device, reason=reason)

    def _import(self, node: Node, _fields: dict[str, Node]) -> Step:
        parts = node.mapping({"kind", "rows"}, required=("kind", "rows"))
        rows = import_rows(parts["kind"].text(), parts["rows"], self.scenario)
        count = rows.csv.count(chr(10)) - 1
        return self._step(Action.IMPORT, f"import {rows.kind} ({count} row{'s' * (count != 1)})", rows=rows)


def _span(duration: timedelta) -> str:
    days, seconds = duration.days, duration.seconds
    parts = [f"{days} day{'s' * (days != 1)}"] if days else []
    if seconds:
        parts.append(f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 60 else f"{seconds}s")
    return " ".join(parts) or "0 s"


def expectation(node: Node, allowed: set[str]) -> dict[str, Any]:
    """``white`` (a status alone) or a mapping of ``allowed`` keys, each value checked."""
    if node.is_scalar():
        return {"status": _status(node)}
    values: dict[str, Any] = {}
    for name, value in node.mapping(allowed).items():
        if name == "status":
            values[name] = _status(value)
        elif name == "rule":
            rule = value.text()
            if rule not in RULES:
                value.fail(f"no rule named {rule!r}; the rules: {', '.join(sorted(RULES))}")
            values[name] = rule
        elif name == "result":
            values[name] = value.integer(1000, 5999)
        elif name == "deadline":
            values[name] = _moment(value)
        elif name in ("s13", "map"):
            continue
        else:
            values[name] = value.text()
    return values


def attach_expectation(node: Node) -> Expectation:
    common = expectation(node, ATTACH_EXPECT)
    fields = node.mapping() if node.is_mapping() else {}
    by = {name: expectation(fields[name], ATTACH_EXPECT - {"s13", "map"}) for name in ("s13", "map") if name in fields}
    return Expectation(common, by.get("s13", {}), by.get("map", {}))


def _status(node: Node) -> str:
    status = node.text().lower()
    if status not in STATUSES:
        node.fail(f"{status!r} is not a status ({', '.join(STATUSES)})")
    return status


def _moment(node: Node) -> date | datetime:
    text = node.text().strip()
    if len(text) == 10:
        try:
            return date.fromisoformat(text)
        except ValueError:
            node.fail(f"{text!r} is not a date (YYYY-MM-DD)")
    return parse_time(node)


def notice_expectation(node: Node) -> NoticeExpect:
    fields = node.mapping({"event", "deadline"}, required=("event",))
    event = fields["event"].text()
    if event not in ("grey", "black") and not re.fullmatch(r"reminder-\d+d", event):
        fields["event"].fail(f"{event!r} is not a notice event (grey, reminder-Nd, black)")
    return NoticeExpect(event, _moment(fields["deadline"]) if "deadline" in fields else None)


WIRE_OPTIONS = {"origin_host": str, "origin_realm": str, "destination_realm": str, "timeout": float, "imei": str,
                "unknown_origin_host": str, "close_wait": float}


def wire_options(node: Node) -> dict[str, Any]:
    """The options of a wire check (simulator/conformance_common.py CheckOptions)."""
    options: dict[str, Any] = {}
    for name, value in node.mapping(set(WIRE_OPTIONS)).items():
        try:
            options[name] = WIRE_OPTIONS[name](value.text())
        except ValueError:
            value.fail(f"{value.text()!r} is not a number")
    return options
