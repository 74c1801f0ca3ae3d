"""The agent's MAP cores without sockets: MapAnswerer (TCAP bytes in, TCAP bytes out, the
clock passed in) over a real registry, and SccpRouter (an M3UA DATA's Protocol Data in, a
reply out). Whatever arrives, they answer or drop it and never raise: fuzzed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.map import MapAnswerer
from agent.service import EquipmentCheck, Query
from registry.decision import ListName
from registry.profile import Profile
from registry.store import Registry
from sigtran import map as mapv
from sigtran import sccp, tcap
from sigtran.m3ua import ErrorCode, Kind, ProtocolData
from sigtran.map import EquipmentStatus
from sigtran.routing import SccpRouter
from simulator.msc import MscIdentity, check_imei_begin, check_imei_udt

WHITE, BLACK, FRESH = "35209900176148", "35209900176150", "35209900999999"
OTID = bytes.fromhex("0a0b0c0d")
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
MSC = MscIdentity()
PEER = "992900000001"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry = Registry(f"sqlite:///{tmp_path_factory.mktemp('map') / 'r.db'}")
    registry.put_list(ListName.WHITE, [(WHITE, "cleared")], "test")
    registry.put_list(ListName.BLACK, [(BLACK, "stolen elsewhere")], "test")
    yield registry
    registry.close()


@pytest.fixture
def answerer(registry: Registry, tj: Profile) -> MapAnswerer:
    return MapAnswerer(EquipmentCheck(registry, tj), clock=lambda: NOW)


@pytest.fixture(scope="module")
def shared(registry: Registry, tj: Profile) -> MapAnswerer:
    """One answerer for every example of a fuzz test."""
    return MapAnswerer(EquipmentCheck(registry, tj), clock=lambda: NOW)


def ask(answerer: MapAnswerer, imei: str, version: int, imsi: str | None = None) -> tcap.TcMessage:
    answer = answerer(check_imei_begin(OTID, imei + "0", version, imsi), PEER)
    assert answer is not None
    return tcap.decode(answer)


def status(message: tcap.TcMessage, version: int) -> EquipmentStatus | None:
    (component,) = message.components
    assert isinstance(component, tcap.ReturnResult) and component.opcode == mapv.CHECK_IMEI
    return mapv.decode_check_imei_result(version, component.result)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_each_version_is_answered_in_its_own_dialogue(answerer: MapAnswerer, version: int) -> None:
    for imei, expected in ((WHITE, EquipmentStatus.WHITE_LISTED), (BLACK, EquipmentStatus.BLACK_LISTED),
                           (FRESH, EquipmentStatus.GREY_LISTED)):
        message = ask(answerer, imei, version)
        assert message.type is tcap.MessageType.END and message.dtid == OTID
        assert status(message, version) is expected
        expected_dialogue = None if version == 1 else tcap.DialogueResponse(mapv.equipment_context(version))
        assert message.dialogue == expected_dialogue
    assert answerer.counters == {"white": 1, "black": 1, "grey": 1}


def test_the_clock_passed_in_dates_the_query(registry: Registry, tj: Profile) -> None:
    seen: list[Query] = []

    class Recording(EquipmentCheck):
        def record(self, query: Query):  # type: ignore[no-untyped-def]
            seen.append(query)
            return super().record(query)

    answerer = MapAnswerer(Recording(registry, tj), clock=lambda: NOW)
    ask(answerer, WHITE, 2, imsi="436011234567890")
    (query,) = seen
    assert (query.imei, query.at, query.imsi, str(query.interface)) == (WHITE, NOW, "436011234567890", "map")


def test_a_failing_decision_is_system_failure_and_the_next_is_answered(registry: Registry, tj: Profile) -> None:
    class Broken(EquipmentCheck):
        def record(self, query: Query):  # type: ignore[no-untyped-def]
            if query.imei == BLACK:
                raise RuntimeError("database is locked")
            return super().record(query)

    answerer = MapAnswerer(Broken(registry, tj), clock=lambda: NOW)
    (error,) = ask(answerer, BLACK, 3).components
    assert error == tcap.ReturnError(1, mapv.ErrorCode.SYSTEM_FAILURE)
    assert status(ask(answerer, WHITE, 3), 3) is EquipmentStatus.WHITE_LISTED
    assert answerer.counters["system_failure"] == 1


def test_an_imei_of_eleven_digits_is_unexpected_data_value_one_of_seven_octets_mistyped(
        answerer: MapAnswerer) -> None:
    eleven = tcap.encode_begin(OTID, [tcap.Invoke(1, mapv.CHECK_IMEI, bytes.fromhex("04085302990071ffffff"))])
    (error,) = tcap.decode(answerer(eleven, PEER) or b"").components
    assert error == tcap.ReturnError(1, mapv.ErrorCode.UNEXPECTED_DATA_VALUE)
    assert answerer.counters["bad_input.argument"] == 1
    seven_octets = tcap.encode_begin(OTID, [tcap.Invoke(2, mapv.CHECK_IMEI, bytes.fromhex("040753029900711684"))])
    (reject,) = tcap.decode(answerer(seven_octets, PEER) or b"").components
    assert reject == tcap.Reject(2, tcap.INVOKE_MISTYPED_PARAMETER)


VALID_BEGINS = [check_imei_begin(otid, imei, version, imsi)
                for version in (1, 2, 3) for otid in (b"\x01", OTID)
                for imei, imsi in ((WHITE + "0", None), (BLACK + "17", None), (FRESH + "0", "436011234567890"))
                if imsi is None or version < 3]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid Begin with a few octets changed, then cut short (or not)."""
    wire = bytearray(draw(st.sampled_from(VALID_BEGINS)))
    for position, value in draw(st.lists(st.tuples(st.integers(0, len(wire) - 1), st.integers(0, 255)),
                                         min_size=1, max_size=3)):
        wire[position] = value
    return bytes(wire[:draw(st.integers(1, len(wire)))])


