"""A stand-in EIR for the MSC emulator's tests: TCAP answers built with our codecs, the M3UA
DATA that carries them back, and an M3UA server (``sigtran.asp.AspServer`` per connection,
in a thread with its own event loop) answering each CheckIMEI as a handler says.

The real agent's MAP side is tested against the emulator in tests/e2e; this one lets the
emulator's failure paths (UDTS, ERR, silence, aborts) be provoked at will.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sigtran import map as mapv
from sigtran import tcap
from sigtran.asp import AspServer, CloseConnection, DataReceived, ServerSettings
from sigtran.m3ua import SI_SCCP, build_data
from sigtran.sccp import ReturnCause, Udt, Xudt, answer, undeliverable
from sigtran.sccp import decode_message as decode_sccp
from simulator.msc import MscIdentity
from tests.tools import LOOPBACK

EIR_CONTEXT = {version: mapv.equipment_context(version) for version in (2, 3)}


# --- answers ---------------------------------------------------------------------------------

def aare(version: int) -> tcap.DialogueResponse | None:
    return tcap.DialogueResponse(EIR_CONTEXT[version]) if version >= 2 else None


def end_status(dtid: bytes, version: int, status: mapv.EquipmentStatus) -> bytes:
    result = tcap.ReturnResult(1, mapv.CHECK_IMEI, mapv.encode_check_imei_result(version, status))
    return tcap.encode_end(dtid, (result,), aare(version))


def end_error(dtid: bytes, version: int, code: int) -> bytes:
    return tcap.encode_end(dtid, (tcap.ReturnError(1, code),), aare(version))


def end_reject(dtid: bytes, version: int, problem: tcap.Problem = tcap.INVOKE_MISTYPED_PARAMETER) -> bytes:
    return tcap.encode_end(dtid, (tcap.Reject(1, problem),), aare(version))


def p_abort(dtid: bytes, cause: tcap.PAbortCause = tcap.PAbortCause.RESOURCE_LIMITATION) -> bytes:
    return tcap.encode_abort(dtid, cause=cause)


def refused(dtid: bytes, version: int = 3) -> bytes:
    """A U-Abort whose AARE refuses the dialogue's application context."""
    response = tcap.DialogueResponse(EIR_CONTEXT[version], tcap.AssociateResult.REJECT_PERMANENT,
                                     tcap.DiagnosticUser.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED)
    return tcap.encode_abort(dtid, dialogue=response)


def answer_frame(identity: MscIdentity, tcap_octets: bytes, *, xudt: bool = False, sls: int = 0) -> bytes:
    """The M3UA DATA the EIR sends back: OPC/DPC swapped, to the MSC's calling address."""
    request = (Xudt if xudt else Udt)(identity.called(), identity.calling(), b"\x00", 1, True)
    sccp = answer(request, tcap_octets)
    return build_data(identity.dpc, identity.opc, SI_SCCP, identity.network_indicator, 0, sls, sccp.to_bytes(),
                      routing_context=identity.routing_context).to_bytes()


def returned_frame(identity: MscIdentity, request_tcap: bytes, cause: ReturnCause) -> bytes:
    """The UDTS a gateway sends back when it cannot route our UDT."""
    udts = undeliverable(Udt(identity.called(), identity.calling(), request_tcap, 1, True), cause)
    return build_data(identity.dpc, identity.opc, SI_SCCP, identity.network_indicator, 0, 0, udts.to_bytes(),
                      routing_context=identity.routing_context).to_bytes()


def asked_version(message: tcap.TcMessage) -> int:
    dialogue = message.dialogue
    if isinstance(dialogue, tcap.DialogueRequest):
        return mapv.context_version(dialogue.application_context) or 0
    return 1


def white(message: tcap.TcMessage) -> bytes:
    """A handler: every CheckIMEI is white, answered in the version asked."""
    assert message.otid is not None
    return end_status(message.otid, asked_version(message), mapv.EquipmentStatus.WHITE_LISTED)


# --- the server --------------------------------------------------------------------------------

Reply = bytes | ReturnCause | None  # TCAP octets, a UDTS with this cause, or silence
Handler = Callable[[tcap.TcMessage], Reply]


@dataclass
class Received:
    """What the stand-in EIR received: the M3UA label, routing context, SCCP message and TCAP."""

    data: Any
    routing_context: int | None
    sccp: Udt | Xudt
    message: tcap.TcMessage


@dataclass
class FakeEir:
    handler: Handler
    settings: ServerSettings = field(default_factory=ServerSettings)
    received: list[Received] = field(default_factory=list)
    connections: int = 0


class _EirConnection(asyncio.Protocol):
    def __init__(self, eir: FakeEir) -> None:
        self.eir = eir
        self.asp = AspServer(eir.settings)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.eir.connections += 1

    def data_received(self, data: bytes) -> None:
        for event in self.asp.receive_data(data, time.monotonic()):
            if isinstance(event, DataReceived):
                self._answer(event)
            elif isinstance(event, CloseConnection) and self.transport is not None:
                self.transport.write(self.asp.data_to_send())
                self.transport.close()
        out = self.asp.data_to_send()
        if out and self.transport is not None:
            self.transport.write(out)

    def _answer(self, event: DataReceived) -> None:
        sccp = decode_sccp(event.data.user_data)
        assert isinstance(sccp, Udt | Xudt)
        message = tcap.decode(sccp.data)
        self.eir.received.append(Received(event.data, event.routing_context, sccp, message))
        reply = self.eir.handler(message)
        if reply is None:
            return
        back = undeliverable(sccp, reply) if isinstance(reply, ReturnCause) else answer(sccp, reply)
        self.asp.send_data(event.data.reply(back.to_bytes()), event.routing_context)


@contextmanager
def fake_eir(handler: Handler = white, settings: ServerSettings | None = None) -> Iterator[tuple[str, FakeEir]]:
    """("127.0.0.1:PORT", the FakeEir) for as long as the block runs."""
    eir = FakeEir(handler, settings or ServerSettings())
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        server = await loop.create_server(lambda: _EirConnection(eir), LOOPBACK, 0)
        box["port"], box["stop"] = server.sockets[0].getsockname()[1], asyncio.Event()
        ready.set()
        await box["stop"].wait()
        server.close()
        await server.wait_closed()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    assert ready.wait(5), "the stand-in EIR did not start"
    try:
        yield f"{LOOPBACK}:{box['port']}", eir
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(5)
        loop.close()
