"""Two of our Diameter peers over real loopback TCP sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from diameter.answers import answer_to, finish_answer, result_code_of
from diameter.avp import Avp
from diameter.capabilities import LocalNode
from diameter.constants import APP_COMMON, APP_S13, Command, DisconnectCause, ResultCode
from diameter.message import Message, decode_message, make_message
from diameter.peer import PeerSettings, PeerState
from diameter.transport import (
    CapabilitiesRefused,
    DiameterServer,
    PeerConnection,
    connect,
    start_server,
)
from diameter.watchdog import WatchdogState
from netio.sctp import SctpUnavailable, sctp_socket
from tests.tools import wait_until_async, without_sctp

EIR = LocalNode("eir.localdomain", "localdomain", product_name="eir-test")
MME = LocalNode("mme.localdomain", "localdomain", product_name="mme-test")


def eca_handler(request: Message, _: PeerConnection) -> Message:
    answer = answer_to(request, EIR.origin_host, EIR.origin_realm, ResultCode.DIAMETER_SUCCESS)
    answer.add("Auth-Session-State", 1).add("Equipment-Status", 0)
    return finish_answer(request, answer)


def ecr(imei: str = "35209900176148") -> Message:
    m = make_message(Command.ME_IDENTITY_CHECK, request=True, proxiable=True, application_id=APP_S13)
    m.add("Session-Id", "mme.localdomain;1").add("Auth-Session-State", 1).add("Origin-Host", MME.origin_host)
    m.add("Origin-Realm", "localdomain").add("Destination-Realm", "localdomain")
    m.avps.append(m.group("Terminal-Information", ("IMEI", imei)))
    return m


def run(body: Callable[[DiameterServer, int], Awaitable[None]], **server_kw: object) -> None:
    async def main() -> None:
        server = await start_server(EIR, eca_handler, "127.0.0.1", 0, **server_kw)  # type: ignore[arg-type]
        try:
            await asyncio.wait_for(body(server, server.addresses[0][1]), 20)
        finally:
            await server.close()
    asyncio.run(main())


def test_cer_cea_request_and_dpr_dpa_over_tcp() -> None:
    async def body(server: DiameterServer, port: int) -> None:
        client = await connect(MME, "127.0.0.1", port)
        assert client.remote is not None and client.remote.origin_host == "eir.localdomain"
        assert client.remote.product_name == "eir-test"
        answer = await client.request(ecr(), timeout=5)
        assert result_code_of(answer) == ResultCode.DIAMETER_SUCCESS
        assert answer.value("Equipment-Status") == 0
        (server_side,) = server.connections
        assert server_side.remote is not None and server_side.remote.origin_host == "mme.localdomain"
        await client.disconnect(DisconnectCause.DO_NOT_WANT_TO_TALK_TO_YOU)
        assert client.peer.state is PeerState.CLOSED and client.closed.done()
        await asyncio.wait_for(server_side.closed, 5)
    run(body)


def test_dwr_dwa_over_tcp_driven_by_the_watchdog_timer() -> None:
    async def body(server: DiameterServer, port: int) -> None:
        client = await connect(MME, "127.0.0.1", port, settings=PeerSettings(tw_init=30, tw_jitter=0))
        deadline = client.peer.watchdog.next_deadline()
        assert deadline is not None
        client.run_timers(deadline)  # the watchdog sends a real DWR
        assert client.peer.watchdog.pending
        await wait_until_async(lambda: not client.peer.watchdog.pending, 1.0, "the DWA")
        assert not client.peer.watchdog.pending  # the server's DWA came back over the socket
        assert client.peer.watchdog.state is WatchdogState.OKAY
        await client.disconnect()
    run(body)


def test_watchdog_detects_a_silent_peer_and_closes_the_connection() -> None:
    async def body(server: DiameterServer, port: int) -> None:
        client = await connect(MME, "127.0.0.1", port, settings=PeerSettings(tw_init=30, tw_jitter=0))
        (server_side,) = server.connections
        assert server_side.transport is not None
        server_side.transport.pause_reading()  # the EIR stops hearing anything
        start = client.loop.time()
        client.run_timers(start + 30)  # DWR goes out, no DWA will come
        await asyncio.sleep(0.05)  # the test: time for a DWA that must not come
        client.run_timers(start + 60)
        assert client.peer.watchdog.state is WatchdogState.SUSPECT
        client.run_timers(start + 90)
        assert client.peer.watchdog.state is WatchdogState.DOWN
        await asyncio.wait_for(client.closed, 5)
        assert client.counters["watchdog_suspect"] == 1 and client.counters["watchdog_down"] == 1
    run(body)


def test_peer_not_in_the_allowlist_gets_3010() -> None:
    def only_hss() -> PeerSettings:
        return PeerSettings(accept_peer=lambda info, address: info.origin_host == "hss.localdomain")

    async def body(server: DiameterServer, port: int) -> None:
        with pytest.raises(CapabilitiesRefused) as refused:
            await connect(MME, "127.0.0.1", port)
        assert refused.value.result_code == ResultCode.DIAMETER_UNKNOWN_PEER
        assert server.counters["bad_input.diameter_3010"] == 1
    run(body, settings=only_hss)


def test_server_keeps_serving_after_garbage_on_another_connection() -> None:
    async def body(server: DiameterServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x07" + bytes(19))  # Diameter version 7: untrusted framing
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
        writer.close()
        client = await connect(MME, "127.0.0.1", port)
        answer = await client.request(ecr(), timeout=5)
        assert result_code_of(answer) == ResultCode.DIAMETER_SUCCESS
        await client.disconnect()
    run(body)


def test_server_close_sends_dpr_to_connected_peers() -> None:
    async def main() -> None:
        server = await start_server(EIR, eca_handler, "127.0.0.1", 0)
        client = await connect(MME, "127.0.0.1", server.addresses[0][1])
        await server.close(DisconnectCause.REBOOTING)
        await asyncio.wait_for(client.closed, 5)
        assert client.peer.state is PeerState.CLOSED
    asyncio.run(main())


def test_raw_dwr_gets_dwa_with_origin_state_id() -> None:
    async def body(server: DiameterServer, port: int) -> None:
        client = await connect(MME, "127.0.0.1", port)
        dwr = make_message(Command.DEVICE_WATCHDOG, request=True, application_id=APP_COMMON)
        dwr.add("Origin-Host", MME.origin_host).add("Origin-Realm", "localdomain")
        answer = await client.request(dwr, timeout=5)
        assert result_code_of(answer) == ResultCode.DIAMETER_SUCCESS
        assert answer.find("Origin-State-Id") is not None
        assert decode_message(answer.to_bytes()).problems == []
        await client.disconnect()
    run(body)



@without_sctp
def test_sctp_without_kernel_support_is_a_clear_one_line_error() -> None:
    with pytest.raises(SctpUnavailable) as error:
        sctp_socket()
    text = str(error.value)
    assert "SCTP is not available in this kernel" in text and "\n" not in text

    async def main() -> None:
        with pytest.raises(SctpUnavailable):
            await start_server(EIR, eca_handler, "127.0.0.1", 0, transport="sctp")
    asyncio.run(main())


def test_bad_diameter_input_is_counted_always_and_logged_at_most_ten_times_a_second(
        caplog: pytest.LogCaptureFixture) -> None:
    """The same reporter as M3UA, SCCP, TCAP and MAP (netio.bad_input): counter family
    ``bad_input.*``, a rate-limited line. Before, Diameter logged every bad message."""
    async def body(server: DiameterServer, port: int) -> None:
        client = await connect(MME, "127.0.0.1", port)
        def bad() -> Message:
            request = ecr()
            request.avps.append(Avp(99999, 0x40, 0, b"\x00\x00\x00\x01"))  # an unknown AVP with the M bit: 5001
            return request
        answers = await asyncio.gather(*(client.request(bad(), timeout=5) for _ in range(50)))
        assert {result_code_of(answer) for answer in answers} == {ResultCode.DIAMETER_AVP_UNSUPPORTED}
        assert server.counters["bad_input.diameter_5001"] == 50
        assert not any(key.startswith("bad_input_") for key in server.counters)
        await client.disconnect()
    with caplog.at_level("WARNING", logger="diameter.transport"):
        run(body)
    lines = [r for r in caplog.records if r.name == "diameter.transport" and "5001" in r.getMessage()]
    assert 1 <= len(lines) <= 20  # 10 a second: the 50 came within at most two seconds
