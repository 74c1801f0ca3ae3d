"""A Diameter peer demo on loopback: two of our peers, real sockets, every answer printed.

Until the EIR agent lands this shows what the Diameter stack does: capabilities
exchange, watchdog, an S13 ECR, precise error answers to malformed requests, a refused
peer, and a clean disconnect. The demo server has no equipment registry, so it answers
a well-formed ECR with DIAMETER_UNABLE_TO_COMPLY and says why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from diameter.answers import answer_to, finish_answer, result_code_of
from diameter.avp import Avp
from diameter.capabilities import LocalNode
from diameter.constants import APP_COMMON, APP_S13, AVP_FLAG_M, FLAG_R, Command, ResultCode
from diameter.message import Message, make_message
from diameter.peer import PeerSettings
from diameter.transport import CapabilitiesRefused, PeerConnection, connect, start_server

REALM = "localdomain"
EIR = LocalNode("eir.localdomain", REALM, product_name="eir-demo-server", origin_state_id=int(time.time()))
MME = LocalNode("mme.localdomain", REALM, product_name="eir-demo-mme", origin_state_id=int(time.time()))


def demo_handler(request: Message, _: PeerConnection) -> Message:
    answer = answer_to(request, EIR.origin_host, EIR.origin_realm, ResultCode.DIAMETER_UNABLE_TO_COMPLY)
    answer.add("Auth-Session-State", 1)
    answer.add("Error-Message", "demo server: no equipment registry attached")
    return finish_answer(request, answer)


def ecr(session: str, imei: str | None = "35209900176148", extra: list[Avp] | None = None,
        flags: int | None = None) -> Message:
    message = make_message(Command.ME_IDENTITY_CHECK, request=True, proxiable=True, application_id=APP_S13)
    message.add("Session-Id", f"{MME.origin_host};{session}").add("Auth-Session-State", 1)
    message.add("Origin-Host", MME.origin_host).add("Origin-Realm", REALM).add("Destination-Realm", REALM)
    if imei is not None:
        message.avps.append(message.group("Terminal-Information", ("IMEI", imei), ("Software-Version", "01")))
    message.add("User-Name", "437011234567890")
    message.avps.extend(extra or ())
    if flags is not None:
        message.flags = flags
    return message


def dwr() -> Message:
    message = make_message(Command.DEVICE_WATCHDOG, request=True, application_id=APP_COMMON)
    return message.add("Origin-Host", MME.origin_host).add("Origin-Realm", REALM)


def describe(answer: Message) -> str:
    code = result_code_of(answer)
    parts = [f"{answer.name} {code} {_code_name(code)}"]
    if answer.is_error:
        parts.append("(E bit)")
    message = answer.value("Error-Message")
    if message:
        parts.append(f"- {message}")
    failed = answer.find("Failed-AVP")
    if failed is not None and failed.value:
        parts.append(f"- Failed-AVP: {', '.join(a.name for a in failed.value)}")
    return " ".join(parts)


def _code_name(code: int | None) -> str:
    try:
        return ResultCode(code).name if code is not None else "no result"
    except ValueError:
        return "unknown"


async def run_demo(out: Callable[[str], None] = print) -> int:
    """Run the demo; returns the number of answers that were not what the demo expects."""
    server = await start_server(EIR, demo_handler, "127.0.0.1", 0)
    host, port = server.addresses[0]
    out(f"EIR demo server listening on {host}:{port} (TCP), origin {EIR.origin_host}")
    surprises = 0
    try:
        client = await connect(MME, host, port, settings=PeerSettings(tw_init=30.0))
        remote = client.remote
        assert remote is not None
        out(f"CER/CEA: open with {remote.origin_host} ({remote.product_name}), "
            f"common applications {sorted(client.peer.applications)}")
        unknown_m = Avp(99999, AVP_FLAG_M, 0, b"\x00\x00\x00\x01")
        cases: list[tuple[str, Message, int]] = [
            ("DWR", dwr(), ResultCode.DIAMETER_SUCCESS),
            ("ECR, well formed", ecr("1"), ResultCode.DIAMETER_UNABLE_TO_COMPLY),
            ("ECR without Terminal-Information", ecr("2", imei=None), ResultCode.DIAMETER_MISSING_AVP),
            ("ECR with an unknown M-bit AVP", ecr("3", extra=[unknown_m]), ResultCode.DIAMETER_AVP_UNSUPPORTED),
            ("ECR with Proxiable bit clear", ecr("4", flags=FLAG_R), ResultCode.DIAMETER_INVALID_HDR_BITS),
        ]
        for title, request, expected in cases:
            answer = await client.request(request, timeout=5)
            mark = "ok" if result_code_of(answer) == expected else "UNEXPECTED"
            surprises += mark != "ok"
            out(f"{title:36} -> {describe(answer)} [{mark}]")
        await client.disconnect()
        out(f"DPR/DPA: disconnected (peer state {client.peer.state.value})")
        surprises += await _refused_peer(host, port, out)
    finally:
        await server.close()
    out(f"server counters: {dict(sorted(server.counters.items()))}")
    return surprises


async def _refused_peer(host: str, port: int, out: Callable[[str], None]) -> int:
    """A peer that offers no application in common gets CEA 5010 and is disconnected."""
    other = LocalNode("hss.localdomain", REALM, auth_application_ids=(16777251,),
                      vendor_specific_applications=((10415, 16777251),))
    title = "CER offering only S6a"
    try:
        connection = await connect(other, host, port, timeout=5)
    except CapabilitiesRefused as refused:
        ok = refused.result_code == ResultCode.DIAMETER_NO_COMMON_APPLICATION
        out(f"{title:36} -> CEA {refused.result_code} {_code_name(refused.result_code)}, "
            f"connection closed [{'ok' if ok else 'UNEXPECTED'}]")
        return 0 if ok else 1
    out(f"{title:36} -> accepted [UNEXPECTED]")
    await connection.disconnect()
    return 1


def main() -> int:
    return asyncio.run(run_demo())
