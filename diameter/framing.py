"""Diameter framing (RFC 6733 3): where each message of a byte stream ends.

The one place that reads the header's Version and 24-bit Message Length. Everything that
cuts Diameter messages out of bytes uses it: the peer's stream reader (``MessageReader``),
the SCTP sender (one message per SCTP message), the load generator and the bench's
fixed-answer server. ``frame_ends`` is the scanning primitive: one call per read, a flat
loop, no copy, so the hot paths keep their speed; what it finds wrong comes back as data,
after the whole messages before it, so a caller can use those before it closes.
"""

from __future__ import annotations

import struct

from diameter.constants import DIAMETER_VERSION, HEADER_LENGTH
from diameter.errors import FramingError

DEFAULT_MAX_MESSAGE_LENGTH = 65536
MAX_MESSAGE_LENGTH = 0xFFFFFF  # what the 24-bit Message Length can say
_U32 = struct.Struct(">I")

Buffer = bytes | bytearray | memoryview


def _untrusted(word: int, max_length: int) -> FramingError:
    """Why a header's first word makes the stream untrustworthy (the caller found it does)."""
    version, length = word >> 24, word & 0xFFFFFF
    if version != DIAMETER_VERSION:
        return FramingError(f"unsupported Diameter version {version}")
    if length < HEADER_LENGTH:
        return FramingError(f"message length {length} is below the 20-octet header")
    if length & 3:
        return FramingError(f"message length {length} is not a multiple of 4")
    return FramingError(f"message length {length} exceeds the maximum {max_length}")


def frame_length(buffer: Buffer, max_length: int = DEFAULT_MAX_MESSAGE_LENGTH, offset: int = 0) -> int | None:
    """The length of the message at ``buffer[offset:]``, or None if 4 octets are not there yet.

    Raises FramingError when the stream cannot be trusted any more (RFC 6733 3): a version
    other than 1, a length below 20, not a multiple of 4, or above ``max_length``.
    """
    if len(buffer) - offset < 4:
        return None
    word = _U32.unpack_from(buffer, offset)[0]
    length = word & 0xFFFFFF
    if word >> 24 != DIAMETER_VERSION or length < HEADER_LENGTH or length & 3 or length > max_length:
        raise _untrusted(word, max_length)
    return length


def frame_ends(buffer: Buffer, offset: int = 0,
               max_length: int = DEFAULT_MAX_MESSAGE_LENGTH) -> tuple[list[int], FramingError | None]:
    """Where each whole message from ``buffer[offset:]`` ends, and why the scan stopped early.

    The messages are ``buffer[offset:ends[0]]``, ``buffer[ends[0]:ends[1]]``, ...; what is
    after the last end is an incomplete message, or, when the error is not None, octets
    that cannot be trusted (the connection must close, RFC 6733 3)."""
    ends: list[int] = []
    size = len(buffer)
    unpack, version = _U32.unpack_from, DIAMETER_VERSION
    while size - offset >= 4:
        word = unpack(buffer, offset)[0]
        length = word & 0xFFFFFF
        if word >> 24 != version or length < HEADER_LENGTH or length & 3 or length > max_length:
            return ends, _untrusted(word, max_length)
        if size - offset < length:
            break
        offset += length
        ends.append(offset)
    return ends, None


def frames(buffer: bytes, max_length: int = DEFAULT_MAX_MESSAGE_LENGTH) -> tuple[list[bytes], bytes]:
    """The whole messages of ``buffer`` and the rest (the start of the next one).

    Raises FramingError when a header cannot be trusted."""
    ends, error = frame_ends(buffer, 0, max_length)
    if error is not None:
        raise error
    return _cut(buffer, ends), buffer[ends[-1]:] if ends else buffer


def _cut(buffer: bytes, ends: list[int]) -> list[bytes]:
    start = 0
    cut: list[bytes] = []
    for end in ends:
        cut.append(buffer[start:end])
        start = end
    return cut


def split_messages(data: bytes) -> list[bytes]:
    """Our own outgoing bytes, one piece per message (one SCTP message each); octets that
    do not make a whole message go out as they are, in one piece."""
    ends, _ = frame_ends(data, 0, MAX_MESSAGE_LENGTH)
    pieces = _cut(data, ends)
    rest = ends[-1] if ends else 0
    if rest < len(data):
        pieces.append(data[rest:])
    return pieces


class MessageReader:
    """Splits a byte stream into whole messages (sans-I/O: feed bytes, take frames)."""

    def __init__(self, max_length: int = DEFAULT_MAX_MESSAGE_LENGTH) -> None:
        self._buffer = bytearray()
        self.max_length = max_length

    def feed(self, data: bytes) -> list[bytes]:
        """The whole messages buffered so far, each cut from the stream with one copy.

        Raises FramingError when a header cannot be trusted; the octets from that header
        on stay buffered."""
        if self._buffer:
            self._buffer += data
            data = bytes(self._buffer)
            self._buffer.clear()
        ends, error = frame_ends(data, 0, self.max_length)
        rest = ends[-1] if ends else 0
        self._buffer += data[rest:]
        if error is not None:
            raise error
        return _cut(data, ends)

    @property
    def buffered(self) -> int:
        return len(self._buffer)
