"""The scenario file format (scenarios/README.md): every shipped scenario reads, and every
schema error names the file, the line and the key."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from simulator.population import Population, PopulationError
from simulator.scenario import find_scenarios, load_scenario
from simulator.scenario_checks import notice_differences, same_moment, wire_differences
from simulator.scenario_model import Action, NoticeExpect, Via
from simulator.scenario_yaml import ScenarioError

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SUITES = ("tajikistan", "kyrgyzstan", "dual_sim", "foreign_roamer", "paired_white", "grey_list", "conformance")

HEAD = """scenario: test
start: 2024-03-01T10:00+05:00
subscribers:
  alice: {plmn: 436-01}
handsets:
  phone: {tac: "35693803", type: Smartphone}
  duo: {tac: "35693804", slots: 2}
steps:
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "case.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", find_scenarios([SCENARIOS]), ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_every_shipped_scenario_reads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.steps and scenario.title


def test_every_suite_the_issue_names_is_shipped() -> None:
    found = {path.parent.name for path in find_scenarios([SCENARIOS])}
    assert found == set(SUITES)


def test_profiles_beside_scenarios_are_not_scenarios() -> None:
    found = find_scenarios([SCENARIOS / "foreign_roamer"])
    assert found and not any(path.name.endswith(".profile.yaml") for path in found)


def test_a_scenario_reads_into_resolved_steps(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + """  - insert: {sim: alice, into: phone}
  - attach: phone
    expect: {status: grey, rule: grace, s13: {result: 2001}, map: {error: systemFailure}}
  - wait: 20 days
  - at: day 31
  - register: {handset: duo, slot: 2}
  - import: {kind: grey, rows: [phone, {imei: duo, reason: "a, b"}]}
  - notices: phone
    expect: [{event: grey, deadline: 2024-03-31}, {event: reminder-7d}]
  - check: phone
    at: day 45
    expect: {status: black, deadline: 2024-03-31T05:00:00Z}
  - attach: {imei: "4901542032375A", sim: alice}
    via: map-v3
""")
    scenario = load_scenario(path)
    steps = scenario.steps
    assert [step.action for step in steps] == [Action.INSERT, Action.ATTACH, Action.WAIT, Action.AT, Action.REGISTER,
                                               Action.IMPORT, Action.NOTICES, Action.CHECK, Action.ATTACH]
    assert [step.line for step in steps] == [9, 10, 12, 13, 14, 15, 16, 18, 21]
    attach = steps[1]
    assert attach.expect is not None
    assert attach.expect.on("s13") == {"status": "grey", "rule": "grace", "result": 2001}
    assert attach.expect.on("map") == {"status": "grey", "rule": "grace", "error": "systemFailure"}
    assert steps[2].duration == timedelta(days=20)
    assert steps[3].at == datetime(2024, 3, 31, 5, tzinfo=UTC)  # day 31 = the start + 30 days
    duo = scenario.handsets["duo"]
    assert steps[4].device is not None and steps[4].device.imei == duo.imeis[1]
    rows = steps[5].rows
    assert rows is not None and rows.kind == "grey"
    assert rows.csv == f'imei,reason\n{scenario.handsets["phone"].imeis[0]},scenario\n{duo.imeis[0]},"a, b"\n'
    assert steps[6].notices == (NoticeExpect("grey", date(2024, 3, 31)), NoticeExpect("reminder-7d", None))
    assert steps[7].at_day == 45 and steps[7].expect is not None
    assert steps[7].expect.common["deadline"] == datetime(2024, 3, 31, 5, tzinfo=UTC)
    assert steps[8].via is Via.MAP_V3 and steps[8].device is not None
    assert steps[8].device.imei == "4901542032375A" and steps[8].device.sim == "alice"


