"""Diameter conformance checks (RFC 6733 base, TS 29.272 S13): each opens its own TCP
connection to the EIR, behaves like an MME for one exchange, and reports what came back.

They speak through ``DiameterProbe``, a plain stream with our codecs (``diameter.message``,
``diameter.framing``) and no peer state machine: a conformance check must be able to send
what a well-behaved peer never would (an unknown command, a CER from a stranger) and see
every answer as it is, the CEA and the DPA included. While it waits, a probe answers the
EIR's DWRs (RFC 6733 5.5) so a slow check is not taken for a dead peer.

Fields of every answer (``answer_fields``): ``command`` (its name), ``result_code`` (the
Result-Code, or the Experimental-Result-Code), ``result_name``, ``error_bit``,
``failed_avp`` (the AVPs inside Failed-AVP, a Grouped one as Outer/Inner),
``equipment_status`` (WHITELISTED, BLACKLISTED, GREYLISTED or None) and ``origin_host``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from diameter.avp import Avp
from diameter.capabilities import LocalNode, build_cer
from diameter.constants import (
    APP_COMMON,
    APP_S13,
    AVP_FLAG_M,
    AVP_FLAG_V,
    FLAG_E,
    VENDOR_3GPP,
    AuthSessionState,
    Command,
    DisconnectCause,
    ResultCode,
)
from diameter.disconnect import build_dpr
from diameter.errors import FramingError
from diameter.framing import MessageReader
from diameter.message import Message, decode_message, make_message
from diameter.transport import SCTP_DIAMETER
from netio import transports
from simulator.conformance_common import (
    CheckFunction,
    CheckOptions,
    CheckStopped,
    WireCheck,
    WireObservation,
    timed_out,
    unreachable,
)
from simulator.mme import build_ecr, code_name, describe, os_error_text, session_suffix

if TYPE_CHECKING:
    from netio.capture import Capture

APP_S6A = 16777251  # an application an EIR does not serve (TS 29.272 S6a)
UPDATE_LOCATION = 316  # S6a Update-Location-Request
UNKNOWN_COMMAND = 8388650  # in the vendor-specific range (RFC 6733 11.2.1): no S13 command
UNKNOWN_AVP_CODE = 65001  # no 3GPP AVP has this code
UNSERVED_REALM = "realm-not-served.invalid"  # .invalid: served by nobody (RFC 2606)
_VSAI_MEMBERS = ("Vendor-Id", "Auth-Application-Id", "Acct-Application-Id")


Tamper = Callable[[bytes], bytes]


class DiameterProbe:
    """One TCP connection: send requests, read the answers (sans-I/O codecs over a stream)."""

    _ids = itertools.count(int.from_bytes(os.urandom(2), "big") << 8)

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, node: LocalNode,
                 peer: str, timeout: float) -> None:
        self.reader, self.writer = reader, writer
        self.node, self.peer, self.timeout = node, peer, timeout
        self.frames = MessageReader()
        self.received: list[Message] = []
        self.eof = False

    @classmethod
    async def open(cls, host: str, port: int, node: LocalNode, timeout: float,
                   capture: Capture | None = None) -> DiameterProbe:
        """A TCP connection to host:port (recorded in ``capture``, if given)."""
        peer = f"{host}:{port}"
        try:
            reader, writer = await asyncio.wait_for(_streams(host, port, capture), timeout)
        except TimeoutError:
            raise unreachable(peer, f"no TCP connection within {timeout:g} s") from None
        except OSError as exc:
            raise unreachable(peer, os_error_text(exc)) from None
        return cls(reader, writer, node, peer, timeout)

    def send(self, request: Message, tamper: Tamper | None = None) -> Message:
        """Write ``request`` with fresh Hop-by-Hop and End-to-End ids; ``tamper`` may change
        its octets first (to send what our encoder never would)."""
        request.hop_by_hop = request.end_to_end = next(self._ids) & 0xFFFFFFFF
        octets = request.to_bytes()
        self.writer.write(tamper(octets) if tamper is not None else octets)
        return request

    async def ask(self, request: Message, tamper: Tamper | None = None, timeout: float | None = None) -> Message:
        """Send ``request`` and return its answer. CheckStopped when none came in time
        (``timeout``, the probe's unless given) or the EIR closed the connection first."""
        self.send(request, tamper)
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            for message in self._take():
                if not message.is_request and message.hop_by_hop == request.hop_by_hop:
                    return message
            if self.eof:
                raise CheckStopped({"closed": True, "result_code": None},
                                   f"sent {request.name}; {self.peer} closed the connection without answering")
            if not await self._read(deadline):
                raise timed_out(f"answer to {request.name} from {self.peer}", timeout)

    async def closed_within(self, seconds: float) -> float | None:
        """Seconds until the EIR closed the connection, None if it was still open after ``seconds``."""
        started = time.monotonic()
        deadline = started + seconds
        while not self.eof:
            if not await self._read(deadline):
                return None
            self._take()
        return round(time.monotonic() - started, 3)

    async def leave(self) -> None:
        """DPR, a short wait for the DPA, then close as the DPR's sender does (RFC 6733 5.4):
        a polite MME's goodbye."""
        if not self.eof:
            with contextlib.suppress(ConnectionError, CheckStopped):
                await self.ask(build_dpr(self.node, DisconnectCause.REBOOTING), timeout=min(self.timeout, 1.0))
        self.writer.close()

    def _take(self) -> list[Message]:
        """Messages read so far; a DWR from the EIR is answered at once."""
        taken, self.received = self.received, []
        for message in taken:
            if message.is_request and message.command_code == Command.DEVICE_WATCHDOG:
                self.writer.write(base_answer(message, self.node).to_bytes())
        return taken

    async def _read(self, deadline: float) -> bool:
        """Read once; False when ``deadline`` passed first."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            data = await asyncio.wait_for(self.reader.read(65536), left)
        except TimeoutError:
            return False
        except ConnectionError:
            data = b""
        if not data:
            self.eof = True
            return True
        try:
            self.received += [decode_message(frame) for frame in self.frames.feed(data)]
        except FramingError as exc:
            raise CheckStopped({"unreadable": str(exc)}, f"{self.peer} sent octets that are not Diameter: {exc}") \
                from None
        return True


async def _streams(host: str, port: int, capture: Capture | None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection``, through the capture's tap when there is one."""
    if capture is None:
        return await asyncio.open_connection(host, port)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await transports.connect(lambda: protocol, host, port, "tcp", SCTP_DIAMETER, capture)
    assert isinstance(transport, asyncio.WriteTransport)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


def base_answer(request: Message, node: LocalNode) -> Message:
    answer = make_message(request.command_code, request=False, application_id=request.application_id,
                          hop_by_hop=request.hop_by_hop, end_to_end=request.end_to_end)
    answer.add("Result-Code", ResultCode.DIAMETER_SUCCESS)
    return answer.add("Origin-Host", node.origin_host).add("Origin-Realm", node.origin_realm)


def answer_fields(answer: Message, peer: str) -> dict[str, object]:
    outcome = describe(answer, peer, "", 0.0)
    return {"command": outcome.command, "result_code": outcome.result_code,
            "result_name": code_name(outcome.result_code), "error_bit": outcome.error_bit,
            "failed_avp": outcome.failed_avps, "equipment_status": outcome.equipment_status,
            "origin_host": outcome.origin_host}


def answer_text(answer: Message) -> str:
    """"Capabilities-Exchange-Answer 2001 DIAMETER_SUCCESS", and the E bit, Failed-AVP, Equipment-Status."""
    outcome = describe(answer, "", "", 0.0)
    text = f"{answer.name} {outcome.result_code} {code_name(outcome.result_code)}"
    if answer.is_error:
        text += " (E bit)"
    if outcome.failed_avps:
        text += f", Failed-AVP {' '.join(outcome.failed_avps)}"
    if outcome.equipment_status:
        text += f", Equipment-Status {outcome.equipment_status}"
    return text


# --- the exchanges ---------------------------------------------------------------------------


def mme_node(options: CheckOptions, origin_host: str | None = None) -> LocalNode:
    return LocalNode(origin_host or options.origin_host, options.origin_realm, product_name="eir-conformance",
                     origin_state_id=int(time.time()))


async def opened(host: str, port: int, options: CheckOptions) -> tuple[DiameterProbe, Message]:
    """A connection after a successful CER/CEA; CheckStopped with the CEA's fields otherwise."""
    probe = await DiameterProbe.open(host, port, mme_node(options), options.timeout, options.capture)
    try:
        cea = await probe.ask(build_cer(probe.node))
    except CheckStopped:
        probe.writer.close()
        raise
    if cea.value("Result-Code") != 2001:
        probe.writer.close()
        raise CheckStopped({**answer_fields(cea, probe.peer), "stage": "CER"},
                           f"sent CER as {probe.node.origin_host}; capabilities exchange failed: {answer_text(cea)}")
    return probe, cea


async def after_cer(host: str, port: int, options: CheckOptions, request: Message, name: str,
                    sent: str, tamper: Tamper | None = None) -> WireObservation:
    """CER/CEA, then ``request`` (its Origin-Host/Realm already ours; its octets changed by
    ``tamper`` when given), its answer, DPR."""
    probe, _ = await opened(host, port, options)
    try:
        answer = await probe.ask(request, tamper)
    finally:
        await probe.leave()
    return WireObservation(name, answer_fields(answer, probe.peer), f"sent {sent}; got {answer_text(answer)}")


def ecr(options: CheckOptions, imei: str | None = None) -> Message:
    return build_ecr(mme_node(options), options.imei if imei is None else imei,
                     destination_realm=options.destination_realm)


def session_request(options: CheckOptions, command: int, application: int) -> Message:
    """A request with the AVPs every session request carries, and nothing else."""
    request = make_message(command, request=True, proxiable=True, application_id=application)
    request.add("Session-Id", f"{options.origin_host};{session_suffix()}")
    request.add("Auth-Session-State", AuthSessionState.NO_STATE_MAINTAINED)
    request.add("Origin-Host", options.origin_host).add("Origin-Realm", options.origin_realm)
    return request.add("Destination-Realm", options.destination_realm)


# --- the checks ------------------------------------------------------------------------------


async def check_cer(host: str, port: int, options: CheckOptions) -> WireObservation:
    """Fields besides the answer's: ``origin_realm``, ``product_name``,
    ``auth_application_ids`` and ``vendor_specific_application_ids`` ([vendor, application])."""
    probe, cea = await opened(host, port, options)
    await probe.leave()
    fields = answer_fields(cea, probe.peer)
    fields["origin_realm"] = cea.value("Origin-Realm")
    fields["product_name"] = cea.value("Product-Name")
    fields["auth_application_ids"] = [int(a.value) for a in cea.find_all("Auth-Application-Id")]
    fields["vendor_specific_application_ids"] = [
        [int(m.value) for m in (avp.value or []) if m.name in _VSAI_MEMBERS]
        for avp in cea.find_all("Vendor-Specific-Application-Id")]
    return WireObservation("cer", fields, f"sent CER as {probe.node.origin_host}; got {answer_text(cea)}, "
                                          f"applications {fields['vendor_specific_application_ids']}")


async def check_dwr(host: str, port: int, options: CheckOptions) -> WireObservation:
    dwr = make_message(Command.DEVICE_WATCHDOG, request=True, application_id=APP_COMMON)
    dwr.add("Origin-Host", options.origin_host).add("Origin-Realm", options.origin_realm)
    return await after_cer(host, port, options, dwr, "dwr", "CER, then DWR")


async def check_dpr(host: str, port: int, options: CheckOptions) -> WireObservation:
    """The DPA, then we close the connection as the DPR's sender does (RFC 6733 5.4: the
    side that sent DPR closes on DPA; the other side waits for it). Fields besides the
    answer's: ``closed`` (the EIR had closed the connection already when the DPA was read)
    and ``closed_after_s``."""
    probe, _ = await opened(host, port, options)
    try:
        dpa = await probe.ask(build_dpr(probe.node, DisconnectCause.REBOOTING))
        closed_after = await probe.closed_within(0.0)
    finally:
        probe.writer.close()
    fields = {**answer_fields(dpa, probe.peer), "closed": closed_after is not None, "closed_after_s": closed_after}
    closing = ("the EIR had closed the connection already" if closed_after is not None
               else "we closed the connection, as the DPR's sender does")
    return WireObservation("dpr", fields, f"sent CER, then DPR; got {answer_text(dpa)}; {closing}")


async def check_ecr(host: str, port: int, options: CheckOptions) -> WireObservation:
    return await after_cer(host, port, options, ecr(options), "ecr", f"CER, then ECR for IMEI {options.imei}")


async def check_missing_avp(host: str, port: int, options: CheckOptions) -> WireObservation:
    request = ecr(options)
    request.avps = [avp for avp in request.avps if avp.name != "Terminal-Information"]
    return await after_cer(host, port, options, request, "missing-avp", "CER, then ECR without Terminal-Information")


async def check_invalid_avp_value(host: str, port: int, options: CheckOptions) -> WireObservation:
    imei = options.imei[:-1] + "A"
    return await after_cer(host, port, options, ecr(options, imei), "invalid-avp-value",
                           f"CER, then ECR with IMEI {imei!r} (a letter)")


async def check_unsupported_avp(host: str, port: int, options: CheckOptions) -> WireObservation:
    request = ecr(options)
    request.avps.append(Avp(UNKNOWN_AVP_CODE, AVP_FLAG_M | AVP_FLAG_V, VENDOR_3GPP, b"\x00\x00\x00\x01"))
    return await after_cer(host, port, options, request, "unsupported-avp",
                           f"CER, then ECR with AVP {UNKNOWN_AVP_CODE} (vendor {VENDOR_3GPP}, M bit set), unknown")


async def check_unsupported_command(host: str, port: int, options: CheckOptions) -> WireObservation:
    request = session_request(options, UNKNOWN_COMMAND, APP_S13)
    return await after_cer(host, port, options, request, "unsupported-command",
                           f"CER, then command {UNKNOWN_COMMAND} in the S13 application")


async def check_unsupported_application(host: str, port: int, options: CheckOptions) -> WireObservation:
    request = session_request(options, UPDATE_LOCATION, APP_S6A)
    return await after_cer(host, port, options, request, "unsupported-application",
                           f"CER, then an Update-Location-Request in S6a ({APP_S6A}), an application not advertised")


async def check_invalid_hdr_bits(host: str, port: int, options: CheckOptions) -> WireObservation:
    request = ecr(options)
    request.flags |= FLAG_E
    return await after_cer(host, port, options, request, "invalid-hdr-bits", "CER, then an ECR with the E bit set")


async def check_avp_occurs_too_many_times(host: str, port: int, options: CheckOptions) -> WireObservation:
    request = ecr(options)
    terminal = request.find("Terminal-Information")
    assert terminal is not None
    request.avps.append(terminal)
    return await after_cer(host, port, options, request, "avp-occurs-too-many-times",
                           "CER, then an ECR with Terminal-Information twice")


async def check_realm_not_served(host: str, port: int, options: CheckOptions) -> WireObservation:
    request = build_ecr(mme_node(options), options.imei, destination_realm=UNSERVED_REALM)
    return await after_cer(host, port, options, request, "realm-not-served",
                           f"CER, then an ECR for Destination-Realm {UNSERVED_REALM}")


def overlong_last_avp(octets: bytes) -> bytes:
    """The message with a User-Name AVP appended whose length says 8 octets more than it has."""
    avp = struct.pack(">IBBHI", 1, AVP_FLAG_M, 0, 8 + 4 + 8, 0x30303030)  # code 1, M, length 20, 4 data octets
    body = octets[4:] + avp
    return bytes([octets[0]]) + (len(body) + 4).to_bytes(3, "big") + body


async def check_invalid_avp_length(host: str, port: int, options: CheckOptions) -> WireObservation:
    return await after_cer(host, port, options, ecr(options), "invalid-avp-length",
                           "CER, then an ECR whose last AVP's length runs past the message's end",
                           overlong_last_avp)


async def check_unknown_peer(host: str, port: int, options: CheckOptions) -> WireObservation:
    """Fields besides the answer's: ``closed`` and ``closed_after_s`` as for ``dpr``."""
    node = mme_node(options, options.unknown_origin_host)
    probe = await DiameterProbe.open(host, port, node, options.timeout, options.capture)
    try:
        cea = await probe.ask(build_cer(node))
        closed_after = await probe.closed_within(options.close_wait) if cea.value("Result-Code") != 2001 else None
        if closed_after is None:
            await probe.leave()
    finally:
        probe.writer.close()
    fields = {**answer_fields(cea, probe.peer), "closed": closed_after is not None, "closed_after_s": closed_after}
    closing = "; the EIR closed the connection" if closed_after is not None else ""
    return WireObservation("unknown-peer", fields, f"sent CER as {node.origin_host}; got {answer_text(cea)}{closing}")


def _check(name: str, description: str, run: CheckFunction) -> WireCheck:
    return WireCheck(name, "diameter", description, run)


DIAMETER_CHECKS = [
    _check("cer", "CER; CEA 2001 advertising S13 (16777252, vendor 10415): RFC 6733 5.3", check_cer),
    _check("dwr", "CER, DWR; DWA 2001: RFC 6733 5.5", check_dwr),
    _check("dpr", "CER, DPR; DPA 2001, then the DPR's sender closes the connection: RFC 6733 5.4", check_dpr),
    _check("ecr", "CER, a well-formed ECR; ECA 2001 with an Equipment-Status: TS 29.272 5.2.5.1", check_ecr),
    _check("missing-avp", "CER, ECR without Terminal-Information; 5005 DIAMETER_MISSING_AVP, Failed-AVP naming it: "
           "RFC 6733 7.1.5, TS 29.272 7.2.9", check_missing_avp),
    _check("invalid-avp-value", "CER, ECR whose IMEI has a letter; 5004 DIAMETER_INVALID_AVP_VALUE, Failed-AVP with "
           "the IMEI: RFC 6733 7.1.5", check_invalid_avp_value),
    _check("unsupported-avp", "CER, ECR with an unknown AVP flagged M; 5001 DIAMETER_AVP_UNSUPPORTED, Failed-AVP "
           "with it: RFC 6733 7.1.5", check_unsupported_avp),
    _check("unsupported-command", "CER, an unknown command in the S13 application; 3001 "
           "DIAMETER_COMMAND_UNSUPPORTED with the E bit: RFC 6733 7.1.3", check_unsupported_command),
    _check("unsupported-application", "CER, a request of S6a (not advertised); 3007 "
           "DIAMETER_APPLICATION_UNSUPPORTED with the E bit: RFC 6733 7.1.3", check_unsupported_application),
    _check("invalid-hdr-bits", "CER, an ECR with the E bit set; 3008 DIAMETER_INVALID_HDR_BITS with the E bit: "
           "RFC 6733 3, 7.1.3", check_invalid_hdr_bits),
    _check("avp-occurs-too-many-times", "CER, an ECR with Terminal-Information twice; 5009 "
           "DIAMETER_AVP_OCCURS_TOO_MANY_TIMES, Failed-AVP with the extra one: RFC 6733 7.1.5",
           check_avp_occurs_too_many_times),
    _check("realm-not-served", "CER, an ECR for a realm nobody serves; 3003 DIAMETER_REALM_NOT_SERVED with the "
           "E bit: RFC 6733 6.1, 7.1.3", check_realm_not_served),
    _check("invalid-avp-length", "CER, an ECR whose last AVP's length runs past the message; 5014 "
           "DIAMETER_INVALID_AVP_LENGTH: RFC 6733 7.1.5", check_invalid_avp_length),
    _check("unknown-peer", "CER from an Origin-Host the EIR does not allow; CEA 3010 DIAMETER_UNKNOWN_PEER, then "
           "the connection closes: RFC 6733 5.3, 7.1.3", check_unknown_peer),
]
