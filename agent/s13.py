"""The S13 adapter: ME-Identity-Check-Request -> Query -> Decision -> ME-Identity-Check-Answer.

It only translates. TS 29.272 7.2.9/7.2.10: success is Result-Code 2001 with
Equipment-Status; a decision of UNKNOWN is Experimental-Result 5422
(DIAMETER_ERROR_EQUIPMENT_UNKNOWN) without Result-Code; an IMEI AVP that is not 14 or 15
digits, and an IMEI the profile rejects (``invalid_imei: reject``), get 5004 with the
offending AVP in Failed-AVP; a Terminal-Information without IMEI (only a 3GPP2-MEID,
which this EIR cannot check) gets 5005 naming the missing IMEI. Every answered query is
recorded by the service; an answer that rests on a first sight leaves once it is on disk
(agent/durable.py), or as 5012 DIAMETER_UNABLE_TO_COMPLY when the database would not take
it in time. Past the bounds on requests in progress (agent/admission.py, counted and
checked by the connection, as for MAP: ``PeerConnection.busy``) the answer is 3004
DIAMETER_TOO_BUSY, at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from agent.answer_log import AnswerLog
from agent.durable import GroupCommit, then
from agent.service import (
    Decision,
    EquipmentCheck,
    Interface,
    Query,
    Status,
    Unanswerable,
    as_received,
    malformed_imei,
    malformed_imsi,
)
from diameter.answers import constant_avp, error_answer
from diameter.avp import Avp, example_avp
from diameter.capabilities import LocalNode
from diameter.constants import APP_S13, FLAG_E, FLAG_P, VENDOR_3GPP, EquipmentStatus, ResultCode
from diameter.dictionary import BASE_S13
from diameter.errors import AvpProblem
from diameter.message import Message
from diameter.peer import BadMessage
from diameter.transport import PeerConnection
from netio.bad_input import BadInput
from registry.decision import Rule
from registry.imei import IdentityError, parse_svn

EQUIPMENT_STATUS = {Status.WHITE: EquipmentStatus.WHITELISTED, Status.GREY: EquipmentStatus.GREYLISTED,
                    Status.BLACK: EquipmentStatus.BLACKLISTED}
_STATUS_AVP = {status: constant_avp(BASE_S13, "Equipment-Status", int(value))
               for status, value in EQUIPMENT_STATUS.items()}
_NO_STATE = constant_avp(BASE_S13, "Auth-Session-State", 1)
_SUCCESS = constant_avp(BASE_S13, "Result-Code", int(ResultCode.DIAMETER_SUCCESS))
_S13_APPLICATION = Avp.constant(BASE_S13.avp_def("Vendor-Specific-Application-Id"), [
    Avp.of(BASE_S13.avp_def("Vendor-Id"), VENDOR_3GPP), Avp.of(BASE_S13.avp_def("Auth-Application-Id"), APP_S13)])
_EQUIPMENT_UNKNOWN = Avp.constant(BASE_S13.avp_def("Experimental-Result"), [
    Avp.of(BASE_S13.avp_def("Vendor-Id"), VENDOR_3GPP),
    Avp.of(BASE_S13.avp_def("Experimental-Result-Code"), ResultCode.DIAMETER_ERROR_EQUIPMENT_UNKNOWN)])
_NAME = {status: status.value for status in Status}  # an enum's .value is slow on the hot path
TOO_BUSY = "the EIR has too many requests in progress"
S13_COMMANDS = ("ECR", "ECA", "ME-Identity-Check-Request", "ME-Identity-Check-Answer")  # as BadMessage names them
_STATUS_CODE = {Status.WHITE: ResultCode.DIAMETER_SUCCESS, Status.GREY: ResultCode.DIAMETER_SUCCESS,
                Status.BLACK: ResultCode.DIAMETER_SUCCESS, Status.UNKNOWN: ResultCode.DIAMETER_ERROR_EQUIPMENT_UNKNOWN}
# The request AVPs the adapter reads, recognised by their (shared) dictionary definitions.
_SESSION_ID, _ORIGIN_HOST, _USER_NAME, _PROXY_INFO, _TERMINAL, _IMEI, _SOFTWARE_VERSION, _MEID = (
    BASE_S13.avp_def(name) for name in ("Session-Id", "Origin-Host", "User-Name", "Proxy-Info",
                                        "Terminal-Information", "IMEI", "Software-Version", "3GPP2-MEID"))


def wire_answer(status: Status) -> str:
    """What an ECA says for a decision of ``status`` (``eir check`` prints it)."""
    if status is Status.UNKNOWN:
        return f"{int(ResultCode.DIAMETER_ERROR_EQUIPMENT_UNKNOWN)} DIAMETER_ERROR_EQUIPMENT_UNKNOWN"
    if status is Status.INVALID:
        return f"{int(ResultCode.DIAMETER_INVALID_AVP_VALUE)} DIAMETER_INVALID_AVP_VALUE"
    return f"{int(ResultCode.DIAMETER_SUCCESS)} {EQUIPMENT_STATUS[status].name}"


class _Request:
    """The AVPs of a clean ECR the adapter reads, found in one pass over the message."""

    __slots__ = ("origin_host", "proxies", "session", "terminal", "user")
    session: Avp | None
    origin_host: Avp | None
    user: Avp | None
    terminal: Avp | None
    proxies: list[Avp]

    def __init__(self, request: Message) -> None:
        self.session = self.origin_host = self.user = self.terminal = None
        self.proxies = []
        for avp in request.avps:
            definition = avp.definition
            if definition is _SESSION_ID:
                self.session = avp
            elif definition is _TERMINAL:
                self.terminal = avp
            elif definition is _USER_NAME:
                self.user = avp
            elif definition is _ORIGIN_HOST:
                self.origin_host = avp
            elif definition is _PROXY_INFO:
                self.proxies.append(avp)

    def imei(self) -> str | None:
        """The IMEI AVP's value as received (for a log line), None without one."""
        terminal = self.terminal
        if terminal is None or not isinstance(terminal.value, list):
            return None
        for member in terminal.value:
            if member.definition is _IMEI and isinstance(member.value, str):
                return member.value
        return None


