"""End to end, the enforcement cases that were wrong (issue 11): a real `eir serve` process
under the Tajik profile, a registry built with the real `eir registry import` commands,
and the simulator's MME (S13) and MSC (MAP CheckIMEI over M3UA) over loopback sockets.

- a grey-list entry whose window is over is black, with the black notice;
- an IMEI paired to an MSISDN only matches through the operator's subscriber data;
- a query without IMSI (MAP v3) is decided with the IMSI last seen (a roamer stays one,
  a paired IMEI matches), and no notice is queued without an addressee;
- automatic entry is an allow-list of device types, and what it enters is in the registry;
- notices carry the MSISDN the subscriber data or the observations give.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from registry.imei import luhn_check_digit
from simulator.agent_process import AgentProcess, run_eir
from simulator.mme import EcrOutcome, send_ecr
from simulator.msc import CheckImeiOutcome, send_checkimei
from tests.tools import wait_until

TAC = "35209900"  # Smartphone in the catalogue below
GREY_EXPIRED = TAC + "100001"  # on the grey list, first seen with a local SIM 40 days ago
PAIRED = TAC + "100002"  # paired to an MSISDN only
ROAMED = TAC + "100003"  # seen over S13 with a roaming SIM, then asked over MAP v3
NO_IMSI = TAC + "100004"  # asked over MAP v3 only: no IMSI known
NOTICED_OBS = TAC + "100005"  # first seen 5 days ago with a SIM whose MSISDN the observations give
NOTICED_SUB = TAC + "100006"  # asked with a SIM whose MSISDN the subscriber data give
ROUTER, SMART_PHONE, UNKNOWN_TYPE = "86000001100001", "86000002100001", "86000003100001"

LOCAL, LOCAL_OBS, LOCAL_SUB = "436011000000001", "436011000000002", "436011000000003"
BOUND_SIM, OTHER_SIM, ROAMING = "436011000000004", "436011000000005", "250011000000001"
BOUND_MSISDN, OBS_MSISDN, SUB_MSISDN = "992901111111", "992902222222", "992903333333"

BOTH_DATABASES = True  # tests/e2e/conftest.py: the module runs on SQLite and on PostgreSQL


def imei15(key: str) -> str:
    return key + luhn_check_digit(key)


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, backend: str,
             registry_url_for: Callable[[str, Path], str]) -> str:
    folder = tmp_path_factory.mktemp("enforcement")
    url = registry_url_for(backend, folder)
    day = (datetime.now(UTC) - timedelta(days=40)).date().isoformat()
    recent = (datetime.now(UTC) - timedelta(days=5)).date().isoformat()
    files = {
        "tac": "tac,brand,model,device_type\n" + "".join(
            f"{tac},Acme,M{n},{kind}\n" for n, (tac, kind) in enumerate([
                (TAC, "Smartphone"), (ROUTER[:8], "WLAN Router"), (SMART_PHONE[:8], "Smart Phone"),
                (UNKNOWN_TYPE[:8], "Unknown")])),
        "observations": f"date,imei,imsi,msisdn\n{day},{imei15(GREY_EXPIRED)},{LOCAL},\n"
                        f"{recent},{imei15(NOTICED_OBS)},{LOCAL_OBS},+{OBS_MSISDN}\n",
        "grey": f"imei,reason\n{imei15(GREY_EXPIRED)},awaiting customs\n",
        "paired": f"imei,imsi,msisdn\n{imei15(PAIRED)},,{BOUND_MSISDN}\n",
        "subscribers": f"imsi,msisdn\n{BOUND_SIM},{BOUND_MSISDN}\n{LOCAL_SUB},{SUB_MSISDN}\n",
    }
    for kind, text in files.items():
        result = run_eir(url, "registry", "import", kind, write(folder, f"{kind}.csv", text), check=False)
        assert result.returncode == 0, result.stderr
    return url


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, registry: str) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path_factory.mktemp("agent"), registry, "--profile", "tj", m3ua=True)
    yield process
    assert process.stop() == 0


def s13(agent: AgentProcess, imei: str, imsi: str | None) -> EcrOutcome:
    return asyncio.run(send_ecr(*agent.address, imei, imsi=imsi))


def map_v3(agent: AgentProcess, imei: str) -> CheckImeiOutcome:
    return asyncio.run(send_checkimei(*agent.m3ua_address, imei15(imei), version=3))


def lines_of(agent: AgentProcess, imei: str, interface: str) -> list[dict[str, Any]]:
    return [line for line in agent.answers() if line["imei"] == imei and line["interface"] == interface]


def ask(agent: AgentProcess, imei: str, imsi: str | None = None, interface: str = "s13") -> tuple[Any, dict[str, Any]]:
    """Ask over S13 (with ``imsi``) or MAP v3 (no IMSI); the answer and its answer-log line."""
    before = len(lines_of(agent, imei, interface))
    answer = s13(agent, imei, imsi) if interface == "s13" else map_v3(agent, imei)
    found = wait_until(lambda: lines_of(agent, imei, interface)[before:], 5.0,  # flushed every 0.2 s
                       f"the {interface} answer log line of {imei}")
    return answer, found[-1]


def status(answer: Any) -> str:
    """WHITELISTED, GREYLISTED, BLACKLISTED for S13 and MAP alike."""
    if isinstance(answer, EcrOutcome):
        return str(answer.equipment_status)
    assert answer.status is not None, answer
    return str(answer.status.name).replace("_", "")


def notices(registry: str) -> list[dict[str, str]]:
    result = run_eir(registry, "notices", "export", "--all", "--out", "-")
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_a_grey_list_entry_past_its_window_is_black_with_the_black_notice(agent: AgentProcess, registry: str) -> None:
    answer, line = ask(agent, GREY_EXPIRED, LOCAL)
    assert status(answer) == "BLACKLISTED"
    assert line["rule"] == "grey-list-expired" and "awaiting customs" in line["reason"]
    black = [n for n in notices(registry) if n["imei"] == imei15(GREY_EXPIRED)]
    assert [(n["event"], n["imsi"]) for n in black] == [("black", LOCAL)]
    # eir check says the same, and what it said inside the window
    later = run_eir(registry, "check", GREY_EXPIRED, "--imsi", LOCAL, check=False)
    assert later.returncode == 1 and "BLACK (grey-list-expired)" in later.stdout, later.stdout
    assert "on the wire: S13 2001 BLACKLISTED; MAP EquipmentStatus BLACK_LISTED" in later.stdout
    inside = (datetime.now(UTC) - timedelta(days=20)).date().isoformat()
    earlier = run_eir(registry, "check", GREY_EXPIRED, "--imsi", LOCAL, "--at", inside, check=False)
    assert earlier.returncode == 2 and "GREY (grey-list)" in earlier.stdout, earlier.stdout


def test_an_imei_paired_to_an_msisdn_matches_through_the_subscriber_data(agent: AgentProcess, registry: str) -> None:
    answer, line = ask(agent, PAIRED, OTHER_SIM)
    assert (status(answer), line["rule"]) == ("BLACKLISTED", "paired-mismatch")
    answer, line = ask(agent, PAIRED, BOUND_SIM)
    assert (status(answer), line["rule"]) == ("WHITELISTED", "paired-match")
    assert BOUND_MSISDN in line["reason"] and "subscriber data" in line["reason"]
    # MAP v3 carries no IMSI: the one last seen (the bound SIM) decides
    answer, line = ask(agent, PAIRED, interface="map")
    assert (status(answer), line["rule"]) == ("WHITELISTED", "paired-match")
    check = run_eir(registry, "check", PAIRED, "--imsi", BOUND_SIM, check=False)
    assert check.returncode == 0 and "paired-match" in check.stdout, check.stdout


def test_a_roamer_seen_over_s13_stays_a_roamer_over_map_v3(agent: AgentProcess, registry: str) -> None:
    answer, line = ask(agent, ROAMED, ROAMING)
    assert (status(answer), line["rule"]) == ("WHITELISTED", "roamer")
    for _ in range(2):
        answer, line = ask(agent, ROAMED, interface="map")
        assert (status(answer), line["rule"]) == ("WHITELISTED", "roamer")
        assert ROAMING in line["reason"]
    assert not [n for n in notices(registry) if n["imei"] == imei15(ROAMED)]


def test_map_v3_with_no_imsi_known_queues_no_notice(agent: AgentProcess, registry: str) -> None:
    answer, line = ask(agent, NO_IMSI, interface="map")
    assert (status(answer), line["rule"]) == ("GREYLISTED", "grace")
    assert not [n for n in notices(registry) if n["imei"] == imei15(NO_IMSI)]
    # a notice has an addressee: every notice in the outbox names an IMSI or an MSISDN
    assert all(n["imsi"] or n["msisdn"] for n in notices(registry))


@pytest.mark.parametrize("imei, expected, rule", [
    (ROUTER, "WHITELISTED", "auto-entered"),
    (SMART_PHONE, "GREYLISTED", "grace"),  # a catalogue's spelling of a phone is not on the allow-list
    (UNKNOWN_TYPE, "GREYLISTED", "grace"),
])
def test_automatic_entry_is_an_allow_list_and_writes_the_registry(agent: AgentProcess, registry: str, imei: str,
                                                                  expected: str, rule: str) -> None:
    answer, line = ask(agent, imei, LOCAL)
    assert (status(answer), line["rule"]) == (expected, rule)
    show = run_eir(registry, "registry", "show", imei, check=False)
    exported = run_eir(registry, "registry", "export", "white", "--out", "-").stdout
    if rule == "auto-entered":
        assert show.returncode == 0 and "list:     white" in show.stdout and "auto-entry" in show.stdout, show.stdout
        assert imei15(imei) in exported
        # the next attach finds it on the white list
        answer, line = ask(agent, imei, LOCAL)
        assert (status(answer), line["rule"]) == ("WHITELISTED", "white-list")
    else:
        assert "not in the registry" in show.stdout and imei15(imei) not in exported


def test_notices_carry_the_msisdn_of_the_observations_or_the_subscriber_data(agent: AgentProcess,
                                                                            registry: str) -> None:
    assert status(ask(agent, NOTICED_OBS, LOCAL_OBS)[0]) == "GREYLISTED"
    assert status(ask(agent, NOTICED_SUB, LOCAL_SUB)[0]) == "GREYLISTED"
    found = {(n["imei"], n["event"]): n for n in notices(registry)}
    assert found[(imei15(NOTICED_OBS), "grey")]["msisdn"] == OBS_MSISDN
    assert found[(imei15(NOTICED_SUB), "grey")]["msisdn"] == SUB_MSISDN
    assert found[(imei15(NOTICED_SUB), "grey")]["imsi"] == LOCAL_SUB


def test_check_and_the_wire_refuse_the_same_user_name(agent: AgentProcess, registry: str) -> None:
    answer = s13(agent, TAC + "100099", "43601abc")
    assert answer.result_code == 5004 and any("User-Name" in avp for avp in answer.failed_avps), answer
    check = run_eir(registry, "check", TAC + "100099", "--imsi", "43601abc", check=False)
    assert check.returncode == 4 and "INVALID (malformed-request)" in check.stdout, check.stdout
    assert "on the wire: S13 5004 DIAMETER_INVALID_AVP_VALUE; MAP returnError unexpectedDataValue (36)" in check.stdout
