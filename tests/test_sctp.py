"""SCTP on the host: the stream and message rules of ``sigtran.m3ua_streams`` (pure functions), the
agent's refusal of DATA on stream 0 (without sockets), and, where the kernel has no SCTP,
one clear line at start-up and no fallback to TCP. Real kernel SCTP runs in tests/uml."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agent.map_server import M3uaConnection
from diameter.constants import APP_COMMON, Command
from diameter.message import make_message
from diameter.transport import diameter_split
from netio import sctp
from netio.bad_input import BadInput
from netio.flow import ReadPausing
from netio.sctp import Received
from sigtran.asp import AspServer
from sigtran.m3ua import ErrorCode, Kind, Message, Tag, build_data, decode_message, u32
from sigtran.m3ua_streams import M3UA, cut, m3ua_sls, m3ua_split, m3ua_stream, m3ua_transfer
from sigtran.routing import SccpRouter
from simulator.agent_process import run_eir
from tests.tools import kernel_has_sctp, without_sctp


def data(sls: int, routing_context: int | None = 7) -> bytes:
    return build_data(2, 1, 3, 2, 0, sls, b"\x09\x81\x03", routing_context=routing_context).to_bytes()


def management(kind: Kind) -> bytes:
    message = Message(kind)
    if kind is Kind.NTFY:
        message.add(Tag.STATUS, bytes(4))
    return message.to_bytes()


# --- which stream ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sls", [0, 1, 5, 14, 15, 200])
def test_data_rides_stream_one_plus_sls_modulo_the_other_streams(sls: int) -> None:
    assert m3ua_sls(data(sls)) == sls and m3ua_sls(data(sls, None)) == sls
    assert m3ua_stream(data(sls), 16) == 1 + sls % 15
    assert m3ua_stream(data(sls), 2) == 1  # two streams: all DATA on stream 1


@pytest.mark.parametrize("kind", [Kind.ASPUP, Kind.ASPUP_ACK, Kind.ASPAC, Kind.ASPAC_ACK, Kind.BEAT, Kind.ASPDN,
                                  Kind.NTFY, Kind.DUNA])
def test_everything_but_data_rides_stream_0(kind: Kind) -> None:
    message = management(kind)
    assert not m3ua_transfer(message)
    assert m3ua_stream(message, 16) == 0


def test_an_association_with_one_stream_leaves_no_choice() -> None:
    assert m3ua_stream(data(5), 1) == 0


def test_written_bytes_are_cut_into_messages_each_with_its_stream() -> None:
    ack, request, notify = management(Kind.ASPAC_ACK), data(3), management(Kind.NTFY)
    assert m3ua_split(ack + request + notify, 16) == [(ack, 0), (request, 4), (notify, 0)]
    assert m3ua_split(request, 16) == [(request, 4)]


def test_octets_that_make_no_whole_message_go_out_as_they_are() -> None:
    ack = management(Kind.ASPAC_ACK)
    assert m3ua_split(ack + ack[:5], 16) == [(ack, 0), (ack[:5], 0)]
    assert cut(b"\x01\x00", 8, lambda d, at: 8) == [b"\x01\x00"]


def test_each_diameter_message_is_its_own_sctp_message_on_stream_0() -> None:
    dwr = make_message(Command.DEVICE_WATCHDOG, request=True, application_id=APP_COMMON, hop_by_hop=1)
    dwr.add("Origin-Host", "mme.localdomain").add("Origin-Realm", "localdomain")
    one = dwr.to_bytes()
    assert diameter_split(one + one, 10) == [(one, 0), (one, 0)]


# --- DATA received on stream 0 -----------------------------------------------------------------------


class Wire(asyncio.Transport):
    """A transport that keeps what is written (no socket)."""

    def __init__(self) -> None:
        super().__init__({"peername": ("192.0.2.1", 2905), "sctp_streams": (16, 16)})
        self.written: list[bytes] = []

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def test_data_on_stream_0_is_answered_err_invalid_stream_identifier_and_not_routed() -> None:
    async def main() -> tuple[list[bytes], Counter[str]]:
        counters: Counter[str] = Counter()

        def answerer(*_: Any) -> None:
            raise AssertionError("DATA on stream 0 must not reach the router")

        connection = M3uaConnection(AspServer(), SccpRouter(answerer), BadInput(logging.getLogger("test"), counters),  # type: ignore[arg-type]
                                    sctp=True)
        wire = Wire()
        connection.connection_made(wire)
        for kind in (Kind.ASPUP, Kind.ASPAC):
            connection.message_received(management(kind), Received(0, 3))
        wire.written.clear()
        connection.message_received(data(5), Received(0, 3))
        return wire.written, counters

    written, counters = asyncio.run(main())
    (err,) = [decode_message(m) for m in written]
    assert err.kind is Kind.ERR and err.get(Tag.ERROR_CODE) == u32(ErrorCode.INVALID_STREAM_IDENTIFIER)
    assert err.get(Tag.DIAGNOSTIC_INFORMATION) == data(5)
    assert counters["bad_input.m3ua.0x09"] == 1


# --- backpressure over kernel SCTP -------------------------------------------------------------------


@pytest.mark.skipif(not kernel_has_sctp(), reason="this kernel has no SCTP")
def test_the_sctp_transport_pauses_its_protocol_above_the_high_water_mark_and_resumes_it() -> None:
    """A peer that never reads: SctpTransport tells its protocol to stop (pause_writing), as
    asyncio's TCP transports do, and lets it go on once the peer read (resume_writing)."""
    calls: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        made: asyncio.Future[Writer] = loop.create_future()

        class Writer(ReadPausing):
            def __init__(self) -> None:
                self.transport = None
                self.counters = Counter()

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.Transport)
                self.transport = transport
                self.limit_writes(transport)
                made.set_result(self)

            def pause_writing(self) -> None:
                calls.append("pause")
                super().pause_writing()

            def resume_writing(self) -> None:
                calls.append("resume")
                super().resume_writing()

        server = await sctp.start_server(Writer, "127.0.0.1", 0, M3UA)
        client = sctp.sctp_socket()
        client.setblocking(False)
        try:
            await loop.sock_connect(client, server.sockets[0].getsockname()[:2])
            writer = await asyncio.wait_for(made, 5)
            assert writer.transport is not None
            beat = Message(Kind.BEAT).add(Tag.HEARTBEAT_DATA, bytes(4000)).to_bytes()
            for _ in range(20_000):
                if calls:
                    break
                writer.transport.write(beat)
                await asyncio.sleep(0)  # pacing: let the transport write between two sends
            assert calls == ["pause"] and not writer.transport.is_reading()
            deadline = loop.time() + 10
            while "resume" not in calls and loop.time() < deadline:
                try:
                    client.recv(1 << 16)
                except BlockingIOError:
                    await asyncio.sleep(0.01)  # pacing: nothing to read yet, the loop writes more
            assert calls == ["pause", "resume"] and writer.transport.is_reading()
        finally:
            client.close()
            server.close()

    asyncio.run(main())


