"""End to end, a core-network node under faults and misbehaving peers (issue 12), each
against a real `eir serve` process over loopback sockets:

- one failure boundary per interface: when the decision fails (the registry's equipment
  table renamed away under the running agent, so every lookup raises), S13 answers 5012
  DIAMETER_UNABLE_TO_COMPLY and MAP systemFailure, the connection and the association stay
  up, the failures are counted and logged at most ten times a second, and answers come
  back as soon as the registry does;
- duplicates are known by the request's Origin-Host and End-to-End id, not the peer's;
- a peer that sent DPR is Closing: its requests get 3002 and it is closed if it stays.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from diameter.answers import result_code_of
from diameter.constants import EquipmentStatus, ResultCode
from diameter.transport import connect
from simulator.agent_process import AgentProcess
from simulator.demo_registry import IMSI, WHITE, imei15
from simulator.msc import send_checkimei
from tests.e2e.test_s13_agent import MME, ecr
from tests.tools import MakeAgent


@pytest.fixture
def agent(make_agent: MakeAgent) -> tuple[AgentProcess, Path]:
    """An agent on the demo registry, and the registry's file."""
    process = make_agent(m3ua=True)
    return process, process.answer_log.parent / "registry.db"


def rename(database: Path, old: str, new: str) -> None:
    with closing(sqlite3.connect(database)) as conn:
        conn.execute(f"ALTER TABLE {old} RENAME TO {new}")
        conn.commit()


def test_a_failing_decision_is_5012_on_s13_and_system_failure_on_map(agent: tuple[AgentProcess, Path]) -> None:
    process, database = agent

    async def main() -> tuple[list[int], list[int]]:
        connection = await connect(MME, *process.address)
        try:
            before = [result_code_of(await connection.request(ecr(WHITE, IMSI), timeout=5))]
            rename(database, "equipment", "equipment_away")
            await asyncio.sleep(0.1)  # the agent's read snapshot lasts 10 ms: ten times that, no event tells
            failed = [result_code_of(await connection.request(ecr(WHITE, IMSI), timeout=5)) for _ in range(40)]
            outcome = await send_checkimei(*process.m3ua_address, imei15(WHITE), version=3)
            assert outcome.error_name == "SYSTEM_FAILURE", outcome
            rename(database, "equipment_away", "equipment")
            await asyncio.sleep(0.1)  # the same: a probe would add to the counters asserted below
            answer = await connection.request(ecr(WHITE, IMSI), timeout=5)  # the same connection, still up
            assert answer.value("Equipment-Status") == EquipmentStatus.WHITELISTED
            return [*before, result_code_of(answer)], failed
        finally:
            await connection.disconnect()

    worked, failed = asyncio.run(main())
    assert worked == [ResultCode.DIAMETER_SUCCESS, ResultCode.DIAMETER_SUCCESS]
    assert failed == [ResultCode.DIAMETER_UNABLE_TO_COMPLY] * 40
    assert process.stop() == 0
    log = process.log()
    lines = [line for line in log.splitlines() if "the decision failed" in line]
    assert 1 <= len(lines) <= 11, lines  # 41 failures, at most ten lines a second
    assert "answered 5012" in lines[0] and "Traceback" not in log
    assert "'system_failure': 40" in log and "'bad_input.decision': 40" in log  # S13's counters at exit
    logged = [line for line in process.answers() if line["rule"] == "system-failure"]
    assert len(logged) == 41 and {line["result"] for line in logged} == {5012, 34}


def test_a_relays_t_flagged_request_of_another_origin_is_not_given_a_cached_answer(
        agent: tuple[AgentProcess, Path]) -> None:
    """Issue 12, item 8, over a real socket: behind a DRA, MME Y's retransmission that
    reuses MME X's End-to-End id gets its own answer (its Session-Id), X's gets X's."""
    from diameter.capabilities import LocalNode
    from diameter.constants import APP_S13, FLAG_T, Command
    from diameter.message import Message, make_message
    from simulator.demo_registry import BLACK

    process, _ = agent
    dra = LocalNode("dra.localdomain", "localdomain", product_name="e2e-dra")

    def relayed(origin: str, imei: str, session: str, retransmitted: bool = False) -> Message:
        request = make_message(Command.ME_IDENTITY_CHECK, request=True, proxiable=True, application_id=APP_S13)
        request.add("Session-Id", f"{origin};{session}").add("Auth-Session-State", 1)
        request.add("Origin-Host", origin).add("Origin-Realm", "localdomain").add("Destination-Realm", "localdomain")
        request.avps.append(request.group("Terminal-Information", ("IMEI", imei)))
        request.add("User-Name", IMSI).add("Route-Record", origin)  # the DRA names the MME it got it from
        request.end_to_end = 0x00C0FFEE
        if retransmitted:
            request.flags |= FLAG_T
        return request

    async def main() -> list[tuple[str, int]]:
        connection = await connect(dra, *process.address)
        try:
            answers = [await connection.request(relayed("mme-x.localdomain", BLACK, "x"), timeout=5),
                       await connection.request(relayed("mme-y.localdomain", WHITE, "y", True), timeout=5),
                       await connection.request(relayed("mme-x.localdomain", BLACK, "x", True), timeout=5)]
        finally:
            await connection.disconnect()
        return [(str(a.value("Session-Id")), int(a.value("Equipment-Status"))) for a in answers]

    assert asyncio.run(main()) == [("mme-x.localdomain;x", EquipmentStatus.BLACKLISTED),
                                   ("mme-y.localdomain;y", EquipmentStatus.WHITELISTED),
                                   ("mme-x.localdomain;x", EquipmentStatus.BLACKLISTED)]


def test_a_peer_that_sent_dpr_and_stays_is_answered_3002_then_closed(agent: tuple[AgentProcess, Path]) -> None:
    """Issue 12, item 9: RFC 6733 5.6, after DPR/DPA the peer is Closing; an ECR it still
    sends is not served, and the agent closes the connection when the peer does not."""
    import socket
    import time

    from diameter.capabilities import build_cer
    from diameter.constants import APP_COMMON, Command
    from diameter.message import decode_message, make_message

    process, _ = agent

    def read_message(sock: socket.socket) -> bytes:
        header = sock.recv(4, socket.MSG_WAITALL)
        length = int.from_bytes(header[1:4], "big")
        return header + sock.recv(length - 4, socket.MSG_WAITALL)

    with socket.create_connection(process.address, timeout=10) as sock:
        sock.sendall(build_cer(MME).to_bytes())
        assert result_code_of(decode_message(read_message(sock))) == ResultCode.DIAMETER_SUCCESS
        dpr = make_message(Command.DISCONNECT_PEER, request=True, application_id=APP_COMMON)
        dpr.add("Origin-Host", MME.origin_host).add("Origin-Realm", MME.origin_realm).add("Disconnect-Cause", 2)
        dpr.hop_by_hop, dpr.end_to_end = 1, 1
        sock.sendall(dpr.to_bytes())
        assert result_code_of(decode_message(read_message(sock))) == ResultCode.DIAMETER_SUCCESS  # DPA
        request = ecr(WHITE, IMSI)
        request.hop_by_hop, request.end_to_end = 2, 2
        sock.sendall(request.to_bytes())
        answer = decode_message(read_message(sock))
        assert result_code_of(answer) == ResultCode.DIAMETER_UNABLE_TO_DELIVER and answer.find("Equipment-Status") \
            is None
        started = time.monotonic()
        assert sock.recv(1) == b""  # the agent closes the connection itself
        assert time.monotonic() - started < 9
    assert "did not close the connection" in process.log()
