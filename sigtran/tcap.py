"""TCAP (ITU-T Q.773) as MAP uses it: transactions, the dialogue portion and components, sans-I/O.

``decode`` turns one TCAP message (an SCCP data part) into a ``TcMessage``, definite and
indefinite lengths alike; ``encode_begin``/``_continue``/``_end``/``_abort`` write one in the
minimal definite form, as pycrate does. Bad input is sorted by who answers it (Q.774):

- an unusable transaction portion raises ``TcapError``, the only exception ``decode`` raises,
  with the P-Abort cause and the sender's otid whenever it could be read (even from a
  truncated Begin or Continue). An identifier octet that is no message type is
  UNRECOGNIZED_MESSAGE_TYPE; octets that are not BER (a length past the end, octets after
  the message), a transaction ID not a primitive OCTET STRING of 1 to 4 octets, an Abort's
  P-Abort cause not among Q.773's are BADLY_FORMATTED_TRANSACTION_PORTION; well-formed
  elements wrong for the message type (an id missing, extra or swapped, an element repeated,
  out of order or unknown, a Unidirectional without components) INCORRECT_TRANSACTION_PORTION.
  Inside an indefinite length every element must be BER for the end to be found, so there a
  broken component is a badly formatted transaction portion too;
- a dialogue portion not understood sets ``dialogue_error``, the rest is decoded (answer: an
  ABRT from the provider). It must be EXTERNAL { dialogue-as-id, single-ASN1-type { AARQ |
  AARE | ABRT } } as Q.773 writes it, offering protocol version 1 if it names versions (AUDT,
  the unidialogue, is not understood). User information is kept raw in an AARQ, dropped in
  AARE and ABRT;
- a component not understood becomes a ``BadComponent`` in its place, with the invoke ID when
  one could be read and the problem a Reject answering it carries; decoding goes on with the
  next. A component portion whose octets stop being BER ends in BadComponent(None,
  badlyStructuredComponent).

Operation and error codes are local INTEGERs (a global one is an unrecognized operation or
error); invoke IDs INTEGER (-128..127); parameters stay raw octets, whole elements, for MAP.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from sigtran import ber
from sigtran.ber import BerError
from sigtran.tcap_values import (
    DIALOGUE_AS_ID,
    GENERAL_BADLY_STRUCTURED_COMPONENT,
    GENERAL_MISTYPED_COMPONENT,
    GENERAL_UNRECOGNIZED_COMPONENT,
    INVOKE_DUPLICATE_INVOKE_ID,
    INVOKE_INITIATING_RELEASE,
    INVOKE_LINKED_RESPONSE_UNEXPECTED,
    INVOKE_MISTYPED_PARAMETER,
    INVOKE_RESOURCE_LIMITATION,
    INVOKE_UNEXPECTED_LINKED_OPERATION,
    INVOKE_UNRECOGNIZED_LINKED_ID,
    INVOKE_UNRECOGNIZED_OPERATION,
    RETURN_ERROR_MISTYPED_PARAMETER,
    RETURN_ERROR_UNEXPECTED,
    RETURN_ERROR_UNEXPECTED_ERROR,
    RETURN_ERROR_UNRECOGNIZED_ERROR,
    RETURN_ERROR_UNRECOGNIZED_INVOKE_ID,
    RETURN_RESULT_MISTYPED_PARAMETER,
    RETURN_RESULT_UNEXPECTED,
    RETURN_RESULT_UNRECOGNIZED_INVOKE_ID,
    UNIDIALOGUE_AS_ID,
    AbortSource,
    AssociateResult,
    BadComponent,
    Component,
    DiagnosticProvider,
    DiagnosticUser,
    Dialogue,
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
)

__all__ = [
    "DIALOGUE_AS_ID",
    "GENERAL_BADLY_STRUCTURED_COMPONENT",
    "GENERAL_MISTYPED_COMPONENT",
    "GENERAL_UNRECOGNIZED_COMPONENT",
    "INVOKE_DUPLICATE_INVOKE_ID",
    "INVOKE_INITIATING_RELEASE",
    "INVOKE_LINKED_RESPONSE_UNEXPECTED",
    "INVOKE_MISTYPED_PARAMETER",
    "INVOKE_RESOURCE_LIMITATION",
    "INVOKE_UNEXPECTED_LINKED_OPERATION",
    "INVOKE_UNRECOGNIZED_LINKED_ID",
    "INVOKE_UNRECOGNIZED_OPERATION",
    "RETURN_ERROR_MISTYPED_PARAMETER",
    "RETURN_ERROR_UNEXPECTED",
    "RETURN_ERROR_UNEXPECTED_ERROR",
    "RETURN_ERROR_UNRECOGNIZED_ERROR",
    "RETURN_ERROR_UNRECOGNIZED_INVOKE_ID",
    "RETURN_RESULT_MISTYPED_PARAMETER",
    "RETURN_RESULT_UNEXPECTED",
    "RETURN_RESULT_UNRECOGNIZED_INVOKE_ID",
    "UNIDIALOGUE_AS_ID",
    "AbortSource",
    "AssociateResult",
    "BadComponent",
    "Component",
    "DiagnosticProvider",
    "DiagnosticUser",
    "Dialogue",
    "DialogueAbort",
    "DialogueRequest",
    "DialogueResponse",
    "Invoke",
    "MessageType",
    "PAbortCause",
    "Problem",
    "ProblemType",
    "Reject",
    "ReturnError",
    "ReturnResult",
    "TcMessage",
    "TcapError",
    "decode",
    "encode_abort",
    "encode_begin",
    "encode_continue",
    "encode_end",
]

# --- identifier octets -------------------------------------------------------------------

_INTEGER, _NULL, _OID, _SEQUENCE, _EXTERNAL = 0x02, 0x05, 0x06, 0x30, 0x28
_OTID, _DTID, _P_ABORT_CAUSE, _DIALOGUE, _COMPONENTS = 0x48, 0x49, 0x4A, 0x6B, 0x6C
_INVOKE, _RESULT_LAST, _ERROR, _REJECT, _RESULT_NOT_LAST = 0xA1, 0xA2, 0xA3, 0xA4, 0xA7
_COMPONENT_TAGS = frozenset((_INVOKE, _RESULT_LAST, _ERROR, _REJECT, _RESULT_NOT_LAST))
_AARQ, _AARE, _ABRT = 0x60, 0x61, 0x64
_SINGLE_ASN1_TYPE, _CONTEXT_NAME, _RESULT, _DIAGNOSTIC, _USER_INFORMATION = 0xA0, 0xA1, 0xA2, 0xA3, 0xBE
_DIAGNOSTIC_USER, _DIAGNOSTIC_PROVIDER = 0xA1, 0xA2
_DIAGNOSTICS: dict[int, type[DiagnosticUser] | type[DiagnosticProvider]] = {
    _DIAGNOSTIC_USER: DiagnosticUser, _DIAGNOSTIC_PROVIDER: DiagnosticProvider}
_IMPLICIT_0 = 0x80  # protocol-version, abort-source, linkedID; problem tags are 0x80 to 0x83
_MESSAGE_TYPES = {kind.value: kind for kind in MessageType}
_TRANSACTION_IDS = {MessageType.UNIDIRECTIONAL: (), MessageType.BEGIN: (_OTID,), MessageType.END: (_DTID,),
                    MessageType.CONTINUE: (_OTID, _DTID), MessageType.ABORT: (_DTID,)}
_BADLY, _INCORRECT = PAbortCause.BADLY_FORMATTED_TRANSACTION_PORTION, PAbortCause.INCORRECT_TRANSACTION_PORTION

_Part = tuple[int, int, int]  # identifier octet, start and end of the contents


class _NotUnderstood(Exception):
    """Internal: a dialogue portion or component that cannot be understood (never escapes)."""

    def __init__(self, reason: str, problem: Problem = GENERAL_MISTYPED_COMPONENT) -> None:
        super().__init__(reason)
        self.reason = reason
        self.problem = problem


# --- decoding: elements --------------------------------------------------------------------


def _element(data: bytes, offset: int, limit: int) -> tuple[int, int, int, int]:
    """(identifier octet, contents start, contents end, next offset) of the element at ``offset``.
    The short definite form is read here; anything else (long or indefinite lengths, high tag
    numbers, every error) goes through ber.read. A high tag number keeps its first identifier
    octet, which matches no TCAP tag."""
    if offset + 1 < limit:
        identifier = data[offset]
        size = data[offset + 1]
        end = offset + 2 + size
        if size < 0x80 and end <= limit and identifier & 0x1F != 0x1F:
            return identifier, offset + 2, end, end
    element = ber.read(data, offset, limit)
    return data[offset], element.start, element.end, element.next


def _children(data: bytes, start: int, end: int) -> list[_Part]:
    parts = []
    while start < end:
        identifier, first, last, start = _element(data, start, end)
        parts.append((identifier, first, last))
    return parts


def _only(data: bytes, start: int, end: int, what: str) -> _Part:
    parts = _children(data, start, end)
    if len(parts) != 1:
        raise _NotUnderstood(f"{what} holds {len(parts)} elements, not one")
    return parts[0]


_read_oid = lru_cache(maxsize=256)(ber.read_oid)


def _small_integer(data: bytes, start: int, end: int) -> int | None:
    """An INTEGER (-128..127)'s value, None when it is not one."""
    if end - start != 1:
        return None
    value = data[start]
    return value - 256 if value > 127 else value


