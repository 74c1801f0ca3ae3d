"""Read a pcap or pcapng file with scapy and hand back the Diameter and M3UA messages it carries.

Reading the file is scapy's (``PcapReader`` opens both formats); this module only walks the
packets: TCP segments go to ``replay_streams.TcpDirection`` per direction and connection, SCTP
DATA chunks to ``SctpDirection``; then each TCP connection is framed as Diameter or M3UA:

- Diameter: either port in ``diameter_ports`` (3868 unless told); M3UA: in ``m3ua_ports``
  (2905 unless told); on any other ports, whichever of the two frames more messages out of
  the connection's octets (recognised by their headers, see ``replay_streams``), provided
  the messages hold more of the octets than the resynchronisation skipped;
- SCTP: PPID 46 is Diameter and PPID 3 M3UA; PPID 0 (unspecified) goes by the ports as TCP
  does, else by the header that makes the message exactly one Diameter or M3UA message.

What cannot be read as a capture raises CaptureError with one line that says why: not a pcap
or pcapng file, or a file cut short (scapy's own warning, or a record header cut short at the
end), naming the last whole frame.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scapy.config import conf
from scapy.error import Scapy_Exception
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.sctp import SCTP, SCTPChunkData
from scapy.packet import Packet, Padding
from scapy.utils import PcapNgReader, PcapReader

from simulator.replay_streams import (
    DIAMETER,
    HEADER_CHECKS,
    M3UA,
    Chunk,
    Cut,
    Piece,
    SctpDirection,
    TcpDirection,
    cut_messages,
)

DIAMETER_PORT = 3868
M3UA_PORT = 2905
PPID_DIAMETER = 46
PPID_M3UA = 3
_PPIDS = {PPID_DIAMETER: DIAMETER, PPID_M3UA: M3UA}
_PCAPNG_SMALLEST_BLOCK = 12

Endpoint = tuple[str, int]


class CaptureError(Exception):
    """The file cannot be read as a capture; the message is the one line to print."""


@dataclass(frozen=True, slots=True)
class Found:
    """One whole Diameter or M3UA message of the capture."""

    protocol: str  # replay_streams.DIAMETER or M3UA
    transport: str  # "tcp" or "sctp"
    src: Endpoint
    dst: Endpoint
    piece: Piece

    @property
    def connection(self) -> tuple[str, Endpoint, Endpoint]:
        """The same for both directions of one connection or association."""
        low, high = sorted((self.src, self.dst))
        return self.transport, low, high


@dataclass
class Contents:
    """What ``read_capture`` found: the messages in frame order and what it could not use."""

    frames: int
    messages: list[Found] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Warnings(logging.Filter):
    """Keeps scapy's warnings while a file is read (and keeps them off the terminal)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.seen.append(record.getMessage())
        return False


def frames(path: Path) -> Iterator[tuple[int, float, Packet]]:
    """(frame number from 1, time, packet) of every record; CaptureError for a bad file."""
    logger = logging.getLogger("scapy.runtime")
    warnings, threshold = _Warnings(), conf.warning_threshold
    conf.warning_threshold = 0  # every warning reaches the filter, none is rate-limited away
    logger.addFilter(warnings)
    try:
        yield from _records(path, warnings)
    finally:
        logger.removeFilter(warnings)
        conf.warning_threshold = threshold


def _records(path: Path, warnings: _Warnings) -> Iterator[tuple[int, float, Packet]]:
    try:
        reader = PcapReader(str(path))
    except Scapy_Exception as exc:
        raise CaptureError(f"{path}: not a pcap or pcapng file ({exc})") from None
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror or exc}") from None
    number = 0
    with reader:
        while True:
            before = reader.f.tell()
            try:
                packet = reader.read_packet()
            except EOFError:
                left = reader.f.tell() - before
                # pcap: any octets after the last record are a record cut short; pcapng: whole
                # blocks may follow the last packet (statistics), shorter than the smallest block may not
                if left and (not isinstance(reader, PcapNgReader) or left < _PCAPNG_SMALLEST_BLOCK):
                    raise CaptureError(_cut_short(path, number, f"{left} octets of a record at the end")) from None
                break
            except Scapy_Exception as exc:
                raise CaptureError(_cut_short(path, number, str(exc))) from None
            if warnings.seen:
                raise CaptureError(_cut_short(path, number, warnings.seen[0]))
            number += 1
            yield number, float(packet.time), packet
    if warnings.seen:
        raise CaptureError(_cut_short(path, number, warnings.seen[0]))


def _cut_short(path: Path, whole: int, detail: str) -> str:
    last = f"after frame {whole}" if whole else "before its first frame"
    return f"{path}: truncated or damaged capture {last}: {detail}"


def _addresses(packet: Packet) -> tuple[str, str] | None:
    for layer in (IP, IPv6):
        found = packet.getlayer(layer)
        if found is not None:
            return str(found.src), str(found.dst)
    return None


def _tcp_payload(tcp: Packet) -> bytes:
    data = bytes(tcp.payload)
    padding = tcp.getlayer(Padding)
    if padding is not None and padding.load:
        data = data[:-len(padding.load)]
    return data


