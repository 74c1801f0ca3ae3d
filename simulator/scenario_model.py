"""The scenario model (scenarios/README.md): subscribers, handsets, the rows the registry
holds before day 0, the steps and their expectations, all names resolved. Plain data:
simulator/scenario.py reads it from YAML, simulator/scenario_run.py plays it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from registry.decision import Rule


class Action(enum.StrEnum):
    INSERT = "insert"
    REMOVE = "remove"
    SWAP = "swap"
    MOVE = "move"
    LEAVE = "leave"
    ENTER = "enter"
    ATTACH = "attach"
    WAIT = "wait"
    AT = "at"
    REGISTER = "register"
    STOLEN = "stolen"
    RECOVER = "recover"
    IMPORT = "import"
    NOTICES = "notices"
    CHECK = "check"
    WIRE = "wire"


class Via(enum.StrEnum):
    """How an attach travels when a step pins it (otherwise the run's interface decides)."""

    S13 = "s13"
    MAP_V1 = "map-v1"
    MAP_V2 = "map-v2"
    MAP_V3 = "map-v3"


STATUSES = ("white", "grey", "black", "unknown")
IMPORT_KINDS = ("white", "grey", "black", "paired", "stolen", "tac", "subscribers", "observations")
IMEI_LISTS = ("white", "grey", "black", "stolen")  # kinds whose rows may be written as bare IMEIs
RULES = frozenset(rule.value for rule in Rule)
# Country calling codes of the MCCs scenarios use, for generated MSISDNs.
CALLING_CODES = {"436": "992", "437": "996", "250": "7", "257": "375", "401": "7", "434": "998", "410": "92",
                 "286": "90", "404": "91", "262": "49", "234": "44", "310": "1"}


@dataclass(frozen=True)
class Subscriber:
    name: str
    imsi: str
    msisdn: str


@dataclass(frozen=True)
class Handset:
    name: str
    imeis: tuple[str, ...]  # one per SIM slot
    device_type: str | None
    clone_of: str | None = None  # another device with the same IMEI(s): a clone

    @property
    def dual(self) -> bool:
        return len(self.imeis) > 1


@dataclass(frozen=True)
class DeviceRef:
    """An IMEI a step is about: a handset's slot, or an IMEI written out (with the SIM to use)."""

    label: str
    imei: str
    handset: str | None = None
    slot: int = 1
    sim: str | None = None


@dataclass(frozen=True)
class ImportRows:
    kind: str
    csv: str
    line: int


@dataclass(frozen=True)
class NoticeExpect:
    event: str
    deadline: date | datetime | None


@dataclass(frozen=True)
class Expectation:
    """Expected values by name; ``s13`` and ``map`` hold what differs by interface."""

    common: dict[str, Any] = field(default_factory=dict)
    s13: dict[str, Any] = field(default_factory=dict)
    map: dict[str, Any] = field(default_factory=dict)

    def on(self, interface: str) -> dict[str, Any]:
        return {**self.common, **(self.s13 if interface == "s13" else self.map)}


@dataclass(frozen=True)
class Step:
    number: int
    line: int
    action: Action
    text: str  # the step as the report names it
    device: DeviceRef | None = None
    sim: str | None = None
    handset: str | None = None  # insert, move, swap, leave, enter
    slot: int = 1
    duration: timedelta | None = None
    at: datetime | None = None
    at_day: int | None = None
    rows: ImportRows | None = None
    reason: str | None = None
    via: Via | None = None
    check: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    expect: Expectation | None = None
    notices: tuple[NoticeExpect, ...] | None = None


@dataclass
class Scenario:
    path: Path
    title: str
    profile: str
    start: datetime
    seed: int = 0
    description: str = ""
    subscribers: dict[str, Subscriber] = field(default_factory=dict)
    handsets: dict[str, Handset] = field(default_factory=dict)
    setup: list[ImportRows] = field(default_factory=list)
    allow_peer: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def suite(self) -> str:
        return self.path.parent.name

    @property
    def needs_lab(self) -> list[str]:
        """Why the scenario needs our own agent (a lab clock, registry changes): empty when it
        is made of wire checks only, and may run against any EIR."""
        why = sorted({step.action.value for step in self.steps if step.action is not Action.WIRE})
        if self.setup or any(handset.device_type for handset in self.handsets.values()):
            why.insert(0, "registry rows")
        return why