def _integer(data: bytes, part: _Part, what: str) -> int:
    try:
        return ber.read_integer(data[part[1]:part[2]])
    except BerError as error:
        raise _NotUnderstood(f"{what}: {error}") from None


# --- decoding: the transaction portion -----------------------------------------------------


def decode(data: bytes) -> TcMessage:
    """One whole TCAP message; TcapError when its transaction portion cannot be used."""
    if not data:
        raise TcapError("an empty TCAP message", _BADLY)
    kind = _MESSAGE_TYPES.get(data[0])
    if kind is None:
        raise TcapError(f"identifier {data[0]:#04x} is not a TCAP message type", PAbortCause.UNRECOGNIZED_MESSAGE_TYPE)
    try:
        _, start, end, after = _element(data, 0, len(data))
        parts = _children(data, start, end)
    except BerError as error:
        raise TcapError(f"{kind.name}: {error}", _BADLY, _salvage_otid(data)) from None
    otid, dtid = _transaction_ids(data, kind, parts)
    if after != len(data):
        raise TcapError(f"{len(data) - after} octets after the {kind.name}", _BADLY, otid)
    rest = parts[len(_TRANSACTION_IDS[kind]):]
    if kind is MessageType.ABORT:
        return _abort(data, dtid, rest)
    dialogue: Dialogue | None = None
    not_understood: str | None = None
    components: tuple[Component, ...] = ()
    if rest and rest[0][0] == _DIALOGUE:
        dialogue, not_understood = _read_dialogue(data[rest[0][1]:rest[0][2]])
        rest = rest[1:]
    if rest and rest[0][0] == _COMPONENTS:
        components = _components(data, rest[0][1], rest[0][2])
        rest = rest[1:]
    elif kind is MessageType.UNIDIRECTIONAL:
        raise TcapError("a UNIDIRECTIONAL without components", _INCORRECT)
    if rest:
        raise TcapError(f"a {kind.name} with an unexpected element {rest[0][0]:#04x}", _INCORRECT, otid)
    return TcMessage(kind, otid, dtid, dialogue, components, None, not_understood)


