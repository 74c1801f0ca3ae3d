"""Malformed requests, each with the problem RFC 6733 7.1 says it is, and the error answer
built for it: Result-Code, E bit exactly for 3xxx, Failed-AVP as 7.5 says, Session-Id first,
Proxy-Info copied in order, and an answer that decodes cleanly itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from diameter.answers import error_answer, result_code_of, select_problem
from diameter.avp import Avp
from diameter.constants import (
    AVP_FLAG_M,
    AVP_FLAG_P,
    AVP_FLAG_V,
    FLAG_E,
    FLAG_P,
    FLAG_R,
    FLAG_T,
    VENDOR_3GPP,
    ResultCode,
    is_protocol_error,
)
from diameter.errors import AvpProblem
from diameter.message import MAX_GROUPED_DEPTH, Message, check_grammar, decode_message
from tests.diameter_samples import (
    EIR_HOST,
    EIR_REALM,
    IMEI,
    cea,
    cer,
    dpr,
    dwr,
    ecr,
    ecr_with_proxies,
    raw_3gpp,
    raw_avp,
    raw_message,
)

M, V = AVP_FLAG_M, AVP_FLAG_V
RC = ResultCode


def _index(message: Message, name: str) -> int:
    definition = message.dictionary.avp_def(name)
    for index, avp in enumerate(message.avps):
        if (avp.code, avp.vendor_id) == (definition.code, definition.vendor_id):
            return index
    raise LookupError(name)


def replaced(message: Message, name: str, avp: Avp) -> Message:
    message.avps[_index(message, name)] = avp
    return message


def removed(message: Message, name: str) -> Message:
    del message.avps[_index(message, name)]
    return message


def inserted(message: Message, after: str, *avps: Avp) -> Message:
    at = _index(message, after) + 1
    message.avps[at:at] = avps
    return message


def flagged(message: Message, set_flags: int = 0, clear_flags: int = 0) -> Message:
    message.flags = (message.flags | set_flags) & ~clear_flags
    return message


def raw(avp_octets: bytes) -> Avp:
    """An Avp carrying hand-made octets: decode them alone and keep the one AVP."""
    message = decode_message(raw_message(280, avp_octets))
    assert len(message.avps) == 1
    return message.avps[0]


def terminal_information(data: bytes) -> Avp:
    return Avp(1401, V | M, VENDOR_3GPP, data)


def grouped(code: int, data: bytes, flags: int = M) -> Avp:
    return Avp(code, flags, 0, data)


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], bytes]
    code: int
    failed: bytes | None  # the one AVP Failed-AVP must hold, as octets; None: no Failed-AVP
    answer_problems: tuple[int, ...] = ()  # problems the answer re-decodes with (see the cases)


VSAI_S13 = raw_avp(266, b"\x00\x00\x28\xaf") + raw_avp(258, b"\x01\x00\x00\x24")
TI_GOOD = raw_3gpp(1402, IMEI.encode()) + raw_3gpp(1403, b"01")
UNKNOWN_M = raw_avp(99_999, b"abc", flags=M)


def _ecr(edit: Callable[[Message], Message]) -> Callable[[], bytes]:
    return lambda: edit(ecr_with_proxies()).to_bytes()


def _ecr_octets(extra: bytes) -> Callable[[], bytes]:
    """The proxied ECR's octets with ``extra`` appended to its body."""
    def build() -> bytes:
        body = b"".join(a.to_bytes() for a in ecr_with_proxies().avps)
        return raw_message(324, body + extra, flags=FLAG_R | FLAG_P, application_id=16777252)
    return build


def _dwr_octets(extra: bytes) -> Callable[[], bytes]:
    def build() -> bytes:
        body = b"".join(a.to_bytes() for a in dwr(origin_state_id=None).avps)
        return raw_message(280, body + extra)
    return build


def _ecr_replacing(name: str, avp: Avp) -> Callable[[], bytes]:
    return _ecr(lambda m: replaced(m, name, avp))


def _ecr_inserting(after: str, avp: Avp) -> Callable[[], bytes]:
    return _ecr(lambda m: inserted(m, after, avp))


def _ecr_without(name: str) -> Callable[[], bytes]:
    return _ecr(lambda m: removed(m, name))


