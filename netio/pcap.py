"""Write application traffic as a pcap file that Wireshark and tshark open without complaint.

A caller knows what each side wrote (Diameter, M3UA: ``netio.capture`` taps real connections;
tests write records of their own); this module turns those writes into Ethernet/IP/TCP frames
with the bookkeeping a real capture would show:

- each flow starts with SYN, SYN-ACK, ACK, stamped just before its first write (the side that
  writes first is the client), or at ``open_flow`` when the caller saw the connection open;
- sequence and acknowledgement numbers are consistent in both directions: every segment
  acknowledges all that the other side has sent so far;
- payloads longer than the MSS are cut into several segments;
- when one side keeps writing without an answer, the other side sends a pure ACK once half its
  window is outstanding, so TCP analysis never sees a full window;
- ``close_flow`` (or ``close`` for every flow still open) ends a flow with FIN, FIN-ACK, ACK.

SCTP associations go into the same file (``netio.pcap_sctp``: INIT to SHUTDOWN-COMPLETE, one
DATA chunk per upper-layer message with its stream and PPID, each acknowledged by a SACK).

Timestamps are seconds since the epoch (float). Records should come in time order; a stamp
earlier than the last frame written is raised to it, so the file stays monotonic.

Two ways to use it::

    with PcapFlowWriter("s13.pcap") as pcap:
        pcap.send(1700000000.0, ("127.0.0.1", 40000), ("127.0.0.1", 3868), ecr_bytes)
        pcap.send(1700000000.001, ("127.0.0.1", 3868), ("127.0.0.1", 40000), eca_bytes)

    write_pcap("s13.pcap", [Record(ts, "127.0.0.1", 40000, "127.0.0.1", 3868, ecr_bytes), ...])

Initial sequence numbers are derived from the endpoints, so the same records give the same file.
IPv4 and IPv6 addresses are both accepted (both ends of a flow must be the same family).
"""

from __future__ import annotations

import heapq
import ipaddress
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import PcapWriter, RawPcapReader, RawPcapWriter

Endpoint = tuple[str, int]
"""An (IP address, TCP port) pair."""

DLT_EN10MB = 1
DEFAULT_MSS = 1460
DEFAULT_WINDOW = 65535
HANDSHAKE_STEP = 0.0001  # seconds between the handshake frames, before the first write
_SEQ_MODULO = 1 << 32


class Record(NamedTuple):
    """One application write: at ``timestamp``, ``payload`` went from src to dst."""

    timestamp: float
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    payload: bytes


@dataclass(slots=True)
class _Side:
    """One direction of a flow: what this side has sent and not yet seen acknowledged."""

    endpoint: Endpoint
    next_seq: int
    ip_id: int
    unacked: int = 0


@dataclass(slots=True)
class _Flow:
    client: _Side
    server: _Side

    def sides(self, src: Endpoint) -> tuple[_Side, _Side]:
        """(sender, receiver) for a write from ``src``."""
        if src == self.client.endpoint:
            return self.client, self.server
        return self.server, self.client


def _flow_key(a: Endpoint, b: Endpoint) -> tuple[Endpoint, Endpoint]:
    return (a, b) if a <= b else (b, a)


def _initial_seq(src: Endpoint, dst: Endpoint, generation: int) -> int:
    return zlib.crc32(f"{src[0]}:{src[1]}>{dst[0]}:{dst[1]}#{generation}".encode())


def _mac(ip: str) -> str:
    """A locally administered unicast MAC address derived from the IP address."""
    digest = zlib.crc32(ipaddress.ip_address(ip).packed).to_bytes(4, "big")
    return "02:00:" + ":".join(f"{octet:02x}" for octet in digest)


def link_layers(src: str, dst: str, ip_id: int, protocol: int = 6) -> Packet:
    """Ethernet and IPv4 or IPv6 from ``src`` to ``dst`` carrying IP ``protocol`` (6 TCP, 132 SCTP)."""
    return Ether(src=_mac(src), dst=_mac(dst)) / _ip_layer(src, dst, ip_id, protocol)


def _ip_layer(src: str, dst: str, ip_id: int, protocol: int) -> Packet:
    source, destination = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if source.version != destination.version:
        raise ValueError(f"flow mixes address families: {src} -> {dst}")
    if source.version == 4:
        return IP(src=src, dst=dst, id=ip_id, flags="DF", ttl=64, proto=protocol)
    return IPv6(src=src, dst=dst, hlim=64, nh=protocol)