def _transaction_ids(data: bytes, kind: MessageType, parts: list[_Part]) -> tuple[bytes | None, bytes | None]:
    """(otid, dtid) as the message type wants them; the otid comes first, so every later
    error can name it."""
    wanted = _TRANSACTION_IDS[kind]
    ids: list[bytes] = []
    for index, expected in enumerate(wanted):
        otid = ids[0] if ids else None
        name = "otid" if expected == _OTID else "dtid"
        if index >= len(parts) or parts[index][0] & ~0x20 != expected:
            raise TcapError(f"a {kind.name} without its {name} in place", _INCORRECT, otid)
        identifier, start, end = parts[index]
        if identifier != expected or not 1 <= end - start <= 4:
            raise TcapError(f"{name} {data[start:end].hex()} is not a primitive OCTET STRING of 1 to 4 octets",
                            _BADLY, otid)
        ids.append(data[start:end])
    return (ids[0] if wanted[:1] == (_OTID,) else None), (ids[-1] if wanted[-1:] == (_DTID,) else None)


def _salvage_otid(data: bytes) -> bytes | None:
    """The otid of a Begin or Continue whose message element is broken (truncated, say),
    when its first element can still be read."""
    if data[0] not in (MessageType.BEGIN, MessageType.CONTINUE) or len(data) < 2:
        return None
    start = 2 if data[1] <= 0x80 else 2 + (data[1] & 0x7F)
    try:
        identifier, first, last, _ = _element(data, start, len(data))
    except BerError:
        return None
    return data[first:last] if identifier == _OTID and 1 <= last - first <= 4 else None


