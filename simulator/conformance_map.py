"""MAP conformance checks over M3UA (TS 29.002 CheckIMEI, ITU-T Q.773 TCAP): each connects
as an ASP (ASPUP, ASPAC), sends one TCAP Begin in an SCCP UDT like an MSC, reports the
TCAP answer, and leaves (ASPDN), all through ``simulator.msc.send_begin``.

Fields of every answer (``outcome_fields``):
- ``message``: the TCAP message type that answered (END, ABORT...);
- ``status``: WHITE_LISTED, BLACK_LISTED, GREY_LISTED, or None;
- ``component``: "result", "error" (a returnError), "reject" or "none";
- ``problem``: the reject's problem (e.g. INVOKE_MISTYPED_PARAMETER), else None;
- ``error``: the returnError's MAP error name (e.g. DATA_MISSING), else None;
- ``abort``: the abort as ``eir sim checkimei`` prints it ("P-Abort <cause>", "dialogue
  refused: <diagnostic>", "U-Abort ..."), else None;
- ``version``: the application context version of the answer's AARE (None without one: v1).
"""

from __future__ import annotations

import os

from sigtran import map as mapv
from sigtran import tcap
from simulator.conformance_common import CheckFunction, CheckOptions, CheckStopped, WireCheck, WireObservation
from simulator.msc import INVOKE_ID, CheckImeiFailed, CheckImeiOutcome, map_imei, send_begin, send_checkimei

UNKNOWN_OPERATION = 44  # mt-ForwardSM: a MAP operation, but none of an EIR's
UNKNOWN_CONTEXT = f"{mapv.EQUIPMENT_MANAGEMENT_CONTEXT}.4"  # equipmentMngtContext-v4: no such version
MISTYPED_ARGUMENT = bytes.fromhex("0401ff")  # an OCTET STRING of one octet: no CheckIMEI argument


def outcome_fields(outcome: CheckImeiOutcome) -> dict[str, object]:
    if outcome.result_received:
        component = "result"
    elif outcome.error_code is not None:
        component = "error"
    elif outcome.reject is not None:
        component = "reject"
    else:
        component = "none"
    fields: dict[str, object] = {
        "message": outcome.message, "status": None if outcome.status is None else outcome.status.name,
        "component": component, "problem": outcome.reject, "error": outcome.error_name,
        "abort": outcome.abort_cause, "version": outcome.answered_version}
    if outcome.problem:
        fields["unreadable"] = outcome.problem
    return fields


def stopped(failed: CheckImeiFailed) -> CheckStopped:
    if failed.kind == "connect":
        return CheckStopped({"connect_error": failed.reason}, str(failed))
    if failed.kind == "timeout":
        return CheckStopped({"timeout": True}, str(failed))
    return CheckStopped({"failed": str(failed)}, str(failed))


def answer_text(outcome: CheckImeiOutcome) -> str:
    """The outcome's lines after the first, on one line."""
    return "; ".join(line.strip() for line in outcome.lines()[1:])


async def check_imei_version(version: int, host: str, port: int, options: CheckOptions) -> WireObservation:
    try:
        outcome = await send_checkimei(host, port, options.imei, version=version, identity=options.msc,
                                       timeout=options.timeout, capture=options.capture)
    except CheckImeiFailed as failed:
        raise stopped(failed) from None
    return WireObservation(f"map-v{version}", outcome_fields(outcome),
                           f"sent CheckIMEI v{version} for {outcome.imei_sent}; got TCAP {outcome.message}: "
                           f"{answer_text(outcome)}")


async def check_map_v1(host: str, port: int, options: CheckOptions) -> WireObservation:
    return await check_imei_version(1, host, port, options)


async def check_map_v2(host: str, port: int, options: CheckOptions) -> WireObservation:
    return await check_imei_version(2, host, port, options)


async def check_map_v3(host: str, port: int, options: CheckOptions) -> WireObservation:
    return await check_imei_version(3, host, port, options)


