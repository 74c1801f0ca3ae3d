"""End to end, MAP: a real `eir serve --m3ua-listen` process, a registry built with the
`eir` CLI, and an ASP over loopback TCP speaking M3UA, SCCP and TCAP built with our sans-I/O
codecs (their bytes are checked against pycrate in the unit tests). Nothing of ours is
mocked: every answer below crossed the agent's real sockets, decision and registry."""

from __future__ import annotations

import asyncio
import itertools
import struct

import pytest
from sqlalchemy import text

from registry.store import Registry
from sigtran import map as mapv
from sigtran import sccp, tcap
from sigtran.asp import AspActive, AspClient, ClientSettings, DataReceived, ErrorReceived, Event
from sigtran.m3ua import SI_SCCP, ErrorCode, Kind, ProtocolData, Tag, build_data, decode_message
from simulator.agent_process import AgentProcess
from simulator.demo_registry import BLACK, GREY, IMSI, STOLEN, WHITE, imei15
from simulator.mme import send_ecr
from tests.tools import wait_until

MSC_GT, EIR_GT = "992900000001", "992900000009"
MSC_PC, EIR_PC = 2, 1
BOTH_DATABASES = True  # tests/e2e/conftest.py: the module runs on SQLite and on PostgreSQL
UNKNOWN_TAC_IMEI = "99999999000001"  # a TAC the catalogue lacks: the test profile answers it "unknown"
OTIDS = itertools.count(0x1000)
WHITE_LISTED, BLACK_LISTED, GREY_LISTED = (mapv.EquipmentStatus.WHITE_LISTED, mapv.EquipmentStatus.BLACK_LISTED,
                                           mapv.EquipmentStatus.GREY_LISTED)


# --- a plain ASP over asyncio streams ---------------------------------------------------------


class Asp:
    """An MSC's M3UA association: our AspClient over a TCP stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.client = AspClient(ClientSettings(routing_contexts=()))
        self.loop = asyncio.get_running_loop()

    @classmethod
    async def open(cls, address: tuple[str, int]) -> Asp:
        asp = cls(*await asyncio.open_connection(*address))
        asp.client.connection_made(asp.loop.time())
        asp._flush()
        while not any(isinstance(e, AspActive) for e in await asp.events()):
            pass
        return asp

    def _flush(self) -> None:
        self.writer.write(self.client.data_to_send())

    async def events(self, timeout: float = 5.0) -> list[Event]:
        data = await asyncio.wait_for(self.reader.read(65536), timeout)
        if not data:
            raise ConnectionError("the agent closed the connection")
        events = self.client.receive_data(data, self.loop.time())
        self._flush()
        return events

    async def ask(self, sccp_bytes: bytes, dpc: int = EIR_PC, si: int = SI_SCCP) -> Event:
        self.client.send_data(ProtocolData(MSC_PC, dpc, si, 2, 0, 5, sccp_bytes))
        self._flush()
        return await self.next_event()

    async def raw(self, data: bytes) -> list[bytes]:
        """Send octets as they are; the M3UA messages that come back, undecoded."""
        self.writer.write(data)
        reply = await asyncio.wait_for(self.reader.read(65536), 5)
        return _frames(reply)

    async def next_event(self) -> Event:
        while True:
            events = [e for e in await self.events() if isinstance(e, DataReceived | ErrorReceived)]
            if events:
                return events[0]

    async def close(self) -> None:
        self.writer.close()


def _frames(data: bytes) -> list[bytes]:
    frames = []
    while data:
        (length,) = struct.unpack_from(">I", data, 4)
        frames.append(data[:length])
        data = data[length:]
    return frames


def udt(payload: bytes, ssn: int = sccp.SSN_EIR, return_on_error: bool = False) -> bytes:
    return sccp.Udt(sccp.gt_address(EIR_GT, ssn), sccp.gt_address(MSC_GT, sccp.SSN_MSC), payload, 1,
                    return_on_error).to_bytes()


def begin(imei: str, version: int, imsi: str | None = None, otid: bytes | None = None, opcode: int = mapv.CHECK_IMEI,
          parameter: bytes | None = None, context: str | None = None) -> tuple[bytes, bytes]:
    otid = otid or next(OTIDS).to_bytes(4, "big")
    if parameter is None:
        parameter = mapv.encode_check_imei(version, mapv.CheckImeiArgument(imei + "0", imsi))
    name = context or (mapv.equipment_context(version) if version > 1 else None)
    dialogue = tcap.DialogueRequest(name) if name else None
    return otid, tcap.encode_begin(otid, [tcap.Invoke(1, opcode, parameter)], dialogue)


def end_of(event: Event, otid: bytes) -> tcap.TcMessage:
    assert isinstance(event, DataReceived), event
    answer = sccp.decode_message(event.data.user_data)
    assert isinstance(answer, sccp.Udt) and answer.called.digits == MSC_GT and answer.called.ssn == sccp.SSN_MSC
    assert answer.calling.ssn == sccp.SSN_EIR
    assert (event.data.opc, event.data.dpc) == (EIR_PC, MSC_PC)
    message = tcap.decode(answer.data)
    assert message.dtid == otid
    return message


def run(map_agent: AgentProcess, *steps: tuple[bytes, int] | bytes) -> list[Event]:
    """Each step is an SCCP message (to the EIR's point code) or (SCCP, DPC); the events back."""
    async def main() -> list[Event]:
        asp = await Asp.open(map_agent.m3ua_address)
        try:
            return [await asp.ask(*(step if isinstance(step, tuple) else (step,))) for step in steps]
        finally:
            await asp.close()
    return asyncio.run(main())


def check_imei(map_agent: AgentProcess, imei: str, version: int, imsi: str | None = None) -> tcap.TcMessage:
    otid, tc = begin(imei, version, imsi)
    (event,) = run(map_agent, udt(tc))
    return end_of(event, otid)


def status_of(end: tcap.TcMessage, version: int) -> mapv.EquipmentStatus | int:
    assert end.type is tcap.MessageType.END
    (component,) = end.components
    if isinstance(component, tcap.ReturnError):
        return component.error_code
    assert isinstance(component, tcap.ReturnResult) and component.opcode == mapv.CHECK_IMEI
    status = mapv.decode_check_imei_result(version, component.result)
    assert status is not None
    return status


# --- the answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize(("imei", "expected"), [
    (WHITE, WHITE_LISTED), (GREY, GREY_LISTED), (BLACK, BLACK_LISTED), (STOLEN, BLACK_LISTED),
    (UNKNOWN_TAC_IMEI, mapv.ErrorCode.UNKNOWN_EQUIPMENT),
])
def test_each_status_in_each_version(map_agent: AgentProcess, version: int, imei: str,
                                     expected: mapv.EquipmentStatus | int) -> None:
    end = check_imei(map_agent, imei, version)
    assert status_of(end, version) == expected
    if version == 1:
        assert end.dialogue is None
    else:
        assert end.dialogue == tcap.DialogueResponse(mapv.equipment_context(version))


