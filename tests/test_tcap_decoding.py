"""TCAP (sigtran/tcap.py) decoding rules: every P-Abort cause, BadComponent problem and
dialogue error; indefinite lengths; every prefix and trailing octets; what encoding refuses;
and fuzzing (marked ``fuzz``: the profile's count, 10,000 in CI). Agreement with pycrate is
in test_tcap.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, note, settings
from hypothesis import strategies as st

from sigtran import ber
from sigtran.map import CHECK_IMEI, EquipmentStatus, ErrorCode
from sigtran.tcap import (
    GENERAL_BADLY_STRUCTURED_COMPONENT,
    GENERAL_MISTYPED_COMPONENT,
    GENERAL_UNRECOGNIZED_COMPONENT,
    INVOKE_MISTYPED_PARAMETER,
    INVOKE_UNRECOGNIZED_OPERATION,
    RETURN_ERROR_UNRECOGNIZED_ERROR,
    RETURN_RESULT_MISTYPED_PARAMETER,
    AbortSource,
    AssociateResult,
    BadComponent,
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
    ProblemType,
    Reject,
    ReturnError,
    ReturnResult,
    TcapError,
    TcMessage,
    decode,
    encode_abort,
    encode_begin,
    encode_continue,
    encode_end,
)
from tests.fuzzing import MUTATIONS, mutate
from tests.tcap_samples import (
    BADLY,
    DTID,
    INCORRECT,
    OTID,
    VERSIONS,
    check_imei,
    request,
    response,
    result,
    to_indefinite,
)

PROPERTY = settings(max_examples=max(100, settings.default.max_examples // 20))


# --- the decoding rules --------------------------------------------------------------------


def tlv(identifier: int, *hex_parts: str | bytes) -> bytes:
    return ber.tlv(identifier, b"".join(bytes.fromhex(p) if isinstance(p, str) else p for p in hex_parts))


OTID_ELEMENT = tlv(0x48, OTID)
INVOKE = tlv(0xA1, "020101 02012b 0408 53029900711684f0")
COMPONENTS = tlv(0x6C, INVOKE)

TRANSACTION_ERRORS = {
    "empty": (b"", BADLY, None),
    "unknown message type": (tlv(0x60, OTID_ELEMENT), PAbortCause.UNRECOGNIZED_MESSAGE_TYPE, None),
    "primitive begin": (tlv(0x42, OTID), PAbortCause.UNRECOGNIZED_MESSAGE_TYPE, None),
    "length past the end": (tlv(0x62, OTID_ELEMENT, COMPONENTS)[:-1], BADLY, OTID),
    "truncated before the otid": (bytes.fromhex("621a4804000000"), BADLY, None),
    "element past the end": (tlv(0x62, OTID_ELEMENT, "6c06a103020101"), BADLY, OTID),
    "trailing octets": (tlv(0x62, OTID_ELEMENT, COMPONENTS) + b"\x00", BADLY, OTID),
    "begin without otid": (tlv(0x62, COMPONENTS), INCORRECT, None),
    "empty begin": (tlv(0x62), INCORRECT, None),
    "otid of 5 octets": (tlv(0x62, "480501020304 05", COMPONENTS), BADLY, None),
    "otid of 0 octets": (tlv(0x62, "4800", COMPONENTS), BADLY, None),
    "constructed otid": (tlv(0x62, "6803 040101", COMPONENTS), BADLY, None),
    "begin with dtid": (tlv(0x62, OTID_ELEMENT, "490101", COMPONENTS), INCORRECT, OTID),
    "end with otid": (tlv(0x64, OTID_ELEMENT, COMPONENTS), INCORRECT, None),
    "continue, ids swapped": (tlv(0x65, "490101", OTID_ELEMENT), INCORRECT, None),
    "continue without dtid": (tlv(0x65, OTID_ELEMENT, COMPONENTS), INCORRECT, OTID),
    "dtid of 5 octets": (tlv(0x65, OTID_ELEMENT, "49050102030405"), BADLY, OTID),
    "components before dialogue": (tlv(0x62, OTID_ELEMENT, COMPONENTS, "6b00"), INCORRECT, OTID),
    "two component portions": (tlv(0x62, OTID_ELEMENT, COMPONENTS, COMPONENTS), INCORRECT, OTID),
    "unknown element": (tlv(0x62, OTID_ELEMENT, "8000"), INCORRECT, OTID),
    "p-abort cause in a begin": (tlv(0x62, OTID_ELEMENT, "4a0101"), INCORRECT, OTID),
    "unidirectional without components": (tlv(0x61, "6b00"), INCORRECT, None),
    "unidirectional with otid": (tlv(0x61, OTID_ELEMENT, COMPONENTS), INCORRECT, None),
    "abort cause 5": (tlv(0x67, "490101 4a0105"), BADLY, None),
    "abort cause not minimal": (tlv(0x67, "490101 4a020001"), BADLY, None),
    "abort with cause and dialogue": (tlv(0x67, "490101 4a0101 6b00"), INCORRECT, None),
    "abort with components": (tlv(0x67, "490101", COMPONENTS), INCORRECT, None),
    "abort without dtid": (tlv(0x67, "4a0101"), INCORRECT, None),
}


@pytest.mark.parametrize(("wire", "cause", "otid"), TRANSACTION_ERRORS.values(), ids=TRANSACTION_ERRORS.keys())
def test_transaction_portion_errors(wire: bytes, cause: PAbortCause, otid: bytes | None) -> None:
    with pytest.raises(TcapError) as raised:
        decode(wire)
    assert raised.value.cause is cause and raised.value.otid == otid
    assert raised.value.reason == str(raised.value) and isinstance(raised.value, ValueError)


def test_an_abort_without_reason_and_an_empty_component_portion_are_fine() -> None:
    assert decode(tlv(0x67, "490101")) == TcMessage(MessageType.ABORT, None, b"\x01")
    assert encode_abort(b"\x01") == tlv(0x67, "490101")
    assert decode(tlv(0x62, OTID_ELEMENT, "6c00")) == TcMessage(MessageType.BEGIN, OTID, None)


def bad(invoke_id: int | None, problem: Problem) -> tuple[int | None, Problem]:
    return invoke_id, problem


MISTYPED = GENERAL_MISTYPED_COMPONENT
COMPONENT_ERRORS = {
    "unknown tag": ("a503020101", bad(None, GENERAL_UNRECOGNIZED_COMPONENT)),
    "primitive invoke tag": ("8103020101", bad(None, GENERAL_UNRECOGNIZED_COMPONENT)),
    "high tag number": ("bf1f00", bad(None, GENERAL_UNRECOGNIZED_COMPONENT)),
    "end-of-contents": ("0000", bad(None, GENERAL_UNRECOGNIZED_COMPONENT)),
    "invoke without opcode": ("a103020101", bad(1, MISTYPED)),
    "global opcode": ("a106020101 06012a", bad(1, INVOKE_UNRECOGNIZED_OPERATION)),
    "invoke id not an integer": ("a106040101 02012b", bad(None, MISTYPED)),
    "invoke id of tag [0]": ("a106800101 02012b", bad(None, MISTYPED)),
    "invoke id out of range": ("a107 02020100 02012b", bad(None, MISTYPED)),
    "invoke id empty": ("a1050200 02012b", bad(None, MISTYPED)),
    "empty invoke": ("a100", bad(None, MISTYPED)),
    "opcode of tag 04": ("a106020101 04012b", bad(1, MISTYPED)),
    "opcode not minimal": ("a107020101 0202002b", bad(1, MISTYPED)),
    "opcode empty": ("a105020101 0200", bad(1, MISTYPED)),
    "linked id too long": ("a10a020101 80020100 02012b", bad(1, MISTYPED)),
    "inner length past end": ("a108020101 02052b0400", bad(1, GENERAL_BADLY_STRUCTURED_COMPONENT)),
    "parameter not BER": ("a107020101 02012b 04", bad(1, GENERAL_BADLY_STRUCTURED_COMPONENT)),
    "result not a SEQUENCE": ("a206020101 040100", bad(1, MISTYPED)),
    "result SEQUENCE empty": ("a205020101 3000", bad(1, MISTYPED)),
    "result after the SEQUENCE": ("a20a020101 300302012b 0400", bad(1, MISTYPED)),
    "result global opcode": ("a208020101 300306012a", bad(1, RETURN_RESULT_MISTYPED_PARAMETER)),
    "result SEQUENCE not BER": ("a207020101 30020201", bad(1, GENERAL_BADLY_STRUCTURED_COMPONENT)),
    "error without code": ("a303020101", bad(1, MISTYPED)),
    "global error code": ("a306020101 06012a", bad(1, RETURN_ERROR_UNRECOGNIZED_ERROR)),
    "reject without problem": ("a403020101", bad(1, MISTYPED)),
    "reject problem tag 84": ("a406020101 840101", bad(1, MISTYPED)),
    "reject problem empty": ("a405020101 8000", bad(1, MISTYPED)),
    "reject NULL with contents": ("a4060501008101 01", bad(None, MISTYPED)),
    "reject of three elements": ("a409020101 810101 810101", bad(1, MISTYPED)),
}


@pytest.mark.parametrize(("component", "expected"), COMPONENT_ERRORS.values(), ids=COMPONENT_ERRORS.keys())
def test_bad_components_are_answered_and_decoding_goes_on(component: str, expected: tuple[int | None, Problem]) -> None:
    message = decode(tlv(0x62, OTID_ELEMENT, tlv(0x6C, component, INVOKE)))
    bad_one, good = message.components
    assert isinstance(bad_one, BadComponent) and (bad_one.invoke_id, bad_one.problem) == expected and bad_one.reason
    assert good == check_imei(1)


def problems(components: tuple[Component, ...]) -> list[tuple[int | None, Problem] | Component]:
    """Each BadComponent as (invoke ID, problem), the others as they are."""
    return [(c.invoke_id, c.problem) if isinstance(c, BadComponent) else c for c in components]


@pytest.mark.parametrize("broken", ["a1", "a110020101", "02"])
def test_a_component_portion_that_stops_being_ber_ends_with_one_bad_component(broken: str) -> None:
    message = decode(tlv(0x62, OTID_ELEMENT, tlv(0x6C, INVOKE, broken)))
    assert problems(message.components) == [check_imei(1), (None, GENERAL_BADLY_STRUCTURED_COMPONENT)]


def test_the_vendor_invoke_keeps_both_octet_strings() -> None:
    parameter = bytes.fromhex("040853029900711684f0 0408 21436587092143f5")
    message = decode(encode_begin(OTID, [Invoke(1, CHECK_IMEI, parameter)]))
    assert message.components == (Invoke(1, CHECK_IMEI, parameter),)


def portion(*hex_parts: str | bytes) -> bytes:
    return tlv(0x6B, *hex_parts)


def dialogue_external(pdu: bytes, syntax: str = "060700118605010101") -> bytes:
    return tlv(0x28, syntax, tlv(0xA0, pdu))


AC3 = "a109060704000001000d03"
DIALOGUE_ERRORS = {
    "two elements": (portion(dialogue_external(tlv(0x60, AC3)), "0500"), "not one"),
    "not an EXTERNAL": (portion(tlv(0x30, "060700118605010101")), "not an EXTERNAL"),
    "no direct reference": (portion(tlv(0x28, tlv(0xA0, tlv(0x60, AC3)))), "direct-reference"),
    "octet-aligned": (portion(tlv(0x28, "060700118605010101", tlv(0x81, tlv(0x60, AC3)))), "single-ASN1-type"),
    "other abstract syntax": (portion(dialogue_external(tlv(0x60, AC3), "0603 2a0304")), "1.2.3.4"),
    "unidialogue": (portion(dialogue_external(tlv(0x60, AC3), "060700118605010201")), "AUDT"),
    "RLRQ": (portion(dialogue_external(tlv(0x62, "800100"))), "not AARQ, AARE or ABRT"),
    "AARQ without context": (portion(dialogue_external(tlv(0x60, "80020780"))), "application-context-name"),
    "AARQ version 2 only": (portion(dialogue_external(tlv(0x60, "80020640", AC3))), "version 1"),
    "AARQ empty version": (portion(dialogue_external(tlv(0x60, "800100", AC3))), "version 1"),
    "AARQ context an INTEGER": (portion(dialogue_external(tlv(0x60, "a103020101"))), "not an OBJECT IDENTIFIER"),
    "AARQ context a bad OID": (portion(dialogue_external(tlv(0x60, "a1030601 80"))), "not BER"),
    "AARQ unknown element": (portion(dialogue_external(tlv(0x60, AC3, "8200"))), "unexpected element"),
    "AARE without result": (portion(dialogue_external(tlv(0x61, AC3))), "result"),
    "AARE result 5": (portion(dialogue_external(tlv(0x61, AC3, "a203020105 a305a1030201 00"))), "not one of"),
    "AARE diagnostic 3": (portion(dialogue_external(tlv(0x61, AC3, "a203020100 a305a1030201 03"))), "not one of"),
    "AARE diagnostic [3]": (portion(dialogue_external(tlv(0x61, AC3, "a203020100 a305a3030201 00"))), "neither"),
    "AARE result a BOOLEAN": (portion(dialogue_external(tlv(0x61, AC3, "a2030101ff a305a1030201 00"))), "INTEGER"),
    "ABRT source 2": (portion(dialogue_external(tlv(0x64, "800102"))), "abort-source 2"),
    "ABRT without source": (portion(dialogue_external(tlv(0x64))), "abort-source"),
    "not BER inside": (portion("2805 0607 0011"), "not BER"),
}


@pytest.mark.parametrize(("dialogue", "why"), DIALOGUE_ERRORS.values(), ids=DIALOGUE_ERRORS.keys())
def test_dialogue_portions_not_understood(dialogue: bytes, why: str) -> None:
    message = decode(tlv(0x62, OTID_ELEMENT, dialogue, COMPONENTS))
    assert message.dialogue is None and message.dialogue_error is not None and why in message.dialogue_error
    assert message.otid == OTID and message.components == (check_imei(1),)


def test_dialogue_variants_understood() -> None:
    def dialogue_of(pdu: bytes) -> object:
        return decode(tlv(0x62, OTID_ELEMENT, portion(dialogue_external(pdu)))).dialogue
    assert dialogue_of(tlv(0x60, AC3)) == DialogueRequest("0.4.0.0.1.0.13.3")  # no protocol version: version 1
    assert dialogue_of(tlv(0x60, "800207ff", AC3)) == DialogueRequest("0.4.0.0.1.0.13.3")
    assert dialogue_of(tlv(0x61, AC3, "a203020100 a305a2030201 01 be00")) == DialogueResponse(
        "0.4.0.0.1.0.13.3", AssociateResult.ACCEPTED, DiagnosticProvider.NO_REASON_GIVEN)
    assert dialogue_of(tlv(0x64, "800100 be00")) == DialogueAbort(AbortSource.DIALOGUE_SERVICE_USER)


# --- definite and indefinite, prefixes, trailing octets ------------------------------------


def to_definite(data: bytes) -> bytes:
    out = b""
    for element in ber.iterate(data, 0, len(data)):
        contents = to_definite(element.contents) if element.tag.constructed else element.contents
        out += ber.tlv(element.tag, contents)
    return out


def definite_parameters(message: TcMessage) -> TcMessage:
    def fix(component: Component) -> Component:
        if isinstance(component, Invoke):
            return Invoke(component.invoke_id, component.opcode, to_definite(component.parameter), component.linked_id)
        if isinstance(component, ReturnResult):
            return ReturnResult(component.invoke_id, component.opcode, to_definite(component.result), component.last)
        if isinstance(component, ReturnError):
            return ReturnError(component.invoke_id, component.error_code, to_definite(component.parameter))
        return component
    dialogue = message.dialogue
    if isinstance(dialogue, DialogueRequest) and dialogue.user_information is not None:
        dialogue = DialogueRequest(dialogue.application_context, to_definite(dialogue.user_information))
    return TcMessage(message.type, message.otid, message.dtid, dialogue,
                     tuple(fix(c) for c in message.components), message.abort_cause, message.dialogue_error)


SAMPLES = [
    *(encode_begin(OTID, [check_imei(v)], request(v)) for v in VERSIONS),
    *(encode_end(OTID, [result(v, EquipmentStatus.GREY_LISTED), ReturnError(2, ErrorCode.UNKNOWN_EQUIPMENT),
                        Reject(None, GENERAL_BADLY_STRUCTURED_COMPONENT)], response(v)) for v in VERSIONS),
    encode_continue(OTID, DTID, [ReturnResult(3, last=False), Invoke(4, 5, b"", 3)], DialogueAbort(AbortSource(1))),
    encode_abort(DTID, PAbortCause.RESOURCE_LIMITATION),
    encode_abort(DTID, dialogue=DialogueResponse("0.4.0.0.1.0.13.4", AssociateResult(1), DiagnosticUser(2))),
    tlv(0x61, COMPONENTS),
    tlv(0x62, OTID_ELEMENT, tlv(0x6C, "a503020101", INVOKE)),
]
ALL_SAMPLES = SAMPLES + [to_indefinite(wire) for wire in SAMPLES]


@pytest.mark.parametrize("wire", SAMPLES, ids=lambda w: w.hex()[:12])
def test_indefinite_lengths_decode_alike(wire: bytes) -> None:
    indefinite = to_indefinite(wire)
    assert indefinite != wire and to_definite(indefinite) == wire
    assert definite_parameters(decode(indefinite)) == decode(wire)


@pytest.mark.parametrize("wire", ALL_SAMPLES, ids=lambda w: w.hex()[:12])
def test_every_prefix_is_a_tcap_error_naming_the_otid_once_readable(wire: bytes) -> None:
    decode(wire)
    for end in range(len(wire)):
        with pytest.raises(TcapError) as raised:
            decode(wire[:end])
        readable = wire[0] in (MessageType.BEGIN, MessageType.CONTINUE) and end >= 2 + len(OTID_ELEMENT)
        assert raised.value.otid == (OTID if readable else None), end
        assert raised.value.cause is BADLY


@pytest.mark.parametrize("wire", ALL_SAMPLES, ids=lambda w: w.hex()[:12])
@pytest.mark.parametrize("tail", [b"\x00", b"\x00\x00", b"\x62\x00", bytes(3)])
def test_trailing_octets_are_refused(wire: bytes, tail: bytes) -> None:
    with pytest.raises(TcapError, match="after the") as raised:
        decode(wire + tail)
    assert raised.value.cause is BADLY
    assert raised.value.otid == (OTID if wire[0] in (MessageType.BEGIN, MessageType.CONTINUE) else None)


def test_every_prefix_of_the_inner_portions_is_a_bad_component_or_a_dialogue_error() -> None:
    """With the lengths around them mended, a cut component or dialogue portion is the
    component sublayer's or the dialogue's problem, never the transaction's."""
    _, dialogue_portion, component_portion = ber.decode_one(encode_begin(OTID, [check_imei(3)], request(3))).children()
    dialogue, components = dialogue_portion.contents, component_portion.contents
    for end in range(1, len(components)):
        message = decode(tlv(0x62, OTID_ELEMENT, tlv(0x6B, dialogue), tlv(0x6C, components[:end])))
        assert problems(message.components) == [(None, GENERAL_BADLY_STRUCTURED_COMPONENT)]
        assert message.dialogue == request(3)
    invoke = ber.decode_one(components).contents
    for end in range(len(invoke)):
        (component,) = decode(tlv(0x62, OTID_ELEMENT, tlv(0x6C, tlv(0xA1, invoke[:end])))).components
        assert isinstance(component, BadComponent | Invoke)
        assert (component.invoke_id == 1) == (end >= 3), end
    for end in range(len(dialogue)):
        message = decode(tlv(0x62, OTID_ELEMENT, tlv(0x6B, dialogue[:end]), COMPONENTS))
        assert message.dialogue is None and message.dialogue_error and message.components == (check_imei(1),)