class PcapFlowWriter:
    """Writes TCP flows frame by frame into a pcap file (Ethernet link type).

    ``send(timestamp, src, dst, payload)`` records one application write from ``src`` to
    ``dst`` (``(ip, port)`` pairs), opening the flow with a three-way handshake if needed.
    ``close_flow`` ends one flow with a FIN exchange; ``close`` ends every open flow and
    closes the file. The writer is also a context manager that calls ``close``.
    """

    def __init__(self, path: str | Path, *, mss: int = DEFAULT_MSS, window: int = DEFAULT_WINDOW) -> None:
        if not 0 < mss <= window <= 0xFFFF:
            raise ValueError(f"need 0 < mss <= window <= 65535, got mss={mss} window={window}")
        self.path = Path(path)
        self.mss = mss
        self.window = window
        self._writer: PcapWriter | None = PcapWriter(str(self.path), linktype=DLT_EN10MB, sync=False)
        self._flows: dict[tuple[Endpoint, Endpoint], _Flow] = {}
        self._generations: dict[tuple[Endpoint, Endpoint], int] = {}
        self._clock = 0.0
        self.frames = 0

    def __enter__(self) -> PcapFlowWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def send(self, timestamp: float, src: Endpoint, dst: Endpoint, payload: bytes) -> None:
        """Record ``payload`` written by ``src`` to ``dst`` at ``timestamp``."""
        flow = self._flows.get(_flow_key(src, dst)) or self._open_flow(timestamp, src, dst)
        sender, receiver = flow.sides(src)
        for start in range(0, len(payload), self.mss):
            self._data_segment(timestamp, sender, receiver, payload[start:start + self.mss])
            if sender.unacked > self.window // 2:
                self._segment(timestamp, receiver, sender, "A")

    def open_flow(self, timestamp: float, client: Endpoint, server: Endpoint) -> None:
        """The three-way handshake of a flow ``client`` opened to ``server``, if not open yet."""
        if _flow_key(client, server) not in self._flows:
            self._open_flow(timestamp + 3 * HANDSHAKE_STEP, client, server)

    def close_flow(self, timestamp: float, src: Endpoint, dst: Endpoint) -> None:
        """End the flow between ``src`` and ``dst`` with FIN, FIN-ACK, ACK started by ``src``."""
        flow = self._flows.pop(_flow_key(src, dst), None)
        if flow is None:
            return
        sender, receiver = flow.sides(src)
        self._segment(timestamp, sender, receiver, "FA", consumes=1)
        self._segment(timestamp, receiver, sender, "FA", consumes=1)
        self._segment(timestamp, sender, receiver, "A")

    def close(self, timestamp: float | None = None) -> None:
        """End every open flow (from its client side) and close the file; safe to call twice."""
        if self._writer is None:
            return
        when = self._clock if timestamp is None else timestamp
        for flow in list(self._flows.values()):
            self.close_flow(when, flow.client.endpoint, flow.server.endpoint)
        self._writer.close()
        self._writer = None

    def _open_flow(self, timestamp: float, client: Endpoint, server: Endpoint) -> _Flow:
        key = _flow_key(client, server)
        generation = self._generations.get(key, 0)
        self._generations[key] = generation + 1
        flow = _Flow(_Side(client, _initial_seq(client, server, generation), 1),
                     _Side(server, _initial_seq(server, client, generation), 1))
        self._flows[key] = flow
        syn_options = [("MSS", self.mss)]
        start = timestamp - 3 * HANDSHAKE_STEP
        self._segment(start, flow.client, flow.server, "S", consumes=1, options=syn_options, ack=False)
        self._segment(start + HANDSHAKE_STEP, flow.server, flow.client, "SA", consumes=1, options=syn_options)
        self._segment(start + 2 * HANDSHAKE_STEP, flow.client, flow.server, "A")
        return flow

    def _data_segment(self, timestamp: float, sender: _Side, receiver: _Side, data: bytes) -> None:
        self._segment(timestamp, sender, receiver, "PA", payload=data, consumes=len(data))

    def _segment(self, timestamp: float, sender: _Side, receiver: _Side, flags: str, *,
                 payload: bytes = b"", consumes: int = 0,
                 options: list[tuple[str, int]] | None = None, ack: bool = True) -> None:
        """Write one TCP segment from ``sender`` and advance its sequence number."""
        tcp = TCP(sport=sender.endpoint[1], dport=receiver.endpoint[1], flags=flags,
                  seq=sender.next_seq, ack=receiver.next_seq if ack else 0,
                  window=self.window, options=options or [])
        frame = link_layers(sender.endpoint[0], receiver.endpoint[0], sender.ip_id) / tcp
        if payload:
            frame = frame / payload
        sender.next_seq = (sender.next_seq + consumes) % _SEQ_MODULO
        sender.ip_id = (sender.ip_id + 1) & 0xFFFF
        sender.unacked += len(payload)
        if ack:
            receiver.unacked = 0
        self._write(timestamp, frame)

    def write_frame(self, timestamp: float, frame: Packet) -> None:
        """Write a frame built elsewhere (``netio.pcap_sctp``); stamps stay monotonic."""
        self._write(timestamp, frame)

    def _write(self, timestamp: float, frame: Packet) -> None:
        if self._writer is None:
            raise ValueError(f"{self.path} is already closed")
        self._clock = max(self._clock, timestamp)
        frame.time = self._clock
        self._writer.write(frame)
        self.frames += 1


def write_pcap(path: str | Path, records: Iterable[tuple[float, str, int, str, int, bytes]], *,
               mss: int = DEFAULT_MSS) -> int:
    """Write ``records`` ((timestamp, src ip, src port, dst ip, dst port, payload), in time
    order) as TCP flows into ``path``; every flow is closed at the end. Returns the frame count."""
    with PcapFlowWriter(path, mss=mss) as writer:
        for timestamp, src_ip, src_port, dst_ip, dst_port, payload in records:
            writer.send(timestamp, (src_ip, src_port), (dst_ip, dst_port), payload)
    return writer.frames


def merge_pcaps(parts: Iterable[str | Path], path: str | Path) -> int:
    """Merge pcap files (Ethernet, each in time order) into ``path`` in time order; the frame count."""
    readers = [RawPcapReader(str(part)) for part in parts]
    try:
        streams = [((meta.sec + meta.usec / 1e6, index, data, meta) for data, meta in reader)
                   for index, reader in enumerate(readers)]
        writer = RawPcapWriter(str(path), linktype=DLT_EN10MB, sync=False)
        writer.write_header(None)
        count = 0
        try:
            for _, _, data, meta in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
                writer.write_packet(data, sec=meta.sec, usec=meta.usec, caplen=meta.caplen, wirelen=meta.wirelen)
                count += 1
        finally:
            writer.close()
        return count
    finally:
        for reader in readers:
            reader.close()
