"""An MSC/VLR (or SGSN) emulator: one MAP CheckIMEI over M3UA, as an ASP over TCP or SCTP.

It connects like an ASP (ASPUP, ASPAC), sends one TCAP Begin carrying CheckIMEI in an
SCCP UDT inside M3UA DATA, waits for the TCAP message whose destination transaction id
is our origin one, describes it (End with a result, an error or a reject; Abort with its
P-Abort cause or the refused dialogue), and leaves with ASPDN.

The request is built by pure functions (``check_imei_begin``, ``check_imei_udt``,
``request_data``, ``encode_request``), so the MAP load generator pre-encodes the very
same octets. Addressing defaults, and why:

- network indicator 2 (national): an MSC and the EIR it asks belong to one national
  signalling network (the operator's, or one country's); NI 0 is the international
  network between the gateways of different countries, which CheckIMEI never crosses;
- OPC 2, DPC 1, national point codes of a lab network; no routing context unless given
  (the agent accepts any);
- SCCP class 1 with "return message on error": class 1 asks the network to keep a
  dialogue's messages in sequence (one SLS per dialogue), which is what TCAP dialogues
  use and harmless for a Begin/End pair; return on error makes an unroutable request
  come back as a UDTS, reported at once instead of a silent timeout;
- both parties routed on a GTI 4 global title (E.164, international) with their SSN:
  the calling MSC 8 (SGSN 149), the called EIR 9. The Tajik +992 numbers are examples.

The IMEI on MAP is 15 TBCD digits, TAC + SNR + the spare digit, which is 0 when sent
(TS 23.003 6.2.1): 14 or 15 digits are sent as the first 14 and a 0; 16 digits (an
IMEISV) and any other count are sent as given, so the agent's handling of malformed
IMEIs can be tested. Only what TBCD cannot carry (anything but 0-9) is refused here.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netio import transports
from netio.sctp import SctpUnavailable
from sigtran import ber, tcap
from sigtran import map as mapv
from sigtran.asp import (
    AspActive,
    AspClient,
    AspDown,
    AspState,
    ClientSettings,
    CloseConnection,
    DataReceived,
    ErrorReceived,
    Event,
)
from sigtran.link import M3uaLink
from sigtran.m3ua import SI_SCCP, ErrorCode, ProtocolData, build_data
from sigtran.m3ua_streams import M3UA
from sigtran.sccp import (
    SSN_EIR,
    SSN_MSC,
    ReturnCause,
    SccpAddress,
    SccpError,
    Udt,
    Udts,
    Xudt,
    Xudts,
    gt_address,
)
from sigtran.sccp import decode_message as decode_sccp
from simulator.mme import os_error_text

if TYPE_CHECKING:
    from netio.capture import Capture

M3UA_PORT = 2905
_IMEI_OCTETS = 8
_OCTET_STRING, _SEQUENCE = 0x04, 0x30
_EQUIPMENT_STATUS_ONLY = bytes((0x03, 2, 6, 0x80))  # requestedEquipmentInfo: equipmentStatus, bmuef unset
NI_NATIONAL = 2
PROTOCOL_CLASS = 1
INVOKE_ID = 1
VERSIONS = (1, 2, 3)


class CheckImeiFailed(Exception):
    """No answer came: connection refused, ASP handshake refused or lost, M3UA ERR,
    the request returned in a UDTS, or no answer in time. ``kind`` says which of the
    three a caller may want to tell apart: "connect" (no association), "timeout" (an
    expected message did not come in time) or "failed" (anything else); ``reason`` is the
    message without the peer's address ("Connection refused")."""

    def __init__(self, message: str, kind: str = "failed", reason: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.reason = reason or message


@dataclass(frozen=True)
class MscIdentity:
    """Who the emulated MSC says it is (MTP3 label and SCCP calling address), and whom it asks."""

    opc: int = 2
    dpc: int = 1
    routing_context: int | None = None
    network_indicator: int = NI_NATIONAL
    calling_gt: str = "992900000001"
    calling_ssn: int = SSN_MSC
    called_gt: str = "992900000009"
    called_ssn: int = SSN_EIR

    def calling(self) -> SccpAddress:
        return gt_address(self.calling_gt, self.calling_ssn)

    def called(self) -> SccpAddress:
        return gt_address(self.called_gt, self.called_ssn)

    def settings(self) -> ClientSettings:
        rcs = () if self.routing_context is None else (self.routing_context,)
        return ClientSettings(routing_contexts=rcs)


# --- the request, pure functions ---------------------------------------------------------

def map_imei(imei: str) -> str:
    """The digits sent for ``imei``: 14 or 15 digits become TAC + SNR + the spare 0; any other
    count is sent as given. ValueError for what TBCD cannot carry."""
    if not imei or not imei.isascii() or not imei.isdigit():
        raise ValueError(f"IMEI {imei!r}: MAP carries the IMEI as TBCD, digits 0-9 only")
    return imei[:14] + "0" if len(imei) in (14, 15) else imei


def check_version(version: int, imsi: str | None) -> None:
    if version not in VERSIONS:
        raise ValueError(f"application context version {version}: equipmentMngtContext is v1, v2 or v3")
    if imsi is not None and version == 3:
        raise ValueError("an IMSI rides only in the v1/v2 vendor variant of CheckIMEI, not in v3")
    if imsi is not None and (not imsi.isascii() or not imsi.isdigit() or len(imsi) not in mapv.IMSI_DIGITS):
        raise ValueError(f"IMSI {imsi!r}: 6 to 15 digits")


def check_imei_argument(version: int, imei_digits: str, imsi: str | None = None) -> bytes:
    """The invoke's parameter octets. ``sigtran.map`` encodes what fills the 8 octets of a MAP
    IMEI (15 or 16 digits); other counts, which it refuses, get the same layout here with the
    IMEI OCTET STRING as long as the digits make it, for the agent to judge."""
    tbcd = mapv.encode_tbcd(imei_digits)
    if len(tbcd) == _IMEI_OCTETS:
        return mapv.encode_check_imei(version, mapv.CheckImeiArgument(imei_digits, imsi))
    imei = ber.tlv(_OCTET_STRING, tbcd)
    if version < 3:
        return imei + (b"" if imsi is None else ber.tlv(_OCTET_STRING, mapv.encode_tbcd(imsi)))
    return ber.tlv(_SEQUENCE, imei + _EQUIPMENT_STATUS_ONLY)


def check_imei_begin(otid: bytes, imei_digits: str, version: int, imsi: str | None = None) -> bytes:
    """TCAP Begin: one invoke (id 1, CheckIMEI) with the argument in ``version``'s form; v2 and
    v3 carry an AARQ naming equipmentMngtContext-vN, v1 has no dialogue portion."""
    invoke = tcap.Invoke(INVOKE_ID, mapv.CHECK_IMEI, check_imei_argument(version, imei_digits, imsi))
    dialogue = tcap.DialogueRequest(mapv.equipment_context(version)) if version >= 2 else None
    return tcap.encode_begin(otid, (invoke,), dialogue)


def check_imei_udt(identity: MscIdentity, begin: bytes) -> bytes:
    """The SCCP UDT carrying ``begin`` from the MSC's GT to the EIR's."""
    return Udt(identity.called(), identity.calling(), begin, PROTOCOL_CLASS, return_on_error=True).to_bytes()


def request_data(identity: MscIdentity, udt: bytes, sls: int) -> ProtocolData:
    """The M3UA Protocol Data: the MTP3 label (SI 3, SCCP) and the UDT."""
    return ProtocolData(identity.opc, identity.dpc, SI_SCCP, identity.network_indicator, 0, sls, udt)


def encode_request(identity: MscIdentity, otid: bytes, imei_digits: str, version: int, imsi: str | None = None,
                   sls: int = 0) -> bytes:
    """The whole M3UA DATA message of one CheckIMEI (``imei_digits`` as sent: see ``map_imei``)."""
    data = request_data(identity, check_imei_udt(identity, check_imei_begin(otid, imei_digits, version, imsi)), sls)
    return build_data(data.opc, data.dpc, data.si, data.ni, data.mp, data.sls, data.user_data,
                      routing_context=identity.routing_context).to_bytes()


# --- the answer ----------------------------------------------------------------------------

@dataclass
class CheckImeiOutcome:
    """The TCAP answer to one CheckIMEI, as ``eir sim checkimei`` prints it."""

    peer: str
    imei: str  # as given
    imei_sent: str  # the TBCD digits sent
    version: int  # the application context asked for
    answered_version: int | None  # from the AARE; None without a dialogue portion (v1)
    message: str  # END, ABORT, CONTINUE...
    status: mapv.EquipmentStatus | None = None
    error_code: int | None = None
    reject: str | None = None
    abort_cause: str | None = None
    dialogue: str | None = None  # the AARE's result and diagnostic
    answered_by: str | None = None  # the answer's SCCP calling address
    rtt_ms: float = 0.0
    result_received: bool = False  # a returnResult came, with or without an EquipmentStatus
    result_unreadable: bool = False
    refused: bool = False  # the AARE refused the dialogue
    problem: str | None = None  # what we could not read in the answer
    otid: str = ""  # our transaction id, hex

    @property
    def error_name(self) -> str | None:
        return None if self.error_code is None else error_name(self.error_code)

    def result_key(self) -> tuple[str, int | None]:
        """How the load generator counts this answer: ("result", status) for a result, the MAP
        error's name, "reject", "refused" (dialogue), "abort", "bad_result", or the message type."""
        if self.error_code is not None:
            return error_name(self.error_code), None
        if self.reject is not None:
            return "reject", None
        if self.refused:
            return "refused", None
        if self.message == "ABORT":
            return "abort", None
        if self.result_unreadable:
            return "bad_result", None
        if self.result_received:
            return "result", None if self.status is None else int(self.status)
        return ("empty_end" if self.message == "END" else self.message.lower()), None

    def to_json(self) -> dict[str, Any]:
        return {"peer": self.peer, "otid": self.otid, "imei": self.imei, "imei_sent": self.imei_sent,
                "version": self.version, "answered_version": self.answered_version, "message": self.message,
                "status": None if self.status is None else self.status.name, "error_code": self.error_code,
                "error_name": self.error_name, "reject": self.reject, "abort_cause": self.abort_cause,
                "dialogue": self.dialogue, "problem": self.problem, "answered_by": self.answered_by,
                "rtt_ms": self.rtt_ms}

    def lines(self) -> list[str]:
        answered = self.answered_version
        version = "no dialogue (v1)" if answered is None else f"equipmentMngtContext-v{answered}"
        lines = [f"TCAP {self.message} from {self.answered_by or '?'} ({self.peer}) in {self.rtt_ms:.2f} ms",
                 f"  asked v{self.version} for IMEI {self.imei_sent}; answered: {version}"]
        if self.dialogue:
            lines.append(f"  dialogue: {self.dialogue}")
        if self.status is not None:
            lines.append(f"  EquipmentStatus: {self.status.name}")
        if self.error_code is not None:
            lines.append(f"  returnError: {self.error_code} {self.error_name}")
        if self.reject:
            lines.append(f"  reject: {self.reject}")
        if self.abort_cause:
            lines.append(f"  abort: {self.abort_cause}")
        if self.problem:
            lines.append(f"  unreadable: {self.problem}")
        if self.message == "END" and self.status is None and self.error_code is None and not self.reject:
            lines.append("  no EquipmentStatus in the answer")
        return lines


def err_text(code: int) -> str:
    """"M3UA ERR 0x19 INVALID_ROUTING_CONTEXT"."""
    try:
        name = ErrorCode(code).name
    except ValueError:
        name = "unknown"
    return f"M3UA ERR {code:#04x} {name}"


def error_name(code: int) -> str:
    try:
        return mapv.ErrorCode(code).name
    except ValueError:
        return f"error {code}"


def address_text(address: SccpAddress) -> str:
    parts = [f"GT {address.digits}"] if address.digits else []
    if address.point_code is not None:
        parts.append(f"PC {address.point_code}")
    if address.ssn is not None:
        parts.append(f"SSN {address.ssn}")
    return ", ".join(parts) or "no address"


def diagnostic_text(diagnostic: tcap.DiagnosticUser | tcap.DiagnosticProvider) -> str:
    source = "service-user" if isinstance(diagnostic, tcap.DiagnosticUser) else "service-provider"
    return f"{source} {diagnostic.name.lower().replace('_', '-')}"


def _dialogue(outcome: CheckImeiOutcome, dialogue: tcap.Dialogue | None) -> None:
    if isinstance(dialogue, tcap.DialogueResponse):
        outcome.answered_version = mapv.context_version(dialogue.application_context)
        result = "accepted" if dialogue.result == tcap.AssociateResult.ACCEPTED else "reject-permanent"
        outcome.dialogue = f"{result} ({diagnostic_text(dialogue.diagnostic)}), {dialogue.application_context}"
        if dialogue.result != tcap.AssociateResult.ACCEPTED:
            outcome.refused = True
            outcome.abort_cause = f"dialogue refused: {diagnostic_text(dialogue.diagnostic)}"
    elif isinstance(dialogue, tcap.DialogueAbort):
        outcome.dialogue = f"ABRT from the dialogue {dialogue.source.name.lower().replace('_', '-')}"
        outcome.abort_cause = f"U-Abort: {outcome.dialogue}"


def _components(outcome: CheckImeiOutcome, components: tuple[tcap.Component, ...], version: int) -> None:
    for component in components:
        if isinstance(component, tcap.ReturnResult):
            outcome.result_received = True
            outcome.status = _status(version if outcome.answered_version is None else outcome.answered_version,
                                     component.result, outcome)
        elif isinstance(component, tcap.ReturnError):
            outcome.error_code = component.error_code
        elif isinstance(component, tcap.Reject):
            outcome.reject = str(component.problem)
        elif isinstance(component, tcap.BadComponent):
            outcome.problem = f"component: {component.reason}"


def _status(version: int, result: bytes, outcome: CheckImeiOutcome) -> mapv.EquipmentStatus | None:
    try:
        return mapv.decode_check_imei_result(version, result)
    except mapv.MapError as exc:
        outcome.problem = f"result: {exc}"
        outcome.result_unreadable = True
        return None


def describe(message: tcap.TcMessage, *, peer: str, imei: str, imei_sent: str, version: int,
             answered_by: str | None = None, rtt_ms: float = 0.0) -> CheckImeiOutcome:
    """What a TCAP answer to our Begin says (``version``: the one we asked for, which reads the
    result when the answer has no AARE)."""
    outcome = CheckImeiOutcome(peer, imei, imei_sent, version, None, message.type.name,
                               answered_by=answered_by, rtt_ms=round(rtt_ms, 3))
    _dialogue(outcome, message.dialogue)
    if message.dialogue_error:
        outcome.problem = f"dialogue portion: {message.dialogue_error}"
    if message.abort_cause is not None:
        outcome.abort_cause = f"P-Abort {message.abort_cause.name.lower().replace('_', '-')}"
    elif message.type == tcap.MessageType.ABORT and message.dialogue is None:
        outcome.abort_cause = "U-Abort without reason"
    _components(outcome, message.components, version)
    return outcome


# --- one dialogue over a connection ------------------------------------------------------------

class MscLink(M3uaLink):
    """The emulated MSC's M3UA link (``sigtran.link``) as an ASP: the ASP's events go into a
    queue, read with ``next_event``; its timers (T(ack)) run on the loop meanwhile."""

    pauses_reading = False  # the MSC reads on: it waits for its answers

    def __init__(self, asp: AspClient) -> None:
        super().__init__(asp)
        self.events: asyncio.Queue[Event | None] = asyncio.Queue()  # None: the connection is gone

    def handle_events(self, events: list[Event], received_at: float) -> str | None:
        self._flush(events)
        return next((event.reason for event in events if isinstance(event, CloseConnection)), None)

    def _flush(self, events: list[Event]) -> None:
        """Every event into the queue (``simulator.soak_load.MapAssociation`` takes DATA itself)."""
        for event in events:
            self.events.put_nowait(event)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.events.put_nowait(None)

    async def next_event(self, deadline: float) -> Event | bool | None:
        """The next event; False once ``deadline`` (loop time) has passed."""
        wait = deadline - self.loop.time()
        if wait <= 0:
            return False
        try:
            return await asyncio.wait_for(self.events.get(), wait)
        except TimeoutError:
            return False


@dataclass
class _Request:
    peer: str
    imei: str
    imei_sent: str
    version: int
    otid: bytes
    ignored: list[str]


async def asp_handshake(link: MscLink, peer: str, timeout: float) -> None:
    deadline = link.loop.time() + timeout
    while True:
        waiting = "ASPUP-ACK" if link.asp.state is AspState.DOWN else "ASPAC-ACK"
        event = await link.next_event(deadline)
        if event is False:
            raise CheckImeiFailed(f"{peer}: no {waiting} within {timeout:g} s", "timeout")
        if isinstance(event, AspActive):
            return
        if isinstance(event, ErrorReceived):
            raise CheckImeiFailed(f"{peer} answered {err_text(event.code)} while we waited for the {waiting}")
        if event is None or isinstance(event, CloseConnection):
            reason = f" ({event.reason})" if isinstance(event, CloseConnection) else ""
            raise CheckImeiFailed(f"{peer} closed the connection while we waited for the {waiting}{reason}")


def _answer_of(event: DataReceived, request: _Request, rtt_ms: float) -> CheckImeiOutcome | None:
    """Our answer's description, None for DATA that is not for us (noted in ``request.ignored``);
    CheckImeiFailed when the request came back in a UDTS/XUDTS."""
    if event.data.si != SI_SCCP:
        request.ignored.append(f"DATA for SI {event.data.si}")
        return None
    try:
        sccp = decode_sccp(event.data.user_data)
    except SccpError as exc:
        request.ignored.append(f"SCCP: {exc.reason}")
        return None
    if isinstance(sccp, Udts | Xudts):
        kind = "UDTS" if isinstance(sccp, Udts) else "XUDTS"
        try:
            cause = ReturnCause(sccp.return_cause).name
        except ValueError:
            cause = "unknown"
        raise CheckImeiFailed(f"{request.peer}: the CheckIMEI came back in a {kind}, return cause "
                              f"{sccp.return_cause:#04x} {cause}")
    assert isinstance(sccp, Udt | Xudt)
    try:
        message = tcap.decode(sccp.data)
    except tcap.TcapError as exc:
        request.ignored.append(f"TCAP: {exc}")
        return None
    if message.dtid != request.otid:
        request.ignored.append(f"TCAP dtid {message.dtid.hex() if message.dtid else 'none'}, not ours")
        return None
    outcome = describe(message, peer=request.peer, imei=request.imei, imei_sent=request.imei_sent,
                       version=request.version, answered_by=address_text(sccp.calling), rtt_ms=rtt_ms)
    outcome.otid = request.otid.hex()
    return outcome


async def _dialogue_round(link: MscLink, identity: MscIdentity, request: _Request, begin: bytes,
                          timeout: float) -> CheckImeiOutcome:
    started = time.perf_counter_ns()
    link.send(request_data(identity, check_imei_udt(identity, begin), request.otid[-1] & 0x0F),
              identity.routing_context)
    deadline = link.loop.time() + timeout
    while True:
        event = await link.next_event(deadline)
        if event is False:
            ignored = f" ({len(request.ignored)} other message(s): {request.ignored[-1]})" if request.ignored else ""
            raise CheckImeiFailed(f"{request.peer}: no answer to the CheckIMEI within {timeout:g} s{ignored}",
                                  "timeout")
        if isinstance(event, DataReceived):
            outcome = _answer_of(event, request, (time.perf_counter_ns() - started) / 1e6)
            if outcome is not None:
                return outcome
        elif isinstance(event, ErrorReceived):
            raise CheckImeiFailed(f"{request.peer} answered the CheckIMEI with {err_text(event.code)}")
        elif isinstance(event, AspDown):
            raise CheckImeiFailed(f"{request.peer} took our ASP down before answering")
        elif event is None or isinstance(event, CloseConnection):
            raise CheckImeiFailed(f"{request.peer} closed the connection before answering")


async def _leave(link: MscLink, timeout: float) -> None:
    """ASPDN, then wait for the ASPDN-ACK (or the close) for at most ``timeout``."""
    if link.transport is None:
        return
    link.leave()
    deadline = link.loop.time() + timeout
    while link.transport is not None:
        event = await link.next_event(deadline)
        if event is False or event is None or isinstance(event, CloseConnection):
            break
    if link.transport is not None:
        link.transport.close()


async def _open(host: str, port: int, identity: MscIdentity, transport: str, capture: Capture | None) -> MscLink:
    """The association: TCP, or SCTP with PPID 3 and DATA off stream 0 (``sigtran.m3ua_streams``)."""
    def factory() -> MscLink:
        return MscLink(AspClient(identity.settings()))

    return (await transports.connect(factory, host, port, transport, M3UA, capture))[1]


async def send_checkimei(host: str, port: int, imei: str, *, imsi: str | None = None, version: int = 3,
                         identity: MscIdentity | None = None, timeout: float = 5.0,
                         transport: str = "tcp", capture: Capture | None = None) -> CheckImeiOutcome:
    """Connect as an ASP (``transport`` tcp or sctp), ASPUP and ASPAC, send one CheckIMEI,
    describe its answer, ASPDN. With a ``capture``, the association is recorded there.

    ValueError for what cannot be sent (see ``map_imei``, ``check_version``);
    CheckImeiFailed when no answer came (or the kernel has no SCTP)."""
    check_version(version, imsi)
    imei_sent = map_imei(imei)
    otid = os.urandom(4)
    return await send_begin(host, port, check_imei_begin(otid, imei_sent, version, imsi), otid, version=version,
                            imei=imei, imei_sent=imei_sent, identity=identity, timeout=timeout, transport=transport,
                            capture=capture)


async def send_begin(host: str, port: int, begin: bytes, otid: bytes, *, version: int = 3, imei: str = "",
                     imei_sent: str = "", identity: MscIdentity | None = None, timeout: float = 5.0,
                     transport: str = "tcp", capture: Capture | None = None) -> CheckImeiOutcome:
    """Like ``send_checkimei`` with the TCAP octets given as they are: ``begin`` (any
    TCAP message, well-formed or not) goes in one SCCP UDT, and the answer is the TCAP
    message whose destination transaction id is ``otid``. ``version`` reads a result that
    comes without an AARE; ``imei`` and ``imei_sent`` only label the outcome. The
    conformance checks (``simulator.conformance_map``) send their malformed Begins this way."""
    identity = identity or MscIdentity()
    request = _Request(f"{host}:{port}", imei, imei_sent, version, otid, [])
    try:
        link = await asyncio.wait_for(_open(host, port, identity, transport, capture), timeout)
    except TimeoutError:
        raise CheckImeiFailed(f"cannot connect to {request.peer} within {timeout:g} s", "connect",
                              f"no connection within {timeout:g} s") from None
    except SctpUnavailable as exc:
        raise CheckImeiFailed(str(exc), "connect") from None
    except OSError as exc:
        raise CheckImeiFailed(f"cannot connect to {request.peer}: {os_error_text(exc)}", "connect",
                              os_error_text(exc)) from None
    try:
        await asp_handshake(link, request.peer, timeout)
        return await _dialogue_round(link, identity, request, begin, timeout)
    finally:
        await _leave(link, min(timeout, 2.0))
