"""TCAP (sigtran/tcap.py): byte-for-byte agreement with pycrate's TCAP-MAP-Message
(pycrate_asn1dir.TCAP_MAPv2v3) built from the same values, for CheckIMEI dialogues of MAP
v1, v2 and v3 (Begin; End with each result, each error and rejects; P-Abort and U-Abort),
each side decoding the other's octets to the same values, also for random dialogues. The
decoding rules and fuzzing are in test_tcap_decoding.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrate_asn1dir import TCAP_MAPv2v3

from sigtran import map as mapv
from sigtran.map import CHECK_IMEI, EquipmentStatus, ErrorCode
from sigtran.tcap import (
    GENERAL_BADLY_STRUCTURED_COMPONENT,
    INVOKE_MISTYPED_PARAMETER,
    INVOKE_UNRECOGNIZED_OPERATION,
    AbortSource,
    AssociateResult,
    Component,
    DiagnosticProvider,
    DiagnosticUser,
    DialogueAbort,
    DialogueRequest,
    DialogueResponse,
    Invoke,
    MessageType,
    PAbortCause,
    Problem,
    Reject,
    ReturnError,
    ReturnResult,
    TcMessage,
    decode,
    encode_abort,
    encode_begin,
    encode_continue,
    encode_end,
)
from tests.tcap_samples import DTID, IMEI, OTID, VERSIONS, check_imei, request, response, result

PROPERTY = settings(max_examples=max(100, settings.default.max_examples // 20))

PYCRATE = TCAP_MAPv2v3.TCAP_MAP_Messages.TCAP_MAP_Message
AS_ID = (0, 0, 17, 773, 1, 1, 1)
STATUS_NAMES = {EquipmentStatus.WHITE_LISTED: "whiteListed", EquipmentStatus.BLACK_LISTED: "blackListed",
                EquipmentStatus.GREY_LISTED: "greyListed"}


# --- pycrate side: the same messages from values -------------------------------------------


def pycrate_ber(value: Any) -> bytes:
    PYCRATE.set_val(value)
    return bytes(PYCRATE.to_ber())


def pycrate_value(wire: bytes) -> Any:
    PYCRATE.from_ber(wire)
    return PYCRATE.get_val()


def context(version: int) -> tuple[int, ...]:
    return (0, 4, 0, 0, 1, 0, 13, version)


def external(pdu: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"direct-reference": AS_ID, "encoding": ("single-ASN1-type", ("DialoguePDU", (pdu, value)))}


def aarq(version: int, **more: Any) -> dict[str, Any]:
    return external("dialogueRequest", {"protocol-version": (1, 1), "application-context-name": context(version),
                                        **more})


def aare(version: int, result: int = 0, diagnostic: tuple[str, int] = ("dialogue-service-user", 0)) -> dict[str, Any]:
    return external("dialogueResponse", {"protocol-version": (1, 1), "application-context-name": context(version),
                                         "result": result, "result-source-diagnostic": diagnostic})


def ros(kind: str, value: dict[str, Any]) -> tuple[str, Any]:
    return ("basicROS", (kind, value))


def pc_invoke(version: int, invoke_id: int = 1, imei: str = IMEI) -> tuple[str, Any]:
    tbcd = mapv.encode_tbcd(imei)
    argument: Any = (("MAPv2-CommonDataTypes", "IMEI"), tbcd) if version < 3 else \
        (("MAP-MS-DataTypes", "CheckIMEI-Arg"), {"imei": tbcd, "requestedEquipmentInfo": (2, 2)})
    return ros("invoke", {"invokeId": ("present", invoke_id), "opcode": ("local", CHECK_IMEI), "argument": argument})


def pc_result(version: int, status: EquipmentStatus, invoke_id: int = 1) -> tuple[str, Any]:
    name = STATUS_NAMES[status]
    result: Any = (("MAPv2-MS-DataTypes", "EquipmentStatus"), name) if version < 3 else \
        (("MAP-MS-DataTypes", "CheckIMEI-Res"), {"equipmentStatus": name})
    return ros("returnResult", {"invokeId": ("present", invoke_id),
                                "result": {"opcode": ("local", CHECK_IMEI), "result": result}})


def pc_error(code: int, invoke_id: int = 1) -> tuple[str, Any]:
    return ros("returnError", {"invokeId": ("present", invoke_id), "errcode": ("local", code)})


def pc_reject(invoke_id: int | None, problem: Problem) -> tuple[str, Any]:
    kinds = ("general", "invoke", "returnResult", "returnError")
    identifier = ("absent", 0) if invoke_id is None else ("present", invoke_id)
    return ros("reject", {"invokeId": identifier, "problem": (kinds[problem.type], problem.code)})


def pc_begin(version: int, otid: bytes = OTID, invoke_id: int = 1, imei: str = IMEI) -> Any:
    body: dict[str, Any] = {"otid": otid}
    if version > 1:
        body["dialoguePortion"] = aarq(version)
    body["components"] = [pc_invoke(version, invoke_id, imei)]
    return ("begin", body)


def pc_end(version: int, component: tuple[str, Any], dtid: bytes = OTID) -> Any:
    body: dict[str, Any] = {"dtid": dtid}
    if version > 1:
        body["dialoguePortion"] = aare(version)
    body["components"] = [component]
    return ("end", body)


def agree(ours: bytes, value: Any, expected: TcMessage) -> None:
    """Our octets are pycrate's; each side decodes the other's to the same values."""
    theirs = pycrate_ber(value)
    assert ours == theirs, f"ours {ours.hex()} pycrate {theirs.hex()}"
    assert decode(theirs) == expected
    assert pycrate_value(ours) == value


BEGIN_V1 = bytes.fromhex("621a 4804 00000001 6c12 a110 020101 02012b 0408 53029900711684f0")  # as in test_sccp


@pytest.mark.parametrize("version", VERSIONS)
def test_begin_matches_pycrate(version: int) -> None:
    ours = encode_begin(OTID, [check_imei(version)], request(version))
    agree(ours, pc_begin(version), TcMessage(MessageType.BEGIN, OTID, None, request(version), (check_imei(version),)))
    if version == 1:
        assert ours == BEGIN_V1


@pytest.mark.parametrize("status", EquipmentStatus)
@pytest.mark.parametrize("version", VERSIONS)
def test_end_with_result_matches_pycrate(version: int, status: EquipmentStatus) -> None:
    ours = encode_end(OTID, [result(version, status)], response(version))
    agree(ours, pc_end(version, pc_result(version, status)),
          TcMessage(MessageType.END, None, OTID, response(version), (result(version, status),)))


@pytest.mark.parametrize("code", ErrorCode)
@pytest.mark.parametrize("version", VERSIONS)
def test_end_with_each_error_matches_pycrate(version: int, code: ErrorCode) -> None:
    ours = encode_end(OTID, [ReturnError(1, code)], response(version))
    agree(ours, pc_end(version, pc_error(code)),
          TcMessage(MessageType.END, None, OTID, response(version), (ReturnError(1, code),)))


@pytest.mark.parametrize(("invoke_id", "problem"), [(1, INVOKE_MISTYPED_PARAMETER), (-7, INVOKE_UNRECOGNIZED_OPERATION),
                                                    (None, GENERAL_BADLY_STRUCTURED_COMPONENT)])
@pytest.mark.parametrize("version", VERSIONS)
def test_end_with_reject_matches_pycrate(version: int, invoke_id: int | None, problem: Problem) -> None:
    ours = encode_end(OTID, [Reject(invoke_id, problem)], response(version))
    agree(ours, pc_end(version, pc_reject(invoke_id, problem)),
          TcMessage(MessageType.END, None, OTID, response(version), (Reject(invoke_id, problem),)))


@pytest.mark.parametrize("cause", PAbortCause)
def test_p_abort_matches_pycrate(cause: PAbortCause) -> None:
    value = ("abort", {"dtid": DTID, "reason": ("p-abortCause", int(cause))})
    agree(encode_abort(DTID, cause), value, TcMessage(MessageType.ABORT, None, DTID, abort_cause=cause))


def test_u_abort_refusing_the_context_matches_pycrate() -> None:
    refusal = DialogueResponse(mapv.equipment_context(3), AssociateResult.REJECT_PERMANENT,
                               DiagnosticUser.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED)
    value = ("abort", {"dtid": DTID, "reason": ("u-abortCause", aare(3, 1, ("dialogue-service-user", 2)))})
    agree(encode_abort(DTID, dialogue=refusal), value, TcMessage(MessageType.ABORT, None, DTID, refusal))
    decoded = decode(encode_abort(DTID, dialogue=refusal)).dialogue
    assert isinstance(decoded, DialogueResponse) and type(decoded.diagnostic) is DiagnosticUser


@pytest.mark.parametrize("source", AbortSource)
def test_abrt_matches_pycrate(source: AbortSource) -> None:
    value = ("abort", {"dtid": DTID, "reason": ("u-abortCause", external("dialogueAbort", {"abort-source": source}))})
    agree(encode_abort(DTID, dialogue=DialogueAbort(source)), value,
          TcMessage(MessageType.ABORT, None, DTID, DialogueAbort(source)))


def test_provider_diagnostic_matches_pycrate() -> None:
    dialogue = DialogueResponse(mapv.equipment_context(2), AssociateResult.REJECT_PERMANENT,
                                DiagnosticProvider.NO_COMMON_DIALOGUE_PORTION)
    value = ("end", {"dtid": DTID, "dialoguePortion": aare(2, 1, ("dialogue-service-provider", 2))})
    agree(encode_end(DTID, dialogue=dialogue), value, TcMessage(MessageType.END, None, DTID, dialogue))
    decoded = decode(encode_end(DTID, dialogue=dialogue)).dialogue
    assert isinstance(decoded, DialogueResponse) and type(decoded.diagnostic) is DiagnosticProvider


def test_continue_with_linked_invoke_and_result_not_last_matches_pycrate() -> None:
    components: list[Component] = [ReturnResult(-5, last=False), Invoke(2, 99, linked_id=-5)]
    value = ("continue", {"otid": b"\x01", "dtid": DTID, "components": [
        ("returnResultNotLast", {"invokeId": ("present", -5)}),
        ros("invoke", {"invokeId": ("present", 2), "linkedId": ("present", -5), "opcode": ("local", 99)})]})
    ours = encode_continue(b"\x01", DTID, components)
    assert ours == pycrate_ber(value)
    assert decode(pycrate_ber(value)) == TcMessage(MessageType.CONTINUE, b"\x01", DTID, None, tuple(components))


def test_aarq_user_information_is_kept_raw() -> None:
    user = [{"direct-reference": (0, 4, 0, 0, 1, 1, 1, 1), "encoding": ("octet-aligned", b"\x01\x02")}]
    wire = pycrate_ber(("begin", {"otid": b"\x01", "dialoguePortion": aarq(2, **{"user-information": user})}))
    raw = bytes.fromhex("280d06070400000101010181020102")
    assert decode(wire).dialogue == DialogueRequest(mapv.equipment_context(2), raw)
    assert encode_begin(b"\x01", dialogue=DialogueRequest(mapv.equipment_context(2), raw)) == wire


def test_unidirectional_from_pycrate() -> None:
    wire = pycrate_ber(("unidirectional", {"components": [pc_invoke(1)]}))
    assert decode(wire) == TcMessage(MessageType.UNIDIRECTIONAL, None, None, None, (check_imei(1),))


@PROPERTY
@given(st.sampled_from(VERSIONS), st.binary(min_size=1, max_size=4), st.integers(-128, 127),
       st.text("0123456789", min_size=15, max_size=16), st.sampled_from(list(EquipmentStatus) + list(ErrorCode)))
def test_random_checkimei_dialogues_match_pycrate(version: int, tid: bytes, invoke_id: int, imei: str,
                                                  answer: int) -> None:
    begin = encode_begin(tid, [check_imei(version, invoke_id, imei)], request(version))
    assert begin == pycrate_ber(pc_begin(version, tid, invoke_id, imei))
    if isinstance(answer, EquipmentStatus):
        component: Component = result(version, answer, invoke_id)
        value = pc_end(version, pc_result(version, answer, invoke_id), tid)
    else:
        component, value = ReturnError(invoke_id, answer), pc_end(version, pc_error(answer, invoke_id), tid)
    end = encode_end(tid, [component], response(version))
    assert end == pycrate_ber(value)
    assert decode(end).components == (component,)
