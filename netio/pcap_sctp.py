"""SCTP associations as pcap frames, beside the TCP flows of ``netio.pcap`` in the same file.

What a capture of a kernel association shows, cut to what Wireshark checks: INIT, INIT-ACK
(with a State Cookie), COOKIE-ECHO, COOKIE-ACK when the association opens; each upper-layer
message one DATA chunk (B and E set) with its TSN, stream, stream sequence number and PPID
(46 Diameter, 3 M3UA), acknowledged by a SACK from the other side; SHUTDOWN, SHUTDOWN-ACK,
SHUTDOWN-COMPLETE when it closes. Verification tags and initial TSNs are derived from the
endpoints, so the same writes give the same file. The checksum is CRC32c (scapy computes it).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from scapy.layers.sctp import (
    SCTP,
    SCTPChunkCookieAck,
    SCTPChunkCookieEcho,
    SCTPChunkData,
    SCTPChunkInit,
    SCTPChunkInitAck,
    SCTPChunkParamStateCookie,
    SCTPChunkSACK,
    SCTPChunkShutdown,
    SCTPChunkShutdownAck,
    SCTPChunkShutdownComplete,
)
from scapy.packet import Packet

from netio.pcap import HANDSHAKE_STEP, Endpoint, PcapFlowWriter, link_layers

IPPROTO_SCTP = 132
STREAMS = 16
RWND = 106496  # the a_rwnd Linux advertises by default
_TSN_MODULO = 1 << 32


@dataclass(slots=True)
class _End:
    """One end of an association: its tag (the other end puts it in every packet it sends)
    and what it has sent."""

    endpoint: Endpoint
    tag: int
    next_tsn: int
    ip_id: int = 1
    stream_seq: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Association:
    client: _End
    server: _End

    def ends(self, src: Endpoint) -> tuple[_End, _End]:
        """(sender, receiver) for a message from ``src``."""
        if src == self.client.endpoint:
            return self.client, self.server
        return self.server, self.client


def _derived(src: Endpoint, dst: Endpoint, what: str, generation: int) -> int:
    return zlib.crc32(f"{what}:{src[0]}:{src[1]}>{dst[0]}:{dst[1]}#{generation}".encode()) or 1


class SctpAssociations:
    """The SCTP associations of one capture, written through ``writer``'s file."""

    def __init__(self, writer: PcapFlowWriter) -> None:
        self.writer = writer
        self._open: dict[tuple[Endpoint, Endpoint], _Association] = {}
        self._generations: dict[tuple[Endpoint, Endpoint], int] = {}

    def open(self, timestamp: float, client: Endpoint, server: Endpoint) -> None:
        """The four-way handshake of an association ``client`` opened, if not open yet."""
        if _key(client, server) not in self._open:
            self._start(timestamp, client, server)

    def send(self, timestamp: float, src: Endpoint, dst: Endpoint, payload: bytes, ppid: int,
             stream: int = 0) -> None:
        """One message from ``src`` to ``dst`` on ``stream`` with ``ppid``, and its SACK."""
        association = self._open.get(_key(src, dst)) or self._start(timestamp, src, dst)
        sender, receiver = association.ends(src)
        tsn = sender.next_tsn
        sender.next_tsn = (tsn + 1) % _TSN_MODULO
        ssn = sender.stream_seq.get(stream, 0)
        sender.stream_seq[stream] = (ssn + 1) & 0xFFFF
        self._packet(timestamp, sender, receiver, SCTPChunkData(
            beginning=1, ending=1, tsn=tsn, stream_id=stream, stream_seq=ssn, proto_id=ppid, data=payload))
        self._packet(timestamp, receiver, sender, SCTPChunkSACK(cumul_tsn_ack=tsn, a_rwnd=RWND))

    def close(self, timestamp: float, src: Endpoint, dst: Endpoint) -> None:
        """SHUTDOWN from ``src``, SHUTDOWN-ACK, SHUTDOWN-COMPLETE."""
        association = self._open.pop(_key(src, dst), None)
        if association is None:
            return
        sender, receiver = association.ends(src)
        self._packet(timestamp, sender, receiver, SCTPChunkShutdown(cumul_tsn_ack=(receiver.next_tsn - 1)
                                                                    % _TSN_MODULO))
        self._packet(timestamp, receiver, sender, SCTPChunkShutdownAck())
        self._packet(timestamp, sender, receiver, SCTPChunkShutdownComplete())

    def close_all(self, timestamp: float) -> None:
        for association in list(self._open.values()):
            self.close(timestamp, association.client.endpoint, association.server.endpoint)

    def _start(self, timestamp: float, client: Endpoint, server: Endpoint) -> _Association:
        key = _key(client, server)
        generation = self._generations.get(key, 0)
        self._generations[key] = generation + 1
        association = _Association(
            _End(client, _derived(client, server, "tag", generation), _derived(client, server, "tsn", generation)),
            _End(server, _derived(server, client, "tag", generation), _derived(server, client, "tsn", generation)))
        self._open[key] = association
        near, far = association.client, association.server
        cookie = _derived(client, server, "cookie", generation).to_bytes(4, "big") * 8
        start = timestamp - 4 * HANDSHAKE_STEP
        self._packet(start, near, far, SCTPChunkInit(
            init_tag=near.tag, a_rwnd=RWND, n_out_streams=STREAMS, n_in_streams=STREAMS, init_tsn=near.next_tsn),
            tag=0)
        self._packet(start + HANDSHAKE_STEP, far, near, SCTPChunkInitAck(
            init_tag=far.tag, a_rwnd=RWND, n_out_streams=STREAMS, n_in_streams=STREAMS, init_tsn=far.next_tsn,
            params=[SCTPChunkParamStateCookie(cookie=cookie)]))
        self._packet(start + 2 * HANDSHAKE_STEP, near, far, SCTPChunkCookieEcho(cookie=cookie))
        self._packet(start + 3 * HANDSHAKE_STEP, far, near, SCTPChunkCookieAck())
        return association

    def _packet(self, timestamp: float, sender: _End, receiver: _End, chunk: Packet, tag: int | None = None) -> None:
        frame = link_layers(sender.endpoint[0], receiver.endpoint[0], sender.ip_id, IPPROTO_SCTP) / SCTP(
            sport=sender.endpoint[1], dport=receiver.endpoint[1], tag=receiver.tag if tag is None else tag) / chunk
        sender.ip_id = (sender.ip_id + 1) & 0xFFFF
        self.writer.write_frame(timestamp, frame)


def _key(a: Endpoint, b: Endpoint) -> tuple[Endpoint, Endpoint]:
    return (a, b) if a <= b else (b, a)
