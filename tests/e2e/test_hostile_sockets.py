"""End to end, hostile peers at the socket level (issue 12, items 4, 6 and 7), each against a
real `eir serve` process over loopback sockets, with raw M3UA and Diameter octets:

- item 7: a DATA and an ASPIA in one TCP write: the association stays up, the answer is
  held while the AS is AS-PENDING and sent after the next ASPAC (RFC 4666 4.3.2), or
  discarded and counted when T(r) runs out first; never a RuntimeError.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from sigtran import map as mapv
from sigtran import sccp, tcap
from sigtran.m3ua import SI_SCCP, AsState, Kind, Message, StatusType, build_aspac, build_data, decode_message
from simulator.agent_process import AgentProcess
from simulator.demo import WHITE
from simulator.demo import build_demo_registry as build_registry

MSC_GT, EIR_GT = "992900000001", "992900000009"
MSC_PC, EIR_PC = 2, 1


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path, build_registry(tmp_path), m3ua=True)
    yield process
    process.stop()


# --- a raw M3UA peer ------------------------------------------------------------------------


class RawAsp:
    """M3UA octets over a TCP stream, every message read back decoded, nothing answered."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, address: tuple[str, int]) -> RawAsp:
        return cls(*await asyncio.open_connection(*address))

    def send(self, *messages: Message) -> None:
        self.writer.write(b"".join(m.to_bytes() for m in messages))  # one write

    async def read(self, timeout: float = 5.0) -> Message:
        header = await asyncio.wait_for(self.reader.readexactly(8), timeout)
        (length,) = struct.unpack_from(">I", header, 4)
        return decode_message(header + await asyncio.wait_for(self.reader.readexactly(length - 8), timeout))

    async def read_until(self, kind: Kind, timeout: float = 5.0) -> list[Message]:
        messages = [await self.read(timeout)]
        while messages[-1].kind is not kind:
            messages.append(await self.read(timeout))
        return messages

    async def quiet(self, seconds: float) -> bool:
        """True when nothing comes for ``seconds``."""
        try:
            await asyncio.wait_for(self.reader.read(1), seconds)
        except TimeoutError:
            return True
        return False

    async def activate(self) -> None:
        self.send(Message(Kind.ASPUP))
        await self.read_until(Kind.ASPUP_ACK)
        self.send(build_aspac())
        await self.read_until(Kind.ASPAC_ACK)
        assert (await self.read()).status == (StatusType.AS_STATE_CHANGE, AsState.AS_ACTIVE)

    def close(self) -> None:
        self.writer.close()


def check_imei(otid: bytes, imei: str = WHITE) -> Message:
    """A DATA carrying a CheckIMEI v3 Begin from the MSC to the EIR."""
    invoke = tcap.Invoke(1, mapv.CHECK_IMEI, mapv.encode_check_imei(3, mapv.CheckImeiArgument(imei + "0")))
    begin = tcap.encode_begin(otid, [invoke], tcap.DialogueRequest(mapv.equipment_context(3)))
    udt = sccp.Udt(sccp.gt_address(EIR_GT, sccp.SSN_EIR), sccp.gt_address(MSC_GT, sccp.SSN_MSC), begin, 1, False)
    return build_data(MSC_PC, EIR_PC, SI_SCCP, 2, 0, 5, udt.to_bytes())


def answered_status(message: Message, otid: bytes) -> mapv.EquipmentStatus:
    assert message.kind is Kind.DATA and message.protocol_data is not None
    answer = sccp.decode_message(message.protocol_data.user_data)
    assert isinstance(answer, sccp.Udt)
    end = tcap.decode(answer.data)
    assert end.type is tcap.MessageType.END and end.dtid == otid
    (component,) = end.components
    assert isinstance(component, tcap.ReturnResult)
    status = mapv.decode_check_imei_result(3, component.result)
    assert status is not None
    return status


# --- item 7: DATA and ASPIA in one read -------------------------------------------------------


def test_data_then_aspia_in_one_write_the_answer_follows_the_next_aspac(agent: AgentProcess) -> None:
    async def main() -> None:
        asp = await RawAsp.open(agent.m3ua_address)
        try:
            await asp.activate()
            asp.send(check_imei(b"\x00\x00\x00\x01"), Message(Kind.ASPIA))
            got = await asp.read_until(Kind.NTFY)
            assert [m.kind for m in got] == [Kind.ASPIA_ACK, Kind.NTFY]
            assert got[1].status == (StatusType.AS_STATE_CHANGE, AsState.AS_PENDING)
            assert await asp.quiet(0.3)  # no DATA to an inactive ASP
            asp.send(build_aspac())
            got = [await asp.read() for _ in range(3)]
            assert [m.kind for m in got] == [Kind.ASPAC_ACK, Kind.NTFY, Kind.DATA]
            assert answered_status(got[2], b"\x00\x00\x00\x01") == mapv.EquipmentStatus.WHITE_LISTED
            asp.send(check_imei(b"\x00\x00\x00\x02"))  # the association is up and serving
            assert answered_status(await asp.read(), b"\x00\x00\x00\x02") == mapv.EquipmentStatus.WHITE_LISTED
        finally:
            asp.close()
    asyncio.run(main())
    assert agent.stop() == 0
    log = agent.log()
    assert "cannot send DATA" not in log and "Traceback" not in log


def test_an_answer_held_past_the_recovery_timer_is_discarded_and_counted(agent: AgentProcess) -> None:
    async def main() -> None:
        asp = await RawAsp.open(agent.m3ua_address)
        try:
            await asp.activate()
            asp.send(check_imei(b"\x00\x00\x00\x03"), Message(Kind.ASPIA))
            await asp.read_until(Kind.NTFY)  # ASPIA-ACK, NTFY AS-PENDING
            ntfy = await asp.read(timeout=5)  # T(r), 2 s: AS-INACTIVE
            assert ntfy.status == (StatusType.AS_STATE_CHANGE, AsState.AS_INACTIVE)
            asp.send(build_aspac())
            got = [await asp.read(), await asp.read()]
            assert [m.kind for m in got] == [Kind.ASPAC_ACK, Kind.NTFY]
            assert await asp.quiet(0.3)  # the stale answer is not sent
            asp.send(check_imei(b"\x00\x00\x00\x04"))
            assert answered_status(await asp.read(), b"\x00\x00\x00\x04") == mapv.EquipmentStatus.WHITE_LISTED
        finally:
            asp.close()
    asyncio.run(main())
    assert agent.stop() == 0
    log = agent.log()
    assert "1 answer(s) discarded: T(r) expired" in log and "'m3ua_answers_discarded': 1" in log
    assert "Traceback" not in log