def test_generated_identities_follow_the_seed(tmp_path: Path) -> None:
    first = load_scenario(write(tmp_path, HEAD + "  - attach: phone\n"))
    again = load_scenario(write(tmp_path, HEAD + "  - attach: phone\n"))
    other = load_scenario(write(tmp_path, HEAD.replace("scenario: test", "scenario: test\nseed: 9") +
                                "  - attach: phone\n"))
    assert first.subscribers == again.subscribers and first.handsets == again.handsets
    assert first.subscribers["alice"].imsi != other.subscribers["alice"].imsi
    imsi, msisdn = first.subscribers["alice"].imsi, first.subscribers["alice"].msisdn
    assert imsi.startswith("43601") and len(imsi) == 15 and msisdn.startswith("992") and len(msisdn) == 12
    from registry.imei import parse_imei

    for imei in (*first.handsets["phone"].imeis, *first.handsets["duo"].imeis):
        assert len(imei) == 15 and parse_imei(imei).key == imei[:14]  # a valid check digit


SCHEMA_ERRORS = [
    # (the steps, or a whole file; the line; the key; a part of the message)
    ("  - attach: phone\n    expect: {status: gray}\n", 10, "steps[1].expect.status", "'gray' is not a status"),
    ("  - attach: phne\n", 9, "steps[1].attach", "no handset named 'phne'"),
    ("  - attach: duo\n", 9, "steps[1].attach", "duo is dual-SIM: name the slot"),
    ("  - attach: {handset: duo, slot: 3}\n", 9, "steps[1].attach.slot", "out of range"),
    ("  - insert: {sim: bob, into: phone}\n", 9, "steps[1].insert.sim", "no subscriber named 'bob'"),
    ("  - wait: 3 weeks\n", 9, "steps[1].wait", "not a duration"),
    ("  - attach: phone\n    expect: {rule: grase}\n", 10, "steps[1].expect.rule", "no rule named 'grase'"),
    ("  - attach: phone\n    reason: x\n", 10, "steps[1].reason", "not a key of a attach step"),
    ("  - attach: phone\n    register: phone\n", 9, "steps[1]", "exactly one action"),
    ("  - notices: phone\n    expect: [{event: purple}]\n", 10, "steps[1].expect[1].event", "not a notice event"),
    ("  - check: phone\n    at: day 0\n", 10, "steps[1].at", "days count from 1"),
    ("  - at: 2024-02-01\n", 9, "steps[1].at", "time only moves forward"),
    ("  - import: {kind: purple, rows: []}\n", 9, "steps[1].import.rows", "unknown kind 'purple'"),
    ("  - attach: phone\n    via: map-v4\n", 10, "steps[1].via", "'map-v4' is not one of"),
]


@pytest.mark.parametrize(("steps", "line", "key", "message"), SCHEMA_ERRORS, ids=[case[2] + ":" + case[3][:12]
                                                                                   for case in SCHEMA_ERRORS])
def test_a_schema_error_names_the_file_the_line_and_the_key(tmp_path: Path, steps: str, line: int, key: str,
                                                            message: str) -> None:
    path = write(tmp_path, HEAD + steps)
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    error = raised.value
    assert (error.path, error.line, error.key) == (path, line, key), str(error)
    assert message in error.problem
    assert str(error).startswith(f"{path}:{line}: {key}: ")


@pytest.mark.parametrize(("text", "line", "key", "message"), [
    ("scenario: x\nstart: 2024-03-01\n", 1, "file", "missing key 'steps'"),
    ("scenario: x\nstart: 2024-13-01\nsteps: []\n", 2, "start", "not a date"),
    ("scenario: x\nstart: 2024-03-01\nsteps: []\nwhen: now\n", 4, "when", "unknown key"),
    ("scenario: x\nstart: 2024-03-01\nprofile: mars\nsteps: []\n", 3, "profile", "neither a shipped profile"),
    ("scenario: x\nstart: 2024-03-01\nsubscribers:\n  a: {imsi: '43601'}\nsteps: []\n", 4, "subscribers.a.imsi",
     "6 to 15 digits"),
    ("scenario: x\nstart: 2024-03-01\nhandsets:\n  a: {imei: '1'}\n  b: {imei: '1'}\nsteps: []\n", 5, "handsets.b",
     "share the IMEI"),
    ("scenario: x\nstart: 2024-03-01\nsteps: []\n", 3, "steps", "no steps"),
    ("scenario: x\nstart: [2024\n", 3, "yaml", "while parsing a flow sequence at line 2"),
    ("", 1, "file", "empty"),
    ("scenario: x\nscenario: y\nstart: 2024-03-01\nsteps: []\n", 2, "scenario", "given twice"),
])
def test_file_level_errors_name_the_line_and_the_key(tmp_path: Path, text: str, line: int, key: str,
                                                     message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert (raised.value.line, raised.value.key) == (line, key), str(raised.value)
    assert message in raised.value.problem


def test_a_profile_file_that_cannot_be_used_is_an_error_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "broken.profile.yaml").write_text("name: broken\ngrace: [{days: -1}]\n")
    path = write(tmp_path, "scenario: x\nstart: 2024-03-01\nprofile: broken.profile.yaml\nsteps:\n  - wait: 1 day\n")
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert (raised.value.line, raised.value.key) == (3, "profile")
    assert raised.value.problem.startswith("the profile cannot be used: ")


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such file or folder"):
        find_scenarios([tmp_path / "nowhere"])


