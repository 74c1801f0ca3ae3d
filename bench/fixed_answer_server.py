"""The fixed-answer asyncio Diameter server: the ceiling the agent's throughput is compared with.

It does the least a Diameter server can do in Python on asyncio: CER gets a fixed CEA
(Result-Code 2001, S13 advertised), DWR a DWA, DPR a DPA and a close, and every other
request a FIXED pre-encoded ECA (Result-Code 2001, Equipment-Status WHITELISTED) where
only the length, Hop-by-Hop and End-to-End ids and the request's Session-Id AVP (copied
as it came) change. No decoding, no lookup, no logging. Run:

    python bench/fixed_answer_server.py --port 3868 [--host 127.0.0.1]

It prints "listening on HOST:PORT" once ready and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import struct
import sys
import time

from diameter.answers import answer_to
from diameter.capabilities import LocalNode, capability_avps
from diameter.constants import APP_COMMON, APP_S13, VENDOR_3GPP, Command, EquipmentStatus, ResultCode
from diameter.framing import frame_ends
from diameter.message import make_message

_HEADER = struct.Struct(">IIIII")
_AVP = struct.Struct(">II")
_LENGTH = struct.Struct(">I")
_IDS = struct.Struct(">II")
SESSION_ID = 263
R_BIT = 0x80 << 24
NODE = LocalNode("fixed.localdomain", "localdomain", product_name="eir-fixed-answer-server",
                 origin_state_id=int(time.time()))


def _answer_bytes(command: int, application: int, *, s13: bool = False) -> bytes:
    """An answer with ids 0, built once by the codec: the body after Session-Id is fixed."""
    request = make_message(command, request=True, proxiable=s13, application_id=application)
    answer = answer_to(request, NODE.origin_host, NODE.origin_realm, ResultCode.DIAMETER_SUCCESS)
    if command == Command.CAPABILITIES_EXCHANGE:
        capability_avps(answer, NODE)
    elif command == Command.DEVICE_WATCHDOG:
        answer.add("Origin-State-Id", NODE.origin_state_id)
    elif s13:  # TS 29.272 7.2.10 order: [VSAI] [Result-Code] {Auth-Session-State} {Origin-Host} ...
        result, host, realm = answer.avps
        answer.avps = [answer.group("Vendor-Specific-Application-Id", ("Vendor-Id", VENDOR_3GPP),
                                    ("Auth-Application-Id", APP_S13)), result]
        answer.add("Auth-Session-State", 1)
        answer.avps += [host, realm]
        answer.add("Equipment-Status", int(EquipmentStatus.WHITELISTED))
    return answer.to_bytes()


CEA = _answer_bytes(Command.CAPABILITIES_EXCHANGE, APP_COMMON)
DWA = _answer_bytes(Command.DEVICE_WATCHDOG, APP_COMMON)
DPA = _answer_bytes(Command.DISCONNECT_PEER, APP_COMMON)
ECA_BODY = _answer_bytes(Command.ME_IDENTITY_CHECK, APP_S13, s13=True)[20:]  # Session-Id goes first
ECA_FLAGS_COMMAND = (0x40 << 24) | Command.ME_IDENTITY_CHECK


def _fixed(template: bytes, hop: int, e2e: int) -> bytes:
    out = bytearray(template)
    _IDS.pack_into(out, 12, hop, e2e)
    return bytes(out)


class FixedAnswerProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
        ends, framing_error = frame_ends(data)
        offset = 0
        out = bytearray()
        unpack = _HEADER.unpack_from
        close = False
        for end in ends:
            _, flags_command, application, hop, e2e = unpack(data, offset)
            command = flags_command & 0xFFFFFF
            if not flags_command & R_BIT:
                pass  # an answer: this server sends no requests
            elif command == Command.CAPABILITIES_EXCHANGE:
                out += _fixed(CEA, hop, e2e)
            elif command == Command.DEVICE_WATCHDOG:
                out += _fixed(DWA, hop, e2e)
            elif command == Command.DISCONNECT_PEER:
                out += _fixed(DPA, hop, e2e)
                close = True
            else:
                session = b""
                code, flags_avp_length = _AVP.unpack_from(data, offset + 20)
                if code == SESSION_ID:
                    session_end = offset + 20 + ((flags_avp_length & 0xFFFFFF) + 3 & ~3)
                    session = data[offset + 20:min(session_end, end)]
                out += _HEADER.pack(0x01000000 | (20 + len(session) + len(ECA_BODY)), ECA_FLAGS_COMMAND,
                                    application, hop, e2e)
                out += session
                out += ECA_BODY
            offset = end
        if framing_error is not None:
            assert self.transport is not None
            self.transport.abort()  # framing that cannot be trusted: close (RFC 6733 3)
            return
        self.buffer = data[offset:] if offset < len(data) else b""
        if self.transport is not None:
            if out:
                self.transport.write(out)
            if close:
                self.transport.close()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FixedAnswerProtocol, host, port, reuse_address=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bound = server.sockets[0].getsockname()
    print(f"listening on {bound[0]}:{bound[1]}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3868)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