# --- no SCTP in the kernel: one line at start-up, never TCP instead ----------------------------------




def _one_line_error(stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "SCTP is not available in this kernel" in lines[0], stderr
    assert "Traceback" not in stderr and "listening" not in stderr


@without_sctp
@pytest.mark.parametrize("how", ["flag", "listen", "connect"])
def test_serve_with_m3ua_over_sctp_fails_at_start_with_one_line(tmp_path: Path, how: str) -> None:
    config = tmp_path / "eir.yaml"
    config.write_text({"flag": "m3ua: {listen: [127.0.0.1:2905]}\n",
                       "listen": "m3ua: {listen: [{address: 127.0.0.1:2905, transport: sctp}]}\n",
                       "connect": "m3ua: {connect: [{address: 127.0.0.1:2905, transport: sctp}]}\n"}[how])
    flags = ["--m3ua-transport", "sctp"] if how == "flag" else []
    done = run_eir(f"sqlite:///{tmp_path / 'registry.db'}", "serve", "--listen", "127.0.0.1:0", "--answer-log", "off",
                   "--config", str(config), *flags, check=False, timeout=60)
    assert done.returncode == 1
    _one_line_error(done.stderr)


@without_sctp
@pytest.mark.parametrize("command", [["checkimei", "--peer", "127.0.0.1:2905"], ["ecr", "--peer", "127.0.0.1:3868"]])
def test_simulator_over_sctp_fails_with_one_line(tmp_path: Path, command: list[str]) -> None:
    done = run_eir(f"sqlite:///{tmp_path / 'registry.db'}", "sim", *command, "--transport", "sctp",
                   "352099001761481", check=False, timeout=60)
    assert done.returncode == 1
    _one_line_error(done.stderr)


def test_peer_events_are_logged_at_most_ten_a_second_and_the_next_line_says_how_many_were_held(
        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from netio.logs import PerSecond, Throttled

    now = [100.0]
    events = PerSecond(logging.getLogger("test.events"), limit=10, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.events"):
        for n in range(500):  # a peer flipping its ASP state at line rate
            events(logging.INFO, "ASP %s: AspInactive", n)
        now[0] += 1.0
        events(logging.WARNING, "M3UA ERR %#04x from %s", 0x0D, "peer")
    assert len(caplog.records) == 11 and events.held == 490
    assert caplog.records[-1].levelno == logging.WARNING
    assert caplog.records[-1].getMessage() == "M3UA ERR 0x0d from peer (490 peer event lines held back so far)"

    caplog.clear()
    throttled = Throttled(logging.getLogger("test.events"), interval=5.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.events"):
        for _ in range(100):
            throttled("not reading %s", "peer")
        now[0] += 5.0
        throttled("not reading %s", "peer")
    assert [r.getMessage() for r in caplog.records] == ["not reading peer",
                                                       "not reading peer (and 99 more like it since)"]