def _session_id_third(message: Message) -> Message:
    return inserted(message, "Auth-Session-State", message.avps.pop(0))


def _built(build: Callable[[], Message], edit: Callable[[Message], Message]) -> Callable[[], bytes]:
    return lambda: edit(build()).to_bytes()


MISPLACED_ORIGIN_HOST = raw_avp(264, b"mme.example", flags=0)
IMEI_M_CLEAR = raw_avp(1402, IMEI.encode(), flags=0, vendor=VENDOR_3GPP)
UNKNOWN_VENDOR = raw_avp(1402, b"x", vendor=5535)
STATUS_7 = raw_3gpp(1445, b"\0\0\0\x07")
STATE_5 = raw_avp(277, b"\0\0\0\x05")
CAUSE_9 = raw_avp(273, b"\0\0\0\x09")
BAD_SESSION = raw_avp(263, b"mme;\xc3\x28;1")
ONLY_AUTH_APP = raw_avp(258, b"\x01\x00\x00\x24")
STATE_ID = raw_avp(278, b"\0\0\0\x01")
QUIET_UNKNOWN = raw_avp(99_999, b"z", flags=0)
EXPERIMENTAL_PLUS = raw_avp(266, b"\0\0\x28\xaf") + raw_avp(298, b"\0\0\x15\x2e") + raw_avp(269, b"x", flags=0)
SECOND_HOST = raw_avp(264, b"second.example")
OTHER_IMEI = raw_3gpp(1402, b"490154203237518")
ZERO4 = b"\0\0\0\0"