def _abort(data: bytes, dtid: bytes | None, rest: list[_Part]) -> TcMessage:
    """Abort: dtid, then a P-Abort cause or a dialogue portion (a U-Abort), or nothing."""
    if len(rest) > 1 or (rest and rest[0][0] not in (_P_ABORT_CAUSE, _DIALOGUE)):
        raise TcapError(f"an ABORT with an unexpected element {rest[-1][0]:#04x}", _INCORRECT)
    if not rest:
        return TcMessage(MessageType.ABORT, None, dtid)
    identifier, start, end = rest[0]
    if identifier == _DIALOGUE:
        dialogue, error = _read_dialogue(data[start:end])
        return TcMessage(MessageType.ABORT, None, dtid, dialogue, dialogue_error=error)
    try:
        return TcMessage(MessageType.ABORT, None, dtid, abort_cause=PAbortCause(ber.read_integer(data[start:end])))
    except (BerError, ValueError):
        raise TcapError(f"P-Abort cause {data[start:end].hex()} is not one of Q.773's", _BADLY) from None


# --- decoding: the dialogue portion --------------------------------------------------------


@lru_cache(maxsize=256)
def _read_dialogue(contents: bytes) -> tuple[Dialogue | None, str | None]:
    """(dialogue, None), or (None, why it cannot be understood). Cached: an MSC sends the
    same few dialogue portions over and over (and the values are frozen)."""
    try:
        return _dialogue(contents, 0, len(contents)), None
    except _NotUnderstood as error:
        return None, error.reason
    except BerError as error:
        return None, f"not BER: {error}"


def _dialogue(data: bytes, start: int, end: int) -> Dialogue:
    identifier, start, end = _only(data, start, end, "the dialogue portion")
    parts = _children(data, start, end) if identifier == _EXTERNAL else []
    if len(parts) != 2 or parts[0][0] != _OID or parts[1][0] != _SINGLE_ASN1_TYPE:
        raise _NotUnderstood("the dialogue portion is not an EXTERNAL { direct-reference, single-ASN1-type }")
    syntax = _read_oid(data[parts[0][1]:parts[0][2]])
    if syntax != DIALOGUE_AS_ID:
        what = "a unidirectional dialogue (AUDT)" if syntax == UNIDIALOGUE_AS_ID else f"abstract syntax {syntax}"
        raise _NotUnderstood(f"{what} is not the structured dialogue")
    identifier, start, end = _only(data, parts[1][1], parts[1][2], "single-ASN1-type")
    pdu = _children(data, start, end)
    if identifier == _ABRT:
        return _abrt(data, pdu)
    if identifier not in (_AARQ, _AARE):
        raise _NotUnderstood(f"dialogue PDU {identifier:#04x} is not AARQ, AARE or ABRT")
    index = _protocol_version(data, pdu)
    if index >= len(pdu) or pdu[index][0] != _CONTEXT_NAME:
        raise _NotUnderstood("a dialogue PDU without its application-context-name")
    inner = _only(data, pdu[index][1], pdu[index][2], "application-context-name")
    if inner[0] != _OID:
        raise _NotUnderstood(f"application-context-name holds {inner[0]:#04x}, not an OBJECT IDENTIFIER")
    context = _read_oid(data[inner[1]:inner[2]])
    if identifier == _AARQ:
        return DialogueRequest(context, _user_information(data, pdu, index + 1))
    return _aare(data, pdu, index + 1, context)


def _protocol_version(data: bytes, parts: list[_Part]) -> int:
    """How many elements the optional protocol-version takes (0 or 1); version 1 it must offer."""
    if not parts or parts[0][0] != _IMPLICIT_0:
        return 0
    bits = data[parts[0][1]:parts[0][2]]
    if len(bits) < 2 or bits[0] > 7 or not bits[1] & 0x80:
        raise _NotUnderstood(f"protocol version {bits.hex()} does not offer version 1")
    return 1


