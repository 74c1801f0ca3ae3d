"""Country profiles: the enforcement rules of one country as data (registry/profiles/*.yaml).

A profile holds:

- ``name``, ``country``; ``utc_offset`` ("+05:00"): local dates (grace rules, the
  grandfather cutoff) are days in this offset.
- ``home_plmns``: the country's operators as "MCC-MNC"; an IMSI that starts with one of
  them is a local SIM, any other IMSI is an inbound roamer.
- ``grace``: rules ``{from: DATE, until: DATE, days: N}`` (either bound may be left out):
  an unregistered IMEI first seen with a local SIM on a local date within [from, until]
  may be used N days (grey), then it is black. 0 days: black at once. The ranges must not
  overlap; a first sight no range covers gets no window.
- ``roamers``: ``unlimited``, or ``{days: N}`` counted from the IMEI's first sight with a
  roaming SIM.
- ``grandfather_before``: an IMEI seen with a local SIM before this local date is white.
- ``auto_enter``: ``{device_types: [...]}``: the device types of the TAC catalogue (the
  GSMA TAC database's names, compared without regard to case or surrounding space) that
  are entered automatically (white, written to the registry with source ``auto-entry``) on
  their first attach; any other type, "Unknown" and a TAC the catalogue lacks never are.
  ``none`` turns automatic entry off.
- ``without_imsi``: ``{last_seen_days: N, otherwise: local|roamer}``: a query that carries
  no IMSI (MAP CheckIMEI v3, v1/v2 without the vendor IMSI) is decided with the IMSI last
  seen with the IMEI on any interface, if that was at most N days before (default: the
  longest grace window; 0: never); when none is known, as a local SIM or as a roamer's
  (default local).
- ``unknown_tac``: ``grace`` (the device is treated as a phone), ``white``, ``black``, or
  ``unknown`` (S13 answers Experimental-Result 5422 DIAMETER_ERROR_EQUIPMENT_UNKNOWN).
- ``invalid_imei``: ``black``, or ``reject`` (a protocol error on the wire).
- ``notices``: ``{reminder_days_before: [N, ...]}``.
- ``database_unreachable``: ``{answer: white|black|unable|cache, cache_age: DURATION,
  otherwise: white|black|unable}``: what the agent answers while it cannot read the
  registry (agent/dbhealth.py), with rule ``database-unreachable``. ``white`` fails open,
  ``black`` fails closed, ``unable`` answers S13 5012 DIAMETER_UNABLE_TO_COMPLY / MAP
  systemFailure (the MME or MSC applies its own fallback); ``cache`` answers what the agent
  itself last answered for the IMEI if that is younger than ``cache_age`` ("90s", "10m",
  "1h", "2d"; at most 7 days) and, for a decision that rests on the IMSI, was for the same
  IMSI; a grey answer never outlives its deadline; else ``otherwise``. The default is
  ``{answer: cache, cache_age: 1h, otherwise: white}``: an EIR outage must not cut the
  country off (white, not black, for what the agent has not seen lately), nor open it to
  the stolen and black-listed phones it has just seen (answered black again from the
  cache for an hour: a device attaches or updates its area well within that, and a
  registry change made in the hour before the outage is the only one missed); the
  outage itself is logged and counted, so the open window is as long as the outage, not
  longer. A new IMEI's grey answer rests on its first sight being on disk: while the
  registry is unreachable no such answer is given (a new IMEI gets ``otherwise``); its
  sight is kept and written when the registry returns, and its window counts from it.

``load_profile("tj")`` loads a shipped profile, ``load_profile("path/to/x.yaml")`` any
file; every problem is a ProfileError naming the file and the key.
"""

from __future__ import annotations

import enum
import itertools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import yaml

E = TypeVar("E", bound=enum.StrEnum)
PROFILES = Path(__file__).with_name("profiles")
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")
_PLMN = re.compile(r"^(\d{3})-(\d{2,3})$")
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
LONGEST_CACHE_AGE = timedelta(days=7)
_KEYS = {"name", "country", "utc_offset", "home_plmns", "grace", "roamers", "grandfather_before", "auto_enter",
         "without_imsi", "unknown_tac", "invalid_imei", "notices", "database_unreachable"}
