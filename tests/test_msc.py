"""The MSC emulator's requests (simulator.msc) against pycrate as the reference, the MAP
load generator's pre-encoded requests against building them from scratch, its light
answer reader against the full decoders, and its hot path without sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pycrate_asn1dir.TCAP_MAPv2v3 import TCAP_MAP_Messages
from pycrate_mobile.M3UA import parse_M3UA
from pycrate_mobile.SCCP import parse_SCCP

from sigtran import ber, tcap
from sigtran import map as mapv
from sigtran.m3ua import decode_message as decode_m3ua
from sigtran.sccp import SSN_SGSN, ReturnCause
from sigtran.sccp import decode_message as decode_sccp
from simulator.load_common import LinkState, LoadStats
from simulator.load_map import MapLoadConfig, MapLoadConnection, report
from simulator.load_map_wire import RETURNED, UNDECODABLE, UNEXPECTED, AnswerReader, MapTemplates
from simulator.load_wire import imsi_at
from simulator.msc import (
    CheckImeiOutcome,
    MscIdentity,
    check_version,
    describe,
    encode_request,
    map_imei,
)
from tests import map_eir
from tests.tools import LOOPBACK

IMEI = "35209900176148"
IMEI_TBCD = bytes.fromhex("53029900711684f0")  # TS 23.003: 14 digits and the spare 0, filler F
OTID = bytes.fromhex("0a0b0c0d")
IMSI = "436011234567890"
EQUIPMENT_OID = (0, 4, 0, 0, 1, 0, 13)


# --- pycrate as the reference ------------------------------------------------------------------

def pycrate_layers(frame: bytes) -> tuple[list[Any], Any, Any]:
    """(M3UA Protocol Data fields, the SCCP message, the TCAP/MAP value) as pycrate reads them."""
    m3ua, error = parse_M3UA(frame)
    assert error == 0 and m3ua is not None
    header, parameters = m3ua.get_val()
    assert header[2:4] == [1, 1]  # class transfer, type DATA
    label = next(p[2] for p in parameters if p[0] == 0x0210)
    sccp, error = parse_SCCP(label[6])
    assert error == 0
    tcap_octets = sccp["Data"][1].get_val()
    message = TCAP_MAP_Messages.TCAP_MAP_Message
    message.from_ber(tcap_octets)
    assert message.to_ber() == tcap_octets  # nothing left unread
    return label, sccp, message.get_val()


def pycrate_invoke(value: Any) -> dict[str, Any]:
    kind, begin = value
    assert kind == "begin"
    (component,) = begin["components"]
    assert component[0] == "basicROS" and component[1][0] == "invoke"
    invoke: dict[str, Any] = component[1][1]
    return invoke


def pycrate_context(begin: dict[str, Any]) -> tuple[int, ...]:
    portion = begin["dialoguePortion"]
    assert portion["direct-reference"] == (0, 0, 17, 773, 1, 1, 1)
    kind, pdu = portion["encoding"][1][1]
    assert kind == "dialogueRequest"
    return tuple(pdu["application-context-name"])


@pytest.mark.parametrize("version", [1, 2, 3])
def test_the_request_decodes_with_pycrate(version: int) -> None:
    identity = MscIdentity(opc=301, dpc=302, routing_context=77)
    frame = encode_request(identity, OTID, map_imei(IMEI), version, sls=5)
    label, sccp, value = pycrate_layers(frame)
    assert label[:6] == [301, 302, 3, 2, 0, 5]  # OPC, DPC, SI SCCP, NI national, MP, SLS
    assert sccp["Type"].get_val() == 9  # UDT
    assert sccp["ProtocolClass"]["Class"].get_val() == 1 and sccp["ProtocolClass"]["Handling"].get_val() == 8
    called, calling = sccp["CalledPartyAddr"][1], sccp["CallingPartyAddr"][1]
    assert called["GT"].get_alt().get_addr() == "992900000009" and called["SSN"].get_val() == 9
    assert calling["GT"].get_alt().get_addr() == "992900000001" and calling["SSN"].get_val() == 8
    assert called["AddrInd"]["RoutingInd"].get_val() == 0  # routed on the global title
    assert value[1]["otid"] == OTID
    invoke = pycrate_invoke(value)
    assert invoke["invokeId"] == ("present", 1) and invoke["opcode"] == ("local", 43)
    argument = invoke["argument"][1]
    if version == 3:
        assert argument["imei"] == IMEI_TBCD
        bits, _ = argument["requestedEquipmentInfo"]
        assert bits >> (argument["requestedEquipmentInfo"][1] - 1) & 1  # equipmentStatus (bit 0) asked
        assert pycrate_context(value[1]) == (*EQUIPMENT_OID, 3)
    else:
        assert argument == IMEI_TBCD
        if version == 2:
            assert pycrate_context(value[1]) == (*EQUIPMENT_OID, 2)
        else:
            assert "dialoguePortion" not in value[1]
    routing_context = next(p for p in parse_M3UA(frame)[0].get_val()[1] if p[0] == 6)
    assert routing_context[2] == [77]


def test_no_routing_context_unless_configured() -> None:
    frame = encode_request(MscIdentity(), OTID, map_imei(IMEI), 3)
    m3ua, _ = parse_M3UA(frame)
    assert [p[0] for p in m3ua.get_val()[1]] == [0x0210]


def test_an_sgsn_calls_from_ssn_149() -> None:
    frame = encode_request(MscIdentity(calling_ssn=SSN_SGSN, calling_gt="992900000149"), OTID, map_imei(IMEI), 3)
    _, sccp, _ = pycrate_layers(frame)
    assert sccp["CallingPartyAddr"][1]["SSN"].get_val() == SSN_SGSN


@pytest.mark.parametrize("version", [1, 2])
def test_the_vendor_imsi_follows_the_imei(version: int) -> None:
    frame = encode_request(MscIdentity(), OTID, map_imei(IMEI), version, IMSI)
    sccp = decode_sccp(decode_m3ua(frame).protocol_data.user_data)  # type: ignore[union-attr]
    (invoke,) = tcap.decode(sccp.data).components
    assert isinstance(invoke, tcap.Invoke) and invoke.opcode == mapv.CHECK_IMEI
    elements = list(ber.iterate(invoke.parameter, 0, len(invoke.parameter)))
    assert [(e.tag.number, e.contents) for e in elements] == [(4, IMEI_TBCD), (4, mapv.encode_tbcd(IMSI))]
    assert mapv.encode_tbcd(IMSI) == bytes.fromhex("34061132547698f0")


@pytest.mark.parametrize(("given", "sent"), [
    ("35209900176148", "352099001761480"),  # TAC + SNR: the spare digit 0 is added
    ("352099001761481", "352099001761480"),  # the Luhn digit is not sent: the spare is 0
    ("3520990017614812", "3520990017614812"),  # an IMEISV as is
    ("3520990017614", "3520990017614"),  # 13 digits: malformed, sent as given for the agent to judge
])
def test_imei_digits_sent(given: str, sent: str) -> None:
    assert map_imei(given) == sent


@pytest.mark.parametrize("bad", ["3520990017614A", "", "35209900 76148", "३५२०९९००१७६१४८"])
def test_what_tbcd_cannot_carry_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="TBCD"):
        map_imei(bad)


def test_version_and_imsi_checks() -> None:
    with pytest.raises(ValueError, match="v1, v2 or v3"):
        check_version(4, None)
    with pytest.raises(ValueError, match="not in v3"):
        check_version(3, IMSI)
    for bad in ("43601x", "43601", "4360112345678901"):
        with pytest.raises(ValueError, match="6 to 15 digits"):
            check_version(2, bad)
    check_version(1, IMSI)


# --- pre-encoded requests ------------------------------------------------------------------------

IMEIS = ["35209900176148", "352099001761481", "3520990017614812", "3520990017614", "35209900176149"]


@pytest.mark.parametrize(("version", "imsi_prefix", "routing_context"), [
    (3, None, None), (3, None, 9), (2, None, None), (2, "43601", 4_000_000_000), (1, "43601", None), (1, None, 1),
])
def test_templates_equal_the_codec(version: int, imsi_prefix: str | None, routing_context: int | None) -> None:
    identity = MscIdentity(opc=11, dpc=12, routing_context=routing_context)
    templates = MapTemplates(identity, IMEIS, version, imsi_prefix)
    for index, imei in enumerate(IMEIS):
        imsi = None if imsi_prefix is None else imsi_at(imsi_prefix, index)
        for otid in (0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x0A0B0C0D + index):
            expected = encode_request(identity, otid.to_bytes(4, "big"), map_imei(imei), version, imsi,
                                      sls=index & 0x0F)
            assert templates.request(index, otid) == expected


def test_templates_refuse_what_cannot_be_sent() -> None:
    with pytest.raises(ValueError, match="IMEI number 2 of the list"):
        MapTemplates(MscIdentity(), ["35209900176148", "3520990017614A"], 3, None)
    with pytest.raises(ValueError, match="not in v3"):
        MapTemplates(MscIdentity(), IMEIS, 3, "43601")


# --- reading answers -------------------------------------------------------------------------------

DTID = 0x1234ABCD
DTID_OCTETS = DTID.to_bytes(4, "big")


def answers(version: int) -> list[tuple[bytes, tuple[str, int | None]]]:
    """(TCAP octets, the outcome the report counts) for each kind of answer."""
    cases: list[tuple[bytes, tuple[str, int | None]]] = [
        (map_eir.end_status(DTID_OCTETS, version, status), ("result", int(status)))
        for status in mapv.EquipmentStatus]
    cases += [(map_eir.end_error(DTID_OCTETS, version, code), (code.name, None)) for code in mapv.ErrorCode]
    cases += [
        (map_eir.end_reject(DTID_OCTETS, version), ("reject", None)),
        (map_eir.p_abort(DTID_OCTETS), ("abort", None)),
        (tcap.encode_end(DTID_OCTETS, (tcap.ReturnResult(1, mapv.CHECK_IMEI, b"\x0a\x01\x07"),), map_eir.aare(version)),
         ("bad_result", None)),  # EquipmentStatus 7 is not one of TS 29.002's (and v3 wants a SEQUENCE)
        (tcap.encode_end(DTID_OCTETS, (tcap.ReturnResult(1),), map_eir.aare(version)), ("bad_result", None)),
        (tcap.encode_end(DTID_OCTETS, (tcap.ReturnResult(1, mapv.CHECK_IMEI, b"\x30\x00"),), map_eir.aare(version)),
         ("result", None) if version == 3 else ("bad_result", None)),  # a CheckIMEI-Res without equipmentStatus
        (tcap.encode_end(DTID_OCTETS, (), map_eir.aare(version)), ("empty_end", None)),
    ]
    if version >= 2:
        cases.append((map_eir.refused(DTID_OCTETS, version), ("refused", None)))
    return cases


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("routing_context", [None, 3])
def test_the_light_reader_agrees_with_the_full_decoders(version: int, routing_context: int | None) -> None:
    identity = MscIdentity(routing_context=routing_context)
    reader = AnswerReader(version)
    for octets, expected in answers(version):
        for xudt in (False, True):
            frame = map_eir.answer_frame(identity, octets, xudt=xudt)
            assert reader.read_fully(frame) == (DTID, expected), octets.hex()
            assert reader.read(frame, 0, len(frame)) == (DTID, expected), octets.hex()
            assert reader.read(b"\0" * 8 + frame, 8, 8 + len(frame)) == (DTID, expected)  # from the memo
    assert sum(len(memo) for memo in reader.memos.values()) == len(answers(version))


def test_odd_answers_go_to_the_full_decoders() -> None:
    identity = MscIdentity()
    reader = AnswerReader(3)
    begin = tcap.decode(encode_request_tcap(identity))
    returned = map_eir.returned_frame(identity, encode_request_tcap(identity), ReturnCause.NO_TRANSLATION_FOR_ADDRESS)
    assert reader.read(returned, 0, len(returned)) == (int.from_bytes(OTID, "big"), RETURNED)
    assert begin.otid == OTID
    short_dtid = map_eir.answer_frame(identity, map_eir.end_error(b"\x01\x02", 3, 7))
    assert reader.read(short_dtid, 0, len(short_dtid)) == (None, ("UNKNOWN_EQUIPMENT", None))
    garbage = map_eir.answer_frame(identity, b"\x64\x06\x49\x04\x00\x00\x00\x01\x00")
    assert reader.read(garbage, 0, len(garbage)) == (None, UNDECODABLE)
    broken = map_eir.answer_frame(identity, b"\x64\x08\x49\x04\x00\x00\x00\x01\x6c\x05")
    assert reader.read(broken, 0, len(broken)) == (1, UNDECODABLE)  # the dtid was readable: the dialogue ends
    assert reader.read_fully(broken) == (None, UNDECODABLE)
    not_sccp = bytearray(map_eir.answer_frame(identity, map_eir.p_abort(DTID_OCTETS)))
    not_sccp[8 + 4 + 8] = 5  # SI 5: ISUP
    assert reader.read(bytes(not_sccp), 0, len(not_sccp)) == (None, UNEXPECTED)
    long_end = tcap.encode_end(DTID_OCTETS, (tcap.ReturnError(1, 34, b"\x30\x7e" + bytes(126)),))
    frame = map_eir.answer_frame(identity, long_end)
    assert reader.read(frame, 0, len(frame)) == (DTID, ("SYSTEM_FAILURE", None))


def encode_request_tcap(identity: MscIdentity) -> bytes:
    frame = encode_request(identity, OTID, map_imei(IMEI), 3)
    return decode_sccp(decode_m3ua(frame).protocol_data.user_data).data  # type: ignore[union-attr]


def test_describe_an_end_and_an_abort() -> None:
    outcome = describe(tcap.decode(map_eir.end_status(OTID, 3, mapv.EquipmentStatus.GREY_LISTED)),
                       peer="p", imei=IMEI, imei_sent=map_imei(IMEI), version=3)
    assert (outcome.status, outcome.answered_version, outcome.message) == (mapv.EquipmentStatus.GREY_LISTED, 3, "END")
    assert outcome.to_json()["status"] == "GREY_LISTED" and "  EquipmentStatus: GREY_LISTED" in outcome.lines()
    refusal = describe(tcap.decode(map_eir.refused(OTID)), peer="p", imei=IMEI, imei_sent=IMEI, version=3)
    assert refusal.result_key() == ("refused", None)
    assert refusal.abort_cause == "dialogue refused: service-user application-context-name-not-supported"
    aborted = describe(tcap.decode(map_eir.p_abort(OTID)), peer="p", imei=IMEI, imei_sent=IMEI, version=1)
    assert aborted.abort_cause == "P-Abort resource-limitation" and aborted.answered_version is None
    rejected = describe(tcap.decode(map_eir.end_reject(OTID, 2)), peer="p", imei=IMEI, imei_sent=IMEI, version=2)
    name = str(tcap.INVOKE_MISTYPED_PARAMETER)
    assert rejected.reject == name and f"  reject: {name}" in rejected.lines()


# --- the hot path, without sockets ----------------------------------------------------------------

class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _frames(stream: bytes) -> list[bytes]:
    frames = []
    while stream:
        length = int.from_bytes(stream[4:8], "big")
        frames.append(stream[:length])
        stream = stream[length:]
    return frames


def test_the_hot_path_sends_the_templates_and_counts_the_answers() -> None:
    identity = MscIdentity(routing_context=5)
    imeis = ["35209900176148", "3520990017614812", "352099001761481"]

    async def scenario() -> tuple[MapLoadConnection, list[bytes]]:
        config = MapLoadConfig(LOOPBACK, 2905, imeis, inflight=6, identity=identity, version=2)
        templates = MapTemplates(identity, imeis, 2, None)
        connection = MapLoadConnection(config, LoadStats(), templates, 1)
        transport = _Transport()
        connection.transport = transport  # type: ignore[assignment]
        connection.state = LinkState.OPEN
        connection.start(deadline_ns=2**62)
        assert connection._sweeper is not None
        connection._sweeper.cancel()
        stream = transport.written[0]
        assert len(transport.written) == 1  # the whole window in one write
        otids = sorted(connection.pending)
        for n, frame in enumerate(_frames(stream)):
            index = (7919 + n) % 3
            assert frame == templates.request(index, otids[n])
        statuses = [mapv.EquipmentStatus.WHITE_LISTED, mapv.EquipmentStatus.BLACK_LISTED]
        replies = b"".join(map_eir.answer_frame(identity, map_eir.end_status(otid.to_bytes(4, "big"), 2,
                                                                             statuses[otid % 2]))
                           for otid in otids[:4])
        replies += map_eir.answer_frame(identity, map_eir.end_error(otids[4].to_bytes(4, "big"), 2, 7))
        replies += map_eir.answer_frame(identity, map_eir.p_abort(b"\x00\x00\x00\x00"))  # not ours
        connection.running = False
        connection.data_received(replies[:50])  # cut anywhere
        connection.data_received(replies[50:])
        return connection, transport.written

    connection, _ = asyncio.run(scenario())
    stats = connection.stats
    assert stats.answers == 5 and stats.sent == 6 and len(connection.pending) == 1
    assert stats.errors["unmatched_answers"] == 1
    assert sum(stats.outcomes.values()) == 5
    assert stats.outcomes[("UNKNOWN_EQUIPMENT", None)] == 1
    result = report(stats, MapLoadConfig(LOOPBACK, 2905, imeis))
    assert set(result["by_result"]) == {"result", "UNKNOWN_EQUIPMENT"}
    assert set(result["by_status"]) <= {"WHITE_LISTED", "BLACK_LISTED", "NONE"}


def test_an_undeliverable_request_is_counted_as_returned() -> None:
    identity = MscIdentity()

    async def scenario() -> MapLoadConnection:
        config = MapLoadConfig(LOOPBACK, 2905, [IMEI], inflight=1, identity=identity)
        templates = MapTemplates(identity, [IMEI], 3, None)
        connection = MapLoadConnection(config, LoadStats(), templates, 0)
        transport = _Transport()
        connection.transport = transport  # type: ignore[assignment]
        connection.state = LinkState.OPEN
        connection.start(deadline_ns=0)
        assert connection._sweeper is not None
        connection._sweeper.cancel()
        request = decode_sccp(decode_m3ua(transport.written[0]).protocol_data.user_data)  # type: ignore[union-attr]
        connection.data_received(map_eir.returned_frame(identity, request.data, ReturnCause.SUBSYSTEM_FAILURE))
        return connection

    connection = asyncio.run(scenario())
    assert connection.stats.errors["returned"] == 1 and connection.stats.answers == 0
    assert not connection.pending and connection.drained.done()


def test_outcome_json_is_plain() -> None:
    outcome = CheckImeiOutcome("h:1", IMEI, map_imei(IMEI), 1, None, "END", status=mapv.EquipmentStatus.WHITE_LISTED,
                               result_received=True)
    assert outcome.to_json()["status"] == "WHITE_LISTED" and outcome.result_key() == ("result", 0)
