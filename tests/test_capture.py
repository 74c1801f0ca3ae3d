"""netio.capture, the tap behind every ``--pcap``: over a real loopback TCP connection, what the
client wrote and read lands in the file in order, under the connection's real addresses, with
the caller's clock; without a capture nothing is wrapped and scapy is not even imported. The
SCTP frames and the merge of load workers' parts are read back with scapy (tshark judges them
in tests/interop/test_tshark_captures.py)."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from pathlib import Path

from scapy.layers.inet import TCP
from scapy.layers.sctp import SCTPChunkData, SCTPChunkInit, SCTPChunkSACK, SCTPChunkShutdownComplete
from scapy.utils import rdpcap

from netio import transports
from netio.capture import Capture, TappedTransport
from netio.pcap import PcapFlowWriter, merge_pcaps
from netio.pcap_sctp import SctpAssociations
from netio.sctp import Payload

PLAIN = Payload(0, lambda data, outbound: [(data, 0)])
ROOT = Path(__file__).resolve().parent.parent


class Client(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received = b""
        self.got = asyncio.Event()
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data
        if self.received.endswith(b"!"):
            self.got.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(None)


async def _talk(capture: Capture | None) -> tuple[Client, tuple[str, int], tuple[str, int], asyncio.BaseTransport]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readexactly(6)
        writer.write(data.upper() + b"-" * 3000 + b"!")  # more than one MSS back
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        transport, client = await transports.connect(Client, "127.0.0.1", port, "tcp", PLAIN, capture)
        assert client.transport is not None
        client.transport.write(b"abc")
        client.transport.writelines([b"d", b"ef"])
        await asyncio.wait_for(client.got.wait(), 5)
        local, remote = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
        client.transport.close()
        await asyncio.wait_for(client.lost, 5)
    return client, local[:2], remote[:2], transport


def test_the_tap_records_both_directions_under_the_real_addresses_with_the_callers_clock(tmp_path: Path) -> None:
    ticks = itertools.count(1_000_000)
    capture = Capture(tmp_path / "tcp.pcap", clock=lambda: float(next(ticks)))
    client, local, remote, transport = asyncio.run(_talk(capture))
    capture.close()
    assert isinstance(transport, TappedTransport) and client.transport is transport
    assert client.received == b"ABCDEF" + b"-" * 3000 + b"!"
    frames = rdpcap(str(tmp_path / "tcp.pcap"))
    segments = [frame[TCP] for frame in frames]
    assert [str(s.flags) for s in segments[:3]] == ["S", "SA", "A"]
    assert (segments[0].sport, segments[0].dport) == (local[1], remote[1])
    assert {(frame["IP"].src, frame["IP"].dst) for frame in frames} == {("127.0.0.1", "127.0.0.1")}
    sent = b"".join(bytes(s.payload) for s in segments if s.sport == local[1])
    read = b"".join(bytes(s.payload) for s in segments if s.sport == remote[1])
    assert sent == b"abcdef" and read == client.received
    assert "F" in str(segments[-3].flags) and "F" in str(segments[-2].flags)
    stamps = [float(frame.time) for frame in frames]
    assert stamps == sorted(stamps) and 999_999 < stamps[0] < stamps[-1] < 1_000_100
    assert capture.connections == 1


def test_without_a_capture_the_connection_is_not_wrapped(tmp_path: Path) -> None:
    client, _, _, transport = asyncio.run(_talk(None))
    assert not isinstance(transport, TappedTransport) and client.transport is transport


def test_nothing_that_runs_without_a_capture_imports_scapy() -> None:
    program = ("import sys\n"
               "import diameter.transport, sigtran.link, netio.transports, simulator.load, simulator.load_map\n"
               "import simulator.scenario_run, simulator.commands, simulator.conformance\n"
               "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scapy' or m == 'netio.capture'))")
    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_sctp_messages_are_data_chunks_with_their_stream_and_ppid(tmp_path: Path) -> None:
    client, server = ("10.0.0.1", 40000), ("10.0.0.2", 2905)
    with PcapFlowWriter(tmp_path / "sctp.pcap") as writer:
        associations = SctpAssociations(writer)
        associations.open(100.0, client, server)
        associations.send(100.1, client, server, b"\x01\x00\x03\x01" + bytes(4), ppid=3, stream=0)
        associations.send(100.2, server, client, b"answer", ppid=3, stream=1)
        associations.send(100.3, client, server, b"second", ppid=3, stream=0)
        associations.close_all(100.4)
    frames = rdpcap(str(tmp_path / "sctp.pcap"))
    assert frames[0].haslayer(SCTPChunkInit) and frames[-1].haslayer(SCTPChunkShutdownComplete)
    data = [frame[SCTPChunkData] for frame in frames if frame.haslayer(SCTPChunkData)]
    assert [(d.proto_id, d.stream_id, d.stream_seq) for d in data] == [(3, 0, 0), (3, 1, 0), (3, 0, 1)]
    assert data[2].tsn == data[0].tsn + 1
    sacks = [frame[SCTPChunkSACK].cumul_tsn_ack for frame in frames if frame.haslayer(SCTPChunkSACK)]
    assert sacks == [d.tsn for d in data]


def test_merged_parts_keep_every_frame_in_time_order(tmp_path: Path) -> None:
    parts = []
    for number, start in enumerate((10.0, 10.05)):
        part = tmp_path / f"part{number}.pcap"
        with PcapFlowWriter(part) as writer:
            for step in range(5):
                writer.send(start + step * 0.1, ("127.0.0.1", 50000 + number), ("127.0.0.1", 3868), b"x" * 20)
        parts.append(part)
    count = merge_pcaps(parts, tmp_path / "all.pcap")
    merged = rdpcap(str(tmp_path / "all.pcap"))
    stamps = [float(frame.time) for frame in merged]
    assert count == len(merged) == sum(len(rdpcap(str(part))) for part in parts)
    assert stamps == sorted(stamps)
    assert {frame[TCP].sport for frame in merged} >= {50000, 50001}


def test_a_connection_that_outlives_its_capture_goes_on_unrecorded(tmp_path: Path) -> None:
    async def play() -> tuple[bytes, int]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readexactly(2) + b"!")
            await reader.read()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        async with server:
            capture = Capture(tmp_path / "early.pcap")
            _, client = await transports.connect(Client, "127.0.0.1", server.sockets[0].getsockname()[1], "tcp",
                                                 PLAIN, capture)
            frames = capture.frames
            capture.close()  # before the connection writes anything
            assert client.transport is not None
            client.transport.write(b"hi")
            await asyncio.wait_for(client.got.wait(), 5)
            client.transport.close()
            await asyncio.wait_for(client.lost, 5)
        return client.received, frames

    received, frames = asyncio.run(play())
    assert received == b"hi!"
    assert len(rdpcap(str(tmp_path / "early.pcap"))) == frames + 3  # the handshake, then the FIN of close()