def test_the_same_imei_gets_the_same_status_over_s13_and_map(map_agent: AgentProcess) -> None:
    s13_status = {"WHITELISTED": WHITE_LISTED, "BLACKLISTED": BLACK_LISTED, "GREYLISTED": GREY_LISTED}
    for imei in (imei15(WHITE), GREY, BLACK, STOLEN):
        outcome = asyncio.run(send_ecr(*map_agent.address, imei, imsi=IMSI))
        for version in (1, 2, 3):
            expected = s13_status[str(outcome.equipment_status)]
            assert status_of(check_imei(map_agent, imei[:14], version), version) == expected


def test_answers_are_logged_and_the_vendor_imsi_reaches_the_decision(map_agent: AgentProcess) -> None:
    otid, tc = begin(WHITE, 2, IMSI)
    (event,) = run(map_agent, udt(tc))
    assert status_of(end_of(event, otid), 2) == WHITE_LISTED
    line = map_agent.answer_for(otid.hex())
    assert line is not None and line["interface"] == "map" and line["peer"] == MSC_GT
    assert line["imei"] == WHITE and line["imsi"] == IMSI and line["rule"] == "white-list" and line["result"] == 0


def test_the_sighting_records_the_map_interface(map_agent: AgentProcess) -> None:
    imsi = "436019999900001"  # a pair no other test uses: its first sight is written now
    otid, tc = begin(GREY, 1, imsi)
    (event,) = run(map_agent, udt(tc))
    assert status_of(end_of(event, otid), 1) == GREY_LISTED

    def sighting() -> list[str]:
        with Registry(map_agent.registry) as registry, registry.engine.connect() as connection:
            rows = connection.execute(text("SELECT interface FROM sighting WHERE imei = :imei AND imsi = :imsi"),
                                      {"imei": GREY, "imsi": imsi})
            return [row[0] for row in rows]
    assert wait_until(sighting, 5.0, "the first sight written") == ["map"]


# --- bad input: an answer on the wire, and the agent keeps serving ------------------------


