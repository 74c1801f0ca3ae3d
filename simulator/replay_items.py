"""The requests a capture holds (S13 ECRs, MAP CheckIMEI invokes) and the answers it holds for them.

``requests_of(contents)`` walks the Diameter and M3UA messages ``replay_read`` found, in frame
order, and pairs each request with its answer:

- S13: an ECR (command 324, R bit) and the answer on the same connection with its Hop-by-Hop
  and End-to-End identifiers; the answer says its Result-Code (or Experimental-Result-Code)
  and Equipment-Status;
- MAP: M3UA DATA, SI 3, SCCP UDT or XUDT, a TCAP Begin whose components hold a CheckIMEI
  invoke (v1 without a dialogue portion, v2 and v3 by their AARQ, the vendor IMSI included),
  and the first later TCAP message whose destination transaction id is the Begin's origin
  one (End, Abort, Continue): its status, returnError, reject or abort.

Both kinds of answer become an ``Answer``, read by the same functions that read the agent's
answers during the replay (``simulator.mme.describe``, ``simulator.msc.describe``), so a
captured and a replayed answer compare field by field.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from diameter.constants import FLAG_R, FLAG_T, Command
from diameter.errors import FramingError
from diameter.message import Message
from diameter.message import decode_message as decode_diameter
from sigtran import map as mapv
from sigtran import tcap
from sigtran.m3ua import SI_SCCP, Kind, M3uaError
from sigtran.m3ua import decode_message as decode_m3ua
from sigtran.sccp import SccpError, Udt, Xudt
from sigtran.sccp import decode_message as decode_sccp
from simulator import mme, msc
from simulator.replay_read import Contents, Endpoint, Found
from simulator.replay_streams import DIAMETER

S13, MAP = "S13", "MAP"
_IDS = struct.Struct(">II")
COMPARED = ("message", "result_code", "status", "error", "reject", "abort")


@dataclass(frozen=True)
class Answer:
    """What an answer says, as the replay compares it. S13: the command name, Result-Code (or
    Experimental-Result-Code) and Equipment-Status; MAP: the TCAP message (END, ABORT...), the
    equipment status, the returnError's name, the reject problem, the abort cause."""

    message: str
    result_code: int | None = None
    status: str | None = None
    error: str | None = None
    reject: str | None = None
    abort: str | None = None

    def differences(self, other: Answer) -> list[tuple[str, Any, Any]]:
        """(field, ours, other's) for every compared field that differs."""
        return [(name, getattr(self, name), getattr(other, name)) for name in COMPARED
                if getattr(self, name) != getattr(other, name)]

    def text(self) -> str:
        parts = [self.message]
        if self.result_code is not None:
            parts.append(f"result {self.result_code} {mme.code_name(self.result_code)}")
        parts += [f"{name} {getattr(self, name)}" for name in ("status", "error", "reject", "abort")
                  if getattr(self, name) is not None]
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def s13_answer(answer: Message) -> Answer:
    outcome = mme.describe(answer, "", "", 0.0)
    return Answer(outcome.command, result_code=outcome.result_code, status=outcome.equipment_status)


def map_answer(outcome: msc.CheckImeiOutcome) -> Answer:
    status = None if outcome.status is None else outcome.status.name
    return Answer(outcome.message, status=status, error=outcome.error_name, reject=outcome.reject,
                  abort=outcome.abort_cause)


@dataclass
class Request:
    """One request of the capture and, when the capture holds it, its answer."""

    frame: int
    time: float
    interface: str  # S13 or MAP
    imei: str
    imsi: str | None
    wire: bytes  # the ECR's octets, or the TCAP Begin's
    src: Endpoint
    dst: Endpoint
    transport: str
    version: int | None = None  # MAP: the application context's version (1 without a dialogue)
    otid: bytes = b""  # MAP: the Begin's origin transaction id
    answer: Answer | None = None
    answer_frame: int | None = None

    @property
    def label(self) -> str:
        return S13 if self.interface == S13 else f"MAP v{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {"frame": self.frame, "time": self.time,
                "at": datetime.fromtimestamp(self.time, UTC).isoformat(timespec="microseconds"),
                "interface": self.label, "imei": self.imei,
                "imsi": self.imsi, "transport": self.transport, "from": f"{self.src[0]}:{self.src[1]}",
                "to": f"{self.dst[0]}:{self.dst[1]}", "otid": self.otid.hex() or None,
                "captured": None if self.answer is None else self.answer.to_json(),
                "captured_frame": self.answer_frame}