# --- encoding refuses what cannot be sent --------------------------------------------------

BAD_VALUES = {
    "empty otid": lambda: encode_begin(b""),
    "otid of 5": lambda: encode_begin(bytes(5)),
    "dtid of 5": lambda: encode_end(bytes(5)),
    "invoke id 128": lambda: encode_begin(OTID, [Invoke(128, 43)]),
    "linked id -129": lambda: encode_begin(OTID, [Invoke(1, 43, linked_id=-129)]),
    "reject id 200": lambda: encode_end(OTID, [Reject(200, MISTYPED)]),
    "bad component": lambda: encode_end(OTID, [BadComponent(1, MISTYPED, "x")]),
    "result without opcode": lambda: encode_end(OTID, [ReturnResult(1, None, b"\x05\x00")]),
    "cause and dialogue": lambda: encode_abort(OTID, PAbortCause(1), DialogueAbort(AbortSource(0))),
    "AARE in a begin": lambda: encode_begin(OTID, dialogue=DialogueResponse("1.2")),
    "AARQ in an end": lambda: encode_end(OTID, dialogue=DialogueRequest("1.2")),
    "AARQ in an abort": lambda: encode_abort(OTID, dialogue=DialogueRequest("1.2")),
    "not an OID": lambda: encode_begin(OTID, dialogue=DialogueRequest("x")),
}