# Device types the GSMA TAC database gives that are never entered automatically, whatever a
# profile lists: a profile that names one is refused (phones need a customs declaration).
NEVER_AUTO_ENTERED = frozenset({"smartphone", "mobile phone/feature phone", "feature phone", "mobile phone",
                                "tablet", "handheld", "portable(include pda)", "pda", "unknown"})


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file and the key."""


class UnknownTac(enum.StrEnum):
    GRACE = "grace"
    WHITE = "white"
    BLACK = "black"
    UNKNOWN = "unknown"  # S13 Experimental-Result 5422 EQUIPMENT_UNKNOWN


class InvalidImei(enum.StrEnum):
    BLACK = "black"
    REJECT = "reject"


class Unreachable(enum.StrEnum):
    """What the agent answers while the registry cannot be read (``database_unreachable``)."""

    WHITE = "white"  # fail open
    BLACK = "black"  # fail closed
    UNABLE = "unable"  # S13 5012 DIAMETER_UNABLE_TO_COMPLY, MAP systemFailure: the MME or MSC decides
    CACHE = "cache"  # the agent's own last answer for the IMEI, if young enough; else ``otherwise``


@dataclass(frozen=True, slots=True)
class DatabaseUnreachable:
    """The profile's ``database_unreachable``: ``answer``, and with ``cache`` how old a
    remembered answer may be and what to answer without one (never ``cache``)."""

    answer: Unreachable = Unreachable.CACHE
    cache_age: timedelta = timedelta(hours=1)
    otherwise: Unreachable = Unreachable.WHITE


@dataclass(frozen=True, slots=True)
class GraceRule:
    """First sights on local dates within [start, end] (None: open) get ``days`` of grace."""

    start: date | None
    end: date | None
    days: int

    def covers(self, day: date) -> bool:
        return (self.start is None or self.start <= day) and (self.end is None or day <= self.end)


@dataclass(frozen=True)
class Profile:
    name: str
    country: str
    utc_offset: timedelta
    home_plmns: tuple[str, ...]  # MCC+MNC digits, e.g. "43601"
    grace: tuple[GraceRule, ...]
    roamer_days: int | None  # None: roamers are exempt without limit
    grandfather_before: date | None
    auto_enter: frozenset[str]  # lower-case device types entered automatically; empty: none
    unknown_tac: UnknownTac
    invalid_imei: InvalidImei
    reminder_days: tuple[int, ...]  # before the deadline, largest first
    last_imsi_days: int = 30  # a query without IMSI is decided with the IMSI last seen this recently
    no_imsi_local: bool = True  # and with none known: as a local SIM (False: as a roamer's)
    database_unreachable: DatabaseUnreachable = DatabaseUnreachable()  # what to answer without the registry

    def is_local(self, imsi: str | None) -> bool:
        """A SIM of one of the country's operators. An unknown IMSI (the network did not
        say, and none was seen recently) is local or roaming as ``without_imsi`` says."""
        if not imsi:
            return self.no_imsi_local
        return imsi.startswith(self.home_plmns)

    def local_date(self, at: datetime) -> date:
        return (at.astimezone(UTC) + self.utc_offset).date()

    def local_midnight(self, day: date) -> datetime:
        """The instant (UTC) the local date ``day`` begins."""
        return datetime(day.year, day.month, day.day, tzinfo=timezone(self.utc_offset)).astimezone(UTC)

    def grace_days(self, first_local: datetime) -> int:
        """The window of an IMEI first seen with a local SIM at ``first_local`` (0: none)."""
        day = self.local_date(first_local)
        for rule in self.grace:
            if rule.covers(day):
                return rule.days
        return 0

    def auto_entered(self, device_type: str) -> bool:
        """Whether the TAC catalogue's device type is one the profile enters automatically."""
        return device_type.strip().lower() in self.auto_enter


def load_profile(name_or_path: str | Path) -> Profile:
    """A shipped profile by name (tj, kg) or a YAML file by path. A file that cannot be read
    or parsed is a ProfileError in one line naming the file (and the line and column of a
    YAML error)."""
    from registry.yamlfile import YamlFileError, read_yaml

    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml") and not path.exists():
        shipped = PROFILES / f"{name_or_path}.yaml"
        if path.name != str(name_or_path) or not shipped.exists():  # a name, never a path, is looked up
            names = ", ".join(sorted(p.stem for p in PROFILES.glob("*.yaml")))
            raise ProfileError(f"no profile {name_or_path!r}: shipped profiles are {names}, or give a YAML file path")
        path = shipped
    try:
        data = read_yaml(path)
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror or exc}") from None
    except (UnicodeError, YamlFileError, yaml.YAMLError) as exc:
        raise ProfileError(f"cannot read profile {path}: {exc}") from None
    return parse_profile(data, str(path))