CASES = [
    # 3008: header bits against RFC 6733 3 and the command definition.
    Case("3008 E bit on an ECR", _ecr(lambda m: flagged(m, FLAG_E)), RC.DIAMETER_INVALID_HDR_BITS, None),
    Case("3008 E bit on a DWR", _built(dwr, lambda m: flagged(m, FLAG_E)), RC.DIAMETER_INVALID_HDR_BITS, None),
    Case("3008 P bit clear on an ECR", _ecr(lambda m: flagged(m, clear_flags=FLAG_P)),
         RC.DIAMETER_INVALID_HDR_BITS, None),
    Case("3008 P bit set on a CER", _built(cer, lambda m: flagged(m, FLAG_P)), RC.DIAMETER_INVALID_HDR_BITS, None),
    Case("3008 wins over an earlier 5005",
         _ecr(lambda m: removed(flagged(m, clear_flags=FLAG_P), "Terminal-Information")),
         RC.DIAMETER_INVALID_HDR_BITS, None),
    # 3009: M bit against the AVP's definition.
    Case("3009 M bit on Product-Name", _built(cer, lambda m: replaced(m, "Product-Name", raw(raw_avp(269, b"x")))),
         RC.DIAMETER_INVALID_AVP_BITS, raw_avp(269, b"x", flags=M)),
    Case("3009 M bit on Firmware-Revision",
         _built(cer, lambda m: replaced(m, "Firmware-Revision", raw(raw_avp(267, ZERO4)))),
         RC.DIAMETER_INVALID_AVP_BITS, raw_avp(267, ZERO4, flags=M)),
    Case("3009 M bit clear on Origin-Host", _ecr_replacing("Origin-Host", raw(MISPLACED_ORIGIN_HOST)),
         RC.DIAMETER_INVALID_AVP_BITS, MISPLACED_ORIGIN_HOST),
    Case("3009 M bit clear on IMEI inside Terminal-Information",
         _ecr_replacing("Terminal-Information", terminal_information(IMEI_M_CLEAR)),
         RC.DIAMETER_INVALID_AVP_BITS, raw_3gpp(1401, IMEI_M_CLEAR)),
    # 5001: an AVP we do not know, with the M bit.
    Case("5001 unknown AVP with M bit", _ecr_inserting("User-Name", raw(UNKNOWN_M)),
         RC.DIAMETER_AVP_UNSUPPORTED, UNKNOWN_M),
    Case("5001 known code with an unknown vendor", _ecr_inserting("User-Name", raw(UNKNOWN_VENDOR)),
         RC.DIAMETER_AVP_UNSUPPORTED, UNKNOWN_VENDOR),
    Case("5001 unknown AVP with M bit inside Terminal-Information",
         _ecr_replacing("Terminal-Information", terminal_information(TI_GOOD + UNKNOWN_M)),
         RC.DIAMETER_AVP_UNSUPPORTED, raw_3gpp(1401, UNKNOWN_M)),
    # 5004: values outside their definition.
    Case("5004 Equipment-Status 7", _ecr_inserting("User-Name", raw(STATUS_7)),
         RC.DIAMETER_INVALID_AVP_VALUE, STATUS_7),
    # The ECA needs {Auth-Session-State}; the request's was not fit to copy, so the answer
    # lacks it (5005 on re-decoding): we do not invent values the requester did not give.
    Case("5004 Auth-Session-State 5", _ecr_replacing("Auth-Session-State", raw(STATE_5)),
         RC.DIAMETER_INVALID_AVP_VALUE, STATE_5, (RC.DIAMETER_MISSING_AVP,)),
    Case("5004 Disconnect-Cause 9", _built(dpr, lambda m: replaced(m, "Disconnect-Cause", raw(CAUSE_9))),
         RC.DIAMETER_INVALID_AVP_VALUE, CAUSE_9),
    # RFC 6733 6.2: the answer carries the request's Session-Id octet for octet, so the bad
    # UTF-8 comes back with it.
    Case("5004 Session-Id not UTF-8", _ecr_replacing("Session-Id", raw(BAD_SESSION)),
         RC.DIAMETER_INVALID_AVP_VALUE, BAD_SESSION, (RC.DIAMETER_INVALID_AVP_VALUE,)),
    # 5005: Failed-AVP holds an example with code, flags, vendor and a zero-filled minimum value.
    Case("5005 no Terminal-Information", _ecr_without("Terminal-Information"),
         RC.DIAMETER_MISSING_AVP, raw_3gpp(1401, b"")),
    Case("5005 no Origin-Host", _ecr_without("Origin-Host"), RC.DIAMETER_MISSING_AVP, raw_avp(264, b"")),
    Case("5005 no Disconnect-Cause", _built(dpr, lambda m: removed(m, "Disconnect-Cause")),
         RC.DIAMETER_MISSING_AVP, raw_avp(273, ZERO4)),
    Case("5005 no Vendor-Id in a CER", _built(cer, lambda m: removed(m, "Vendor-Id")),
         RC.DIAMETER_MISSING_AVP, raw_avp(266, ZERO4)),
    Case("5005 no Host-IP-Address in a CER", _built(cer, lambda m: removed(m, "Host-IP-Address")),
         RC.DIAMETER_MISSING_AVP, raw_avp(257, b"\0" * 6)),
    Case("5005 no Vendor-Id inside Vendor-Specific-Application-Id",
         _ecr_replacing("Vendor-Specific-Application-Id", grouped(260, ONLY_AUTH_APP)),
         RC.DIAMETER_MISSING_AVP, raw_avp(260, raw_avp(266, ZERO4))),
    # 5008: an AVP the grammar has no place for.
    Case("5008 extra AVP inside Vendor-Specific-Application-Id",
         _ecr_replacing("Vendor-Specific-Application-Id", grouped(260, VSAI_S13 + STATE_ID)),
         RC.DIAMETER_AVP_NOT_ALLOWED, raw_avp(260, STATE_ID)),
    Case("5008 unknown non-M AVP inside Vendor-Specific-Application-Id",
         _ecr_replacing("Vendor-Specific-Application-Id", grouped(260, VSAI_S13 + QUIET_UNKNOWN)),
         RC.DIAMETER_AVP_NOT_ALLOWED, raw_avp(260, QUIET_UNKNOWN)),
    Case("5008 extra AVP inside Experimental-Result", _ecr_inserting("User-Name", grouped(297, EXPERIMENTAL_PLUS)),
         RC.DIAMETER_AVP_NOT_ALLOWED, raw_avp(297, raw_avp(269, b"x", flags=0))),
    Case("5008 Session-Id not first in an ECR", _ecr(_session_id_third),
         RC.DIAMETER_AVP_NOT_ALLOWED, ecr().avps[0].to_bytes()),
    # 5009: the first occurrence beyond the maximum.
    Case("5009 two Origin-Host", _ecr_inserting("Origin-Host", raw(SECOND_HOST)),
         RC.DIAMETER_AVP_OCCURS_TOO_MANY_TIMES, SECOND_HOST),
    Case("5009 two Terminal-Information", _ecr_inserting("Terminal-Information", terminal_information(OTHER_IMEI)),
         RC.DIAMETER_AVP_OCCURS_TOO_MANY_TIMES, raw_3gpp(1401, OTHER_IMEI)),
    Case("5009 two IMEI inside Terminal-Information",
         _ecr_replacing("Terminal-Information", terminal_information(TI_GOOD + OTHER_IMEI)),
         RC.DIAMETER_AVP_OCCURS_TOO_MANY_TIMES, raw_3gpp(1401, OTHER_IMEI)),
    # 5014: lengths. A length the data does not fit: the whole AVP. A length beyond the
    # message or the group: the header and a zero-filled minimum payload (RFC 6733 7.5).
    Case("5014 Unsigned32 with 5 octets",
         _built(lambda: dwr(origin_state_id=None),
                lambda m: inserted(m, "Origin-Realm", Avp(278, M, 0, b"\0\0\0\0\x01"))),
         RC.DIAMETER_INVALID_AVP_LENGTH, raw_avp(278, b"\0\0\0\0\x01")),
    Case("5014 AVP length past the message end", _ecr_octets(raw_avp(1, b"0010", length=200)),
         RC.DIAMETER_INVALID_AVP_LENGTH, raw_avp(1, b"")),
    Case("5014 Unsigned32 length past the message end", _dwr_octets(raw_avp(278, ZERO4, length=64)),
         RC.DIAMETER_INVALID_AVP_LENGTH, raw_avp(278, ZERO4)),
    Case("5014 AVP length below its header", _dwr_octets(raw_avp(278, b"\0\0\0\x01", length=4)),
         RC.DIAMETER_INVALID_AVP_LENGTH, raw_avp(278, ZERO4)),
    Case("5014 vendor AVP length below its 12-octet header", _dwr_octets(raw_3gpp(1445, ZERO4, length=10)),
         RC.DIAMETER_INVALID_AVP_LENGTH, raw_3gpp(1445, ZERO4)),
    Case("5014 AVP inside Terminal-Information running past the group",
         _ecr_replacing("Terminal-Information", terminal_information(raw_3gpp(1402, IMEI.encode(), length=60))),
         RC.DIAMETER_INVALID_AVP_LENGTH, raw_3gpp(1401, raw_3gpp(1402, b""))),
    Case("5014 octets in Terminal-Information too few for an AVP header",
         _ecr_replacing("Terminal-Information", terminal_information(TI_GOOD + ZERO4)),
         RC.DIAMETER_INVALID_AVP_LENGTH, raw_3gpp(1401, TI_GOOD + ZERO4)),
    # 5015: octets after the last AVP that cannot be an AVP, inside the message length.
    Case("5015 4 trailing octets", _dwr_octets(ZERO4), RC.DIAMETER_INVALID_MESSAGE_LENGTH, None),
    Case("5015 4 trailing octets after an ECR", _ecr_octets(b"\xde\xad\xbe\xef"),
         RC.DIAMETER_INVALID_MESSAGE_LENGTH, None),
]