class S13Answerer:
    """The request handler the Diameter server calls for every clean S13 request."""

    def __init__(self, service: EquipmentCheck, node: LocalNode, log: AnswerLog | None = None,
                 clock: Callable[[], datetime] | None = None, commits: GroupCommit | None = None) -> None:
        self.service = service
        self.commits = commits  # None: a durable answer commits on this thread (Recorder.commit)
        self.node = node
        self.log = log
        self.clock = clock or service.now  # the service's clock, read once a millisecond
        self.counters: Counter[str] = Counter()
        self._bad = BadInput(logging.getLogger("eir.s13"), self.counters)
        # The AVPs that follow Session-Id in an ECA, in the order of TS 29.272 7.2.10, built once.
        host = constant_avp(BASE_S13, "Origin-Host", node.origin_host)
        realm = constant_avp(BASE_S13, "Origin-Realm", node.origin_realm)
        self._answer_avps: dict[Status, tuple[Avp, ...]] = {
            status: (_S13_APPLICATION, _SUCCESS, host, realm, _NO_STATE, avp) for status, avp in _STATUS_AVP.items()}
        self._answer_avps[Status.UNKNOWN] = (_S13_APPLICATION, _EQUIPMENT_UNKNOWN, _NO_STATE, host, realm)
        # 3004, as the answer-message of RFC 6733 7.2, built once: refusing must cost less than deciding.
        self._busy_avps = (host, realm, constant_avp(BASE_S13, "Result-Code", int(ResultCode.DIAMETER_TOO_BUSY)),
                           constant_avp(BASE_S13, "Error-Message", TOO_BUSY))

    def __call__(self, request: Message, connection: PeerConnection | None = None) -> Message | asyncio.Future[Message]:
        received = getattr(connection, "received_at", None) or time.perf_counter()
        found = _Request(request)
        if connection is not None and connection.busy:  # past the bounds, said the connection: no other work
            decision, answer = self._too_busy(request, found, connection)
            self._done(found, None, decision, answer, received)
            return answer
        query, problem = self._read_query(found)
        if problem is not None:
            answer = error_answer(request, self.node.origin_host, self.node.origin_realm, problem)
            decision = Decision(Status.INVALID, Rule.MALFORMED_REQUEST, problem.reason)
        else:
            assert query is not None
            try:
                decision, durable = self.service.record(query)
            except Exception as error:  # S13's failure boundary: the MME hears 5012, the connection stays up
                decision, answer = self._failed(request, query, error, connection)
            else:
                if durable:
                    return self._held(request, found, query, decision, connection, received)
                answer = self._answer(request, found, decision)
        self._done(found, query, decision, answer, received)
        return answer

    def _done(self, found: _Request, query: Query | None, decision: Decision, answer: Message,
              received: float) -> None:
        self.counters[_NAME[decision.status]] += 1
        if self.log is not None:
            self._log(found, query, decision, answer, received)

    def _held(self, request: Message, found: _Request, query: Query, decision: Decision,
              connection: PeerConnection | None, received: float) -> Message | asyncio.Future[Message]:
        """The answer of a decision resting on rows not on disk yet, once they are."""

        def after(recorded: bool) -> Message:
            nonlocal decision
            if recorded:
                decision = self.service.settled(query, decision)  # another agent's first sight may have come first
                answer = self._answer(request, found, decision)
            else:
                decision, answer = self._unrecorded(request, query, connection)
            self._done(found, query, decision, answer, received)
            return answer

        if self.commits is None:
            recorder = self.service.recorder
            return after(recorder is None or recorder.commit())
        return then(self.commits.wait(), after)

    def _unrecorded(self, request: Message, query: Query,
                    connection: PeerConnection | None) -> tuple[Decision, Message]:
        """The first sight (or notice) the answer rests on is not on disk in time: 5012, so
        the MME applies its own fallback; never an answer whose record could be lost."""
        self.counters["unrecorded"] += 1
        reason = "the EIR cannot record this request now (registry refuses writes)"
        self._bad("unrecorded", f"ECR for IMEI {query.imei}: its first sight is not on disk in time: answered 5012",
                  _peer_name(connection))
        return (Decision(Status.INVALID, Rule.UNRECORDED, reason, query.imei),
                error_answer(request, self.node.origin_host, self.node.origin_realm,
                             AvpProblem(ResultCode.DIAMETER_UNABLE_TO_COMPLY, reason)))

    def _too_busy(self, request: Message, found: _Request,
                  connection: PeerConnection | None) -> tuple[Decision, Message]:
        """Past a bound on requests in progress: 3004 at once, without a decision."""
        self.counters["too_busy"] += 1
        imei = found.imei()
        self._bad("overload", f"ECR for IMEI {imei}: {TOO_BUSY}: answered 3004", _peer_name(connection))
        avps = [found.session] if found.session is not None else []
        avps += self._busy_avps
        avps += found.proxies
        answer = Message(request.command_code, (request.flags & FLAG_P) | FLAG_E, request.application_id,
                         request.hop_by_hop, request.end_to_end, avps, request.dictionary)
        return Decision(Status.INVALID, Rule.OVERLOAD, TOO_BUSY, imei), answer

    def _failed(self, request: Message, query: Query, error: Exception,
                connection: PeerConnection | None) -> tuple[Decision, Message]:
        """A decision that failed (the registry could not be read, a bug): answered 5012
        DIAMETER_UNABLE_TO_COMPLY, counted, logged at most LOG_LIMIT times a second."""
        if isinstance(error, Unanswerable):  # the registry is unreachable: the profile says 5012 (agent/dbhealth.py)
            failed = error.decision
            reason = failed.reason
        else:
            self.counters["system_failure"] += 1
            self._bad("decision", f"ECR for IMEI {query.imei}: the decision failed ({type(error).__name__}: "
                      f"{str(error)[:200]}): answered 5012", _peer_name(connection))
            reason = "the decision failed: the EIR cannot judge this request now"
            failed = Decision(Status.INVALID, Rule.SYSTEM_FAILURE, reason, query.imei)
        return failed, error_answer(request, self.node.origin_host, self.node.origin_realm,
                                    AvpProblem(ResultCode.DIAMETER_UNABLE_TO_COMPLY, reason))

    def bad_message(self, connection: PeerConnection, event: BadMessage) -> None:
        """Bad input the Diameter peer answered itself (a missing or unknown M-bit AVP, an
        unknown command, bad header bits...) or dropped: the connection has counted and
        logged it (``netio.bad_input``); an answered one is a line of the answer log too, as
        every answer is."""
        if event.answered and self.log is not None:
            interface = "s13" if event.command in S13_COMMANDS else "diameter"
            self.log.write(interface, connection.sender_of(event), event.session, None, None, _NAME[Status.INVALID],
                           Rule.PROTOCOL_ERROR, f"{event.command}: {event.reason}", event.result_code, 0)

    def query(self, request: Message) -> tuple[Query | None, AvpProblem | None]:
        """The query a clean ECR asks, or the problem that makes it unanswerable."""
        return self._read_query(_Request(request))

    def _read_query(self, found: _Request) -> tuple[Query | None, AvpProblem | None]:
        terminal = found.terminal
        assert terminal is not None  # the grammar made it required: the Peer answered 5005 otherwise
        imei = version = meid = None
        for member in terminal.value:
            definition = member.definition
            if definition is _IMEI:
                imei = member
            elif definition is _SOFTWARE_VERSION:
                version = member
            elif definition is _MEID:
                meid = member
        if imei is None or imei.value is None:
            reason = ("IMEI missing: a 3GPP2-MEID alone cannot be checked by this EIR"
                      if meid is not None else "IMEI missing from Terminal-Information")
            return None, AvpProblem(ResultCode.DIAMETER_MISSING_AVP, reason, example_avp(_IMEI), (terminal,))
        text = imei.value
        wrong = malformed_imei(text, Interface.S13)
        if wrong is not None:
            return None, _invalid(wrong, imei, terminal)
        svn = None
        if version is not None:
            try:
                svn = as_received(parse_svn, version.value)
            except IdentityError as error:
                return None, _invalid(f"Software-Version: {error}", version, terminal)
        user = found.user
        imsi = None
        if user is not None:
            wrong = malformed_imsi(user.value)
            if wrong is not None:
                return None, AvpProblem(ResultCode.DIAMETER_INVALID_AVP_VALUE, f"User-Name: {wrong}", user)
            imsi = user.value
        return Query(text, Interface.S13, self.clock(), svn, imsi), None

    def _answer(self, request: Message, found: _Request, decision: Decision) -> Message:
        """The ECA, from the AVPs built once per status; Session-Id first and the
        request's Proxy-Info AVPs last, as RFC 6733 6.2 says."""
        status = decision.status
        if status is Status.INVALID:  # a well-formed IMEI AVP whose digits are not an IMEI (bad Luhn)
            terminal = found.terminal
            assert terminal is not None
            return error_answer(request, self.node.origin_host, self.node.origin_realm,
                                _invalid(decision.reason, terminal.find("IMEI"), terminal))
        avps = [found.session] if found.session is not None else []
        avps += self._answer_avps[status]
        avps += found.proxies
        return Message(request.command_code, request.flags & FLAG_P, request.application_id, request.hop_by_hop,
                       request.end_to_end, avps, request.dictionary)

    def _log(self, found: _Request, query: Query | None, decision: Decision, answer: Message, received: float) -> None:
        assert self.log is not None
        code = _STATUS_CODE.get(decision.status) or answer.value("Result-Code")
        self.log.write("s13", _value(found.origin_host), _value(found.session),
                       decision.imei or (query.imei if query else None), query.imsi if query else None,
                       _NAME[decision.status], decision.rule, decision.reason, int(code),
                       int((time.perf_counter() - received) * 1e6), decision.deadline)


def _peer_name(connection: PeerConnection | None) -> str:
    return str(getattr(connection, "peername", None) or "?")


def _value(avp: Avp | None) -> str | None:
    return None if avp is None else avp.value


def _invalid(reason: str, avp: Avp | None, terminal: Avp) -> AvpProblem:
    return AvpProblem(ResultCode.DIAMETER_INVALID_AVP_VALUE, reason, avp, (terminal,))



