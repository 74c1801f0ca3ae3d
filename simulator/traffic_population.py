"""The population of a traffic run (``eir sim traffic``): a seeded model of a country's
subscribers and their devices, the registry rows the national system would hold for them,
what happens to them day by day (who attaches, who registers, whose phone is reported
stolen), and, for every attach, the status and rule the country's rules predict.

The prediction is written from ../shared/DOMAIN.md, not from registry/decision/policy.py:
it reads only the profile's parameters (home PLMNs, grace windows, roamer exemption,
grandfathering cutoff, device types entered automatically). A run compares every answer
of the agent with it, so the two are independent accounts of the same rules.

Shares (fractions of the subscribers; "registered" takes what the others leave):

============  =====  ===================================================================
name          share  who
============  =====  ===================================================================
registered    rest   a phone on the white list, a local SIM: white (white-list)
abroad        0.10   a phone bought abroad, never registered, a local SIM: grey for the
                     grace window from its first attach, then black (grace-expired);
                     black at once where the profile gives no window (no-grace)
dual-sim      0.08   two IMEIs, two local SIMs; slot 1 registered (white), slot 2 not (grace)
roamer        0.06   a foreign SIM in international roaming, for some days: white (roamer)
foreigner     0.04   arrives roaming (white), buys a local SIM after a few days: the grace
                     window runs from its first attach with the local SIM
clone         0.03   an IMEI on the paired white list bound to a subscriber (by IMSI, or by
                     MSISDN through the subscriber data): white with that SIM
                     (paired-match); the clone, the same IMEI with another SIM, black
                     (paired-mismatch)
router        0.06   a router or modem (its TAC's device type): white (auto-entered)
stolen        0.02   a registered phone reported stolen on a day of the window: white before,
                     black (stolen) from the report's day
registering   0.06   an unregistered phone (grace) registered on a day of the window: white
                     (white-list) from that day
============  =====  ===================================================================

Days are numbered from 1 (the first day played); every attach of day d happens at the
lab clock's instant for that day, ``start + (d - 1) days``. A day's registrations and
stolen reports are made before its attaches, so a phone registered on day 12 is white on
day 12.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar, TypeVar

from registry.imei import luhn_check_digit
from registry.profile import Profile

DAY = timedelta(days=1)
_T = TypeVar("_T")


class Kind(enum.StrEnum):
    REGISTERED = "registered"
    ABROAD = "abroad"
    DUAL_SIM = "dual-sim"
    ROAMER = "roamer"
    FOREIGNER = "foreigner"
    CLONE = "clone"
    ROUTER = "router"
    STOLEN = "stolen"
    REGISTERING = "registering"


DEFAULT_SHARES: dict[Kind, float] = {
    Kind.ABROAD: 0.10, Kind.DUAL_SIM: 0.08, Kind.ROAMER: 0.06, Kind.FOREIGNER: 0.04, Kind.CLONE: 0.03,
    Kind.ROUTER: 0.06, Kind.STOLEN: 0.02, Kind.REGISTERING: 0.06,
}
DEFAULT_ACTIVE = 0.8  # the chance that a phone attaches on a given day of its stay (routers: every day)
PHONE_TACS = ("35209900", "35332510", "35875309", "86091203", "35467811", "86779804", "35290611", "35162807")
DEVICE_TYPES = {"35209900": "Smartphone", "35332510": "Smartphone", "35875309": "Smartphone",
                "86091203": "Smartphone", "35467811": "Mobile Phone/Feature phone", "86779804": "Smartphone",
                "35290611": "Tablet", "35162807": "Smartphone", "86354101": "Router", "86720604": "Modem"}
ROUTER_TACS = ("86354101", "86720604")
# foreign networks: Russia, Turkey, Germany, China, Uzbekistan, Kazakhstan, and the neighbour
FOREIGN_PLMNS = ("25001", "28601", "26201", "46000", "43405", "40101", "43701", "43601")
COUNTRY_CODES = {"tj": "992", "kg": "996"}
MAX_SERIALS = 1_000_000  # SNRs of one TAC
# A router's first answer enters it on the white list; an answer of the same day decided
# after that entry (the other interface's) says white-list.
AUTO_FIRST_DAY = "auto-entered|white-list"


class ShareError(ValueError):
    """Shares that do not make a population (an unknown name, a fraction out of range...)."""


def parse_shares(items: Sequence[str]) -> dict[Kind, float]:
    """The shares of ``--share NAME=FRACTION`` items over the defaults; ShareError saying why not."""
    shares = dict(DEFAULT_SHARES)
    names = ", ".join(kind.value for kind in Kind)
    for item in items:
        name, _, value = item.partition("=")
        try:
            kind = Kind(name.strip())
        except ValueError:
            raise ShareError(f"--share {item!r}: no share named {name.strip()!r} (one of {names})") from None
        try:
            fraction = float(value)
        except ValueError:
            raise ShareError(f"--share {item!r}: the fraction must be a number from 0 to 1") from None
        if not 0.0 <= fraction <= 1.0:
            raise ShareError(f"--share {item!r}: the fraction must be from 0 to 1")
        shares[kind] = fraction
    others = sum(fraction for kind, fraction in shares.items() if kind is not Kind.REGISTERED)
    if Kind.REGISTERED in shares:
        if abs(others + shares[Kind.REGISTERED] - 1.0) > 1e-9:
            raise ShareError(f"the shares add up to {others + shares[Kind.REGISTERED]:g}, not 1")
    elif others > 1.0 + 1e-9:
        raise ShareError(f"the shares other than registered add up to {others:g}, more than 1")
    return shares


@dataclass(slots=True)
class Line:
    """One IMEI used with one SIM: what attaches."""

    number: int  # its index in Population.lines
    device: int  # the subscriber's device it belongs to
    kind: Kind
    imei: str  # 15 digits
    imsi: str
    first_day: int  # the days it may attach, inclusive
    last_day: int
    always: bool = False  # attaches every day of its stay (routers)

    @property
    def key(self) -> str:
        return self.imei[:14]


@dataclass
class Facts:
    """What the national system holds or will hold, by IMEI key (TAC+SNR)."""

    white_from: dict[str, int] = field(default_factory=dict)  # 0: on the white list before day 1
    stolen_from: dict[str, int] = field(default_factory=dict)
    bound: dict[str, set[str]] = field(default_factory=dict)  # paired white: the IMSIs it is usable with
    auto: set[str] = field(default_factory=set)  # a device type entered automatically


@dataclass(frozen=True)
class Settings:
    subscribers: int
    days: int
    seed: int = 1
    shares: dict[Kind, float] = field(default_factory=lambda: dict(DEFAULT_SHARES))
    active: float = DEFAULT_ACTIVE


class Population:
    """The seeded population: ``lines``, ``facts``, the registry ``rows``, the day's
    ``events`` and ``active`` lines, and the ``Model`` that predicts their answers."""

    def __init__(self, settings: Settings, profile: Profile) -> None:
        self.settings = settings
        self.profile = profile
        self.rng = random.Random(settings.seed)
        self.lines: list[Line] = []
        self.facts = Facts()
        self.registrations: dict[int, list[str]] = {}  # day -> IMEIs registered that day
        self.reports: dict[int, list[str]] = {}  # day -> IMEIs reported stolen that day
        self.white_rows: list[str] = []
        self.paired_rows: list[tuple[str, str, str]] = []  # imei, imsi, msisdn (one of the last two empty)
        self.subscriber_rows: list[tuple[str, str]] = []  # imsi, msisdn
        self.devices = 0
        self._serials: dict[str, int] = {}
        self._msin = 0
        self._locals = [plmn for plmn in profile.home_plmns]
        self._foreign = [plmn for plmn in FOREIGN_PLMNS if not profile.is_local(plmn + "0" * 10)]
        self._build()

    # --- building --------------------------------------------------------------------------

    def counts(self) -> dict[Kind, int]:
        """Subscribers of each kind: the shares of ``subscribers``, registered the rest."""
        total = self.settings.subscribers
        shares = self.settings.shares
        counts: dict[Kind, int] = {kind: round(total * fraction) for kind, fraction in shares.items()
                                   if kind is not Kind.REGISTERED}
        taken = sum(counts.values())
        if taken > total:
            raise ShareError(f"the shares give {taken} subscribers, more than {total}")
        return {Kind.REGISTERED: total - taken, **counts}

    def _build(self) -> None:
        kinds = [kind for kind, count in self.counts().items() for _ in range(count)]
        self.rng.shuffle(kinds)
        registering = 0
        for kind in kinds:
            if kind is Kind.REGISTERING:
                registering += 1
            self.BUILDERS[kind](self, registering)
            self.devices += 1

    def _imei(self, tacs: Sequence[str]) -> str:
        tac = self.rng.choice(tacs)
        serial = self._serials.get(tac, 0)
        if serial >= MAX_SERIALS:
            raise ShareError(f"more than {MAX_SERIALS} devices of TAC {tac}")
        self._serials[tac] = serial + 1
        body = f"{tac}{serial:06d}"
        return body + luhn_check_digit(body)

    def _imsi(self, plmns: Sequence[str]) -> str:
        plmn = self.rng.choice(plmns)
        self._msin += 1
        width = 15 - len(plmn)
        return f"{plmn}{self._msin % 10 ** width:0{width}d}"

    def _add(self, kind: Kind, imei: str, imsi: str, first: int, last: int, always: bool = False) -> Line:
        line = Line(len(self.lines), self.devices, kind, imei, imsi, first, last, always)
        self.lines.append(line)
        return line

    def _arrival(self) -> int:
        return self.rng.randint(1, max(1, self.settings.days // 3))

    def _registered(self, _: int) -> None:
        imei = self._imei(PHONE_TACS)
        self._white(imei, 0)
        self._add(Kind.REGISTERED, imei, self._imsi(self._locals), 1, self.settings.days)

    def _abroad(self, _: int) -> None:
        self._add(Kind.ABROAD, self._imei(PHONE_TACS), self._imsi(self._locals), self._arrival(), self.settings.days)

    def _dual_sim(self, _: int) -> None:
        first = self._arrival()
        slot1, slot2 = self._imei(PHONE_TACS), self._imei(PHONE_TACS)
        self._white(slot1, 0)
        self._add(Kind.DUAL_SIM, slot1, self._imsi(self._locals), first, self.settings.days)
        self._add(Kind.DUAL_SIM, slot2, self._imsi(self._locals), first, self.settings.days)

    def _roamer(self, _: int) -> None:
        first = self.rng.randint(1, self.settings.days)
        last = min(self.settings.days, first + self.rng.randint(2, 20))
        self._add(Kind.ROAMER, self._imei(PHONE_TACS), self._imsi(self._foreign), first, last)

    def _foreigner(self, _: int) -> None:
        first = self._arrival()
        switch = min(self.settings.days, first + self.rng.randint(1, 5))
        imei = self._imei(PHONE_TACS)
        if switch > first:
            self._add(Kind.FOREIGNER, imei, self._imsi(self._foreign), first, switch - 1)
        self._add(Kind.FOREIGNER, imei, self._imsi(self._locals), switch, self.settings.days)

    def _clone(self, _: int) -> None:
        imei = self._imei(PHONE_TACS)
        owner, other = self._imsi(self._locals), self._imsi(self._locals)
        if self.rng.random() < 0.5:
            self.paired_rows.append((imei, owner, ""))
        else:  # bound to the subscriber number, which the operator's subscriber data give the IMSI
            code = COUNTRY_CODES.get(self.profile.name, "992")
            msisdn = f"{code}{self._msin:09d}"
            self.subscriber_rows.append((owner, msisdn))
            self.paired_rows.append((imei, "", msisdn))
        self.facts.bound[imei[:14]] = {owner}
        self._add(Kind.CLONE, imei, owner, 1, self.settings.days)
        self._add(Kind.CLONE, imei, other, 1, self.settings.days)

    def _router(self, _: int) -> None:
        imei = self._imei(ROUTER_TACS)
        self.facts.auto.add(imei[:14])
        self._add(Kind.ROUTER, imei, self._imsi(self._locals), 1, self.settings.days, always=True)

    def _stolen(self, _: int) -> None:
        imei = self._imei(PHONE_TACS)
        self._white(imei, 0)
        day = self.rng.randint(min(2, self.settings.days), self.settings.days)
        self.facts.stolen_from[imei[:14]] = day
        self.reports.setdefault(day, []).append(imei)
        self._add(Kind.STOLEN, imei, self._imsi(self._locals), 1, self.settings.days)

    def _registering(self, number: int) -> None:
        """The n-th such phone is registered on day 2 + (n - 1) mod (days - 1): every early day has one."""
        imei = self._imei(PHONE_TACS)
        days = self.settings.days
        day = 2 + (number - 1) % (days - 1) if days > 1 else 1
        self.facts.white_from[imei[:14]] = day
        self.registrations.setdefault(day, []).append(imei)
        self._add(Kind.REGISTERING, imei, self._imsi(self._locals), 1, days)

    def _white(self, imei: str, day: int) -> None:
        self.facts.white_from[imei[:14]] = day
        if day == 0:
            self.white_rows.append(imei)

    BUILDERS: ClassVar[dict[Kind, Callable[[Population, int], None]]] = {
        Kind.REGISTERED: _registered, Kind.ABROAD: _abroad, Kind.DUAL_SIM: _dual_sim, Kind.ROAMER: _roamer,
        Kind.FOREIGNER: _foreigner, Kind.CLONE: _clone, Kind.ROUTER: _router, Kind.STOLEN: _stolen,
        Kind.REGISTERING: _registering}

    # --- the registry's rows ----------------------------------------------------------------

    def rows(self) -> Iterator[tuple[str, str]]:
        """(kind, CSV text) for the lab endpoint's import, in order: the TAC catalogue, the
        subscriber data, the white list, the paired white list (chunks of CHUNK rows)."""
        yield "tac", "tac,device_type\n" + "".join(f"{tac},{kind}\n" for tac, kind in sorted(DEVICE_TYPES.items()))
        for chunk in _chunks(self.subscriber_rows):
            yield "subscribers", "imsi,msisdn\n" + "".join(f"{imsi},{msisdn}\n" for imsi, msisdn in chunk)
        for white in _chunks(self.white_rows):
            yield "white", "imei,reason\n" + "".join(f"{imei},customs declaration\n" for imei in white)
        for paired in _chunks(self.paired_rows):
            yield "paired", "imei,imsi,msisdn\n" + "".join(f"{imei},{imsi},{msisdn}\n" for imei, imsi, msisdn in paired)

    # --- the days ---------------------------------------------------------------------------

    def active(self, day: int) -> list[Line]:
        """The lines that attach on ``day`` (the same for the same seed)."""
        rng = random.Random(f"{self.settings.seed}:{day}")
        chance = self.settings.active
        return [line for line in self.lines if line.first_day <= day <= line.last_day
                and (line.always or rng.random() < chance)]


CHUNK = 20_000  # rows in one import request (the endpoint takes up to 4 MiB a line)


def _chunks(rows: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start:start + CHUNK]


def rule_matches(expected: str, found: str) -> bool:
    return found in expected.split("|")


class Model:
    """The predicted status and rule of each attach, from the rules of DOMAIN.md with the
    profile's parameters. ``grace_shift`` moves every grace window by that many days: a
    deliberately wrong model, to show that the run's check can fail."""

    def __init__(self, population: Population, start: datetime, grace_shift: int = 0) -> None:
        self.population = population
        self.profile = population.profile
        self.facts = population.facts
        self.start = start
        self.grace_shift = grace_shift
        self.first_local: dict[str, int] = {}  # IMEI key -> the day first seen with a local SIM
        self.first_roaming: dict[str, int] = {}

    def at(self, day: int) -> datetime:
        """The lab clock's instant of ``day``."""
        return self.start + (day - 1) * DAY

    def expect(self, line: Line, day: int) -> tuple[str, str]:
        """(status, rule) of ``line`` attaching on ``day``; the attach is a sighting, so
        call it once per attach, days in order. The rule may name alternatives, "a|b"
        (``rule_matches``)."""
        key = line.key
        local = self.profile.is_local(line.imsi)
        seen = self.first_local if local else self.first_roaming
        seen.setdefault(key, day)
        stolen = self.facts.stolen_from.get(key)
        if stolen is not None and stolen <= day:
            return "black", "stolen"
        if not local:
            roamer = self._roamer(key, day)
            if roamer is not None:
                return roamer
        bound = self.facts.bound.get(key)
        if bound is not None:
            return ("white", "paired-match") if line.imsi in bound else ("black", "paired-mismatch")
        white = self.facts.white_from.get(key)
        if white is not None and white <= day:
            return "white", "white-list"
        return self._unregistered(key, day)

    def notices(self, line: Line, day: int, rule: str) -> list[str]:
        """The SMS notices an attach answered by ``rule`` makes due (the owner is told once of
        each, per IMEI and SIM): the grey notice and the reminders due by then inside a
        grace window, the black notice when the device is cut off for want of registration."""
        if rule in ("grace-expired", "no-grace", "not-registered"):
            return ["black"]
        if rule != "grace":
            return []
        deadline = self.first_local[line.key] + self.profile.grace_days(self.at(self.first_local[line.key]))
        deadline += self.grace_shift
        return ["grey"] + [f"reminder-{before}d" for before in self.profile.reminder_days if day >= deadline - before]

    def _roamer(self, key: str, day: int) -> tuple[str, str] | None:
        days = self.profile.roamer_days
        if days is None or day < self.first_roaming[key] + days:
            return "white", "roamer"
        return None

    def _unregistered(self, key: str, day: int) -> tuple[str, str]:
        first = self.first_local.get(key)
        cutoff = self.profile.grandfather_before
        if first is not None and cutoff is not None and self.at(first) < self.profile.local_midnight(cutoff):
            return "white", "grandfathered"
        if key in self.facts.auto:  # entered on the white list by its first answer
            first_seen = min(first for first in (first, self.first_roaming.get(key)) if first is not None)
            return "white", AUTO_FIRST_DAY if first_seen == day else "white-list"
        if first is None:
            return "black", "not-registered"
        window = self.profile.grace_days(self.at(first))
        if window == 0:
            return "black", "no-grace"
        if day < first + window + self.grace_shift:
            return "grey", "grace"
        return "black", "grace-expired"