def _user_information(data: bytes, parts: list[_Part], index: int) -> bytes | None:
    """The raw contents of the optional [30], which must end the PDU."""
    if index == len(parts):
        return None
    if parts[index][0] != _USER_INFORMATION or index + 1 != len(parts):
        raise _NotUnderstood(f"a dialogue PDU with an unexpected element {parts[index][0]:#04x}")
    return data[parts[index][1]:parts[index][2]]


def _explicit_integer(data: bytes, part: _Part, what: str) -> int:
    inner = _only(data, part[1], part[2], what)
    if inner[0] != _INTEGER:
        raise _NotUnderstood(f"{what} holds {inner[0]:#04x}, not an INTEGER")
    return _integer(data, inner, what)


def _aare(data: bytes, parts: list[_Part], index: int, context: str) -> DialogueResponse:
    """The AARE after its context name: result, result-source-diagnostic, [user-information]."""
    if len(parts) < index + 2 or parts[index][0] != _RESULT or parts[index + 1][0] != _DIAGNOSTIC:
        raise _NotUnderstood("an AARE without its result and result-source-diagnostic")
    result = _explicit_integer(data, parts[index], "result")
    source = _only(data, parts[index + 1][1], parts[index + 1][2], "result-source-diagnostic")
    diagnostic = _explicit_integer(data, source, "result-source-diagnostic")
    _user_information(data, parts, index + 2)
    kind = _DIAGNOSTICS.get(source[0])
    if kind is None:
        raise _NotUnderstood(f"result-source-diagnostic {source[0]:#04x} is neither user [1] nor provider [2]")
    try:
        return DialogueResponse(context, AssociateResult(result), kind(diagnostic))
    except ValueError:
        raise _NotUnderstood(f"result {result} or diagnostic {diagnostic} is not one of Q.773's") from None


def _abrt(data: bytes, parts: list[_Part]) -> DialogueAbort:
    if not parts or parts[0][0] != _IMPLICIT_0:
        raise _NotUnderstood("an ABRT without its abort-source")
    source = _integer(data, parts[0], "abort-source")
    _user_information(data, parts, 1)
    if source not in (AbortSource.DIALOGUE_SERVICE_USER, AbortSource.DIALOGUE_SERVICE_PROVIDER):
        raise _NotUnderstood(f"abort-source {source} is not one of Q.773's")
    return DialogueAbort(AbortSource(source))


# --- decoding: components ------------------------------------------------------------------


def _components(data: bytes, start: int, end: int) -> tuple[Component, ...]:
    components: list[Component] = []
    while start < end:
        try:
            identifier, first, last, start = _element(data, start, end)
        except BerError as error:
            components.append(BadComponent(None, GENERAL_BADLY_STRUCTURED_COMPONENT,
                                           f"the component portion is not BER: {error}"))
            break
        components.append(_component(data, identifier, first, last))
    return tuple(components)


def _component(data: bytes, identifier: int, start: int, end: int) -> Component:
    if identifier not in _COMPONENT_TAGS:
        return BadComponent(None, GENERAL_UNRECOGNIZED_COMPONENT, f"component tag {identifier:#04x} is unknown")
    invoke_id: int | None = None
    try:
        parts = _children(data, start, end)
        if identifier == _REJECT:
            return _reject(data, parts)
        invoke_id = _invoke_id(data, parts)
        if identifier == _INVOKE:
            return _invoke(data, invoke_id, parts, end)
        if identifier == _ERROR:
            code = _local_code(data, parts, 1, "error code", RETURN_ERROR_UNRECOGNIZED_ERROR)
            return ReturnError(invoke_id, code, data[parts[1][2]:end])
        return _return_result(data, invoke_id, parts, identifier == _RESULT_LAST)
    except BerError as error:
        return BadComponent(_derivable_id(data, start, end), GENERAL_BADLY_STRUCTURED_COMPONENT,
                            f"component {identifier:#04x} is not BER: {error}")
    except _NotUnderstood as error:
        return BadComponent(_derivable_id(data, start, end) if invoke_id is None else invoke_id, error.problem,
                            error.reason)


def _derivable_id(data: bytes, start: int, end: int) -> int | None:
    """The invoke ID a component begins with, when it can be read."""
    try:
        identifier, first, last, _ = _element(data, start, end)
    except BerError:
        return None
    return _small_integer(data, first, last) if identifier == _INTEGER else None


