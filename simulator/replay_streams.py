"""Whole application messages out of captured transport pieces (sans-I/O, for ``eir sim replay``).

A capture shows TCP segments and SCTP DATA chunks; Diameter and M3UA messages are what the
replay needs. This module turns the one into the other, without knowing about files:

- ``TcpDirection``: the segments of one direction of one TCP connection, in any order, with
  retransmissions and overlaps; ``runs()`` gives the contiguous byte runs (a gap in the
  capture ends a run), each with the frames its octets came in;
- ``cut_messages``: the messages of a run, framed by the Diameter or M3UA header, resynchronising
  on the next plausible header when a run starts mid-message (a capture that begins
  mid-stream) or holds octets that cannot be a header;
- ``SctpDirection``: DATA chunks of one direction of one association, duplicates (same TSN)
  dropped, fragments joined by TSN and the B/E bits.

A message's frame is the frame that completed it, every octet before its end included (where
Wireshark shows a reassembled PDU), its time that frame's time.
"""

from __future__ import annotations

import bisect
import itertools
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

_SEQ_MODULO = 1 << 32
_HALF = 1 << 31
_U32 = struct.Struct(">I")
MAX_MESSAGE_LENGTH = 65536
_JUDGED = 28  # octets a header check needs; fewer at the end of a run: a message cut short

DIAMETER = "diameter"
M3UA = "m3ua"
DIAMETER_COMMANDS = frozenset((257, 258, 271, 274, 275, 280, 282, 324))  # base and S13
M3UA_CLASSES = {0: (0, 1), 1: (1,), 2: tuple(range(1, 7)), 3: tuple(range(1, 7)), 4: tuple(range(1, 5)),
                9: tuple(range(1, 5))}  # class: its types (RFC 4666 3.1.2)


@dataclass(frozen=True, slots=True)
class Span:
    """Octets [start, end) of a run came in ``frame`` at ``time``."""

    start: int
    end: int
    frame: int
    time: float


@dataclass(slots=True)
class Run:
    """Contiguous octets of one direction; ``spans`` in stream order."""

    data: bytearray = field(default_factory=bytearray)
    spans: list[Span] = field(default_factory=list)
    _ends: list[int] = field(default_factory=list)
    _latest: list[Span] = field(default_factory=list)  # the latest span among the first i + 1

    def origin(self, end: int) -> tuple[int, float]:
        """The frame (and its time) that completed octets [0, end): the latest frame among them,
        as a receiver gets a message once every octet before its end is there."""
        if len(self._latest) != len(self.spans):  # built once, after the spans are all in
            self._ends = [span.end for span in self.spans]
            self._latest = list(itertools.accumulate(self.spans, _later))
        latest = self._latest[min(bisect.bisect_left(self._ends, end), len(self._latest) - 1)]
        return latest.frame, latest.time


def _later(a: Span, b: Span) -> Span:
    return b if b.frame > a.frame else a


@dataclass(frozen=True, slots=True)
class Piece:
    """One whole message of one direction, with the frame that completed it."""

    frame: int
    time: float
    data: bytes


@dataclass(slots=True)
class _Segment:
    offset: int
    frame: int
    time: float
    data: bytes


class TcpDirection:
    """The payload segments of one direction of a TCP connection, fed as captured."""

    def __init__(self) -> None:
        self._base: int | None = None  # the sequence number of stream offset 0
        self._segments: list[_Segment] = []

    def syn(self, seq: int) -> None:
        """A SYN: the stream's first octet is ``seq + 1``."""
        self._base = (seq + 1) % _SEQ_MODULO

    def has_data(self) -> bool:
        return bool(self._segments)

    def add(self, seq: int, data: bytes, frame: int, time: float) -> None:
        if not data:
            return
        if self._base is None:
            self._base = seq
        distance = (seq - self._base) % _SEQ_MODULO
        offset = distance - _SEQ_MODULO if distance >= _HALF else distance
        self._segments.append(_Segment(offset, frame, time, data))

    def runs(self) -> list[Run]:
        """Contiguous runs in stream order; retransmitted or overlapping octets are taken once,
        from the segment captured first."""
        runs: list[Run] = []
        cursor: int | None = None
        run = Run()
        for segment in sorted(self._segments, key=lambda s: (s.offset, s.frame)):
            end = segment.offset + len(segment.data)
            if cursor is not None and segment.offset > cursor:
                runs.append(run)
                run = Run()
                cursor = None
            if cursor is None:
                cursor = segment.offset
            if end <= cursor:
                continue  # a retransmission of octets already taken
            fresh = segment.data[cursor - segment.offset:]
            start = len(run.data)
            run.data += fresh
            run.spans.append(Span(start, start + len(fresh), segment.frame, segment.time))
            cursor = end
        if run.data:
            runs.append(run)
        return runs


# --- framing --------------------------------------------------------------------------------