@pytest.mark.fuzz
@given(st.one_of(st.binary(max_size=80), mutated()))
def test_fuzz_whatever_arrives_is_answered_with_end_or_abort_or_dropped(shared: MapAnswerer, data: bytes) -> None:
    answer = shared(data, PEER)
    if answer is not None:
        message = tcap.decode(answer)
        assert message.type in (tcap.MessageType.END, tcap.MessageType.ABORT)
        assert message.dtid is not None and data.find(message.dtid) >= 0


# --- SccpRouter ----------------------------------------------------------------------------


@pytest.fixture
def router(answerer: MapAnswerer) -> SccpRouter:
    return SccpRouter(answerer, point_code=1, global_title="992900000009")


def data_for(udt: bytes, *, si: int = 3, dpc: int = 1) -> ProtocolData:
    return ProtocolData(MSC.opc, dpc, si, MSC.network_indicator, 0, 5, udt)


def test_the_answer_goes_back_to_the_calling_address_from_our_gt(router: SccpRouter) -> None:
    request = data_for(check_imei_udt(MSC, check_imei_begin(OTID, WHITE + "0", 3)))
    reply = router.route(request, 100, "test")
    assert reply is not None and reply.data is not None and reply.message is None
    assert (reply.data.opc, reply.data.dpc, reply.data.sls) == (MSC.dpc, MSC.opc, 5)
    answer = sccp.decode_message(reply.data.user_data)
    assert isinstance(answer, sccp.Udt)
    assert answer.called == MSC.calling() and answer.calling == sccp.gt_address("992900000009", 9)
    assert status(tcap.decode(answer.data), 3) is EquipmentStatus.WHITE_LISTED


def test_mtp3_and_sccp_trouble_gets_dupu_duna_err_or_udts(router: SccpRouter) -> None:
    udt = check_imei_udt(MSC, check_imei_begin(OTID, WHITE + "0", 3))
    kinds = {name: router.route(data, None, "test") for name, data in {
        "dupu": data_for(udt, si=5), "duna": data_for(udt, dpc=7), "err": data_for(b"\x09\x80garbage")}.items()}
    assert {name: reply.message.kind for name, reply in kinds.items() if reply and reply.message} == {
        "dupu": Kind.DUPU, "duna": Kind.DUNA, "err": Kind.ERR}
    err = kinds["err"]
    assert err is not None and err.message is not None
    assert err.message.error_code == ErrorCode.INVALID_PARAMETER_VALUE
    to_msc = MscIdentity(called_ssn=8)
    reply = router.route(data_for(check_imei_udt(to_msc, check_imei_begin(OTID, WHITE + "0", 3))), None, "test")
    assert reply is not None and reply.data is not None
    returned = sccp.decode_message(reply.data.user_data)
    assert isinstance(returned, sccp.Udts) and returned.return_cause == sccp.ReturnCause.UNEQUIPPED_USER
    assert router.counters == {"bad_input.user_part": 1, "bad_input.point_code": 1, "bad_input.sccp": 1,
                               "bad_input.sccp_undeliverable": 1}


@pytest.mark.fuzz
@given(st.binary(max_size=120))
def test_fuzz_any_sccp_user_data_gets_a_reply_or_nothing(shared: MapAnswerer, user_data: bytes) -> None:
    reply = SccpRouter(shared, 1).route(data_for(user_data), None, "fuzz")
    if reply is not None:
        assert (reply.data is None) != (reply.message is None)
        if reply.data is not None:
            sccp.decode_message(reply.data.user_data)