def _our_capabilities() -> list[Avp]:
    """What the node adds to its own CEA (peer.py passes these as ``extra``)."""
    names = {"Host-IP-Address", "Vendor-Id", "Product-Name", "Origin-State-Id", "Supported-Vendor-Id",
             "Auth-Application-Id", "Vendor-Specific-Application-Id", "Firmware-Revision"}
    return [a for a in cea().avps if a.name in names]


def answer_for(request: Message, problem: AvpProblem) -> Message:
    extra = _our_capabilities() if request.command_code == 257 else None
    return error_answer(request, EIR_HOST, EIR_REALM, problem, extra)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_first_problem(case: Case) -> None:
    request = decode_message(case.build())
    assert request.is_request
    problem = select_problem(request.problems)
    assert problem is not None
    assert problem.result_code == case.code, problem.reason
    assert problem.reason


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_error_answer(case: Case) -> None:
    request = decode_message(case.build())
    problem = select_problem(request.problems)
    assert problem is not None
    wire = answer_for(request, problem).to_bytes()
    answer = decode_message(wire)

    # Header (RFC 6733 6.2, 7.2): same command, application and ids; R clear; P copied;
    # E exactly for protocol errors.
    assert not answer.is_request
    assert (answer.command_code, answer.application_id) == (request.command_code, request.application_id)
    assert (answer.hop_by_hop, answer.end_to_end) == (request.hop_by_hop, request.end_to_end)
    assert answer.is_proxiable == request.is_proxiable
    assert answer.is_error == is_protocol_error(case.code)
    assert not answer.flags & (FLAG_T | 0x0F)
    assert result_code_of(answer) == case.code
    assert answer.value("Error-Message")

    # Failed-AVP (RFC 6733 7.5).
    failed = answer.find_all("Failed-AVP")
    if case.failed is None:
        assert failed == []
    else:
        assert len(failed) == 1
        assert failed[0].data == case.failed

    # Session-Id first, Proxy-Info in the request's order, at the end.
    session = request.find("Session-Id")
    if session is not None:
        assert answer.avps[0] == session
    proxies = request.find_all("Proxy-Info")
    assert answer.find_all("Proxy-Info") == proxies
    if proxies:
        assert answer.avps[-len(proxies):] == proxies

    # The answer decodes as cleanly as the request allows, against the RFC 6733 7.2 grammar
    # (E bit) or the command's own, and against the command's own in any case.
    assert tuple(p.result_code for p in answer.problems) == case.answer_problems
    assert answer.definition is not None
    own: list[AvpProblem] = []
    check_grammar(answer.avps, answer.definition.grammar, own, ())
    grammar_codes = tuple(p.result_code for p in own)
    assert grammar_codes == tuple(c for c in case.answer_problems if c == RC.DIAMETER_MISSING_AVP)
    assert answer.to_bytes() == wire