def parse_profile(data: Any, where: str = "profile") -> Profile:
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: the top level must be a mapping")
    unknown = sorted(str(key) for key in set(data) - _KEYS)  # YAML keys may be dates or numbers
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}")
    missing = sorted({"name", "home_plmns", "grace"} - set(data))
    if missing:
        raise ProfileError(f"{where}: missing key(s) {', '.join(missing)}")
    grace = _grace(data["grace"], where)
    last_days, no_imsi_local = _without_imsi(data.get("without_imsi"), grace, where)
    return Profile(
        name=_text(data, "name", where),
        country=str(data.get("country", data["name"])),
        utc_offset=_offset(data.get("utc_offset", "+00:00"), where),
        home_plmns=_plmns(data["home_plmns"], where),
        grace=grace,
        roamer_days=_roamers(data.get("roamers", "unlimited"), where),
        grandfather_before=_date(data.get("grandfather_before"), f"{where}: grandfather_before"),
        auto_enter=_auto_enter(data.get("auto_enter", "none"), where),
        unknown_tac=_choice(UnknownTac, data.get("unknown_tac", "grace"), f"{where}: unknown_tac"),
        invalid_imei=_choice(InvalidImei, data.get("invalid_imei", "black"), f"{where}: invalid_imei"),
        reminder_days=_reminders(data.get("notices") or {}, where),
        last_imsi_days=last_days,
        no_imsi_local=no_imsi_local,
        database_unreachable=_unreachable(data.get("database_unreachable"), where),
    )