HeaderCheck = Callable[[bytes | bytearray, int], int | None]


def diameter_length(data: bytes | bytearray, offset: int) -> int | None:
    """The length of a plausible Diameter message at ``offset`` (RFC 6733 3): version 1, a
    length of 20 or more in whole words, reserved flag bits clear, a base or S13 command, and
    a first AVP that fits; None when the octets there cannot be one (or are not all there)."""
    if len(data) - offset < 20:
        return None
    word, flags_command = _U32.unpack_from(data, offset)[0], _U32.unpack_from(data, offset + 4)[0]
    length = word & 0xFFFFFF
    if word >> 24 != 1 or length < 20 or length & 3 or length > MAX_MESSAGE_LENGTH:
        return None
    if flags_command >> 24 & 0x0F or flags_command & 0xFFFFFF not in DIAMETER_COMMANDS:
        return None
    if length > 20:
        if len(data) - offset < 28:
            return None
        avp_length = _U32.unpack_from(data, offset + 24)[0] & 0xFFFFFF
        if avp_length < 8 or avp_length > length - 20:
            return None
    return length


def m3ua_length(data: bytes | bytearray, offset: int) -> int | None:
    """The length of a plausible M3UA message at ``offset`` (RFC 4666 3.1): version 1, reserved
    0, a known class and type, a length of 8 or more in whole words."""
    if len(data) - offset < 8:
        return None
    version, reserved, cls, typ = data[offset:offset + 4]
    length = _U32.unpack_from(data, offset + 4)[0]
    if version != 1 or reserved or typ not in M3UA_CLASSES.get(cls, ()):
        return None
    if length < 8 or length & 3 or length > MAX_MESSAGE_LENGTH:
        return None
    return int(length)


HEADER_CHECKS: dict[str, HeaderCheck] = {DIAMETER: diameter_length, M3UA: m3ua_length}


@dataclass(slots=True)
class Cut:
    """What ``cut_messages`` found in one run."""

    pieces: list[Piece] = field(default_factory=list)
    skipped: int = 0  # octets that could not start a message (resynchronised past them)
    incomplete: int = 0  # octets of a message the capture does not hold whole


def cut_messages(run: Run, protocol: str) -> Cut:
    """The whole messages of ``run`` framed by ``protocol``'s header (``DIAMETER`` or ``M3UA``)."""
    check = HEADER_CHECKS[protocol]
    cut = Cut()
    data, offset, size = run.data, 0, len(run.data)
    while offset < size:
        length = check(data, offset)
        if length is None:
            start = _resynchronise(data, offset, check)
            if start is None:
                if size - offset < _JUDGED:
                    cut.incomplete += size - offset
                else:
                    cut.skipped += size - offset
                break
            cut.skipped += start - offset
            offset = start
            continue
        if offset + length > size:
            cut.incomplete += size - offset
            break
        frame, time = run.origin(offset + length)
        cut.pieces.append(Piece(frame, time, bytes(data[offset:offset + length])))
        offset += length
    return cut


def _resynchronise(data: bytes | bytearray, offset: int, check: HeaderCheck) -> int | None:
    """The next offset after ``offset`` where a plausible header starts whose message either
    ends the run, runs past its end, or is followed by another plausible header."""
    for start in range(offset + 1, len(data)):
        length = check(data, start)
        if length is None:
            continue
        after = start + length
        if after >= len(data) or check(data, after) is not None or len(data) - after < 20:
            return start
    return None


# --- SCTP -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Chunk:
    """One SCTP DATA chunk as captured."""

    tsn: int
    ppid: int
    begin: bool
    end: bool
    data: bytes
    frame: int
    time: float


class SctpDirection:
    """DATA chunks of one direction of an association: ``add`` each, ``messages()`` at the end
    gives the user messages (PPID, piece) in TSN order."""

    def __init__(self) -> None:
        self._chunks: dict[int, Chunk] = {}

    def add(self, chunk: Chunk) -> None:
        self._chunks.setdefault(chunk.tsn, chunk)  # a retransmission carries the same TSN

    def messages(self) -> list[tuple[int, Piece]]:
        found: list[tuple[int, Piece]] = []
        first = min(self._chunks, default=0)
        ordered = sorted(self._chunks.values(), key=lambda c: (c.tsn - first) % _SEQ_MODULO)
        parts: list[Chunk] = []
        for chunk in ordered:
            if chunk.begin:
                parts = []
            if parts and (parts[-1].tsn + 1) % _SEQ_MODULO != chunk.tsn:
                parts = []  # a fragment is missing from the capture
            if chunk.begin or parts:
                parts.append(chunk)
            if chunk.end and parts and parts[0].begin:
                last = max(parts, key=lambda c: c.frame)
                found.append((parts[0].ppid, Piece(last.frame, last.time, b"".join(c.data for c in parts))))
                parts = []
        return found
