"""SCCP routing for the EIR subsystem, sans-I/O: the Protocol Data of an M3UA DATA message
in, what goes back out (``SccpRouter.route``):

- an SCCP UDT or XUDT for the EIR (called SSN 9, or a called address routed on a global
  title without SSN, which the STP translated to us) is given to the answering function
  (MAP CheckIMEI, ``agent.map.MapAnswerer``) and its TCAP answer goes back in the same
  message type and protocol class, to the calling address; the answer's calling address is
  our global title with SSN 9 when one is configured, else the called address as received;
  the M3UA routing label is the request's, turned round;
- a user part other than SCCP gets DUPU (unequipped remote user); a DPC other than ours
  (when ours is configured) gets DUNA; an SCCP message that cannot be decoded gets M3UA
  ERR (invalid parameter value, quoting the DATA); one for another subsystem, or a
  segment to reassemble, goes back as UDTS/XUDTS when it asked for return on error, and
  is dropped otherwise; a UDTS/XUDTS (one of our answers returned) is dropped. Each is
  reported (``report``: counted as ``bad_input.KIND`` (``netio.bad_input``, not logged) unless the application gives its
  own reporter, which also logs).

An answer that waits (the answering function returns a future: its first sight is not on
disk yet) comes back as ``Waiting``: the transport calls ``finish`` with the TCAP answer
once the future is done.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netio.bad_input import BadInput
from sigtran import sccp
from sigtran.m3ua import SI_SCCP, ErrorCode, Kind, Message, ProtocolData, Tag, error_message, u32
from sigtran.sccp import SSN_EIR, ReturnCause, SccpAddress, SccpError, Udt, Xudt

if TYPE_CHECKING:
    import asyncio

UNEQUIPPED_REMOTE_USER = 2  # DUPU cause (RFC 4666 3.4.5)
_USER_CAUSE = struct.Struct(">HH")

# (TCAP of the request, who asked, when it was received, past the bounds on requests in
# progress) -> the TCAP answer, None for none, or a future of either
Answer = Callable[[bytes, str, "float | None", bool], "bytes | asyncio.Future[bytes | None] | None"]
Report = Callable[[str, str, str], None]  # (kind, reason, peer): one piece of bad input

log = logging.getLogger("sigtran.routing")


@dataclass(frozen=True, slots=True)
class Reply:
    """What goes back for one DATA: a DATA carrying ``data``, or an M3UA ``message``."""

    data: ProtocolData | None = None
    message: Message | None = None


@dataclass(frozen=True, slots=True)
class Waiting:
    """The answer to one DATA is not ready: ``finish(tcap_answer)`` once ``answer`` is done."""

    answer: asyncio.Future[bytes | None]
    finish: Callable[[bytes | None], Reply | None]


class SccpRouter:
    def __init__(self, answer: Answer, point_code: int | None = None, global_title: str | None = None,
                 report: Report | None = None) -> None:
        self.answer = answer
        self.point_code = point_code
        self.own_address = (sccp.gt_address(global_title, SSN_EIR, point_code=None)
                            if global_title is not None else None)
        self.counters: Counter[str] = Counter()
        self.report: Report = report or BadInput(log, self.counters, limit=0)  # counted only

    def route(self, data: ProtocolData, routing_context: int | None, peer: str, received_at: float | None = None,
              busy: bool = False) -> Reply | Waiting | None:
        """What goes back for one DATA; ``busy``: past the bounds on requests in progress (the
        answering function refuses at once)."""
        if data.si != SI_SCCP:
            return self._refuse("user_part", f"user part {data.si} is not SCCP: DUPU", peer,
                                dupu(data, routing_context))
        if self.point_code is not None and data.dpc != self.point_code:
            return self._refuse("point_code", f"DPC {data.dpc} is not ours ({self.point_code}): DUNA", peer,
                                duna(data.dpc, routing_context))
        try:
            message = sccp.decode_message(data.user_data)
        except SccpError as error:
            return self._refuse("sccp", f"SCCP not decodable ({error.reason}): ERR", peer, error_message(
                ErrorCode.INVALID_PARAMETER_VALUE, data_message(data, routing_context)))
        if not isinstance(message, Udt | Xudt):
            self.report("sccp_returned", f"{type(message).__name__} (cause {message.return_cause}) dropped", peer)
            return None
        cause = self._undeliverable(message)
        if cause is not None:
            return self._return(message, cause, data, peer)
        answer = self.answer(message.data, _asker(message.calling, data), received_at, busy)
        if answer is None or isinstance(answer, bytes):
            return self._reply(message, data, answer)
        return Waiting(answer, lambda tcap_answer: self._reply(message, data, tcap_answer))


    def _reply(self, message: Udt | Xudt, data: ProtocolData, answer: bytes | None) -> Reply | None:
        if answer is None:
            return None
        reply = sccp.answer(message, answer)
        if self.own_address is not None:
            reply = _replace_calling(reply, self.own_address)
        return Reply(data.reply(sccp.encode_message(reply)))

    @staticmethod
    def _undeliverable(message: Udt | Xudt) -> ReturnCause | None:
        ssn = message.called.ssn
        if ssn is not None and ssn != SSN_EIR:
            return ReturnCause.UNEQUIPPED_USER
        if ssn is None and not message.called.route_on_gt:
            return ReturnCause.UNEQUIPPED_USER
        if isinstance(message, Xudt) and message.needs_reassembly:
            return ReturnCause.CANNOT_REASSEMBLE
        return None

    def _return(self, message: Udt | Xudt, cause: ReturnCause, data: ProtocolData, peer: str) -> Reply | None:
        what = f"SCCP {type(message).__name__} to SSN {message.called.ssn}: {cause.name}"
        if not message.return_on_error:
            self.report("sccp_undeliverable", f"{what}, dropped (no return option)", peer)
            return None
        self.report("sccp_undeliverable", f"{what}, returned", peer)
        return Reply(data.reply(sccp.encode_message(sccp.undeliverable(message, cause))))

    def _refuse(self, kind: str, reason: str, peer: str, message: Message) -> Reply:
        self.report(kind, reason, peer)
        return Reply(message=message)


def _asker(calling: SccpAddress, data: ProtocolData) -> str:
    """Who asked, for the answer log: the calling global title, else the point code."""
    return calling.digits or f"pc:{calling.point_code if calling.point_code is not None else data.opc}"


def _replace_calling(reply: Udt | Xudt, own: SccpAddress) -> Udt | Xudt:
    if isinstance(reply, Xudt):
        return Xudt(reply.called, own, reply.data, reply.protocol_class, reply.return_on_error,
                    reply.hop_counter, reply.segmentation, reply.importance, reply.other_optional)
    return Udt(reply.called, own, reply.data, reply.protocol_class, reply.return_on_error)


def data_message(data: ProtocolData, routing_context: int | None) -> bytes:
    """The M3UA DATA message carrying ``data``, as an ERR quotes it."""
    message = Message(Kind.DATA)
    if routing_context is not None:
        message.add(Tag.ROUTING_CONTEXT, u32(routing_context))
    return message.add(Tag.PROTOCOL_DATA, data.encode()).to_bytes()


def _ssnm(kind: Kind, routing_context: int | None) -> Message:
    message = Message(kind)
    if routing_context is not None:
        message.add(Tag.ROUTING_CONTEXT, u32(routing_context))
    return message


def duna(point_code: int, routing_context: int | None) -> Message:
    """DUNA: ``point_code`` is unavailable (RFC 4666 3.4.1)."""
    return _ssnm(Kind.DUNA, routing_context).add(Tag.AFFECTED_POINT_CODE, u32(point_code))


def dupu(data: ProtocolData, routing_context: int | None) -> Message:
    """DUPU: the user part of ``data`` is unequipped at its DPC (RFC 4666 3.4.5)."""
    return (_ssnm(Kind.DUPU, routing_context).add(Tag.AFFECTED_POINT_CODE, u32(data.dpc))
            .add(Tag.USER_CAUSE, _USER_CAUSE.pack(UNEQUIPPED_REMOTE_USER, data.si)))
