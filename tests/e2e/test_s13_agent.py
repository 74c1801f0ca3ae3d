"""End to end: a real `eir serve` process, a registry built with the `eir` CLI, and our
MME emulator over loopback TCP. Nothing of ours is mocked."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from diameter.answers import result_code_of
from diameter.avp import Avp
from diameter.capabilities import LocalNode
from diameter.constants import (
    APP_S13,
    AVP_FLAG_M,
    AVP_FLAG_V,
    VENDOR_3GPP,
    Command,
    DisconnectCause,
    EquipmentStatus,
    ResultCode,
)
from diameter.message import Message, make_message
from diameter.peer import PeerState
from diameter.transport import CapabilitiesRefused, PeerConnection, connect
from registry.profile import PROFILES
from simulator.agent_process import AgentProcess
from simulator.agent_process import run_eir as eir
from simulator.demo_registry import BLACK, GREY, OTHER_IMSI, PAIRED, PAIRED_IMSI, STOLEN, UNKNOWN, WHITE, imei15

MME = LocalNode("mme01.localdomain", "localdomain", product_name="e2e-mme")
IMSI = "436011111111111"
SESSIONS = itertools.count(1)

BOTH_DATABASES = True  # tests/e2e/conftest.py: the module runs on SQLite and on PostgreSQL


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, demo_registry: str) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path_factory.mktemp("agent"), demo_registry)
    yield process
    process.stop()


def ecr(imei: str | None, imsi: str | None = IMSI, sv: str | None = "01", extra: list[Avp] | None = None,
        meid: bytes | None = None) -> Message:
    m = make_message(Command.ME_IDENTITY_CHECK, request=True, proxiable=True, application_id=APP_S13)
    m.add("Session-Id", f"{MME.origin_host};e2e;{next(SESSIONS)}").add("Auth-Session-State", 1)
    m.add("Origin-Host", MME.origin_host).add("Origin-Realm", "localdomain").add("Destination-Realm", "localdomain")
    members: list[tuple[str, object]] = []
    if imei is not None:
        members.append(("IMEI", imei))
    if meid is not None:
        members.append(("3GPP2-MEID", meid))
    if sv is not None:
        members.append(("Software-Version", sv))
    m.avps.append(m.group("Terminal-Information", *members))
    if imsi is not None:
        m.add("User-Name", imsi)
    m.avps.extend(extra or ())
    return m


def ask(agent: AgentProcess, *requests: Message, node: LocalNode = MME) -> list[Message]:
    async def main() -> list[Message]:
        connection = await connect(node, *agent.address)
        try:
            return [await connection.request(r, timeout=5) for r in requests]
        finally:
            await connection.disconnect()
    return asyncio.run(main())


@pytest.mark.parametrize(("imei", "imsi", "status", "rule"), [
    (WHITE, IMSI, EquipmentStatus.WHITELISTED, "white-list"),
    (imei15(WHITE), IMSI, EquipmentStatus.WHITELISTED, "white-list"),
    (GREY, IMSI, EquipmentStatus.GREYLISTED, "grey-list"),
    (BLACK, IMSI, EquipmentStatus.BLACKLISTED, "black-list"),
    (STOLEN, IMSI, EquipmentStatus.BLACKLISTED, "stolen"),
    (PAIRED, PAIRED_IMSI, EquipmentStatus.WHITELISTED, "paired-match"),
    (PAIRED, OTHER_IMSI, EquipmentStatus.BLACKLISTED, "paired-mismatch"),
])
def test_each_list_is_answered_with_its_equipment_status(agent: AgentProcess, imei: str, imsi: str,
                                                          status: EquipmentStatus, rule: str) -> None:
    (answer,) = ask(agent, ecr(imei, imsi))
    assert result_code_of(answer) == ResultCode.DIAMETER_SUCCESS and answer.find("Result-Code") is not None
    assert answer.value("Equipment-Status") == status
    assert answer.value("Auth-Session-State") == 1 and answer.problems == []
    logged = agent.answer_for(str(answer.value("Session-Id")))
    assert logged is not None and logged["rule"] == rule and logged["imei"] == imei[:14]
    assert logged["status"] == status.name.lower().replace("listed", "") and logged["result"] == 2001


def test_unknown_imei_with_a_local_sim_is_grey_with_its_grace_window(agent: AgentProcess) -> None:
    (answer,) = ask(agent, ecr(UNKNOWN))
    assert result_code_of(answer) == ResultCode.DIAMETER_SUCCESS
    assert answer.value("Equipment-Status") == EquipmentStatus.GREYLISTED
    logged = agent.answer_for(str(answer.value("Session-Id")))
    assert logged is not None and logged["rule"] == "grace" and "30-day window" in logged["reason"]


def ask_with_profile(folder: Path, registry: str, setting: str, changed: str, request: Message) -> Message:
    """One request to an agent whose profile is tj with one setting changed."""
    profile = folder / "profile.yaml"
    profile.write_text((PROFILES / "tj.yaml").read_text().replace(setting, changed))
    agent = AgentProcess(folder, registry, "--profile", str(profile))
    try:
        (answer,) = ask(agent, request)
    finally:
        agent.stop()
    return answer


def test_a_profile_may_answer_unknown_tacs_with_5422_without_result_code(tmp_path: Path, demo_registry: str) -> None:
    answer = ask_with_profile(tmp_path, demo_registry, "unknown_tac: grace", "unknown_tac: unknown", ecr(UNKNOWN))
    assert answer.find("Result-Code") is None and answer.find("Equipment-Status") is None
    experimental = answer.find("Experimental-Result")
    assert experimental is not None
    assert experimental.find("Vendor-Id").value == VENDOR_3GPP  # type: ignore[union-attr]
    assert experimental.find("Experimental-Result-Code").value == 5422  # type: ignore[union-attr]
    assert answer.problems == []


@pytest.mark.parametrize(("imei", "why"), [
    (WHITE[:-1] + "A", "letters"),
    (WHITE[:13], "13 digits"),
    (WHITE + "12", "16 digits"),
])
def test_an_imei_avp_that_is_not_14_or_15_digits_gets_5004_naming_it(agent: AgentProcess, imei: str,
                                                                      why: str) -> None:
    (answer,) = ask(agent, ecr(imei))
    assert result_code_of(answer) == ResultCode.DIAMETER_INVALID_AVP_VALUE, why
    (terminal,) = answer.find("Failed-AVP").value  # type: ignore[union-attr]
    assert terminal.name == "Terminal-Information" and terminal.find("IMEI").value == imei


BAD_LUHN = WHITE + str((int(imei15(WHITE)[-1]) + 1) % 10)


def test_an_imei_with_a_wrong_check_digit_is_black_as_the_profile_says(agent: AgentProcess) -> None:
    (answer,) = ask(agent, ecr(BAD_LUHN))
    assert answer.value("Equipment-Status") == EquipmentStatus.BLACKLISTED
    logged = agent.answer_for(str(answer.value("Session-Id")))
    assert logged is not None and logged["rule"] == "invalid-imei" and "Luhn" in logged["reason"]


def test_a_profile_that_rejects_invalid_imeis_gets_5004(tmp_path: Path, demo_registry: str) -> None:
    answer = ask_with_profile(tmp_path, demo_registry, "invalid_imei: black", "invalid_imei: reject", ecr(BAD_LUHN))
    assert result_code_of(answer) == ResultCode.DIAMETER_INVALID_AVP_VALUE
    (terminal,) = answer.find("Failed-AVP").value  # type: ignore[union-attr]
    assert terminal.find("IMEI").value == BAD_LUHN


def test_malformed_requests_get_precise_answers_and_the_agent_keeps_serving(agent: AgentProcess) -> None:
    no_terminal = ecr(WHITE)
    no_terminal.avps = [a for a in no_terminal.avps if a.name != "Terminal-Information"]
    unknown_m = Avp(4242, AVP_FLAG_M | AVP_FLAG_V, VENDOR_3GPP, b"\x00\x00\x00\x01")
    answers = ask(agent, no_terminal, ecr(None, meid=b"\xa1\x00\x00\x01\x23\x45\x67"),
                  ecr(WHITE, extra=[unknown_m]), ecr(WHITE, sv="1x"), ecr(WHITE))
    codes = [result_code_of(a) for a in answers]
    assert codes == [5005, 5005, 5001, 5004, 2001]
    failed = [a.find("Failed-AVP").value[0] for a in answers[:4]]  # type: ignore[union-attr]
    assert failed[0].name == "Terminal-Information" and failed[0].data == b""  # example AVP, zero-filled
    assert failed[1].name == "Terminal-Information" and failed[1].value[0].name == "IMEI"
    assert (failed[2].code, failed[2].vendor_id) == (4242, VENDOR_3GPP)
    assert failed[3].value[0].name == "Software-Version"
    assert answers[-1].value("Equipment-Status") == EquipmentStatus.WHITELISTED
    # every answer is a line of the answer log, those the Diameter peer gave itself too (issue 12)
    sessions = [str(a.value("Session-Id")) for a in answers]
    logged = [agent.answer_for(session) for session in sessions]
    assert [line["result"] if line else None for line in logged] == codes
    assert logged[0] is not None and logged[0]["rule"] == "protocol-error" and "Terminal-Information" in \
        logged[0]["reason"]
    assert {line["interface"] for line in logged if line} == {"s13"}


def test_an_unknown_command_gets_3001_and_its_answer_log_line(agent: AgentProcess) -> None:
    unknown = make_message(Command.ME_IDENTITY_CHECK, request=True, proxiable=True, application_id=APP_S13)
    unknown.command_code = 8388650  # not a command of S13 (a vendor-specific range code)
    unknown.add("Session-Id", "mme01.localdomain;e2e;3001").add("Origin-Host", MME.origin_host)
    unknown.add("Origin-Realm", "localdomain").add("Destination-Realm", "localdomain")
    (answer,) = ask(agent, unknown)
    assert result_code_of(answer) == ResultCode.DIAMETER_COMMAND_UNSUPPORTED
    logged = agent.answer_for("mme01.localdomain;e2e;3001")
    assert logged is not None and (logged["result"], logged["rule"], logged["peer"]) == (
        3001, "protocol-error", MME.origin_host)


def test_peer_not_allowed_gets_3010(tmp_path: Path, demo_registry: str) -> None:
    guarded = AgentProcess(tmp_path, demo_registry, "--allow-peer", "mme-trusted*.localdomain")
    try:
        with pytest.raises(CapabilitiesRefused) as refused:
            ask(guarded, ecr(WHITE))
        assert refused.value.result_code == ResultCode.DIAMETER_UNKNOWN_PEER
        trusted = LocalNode("mme-trusted1.localdomain", "localdomain")
        request = ecr(WHITE)  # its Origin-Host must be the identity the peer gave in CER
        request.avps = [Avp.of(avp.definition, trusted.origin_host) if avp.name == "Origin-Host" else avp
                        for avp in request.avps]
        (answer,) = ask(guarded, request, node=trusted)
        assert answer.value("Equipment-Status") == EquipmentStatus.WHITELISTED
    finally:
        assert guarded.stop() == 0
    assert "not allowed" in guarded.log()


def test_sigterm_sends_dpr_and_exits_0(tmp_path: Path, demo_registry: str) -> None:
    process = AgentProcess(tmp_path, demo_registry)

    async def main() -> PeerConnection:
        connection = await connect(MME, *process.address)
        await connection.request(ecr(WHITE), timeout=5)
        await asyncio.to_thread(process.stop)
        await asyncio.wait_for(connection.closed, 5)
        return connection

    connection = asyncio.run(main())
    assert process.process.returncode == 0
    assert connection.peer.state is PeerState.CLOSED
    assert connection.disconnect_cause == DisconnectCause.REBOOTING


def test_cli_check_gives_the_same_decision_with_its_reason(demo_registry: str) -> None:
    result = eir(demo_registry, "check", PAIRED, "--imsi", OTHER_IMSI, "--json", check=False)
    assert result.returncode == 1, result.stderr
    decision = json.loads(result.stdout)
    assert decision["status"] == "black" and decision["rule"] == "paired-mismatch"
    assert OTHER_IMSI in decision["reason"]
    assert eir(demo_registry, "check", UNKNOWN, "--imsi", OTHER_IMSI, check=False).returncode == 2  # grey: grace
    # what the wire refuses (S13 5004, MAP unexpectedDataValue), check refuses the same way, exit 4
    for args in (["35209900176A48"], [WHITE, "--imsi", "abc"], [WHITE, "--imsi", "43601"]):
        result = eir(demo_registry, "check", *args, "--json", check=False)
        invalid = json.loads(result.stdout)
        assert (invalid["status"], invalid["rule"], result.returncode) == ("invalid", "malformed-request", 4), args
    # a well-formed IMEI with a bad check digit: the profile answers it black on the wire; check exits 4
    bad_luhn = WHITE[:14] + str((int(imei15(WHITE)[14]) + 1) % 10)
    result = eir(demo_registry, "check", bad_luhn, "--json", check=False)
    assert (json.loads(result.stdout)["status"], json.loads(result.stdout)["rule"]) == ("black", "invalid-imei")
    assert result.returncode == 4, result.stderr
