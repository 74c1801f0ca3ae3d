"""The S13 adapter: ME-Identity-Check-Request -> Query -> Decision -> ME-Identity-Check-Answer.

It only translates. TS 29.272 7.2.9/7.2.10: success is Result-Code 2001 with
Equipment-Status; an IMEI the registry does not hold is Experimental-Result 5422
(DIAMETER_ERROR_EQUIPMENT_UNKNOWN) without Result-Code; input that is not an IMEI gets
5004 with the offending AVP in Failed-AVP; a Terminal-Information without IMEI (only a
3GPP2-MEID, which this EIR cannot check) gets 5005 naming the missing IMEI.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from agent.answer_log import AnswerLog
from agent.service import Decision, EquipmentCheck, Interface, Query, Status
from diameter.answers import answer_to, constant_avp, error_answer, finish_answer
from diameter.avp import Avp, example_avp
from diameter.capabilities import LocalNode
from diameter.constants import APP_S13, VENDOR_3GPP, EquipmentStatus, ResultCode
from diameter.dictionary import BASE_S13
from diameter.errors import AvpProblem
from diameter.message import Message
from diameter.transport import PeerConnection
from registry.imei import IdentityError, parse_imsi, parse_svn

EQUIPMENT_STATUS = {Status.WHITE: EquipmentStatus.WHITELISTED, Status.GREY: EquipmentStatus.GREYLISTED,
                    Status.BLACK: EquipmentStatus.BLACKLISTED}
_STATUS_AVP = {status: constant_avp(BASE_S13, "Equipment-Status", int(value))
               for status, value in EQUIPMENT_STATUS.items()}
_NO_STATE = constant_avp(BASE_S13, "Auth-Session-State", 1)
_S13_APPLICATION = Avp.constant(BASE_S13.avp_def("Vendor-Specific-Application-Id"), [
    Avp.of(BASE_S13.avp_def("Vendor-Id"), VENDOR_3GPP), Avp.of(BASE_S13.avp_def("Auth-Application-Id"), APP_S13)])
_EQUIPMENT_UNKNOWN = Avp.constant(BASE_S13.avp_def("Experimental-Result"), [
    Avp.of(BASE_S13.avp_def("Vendor-Id"), VENDOR_3GPP),
    Avp.of(BASE_S13.avp_def("Experimental-Result-Code"), ResultCode.DIAMETER_ERROR_EQUIPMENT_UNKNOWN)])
_IMEI_DEF = BASE_S13.avp_def("IMEI")
_STATUS_CODE = {Status.WHITE: ResultCode.DIAMETER_SUCCESS, Status.GREY: ResultCode.DIAMETER_SUCCESS,
                Status.BLACK: ResultCode.DIAMETER_SUCCESS, Status.UNKNOWN: ResultCode.DIAMETER_ERROR_EQUIPMENT_UNKNOWN}


class S13Answerer:
    """The request handler the Diameter server calls for every clean S13 request."""

    def __init__(self, service: EquipmentCheck, node: LocalNode, log: AnswerLog | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.service = service
        self.node = node
        self.log = log
        self.clock = clock
        self.counters: Counter[str] = Counter()

    def __call__(self, request: Message, connection: PeerConnection | None = None) -> Message:
        started = time.perf_counter()
        query, problem = self._query(request)
        if problem is not None:
            answer = error_answer(request, self.node.origin_host, self.node.origin_realm, problem)
            decision = Decision(Status.INVALID, "malformed-request", problem.reason)
        else:
            assert query is not None
            decision = self.service.check(query)
            answer = self._answer(request, decision)
        self.counters[decision.status.value] += 1
        if self.log is not None:
            self._log(request, query, decision, answer, connection, started)
        return answer

    def _query(self, request: Message) -> tuple[Query | None, AvpProblem | None]:
        terminal = request.find("Terminal-Information")
        assert terminal is not None  # the grammar made it required: the Peer answered 5005 otherwise
        imei = terminal.find("IMEI")
        if imei is None or imei.value is None:
            reason = ("IMEI missing: a 3GPP2-MEID alone cannot be checked by this EIR"
                      if terminal.find("3GPP2-MEID") is not None else "IMEI missing from Terminal-Information")
            return None, AvpProblem(ResultCode.DIAMETER_MISSING_AVP, reason, example_avp(_IMEI_DEF), (terminal,))
        text = str(imei.value)
        if len(text) not in (14, 15) or not (text.isascii() and text.isdigit()):
            return None, _invalid(f"IMEI must be 14 or 15 digits (TS 29.272 7.3.4), got {text!r}", imei, terminal)
        version = terminal.find("Software-Version")
        svn = None
        if version is not None:
            try:
                svn = _as_received(parse_svn, version.value)
            except IdentityError as error:
                return None, _invalid(f"Software-Version: {error}", version, terminal)
        user = request.find("User-Name")
        imsi = None
        if user is not None:
            try:
                imsi = _as_received(parse_imsi, user.value)
            except IdentityError as error:
                return None, AvpProblem(ResultCode.DIAMETER_INVALID_AVP_VALUE, f"User-Name: {error}", user)
        return Query(text, Interface.S13, self.clock(), svn, imsi), None

    def _answer(self, request: Message, decision: Decision) -> Message:
        host, realm = self.node.origin_host, self.node.origin_realm
        status = decision.status
        if status is Status.INVALID:  # a well-formed IMEI AVP whose digits are not an IMEI (bad Luhn)
            imei = request.find("Terminal-Information")
            assert imei is not None
            return error_answer(request, host, realm, _invalid(decision.reason, imei.find("IMEI"), imei))
        if status is Status.UNKNOWN:
            answer = answer_to(request, host, realm, None)
            answer.avps[1:1] = (_S13_APPLICATION, _EQUIPMENT_UNKNOWN, _NO_STATE)
        else:
            answer = answer_to(request, host, realm, ResultCode.DIAMETER_SUCCESS)
            answer.avps[1:1] = (_S13_APPLICATION,)
            answer.avps += (_NO_STATE, _STATUS_AVP[status])
        return finish_answer(request, answer)

    def _log(self, request: Message, query: Query | None, decision: Decision, answer: Message,
             connection: PeerConnection | None, started: float) -> None:
        assert self.log is not None
        code = _STATUS_CODE.get(decision.status) or answer.value("Result-Code")
        received = getattr(connection, "received_at", None) or started
        self.log.write("s13", request.value("Origin-Host"), request.value("Session-Id"),
                       decision.imei or (query.imei if query else None), query.imsi if query else None,
                       decision.status.value, decision.rule, decision.reason, int(code),
                       int((time.perf_counter() - received) * 1e6))


def _as_received(parse: Callable[[str], str], value: object) -> str:
    """The registry's own parser, on a value exactly as it came: the parsers forgive
    surrounding whitespace in files; an AVP value with any is refused."""
    if not isinstance(value, str):
        raise IdentityError(f"not text: {value!r}")
    parsed = parse(value)
    if parsed != value:
        raise IdentityError(f"{value!r} has characters around its digits")
    return parsed


def _invalid(reason: str, avp: Avp | None, terminal: Avp) -> AvpProblem:
    return AvpProblem(ResultCode.DIAMETER_INVALID_AVP_VALUE, reason, avp, (terminal,))



