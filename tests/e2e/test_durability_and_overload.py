"""End to end, issue 12 items 2, 3 and 5, against real `eir serve` processes over loopback:

- while another process holds the registry's write lock, an answer that rests on a first
  sight waits for it to be on disk, and past ``limits.commit_timeout`` it is S13 5012 /
  MAP systemFailure, never a grey answer whose first sight could be lost; answers that
  rest on nothing unwritten go on meanwhile (the commit runs off the event loop);
- SIGKILL while the lock is held loses no first sight an answer rested on;
- past ``limits.in_progress_per_peer`` S13 answers 3004 DIAMETER_TOO_BUSY and MAP a
  P-Abort resourceLimitation at once, and answers waiting for a commit count as in progress.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from diameter.answers import result_code_of
from diameter.capabilities import LocalNode, build_cer
from diameter.constants import FLAG_E, EquipmentStatus, ResultCode
from diameter.message import Message, decode_message
from diameter.transport import connect
from sigtran import sccp, tcap
from sigtran.asp import DataReceived
from sigtran.m3ua import SI_SCCP, ProtocolData
from sigtran.map import ErrorCode
from simulator.agent_process import AgentProcess
from simulator.demo_registry import IMSI, WHITE, imei15
from simulator.mme import build_ecr
from simulator.msc import send_checkimei
from tests.e2e.test_map_agent import EIR_PC, MSC_PC, Asp, begin, udt
from tests.e2e.test_s13_agent import MME, ecr
from tests.tools import MakeAgent

OTHER_MME = LocalNode("mme02.localdomain", "localdomain", product_name="e2e-mme")


def fresh(n: int) -> str:
    """An IMEI in no list: with a local IMSI its first sight starts the grace window."""
    return f"35209900{500000 + n:06d}"


def start(make_agent: MakeAgent, limits: str) -> tuple[AgentProcess, Path]:
    """An agent with these ``limits`` on the demo registry, and the registry's file."""
    agent = make_agent(config=f"limits: {{{limits}}}\n", m3ua=True)
    return agent, agent.answer_log.parent / "registry.db"


@contextmanager
def locked(database: Path) -> Iterator[None]:
    """Another process's write transaction on the registry (readers go on: WAL)."""
    with closing(sqlite3.connect(database, isolation_level=None, timeout=10)) as conn:
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")


def sighted(database: Path, imei: str, imsi: str = IMSI) -> bool:
    with closing(sqlite3.connect(database)) as conn:
        return conn.execute("SELECT 1 FROM sighting WHERE imei = ? AND imsi = ?", (imei, imsi)).fetchone() is not None


def test_a_first_sight_the_registry_will_not_take_is_5012_and_other_answers_go_on(make_agent: MakeAgent) -> None:
    process, database = start(make_agent, "commit_timeout: 2.0")

    async def main() -> tuple[Message, bool, Message, str | None, Message]:
        first = await connect(MME, *process.address)
        other = await connect(OTHER_MME, *process.address)
        try:
            with locked(database):
                waiting = asyncio.ensure_future(first.request(ecr(fresh(1), IMSI), timeout=10))
                await asyncio.sleep(0)  # its ECR written first; whichever the agent reads first, it waits for the lock
                white = await other.request(build_ecr(OTHER_MME, WHITE, IMSI), timeout=10)
                still_waiting = not waiting.done()
                outcome = await send_checkimei(*process.m3ua_address, imei15(fresh(2)), version=2, imsi=IMSI)
                refused = await waiting
            after = await first.request(ecr(fresh(3), IMSI), timeout=10)
            return refused, still_waiting, white, outcome.error_name, after
        finally:
            await first.disconnect()
            await other.disconnect()

    try:
        refused, still_waiting, white, map_error, after = asyncio.run(main())
        assert white.value("Equipment-Status") == EquipmentStatus.WHITELISTED
        assert still_waiting  # the white answer did not wait for the locked commit
        assert result_code_of(refused) == ResultCode.DIAMETER_UNABLE_TO_COMPLY
        assert refused.find("Equipment-Status") is None
        assert map_error == "SYSTEM_FAILURE"
        assert after.value("Equipment-Status") == EquipmentStatus.GREYLISTED
        assert sighted(database, fresh(3))  # on disk before its grey answer left
    finally:
        assert process.stop() == 0  # the refused first sights were written once the lock went
    lines = {line["imei"]: line for line in process.answers() if line["rule"] == "unrecorded"}
    assert lines[fresh(1)]["result"] == 5012 and lines[fresh(2)]["result"] == ErrorCode.SYSTEM_FAILURE
    assert sighted(database, fresh(1)) and sighted(database, fresh(2))
    log = process.log()
    assert "not written (kept, retried with the next batch)" in log
    assert "answers refused as unrecorded 2" in log


def test_sigkill_while_the_registry_refuses_writes_loses_no_first_sight_an_answer_rested_on(
        make_agent: MakeAgent) -> None:
    process, database = start(make_agent, "commit_timeout: 0.5")

    async def ask_all(count: int) -> list[Message]:
        connection = await connect(MME, *process.address)
        try:
            return list(await asyncio.gather(*(connection.request(ecr(fresh(n), IMSI), timeout=10)
                                               for n in range(count))))
        finally:
            connection.abort()

    with locked(database):
        answers = asyncio.run(ask_all(200))
        process.process.kill()
        process.process.wait()
    process.stop()
    grey = [n for n, answer in enumerate(answers) if answer.find("Equipment-Status") is not None]
    refused = [n for n, answer in enumerate(answers) if result_code_of(answer) == ResultCode.DIAMETER_UNABLE_TO_COMPLY]
    assert len(grey) + len(refused) == 200
    assert [n for n in grey if not sighted(database, fresh(n))] == []
    assert refused  # the lock held: nothing could be recorded, so nothing was answered grey