def _invoke_id(data: bytes, parts: list[_Part], index: int = 0, tag: int = _INTEGER, what: str = "invoke ID") -> int:
    identifier, start, end = parts[index] if index < len(parts) else (-1, 0, 0)
    value = _small_integer(data, start, end)
    if identifier != tag or value is None:
        raise _NotUnderstood(f"a component without an {what} of INTEGER (-128..127)")
    return value


def _local_code(data: bytes, parts: list[_Part], index: int, what: str, global_problem: Problem) -> int:
    identifier = parts[index][0] if index < len(parts) else -1
    if identifier == _OID:
        raise _NotUnderstood(f"a global {what}", global_problem)
    if identifier != _INTEGER:
        raise _NotUnderstood(f"a component without an {what} of INTEGER")
    return _integer(data, parts[index], what)


def _invoke(data: bytes, invoke_id: int, parts: list[_Part], end: int) -> Invoke:
    linked = len(parts) > 1 and parts[1][0] == _IMPLICIT_0
    linked_id = _invoke_id(data, parts, 1, _IMPLICIT_0, "linked ID") if linked else None
    opcode = _local_code(data, parts, 1 + linked, "operation code", INVOKE_UNRECOGNIZED_OPERATION)
    return Invoke(invoke_id, opcode, data[parts[1 + linked][2]:end], linked_id)


def _return_result(data: bytes, invoke_id: int, parts: list[_Part], last: bool) -> ReturnResult:
    if len(parts) == 1:
        return ReturnResult(invoke_id, None, b"", last)
    if len(parts) > 2 or parts[1][0] != _SEQUENCE:
        raise _NotUnderstood("a return result whose result is not one SEQUENCE")
    inner = _children(data, parts[1][1], parts[1][2])
    opcode = _local_code(data, inner, 0, "operation code", RETURN_RESULT_MISTYPED_PARAMETER)
    return ReturnResult(invoke_id, opcode, data[inner[0][2]:parts[1][2]], last)


def _reject(data: bytes, parts: list[_Part]) -> Reject:
    if len(parts) != 2:
        raise _NotUnderstood(f"a reject of {len(parts)} elements, not invoke ID and problem")
    (identifier, start, end), problem = parts
    invoke_id = None if identifier == _NULL and start == end else _invoke_id(data, parts)
    if not _IMPLICIT_0 <= problem[0] <= _IMPLICIT_0 + ProblemType.RETURN_ERROR:
        raise _NotUnderstood(f"reject problem of tag {problem[0]:#04x}")
    return Reject(invoke_id, Problem(ProblemType(problem[0] - _IMPLICIT_0), _integer(data, problem, "problem")))


# --- encoding ------------------------------------------------------------------------------


def _tlv(identifier: int, contents: bytes) -> bytes:
    size = len(contents)
    if size < 0x80:
        return bytes((identifier, size)) + contents
    return bytes((identifier,)) + ber.length(size) + contents


def _integer_element(value: int, identifier: int = _INTEGER) -> bytes:
    return _tlv(identifier, ber.integer(value))


def _transaction_id(identifier: int, value: bytes) -> bytes:
    if not 1 <= len(value) <= 4:
        raise ValueError(f"a transaction ID of {len(value)} octets, not 1 to 4")
    return _tlv(identifier, bytes(value))


_INVOKE_IDS = {value: _integer_element(value) for value in range(-128, 128)}


def _id_element(invoke_id: int) -> bytes:
    element = _INVOKE_IDS.get(invoke_id)
    if element is None:
        raise ValueError(f"invoke ID {invoke_id} is outside -128..127")
    return element


def _encode_component(c: Component) -> bytes:
    if isinstance(c, Invoke):
        linked = b"" if c.linked_id is None else bytes((_IMPLICIT_0,)) + _id_element(c.linked_id)[1:]
        return _tlv(_INVOKE, _id_element(c.invoke_id) + linked + _integer_element(c.opcode) + c.parameter)
    if isinstance(c, ReturnResult):
        if c.opcode is None and c.result:
            raise ValueError("a return result with a result needs its operation code")
        result = b"" if c.opcode is None else _tlv(_SEQUENCE, _integer_element(c.opcode) + c.result)
        return _tlv(_RESULT_LAST if c.last else _RESULT_NOT_LAST, _id_element(c.invoke_id) + result)
    if isinstance(c, ReturnError):
        return _tlv(_ERROR, _id_element(c.invoke_id) + _integer_element(c.error_code) + c.parameter)
    if isinstance(c, Reject):
        invoke_id = b"\x05\x00" if c.invoke_id is None else _id_element(c.invoke_id)
        return _tlv(_REJECT, invoke_id + _integer_element(c.problem.code, _IMPLICIT_0 + ProblemType(c.problem.type)))
    raise ValueError(f"{type(c).__name__} is not sent: answer a BadComponent with a Reject")


