"""TCAP (ITU-T Q.773) values: the message types, causes, dialogue PDUs and components that
``sigtran.tcap`` decodes into and encodes from. Import them from ``sigtran.tcap``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

# --- constants (Q.773 tables) ----------------------------------------------------------


class PAbortCause(IntEnum):
    UNRECOGNIZED_MESSAGE_TYPE = 0
    UNRECOGNIZED_TRANSACTION_ID = 1
    BADLY_FORMATTED_TRANSACTION_PORTION = 2
    INCORRECT_TRANSACTION_PORTION = 3
    RESOURCE_LIMITATION = 4


class MessageType(IntEnum):
    UNIDIRECTIONAL = 0x61
    BEGIN = 0x62
    END = 0x64
    CONTINUE = 0x65
    ABORT = 0x67


DIALOGUE_AS_ID = "0.0.17.773.1.1.1"
UNIDIALOGUE_AS_ID = "0.0.17.773.1.2.1"


class AssociateResult(IntEnum):
    ACCEPTED = 0
    REJECT_PERMANENT = 1


class DiagnosticUser(IntEnum):
    NULL = 0
    NO_REASON_GIVEN = 1
    APPLICATION_CONTEXT_NAME_NOT_SUPPORTED = 2


class DiagnosticProvider(IntEnum):
    NULL = 0
    NO_REASON_GIVEN = 1
    NO_COMMON_DIALOGUE_PORTION = 2


class AbortSource(IntEnum):
    DIALOGUE_SERVICE_USER = 0
    DIALOGUE_SERVICE_PROVIDER = 1


class ProblemType(IntEnum):  # a Reject's problem tag [0] to [3]
    GENERAL = 0
    INVOKE = 1
    RETURN_RESULT = 2
    RETURN_ERROR = 3


class TcapError(ValueError):
    """A transaction portion that cannot be used; ``reason`` says why, ``cause`` is what a
    P-Abort answering it carries, ``otid`` the sender's transaction ID when it could be read."""

    def __init__(self, reason: str, cause: PAbortCause, otid: bytes | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause
        self.otid = otid


# --- values ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DialogueRequest:  # AARQ
    application_context: str
    user_information: bytes | None = None  # the raw contents of [30] (EXTERNALs), not interpreted


@dataclass(frozen=True, slots=True)
class DialogueResponse:
    """AARE. The diagnostic's type picks its source, user [1] or provider [2] (IntEnums both:
    NULL == NULL across them, so compare ``type(diagnostic)`` where it matters)."""

    application_context: str
    result: AssociateResult = AssociateResult.ACCEPTED
    diagnostic: DiagnosticUser | DiagnosticProvider = DiagnosticUser.NULL


@dataclass(frozen=True, slots=True)
class DialogueAbort:  # ABRT
    source: AbortSource


Dialogue = DialogueRequest | DialogueResponse | DialogueAbort


@dataclass(frozen=True, slots=True)
class Problem:
    type: ProblemType
    code: int

    def __str__(self) -> str:
        return _PROBLEM_NAMES.get((self.type, self.code), f"{self.type.name} problem {self.code}")


GENERAL_UNRECOGNIZED_COMPONENT = Problem(ProblemType.GENERAL, 0)
GENERAL_MISTYPED_COMPONENT = Problem(ProblemType.GENERAL, 1)
GENERAL_BADLY_STRUCTURED_COMPONENT = Problem(ProblemType.GENERAL, 2)
INVOKE_DUPLICATE_INVOKE_ID = Problem(ProblemType.INVOKE, 0)
INVOKE_UNRECOGNIZED_OPERATION = Problem(ProblemType.INVOKE, 1)
INVOKE_MISTYPED_PARAMETER = Problem(ProblemType.INVOKE, 2)
INVOKE_RESOURCE_LIMITATION = Problem(ProblemType.INVOKE, 3)
INVOKE_INITIATING_RELEASE = Problem(ProblemType.INVOKE, 4)
INVOKE_UNRECOGNIZED_LINKED_ID = Problem(ProblemType.INVOKE, 5)
INVOKE_LINKED_RESPONSE_UNEXPECTED = Problem(ProblemType.INVOKE, 6)
INVOKE_UNEXPECTED_LINKED_OPERATION = Problem(ProblemType.INVOKE, 7)
RETURN_RESULT_UNRECOGNIZED_INVOKE_ID = Problem(ProblemType.RETURN_RESULT, 0)
RETURN_RESULT_UNEXPECTED = Problem(ProblemType.RETURN_RESULT, 1)
RETURN_RESULT_MISTYPED_PARAMETER = Problem(ProblemType.RETURN_RESULT, 2)
RETURN_ERROR_UNRECOGNIZED_INVOKE_ID = Problem(ProblemType.RETURN_ERROR, 0)
RETURN_ERROR_UNEXPECTED = Problem(ProblemType.RETURN_ERROR, 1)
RETURN_ERROR_UNRECOGNIZED_ERROR = Problem(ProblemType.RETURN_ERROR, 2)
RETURN_ERROR_UNEXPECTED_ERROR = Problem(ProblemType.RETURN_ERROR, 3)
RETURN_ERROR_MISTYPED_PARAMETER = Problem(ProblemType.RETURN_ERROR, 4)

_PROBLEM_NAMES = {(value.type, value.code): name for name, value in list(globals().items())
                  if isinstance(value, Problem)}


@dataclass(frozen=True, slots=True)
class Invoke:
    invoke_id: int
    opcode: int
    parameter: bytes = b""  # the raw elements after the operation code: none, one or more
    linked_id: int | None = None


@dataclass(frozen=True, slots=True)
class ReturnResult:  # returnResultLast (last) or returnResultNotLast
    invoke_id: int
    opcode: int | None = None  # None: no result SEQUENCE
    result: bytes = b""  # the raw elements after the operation code inside it
    last: bool = True


@dataclass(frozen=True, slots=True)
class ReturnError:
    invoke_id: int
    error_code: int
    parameter: bytes = b""


@dataclass(frozen=True, slots=True)
class Reject:
    invoke_id: int | None  # None: not derivable (NULL on the wire)
    problem: Problem


@dataclass(frozen=True, slots=True)
class BadComponent:  # a received component not understood: answer it with Reject(invoke_id, problem)
    invoke_id: int | None
    problem: Problem
    reason: str


Component = Invoke | ReturnResult | ReturnError | Reject | BadComponent


@dataclass(frozen=True, slots=True)
class TcMessage:
    type: MessageType
    otid: bytes | None
    dtid: bytes | None
    dialogue: Dialogue | None = None
    components: tuple[Component, ...] = ()
    abort_cause: PAbortCause | None = None  # an Abort's P-Abort cause
    dialogue_error: str | None = None  # a dialogue portion was present but could not be understood