def test_malformed_tcap_and_map_are_rejected_or_aborted(map_agent: AgentProcess) -> None:
    otid_bad_op, bad_op = begin(WHITE, 3, opcode=44)
    otid_mistyped, mistyped = begin(WHITE, 3, parameter=bytes.fromhex("0401ff"))
    otid_missing, missing = begin(WHITE, 2, parameter=b"")
    otid_digits, digits = begin(WHITE, 2, parameter=bytes.fromhex("0408") + bytes.fromhex("5302990071168AF0"))
    otid_context, context = begin(WHITE, 3, context="0.4.0.0.1.0.13.4")
    otid_garbled = b"\x00\x00\x77\x77"
    garbled = bytes.fromhex("6206480400007777") + bytes.fromhex("6c03a101")  # components cut short
    events = run(map_agent, udt(bad_op), udt(mistyped), udt(missing), udt(digits), udt(context), udt(garbled))
    (reject,) = end_of(events[0], otid_bad_op).components
    assert reject == tcap.Reject(1, tcap.INVOKE_UNRECOGNIZED_OPERATION)
    (reject,) = end_of(events[1], otid_mistyped).components
    assert reject == tcap.Reject(1, tcap.INVOKE_MISTYPED_PARAMETER)
    assert status_of(end_of(events[2], otid_missing), 2) == mapv.ErrorCode.DATA_MISSING
    assert status_of(end_of(events[3], otid_digits), 2) == mapv.ErrorCode.UNEXPECTED_DATA_VALUE
    abort = end_of(events[4], otid_context)
    assert abort.type is tcap.MessageType.ABORT
    assert abort.dialogue == tcap.DialogueResponse(mapv.equipment_context(3), tcap.AssociateResult.REJECT_PERMANENT,
                                                   tcap.DiagnosticUser.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED)
    answered = end_of(events[5], otid_garbled)
    assert answered.type in (tcap.MessageType.ABORT, tcap.MessageType.END)
    if answered.type is tcap.MessageType.END:  # a badly structured component is rejected
        assert all(isinstance(c, tcap.Reject) for c in answered.components)
    assert status_of(check_imei(map_agent, WHITE, 3), 3) == WHITE_LISTED


def test_an_unreadable_transaction_portion_gets_a_p_abort(map_agent: AgentProcess) -> None:
    otid = b"\x01\x02\x03\x04"
    no_components_tag = bytes.fromhex("6209480401020304") + bytes.fromhex("0a0100")  # an ENUMERATED where 6B/6C go
    (event,) = run(map_agent, udt(no_components_tag))
    abort = end_of(event, otid)
    assert abort.type is tcap.MessageType.ABORT and abort.abort_cause is not None


def test_sccp_undeliverable_returns_a_udts_and_garbage_gets_m3ua_err(map_agent: AgentProcess) -> None:
    _, tc = begin(WHITE, 3)
    other_subsystem = udt(tc, ssn=sccp.SSN_HLR, return_on_error=True)
    events = run(map_agent, other_subsystem, b"\x09\x81\x03\x00")
    assert isinstance(events[0], DataReceived)
    returned = sccp.decode_message(events[0].data.user_data)
    assert isinstance(returned, sccp.Udts) and returned.return_cause == sccp.ReturnCause.UNEQUIPPED_USER
    assert returned.data == tc
    assert isinstance(events[1], ErrorReceived) and events[1].code == ErrorCode.INVALID_PARAMETER_VALUE
    assert status_of(check_imei(map_agent, WHITE, 1), 1) == WHITE_LISTED


def test_malformed_m3ua_gets_err_and_the_association_stays_up(map_agent: AgentProcess) -> None:
    async def main() -> None:
        asp = await Asp.open(map_agent.m3ua_address)
        try:
            unknown_class = bytes([1, 0, 9, 1, 0, 0, 0, 8])
            (err,) = [decode_message(f) for f in await asp.raw(unknown_class)]
            assert err.kind is Kind.ERR and err.error_code == ErrorCode.UNSUPPORTED_MESSAGE_CLASS
            data_without_payload = bytes([1, 0, 1, 1, 0, 0, 0, 8])
            (err,) = [decode_message(f) for f in await asp.raw(data_without_payload)]
            assert err.kind is Kind.ERR and err.error_code == ErrorCode.MISSING_PARAMETER
            not_sccp = await asp.raw(build_data(MSC_PC, EIR_PC, 5, 2, 0, 1, b"\x01\x02").to_bytes())
            (dupu,) = [decode_message(f) for f in not_sccp]
            assert dupu.kind is Kind.DUPU and dupu.get(Tag.USER_CAUSE) == struct.pack(">HH", 2, 5)
            otid, tc = begin(GREY, 3)
            assert status_of(end_of(await asp.ask(udt(tc)), otid), 3) == GREY_LISTED
        finally:
            await asp.close()
    asyncio.run(main())


def test_data_before_the_asp_is_active_gets_err_unexpected_message(map_agent: AgentProcess) -> None:
    async def main() -> None:
        reader, writer = await asyncio.open_connection(*map_agent.m3ua_address)
        try:
            _, tc = begin(WHITE, 3)
            writer.write(build_data(MSC_PC, EIR_PC, SI_SCCP, 2, 0, 1, udt(tc)).to_bytes())
            err = decode_message(await asyncio.wait_for(reader.read(65536), 5))
            assert err.kind is Kind.ERR and err.error_code == ErrorCode.UNEXPECTED_MESSAGE
        finally:
            writer.close()
    asyncio.run(main())


def test_the_agent_is_still_answering_after_all_that(map_agent: AgentProcess) -> None:
    assert status_of(check_imei(map_agent, BLACK, 2), 2) == BLACK_LISTED
    log = map_agent.log()
    assert "M3UA" in log and "Traceback" not in log