@pytest.mark.parametrize("build", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_encoding_refuses(build: Any) -> None:
    with pytest.raises(ValueError):
        build()


def test_problems_read_as_q773_names() -> None:
    assert str(INVOKE_MISTYPED_PARAMETER) == "INVOKE_MISTYPED_PARAMETER"
    assert str(Problem(ProblemType.GENERAL, 9)) == "GENERAL problem 9"


# --- round trips and fuzzing: nothing but TcapError ----------------------------------------


@st.composite
def ber_elements(draw: st.DrawFn, depth: int = 2) -> bytes:
    """A well-formed element: primitive, or constructed of up to three more."""
    if depth and draw(st.booleans()):
        inner = b"".join(draw(st.lists(ber_elements(depth - 1), max_size=3)))
        return ber.tlv(draw(st.sampled_from([0x30, 0xA0, 0xA1])), inner)
    return ber.tlv(draw(st.sampled_from([0x02, 0x04, 0x0A, 0x80, 0x81, 0x84])), draw(st.binary(max_size=12)))


IDS = st.integers(-128, 127)
CODES = st.integers(-(2 ** 40), 2 ** 40)
RAW = st.lists(ber_elements(), max_size=3).map(b"".join)
COMPONENT = st.one_of(
    st.builds(Invoke, IDS, CODES, RAW, st.none() | IDS),
    st.builds(ReturnResult, IDS, st.none(), st.just(b""), st.booleans()),
    st.builds(ReturnResult, IDS, CODES, RAW, st.booleans()),
    st.builds(ReturnError, IDS, CODES, RAW),
    st.builds(Reject, st.none() | IDS, st.builds(Problem, st.sampled_from(ProblemType), st.integers(0, 300))),
)
CONTEXTS = st.sampled_from(["0.4.0.0.1.0.13.3", "0.4.0.0.1.0.13.2", "1.2.840.10045", "2.999.1234567"])
RESPONSES = st.builds(DialogueResponse, CONTEXTS, st.sampled_from(AssociateResult),
                      st.sampled_from([*DiagnosticUser, *DiagnosticProvider]))
REQUESTS = st.builds(DialogueRequest, CONTEXTS, st.none() | RAW)
ABORTS = st.builds(DialogueAbort, st.sampled_from(AbortSource))
TIDS = st.binary(min_size=1, max_size=4)
COMPONENTS_LIST = st.lists(COMPONENT, max_size=4)


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, TcMessage]:
    kind = draw(st.sampled_from(MessageType).filter(lambda k: k is not MessageType.UNIDIRECTIONAL))
    components = tuple(draw(COMPONENTS_LIST))
    if kind is MessageType.BEGIN:
        otid, dialogue = draw(TIDS), draw(st.none() | REQUESTS)
        return encode_begin(otid, components, dialogue), TcMessage(kind, otid, None, dialogue, components)
    if kind is MessageType.END:
        dtid, response_ = draw(TIDS), draw(st.none() | RESPONSES)
        return encode_end(dtid, components, response_), TcMessage(kind, None, dtid, response_, components)
    if kind is MessageType.CONTINUE:
        otid, dtid, any_ = draw(TIDS), draw(TIDS), draw(st.none() | REQUESTS | RESPONSES | ABORTS)
        return encode_continue(otid, dtid, components, any_), TcMessage(kind, otid, dtid, any_, components)
    dtid, cause = draw(TIDS), draw(st.none() | st.sampled_from(PAbortCause))
    refusal = draw(st.none() | RESPONSES | ABORTS) if cause is None else None
    return encode_abort(dtid, cause, refusal), TcMessage(kind, None, dtid, refusal, (), cause)