def _component_portion(components: Sequence[Component]) -> bytes:
    if not components:
        return b""
    return _tlv(_COMPONENTS, b"".join([_encode_component(component) for component in components]))


def _dialogue_portion(dialogue: Dialogue | None, allowed: tuple[type, ...], message: str) -> bytes:
    if dialogue is None:
        return b""
    if not isinstance(dialogue, allowed):
        raise ValueError(f"a {message} cannot carry {type(dialogue).__name__}")
    return _encode_dialogue(dialogue, isinstance(getattr(dialogue, "diagnostic", None), DiagnosticProvider))


@lru_cache(maxsize=64)
def _encode_dialogue(dialogue: Dialogue, provider: bool) -> bytes:
    """Cached (a few dialogue portions cover an EIR's traffic), keyed on the diagnostic's source
    too, as DiagnosticUser.NULL == DiagnosticProvider.NULL."""
    if isinstance(dialogue, DialogueAbort):
        pdu = _tlv(_ABRT, _integer_element(dialogue.source, _IMPLICIT_0))
    else:
        head = b"\x80\x02\x07\x80" + _tlv(_CONTEXT_NAME, _tlv(_OID, ber.oid(dialogue.application_context)))
        if isinstance(dialogue, DialogueRequest):
            user = dialogue.user_information
            pdu = _tlv(_AARQ, head + (b"" if user is None else _tlv(_USER_INFORMATION, user)))
        else:
            source = _DIAGNOSTIC_PROVIDER if provider else _DIAGNOSTIC_USER
            pdu = _tlv(_AARE, head + _tlv(_RESULT, _integer_element(dialogue.result))
                       + _tlv(_DIAGNOSTIC, _tlv(source, _integer_element(dialogue.diagnostic))))
    return _tlv(_DIALOGUE, _tlv(_EXTERNAL, _tlv(_OID, ber.oid(DIALOGUE_AS_ID)) + _tlv(_SINGLE_ASN1_TYPE, pdu)))


def encode_begin(otid: bytes, components: Sequence[Component] = (), dialogue: DialogueRequest | None = None) -> bytes:
    return _tlv(MessageType.BEGIN, _transaction_id(_OTID, otid)
                + _dialogue_portion(dialogue, (DialogueRequest,), "Begin") + _component_portion(components))


def encode_continue(otid: bytes, dtid: bytes, components: Sequence[Component] = (),
                    dialogue: Dialogue | None = None) -> bytes:
    return _tlv(MessageType.CONTINUE, _transaction_id(_OTID, otid) + _transaction_id(_DTID, dtid)
                + _dialogue_portion(dialogue, (DialogueRequest, DialogueResponse, DialogueAbort), "Continue")
                + _component_portion(components))


def encode_end(dtid: bytes, components: Sequence[Component] = (), dialogue: DialogueResponse | None = None) -> bytes:
    return _tlv(MessageType.END, _transaction_id(_DTID, dtid)
                + _dialogue_portion(dialogue, (DialogueResponse,), "End") + _component_portion(components))


def encode_abort(dtid: bytes, cause: PAbortCause | None = None,
                 dialogue: DialogueResponse | DialogueAbort | None = None) -> bytes:
    """A P-Abort (``cause``) or a U-Abort (``dialogue``: an AARE refusing the dialogue, or an
    ABRT); neither gives the Abort without reason Q.773 allows (a v1 U-Abort)."""
    if cause is not None and dialogue is not None:
        raise ValueError("an Abort carries a P-Abort cause or a dialogue portion, not both")
    reason = b"" if cause is None else _integer_element(PAbortCause(cause), _P_ABORT_CAUSE)
    return _tlv(MessageType.ABORT, _transaction_id(_DTID, dtid) + reason
                + _dialogue_portion(dialogue, (DialogueResponse, DialogueAbort), "Abort"))