def _raw_ecrs(address: tuple[str, int], requests: list[Message]) -> list[Message]:
    """CER, then every request in one write; the answers, in the order they came."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(build_cer(MME).to_bytes())
        assert result_code_of(decode_message(_read(sock))) == ResultCode.DIAMETER_SUCCESS
        for number, request in enumerate(requests, 1):
            request.hop_by_hop = request.end_to_end = number
        sock.sendall(b"".join(request.to_bytes() for request in requests))
        return [decode_message(_read(sock)) for _ in requests]


def _read(sock: socket.socket) -> bytes:
    header = sock.recv(4, socket.MSG_WAITALL)
    return header + sock.recv(int.from_bytes(header[1:4], "big") - 4, socket.MSG_WAITALL)


def test_past_the_bound_on_requests_in_progress_s13_is_3004_and_map_a_resource_limitation_abort(
        make_agent: MakeAgent) -> None:
    process, _ = start(make_agent, "in_progress_per_peer: 4, in_progress: 100")

    async def map_burst() -> list[tcap.TcMessage]:
        asp = await Asp.open(process.m3ua_address)
        try:
            for _ in range(10):
                asp.client.send_data(_map_request(begin(WHITE, 3)[1]))
            asp._flush()  # ten DATA in one write
            received: list[tcap.TcMessage] = []
            while len(received) < 10:
                received += [_tcap(event) for event in await asp.events() if isinstance(event, DataReceived)]
            return received
        finally:
            await asp.close()

    try:
        answers = _raw_ecrs(process.address, [ecr(WHITE, IMSI) for _ in range(12)])
        codes = [result_code_of(answer) for answer in answers]
        assert codes == [ResultCode.DIAMETER_SUCCESS] * 4 + [ResultCode.DIAMETER_TOO_BUSY] * 8
        assert all(answer.flags & FLAG_E for answer in answers[4:])
        assert [a.end_to_end for a in answers] == list(range(1, 13))
        again = _raw_ecrs(process.address, [ecr(WHITE, IMSI)])  # nothing left counted in progress
        assert again[0].value("Equipment-Status") == EquipmentStatus.WHITELISTED
        messages = asyncio.run(map_burst())
        kinds = [m.type for m in messages]
        assert kinds == [tcap.MessageType.END] * 4 + [tcap.MessageType.ABORT] * 6
        assert {m.abort_cause for m in messages[4:]} == {tcap.PAbortCause.RESOURCE_LIMITATION}
    finally:
        assert process.stop() == 0
    overload = [line for line in process.answers() if line["rule"] == "overload"]
    assert sorted(line["result"] for line in overload) == [-2] * 6 + [3004] * 8
    assert "as too busy 14" in process.log()


def test_answers_waiting_for_a_commit_count_as_in_progress(make_agent: MakeAgent) -> None:
    process, database = start(make_agent, "in_progress_per_peer: 3, commit_timeout: 10")

    async def main() -> tuple[list[Message], Message]:
        connection = await connect(MME, *process.address)
        try:
            with locked(database):
                waiting = [asyncio.ensure_future(connection.request(ecr(fresh(n), IMSI), timeout=20))
                           for n in range(3)]
                await asyncio.sleep(0)  # the three written first: one connection, read in order, in progress at once
                busy = await connection.request(ecr(WHITE, IMSI), timeout=10)
            return list(await asyncio.gather(*waiting)), busy
        finally:
            await connection.disconnect()

    try:
        held, busy = asyncio.run(main())
        assert result_code_of(busy) == ResultCode.DIAMETER_TOO_BUSY
        assert [a.value("Equipment-Status") for a in held] == [EquipmentStatus.GREYLISTED] * 3
        assert all(sighted(database, fresh(n)) for n in range(3))
    finally:
        assert process.stop() == 0


def _map_request(begin_bytes: bytes) -> ProtocolData:
    return ProtocolData(MSC_PC, EIR_PC, SI_SCCP, 2, 0, 5, udt(begin_bytes))


def _tcap(event: DataReceived) -> tcap.TcMessage:
    message = sccp.decode_message(event.data.user_data)
    assert isinstance(message, sccp.Udt)
    return tcap.decode(message.data)


def test_stopping_while_the_registry_refuses_writes_says_what_was_not_written_and_exits_75(
        make_agent: MakeAgent) -> None:
    """Issue 12 item 2: a clean SIGTERM with observations the registry would not take is
    not exit 0: the agent names what it could not write."""
    process, database = start(make_agent, "commit_timeout: 0.3")

    async def main() -> Message:
        connection = await connect(MME, *process.address)
        try:
            return await connection.request(ecr(fresh(7), IMSI), timeout=10)
        finally:
            await connection.disconnect()

    with locked(database):
        refused = asyncio.run(main())
        code = process.stop()
    assert result_code_of(refused) == ResultCode.DIAMETER_UNABLE_TO_COMPLY
    assert code == 75
    assert "were not written at exit: the registry refused them" in process.log()
    assert not sighted(database, fresh(7))


def test_a_fatal_signal_leaves_a_line_in_the_agents_log(make_agent: MakeAgent) -> None:
    """Seen: SIGBUS from SQLite's mapped -shm file killed the agent without a word. The
    fault handler names the signal and where each thread was."""
    import signal

    process, _ = start(make_agent, "commit_timeout: 1.0")
    process.process.send_signal(signal.SIGBUS)
    assert process.stop() == -signal.SIGBUS
    assert "Fatal Python error: Bus error" in process.log()
