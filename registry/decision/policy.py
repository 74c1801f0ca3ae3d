"""The enforcement decision: a pure function of (registry facts, observations, profile, time).

``decide`` answers one query with a Decision: the status, the rule that matched (a ``Rule``:
registry/decision/rules.py), a reason for a person, the deadline of a grey IMEI and the SMS
notices due. Rules, first match wins (../shared/DOMAIN.md, with the registry's own black list beside stolen):

==================  ===========================================================  ======
rule                when                                                         status
==================  ===========================================================  ======
invalid-imei        not an IMEI: bad check digit, letters, length, all zeros     profile
stolen              reported stolen or lost                                      black
black-list          on the black list                                            black
roamer              an inbound roamer's SIM, within the profile's exemption      white
paired-match        paired white, used with a bound IMSI or MSISDN               white
paired-mismatch     paired white, used with any other                            black
white-list          on the white list                                            white
grey-list           on the grey list, inside the window from the first local sight  grey
grey-list-expired   on the grey list, the window is over                         black
grandfathered       first seen with a local SIM before the profile's cutoff      white
auto-entered        a device type the profile enters automatically (TAC)         white
unknown-tac         a TAC the catalogue lacks, when the profile answers it       profile
grace               inside the window after the first sight with a local SIM     grey
grace-expired       the window is over                                           black
no-grace            the profile gave no window on the day of the first sight     black
not-registered      never seen with a local SIM, roamer exemption over           black
==================  ===========================================================  ======

The grace clock belongs to the IMEI: it starts at its first sight with any local SIM,
so a new SIM never restarts it. The query itself is a sighting: an IMEI the observations
have not seen yet is first seen now. A grey-list entry gets the same window from the same
first sight (with the same notices), and is black after it.

A query without an IMSI (MAP CheckIMEI v3) is decided with the IMSI last seen with the
IMEI on any interface within the profile's ``without_imsi.last_seen_days``; only when none
is known does the profile's ``without_imsi.otherwise`` (local, or roamer) apply. A paired
IMEI bound to an MSISDN matches through the MSISDN the operator's subscriber data give the
IMSI (``msisdns``, gathered by the caller).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import NamedTuple

from registry.decision.facts import EquipmentFacts, ListName, Sighting
from registry.decision.rules import Rule
from registry.imei import ImeiError, imei_key, tac_of
from registry.profile import InvalidImei, Profile, UnknownTac

DAY = timedelta(days=1)


class Status(enum.StrEnum):
    """What the decision answers. WHITE, GREY and BLACK map to Equipment-Status 0, 2, 1;
    UNKNOWN is an IMEI the registry cannot judge; INVALID is input that is not an IMEI,
    answered with a protocol error where the profile says ``invalid_imei: reject``."""

    WHITE = "white"
    GREY = "grey"
    BLACK = "black"
    UNKNOWN = "unknown"
    INVALID = "invalid"


class Event(enum.StrEnum):
    """SMS notices to the owner (each at most once per IMEI, IMSI and event)."""

    GREY = "grey"
    REMINDER = "reminder"  # stored as "reminder-Nd"
    BLACK = "black"


class Notice(NamedTuple):
    event: str  # "grey", "reminder-7d", "black"
    deadline: datetime | None


class Decision(NamedTuple):
    status: Status
    rule: Rule  # the rule that matched, a stable name for logs and counters
    reason: str  # for a person
    imei: str | None = None  # the registry key (TAC+SNR) when the IMEI parsed
    deadline: datetime | None = None  # the end of a grey IMEI's window
    notices: tuple[Notice, ...] = ()
    imsi: str | None = None  # the IMSI decided with when the query carried none (last seen with the IMEI)


class Query(NamedTuple):
    """What an interface asks. (Query and Decision are NamedTuples: immutable, and made
    once per answer at a third of the cost of a frozen dataclass.)"""

    imei: str  # as received: 14, 15 or 16 digits, or anything else to be judged invalid
    interface: str
    at: datetime  # aware
    software_version: str | None = None
    imsi: str | None = None
    msisdn: str | None = None


_UNKNOWN_TAC = {UnknownTac.WHITE: Status.WHITE, UnknownTac.BLACK: Status.BLACK, UnknownTac.UNKNOWN: Status.UNKNOWN}


def registry_key(text: str) -> str:
    """The registry key of an IMEI as received, or ImeiError saying why it is not one."""
    key = imei_key(text)
    if key.startswith("00000000"):
        raise ImeiError("the TAC 00000000 is not allocated (an all-zero IMEI is a placeholder)")
    return key


def needs_device_type(equipment: EquipmentFacts | None) -> bool:
    """Whether the decision can reach the TAC rules (no list entry, not stolen): only
    then does the caller need to look the device type up."""
    return equipment is None or (equipment.list is None and not equipment.stolen)


def needs_sightings(equipment: EquipmentFacts | None, imsi: str | None, profile: Profile) -> bool:
    """Whether the decision reads the IMEI's sightings: the IMSI last seen when the query
    carries none, a roamer's limited exemption, an IMEI in no list (grace, grandfathering),
    the grey list's deadline. Stolen, black, white and paired answers to a query with an
    IMSI, and unlimited roamers, never look."""
    if equipment is not None and (equipment.stolen or equipment.list is ListName.BLACK):
        return False
    if not imsi:
        return equipment is None or equipment.list is not ListName.WHITE
    if not profile.is_local(imsi):
        return profile.roamer_days is not None
    return needs_device_type(equipment) or (equipment is not None and equipment.list is ListName.GREY)


def decide(query: Query, equipment: EquipmentFacts | None, sightings: Iterable[Sighting],
           device_type: str | None, profile: Profile, key: str | None = None,
           msisdns: Mapping[str, str] | None = None) -> Decision:
    """The decision for ``query`` at ``query.at``. ``sightings``: the IMEI's observations
    (those after query.at are ignored); ``device_type``: from the TAC catalogue, None
    when it lacks the TAC (only read when ``needs_device_type``); ``key``: the registry
    key of query.imei when the caller has it already; ``msisdns``: the MSISDN each IMSI
    held at query.at by the subscriber data (read for paired IMEIs only)."""
    if key is None:
        try:
            key = registry_key(query.imei)
        except ImeiError as error:
            status = Status.BLACK if profile.invalid_imei is InvalidImei.BLACK else Status.INVALID
            return Decision(status, Rule.INVALID_IMEI, f"not an IMEI: {error}")
    looks = needs_sightings(equipment, query.imsi, profile)
    known = _known_until(sightings, query.at) if looks else []  # read once: ``sightings`` may be an iterator
    last = None if query.imsi else last_imsi(known, query.at, profile)
    if last is None:
        return _decide(key, query, equipment, known, device_type, profile, msisdns or {})
    imsi, seen_at = last
    decision = _decide(key, query._replace(imsi=imsi), equipment, known, device_type, profile, msisdns or {})
    return decision._replace(imsi=imsi, reason=f"{decision.reason} [the query carried no IMSI; {imsi} was last "
                             f"seen with this IMEI on {profile.local_date(seen_at)}]")


def last_imsi(known: list[Sighting], at: datetime, profile: Profile) -> tuple[str, datetime] | None:
    """The IMSI last seen with the IMEI by ``at`` and when, if at most the profile's
    ``without_imsi.last_seen_days`` before ``at`` (0: never); None otherwise."""
    best: tuple[str, datetime] | None = None
    if not profile.last_imsi_days:  # 0: never decide with another query's IMSI
        return None
    for sighting in known:
        if sighting.imsi:
            seen = min(sighting.last_seen or sighting.first_seen, at)
            if best is None or seen > best[1]:
                best = (sighting.imsi, seen)
    if best is None or at - best[1] > profile.last_imsi_days * DAY:
        return None
    return best


def _decide(key: str, query: Query, equipment: EquipmentFacts | None, known: list[Sighting],
            device_type: str | None, profile: Profile, msisdns: Mapping[str, str]) -> Decision:
    roaming = not profile.is_local(query.imsi)
    if equipment is not None:
        if equipment.list is ListName.WHITE and not (roaming or equipment.stolen):  # the commonest answer
            reason = equipment.reason
            return Decision(Status.WHITE, Rule.WHITE_LIST, f"on the white list ({reason})" if reason else
                            "on the white list", key)
        listed = _listed_before_roaming(key, equipment)
        if listed is not None:
            return listed
    if roaming and profile.roamer_days is None:
        imsi = query.imsi or "none known"
        return Decision(Status.WHITE, Rule.ROAMER, f"inbound roamer (IMSI {imsi}): exempt from registration", key)
    seen = _with_query(known, query)
    if roaming:
        exempt = _roamer(key, seen, query, profile)
        if exempt is not None:
            return exempt
    if equipment is not None and equipment.list is not None:
        return _listed(key, equipment, query, seen, profile, msisdns)
    return _unregistered(key, seen, device_type, query, profile, roaming)


def _listed_before_roaming(key: str, equipment: EquipmentFacts) -> Decision | None:
    if equipment.stolen:
        return Decision(Status.BLACK, Rule.STOLEN, _with("reported stolen or lost", equipment.stolen_reason), key)
    if equipment.list is ListName.BLACK:
        return Decision(Status.BLACK, Rule.BLACK_LIST, _with("on the black list", equipment.reason), key)
    return None


def _listed(key: str, equipment: EquipmentFacts, query: Query, seen: list[Sighting], profile: Profile,
            msisdns: Mapping[str, str]) -> Decision:
    name = equipment.list
    if name is ListName.PAIRED:
        return _paired(key, equipment, query, msisdns)
    if name is ListName.WHITE:
        return Decision(Status.WHITE, Rule.WHITE_LIST, _with("on the white list", equipment.reason), key)
    return _grey_listed(key, equipment, query, seen, profile)


def _grey_listed(key: str, equipment: EquipmentFacts, query: Query, seen: list[Sighting],
                 profile: Profile) -> Decision:
    """On the grey list: grey inside the window from the first sight with a local SIM (the
    grace rules' window), with the grey notice and the reminders; black after it."""
    first_local = _first(seen, profile, local=True)
    if first_local is None:  # seen only with roaming SIMs: no window has started
        return Decision(Status.GREY, Rule.GREY_LIST, _with("on the grey list", equipment.reason), key)
    days = profile.grace_days(first_local)
    deadline = first_local + days * DAY
    ends = f"the {days}-day window from {profile.local_date(first_local)}"
    if query.at >= deadline:
        return Decision(Status.BLACK, Rule.GREY_LIST_EXPIRED, _with("on the grey list", equipment.reason) +
                        f"; {ends} ended {profile.local_date(deadline)}", key, deadline,
                        (Notice(Event.BLACK, deadline),))
    return Decision(Status.GREY, Rule.GREY_LIST, _with("on the grey list", equipment.reason) +
                    f"; {ends} ends {profile.local_date(deadline)}", key, deadline,
                    _grey_notices(deadline, query, profile))


def _grey_notices(deadline: datetime, query: Query, profile: Profile) -> tuple[Notice, ...]:
    """The grey notice with its deadline and the reminders due by query.at."""
    reminders = tuple(Notice(f"{Event.REMINDER}-{before}d", deadline) for before in profile.reminder_days
                      if query.at >= deadline - before * DAY)
    return (Notice(Event.GREY, deadline), *reminders)


def _roamer(key: str, seen: list[Sighting], query: Query, profile: Profile) -> Decision | None:
    first = _first(seen, profile, local=False)
    assert first is not None and profile.roamer_days is not None  # the query's own sighting is a roaming one
    until = first + profile.roamer_days * DAY
    if query.at < until:
        return Decision(Status.WHITE, Rule.ROAMER,
                        f"inbound roamer: exempt for {profile.roamer_days} days from {first:%Y-%m-%d}", key, until)
    return None


def _paired(key: str, equipment: EquipmentFacts, query: Query, msisdns: Mapping[str, str]) -> Decision:
    """Paired white: allowed with a bound IMSI or MSISDN, refused with any other. The
    MSISDN is the query's, or the one the subscriber data give its IMSI."""
    given = _digits(query.msisdn)
    used_msisdn = given or (msisdns.get(query.imsi) if query.imsi else None)
    for imsi, msisdn in equipment.pairings:
        if imsi is not None and imsi == query.imsi:
            return Decision(Status.WHITE, Rule.PAIRED_MATCH, f"paired white, used with its bound IMSI {imsi}", key)
        if msisdn is not None and msisdn == used_msisdn:
            via = "" if given else f" (the MSISDN of IMSI {query.imsi} in the subscriber data)"
            return Decision(Status.WHITE, Rule.PAIRED_MATCH, f"paired white, used with its bound MSISDN {msisdn}{via}",
                            key)
    used = query.imsi or query.msisdn or "no subscriber identity"
    if query.imsi and used_msisdn and not given:
        used = f"{query.imsi} (MSISDN {used_msisdn})"
    return Decision(Status.BLACK, Rule.PAIRED_MISMATCH, f"paired white, but used with {used}, which is not bound to it",
                    key)


def _unregistered(key: str, seen: list[Sighting], device_type: str | None, query: Query, profile: Profile,
                  roaming: bool) -> Decision:
    first_local = _first(seen, profile, local=True)
    cutoff = profile.grandfather_before
    if first_local is not None and cutoff is not None and first_local < profile.local_midnight(cutoff):
        return Decision(Status.WHITE, Rule.GRANDFATHERED,
                        f"seen with a local SIM on {profile.local_date(first_local)}, before {cutoff}", key)
    if device_type is not None and profile.auto_entered(device_type):
        return Decision(Status.WHITE, Rule.AUTO_ENTERED, f"a {device_type.strip()}: entered automatically", key)
    if device_type is None and profile.unknown_tac is not UnknownTac.GRACE:
        status = _UNKNOWN_TAC[profile.unknown_tac]
        return _noticed(Decision(status, Rule.UNKNOWN_TAC, f"TAC {tac_of(key)} is not in the catalogue", key))
    if first_local is None:
        reason = f"not registered; the roamer exemption of {profile.roamer_days} days is over"
        return _noticed(Decision(Status.BLACK, Rule.NOT_REGISTERED, reason, key))
    return _grace(key, first_local, query, profile, roaming)


def _grace(key: str, first_local: datetime, query: Query, profile: Profile, roaming: bool) -> Decision:
    days = profile.grace_days(first_local)
    first_day = profile.local_date(first_local)
    if days == 0:
        return _noticed(Decision(Status.BLACK, Rule.NO_GRACE,
                                 f"not registered; first seen with a local SIM on {first_day}, when no window "
                                 "applied", key))
    deadline = first_local + days * DAY
    if query.at >= deadline:
        return _noticed(Decision(Status.BLACK, Rule.GRACE_EXPIRED,
                                 f"not registered; the {days}-day window from {first_day} ended "
                                 f"{profile.local_date(deadline)}", key, deadline))
    via = " (now roaming)" if roaming else ""
    return Decision(Status.GREY, Rule.GRACE, f"not registered; {days}-day window from {first_day} ends "
                    f"{profile.local_date(deadline)}{via}", key, deadline, _grey_notices(deadline, query, profile))


def _noticed(decision: Decision) -> Decision:
    """A black answer for want of registration is told to the owner; other rules are not."""
    if decision.status is Status.BLACK:
        return decision._replace(notices=(Notice(Event.BLACK, decision.deadline),))
    return decision


def _known_until(sightings: Iterable[Sighting], at: datetime) -> list[Sighting]:
    """The observations as of ``at``: those first seen later are not known yet."""
    return [s for s in sightings if s.first_seen <= at]


def _with_query(known: list[Sighting], query: Query) -> list[Sighting]:
    """The observations with the query itself when its SIM is new to the IMEI."""
    imsi = query.imsi or ""
    if any(s.imsi == imsi for s in known):
        return known
    return [*known, Sighting(imsi, query.at)]


def _first(seen: list[Sighting], profile: Profile, local: bool) -> datetime | None:
    times = [s.first_seen for s in seen if profile.is_local(s.imsi) is local]
    return min(times) if times else None


def _digits(msisdn: str | None) -> str | None:
    """The registry stores MSISDNs as digits without '+'; compare the same way."""
    if msisdn is None:
        return None
    stripped = msisdn.strip().removeprefix("+")
    return stripped if stripped.isascii() and stripped.isdigit() else None


def _with(text: str, reason: str | None) -> str:
    return f"{text} ({reason})" if reason else text
