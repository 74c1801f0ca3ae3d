"""End to end, MAP, as an operator runs it: a real `eir serve --m3ua-listen` process on a
registry built with `eir registry import`, and the simulator's `eir sim checkimei` and
`eir sim load --protocol map` as real processes over loopback M3UA/TCP. Nothing is mocked."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from simulator.agent_process import EIR, AgentProcess
from simulator.demo_registry import BLACK, GREY, OTHER_IMSI, PAIRED, PAIRED_IMSI, STOLEN, WHITE, imei15

UNKNOWN_TAC_IMEI = "99999999000001"  # a TAC the catalogue lacks: the profile below answers it "unknown"
ROOT = Path(__file__).resolve().parents[2]


def sim(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EIR, "sim", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def peer(map_agent: AgentProcess) -> str:
    host, port = map_agent.m3ua_address
    return f"{host}:{port}"


def checkimei(map_agent: AgentProcess, imei: str, *args: str) -> dict[str, object]:
    run = sim("checkimei", "--peer", peer(map_agent), imei, "--json", *args)
    assert run.returncode == 0, run.stderr
    answer: dict[str, object] = json.loads(run.stdout)
    return answer


@pytest.mark.parametrize(("imei", "version", "status", "rule"), [
    (imei15(WHITE), "3", "WHITE_LISTED", "white-list"),
    (WHITE, "1", "WHITE_LISTED", "white-list"),
    (GREY, "2", "GREY_LISTED", "grey-list"),
    (BLACK, "1", "BLACK_LISTED", "black-list"),
    (STOLEN, "3", "BLACK_LISTED", "stolen"),
])
def test_checkimei_gets_each_list(map_agent: AgentProcess, imei: str, version: str, status: str, rule: str) -> None:
    answer = checkimei(map_agent, imei, "--ac-version", version)
    assert answer["status"] == status and answer["message"] == "END"
    assert answer["answered_version"] == (None if version == "1" else int(version))
    assert answer["error_code"] is None and answer["reject"] is None and answer["abort_cause"] is None
    assert answer["answered_by"] == "GT 992900000009, SSN 9"
    logged = map_agent.answer_for(str(answer["otid"]))
    assert logged is not None and logged["interface"] == "map" and logged["rule"] == rule
    assert logged["imei"] == imei[:14]


@pytest.mark.parametrize(("imsi", "status"), [(PAIRED_IMSI, "WHITE_LISTED"), (OTHER_IMSI, "BLACK_LISTED")])
def test_the_vendor_imsi_reaches_the_pairing_rule(map_agent: AgentProcess, imsi: str, status: str) -> None:
    answer = checkimei(map_agent, PAIRED, "--ac-version", "2", "--imsi", imsi)
    assert answer["status"] == status


def test_unknown_equipment_and_a_malformed_imei(map_agent: AgentProcess) -> None:
    unknown = checkimei(map_agent, UNKNOWN_TAC_IMEI)
    assert (unknown["error_code"], unknown["error_name"], unknown["status"]) == (7, "UNKNOWN_EQUIPMENT", None)
    short = checkimei(map_agent, "3520990017614")  # 7 TBCD octets where MAP's IMEI has 8
    assert short["imei_sent"] == "3520990017614" and short["reject"] is not None and short["status"] is None


def test_checkimei_prints_a_readable_answer(map_agent: AgentProcess) -> None:
    run = sim("checkimei", "--peer", peer(map_agent), BLACK, "--ac-version", "2", "--routing-context", "10")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("TCAP END from GT 992900000009, SSN 9")
    assert "answered: equipmentMngtContext-v2" in run.stdout and "EquipmentStatus: BLACK_LISTED" in run.stdout


def test_map_load_against_the_agent(map_agent: AgentProcess, tmp_path: Path) -> None:
    imeis = tmp_path / "imeis.csv"
    imeis.write_text(f"imei\n{imei15(WHITE)}\n{GREY}\n{BLACK}\n{UNKNOWN_TAC_IMEI}\n")
    run = sim("load", "--protocol", "map", "--peer", peer(map_agent), "--imeis", str(imeis), "--duration", "1",
              "--connections", "2", "--processes", "2", "--inflight", "8", "--ac-version", "2", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    answers = result["answers"]
    assert answers > 20, result
    assert result["error_total"] == 0, result["errors"]
    assert result["requests"] == answers
    assert set(result["by_status"]) == {"WHITE_LISTED", "GREY_LISTED", "BLACK_LISTED", "NONE"}
    assert set(result["by_result"]) == {"result", "UNKNOWN_EQUIPMENT"}
    assert result["by_status"]["NONE"] == result["by_result"]["UNKNOWN_EQUIPMENT"]
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["max"]


def test_map_load_prints_a_summary(map_agent: AgentProcess) -> None:
    run = sim("load", "--protocol", "map", "--peer", peer(map_agent), "--duration", "1", "--ac-version", "1")
    assert run.returncode == 0, run.stderr
    assert "(MAP CheckIMEI v1)" in run.stdout and "10000 IMEIs" in run.stdout
    # the generated IMEIs are in no list and their TAC is in no catalogue here: unknownEquipment
    assert "by status    NONE" in run.stdout and "by result    UNKNOWN_EQUIPMENT" in run.stdout, run.stdout
    assert "errors       none" in run.stdout