def _steps(tmp_path: Path, text: str) -> Population:
    return Population(load_scenario(write(tmp_path, HEAD.replace(
        "  alice: {plmn: 436-01}\n", "  alice: {plmn: 436-01}\n  bob: {plmn: 250-01}\n") + text)))


def test_the_population_follows_sim_and_border_steps(tmp_path: Path) -> None:
    population = _steps(tmp_path, "  - attach: phone\n")
    steps = load_scenario(write(tmp_path, HEAD.replace("  alice: {plmn: 436-01}\n",
                                                       "  alice: {plmn: 436-01}\n  bob: {plmn: 250-01}\n") + """
  - insert: {sim: alice, into: phone}
  - swap: {handset: phone, sim: bob}
  - move: {sim: alice, to: duo, slot: 2}
  - leave: phone
  - enter: phone
  - remove: bob
""")).steps
    population.apply(steps[0])
    assert population.sim_in("phone", 1).name == "alice"
    population.apply(steps[1])
    assert population.sim_in("phone", 1).name == "bob"
    population.apply(steps[2])
    assert population.sim_in("duo", 2).name == "alice"
    population.apply(steps[3])
    with pytest.raises(PopulationError, match="phone is abroad"):
        population.sim_in("phone", 1)
    population.apply(steps[4])
    assert population.sim_in("phone", 1).name == "bob"
    population.apply(steps[5])
    with pytest.raises(PopulationError, match="holds no SIM"):
        population.sim_in("phone", 1)
    with pytest.raises(PopulationError, match="already holds alice"):
        population.apply(steps[0].__class__(1, 1, Action.INSERT, "x", sim="bob", handset="duo", slot=2))


def test_deadlines_compare_by_local_day_or_to_the_second() -> None:
    five = timedelta(hours=5)
    assert same_moment(date(2024, 3, 31), "2024-03-31T05:00:00+00:00", five)
    assert same_moment(date(2024, 4, 1), "2024-03-31T20:00:00+00:00", five)  # 01:00 on 1 April in Dushanbe
    assert not same_moment(date(2024, 3, 31), "2024-03-31T20:00:00+00:00", five)
    assert same_moment(datetime(2024, 3, 31, 5, tzinfo=UTC), "2024-03-31T05:00:00.400000+00:00", five)
    assert not same_moment(date(2024, 3, 31), None, five)


def test_notice_differences_name_what_differs() -> None:
    found = [{"event": "grey", "deadline": "2024-03-31T05:00:00+00:00"}]
    assert notice_differences([NoticeExpect("grey", date(2024, 3, 31))], found, timedelta(hours=5)) == []
    assert notice_differences([NoticeExpect("grey", date(2024, 4, 1))], found, timedelta(hours=5)) == [
        "grey deadline: expected 2024-04-01, received 2024-03-31T05:00:00+00:00"]
    assert notice_differences([], found, timedelta()) == ["notices: expected none, received grey"]


def test_wire_differences_compare_only_the_named_fields() -> None:
    observed = {"result_code": 5005, "failed_avp": ["Terminal-Information"], "closed": True}
    assert wire_differences({"result_code": 5005, "failed_avp": ["Terminal-Information"]}, observed) == []
    assert wire_differences({"result_code": 5004, "closed": False}, observed) == [
        "result_code: expected 5004, received 5005", "closed: expected False, received True"]
