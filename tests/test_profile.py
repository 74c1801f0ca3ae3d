"""Country profiles (registry/profile.py): the shipped tj and kg profiles, custom files, and
every validation error as a ProfileError that names the key."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from registry.profile import (
    PROFILES,
    GraceRule,
    InvalidImei,
    Profile,
    ProfileError,
    UnknownTac,
    load_profile,
    parse_profile,
)

# The GSMA TAC database's non-phone device types the shipped profiles enter automatically.
AUTO_TYPES = frozenset({"modem", "dongle", "wlan router", "router", "module", "iot device", "wearable", "vehicle",
                        "connected computer", "e-book"})


def shipped_yaml(name: str) -> dict[str, Any]:
    data = yaml.safe_load((PROFILES / f"{name}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


# -- the shipped profiles --------------------------------------------------------------

def test_tj_holds_what_its_yaml_says() -> None:
    tj = load_profile("tj")
    assert (tj.name, tj.country) == ("tj", "Tajikistan")
    assert tj.utc_offset == timedelta(hours=5)
    assert tj.home_plmns == ("43601", "43602", "43603", "43604", "43605", "43610", "43612")
    assert tj.grace == (GraceRule(None, None, 30),)
    assert tj.roamer_days is None
    assert tj.grandfather_before == date(2023, 10, 1)
    assert tj.auto_enter == AUTO_TYPES
    assert (tj.last_imsi_days, tj.no_imsi_local) == (30, True)
    assert tj.unknown_tac is UnknownTac.GRACE
    assert tj.invalid_imei is InvalidImei.BLACK
    assert tj.reminder_days == (7, 1)


def test_kg_holds_what_its_yaml_says() -> None:
    kg = load_profile("kg")
    assert (kg.name, kg.country) == ("kg", "Kyrgyzstan")
    assert kg.utc_offset == timedelta(hours=6)
    assert kg.home_plmns == ("43701", "43705", "43709")
    assert kg.grace == (GraceRule(None, date(2024, 8, 27), 30), GraceRule(date(2024, 8, 28), None, 0))
    assert kg.roamer_days is None
    assert kg.grandfather_before == date(2024, 6, 25)
    assert kg.auto_enter == AUTO_TYPES
    assert (kg.last_imsi_days, kg.no_imsi_local) == (30, True)
    assert kg.unknown_tac is UnknownTac.GRACE
    assert kg.invalid_imei is InvalidImei.BLACK
    assert kg.reminder_days == (7, 1)


@pytest.mark.parametrize("name", ["tj", "kg"])
def test_shipped_profile_matches_its_file(name: str) -> None:
    """Read the YAML independently: the PLMNs are the MCC-MNC entries without the dash."""
    data = shipped_yaml(name)
    profile = load_profile(name)
    assert profile.home_plmns == tuple(plmn.replace("-", "") for plmn in data["home_plmns"])
    assert all(len(plmn) in (5, 6) and plmn.isdigit() for plmn in profile.home_plmns)
    assert profile.grandfather_before == data["grandfather_before"]
    assert profile.reminder_days == tuple(sorted(data["notices"]["reminder_days_before"], reverse=True))
    assert profile.auto_enter == {t.lower() for t in data["auto_enter"]["device_types"]}
    assert profile.last_imsi_days == data["without_imsi"]["last_seen_days"]
    assert data["roamers"] == "unlimited" and profile.roamer_days is None
    assert profile == load_profile(PROFILES / f"{name}.yaml") == load_profile(str(PROFILES / f"{name}.yaml"))


# -- custom files ----------------------------------------------------------------------

MINIMAL = 'name: xx\nhome_plmns: ["999-01"]\ngrace: []\n'


def test_load_a_minimal_custom_file_takes_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "xx.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    profile = load_profile(path)
    assert profile == Profile(name="xx", country="xx", utc_offset=timedelta(0), home_plmns=("99901",), grace=(),
                              roamer_days=None, grandfather_before=None, auto_enter=frozenset(),
                              unknown_tac=UnknownTac.GRACE, invalid_imei=InvalidImei.BLACK, reminder_days=(),
                              last_imsi_days=0)
    assert load_profile(str(path)) == profile


def test_load_a_full_custom_file(tmp_path: Path) -> None:
    path = tmp_path / "custom.yml"
    path.write_text("""