@PROPERTY
@given(messages())
def test_random_messages_round_trip(pair: tuple[bytes, TcMessage]) -> None:
    wire, expected = pair
    note(wire.hex())
    decoded = decode(wire)
    assert decoded == expected
    if isinstance(expected.dialogue, DialogueResponse):
        assert isinstance(decoded.dialogue, DialogueResponse)
        assert type(decoded.dialogue.diagnostic) is type(expected.dialogue.diagnostic)
    assert definite_parameters(decode(to_indefinite(wire))) == expected  # the indefinite form reads alike


def reencode(message: TcMessage) -> bytes | None:
    """The octets our encoders give the decoded message, None where they cannot carry it."""
    components, dialogue = list(message.components), message.dialogue
    if message.dialogue_error or any(isinstance(c, BadComponent) for c in components):
        return None
    if message.type is MessageType.BEGIN and (dialogue is None or isinstance(dialogue, DialogueRequest)):
        return encode_begin(message.otid or b"", components, dialogue)
    if message.type is MessageType.END and (dialogue is None or isinstance(dialogue, DialogueResponse)):
        return encode_end(message.dtid or b"", components, dialogue)
    if message.type is MessageType.CONTINUE:
        return encode_continue(message.otid or b"", message.dtid or b"", components, dialogue)
    if message.type is MessageType.ABORT and not isinstance(dialogue, DialogueRequest):
        return encode_abort(message.dtid or b"", message.abort_cause, dialogue)
    return None