@dataclass
class Requests:
    requests: list[Request] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Pairing:
    def __init__(self) -> None:
        self.found = Requests()
        self.ecrs: dict[tuple[Any, int, int], Request] = {}
        self.begins: dict[bytes, Request] = {}

    def diameter(self, message: Found) -> None:
        data, frame = message.piece.data, message.piece.frame
        if int.from_bytes(data[5:8], "big") != Command.ME_IDENTITY_CHECK:
            return
        key = (message.connection, *_IDS.unpack_from(data, 12))
        try:
            decoded = decode_diameter(data)
        except FramingError as exc:
            self.found.notes.append(f"frame {frame}: unreadable Diameter message ({exc})")
            return
        if data[4] & FLAG_R:
            earlier = self.ecrs.get(key)
            if earlier is not None and earlier.answer is None and data[4] & FLAG_T:
                return  # a retransmission (T bit) of a request still unanswered
            self.ecrs[key] = self._ecr(message, decoded)  # identifiers may be used again after an answer
            return
        request = self.ecrs.get(key)
        if request is None or request.answer is not None:
            self.found.notes.append(f"frame {frame}: an ECA whose ECR the capture does not hold")
            return
        request.answer, request.answer_frame = s13_answer(decoded), frame

    def _ecr(self, message: Found, ecr: Message) -> Request:
        terminal = ecr.find("Terminal-Information")
        imei = terminal.find("IMEI") if terminal is not None else None
        request = Request(message.piece.frame, message.piece.time, S13, "" if imei is None else str(imei.value),
                          ecr.value("User-Name"), message.piece.data, message.src, message.dst, message.transport)
        self.found.requests.append(request)
        return request

    def m3ua(self, message: Found) -> None:
        frame = message.piece.frame
        try:
            m3ua = decode_m3ua(message.piece.data)
            data = m3ua.protocol_data if m3ua.kind is Kind.DATA else None
            if data is None or data.si != SI_SCCP:
                return
            sccp = decode_sccp(data.user_data)
            if not isinstance(sccp, Udt | Xudt):
                return
            tc = tcap.decode(sccp.data)
        except (M3uaError, SccpError, tcap.TcapError) as exc:
            self.found.notes.append(f"frame {frame}: unreadable M3UA DATA ({exc})")
            return
        if tc.type is tcap.MessageType.BEGIN:
            self._begin(message, tc, sccp.data)
            return
        request = self.begins.get(tc.dtid or b"")
        if request is None or request.answer is not None:
            return
        outcome = msc.describe(tc, peer="", imei=request.imei, imei_sent=request.imei,
                               version=request.version or 1)
        request.answer, request.answer_frame = map_answer(outcome), frame

    def _begin(self, message: Found, begin: tcap.TcMessage, wire: bytes) -> None:
        invoke = next((c for c in begin.components if isinstance(c, tcap.Invoke) and c.opcode == mapv.CHECK_IMEI),
                      None)
        if invoke is None or begin.otid is None:
            return
        version = 1
        if isinstance(begin.dialogue, tcap.DialogueRequest):
            version = mapv.context_version(begin.dialogue.application_context) or 0
        if not version:
            self.found.notes.append(f"frame {message.piece.frame}: a CheckIMEI in application context "
                                    f"{begin.dialogue and getattr(begin.dialogue, 'application_context', '')}, "
                                    "not equipmentMngtContext v1 to v3: not replayed")
            return
        try:
            argument = mapv.decode_check_imei(version, invoke.parameter)
            imei, imsi = argument.imei, argument.imsi
        except mapv.MapError as exc:
            imei, imsi = f"unreadable ({exc.reason})", None
        request = Request(message.piece.frame, message.piece.time, MAP, imei, imsi, wire, message.src,
                          message.dst, message.transport, version, begin.otid)
        self.begins[begin.otid] = request
        self.found.requests.append(request)


def requests_of(contents: Contents) -> Requests:
    """The ECRs and CheckIMEI invokes of ``contents`` in frame order, each with its captured answer."""
    pairing = _Pairing()
    for message in contents.messages:
        if message.protocol == DIAMETER:
            pairing.diameter(message)
        else:
            pairing.m3ua(message)
    pairing.found.notes[:0] = contents.notes
    return pairing.found
