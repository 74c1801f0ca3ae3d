"""The traffic run's population model (simulator/traffic_population.py): the shares, the
seeded population, and the prediction of each attach from the rules of DOMAIN.md."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from registry.profile import Profile, load_profile
from simulator.commands_traffic import traffic
from simulator.traffic_population import (
    DEFAULT_SHARES,
    Kind,
    Line,
    Model,
    Population,
    Settings,
    ShareError,
    parse_shares,
)

TJ_START = datetime(2025, 3, 3, 4, tzinfo=UTC)  # 09:00 in Dushanbe
LOCAL, OTHER_LOCAL, ROAMING = "436010000000001", "436050000000002", "250010000000003"


def model(profile: Profile, start: datetime = TJ_START, days: int = 60, grace_shift: int = 0) -> Model:
    return Model(Population(Settings(10, days), profile), start, grace_shift)


def line(imei: str = "352099009999993", imsi: str = LOCAL, kind: Kind = Kind.ABROAD) -> Line:
    return Line(0, 0, kind, imei, imsi, 1, 60)


def days(found: Model, attach: Line, first: int, last: int) -> dict[int, tuple[str, str]]:
    return {day: found.expect(attach, day) for day in range(first, last + 1)}


def test_shares_default_and_override() -> None:
    assert parse_shares([]) == DEFAULT_SHARES
    shares = parse_shares(["abroad=0.25", " roamer = 0"])
    assert shares[Kind.ABROAD] == 0.25 and shares[Kind.ROAMER] == 0.0


@pytest.mark.parametrize(("items", "message"), [
    (["pirates=0.1"], "no share named 'pirates'"),
    (["abroad"], "must be a number"),
    (["abroad=1.5"], "from 0 to 1"),
    (["abroad=0.7", "roamer=0.5"], "more than 1"),
    (["registered=0.5"], "add up to"),
])
def test_bad_shares_are_refused_with_the_reason(items: list[str], message: str) -> None:
    with pytest.raises(ShareError, match=message):
        parse_shares(items)


def test_the_population_has_the_stated_shares_and_is_seeded() -> None:
    tj = load_profile("tj")
    one = Population(Settings(1000, 45, seed=3), tj)
    counts = one.counts()
    assert sum(counts.values()) == 1000 and counts[Kind.ABROAD] == 100 and counts[Kind.REGISTERED] == 550
    assert len({line.imei for line in one.lines}) == 1000 + counts[Kind.DUAL_SIM]  # a dual-SIM phone has two
    again = Population(Settings(1000, 45, seed=3), tj)
    assert [(line.imei, line.imsi) for line in again.lines] == [(line.imei, line.imsi) for line in one.lines]
    assert [line.number for line in again.active(7)] == [line.number for line in one.active(7)]
    other = Population(Settings(1000, 45, seed=4), tj)
    assert [line.kind for line in other.lines] != [line.kind for line in one.lines]
    assert sorted(one.registrations)[:5] == [2, 3, 4, 5, 6]  # every early day has a registration
    assert all(not tj.is_local(line.imsi) for line in one.lines if line.kind is Kind.ROAMER)


def test_tj_grace_window_from_the_first_local_attach_then_black() -> None:
    found = model(load_profile("tj"))
    attach = line()
    seen = days(found, attach, 3, 34)
    assert {seen[day] for day in range(3, 33)} == {("grey", "grace")}  # days 3 to 32: 30 days
    assert seen[33] == seen[34] == ("black", "grace-expired")
    assert found.notices(attach, 26, "grace") == ["grey", "reminder-7d"]
    assert found.notices(attach, 32, "grace") == ["grey", "reminder-7d", "reminder-1d"]
    assert found.notices(attach, 33, "grace-expired") == ["black"]


def test_a_wrong_model_is_wrong_on_the_day_the_window_ends() -> None:
    found = model(load_profile("tj"), grace_shift=1)
    attach = line()
    assert days(found, attach, 1, 31)[31] == ("grey", "grace")


def test_kg_no_window_for_a_first_sight_from_28_august_2024() -> None:
    kg = load_profile("kg")
    start = datetime(2024, 8, 26, 3, tzinfo=UTC)  # 09:00 in Bishkek
    found = model(kg, start)
    before, after = line("352099009999993", "437010000000001"), line("353325109999991", "437050000000002")
    assert found.expect(before, 1) == ("grey", "grace")
    assert found.expect(after, 3) == ("black", "no-grace")  # 28 August
    assert found.expect(before, 3) == ("grey", "grace")  # its window began before the change


def test_roamers_foreigners_clones_routers_registrations_and_stolen() -> None:
    found = model(load_profile("tj"))
    facts = found.facts
    assert found.expect(line(imsi=ROAMING), 40) == ("white", "roamer")
    foreigner = "358753099999990"
    assert found.expect(line(foreigner, ROAMING), 1) == ("white", "roamer")
    assert found.expect(line(foreigner, LOCAL), 5) == ("grey", "grace")  # the window starts with the local SIM
    assert found.expect(line(foreigner, LOCAL), 35) == ("black", "grace-expired")
    facts.bound["35209900888888"] = {LOCAL}
    assert found.expect(line("352099008888880", LOCAL), 1) == ("white", "paired-match")
    assert found.expect(line("352099008888880", OTHER_LOCAL), 1) == ("black", "paired-mismatch")
    facts.auto.add("86354101777777")
    router = line("863541017777776", kind=Kind.ROUTER)
    assert found.expect(router, 4) == ("white", "auto-entered|white-list")
    assert found.expect(router, 5) == ("white", "white-list")
    facts.white_from["35467811666666"] = 12
    registering = line("354678116666664")
    assert [found.expect(registering, day)[1] for day in (1, 11, 12, 50)] == ["grace", "grace", "white-list",
                                                                              "white-list"]
    facts.white_from["35290611555555"] = 0
    facts.stolen_from["35290611555555"] = 9
    stolen = line("352906115555551")
    assert found.expect(stolen, 8) == ("white", "white-list")
    assert found.expect(stolen, 9) == ("black", "stolen")


def test_a_limited_roamer_exemption_ends() -> None:
    tj = dataclasses.replace(load_profile("tj"), roamer_days=10)
    found = model(tj)
    roamer = line(imsi=ROAMING)
    assert found.expect(roamer, 2) == ("white", "roamer")
    assert found.expect(roamer, 11) == ("white", "roamer")
    assert found.expect(roamer, 12) == ("black", "not-registered")
    assert found.at(2) - found.at(1) == timedelta(days=1)


@pytest.mark.parametrize(("args", "message"), [
    (["--share", "pirates=0.1"], "no share named 'pirates'"),
    (["--share", "abroad=0.7", "--share", "roamer=0.5"], "more than 1"),
    (["--profile", "xx"], "xx"),
    (["--start", "March"], "--start 'March': a date, YYYY-MM-DD"),
])
def test_the_command_refuses_bad_options_before_starting_anything(args: list[str], message: str) -> None:
    done = CliRunner().invoke(traffic, args)
    assert done.exit_code == 2
    assert message in done.output