def test_answer_problems_come_from_the_request_only() -> None:
    """The two cases that re-decode with a problem: each is about the request's own AVP."""
    by_name = {c.name: c for c in CASES}
    request = decode_message(by_name["5004 Session-Id not UTF-8"].build())
    answer = decode_message(answer_for(request, select_problem(request.problems)).to_bytes())  # type: ignore[arg-type]
    assert [p.avp for p in answer.problems] == [request.avps[0]]
    request = decode_message(by_name["5004 Auth-Session-State 5"].build())
    answer = decode_message(answer_for(request, select_problem(request.problems)).to_bytes())  # type: ignore[arg-type]
    assert [(p.avp.code if p.avp else None) for p in answer.problems] == [277]
    assert answer.find("Auth-Session-State") is None


def test_unknown_avp_without_m_bit_is_ignored() -> None:
    quiet = raw_avp(99_999, b"abc", flags=0)
    request = decode_message(_ecr(lambda m: inserted(m, "User-Name", raw(quiet)))())
    assert request.problems == []
    assert select_problem(request.problems) is None
    unknown = request.avps[_index(request, "User-Name") + 1]
    assert (unknown.code, unknown.definition, unknown.value) == (99_999, None, None)
    assert unknown.to_bytes() == quiet


def test_unknown_vendor_avp_without_m_bit_is_ignored() -> None:
    request = decode_message(_ecr(lambda m: inserted(m, "User-Name", raw(raw_avp(7, b"q", flags=0, vendor=9))))())
    assert request.problems == []


def test_p_bit_on_an_avp_is_no_problem() -> None:
    """RFC 6733 4.1: the P bit is reserved for end-to-end security; receivers ignore it."""
    request = decode_message(_ecr(lambda m: replaced(m, "User-Name", raw(raw_avp(1, b"001", flags=M | AVP_FLAG_P))))())
    assert request.problems == []


@pytest.mark.parametrize("build", [ecr, ecr_with_proxies, cer, dwr, dpr])
def test_valid_requests_have_no_problem(build: Callable[[], Message]) -> None:
    assert decode_message(build().to_bytes()).problems == []
    assert select_problem([]) is None