async def odd_begin(name: str, sent: str, host: str, port: int, options: CheckOptions, *,
                    opcode: int = mapv.CHECK_IMEI, argument: bytes | None = None,
                    context: str | None = None, version: int = 3) -> WireObservation:
    """A Begin that differs from a v``version`` CheckIMEI in its opcode, argument or context."""
    otid = os.urandom(4)
    imei = map_imei(options.imei)
    if argument is None:
        argument = mapv.encode_check_imei(version, mapv.CheckImeiArgument(imei, None))
    dialogue = tcap.DialogueRequest(context or mapv.equipment_context(version))
    begin = tcap.encode_begin(otid, (tcap.Invoke(INVOKE_ID, opcode, argument),), dialogue)
    try:
        outcome = await send_begin(host, port, begin, otid, version=version, imei=options.imei, imei_sent=imei,
                                   identity=options.msc, timeout=options.timeout, capture=options.capture)
    except CheckImeiFailed as failed:
        raise stopped(failed) from None
    return WireObservation(name, outcome_fields(outcome), f"sent {sent}; got TCAP {outcome.message}: "
                                                          f"{answer_text(outcome)}")


async def check_malformed_invoke(host: str, port: int, options: CheckOptions) -> WireObservation:
    return await odd_begin("tcap-reject-malformed-invoke", "a v3 CheckIMEI invoke whose argument is an OCTET "
                           "STRING", host, port, options, argument=MISTYPED_ARGUMENT)


async def check_unknown_operation(host: str, port: int, options: CheckOptions) -> WireObservation:
    return await odd_begin("tcap-reject-unknown-operation", f"a v3 Begin invoking operation {UNKNOWN_OPERATION}",
                           host, port, options, opcode=UNKNOWN_OPERATION)


async def check_unknown_context(host: str, port: int, options: CheckOptions) -> WireObservation:
    return await odd_begin("tcap-abort-unknown-context", f"a CheckIMEI Begin whose AARQ names {UNKNOWN_CONTEXT}",
                           host, port, options, context=UNKNOWN_CONTEXT)


async def check_missing_argument(host: str, port: int, options: CheckOptions) -> WireObservation:
    return await odd_begin("map-error-data-missing", "a v2 CheckIMEI invoke without an argument", host, port,
                           options, argument=b"", version=2)


def _check(name: str, description: str, run: CheckFunction) -> WireCheck:
    return WireCheck(name, "map", description, run)


MAP_CHECKS = [
    _check("map-v1", "CheckIMEI without a dialogue portion (v1); END with a result, EquipmentStatus an ENUMERATED: "
           "TS 29.002 8.7.1 MAP_CHECK_IMEI", check_map_v1),
    _check("map-v2", "CheckIMEI in equipmentMngtContext-v2; END with an accepting AARE and a result, EquipmentStatus "
           "an ENUMERATED: TS 29.002 8.7.1 MAP_CHECK_IMEI", check_map_v2),
    _check("map-v3", "CheckIMEI in equipmentMngtContext-v3; END with an accepting AARE and a result, a SEQUENCE "
           "holding the EquipmentStatus (CheckIMEI-Res): TS 29.002 8.7.1 MAP_CHECK_IMEI", check_map_v3),
    _check("tcap-reject-malformed-invoke", "CheckIMEI invoke whose argument is not a CheckIMEI-Arg; a Reject "
           "(invoke, mistypedParameter) or a returnError: ITU-T Q.773 (Reject component)", check_malformed_invoke),
    _check("tcap-reject-unknown-operation", "an invoke of an operation the EIR does not serve; a Reject (invoke, "
           "unrecognizedOperation): ITU-T Q.773 (Reject component)", check_unknown_operation),
    _check("tcap-abort-unknown-context", "a Begin whose AARQ names an unsupported application context; an ABORT with "
           "an AARE rejecting it (application-context-name-not-supported): ITU-T Q.773 dialogue portion, "
           "TS 29.002 MAP dialogue",
           check_unknown_context),
    _check("map-error-data-missing", "a v2 CheckIMEI invoke with no argument; a returnError dataMissing: "
           "TS 29.002 8.7.1 MAP_CHECK_IMEI", check_missing_argument),
]
