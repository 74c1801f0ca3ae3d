"""freeDiameter as a relay (DRA) between our Diameter client and our Diameter server.

Both ends are the product's own stack (diameter.transport over real loopback TCP); the
relay in the middle is freeDiameter, software nobody here wrote. An ECR crosses it end
to end, and so does the error answer to a malformed one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from diameter.answers import answer_to, finish_answer, result_code_of
from diameter.capabilities import LocalNode
from diameter.constants import APP_S13, Command, ResultCode
from diameter.message import Message, make_message
from diameter.transport import PeerConnection, connect, start_server
from tests.interop.freediameter import FreeDiameterRelay, Peer, RelayConfig
from tests.tools import LOOPBACK, free_tcp_port, require_tool

pytestmark = pytest.mark.interop

REALM = "localdomain"
EIR = LocalNode("eir.localdomain", REALM, product_name="eir-under-test")
MME = LocalNode("mme.localdomain", REALM, product_name="mme-under-test")
STATUS_BY_IMEI = {"35209900176148": 0, "35209900176149": 1, "35209900176150": 2}


def status_handler(seen: list[Message]):  # type: ignore[no-untyped-def]
    def handler(request: Message, _: PeerConnection) -> Message:
        seen.append(request)
        imei = request.find("Terminal-Information").find("IMEI").value  # type: ignore[union-attr]
        answer = answer_to(request, EIR.origin_host, EIR.origin_realm, ResultCode.DIAMETER_SUCCESS)
        answer.add("Auth-Session-State", 1).add("Equipment-Status", STATUS_BY_IMEI[imei])
        return finish_answer(request, answer)
    return handler


def ecr(session: int, imei: str | None) -> Message:
    m = make_message(Command.ME_IDENTITY_CHECK, request=True, proxiable=True, application_id=APP_S13)
    m.add("Session-Id", f"{MME.origin_host};relay;{session}").add("Auth-Session-State", 1)
    m.add("Origin-Host", MME.origin_host).add("Origin-Realm", REALM).add("Destination-Realm", REALM)
    if imei is not None:
        m.avps.append(m.group("Terminal-Information", ("IMEI", imei), ("Software-Version", "07")))
    return m.add("User-Name", "437011234567890")


def test_ecr_relayed_end_to_end_through_freediameter(tmp_path: Path) -> None:
    require_tool("freeDiameterd")
    seen: list[Message] = []

    async def main() -> None:
        server = await start_server(EIR, status_handler(seen), LOOPBACK, 0)
        config = RelayConfig(port=free_tcp_port(), identity="dra.localdomain", realm=REALM,
                             peers=[Peer(EIR.origin_host, LOOPBACK, server.addresses[0][1])],
                             routes={REALM: EIR.origin_host})
        relay = FreeDiameterRelay(tmp_path, config).start()
        try:
            assert await asyncio.to_thread(relay.wait_peer_open, EIR.origin_host, 10.0), relay.log_tail()
            (relay_side,) = server.connections
            assert relay_side.remote is not None and relay_side.remote.origin_host == "dra.localdomain"
            client = await connect(MME, *relay.address)
            assert client.remote is not None and client.remote.is_relay
            for n, (imei, status) in enumerate(STATUS_BY_IMEI.items()):
                answer = await client.request(ecr(n, imei), timeout=5)
                assert result_code_of(answer) == ResultCode.DIAMETER_SUCCESS
                assert answer.value("Equipment-Status") == status
                assert answer.value("Origin-Host") == EIR.origin_host
                assert answer.problems == []
            bad = await client.request(ecr(9, None), timeout=5)
            assert result_code_of(bad) == ResultCode.DIAMETER_MISSING_AVP
            failed = bad.find("Failed-AVP")
            assert failed is not None and failed.value[0].name == "Terminal-Information"
            await client.disconnect()
        finally:
            await asyncio.to_thread(relay.stop)
            await server.close()
        assert server.counters["bad_input.diameter_5005"] == 1

    asyncio.run(main())
    assert len(seen) == 3
    for request in seen:  # what reached our server came through the relay, unparsed by it
        assert request.value("Origin-Host") == MME.origin_host
        assert MME.origin_host in [a.value for a in request.find_all("Route-Record")]
        assert request.problems == []