def _text(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ProfileError(f"{where}: {key} must be a non-empty string")
    return value.strip()


def _offset(value: Any, where: str) -> timedelta:
    match = _OFFSET.match(str(value))
    if not match or int(match[2]) > 14 or int(match[3]) > 59:
        raise ProfileError(f"{where}: utc_offset {value!r} is not +HH:MM or -HH:MM")
    sign = -1 if match[1] == "-" else 1
    return sign * timedelta(hours=int(match[2]), minutes=int(match[3]))


def plmn_digits(text: str) -> str | None:
    """The MCC+MNC digits of "MCC-MNC" (3 digits, dash, 2 or 3 digits), None if it is not that."""
    match = _PLMN.match(text)
    return match[1] + match[2] if match else None


def _plmns(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ProfileError(f"{where}: home_plmns must be a non-empty list of MCC-MNC, e.g. [\"436-01\"]")
    plmns = []
    for item in value:
        digits = plmn_digits(str(item))
        if digits is None:
            raise ProfileError(f"{where}: home_plmns entry {item!r} is not MCC-MNC (3 digits, dash, 2 or 3 digits)")
        plmns.append(digits)
    if len(set(plmns)) != len(plmns):
        raise ProfileError(f"{where}: home_plmns lists a PLMN twice")
    return tuple(plmns)


def _grace(value: Any, where: str) -> tuple[GraceRule, ...]:
    if not isinstance(value, list):
        raise ProfileError(f"{where}: grace must be a list of {{from: DATE, until: DATE, days: N}}")
    rules = []
    for index, item in enumerate(value, start=1):
        at = f"{where}: grace rule {index}"
        if not isinstance(item, dict) or set(item) - {"from", "until", "days"} or "days" not in item:
            raise ProfileError(f"{at}: expected {{from: DATE, until: DATE, days: N}} (from and until optional)")
        rule = GraceRule(_date(item.get("from"), f"{at}: from"), _date(item.get("until"), f"{at}: until"),
                         _days(item["days"], f"{at}: days"))
        if rule.start and rule.end and rule.start > rule.end:
            raise ProfileError(f"{at}: from {rule.start} is after until {rule.end}")
        rules.append(rule)
    ordered = sorted(rules, key=lambda r: r.start or date.min)
    for before, after in itertools.pairwise(ordered):
        if before.end is None or after.start is None or before.end >= after.start:
            raise ProfileError(f"{where}: grace rules overlap ({_span(before)} and {_span(after)})")
    return tuple(ordered)


def _span(rule: GraceRule) -> str:
    return f"{rule.start or '...'} to {rule.end or '...'}"


def _roamers(value: Any, where: str) -> int | None:
    if value == "unlimited":
        return None
    if isinstance(value, dict) and set(value) == {"days"}:
        return _days(value["days"], f"{where}: roamers days")
    raise ProfileError(f"{where}: roamers must be 'unlimited' or {{days: N}}, not {value!r}")


def _auto_enter(value: Any, where: str) -> frozenset[str]:
    if value == "none":
        return frozenset()
    if isinstance(value, dict) and "except_device_types" in value:
        raise ProfileError(f"{where}: auto_enter.except_device_types is gone: automatic entry is an allow-list; "
                           "name the device types entered automatically in auto_enter.device_types")
    if not (isinstance(value, dict) and set(value) == {"device_types"} and isinstance(value["device_types"], list)
            and all(isinstance(item, str) and item.strip() for item in value["device_types"])):
        raise ProfileError(f"{where}: auto_enter must be 'none' or {{device_types: [TYPE, ...]}} (TAC catalogue "
                           "device types, e.g. Modem, WLAN Router, IoT Device)")
    types = frozenset(item.strip().lower() for item in value["device_types"])
    refused = sorted(types & NEVER_AUTO_ENTERED)
    if refused:
        raise ProfileError(f"{where}: auto_enter.device_types lists {', '.join(refused)}: phones, tablets, "
                           "handhelds and unknown devices are never entered automatically")
    return types


def _without_imsi(value: Any, grace: tuple[GraceRule, ...], where: str) -> tuple[int, bool]:
    """(last_seen_days, otherwise is local) of ``without_imsi``; by default the longest grace window, local."""
    longest = max((rule.days for rule in grace), default=0)
    if value is None:
        return longest, True
    if not isinstance(value, dict) or set(value) - {"last_seen_days", "otherwise"}:
        raise ProfileError(f"{where}: without_imsi must be a mapping {{last_seen_days: N, otherwise: local|roamer}}")
    days = _days(value["last_seen_days"], f"{where}: without_imsi.last_seen_days") if "last_seen_days" in value \
        else longest
    otherwise = value.get("otherwise", "local")
    if otherwise not in ("local", "roamer"):
        raise ProfileError(f"{where}: without_imsi.otherwise must be local or roamer, not {otherwise!r}")
    return days, otherwise == "local"


def _reminders(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, dict) or set(value) - {"reminder_days_before"}:
        raise ProfileError(f"{where}: notices must be a mapping with reminder_days_before: [N, ...]")
    days = value.get("reminder_days_before") or []
    if not isinstance(days, list):
        raise ProfileError(f"{where}: notices.reminder_days_before must be a list of days")
    found = [_days(item, f"{where}: notices.reminder_days_before") for item in days]
    if 0 in found or len(set(found)) != len(found):
        raise ProfileError(f"{where}: notices.reminder_days_before must be distinct positive days")
    return tuple(sorted(found, reverse=True))


def _unreachable(value: Any, where: str) -> DatabaseUnreachable:
    """``database_unreachable``; omitted keys take the defaults (DatabaseUnreachable)."""
    at = f"{where}: database_unreachable"
    if value is None:
        return DatabaseUnreachable()
    if not isinstance(value, dict) or set(value) - {"answer", "cache_age", "otherwise"}:
        raise ProfileError(f"{at} must be a mapping {{answer: white|black|unable|cache, cache_age: DURATION, "
                           "otherwise: white|black|unable}")
    default = DatabaseUnreachable()
    answer = _choice(Unreachable, value.get("answer", default.answer), f"{at}.answer")
    otherwise = _choice(Unreachable, value.get("otherwise", default.otherwise), f"{at}.otherwise")
    if otherwise is Unreachable.CACHE:
        raise ProfileError(f"{at}.otherwise is what to answer when the cache has nothing: white, black or unable")
    if answer is not Unreachable.CACHE and set(value) & {"cache_age", "otherwise"}:
        raise ProfileError(f"{at}: cache_age and otherwise apply only to answer: cache, not {answer.value}")
    age = _duration(value["cache_age"], f"{at}.cache_age") if "cache_age" in value else default.cache_age
    return DatabaseUnreachable(answer, age, otherwise)


def _duration(value: Any, where: str) -> timedelta:
    """A duration as "90s", "10m", "1h" or "2d", from 1 s to 7 days."""
    match = _DURATION.match(str(value).strip()) if isinstance(value, str) else None
    if match is None:
        raise ProfileError(f"{where} must be a duration such as 90s, 10m, 1h or 2d, not {value!r}")
    found = timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    if not timedelta(seconds=1) <= found <= LONGEST_CACHE_AGE:
        raise ProfileError(f"{where} must be from 1s to 7d, not {value!r}")
    return found


def _days(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 36500:
        raise ProfileError(f"{where} must be a whole number of days from 0 to 36500, not {value!r}")
    return value


def _date(value: Any, where: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        raise ProfileError(f"{where} must be a date (YYYY-MM-DD), not a time")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ProfileError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def _choice(kind: type[E], value: Any, where: str) -> E:
    try:
        return kind(str(value))
    except ValueError:
        raise ProfileError(f"{where}: {value!r} is not one of {', '.join(kind)}") from None
