"""The enforcement decision (registry/decision/policy.py): every rule, for both shipped profiles,
over EquipmentFacts and Sighting values built here (no database), and two properties:
black stays black as time passes, and a registration always wins over the grace rules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.decision import Decision, EquipmentFacts, ListName, Notice, Pair, Query, Sighting, Status, decide
from registry.imei import luhn_check_digit
from registry.profile import InvalidImei, Profile, UnknownTac, load_profile

TJ = load_profile("tj")
KG = load_profile("kg")
PROFILES = {"tj": TJ, "kg": KG}
BOTH = pytest.mark.parametrize("name", ["tj", "kg"])

# One local SIM of each country's operators, a second one (a SIM swap, the other slot),
# and SIMs that roam in: a Russian one, and the neighbour's (437 roams in Tajikistan, 436 in Kyrgyzstan).
LOCAL = {"tj": "436011234567890", "kg": "437051234567890"}
LOCAL2 = {"tj": "436121234567891", "kg": "437091234567891"}
NEIGHBOUR = {"tj": "437011234567892", "kg": "436101234567892"}
ROAMING = "250991234567890"
ROAMING2 = "262011234567890"

IMEI = "35209900176148"  # TAC+SNR (TS 23.003 Annex B example)
IMEI15 = IMEI + luhn_check_digit(IMEI)
IMEI2 = "35209900176155"  # the other slot of a dual-SIM handset
MSISDN = "992901234567"

# 10 July 2024: after both grandfather cutoffs, and inside Kyrgyzstan's 30-day era.
DAY0 = datetime(2024, 7, 10, 9, 0, tzinfo=UTC)
DEADLINE = DAY0 + timedelta(days=30)
SECOND = timedelta(seconds=1)


def day(n: float) -> datetime:
    return DAY0 + timedelta(days=n)


def facts(list_name: ListName | None, stolen: bool = False, pairings: tuple[Pair, ...] = (),
          imei: str = IMEI) -> EquipmentFacts:
    return EquipmentFacts(imei, list_name, stolen, None, None, pairings)


def ask(profile: Profile, at: datetime, imsi: str | None, *, equipment: EquipmentFacts | None = None,
        sightings: Iterable[tuple[str, datetime]] = (), device_type: str | None = "Smartphone",
        msisdn: str | None = None, imei: str = IMEI) -> Decision:
    seen = [Sighting(sim, first) for sim, first in sightings]
    return decide(Query(imei, "s13", at, None, imsi, msisdn), equipment, seen, device_type, profile)


def check(decision: Decision, status: Status, rule: str, deadline: datetime | None = None,
          notices: Sequence[tuple[str, datetime | None]] = ()) -> None:
    assert (decision.status, decision.rule) == (status, rule), decision
    assert decision.deadline == deadline, decision
    assert decision.notices == tuple(Notice(event, when) for event, when in notices), decision


def grey(deadline: datetime, *reminders: int) -> list[tuple[str, datetime | None]]:
    """The notices of a grey answer: "grey" with the deadline, and the reminders due."""
    return [("grey", deadline), *((f"reminder-{n}d", deadline) for n in reminders)]


def black(deadline: datetime | None = None) -> list[tuple[str, datetime | None]]:
    return [("black", deadline)]


# -- the Kyrgyz change of 28 August 2024 ------------------------------------------------

KG_27 = datetime(2024, 8, 27, 10, 0, tzinfo=UTC)  # 16:00 on 27 August in Bishkek


KG_BOUNDARY = [
    (KG_27, KG_27, Status.GREY, "grace", KG_27 + timedelta(days=30), grey(KG_27 + timedelta(days=30))),
    # the last second of 27 August in Bishkek (+06:00)
    (datetime(2024, 8, 27, 17, 59, 59, tzinfo=UTC), datetime(2024, 8, 27, 17, 59, 59, tzinfo=UTC), Status.GREY,
     "grace", datetime(2024, 9, 26, 17, 59, 59, tzinfo=UTC), grey(datetime(2024, 9, 26, 17, 59, 59, tzinfo=UTC))),
    # the window chosen on the day of the first sight holds after the change took effect
    (KG_27, datetime(2024, 9, 20, tzinfo=UTC), Status.GREY, "grace", KG_27 + timedelta(days=30),
     grey(KG_27 + timedelta(days=30), 7)),
    (KG_27, KG_27 + timedelta(days=29), Status.GREY, "grace", KG_27 + timedelta(days=30),
     grey(KG_27 + timedelta(days=30), 7, 1)),
    (KG_27, KG_27 + timedelta(days=30), Status.BLACK, "grace-expired", KG_27 + timedelta(days=30),
     black(KG_27 + timedelta(days=30))),
    # from 28 August (local date) no window at all
    (datetime(2024, 8, 28, 10, 0, tzinfo=UTC), datetime(2024, 8, 28, 10, 0, tzinfo=UTC), Status.BLACK, "no-grace",
     None, black()),
    (datetime(2024, 8, 27, 18, 0, tzinfo=UTC), datetime(2024, 8, 27, 18, 0, tzinfo=UTC), Status.BLACK, "no-grace",
     None, black()),
    # 19:00 UTC on 27 August is already 01:00 on 28 August in Bishkek
    (datetime(2024, 8, 27, 19, 0, tzinfo=UTC), datetime(2024, 8, 27, 19, 0, tzinfo=UTC), Status.BLACK, "no-grace",
     None, black()),
    (datetime(2024, 8, 28, 10, 0, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC), Status.BLACK, "no-grace", None,
     black()),
]


@pytest.mark.parametrize("first, at, status, rule, deadline, notices", KG_BOUNDARY)
def test_kg_grace_boundary(first: datetime, at: datetime, status: Status, rule: str, deadline: datetime | None,
                           notices: list[tuple[str, datetime | None]]) -> None:
    check(ask(KG, at, LOCAL["kg"], sightings=[(LOCAL["kg"], first)]), status, rule, deadline, notices)


@pytest.mark.parametrize("first, at, status, rule, deadline, notices", [case for case in KG_BOUNDARY
                                                                         if case[0] == case[1]])
def test_kg_grace_boundary_when_the_query_is_the_first_sight(first: datetime, at: datetime, status: Status,
                                                             rule: str, deadline: datetime | None,
                                                             notices: list[tuple[str, datetime | None]]) -> None:
    check(ask(KG, at, LOCAL["kg"]), status, rule, deadline, notices)


def test_kg_first_sight_in_bishkek_on_28_august_gets_no_window_with_any_local_sim() -> None:
    for imsi in (LOCAL["kg"], LOCAL2["kg"], "437011111111111", None, ""):
        check(ask(KG, datetime(2024, 8, 27, 19, 0, tzinfo=UTC), imsi), Status.BLACK, "no-grace", None, black())


# -- the grace window, its deadline and its notices (the same in both profiles) --------

@BOTH
@pytest.mark.parametrize("at, status, rule, notices", [
    (DAY0, Status.GREY, "grace", grey(DEADLINE)),
    (day(10), Status.GREY, "grace", grey(DEADLINE)),
    (DEADLINE - timedelta(days=7) - SECOND, Status.GREY, "grace", grey(DEADLINE)),
    (DEADLINE - timedelta(days=7), Status.GREY, "grace", grey(DEADLINE, 7)),
    (DEADLINE - timedelta(days=1) - SECOND, Status.GREY, "grace", grey(DEADLINE, 7)),
    (DEADLINE - timedelta(days=1), Status.GREY, "grace", grey(DEADLINE, 7, 1)),
    (DEADLINE - SECOND, Status.GREY, "grace", grey(DEADLINE, 7, 1)),
    (DEADLINE, Status.BLACK, "grace-expired", black(DEADLINE)),
    (day(31), Status.BLACK, "grace-expired", black(DEADLINE)),
    (day(400), Status.BLACK, "grace-expired", black(DEADLINE)),
])
def test_unregistered_imei_first_seen_with_a_local_sim(name: str, at: datetime, status: Status, rule: str,
                                                       notices: list[tuple[str, datetime | None]]) -> None:
    profile = PROFILES[name]
    check(ask(profile, at, LOCAL[name], sightings=[(LOCAL[name], DAY0)]), status, rule, DEADLINE, notices)


@BOTH
@pytest.mark.parametrize("imsi", ["local", None, ""], ids=["local", "imsi-none", "imsi-empty"])
def test_the_first_query_starts_the_clock(name: str, imsi: str | None) -> None:
    """An IMEI the observations have not seen is first seen now; an unknown IMSI counts as local."""
    sim = LOCAL[name] if imsi == "local" else imsi
    check(ask(PROFILES[name], DAY0, sim), Status.GREY, "grace", DEADLINE, grey(DEADLINE))
    check(ask(PROFILES[name], day(30), sim, sightings=[(sim or "", DAY0)]), Status.BLACK, "grace-expired",
          DEADLINE, black(DEADLINE))


def test_reminders_follow_the_profile() -> None:
    profile = replace(TJ, reminder_days=(14, 3))
    sightings = [(LOCAL["tj"], DAY0)]
    check(ask(profile, day(15), LOCAL["tj"], sightings=sightings), Status.GREY, "grace", DEADLINE, grey(DEADLINE))
    check(ask(profile, day(16), LOCAL["tj"], sightings=sightings), Status.GREY, "grace", DEADLINE,
          grey(DEADLINE, 14))
    check(ask(profile, day(27), LOCAL["tj"], sightings=sightings), Status.GREY, "grace", DEADLINE,
          grey(DEADLINE, 14, 3))
    check(ask(replace(TJ, reminder_days=()), day(29), LOCAL["tj"], sightings=sightings), Status.GREY, "grace",
          DEADLINE, grey(DEADLINE))


# -- dual SIM and SIM swap -------------------------------------------------------------

@BOTH
def test_dual_sim_handset_each_imei_on_its_own(name: str) -> None:
    profile = PROFILES[name]
    slot1 = ask(profile, day(5), LOCAL[name], equipment=facts(ListName.WHITE), sightings=[(LOCAL[name], DAY0)])
    slot2 = ask(profile, day(5), LOCAL2[name], imei=IMEI2, sightings=[(LOCAL2[name], DAY0)])
    check(slot1, Status.WHITE, "white-list")
    check(slot2, Status.GREY, "grace", DEADLINE, grey(DEADLINE))
    assert (slot1.imei, slot2.imei) == (IMEI, IMEI2)
    # the registration of slot 1 does not cover slot 2, even with the SIM of slot 1
    check(ask(profile, day(31), LOCAL[name], imei=IMEI2, sightings=[(LOCAL2[name], DAY0), (LOCAL[name], day(30))]),
          Status.BLACK, "grace-expired", DEADLINE, black(DEADLINE))


@BOTH
@pytest.mark.parametrize("at, recorded, status, rule, notices", [
    (day(20), [(0, "a")], Status.GREY, "grace", grey(DEADLINE)),
    (day(25), [(0, "a"), (20, "b")], Status.GREY, "grace", grey(DEADLINE, 7)),
    (day(31), [(0, "a"), (20, "b")], Status.BLACK, "grace-expired", black(DEADLINE)),
    (day(31), [(0, "a")], Status.BLACK, "grace-expired", black(DEADLINE)),
    (day(31), [(0, "a"), (20, "b"), (25, "unknown")], Status.BLACK, "grace-expired", black(DEADLINE)),
])
def test_sim_swap_keeps_the_clock_of_the_imei(name: str, at: datetime, recorded: list[tuple[int, str]],
                                              status: Status, rule: str,
                                              notices: list[tuple[str, datetime | None]]) -> None:
    sims = {"a": LOCAL[name], "b": LOCAL2[name], "unknown": ""}
    sightings = [(sims[sim], day(n)) for n, sim in recorded]
    check(ask(PROFILES[name], at, LOCAL2[name], sightings=sightings), status, rule, DEADLINE, notices)


# -- roamers ---------------------------------------------------------------------------

@BOTH
@pytest.mark.parametrize("recorded", [
    [],
    [("roaming", -400)],
    [("local", -40)],  # its window with a local SIM is over
    [("local", -400), ("roaming", -300), ("local2", -10)],
    [("roaming", 5)],  # after the query
], ids=["none", "roaming-long-ago", "local-expired", "mixed", "later"])
@pytest.mark.parametrize("sim", ["roaming", "neighbour"])
@pytest.mark.parametrize("device_type", ["Smartphone", None])
def test_roamers_unlimited_are_white_whatever_the_sightings(name: str, recorded: list[tuple[str, int]], sim: str,
                                                            device_type: str | None) -> None:
    sims = {"roaming": ROAMING, "neighbour": NEIGHBOUR[name], "local": LOCAL[name], "local2": LOCAL2[name]}
    sightings = [(sims[s], day(n)) for s, n in recorded]
    decision = ask(PROFILES[name], DAY0, sims[sim], sightings=sightings, device_type=device_type)
    check(decision, Status.WHITE, "roamer")
    assert decision.imei == IMEI


@BOTH
@pytest.mark.parametrize("at, imsi, recorded, status, rule, deadline, notices", [
    (DAY0, "roaming", [], Status.WHITE, "roamer", day(10), []),
    (day(9.99), "roaming", [("roaming", 0)], Status.WHITE, "roamer", day(10), []),
    (day(10), "roaming", [("roaming", 0)], Status.BLACK, "not-registered", None, black()),
    (day(100), "roaming", [("roaming", 0)], Status.BLACK, "not-registered", None, black()),
    # another roaming SIM does not restart the exemption
    (day(12), "roaming2", [("roaming", 0)], Status.BLACK, "not-registered", None, black()),
    (day(9), "roaming2", [("roaming", 0), ("roaming2", 5)], Status.WHITE, "roamer", day(10), []),
    # seen with a local SIM: that starts the grace clock, which then counts even when roaming
    (day(12), "roaming", [("roaming", 0), ("local", 5)], Status.GREY, "grace", day(35), grey(day(35))),
    (day(35), "roaming", [("roaming", 0), ("local", 5)], Status.BLACK, "grace-expired", day(35), black(day(35))),
    (day(12), "local", [("roaming", 0)], Status.GREY, "grace", day(42), grey(day(42))),
    # a sighting after the query is not known yet
    (day(-20), "roaming", [("roaming", 0)], Status.WHITE, "roamer", day(-10), []),
])
def test_roamers_limited_to_n_days(name: str, at: datetime, imsi: str, recorded: list[tuple[str, float]],
                                   status: Status, rule: str, deadline: datetime | None,
                                   notices: list[tuple[str, datetime | None]]) -> None:
    profile = replace(PROFILES[name], roamer_days=10)
    sims = {"roaming": ROAMING, "roaming2": ROAMING2, "local": LOCAL[name]}
    sightings = [(sims[s], day(n)) for s, n in recorded]
    check(ask(profile, at, sims[imsi], sightings=sightings), status, rule, deadline, notices)


@BOTH
def test_roamers_limited_to_zero_days_and_non_phones(name: str) -> None:
    check(ask(replace(PROFILES[name], roamer_days=0), DAY0, ROAMING), Status.BLACK, "not-registered", None, black())
    limited = replace(PROFILES[name], roamer_days=10)
    check(ask(limited, day(20), ROAMING, sightings=[(ROAMING, DAY0)], device_type="WLAN Router"), Status.WHITE,
          "auto-entered")
    check(ask(limited, day(20), ROAMING, equipment=facts(ListName.WHITE), sightings=[(ROAMING, DAY0)]),
          Status.WHITE, "white-list")


@BOTH
@pytest.mark.parametrize("at, imsi, recorded, status, rule, deadline, notices", [
    (DAY0, "local", [("roaming", -100)], Status.GREY, "grace", DEADLINE, grey(DEADLINE)),
    (day(29), "local", [("roaming", -100), ("local", 0)], Status.GREY, "grace", DEADLINE, grey(DEADLINE, 7, 1)),
    (day(30), "local", [("roaming", -100), ("local", 0)], Status.BLACK, "grace-expired", DEADLINE, black(DEADLINE)),
    (day(30), "local2", [("roaming", -100), ("local", 0)], Status.BLACK, "grace-expired", DEADLINE,
     black(DEADLINE)),
    # back on the home SIM, the roamer exemption (unlimited in the shipped profiles) applies again
    (day(30), "roaming", [("roaming", -100), ("local", 0)], Status.WHITE, "roamer", None, []),
])
def test_foreigner_with_a_local_sim(name: str, at: datetime, imsi: str, recorded: list[tuple[str, float]],
                                    status: Status, rule: str, deadline: datetime | None,
                                    notices: list[tuple[str, datetime | None]]) -> None:
    sims = {"roaming": ROAMING, "local": LOCAL[name], "local2": LOCAL2[name]}
    sightings = [(sims[s], day(n)) for s, n in recorded]
    check(ask(PROFILES[name], at, sims[imsi], sightings=sightings), status, rule, deadline, notices)


# -- paired white ----------------------------------------------------------------------

@BOTH
@pytest.mark.parametrize("imsi, msisdn, status, rule", [
    ("bound", None, Status.WHITE, "paired-match"),
    ("bound", "992909999999", Status.WHITE, "paired-match"),
    ("other", MSISDN, Status.WHITE, "paired-match"),
    (None, MSISDN, Status.WHITE, "paired-match"),
    (None, "+" + MSISDN, Status.WHITE, "paired-match"),
    ("other", " +" + MSISDN + " ", Status.WHITE, "paired-match"),
    ("other", "992909999999", Status.BLACK, "paired-mismatch"),
    ("other", "+992909999999", Status.BLACK, "paired-mismatch"),
    ("other", None, Status.BLACK, "paired-mismatch"),
    (None, MSISDN[:-1], Status.BLACK, "paired-mismatch"),
    (None, "++" + MSISDN, Status.BLACK, "paired-mismatch"),
    (None, None, Status.BLACK, "paired-mismatch"),
    ("", None, Status.BLACK, "paired-mismatch"),
])
def test_paired_white(name: str, imsi: str | None, msisdn: str | None, status: Status, rule: str) -> None:
    sims = {"bound": LOCAL[name], "other": LOCAL2[name]}
    equipment = facts(ListName.PAIRED, pairings=((LOCAL[name], None), (None, MSISDN)))
    sim = sims.get(imsi, imsi) if imsi is not None else None
    # long past any grace window, and whatever the device: the pairing decides
    decision = ask(PROFILES[name], day(100), sim, msisdn=msisdn, equipment=equipment,
                   sightings=[(LOCAL2[name], DAY0)], device_type="WLAN Router")
    check(decision, status, rule)


@BOTH
def test_paired_white_with_both_identities_in_one_pairing(name: str) -> None:
    equipment = facts(ListName.PAIRED, pairings=((LOCAL[name], MSISDN),))
    check(ask(PROFILES[name], DAY0, LOCAL[name], equipment=equipment), Status.WHITE, "paired-match")
    check(ask(PROFILES[name], DAY0, LOCAL2[name], msisdn="+" + MSISDN, equipment=equipment), Status.WHITE,
          "paired-match")
    check(ask(PROFILES[name], DAY0, LOCAL2[name], equipment=equipment), Status.BLACK, "paired-mismatch")
    check(ask(PROFILES[name], DAY0, LOCAL2[name], equipment=facts(ListName.PAIRED)), Status.BLACK, "paired-mismatch")


# -- grandfathered ---------------------------------------------------------------------

# The first instant of the cutoff date in local time: 2023-10-01 +05:00, 2024-06-25 +06:00.
CUTOFF = {"tj": datetime(2023, 9, 30, 19, 0, tzinfo=UTC), "kg": datetime(2024, 6, 24, 18, 0, tzinfo=UTC)}


@BOTH
@pytest.mark.parametrize("at, imsi, recorded, status, rule, deadline_days", [
    (400, "local", [("local", -SECOND)], Status.WHITE, "grandfathered", None),
    (400, "local2", [("local", -SECOND), ("local2", timedelta(days=1))], Status.WHITE, "grandfathered", None),
    (400, "local", [("unknown", -timedelta(days=100))], Status.WHITE, "grandfathered", None),
    (400, "local", [("roaming", -timedelta(days=300)), ("local", -SECOND)], Status.WHITE, "grandfathered", None),
    # the first instant of the cutoff date is not before it
    (1, "local", [("local", timedelta(0))], Status.GREY, "grace", 30),
    (30, "local", [("local", timedelta(0))], Status.BLACK, "grace-expired", 30),
    # a roaming sight before the cutoff does not grandfather: the query is the first local sight
    (1, "local", [("roaming", -timedelta(days=100))], Status.GREY, "grace", 31),
    (1, "local", [("neighbour", -timedelta(days=100))], Status.GREY, "grace", 31),
])
def test_grandfathered(name: str, at: int, imsi: str, recorded: list[tuple[str, timedelta]], status: Status,
                       rule: str, deadline_days: int | None) -> None:
    cutoff = CUTOFF[name]
    sims = {"local": LOCAL[name], "local2": LOCAL2[name], "unknown": "", "roaming": ROAMING,
            "neighbour": NEIGHBOUR[name]}
    sightings = [(sims[s], cutoff + offset) for s, offset in recorded]
    deadline = cutoff + timedelta(days=deadline_days) if deadline_days is not None else None
    notices: list[tuple[str, datetime | None]] = []
    if deadline is not None:
        notices = grey(deadline) if status is Status.GREY else black(deadline)
    check(ask(PROFILES[name], cutoff + timedelta(days=at), sims[imsi], sightings=sightings), status, rule, deadline,
          notices)


@BOTH
def test_grandfathered_edges(name: str) -> None:
    profile, cutoff = PROFILES[name], CUTOFF[name]
    assert profile.local_date(cutoff) == profile.grandfather_before
    # a query before the cutoff is its own first sight
    check(ask(profile, cutoff - SECOND, LOCAL[name]), Status.WHITE, "grandfathered")
    check(ask(profile, cutoff, LOCAL[name]), Status.GREY, "grace", cutoff + timedelta(days=30),
          grey(cutoff + timedelta(days=30)))
    # grandfathered whatever the device, also with unknown_tac black
    check(ask(replace(profile, unknown_tac=UnknownTac.BLACK), cutoff + timedelta(days=400), LOCAL[name],
              sightings=[(LOCAL[name], cutoff - SECOND)], device_type=None), Status.WHITE, "grandfathered")
    # roaming-only sights before the cutoff, the roamer exemption (limited) over: not grandfathered
    limited = replace(profile, roamer_days=10)
    check(ask(limited, cutoff + timedelta(days=1), ROAMING, sightings=[(ROAMING, cutoff - timedelta(days=100))]),
          Status.BLACK, "not-registered", None, black())


# -- device types: automatic entry and unknown TACs ------------------------------------

@BOTH
@pytest.mark.parametrize("device_type, status, rule", [
    ("WLAN Router", Status.WHITE, "auto-entered"),
    (" wlan router ", Status.WHITE, "auto-entered"),
    ("Modem", Status.WHITE, "auto-entered"),
    ("IoT Device", Status.WHITE, "auto-entered"),
    (" wearable", Status.WHITE, "auto-entered"),
    ("Vehicle", Status.WHITE, "auto-entered"),
    # the allow-list: a type not listed, however a catalogue spells a phone, is never entered
    ("Smart Phone", Status.GREY, "grace"),
    ("Unknown", Status.GREY, "grace"),
    ("POS terminal", Status.GREY, "grace"),
    ("Smartphone", Status.GREY, "grace"),
    ("SMARTPHONE", Status.GREY, "grace"),
    (" smartphone\t", Status.GREY, "grace"),
    ("Tablet", Status.GREY, "grace"),
    ("Mobile Phone/Feature phone", Status.GREY, "grace"),
    ("portable(include pda)", Status.GREY, "grace"),
    (None, Status.GREY, "grace"),  # unknown TAC, unknown_tac: grace (a phone)
])
def test_device_types(name: str, device_type: str | None, status: Status, rule: str) -> None:
    profile = PROFILES[name]
    sightings = [(LOCAL[name], DAY0)]
    decision = ask(profile, day(5), LOCAL[name], sightings=sightings, device_type=device_type)
    if status is Status.GREY:
        check(decision, status, rule, DEADLINE, grey(DEADLINE))
        check(ask(profile, day(40), LOCAL[name], sightings=sightings, device_type=device_type), Status.BLACK,
              "grace-expired", DEADLINE, black(DEADLINE))
    else:
        check(decision, status, rule)
        check(ask(profile, day(40), LOCAL[name], sightings=sightings, device_type=device_type), status, rule)


def test_auto_entry_turned_off() -> None:
    profile = replace(TJ, auto_enter=frozenset())
    check(ask(profile, day(5), LOCAL["tj"], sightings=[(LOCAL["tj"], DAY0)], device_type="WLAN Router"),
          Status.GREY, "grace", DEADLINE, grey(DEADLINE))


@BOTH
@pytest.mark.parametrize("answer, status, notices", [
    (UnknownTac.WHITE, Status.WHITE, []),
    (UnknownTac.BLACK, Status.BLACK, black()),
    (UnknownTac.UNKNOWN, Status.UNKNOWN, []),
])
@pytest.mark.parametrize("at", [0, 5, 40])
def test_unknown_tac_answered_by_the_profile(name: str, answer: UnknownTac, status: Status,
                                             notices: list[tuple[str, datetime | None]], at: int) -> None:
    profile = replace(PROFILES[name], unknown_tac=answer)
    decision = ask(profile, day(at), LOCAL[name], sightings=[(LOCAL[name], DAY0)], device_type=None)
    check(decision, status, "unknown-tac", None, notices)
    assert decision.imei == IMEI
    # a known TAC is not concerned
    check(ask(profile, day(5), LOCAL[name], sightings=[(LOCAL[name], DAY0)], device_type="Smartphone"),
          Status.GREY, "grace", DEADLINE, grey(DEADLINE))


@BOTH
def test_listed_equipment_does_not_need_the_device_type(name: str) -> None:
    profile = replace(PROFILES[name], unknown_tac=UnknownTac.BLACK)
    check(ask(profile, DAY0, LOCAL[name], equipment=facts(ListName.WHITE), device_type=None), Status.WHITE,
          "white-list")


# -- stolen, black list, grey list -----------------------------------------------------

@BOTH
@pytest.mark.parametrize("equipment, imsi, status, rule", [
    (facts(ListName.WHITE, stolen=True), "local", Status.BLACK, "stolen"),
    (facts(ListName.WHITE, stolen=True), "roaming", Status.BLACK, "stolen"),
    (facts(ListName.PAIRED, stolen=True, pairings=(("bound", None),)), "bound", Status.BLACK, "stolen"),
    (facts(ListName.GREY, stolen=True), "local", Status.BLACK, "stolen"),
    (facts(ListName.BLACK, stolen=True), "roaming", Status.BLACK, "stolen"),
    (facts(None, stolen=True), "local", Status.BLACK, "stolen"),
    (facts(None, stolen=True), "roaming", Status.BLACK, "stolen"),
    (facts(ListName.BLACK), "roaming", Status.BLACK, "black-list"),
    (facts(ListName.BLACK), "local", Status.BLACK, "black-list"),
    (facts(ListName.WHITE), "local", Status.WHITE, "white-list"),
])
@pytest.mark.parametrize("device_type", ["Smartphone", "WLAN Router", None])
def test_stolen_and_black_list_come_first(name: str, equipment: EquipmentFacts, imsi: str, status: Status,
                                          rule: str, device_type: str | None) -> None:
    sims = {"local": LOCAL[name], "roaming": ROAMING, "bound": LOCAL[name]}
    if equipment.pairings:
        equipment = replace(equipment, pairings=((LOCAL[name], None),))
    # grandfathered as well: stolen and the lists come before that
    sightings = [(LOCAL[name], CUTOFF[name] - timedelta(days=1)), (ROAMING, DAY0)]
    decision = ask(PROFILES[name], day(5), sims[imsi], equipment=equipment, sightings=sightings,
                   device_type=device_type)
    check(decision, status, rule)
    assert decision.imei == IMEI


def test_reasons_carry_the_registry_reason() -> None:
    stolen = EquipmentFacts(IMEI, ListName.WHITE, True, "customs 2024/17", "police report 42")
    assert "police report 42" in ask(TJ, DAY0, LOCAL["tj"], equipment=stolen).reason
    listed = EquipmentFacts(IMEI, ListName.BLACK, False, "court order", None)
    assert "court order" in ask(TJ, DAY0, ROAMING, equipment=listed).reason


@BOTH
@pytest.mark.parametrize("at, status, rule, notices", [
    (DAY0, Status.GREY, "grey-list", grey(DEADLINE)),
    (day(22), Status.GREY, "grey-list", grey(DEADLINE)),
    (day(23), Status.GREY, "grey-list", grey(DEADLINE, 7)),
    (DEADLINE - SECOND, Status.GREY, "grey-list", grey(DEADLINE, 7, 1)),
    (DEADLINE, Status.BLACK, "grey-list-expired", black(DEADLINE)),
    (day(40), Status.BLACK, "grey-list-expired", black(DEADLINE)),
    (day(400), Status.BLACK, "grey-list-expired", black(DEADLINE)),
])
def test_grey_list_turns_black_after_its_deadline(name: str, at: datetime, status: Status, rule: str,
                                                  notices: list[tuple[str, datetime | None]]) -> None:
    """A grey-list entry has the grace window from its first sight with a local SIM (any
    local SIM: a swap does not restart it), the same notices, and is black after it."""
    profile = PROFILES[name]
    equipment = facts(ListName.GREY)
    for imsi in (LOCAL[name], LOCAL2[name], None):
        decision = ask(profile, at, imsi, equipment=equipment, sightings=[(LOCAL[name], DAY0)])
        check(decision, status, rule, DEADLINE, notices)
        assert f"ends {profile.local_date(DEADLINE)}" in decision.reason or "ended" in decision.reason
    # an inbound roamer is exempt before any list but stolen and black
    check(ask(profile, day(40), ROAMING, equipment=equipment, sightings=[(LOCAL[name], DAY0)]), Status.WHITE, "roamer")
    # a registration before the deadline wins (the white list), after it too
    check(ask(profile, day(40), LOCAL[name], equipment=facts(ListName.WHITE), sightings=[(LOCAL[name], DAY0)]),
          Status.WHITE, "white-list")


@BOTH
def test_grey_list_first_query_starts_its_window(name: str) -> None:
    profile = PROFILES[name]
    check(ask(profile, DAY0, LOCAL[name], equipment=facts(ListName.GREY)), Status.GREY, "grey-list", DEADLINE,
          grey(DEADLINE))


def test_grey_list_in_kyrgyzstan_after_28_august_2024_has_no_window() -> None:
    first = datetime(2024, 9, 2, 10, 0, tzinfo=UTC)
    check(ask(KG, first, LOCAL["kg"], equipment=facts(ListName.GREY)), Status.BLACK, "grey-list-expired", first,
          black(first))


def test_grey_list_deadline_with_sightings_given_once() -> None:
    """``sightings`` is any Iterable (the signature says so): a one-shot iterator must give
    the same answer as a list."""
    profile = replace(TJ, roamer_days=10)
    seen = [Sighting(LOCAL["tj"], DAY0), Sighting(ROAMING, DAY0)]
    query = Query(IMEI, "s13", day(20), None, ROAMING)
    as_list = decide(query, facts(ListName.GREY), seen, None, profile)
    check(as_list, Status.GREY, "grey-list", DEADLINE, grey(DEADLINE))
    assert decide(query, facts(ListName.GREY), iter(seen), None, profile) == as_list


# -- a query without IMSI (MAP CheckIMEI v3): the IMSI last seen with the IMEI ---------

@BOTH
@pytest.mark.parametrize("recorded, at, status, rule, inferred", [
    # an inbound roamer seen over S13, asked over MAP v3 within 30 days: a roamer, for ever
    ([("roaming", 0, 0)], day(1), Status.WHITE, "roamer", "roaming"),
    ([("roaming", 0, 25)], day(50), Status.WHITE, "roamer", "roaming"),
    ([("roaming", 0, 60)], day(61), Status.WHITE, "roamer", "roaming"),
    # a local SIM last seen: its grace clock
    ([("local", 0, 0)], day(5), Status.GREY, "grace", "local"),
    ([("local", 0, 29)], day(31), Status.BLACK, "grace-expired", "local"),
    # the latest of several wins
    ([("local", 0, 3), ("roaming", 2, 4)], day(5), Status.WHITE, "roamer", "roaming"),
    ([("roaming", 0, 3), ("local", 2, 4)], day(5), Status.GREY, "grace", "local"),
    # last seen more than 30 days ago: the profile's default (local) applies
    ([("roaming", 0, 0)], day(31), Status.GREY, "grace", None),
    ([("roaming", 0, 0)], day(30), Status.WHITE, "roamer", "roaming"),
    # a sight after the query is not known yet
    ([("roaming", 10, 10)], day(5), Status.GREY, "grace", None),
    # sights without IMSI tell nothing
    ([("none", 0, 4)], day(5), Status.GREY, "grace", None),
])
def test_without_imsi_decides_with_the_last_imsi(name: str, recorded: list[tuple[str, float, float]],
                                                 at: datetime, status: Status, rule: str,
                                                 inferred: str | None) -> None:
    sims = {"roaming": ROAMING, "local": LOCAL[name], "none": ""}
    seen = [Sighting(sims[s], day(first), day(last)) for s, first, last in recorded]
    decision = decide(Query(IMEI, "map", at, None, None), None, seen, "Smartphone", PROFILES[name])
    assert (decision.status, decision.rule) == (status, rule), decision
    assert decision.imsi == (sims[inferred] if inferred else None)
    if inferred:
        assert f"the query carried no IMSI; {sims[inferred]} was last seen" in decision.reason


@BOTH
def test_without_imsi_the_profile_says_how_recent_and_what_otherwise(name: str) -> None:
    seen = [Sighting(ROAMING, DAY0, day(1))]
    short = replace(PROFILES[name], last_imsi_days=3)
    check(ask(short, day(4), None, sightings=[(ROAMING, DAY0)]), Status.GREY, "grace", day(34), grey(day(34)))
    assert decide(Query(IMEI, "map", day(4), None, None), None, seen, "Smartphone", short).rule == "roamer"
    assert decide(Query(IMEI, "map", day(5), None, None), None, seen, "Smartphone", short).rule == "grace"
    never = replace(PROFILES[name], last_imsi_days=0)
    assert decide(Query(IMEI, "map", day(1), None, None), None, seen, "Smartphone", never).rule == "grace"
    # none known: a profile that says roamer
    as_roamer = replace(PROFILES[name], no_imsi_local=False)
    check(ask(as_roamer, DAY0, None), Status.WHITE, "roamer")
    limited = replace(as_roamer, roamer_days=10)
    check(ask(limited, day(11), None, sightings=[("", DAY0)]), Status.BLACK, "not-registered", None, black())


@BOTH
@pytest.mark.parametrize("recorded, status, rule", [
    ([("bound", 0, 3)], Status.WHITE, "paired-match"),
    ([("other", 0, 3)], Status.BLACK, "paired-mismatch"),
    ([("other", 0, 1), ("bound", 0, 3)], Status.WHITE, "paired-match"),
    ([("bound", 0, 1), ("other", 0, 3)], Status.BLACK, "paired-mismatch"),
    ([("bound", -60, -40)], Status.BLACK, "paired-mismatch"),  # too long ago
    ([], Status.BLACK, "paired-mismatch"),
])
def test_without_imsi_a_paired_imei_is_judged_by_the_last_imsi(name: str, recorded: list[tuple[str, float, float]],
                                                              status: Status, rule: str) -> None:
    sims = {"bound": LOCAL[name], "other": LOCAL2[name]}
    seen = [Sighting(sims[s], day(first), day(last)) for s, first, last in recorded]
    equipment = facts(ListName.PAIRED, pairings=((LOCAL[name], None),))
    decision = decide(Query(IMEI, "map", day(5), None, None), equipment, seen, None, PROFILES[name])
    assert (decision.status, decision.rule) == (status, rule), decision
    assert decision.notices == ()


# -- a pairing to an MSISDN matches through the subscriber data ------------------------

@BOTH
@pytest.mark.parametrize("imsi, msisdns, msisdn, status", [
    ("other", {"other": MSISDN}, None, Status.WHITE),  # the IMSI's number is the bound one
    ("other", {"other": "992909999999"}, None, Status.BLACK),
    ("other", {}, None, Status.BLACK),
    ("other", {"bound": MSISDN}, None, Status.BLACK),  # another IMSI's number says nothing
    ("other", {"other": "992909999999"}, MSISDN, Status.WHITE),  # a number the query carries wins
    ("other", {"other": MSISDN}, "992909999999", Status.BLACK),
])
def test_paired_to_an_msisdn_through_subscriber_data(name: str, imsi: str, msisdns: dict[str, str],
                                                      msisdn: str | None, status: Status) -> None:
    sims = {"bound": LOCAL[name], "other": LOCAL2[name]}
    equipment = facts(ListName.PAIRED, pairings=((None, MSISDN),))
    query = Query(IMEI, "s13", day(3), None, sims[imsi], msisdn)
    decision = decide(query, equipment, [], None, PROFILES[name],
                      msisdns={sims[sim]: number for sim, number in msisdns.items()})
    assert decision.status is status, decision
    assert decision.rule == ("paired-match" if status is Status.WHITE else "paired-mismatch")


@BOTH
def test_paired_to_an_msisdn_asked_without_imsi(name: str) -> None:
    """MAP v3 carries neither IMSI nor MSISDN: the IMSI last seen, then its number."""
    equipment = facts(ListName.PAIRED, pairings=((None, MSISDN),))
    seen = [Sighting(LOCAL2[name], DAY0, day(2))]
    decision = decide(Query(IMEI, "map", day(3), None, None), equipment, seen, None, PROFILES[name],
                      msisdns={LOCAL2[name]: MSISDN})
    check(decision, Status.WHITE, "paired-match")
    assert decision.imsi == LOCAL2[name] and "subscriber data" in decision.reason


# -- invalid IMEIs ---------------------------------------------------------------------

INVALID = [
    pytest.param(IMEI + str((int(IMEI15[-1]) + 1) % 10), id="bad-luhn"),
    pytest.param("35209900176148A", id="letter-15"),
    pytest.param("3520990017614A", id="letter-14"),
    pytest.param("35209900l76148", id="letter-l"),
    pytest.param("00000000000000", id="zeros-14"),
    pytest.param("000000000000000", id="zeros-15"),
    pytest.param("0000000000000000", id="zeros-16"),
    pytest.param("00000000123456", id="tac-zero"),
    pytest.param("3520990017614", id="13-digits"),
    pytest.param("35209900176148123", id="17-digits"),
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param("+35209900176148", id="plus"),
    pytest.param("35209900-176148", id="dash"),
    pytest.param("３５２０９９００１７６１４８", id="fullwidth-digits"),
]


@BOTH
@pytest.mark.parametrize("imei", INVALID)
@pytest.mark.parametrize("equipment", [None, facts(ListName.WHITE), facts(None, stolen=True)],
                         ids=["unknown", "white", "stolen"])
def test_invalid_imei(name: str, imei: str, equipment: EquipmentFacts | None) -> None:
    profile = PROFILES[name]
    decision = ask(profile, DAY0, LOCAL[name], imei=imei, equipment=equipment)
    check(decision, Status.BLACK, "invalid-imei")
    assert decision.imei is None
    check(ask(profile, DAY0, ROAMING, imei=imei, equipment=equipment), Status.BLACK, "invalid-imei")
    rejecting = replace(profile, invalid_imei=InvalidImei.REJECT)
    check(ask(rejecting, DAY0, LOCAL[name], imei=imei, equipment=equipment), Status.INVALID, "invalid-imei")


@BOTH
@pytest.mark.parametrize("imei", [IMEI, IMEI15, IMEI + "07", f" {IMEI15} ", f"{IMEI}\n"],
                         ids=["14", "15", "imeisv", "spaces", "newline"])
def test_valid_imei_forms_share_the_key(name: str, imei: str) -> None:
    decision = ask(PROFILES[name], DAY0, LOCAL[name], imei=imei, equipment=facts(ListName.WHITE))
    check(decision, Status.WHITE, "white-list")
    assert decision.imei == IMEI
    grace = ask(PROFILES[name], DAY0, LOCAL[name], imei=imei)
    check(grace, Status.GREY, "grace", DEADLINE, grey(DEADLINE))
    assert grace.imei == IMEI


# -- what-if queries in the past: later sightings are not known yet ---------------------

@BOTH
@pytest.mark.parametrize("at, imsi, recorded, status, rule, deadline, notices", [
    (DAY0, "a", [("a", day(40))], Status.GREY, "grace", DEADLINE, grey(DEADLINE)),
    (DAY0, "a", [("a", day(5))], Status.GREY, "grace", DEADLINE, grey(DEADLINE)),
    (DAY0, "b", [("a", day(5))], Status.GREY, "grace", DEADLINE, grey(DEADLINE)),
    (day(10), "b", [("a", DAY0), ("b", day(50))], Status.GREY, "grace", DEADLINE, grey(DEADLINE)),
    (day(-10), "b", [("a", DAY0)], Status.GREY, "grace", day(20), grey(day(20))),
    (day(29), "a", [("a", DAY0), ("b", day(100))], Status.GREY, "grace", DEADLINE, grey(DEADLINE, 7, 1)),
    (day(30), "a", [("a", DAY0), ("b", day(100))], Status.BLACK, "grace-expired", DEADLINE, black(DEADLINE)),
    # a sight before the query counts, one exactly at it too
    (day(30), "b", [("a", day(30)), ("b", DAY0)], Status.BLACK, "grace-expired", DEADLINE, black(DEADLINE)),
])
def test_sightings_after_the_query_are_ignored(name: str, at: datetime, imsi: str,
                                               recorded: list[tuple[str, datetime]], status: Status, rule: str,
                                               deadline: datetime | None,
                                               notices: list[tuple[str, datetime | None]]) -> None:
    sims = {"a": LOCAL[name], "b": LOCAL2[name]}
    sightings = [(sims[s], when) for s, when in recorded]
    check(ask(PROFILES[name], at, sims[imsi], sightings=sightings), status, rule, deadline, notices)


@BOTH
def test_what_if_before_the_grandfather_cutoff(name: str) -> None:
    """Today the IMEI is long expired; asked as of a day before the cutoff, it was grandfathered."""
    cutoff = CUTOFF[name]
    sightings = [(LOCAL[name], cutoff + timedelta(days=10))]
    check(ask(PROFILES[name], cutoff + timedelta(days=400), LOCAL[name], sightings=sightings), Status.BLACK,
          "grace-expired", cutoff + timedelta(days=40), black(cutoff + timedelta(days=40)))
    check(ask(PROFILES[name], cutoff - timedelta(days=1), LOCAL[name], sightings=sightings), Status.WHITE,
          "grandfathered")


# -- properties ------------------------------------------------------------------------

# IMSIs that are local in one profile and roam in the other, one roaming in both, and "" (unknown).
IMSI_POOL = ["436011111111111", "436101111111112", "437051111111111", "250991111111111", ""]
MSISDN_POOL = [None, MSISDN, "+" + MSISDN, "992900000000"]
PAIRINGS: tuple[Pair, ...] = ((IMSI_POOL[0], None), (IMSI_POOL[2], None), (None, MSISDN))
PROFILE_POOL = [TJ, KG, replace(TJ, roamer_days=10), replace(KG, roamer_days=10), replace(KG, roamer_days=0)]

times = st.datetimes(min_value=datetime(2023, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.just(UTC))
sightings_st = st.lists(st.builds(lambda imsi, first, later: Sighting(imsi, first, first + later),
                                  st.sampled_from(IMSI_POOL), times,
                                  st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=90))), max_size=3)
equipment_st = st.one_of(
    st.none(),
    st.builds(facts, st.sampled_from([None, ListName.WHITE, ListName.GREY, ListName.BLACK, ListName.PAIRED]),
              st.booleans(), st.just(PAIRINGS)),
)
device_types = st.sampled_from([None, "Smartphone", "WLAN Router"])
query_imsis = st.sampled_from([None, *IMSI_POOL])


def keys() -> st.SearchStrategy[str]:
    """A valid IMEI as received: 14 digits (TAC not all zeros), 15 with its check digit, or 16."""
    key = st.text(alphabet="0123456789", min_size=14, max_size=14).filter(lambda k: not k.startswith("00000000"))
    return st.one_of(key, key.map(lambda k: k + luhn_check_digit(k)), st.tuples(key, st.integers(0, 99)).map(
        lambda ks: f"{ks[0]}{ks[1]:02d}"))


def decide_twice(profile: Profile, equipment: EquipmentFacts | None, sightings: list[Sighting],
                 device_type: str | None, imsi: str | None, msisdn: str | None, t1: datetime,
                 t2: datetime) -> tuple[Decision, Decision]:
    """The decisions at t1 and t2 of the same registry and the same query identity."""
    return (decide(Query(IMEI, "s13", t1, None, imsi, msisdn), equipment, sightings, device_type, profile),
            decide(Query(IMEI, "s13", t2, None, imsi, msisdn), equipment, sightings, device_type, profile))


@given(profile=st.sampled_from([TJ, KG]), equipment=equipment_st, sightings=sightings_st, device_type=device_types,
       imsi=query_imsis, msisdn=st.sampled_from(MSISDN_POOL), t1=times, t2=times)
def test_black_stays_black_as_time_passes(profile: Profile, equipment: EquipmentFacts | None,
                                          sightings: list[Sighting], device_type: str | None, imsi: str | None,
                                          msisdn: str | None, t1: datetime, t2: datetime) -> None:
    """The shipped profiles (roamers unlimited): black at t1 is never grey or white at a
    later t2, whatever the sightings, including those made between t1 and t2."""
    t1, t2 = sorted((t1, t2))
    first, later = decide_twice(profile, equipment, sightings, device_type, imsi, msisdn, t1, t2)
    if first.status is Status.BLACK and not inference_expired(first, later):
        assert later.status not in (Status.GREY, Status.WHITE), (first, later)


def inference_expired(first: Decision, later: Decision) -> bool:
    """A query without IMSI is decided with the IMSI last seen with the IMEI: when that is
    another at t2 (a SIM seen since, or the last one seen too long ago, when the profile's
    ``without_imsi.otherwise`` applies), the query is in effect made with another SIM, a
    new fact (see test_without_imsi_decides_with_the_last_imsi)."""
    return first.imsi != later.imsi


@given(profile=st.sampled_from(PROFILE_POOL), equipment=equipment_st, sightings=sightings_st,
       device_type=device_types, imsi=query_imsis, msisdn=st.sampled_from(MSISDN_POOL), t1=times, t2=times)
def test_black_stays_black_until_a_new_local_sim(profile: Profile, equipment: EquipmentFacts | None,
                                                 sightings: list[Sighting], device_type: str | None,
                                                 imsi: str | None, msisdn: str | None, t1: datetime,
                                                 t2: datetime) -> None:
    """With roamers limited too (10 and 0 days): black at t1 is never grey or white at t2
    unless the IMEI was first seen with a local SIM between t1 and t2. That sight is a new
    fact: it starts the grace clock of a roamer whose exemption is over, or shows the device
    was active before the grandfather cutoff (see test_roamer_over_then_a_local_sim)."""
    t1, t2 = sorted((t1, t2))
    first, later = decide_twice(profile, equipment, sightings, device_type, imsi, msisdn, t1, t2)
    new_local = any(t1 < s.first_seen <= t2 and profile.is_local(s.imsi) for s in sightings)
    if first.status is Status.BLACK and not new_local and not inference_expired(first, later):
        assert later.status not in (Status.GREY, Status.WHITE), (first, later)


@pytest.mark.parametrize("name", ["tj", "kg"])
def test_roamer_over_then_a_local_sim(name: str) -> None:
    """Why the property above excludes a new local SIM: a roamer whose (limited) exemption
    is over is black; a local SIM bought later starts the IMEI's grace window (a foreigner
    may use a local SIM 30 days), and a local sight before the cutoff grandfathers it."""
    profile = replace(PROFILES[name], roamer_days=10)
    sightings = [(ROAMING, DAY0), (LOCAL[name], day(15))]
    check(ask(profile, day(12), ROAMING, sightings=sightings), Status.BLACK, "not-registered", None, black())
    check(ask(profile, day(16), ROAMING, sightings=sightings), Status.GREY, "grace", day(45), grey(day(45)))
    cutoff = CUTOFF[name]
    early = [(ROAMING, cutoff - timedelta(days=30)), (LOCAL[name], cutoff - timedelta(days=1))]
    check(ask(profile, cutoff - timedelta(days=5), ROAMING, sightings=early), Status.BLACK, "not-registered", None,
          black())
    check(ask(profile, cutoff, ROAMING, sightings=early), Status.WHITE, "grandfathered")


@given(profile=st.sampled_from(PROFILE_POOL), imei=keys(), sightings=sightings_st, device_type=device_types,
       imsi=query_imsis, msisdn=st.sampled_from(MSISDN_POOL), at=times, reason=st.sampled_from([None, "customs"]))
def test_a_registration_always_wins_over_the_grace_rules(profile: Profile, imei: str, sightings: list[Sighting],
                                                         device_type: str | None, imsi: str | None,
                                                         msisdn: str | None, at: datetime, reason: str | None) -> None:
    equipment = EquipmentFacts(imei[:14], ListName.WHITE, False, reason, None)
    decision = decide(Query(imei, "s13", at, None, imsi, msisdn), equipment, sightings, device_type, profile)
    assert decision.status is Status.WHITE, decision
    assert decision.rule in ("white-list", "roamer"), decision
    assert decision.imei == imei[:14]
    assert decision.notices == ()