def test_protocol_error_chosen_over_earlier_problems() -> None:
    problems = [AvpProblem(5005, "missing"), AvpProblem(5004, "value"), AvpProblem(3009, "bits")]
    assert select_problem(problems) is problems[2]
    assert select_problem(problems[:2]) is problems[0]


def test_problem_names_the_grouped_path() -> None:
    wire = _ecr(lambda m: replaced(m, "Terminal-Information", terminal_information(TI_GOOD + UNKNOWN_M)))()
    problem = select_problem(decode_message(wire).problems)
    assert problem is not None and problem.avp is not None
    assert [a.code for a in problem.path] == [1401]
    assert problem.avp.to_bytes() == UNKNOWN_M


def test_deep_nesting_is_refused_not_a_crash() -> None:
    """Regression: Grouped AVPs nested thousands deep (Proxy-Info allows any AVP inside)
    recursed until RecursionError; now the depth is bounded and reported as 5012."""
    inner = b""
    for _ in range(6000):
        inner = raw_avp(284, inner)
    wire = raw_message(324, inner, flags=FLAG_R | FLAG_P, application_id=16777252)
    request = decode_message(wire)
    problem = select_problem(request.problems)
    assert problem is not None
    assert problem.result_code == RC.DIAMETER_UNABLE_TO_COMPLY
    assert repr(request)
    assert problem.avp is not None and problem.avp.data == b""  # the header, not 47 kB
    assert len(problem.path) == MAX_GROUPED_DEPTH
    answer = decode_message(error_answer(request, EIR_HOST, EIR_REALM, problem).to_bytes())
    assert result_code_of(answer) == RC.DIAMETER_UNABLE_TO_COMPLY
    failed = answer.find("Failed-AVP")
    assert failed is not None and len(failed.data) == 8 * (MAX_GROUPED_DEPTH + 1)
    # The Proxy-Info is echoed as RFC 6733 6.2 says, and still is what it was: its faults,
    # and the AVPs the request never had, are the answer's only ones.
    echoed = answer.find_all("Proxy-Info")
    assert echoed == request.find_all("Proxy-Info")
    inside = [p for p in answer.problems if p.path]
    assert inside and all(p.path[0] is echoed[0] for p in inside)
    outside = [p for p in answer.problems if not p.path]
    assert {(p.result_code, p.avp.code if p.avp else None) for p in outside} == {
        (RC.DIAMETER_MISSING_AVP, 263), (RC.DIAMETER_MISSING_AVP, 277)}


def test_failed_avp_content_is_not_judged() -> None:
    """Regression: Failed-AVP holds the offending AVP as it came (RFC 6733 7.5); decoding an
    answer must not report that AVP's faults as the answer's own."""
    answer = decode_message(_ecr(lambda m: m)())  # a clean request, just to reuse the ids
    eca = error_answer(answer, EIR_HOST, EIR_REALM,
                       AvpProblem(RC.DIAMETER_AVP_UNSUPPORTED, "unknown", raw(UNKNOWN_M)))
    decoded = decode_message(eca.to_bytes())
    assert decoded.problems == []
    failed = decoded.find("Failed-AVP")
    assert failed is not None and failed.value[0].to_bytes() == UNKNOWN_M


def test_error_answer_uses_the_rfc_6733_7_2_grammar() -> None:
    """Regression: an E-bit answer follows <answer-message>, not its command's grammar: a
    CEA with E needs no Host-IP-Address, and may carry the request's P bit."""
    request = decode_message(flagged(cer(), FLAG_P).to_bytes())
    problem = select_problem(request.problems)
    assert problem is not None
    bare = decode_message(error_answer(request, EIR_HOST, EIR_REALM, problem, []).to_bytes())
    assert bare.is_error and bare.is_proxiable
    assert bare.problems == []
    stripped = Message(bare.command_code, bare.flags, bare.application_id, 1, 2,
                       [a for a in bare.avps if a.name in {"Result-Code", "Origin-Host", "Origin-Realm"}])
    assert decode_message(stripped.to_bytes()).problems == []
    no_result = Message(bare.command_code, bare.flags, bare.application_id, 1, 2,
                        [a for a in bare.avps if a.name != "Result-Code"])
    assert [p.result_code for p in decode_message(no_result.to_bytes()).problems] == [RC.DIAMETER_MISSING_AVP]