class _Collector:
    def __init__(self, diameter_ports: frozenset[int], m3ua_ports: frozenset[int]) -> None:
        self.diameter_ports, self.m3ua_ports = diameter_ports, m3ua_ports
        self.tcp: dict[tuple[Endpoint, Endpoint], list[TcpDirection]] = {}
        self.sctp: dict[tuple[Endpoint, Endpoint], SctpDirection] = {}

    def add(self, number: int, time: float, packet: Packet) -> None:
        addresses = _addresses(packet)
        if addresses is None:
            return
        tcp = packet.getlayer(TCP)
        if tcp is not None:
            self._tcp(number, time, (addresses[0], int(tcp.sport)), (addresses[1], int(tcp.dport)), tcp)
        elif packet.getlayer(SCTP) is not None:
            sctp = packet[SCTP]
            key = ((addresses[0], int(sctp.sport)), (addresses[1], int(sctp.dport)))
            index = 1
            while (chunk := packet.getlayer(SCTPChunkData, index)) is not None:
                self.sctp.setdefault(key, SctpDirection()).add(Chunk(
                    int(chunk.tsn), int(chunk.proto_id), bool(chunk.beginning), bool(chunk.ending),
                    bytes(chunk.data or b""), number, time))
                index += 1

    def _tcp(self, number: int, time: float, src: Endpoint, dst: Endpoint, tcp: Packet) -> None:
        directions = self.tcp.setdefault((src, dst), [TcpDirection()])
        if tcp.flags.S:
            if directions[-1].has_data():
                directions.append(TcpDirection())  # the same ports again: a new connection
            directions[-1].syn(int(tcp.seq))
        directions[-1].add(int(tcp.seq), _tcp_payload(tcp), number, time)

    def protocol(self, src: Endpoint, dst: Endpoint) -> str | None:
        ports = {src[1], dst[1]}
        if ports & self.diameter_ports:
            return DIAMETER
        if ports & self.m3ua_ports:
            return M3UA
        return None

    def found(self, contents: Contents) -> None:
        for (src, dst), directions in self.tcp.items():
            if (src, dst) > (dst, src) and (dst, src) in self.tcp:
                continue  # a connection is framed once, from its lower endpoint's side
            backward = self.tcp.get((dst, src), [])
            for index, direction in enumerate(directions):
                sides = [(src, dst, direction)]
                if index < len(backward):
                    sides.append((dst, src, backward[index]))
                self._tcp_messages(sides, contents)
        for (src, dst), association in self.sctp.items():
            for ppid, piece in association.messages():
                protocol = _PPIDS.get(ppid) or self.protocol(src, dst) or _whole(piece.data)
                if protocol is not None:
                    contents.messages.append(Found(protocol, "sctp", src, dst, piece))

    def _tcp_messages(self, sides: list[tuple[Endpoint, Endpoint, TcpDirection]], contents: Contents) -> None:
        """Frame both directions of one connection as the one protocol that suits it."""
        runs = [(src, dst, direction.runs()) for src, dst, direction in sides]
        protocol = self.protocol(sides[0][0], sides[0][1])
        best: tuple[int, str, list[tuple[Endpoint, Endpoint, Cut]]] | None = None
        for candidate in [protocol] if protocol is not None else [DIAMETER, M3UA]:
            cuts = [(src, dst, cut_messages(run, candidate)) for src, dst, found in runs for run in found]
            pieces = sum(len(cut.pieces) for _, _, cut in cuts)
            framed = sum(len(piece.data) for _, _, cut in cuts for piece in cut.pieces)
            if protocol is None and framed <= sum(cut.skipped for _, _, cut in cuts):
                continue  # by the headers alone, most of the octets must frame as messages
            if pieces and (best is None or pieces > best[0]):
                best = (pieces, candidate, cuts)
        if best is None:
            return
        _, chosen, cuts = best
        for src, dst, cut in cuts:
            where = f"TCP {src[0]}:{src[1]} -> {dst[0]}:{dst[1]}"
            if cut.skipped:
                contents.notes.append(f"{where}: skipped {cut.skipped} octets that start no {chosen} message")
            if cut.incomplete:
                contents.notes.append(f"{where}: {cut.incomplete} octets of a {chosen} message the capture "
                                      "does not hold whole")
            contents.messages += [Found(chosen, "tcp", src, dst, piece) for piece in cut.pieces]


def _whole(data: bytes) -> str | None:
    """The protocol whose header says ``data`` is exactly one message of it (SCTP, PPID 0)."""
    return next((protocol for protocol, check in HEADER_CHECKS.items() if check(data, 0) == len(data)), None)


def read_capture(path: str | Path, *, diameter_ports: tuple[int, ...] = (DIAMETER_PORT,),
                 m3ua_ports: tuple[int, ...] = (M3UA_PORT,)) -> Contents:
    """Every Diameter and M3UA message of the capture at ``path``, in frame order."""
    collector = _Collector(frozenset(diameter_ports), frozenset(m3ua_ports))
    count = 0
    for number, time, packet in frames(Path(path)):
        collector.add(number, time, packet)
        count = number
    contents = Contents(count)
    collector.found(contents)
    contents.messages.sort(key=lambda found: found.piece.frame)
    return contents
