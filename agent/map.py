"""The MAP adapter: a TCAP Begin carrying CheckIMEI -> Query -> Decision -> TCAP End.

It only translates (TS 29.002 and Q.773/Q.774), through the same EquipmentCheck service
as S13:

- the dialogue's application context picks the version: no dialogue portion is v1,
  equipmentMngtContext-v2/v3 are accepted with an AARE; any other context is refused with a
  TC-U-ABORT whose AARE says application-context-name-not-supported (and names v3 when the
  asker tried a later equipmentMngtContext, so it can fall back);
- the IMEI arrives as 15 TBCD digits, TAC + SNR + the spare digit (0 when sent, TS 23.003
  6.2.1), or 16 for an IMEISV: the first 14 digits are the IMEI the registry knows, digits
  15-16 of an IMEISV its software version; the vendor variant's IMSI reaches the decision;
- white, grey and black are returnResultLast with EquipmentStatus in the dialogue's
  version; UNKNOWN is returnError unknownEquipment; a missing argument is dataMissing, an
  IMEI or IMSI whose digits are not digits is unexpectedDataValue, a decision that failed
  is systemFailure, and so is one resting on a first sight the database would not take in
  time (the End leaves once it is on disk: agent/durable.py); past the bounds on requests
  in progress (agent/admission.py) a Begin gets a P-Abort resourceLimitation at once; an
  argument of the wrong type is a TC-U-REJECT (mistypedParameter);
  another operation is rejected as unrecognized; a transaction portion that cannot be read
  is answered with a P-Abort when its otid can be read, and dropped otherwise.

Every outcome is counted and logged (one answer-log line per invoke, a warning for bad input).
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
    malformed_imei,
    malformed_imsi,
)
from netio.bad_input import BadInput
from registry.decision import Rule
from sigtran import map as mapv
from sigtran import tcap
from sigtran.map import CHECK_IMEI, EquipmentStatus, ErrorCode, MapError
from sigtran.tcap import (
    AbortSource,
    AssociateResult,
    BadComponent,
    Component,
    DiagnosticUser,
    DialogueAbort,
    DialogueRequest,
    DialogueResponse,
    Invoke,
    MessageType,
    PAbortCause,
    Reject,
    ReturnError,
    ReturnResult,
    TcapError,
    TcMessage,
)

log = logging.getLogger("eir.map")

EQUIPMENT_STATUS = {Status.WHITE: EquipmentStatus.WHITE_LISTED, Status.GREY: EquipmentStatus.GREY_LISTED,
                    Status.BLACK: EquipmentStatus.BLACK_LISTED}
LATEST_VERSION = 3
_PROBLEM_ERRORS = {mapv.Problem.MISSING: ErrorCode.DATA_MISSING,
                   mapv.Problem.UNEXPECTED: ErrorCode.UNEXPECTED_DATA_VALUE}
_NAME = {status: status.value for status in Status}
# What each version's result looks like, encoded once.
_RESULTS = {(version, status): mapv.encode_check_imei_result(version, code)
            for version in (1, 2, 3) for status, code in EQUIPMENT_STATUS.items()}
_RESPONSES = {version: DialogueResponse(mapv.equipment_context(version)) for version in (2, 3)}


def wire_answer(status: Status) -> str:
    """What a CheckIMEI End says for a decision of ``status`` (``eir check`` prints it)."""
    if status is Status.UNKNOWN:
        return f"returnError unknownEquipment ({int(ErrorCode.UNKNOWN_EQUIPMENT)})"
    if status is Status.INVALID:
        return f"returnError unexpectedDataValue ({int(ErrorCode.UNEXPECTED_DATA_VALUE)})"
    return f"EquipmentStatus {EQUIPMENT_STATUS[status].name}"


class _Outcome:
    """What one invoke got, for the answer log."""

    __slots__ = ("decision", "durable", "imei", "imsi", "query", "result")

    def __init__(self, decision: Decision, result: int, imei: str | None = None, imsi: str | None = None) -> None:
        self.decision = decision
        self.result = result  # 0: a result; else the MAP error code, -1 a reject, -2 an abort
        self.imei = imei
        self.imsi = imsi
        self.durable = False  # the answer rests on rows not on disk yet
        self.query: Query | None = None  # a durable answer's query, decided again once its rows are on disk


class MapAnswerer:
    """Answers the TCAP messages SCCP delivered to the EIR subsystem; sans-I/O (the clock
    is passed in, the bytes come and go as arguments)."""

    def __init__(self, service: EquipmentCheck, log: AnswerLog | None = None,
                 clock: Callable[[], datetime] | None = None, commits: GroupCommit | None = None) -> None:
        self.service = service
        self.commits = commits  # None: a durable answer commits on this thread (Recorder.commit)
        self.log = log
        self.clock = clock or service.now  # the service's clock, read once a millisecond
        self.counters: Counter[str] = Counter()
        self._bad = BadInput(logging.getLogger("eir.map"), self.counters)  # ``log`` is the answer log here

    def __call__(self, data: bytes, peer: str, received_at: float | None = None,
                 busy: bool = False) -> bytes | asyncio.Future[bytes | None] | None:
        """The TCAP answer to ``data`` (None: nothing to send back); a future of it when it
        rests on rows not on disk yet. ``busy``: past the bounds on requests in progress."""
        started = received_at or time.perf_counter()
        try:
            message = tcap.decode(data)
        except TcapError as error:
            return self._p_abort(error, peer)
        if message.type is not MessageType.BEGIN:
            return self._not_begin(message, peer)
        otid = message.otid
        assert otid is not None  # a Begin always has one: decode checked
        if busy:
            return self._too_busy(message, otid, peer, started)
        version, refusal = self._version(message, peer)
        if refusal is not None:
            return refusal
        answered = [self._component(component, version, peer) for component in message.components]
        if any(outcome is not None and outcome.durable for _, outcome in answered):
            return self._held(answered, version, peer, otid, started)
        return self._end(answered, version, peer, otid, started)

    def _end(self, answered: list[tuple[Component, _Outcome | None]], version: int, peer: str, otid: bytes,
             started: float) -> bytes:
        for _, outcome in answered:
            if outcome is not None:
                self._done(outcome, peer, otid, started)
        return tcap.encode_end(otid, [component for component, _ in answered], _RESPONSES.get(version))

    def _held(self, answered: list[tuple[Component, _Outcome | None]], version: int, peer: str, otid: bytes,
              started: float) -> bytes | asyncio.Future[bytes | None]:
        """The End of a Begin whose answers rest on rows not on disk yet, once they are;
        systemFailure for those when the database would not take them in time."""

        def after(recorded: bool) -> bytes:
            for index, (component, outcome) in enumerate(answered):
                if outcome is not None and outcome.durable:
                    answered[index] = (self._settled(component, outcome, version) if recorded
                                       else self._unrecorded(component, outcome, peer))
            return self._end(answered, version, peer, otid, started)

        if self.commits is None:
            recorder = self.service.recorder
            return after(recorder is None or recorder.commit())
        return then(self.commits.wait(), after)

    def _settled(self, component: Component, outcome: _Outcome, version: int) -> tuple[Component, _Outcome]:
        """The answer once its rows are on disk: decided again when another agent's first
        sight came first (``EquipmentCheck.settled``)."""
        assert outcome.query is not None and isinstance(component, ReturnResult | ReturnError)
        decision = self.service.settled(outcome.query, outcome.decision)
        if decision is outcome.decision:
            return component, outcome
        outcome.decision = decision
        return self._answer_of(component.invoke_id, version, outcome), outcome

    def _unrecorded(self, component: Component, outcome: _Outcome, peer: str) -> tuple[Component, _Outcome]:
        self.counters["unrecorded"] += 1
        self._bad("unrecorded", f"CheckIMEI for IMEI {outcome.imei}: its first sight is not on disk in time: "
                  "answered systemFailure", peer)
        decision = Decision(Status.INVALID, Rule.UNRECORDED, "the EIR cannot record this request now "
                            "(registry refuses writes)", outcome.imei)
        assert component.invoke_id is not None  # an invoke's answer always has one
        return (ReturnError(component.invoke_id, ErrorCode.SYSTEM_FAILURE),
                _Outcome(decision, ErrorCode.SYSTEM_FAILURE, outcome.imei, outcome.imsi))

    def _too_busy(self, message: TcMessage, otid: bytes, peer: str, started: float) -> bytes:
        """Past a bound on requests in progress: the dialogue is aborted at once (P-Abort
        resourceLimitation, Q.773), without a decision; one answer-log line per invoke."""
        self.counters["too_busy"] += 1
        self._bad("overload", "TCAP Begin: too many requests in progress: P-Abort resourceLimitation", peer)
        decision = Decision(Status.INVALID, Rule.OVERLOAD, "the EIR has too many requests in progress")
        for component in message.components:
            if isinstance(component, Invoke):
                self._log(_Outcome(decision, -2), peer, otid, started)
        return tcap.encode_abort(otid, cause=PAbortCause.RESOURCE_LIMITATION)

    # --- dialogue -------------------------------------------------------------------------

    def _version(self, message: TcMessage, peer: str) -> tuple[int, bytes | None]:
        """The dialogue's MAP version, or the abort that refuses the dialogue."""
        otid = message.otid
        assert otid is not None
        dialogue = message.dialogue
        if message.dialogue_error is not None or (dialogue is not None and not isinstance(dialogue, DialogueRequest)):
            reason = message.dialogue_error or f"a Begin carrying {type(dialogue).__name__}"
            self._bad("dialogue", f"dialogue portion not understood ({reason}): abort", peer)
            return 0, tcap.encode_abort(otid, dialogue=DialogueAbort(AbortSource.DIALOGUE_SERVICE_PROVIDER))
        if dialogue is None:
            return 1, None
        version = mapv.context_version(dialogue.application_context)
        if version is not None and version <= LATEST_VERSION:
            return version, None
        offered = dialogue.application_context
        if offered.startswith(mapv.EQUIPMENT_MANAGEMENT_CONTEXT + "."):
            offered = mapv.equipment_context(LATEST_VERSION)  # a later version: offer ours to fall back to
        self._bad("context", f"application context {dialogue.application_context} not supported: abort", peer)
        refusal = DialogueResponse(offered, AssociateResult.REJECT_PERMANENT,
                                   DiagnosticUser.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED)
        return 0, tcap.encode_abort(otid, dialogue=refusal)

    def _p_abort(self, error: TcapError, peer: str) -> bytes | None:
        if error.otid is None:
            self._bad("tcap_discarded", f"TCAP message dropped, no transaction id to answer: {error}", peer)
            return None
        self._bad("tcap_abort", f"TCAP P-Abort {error.cause.name}: {error}", peer)
        return tcap.encode_abort(error.otid, cause=error.cause)

    def _not_begin(self, message: TcMessage, peer: str) -> bytes | None:
        """The EIR holds no open transaction: a Continue is aborted, anything else dropped."""
        if message.type is MessageType.CONTINUE and message.otid is not None:
            self._bad("tcap_abort", "TCAP Continue for a transaction the EIR does not hold: P-Abort", peer)
            return tcap.encode_abort(message.otid, cause=PAbortCause.UNRECOGNIZED_TRANSACTION_ID)
        self._bad("tcap_discarded", f"TCAP {message.type.name} dropped: the EIR holds no transaction", peer)
        return None

    # --- components -----------------------------------------------------------------------

    def _component(self, component: Component, version: int, peer: str) -> tuple[Component, _Outcome | None]:
        """The answer to one component, and for a CheckIMEI its outcome (the answer log's)."""
        if isinstance(component, Invoke):
            if component.opcode != CHECK_IMEI:
                return self._reject(component.invoke_id, tcap.INVOKE_UNRECOGNIZED_OPERATION,
                                    f"operation {component.opcode} is not CheckIMEI", peer), None
            return self._check_imei(component, version, peer)
        if isinstance(component, BadComponent):
            return self._reject(component.invoke_id, component.problem, component.reason, peer), None
        if isinstance(component, ReturnResult):
            problem = tcap.RETURN_RESULT_UNRECOGNIZED_INVOKE_ID
        elif isinstance(component, ReturnError):
            problem = tcap.RETURN_ERROR_UNRECOGNIZED_INVOKE_ID
        else:  # a Reject in a Begin: it refers to nothing the EIR sent
            problem = tcap.GENERAL_UNRECOGNIZED_COMPONENT
        return self._reject(component.invoke_id, problem, f"{type(component).__name__} in a Begin", peer), None

    def _reject(self, invoke_id: int | None, problem: tcap.Problem, reason: str, peer: str) -> Reject:
        self._bad("reject", f"TC-U-REJECT {problem}: {reason}", peer)
        return Reject(invoke_id, problem)

    def _check_imei(self, invoke: Invoke, version: int, peer: str) -> tuple[Component, _Outcome]:
        invoke_id = invoke.invoke_id
        try:
            argument = mapv.decode_check_imei(version, invoke.parameter)
            query = self._query(argument)
        except MapError as error:
            return self._bad_argument(invoke_id, error, peer)
        try:
            decision, durable = self.service.record(query)
        except Unanswerable as error:  # the registry is unreachable: the profile says systemFailure (agent/dbhealth.py)
            return ReturnError(invoke_id, ErrorCode.SYSTEM_FAILURE), _Outcome(
                error.decision, ErrorCode.SYSTEM_FAILURE, query.imei, query.imsi)
        except Exception as error:  # MAP's failure boundary: the MSC hears systemFailure, the agent goes on
            self.counters["system_failure"] += 1
            self._bad("decision", f"CheckIMEI for IMEI {query.imei}: the decision failed ({type(error).__name__}: "
                      f"{str(error)[:200]}): answered systemFailure", peer)
            failed = Decision(Status.INVALID, Rule.SYSTEM_FAILURE, "the decision failed", query.imei)
            return ReturnError(invoke_id, ErrorCode.SYSTEM_FAILURE), _Outcome(
                failed, ErrorCode.SYSTEM_FAILURE, query.imei, query.imsi)
        outcome = _Outcome(decision, 0, decision.imei or query.imei, query.imsi)
        if durable:
            outcome.durable, outcome.query = True, query
        return self._answer_of(invoke_id, version, outcome), outcome

    @staticmethod
    def _answer_of(invoke_id: int, version: int, outcome: _Outcome) -> Component:
        """The component answering a decision (its MAP error code, if any, in ``outcome.result``)."""
        status = outcome.decision.status
        if status is Status.UNKNOWN:
            outcome.result = ErrorCode.UNKNOWN_EQUIPMENT
            return ReturnError(invoke_id, ErrorCode.UNKNOWN_EQUIPMENT)
        if status is Status.INVALID:  # the profile rejects what is not an IMEI
            outcome.result = ErrorCode.UNEXPECTED_DATA_VALUE
            return ReturnError(invoke_id, ErrorCode.UNEXPECTED_DATA_VALUE)
        outcome.result = 0
        return ReturnResult(invoke_id, CHECK_IMEI, _RESULTS[version, status])

    def _query(self, argument: mapv.CheckImeiArgument) -> Query:
        digits = argument.imei
        wrong = malformed_imei(digits, Interface.MAP)
        if wrong is not None:
            raise MapError(mapv.Problem.UNEXPECTED, wrong)
        imsi = argument.imsi
        if imsi is not None:
            wrong = malformed_imsi(imsi)
            if wrong is not None:
                raise MapError(mapv.Problem.UNEXPECTED, f"IMSI: {wrong}")
        svn = digits[14:16] if len(digits) == 16 else None
        return Query(digits[:14], Interface.MAP, self.clock(), svn, imsi)

    def _bad_argument(self, invoke_id: int, error: MapError, peer: str) -> tuple[Component, _Outcome]:
        code = _PROBLEM_ERRORS.get(error.problem)
        decision = Decision(Status.INVALID, Rule.MALFORMED_REQUEST, str(error))
        if code is None:  # the argument is not of the operation's type
            return self._reject(invoke_id, tcap.INVOKE_MISTYPED_PARAMETER, str(error), peer), _Outcome(decision, -1)
        self._bad("argument", f"CheckIMEI {code.name}: {error}", peer)
        return ReturnError(invoke_id, code), _Outcome(decision, code)

    # --- log and counters -----------------------------------------------------------------

    def _done(self, outcome: _Outcome, peer: str, otid: bytes, started: float) -> None:
        """An invoke answered: counted by status, and a line of the answer log."""
        self.counters[_NAME[outcome.decision.status]] += 1
        self._log(outcome, peer, otid, started)

    def _log(self, outcome: _Outcome, peer: str, otid: bytes, started: float) -> None:
        if self.log is None:
            return
        decision = outcome.decision
        self.log.write("map", peer, otid.hex(), outcome.imei, outcome.imsi, _NAME[decision.status], decision.rule,
                       decision.reason, outcome.result, int((time.perf_counter() - started) * 1e6), decision.deadline)