name: " zz "
country: Zedland
utc_offset: "-03:30"
home_plmns: ["999-01", "999-100"]
grace:
  - {from: 2025-01-01, days: 0}
  - {until: 2023-12-31, days: 10}
  - {from: "2024-01-01", until: 2024-12-31, days: 20}
roamers: {days: 14}
grandfather_before: 2022-01-01
auto_enter: {device_types: [" Modem ", WLAN ROUTER]}
without_imsi: {last_seen_days: 7, otherwise: roamer}
unknown_tac: unknown
invalid_imei: reject
notices: {reminder_days_before: [1, 14, 3]}
""", encoding="utf-8")
    profile = load_profile(path)
    assert profile.name == "zz"
    assert profile.country == "Zedland"
    assert profile.utc_offset == -timedelta(hours=3, minutes=30)
    assert profile.home_plmns == ("99901", "999100")
    assert profile.grace == (GraceRule(None, date(2023, 12, 31), 10),
                             GraceRule(date(2024, 1, 1), date(2024, 12, 31), 20),
                             GraceRule(date(2025, 1, 1), None, 0))
    assert profile.roamer_days == 14
    assert profile.grandfather_before == date(2022, 1, 1)
    assert profile.auto_enter == {"modem", "wlan router"}
    assert (profile.last_imsi_days, profile.no_imsi_local) == (7, False)
    assert not profile.is_local(None) and not profile.is_local("")
    assert profile.unknown_tac is UnknownTac.UNKNOWN
    assert profile.invalid_imei is InvalidImei.REJECT
    assert profile.reminder_days == (14, 3, 1)


def test_gaps_between_grace_rules_are_allowed_and_give_no_window() -> None:
    profile = parse_profile({"name": "g", "home_plmns": ["999-01"], "grace": [
        {"until": date(2024, 1, 31), "days": 30}, {"from": date(2024, 3, 1), "days": 5}]})
    assert profile.grace_days(datetime(2024, 1, 31, 23, tzinfo=UTC)) == 30
    assert profile.grace_days(datetime(2024, 2, 15, tzinfo=UTC)) == 0
    assert profile.grace_days(datetime(2024, 3, 1, tzinfo=UTC)) == 5


# -- validation ------------------------------------------------------------------------

BASE: dict[str, Any] = {"name": "xx", "home_plmns": ["436-01"], "grace": [{"days": 30}]}
DROP = object()


def with_(**changes: Any) -> dict[str, Any]:
    data = dict(BASE)
    for key, value in changes.items():
        if value is DROP:
            del data[key]
        else:
            data[key] = value
    return data


BAD: list[Any] = [
    pytest.param(with_(colour="red"), "colour", id="unknown-key"),
    pytest.param(with_(name=DROP), "name", id="missing-name"),
    pytest.param(with_(home_plmns=DROP), "home_plmns", id="missing-home_plmns"),
    pytest.param(with_(grace=DROP), "grace", id="missing-grace"),
    pytest.param(with_(name=""), "name", id="empty-name"),
    pytest.param(with_(name="   "), "name", id="blank-name"),
    pytest.param(with_(name=42), "name", id="number-name"),
    pytest.param(with_(utc_offset="+5"), "utc_offset", id="offset-no-minutes"),
    pytest.param(with_(utc_offset="05:00"), "utc_offset", id="offset-no-sign"),
    pytest.param(with_(utc_offset="+15:00"), "utc_offset", id="offset-hours-too-big"),
    pytest.param(with_(utc_offset="+05:60"), "utc_offset", id="offset-minutes-too-big"),
    pytest.param(with_(utc_offset=300), "utc_offset", id="offset-sexagesimal-int"),  # YAML reads +5:00 as 300
    pytest.param(with_(utc_offset=None), "utc_offset", id="offset-null"),
    pytest.param(with_(home_plmns=["43-01"]), "home_plmns", id="plmn-short-mcc"),
    pytest.param(with_(home_plmns=["436-1"]), "home_plmns", id="plmn-short-mnc"),
    pytest.param(with_(home_plmns=["436-0001"]), "home_plmns", id="plmn-long-mnc"),
    pytest.param(with_(home_plmns=["43601"]), "home_plmns", id="plmn-no-dash"),
    pytest.param(with_(home_plmns=[43601]), "home_plmns", id="plmn-number"),
    pytest.param(with_(home_plmns=["436-01", "436-01"]), "home_plmns", id="plmn-duplicate"),
    pytest.param(with_(home_plmns=["436-01", "436-02", "436-01"]), "home_plmns", id="plmn-duplicate-apart"),
    pytest.param(with_(home_plmns=[]), "home_plmns", id="plmns-empty"),
    pytest.param(with_(home_plmns="436-01"), "home_plmns", id="plmns-not-a-list"),
    pytest.param(with_(grace={"days": 30}), "grace", id="grace-not-a-list"),
    pytest.param(with_(grace=[30]), "grace rule 1", id="grace-rule-not-a-mapping"),
    pytest.param(with_(grace=[{"days": 30, "to": date(2024, 1, 1)}]), "grace rule 1", id="grace-rule-unknown-key"),
    pytest.param(with_(grace=[{"from": date(2024, 1, 1)}]), "grace rule 1", id="grace-rule-without-days"),
    pytest.param(with_(grace=[{"days": 30}, {"from": date(2024, 8, 28), "days": 0}]), "grace rules overlap",
                 id="grace-open-overlaps-bounded"),
    pytest.param(with_(grace=[{"until": date(2024, 8, 28), "days": 30}, {"from": date(2024, 8, 28), "days": 0}]),
                 "grace rules overlap", id="grace-share-a-day"),
    pytest.param(with_(grace=[{"from": date(2024, 1, 1), "until": date(2024, 12, 31), "days": 30},
                              {"from": date(2024, 6, 1), "until": date(2024, 6, 30), "days": 5}]),
                 "grace rules overlap", id="grace-nested"),
    pytest.param(with_(grace=[{"until": date(2024, 1, 1), "days": 30}, {"until": date(2024, 6, 1), "days": 5}]),
                 "grace rules overlap", id="grace-two-open-starts"),
    pytest.param(with_(grace=[{"from": date(2024, 1, 1), "days": 30}, {"from": date(2024, 6, 1), "days": 5}]),
                 "grace rules overlap", id="grace-two-open-ends"),
    pytest.param(with_(grace=[{"from": date(2024, 2, 1), "until": date(2024, 1, 1), "days": 30}]),
                 "grace rule 1: from", id="grace-from-after-until"),
    pytest.param(with_(grace=[{"days": -1}]), "grace rule 1: days", id="grace-negative-days"),
    pytest.param(with_(grace=[{"days": 1.5}]), "grace rule 1: days", id="grace-fractional-days"),
    pytest.param(with_(grace=[{"days": "30"}]), "grace rule 1: days", id="grace-text-days"),
    pytest.param(with_(grace=[{"days": True}]), "grace rule 1: days", id="grace-bool-days"),
    pytest.param(with_(grace=[{"days": 36501}]), "grace rule 1: days", id="grace-too-many-days"),
    pytest.param(with_(grace=[{"from": "2024-13-01", "days": 30}]), "grace rule 1: from", id="grace-bad-date"),
    pytest.param(with_(grace=[{"until": datetime(2024, 8, 27, 12, 0), "days": 30}]), "grace rule 1: until",
                 id="grace-datetime-not-date"),
    pytest.param(with_(grace=[{"until": date(2024, 1, 1), "days": 1}, {"from": date(2024, 2, 1), "days": -3}]),
                 "grace rule 2: days", id="grace-second-rule-named"),
    pytest.param(with_(roamers="limited"), "roamers", id="roamers-word"),
    pytest.param(with_(roamers=10), "roamers", id="roamers-number"),
    pytest.param(with_(roamers={"days": -1}), "roamers days", id="roamers-negative"),
    pytest.param(with_(roamers={"days": 2.5}), "roamers days", id="roamers-fractional"),
    pytest.param(with_(roamers={"days": 10, "from": date(2024, 1, 1)}), "roamers", id="roamers-extra-key"),
    pytest.param(with_(roamers=None), "roamers", id="roamers-null"),
    pytest.param(with_(auto_enter="all"), "auto_enter", id="auto_enter-word"),
    pytest.param(with_(auto_enter={"device_types": "Modem"}), "auto_enter", id="auto_enter-not-a-list"),
    pytest.param(with_(auto_enter={"except_device_types": ["Smartphone"]}), "auto_enter.except_device_types is gone",
                 id="auto_enter-deny-list-refused"),
    pytest.param(with_(auto_enter={"device_types": ["Modem", "Smartphone"]}), "auto_enter.device_types lists "
                 "smartphone", id="auto_enter-phone-refused"),
    pytest.param(with_(auto_enter={"device_types": ["Unknown"]}), "auto_enter.device_types lists unknown",
                 id="auto_enter-unknown-refused"),
    pytest.param(with_(auto_enter={"device_types": [""]}), "auto_enter", id="auto_enter-empty-type"),
    pytest.param(with_(without_imsi={"last_seen_days": -1}), "without_imsi.last_seen_days",
                 id="without_imsi-negative"),
    pytest.param(with_(without_imsi={"otherwise": "white"}), "without_imsi.otherwise", id="without_imsi-bad-default"),
    pytest.param(with_(without_imsi={"days": 3}), "without_imsi", id="without_imsi-unknown-key"),
    pytest.param(with_(without_imsi="local"), "without_imsi", id="without_imsi-not-a-mapping"),
    pytest.param(with_(auto_enter={"except": ["Smartphone"]}), "auto_enter", id="auto_enter-wrong-key"),
    pytest.param(with_(auto_enter=None), "auto_enter", id="auto_enter-null"),
    pytest.param(with_(unknown_tac="maybe"), "unknown_tac", id="unknown_tac-bad"),
    pytest.param(with_(unknown_tac="GRACE"), "unknown_tac", id="unknown_tac-upper-case"),
    pytest.param(with_(unknown_tac=False), "unknown_tac", id="unknown_tac-yaml-no"),
    pytest.param(with_(invalid_imei="white"), "invalid_imei", id="invalid_imei-bad"),
    pytest.param(with_(invalid_imei="grace"), "invalid_imei", id="invalid_imei-grace"),
    pytest.param(with_(notices="7"), "notices", id="notices-not-a-mapping"),
    pytest.param(with_(notices={"reminders": [7]}), "notices", id="notices-wrong-key"),
    pytest.param(with_(notices={"reminder_days_before": 7}), "reminder_days_before", id="reminders-not-a-list"),
    pytest.param(with_(notices={"reminder_days_before": [7, 1, 7]}), "reminder_days_before", id="reminders-duplicate"),
    pytest.param(with_(notices={"reminder_days_before": [7, 0]}), "reminder_days_before", id="reminders-zero"),
    pytest.param(with_(notices={"reminder_days_before": [-1]}), "reminder_days_before", id="reminders-negative"),
    pytest.param(with_(notices={"reminder_days_before": [1.5]}), "reminder_days_before", id="reminders-fractional"),
    pytest.param(with_(grandfather_before=datetime(2023, 10, 1, 0, 0)), "grandfather_before",
                 id="grandfather-datetime-not-date"),
    pytest.param(with_(grandfather_before="2023-10-32"), "grandfather_before", id="grandfather-bad-date"),
    pytest.param(with_(grandfather_before="yesterday"), "grandfather_before", id="grandfather-word"),
    pytest.param(["name", "tj"], "top level", id="top-level-list"),
    pytest.param("tj", "top level", id="top-level-text"),
    pytest.param(None, "top level", id="top-level-empty-file"),
]


@pytest.mark.parametrize("data, key", BAD)
def test_every_validation_error_is_a_profile_error_naming_the_key(data: Any, key: str) -> None:
    with pytest.raises(ProfileError) as raised:
        parse_profile(data, "custom.yaml")
    message = str(raised.value)
    assert message.startswith("custom.yaml: ")
    assert key in message


def test_unknown_keys_of_mixed_types_are_a_profile_error() -> None:
    """YAML keys need not be strings (a date, a number): the error must still be a
    ProfileError naming them, as profile.py promises for every problem."""
    data: dict[Any, Any] = with_(colour="red")
    data[date(2024, 8, 28)] = "cut-off"  # as YAML reads `2024-08-28: cut-off`
    with pytest.raises(ProfileError) as raised:
        parse_profile(data, "custom.yaml")
    assert "colour" in str(raised.value) and "2024-08-28" in str(raised.value)


@pytest.mark.parametrize("text, key", [
    ("name: xx\nhome_plmns: [436-01]\ngrace: [{days: 30}]\ngrandfather_before: 2023-10-01 00:00:00\n",
     "grandfather_before"),
    ("name: xx\nhome_plmns: [436-01]\ngrace: [{until: 2024-08-27T12:00:00, days: 30}]\n", "grace rule 1: until"),
    ("name: xx\nhome_plmns: [436-01]\ngrace: [{days: 30}]\nutc_offset: +5:00\n", "utc_offset"),
    ("name: xx\nhome_plmns: [43-01]\ngrace: [{days: 30}]\n", "home_plmns"),
    ("name: xx\nhome_plmns: [436-01]\ngrace: [{days: 30}]\nroamers: {days: -3}\n", "roamers"),
    ("- name\n- xx\n", "top level"),
])
def test_file_errors_name_the_file_and_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as raised:
        load_profile(path)
    assert str(path) in str(raised.value)
    assert key in str(raised.value)


def test_a_missing_file_is_a_profile_error(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(ProfileError, match="cannot read profile") as raised:
        load_profile(path)
    assert str(path) in str(raised.value)


def test_a_directory_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile(tmp_path)


@pytest.mark.parametrize("content", [b"name: [xx\n", b"name: \xff\xfe\n", b"a: b: c\n"])
def test_an_unreadable_file_is_a_profile_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.yaml"
    path.write_bytes(content)
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile(path)


@pytest.mark.parametrize("name", ["uz", "TJ", "tj.yaml.bak", "profiles/tj"])
def test_a_name_that_is_neither_shipped_nor_a_file(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # so that no file of that name exists where the name is resolved
    with pytest.raises(ProfileError, match="no profile") as raised:
        load_profile(name)
    assert repr(name) in str(raised.value)
    assert "kg, tj" in str(raised.value)


# -- Profile methods -------------------------------------------------------------------

@pytest.mark.parametrize("imsi, local", [
    (None, True),
    ("", True),
    ("436011234567890", True),
    ("436051234567890", True),
    ("436101234567890", True),
    ("436121234567890", True),
    ("436061234567890", False),
    ("436111234567890", False),
    ("437011234567890", False),
    ("250991234567890", False),
    ("4360", False),
])
def test_is_local_tj(tj: Profile, imsi: str | None, local: bool) -> None:
    assert tj.is_local(imsi) is local


@pytest.mark.parametrize("imsi, local", [
    (None, True),
    ("", True),
    ("437011234567890", True),
    ("437051234567890", True),
    ("437091234567890", True),
    ("437021234567890", False),
    ("436011234567890", False),
])
def test_is_local_kg(kg: Profile, imsi: str | None, local: bool) -> None:
    assert kg.is_local(imsi) is local


@pytest.mark.parametrize("at, expected", [
    (datetime(2024, 8, 27, 17, 59, 59, tzinfo=UTC), date(2024, 8, 27)),
    (datetime(2024, 8, 27, 18, 0, tzinfo=UTC), date(2024, 8, 28)),
    (datetime(2024, 8, 27, 19, 0, tzinfo=UTC), date(2024, 8, 28)),
    (datetime(2024, 8, 28, 0, 30, tzinfo=timezone(timedelta(hours=6))), date(2024, 8, 28)),
    (datetime(2024, 8, 27, 23, 30, tzinfo=timezone(timedelta(hours=-5))), date(2024, 8, 28)),
])
def test_local_date_in_bishkek(kg: Profile, at: datetime, expected: date) -> None:
    assert kg.local_date(at) == expected


def test_local_date_and_midnight_in_dushanbe(tj: Profile) -> None:
    assert tj.local_date(datetime(2023, 9, 30, 18, 59, 59, tzinfo=UTC)) == date(2023, 9, 30)
    assert tj.local_date(datetime(2023, 9, 30, 19, 0, tzinfo=UTC)) == date(2023, 10, 1)
    assert tj.local_midnight(date(2023, 10, 1)) == datetime(2023, 9, 30, 19, 0, tzinfo=UTC)


def test_local_midnight_in_bishkek(kg: Profile) -> None:
    midnight = kg.local_midnight(date(2024, 8, 28))
    assert midnight == datetime(2024, 8, 27, 18, 0, tzinfo=UTC)
    assert midnight.utcoffset() == timedelta(0)
    assert kg.local_date(midnight) == date(2024, 8, 28)
    assert kg.local_date(midnight - timedelta(microseconds=1)) == date(2024, 8, 27)


@pytest.mark.parametrize("first, days", [
    (datetime(2020, 1, 1, tzinfo=UTC), 30),
    (datetime(2024, 8, 27, 0, 0, tzinfo=UTC), 30),
    (datetime(2024, 8, 27, 17, 59, 59, 999999, tzinfo=UTC), 30),
    (datetime(2024, 8, 27, 18, 0, tzinfo=UTC), 0),
    (datetime(2024, 8, 27, 19, 0, tzinfo=UTC), 0),
    (datetime(2024, 8, 28, 12, 0, tzinfo=UTC), 0),
    (datetime(2030, 1, 1, tzinfo=UTC), 0),
])
def test_grace_days_at_the_kg_boundary(kg: Profile, first: datetime, days: int) -> None:
    assert kg.grace_days(first) == days


@pytest.mark.parametrize("first", [datetime(2000, 1, 1, tzinfo=UTC), datetime(2024, 8, 28, tzinfo=UTC),
                                   datetime(2099, 12, 31, tzinfo=UTC)])
def test_grace_days_tj_is_always_30(tj: Profile, first: datetime) -> None:
    assert tj.grace_days(first) == 30


@pytest.mark.parametrize("device_type, entered", [
    ("WLAN Router", True),
    ("Modem", True),
    ("IoT Device", True),
    ("Smartphone", False),
    (" smartPHONE ", False),
    ("Mobile Phone/Feature phone", False),
    ("Portable(include PDA)", False),
    ("tablet", False),
    ("Smart Phone", False),  # a catalogue's spelling of a phone: not listed, never entered
    ("Unknown", False),
    ("", False),
    ("Feature phone", False),
    (" wearable ", True),
    ("Vehicle", True),
])
def test_auto_entered(tj: Profile, kg: Profile, device_type: str, entered: bool) -> None:
    assert tj.auto_entered(device_type) is entered
    assert kg.auto_entered(device_type) is entered


def test_no_automatic_entry_when_auto_enter_is_none() -> None:
    profile = parse_profile(BASE)
    assert profile.auto_enter == frozenset()
    assert not profile.auto_entered("WLAN Router")