def exercise(wire: bytes) -> None:
    """Decode: a TcapError with a cause and a sane otid, or a message whose re-encoding decodes to itself."""
    try:
        message = decode(wire)
    except TcapError as error:
        assert isinstance(error.cause, PAbortCause) and error.reason
        assert error.otid is None or 1 <= len(error.otid) <= 4
        return
    repr(message)
    again = reencode(message)
    if again is not None:
        assert decode(again) == message


@pytest.mark.fuzz
@given(st.binary(max_size=200))
@example(bytes.fromhex("6280 4801 01 6c80 a180 020101 0000 0000 0000"))
def test_fuzz_random_octets(wire: bytes) -> None:
    exercise(wire)


@pytest.mark.fuzz
@given(st.sampled_from(list(MessageType)), st.binary(max_size=200))
def test_fuzz_message_type_random_body(kind: MessageType, body: bytes) -> None:
    exercise(bytes([kind]) + body)
    exercise(ber.tlv(kind, body))


@pytest.mark.fuzz
@given(st.sampled_from(ALL_SAMPLES) | messages().map(lambda pair: pair[0]), MUTATIONS)
def test_fuzz_mutated_valid_messages(wire: bytes, mutations: list[tuple[str, int, int]]) -> None:
    mutated = mutate(wire, mutations)
    note(mutated.hex())
    exercise(mutated)


V3_BEGIN_PARTS = [part.contents for part in ber.decode_one(SAMPLES[2]).children()][1:]  # dialogue, components


@pytest.mark.fuzz
@given(st.tuples(MUTATIONS, MUTATIONS).map(lambda m: (mutate(V3_BEGIN_PARTS[0], m[0]), mutate(V3_BEGIN_PARTS[1], m[1])))
       | st.tuples(st.binary(max_size=80), st.binary(max_size=120)))
def test_fuzz_inside_a_sound_transaction_portion(inner: tuple[bytes, bytes]) -> None:
    """Whatever the dialogue and component portions hold, a Begin whose transaction portion is
    sound decodes: the damage is a dialogue_error or BadComponents, never a TcapError."""
    dialogue, components = inner
    wire = tlv(0x62, OTID_ELEMENT, tlv(0x6B, dialogue), tlv(0x6C, components))
    note(wire.hex())
    message = decode(wire)
    assert (message.dialogue is None) == (message.dialogue_error is not None)
    exercise(wire)
