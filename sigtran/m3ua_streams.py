"""M3UA over SCTP (RFC 4666 1.4.7 and 3.1): which stream each message rides, and the PPID.

DATA goes on stream 1 + SLS mod (outbound streams - 1), so one signalling link selection
keeps its order and DATA never rides on stream 0; every other class (MGMT, SSNM, ASPSM,
ASPTM) goes on stream 0. An association granted a single stream leaves no choice.
``M3UA`` is the ``netio.sctp.Payload`` that cuts what the link writes into M3UA messages,
each sent with PPID 3 on its stream.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from netio.sctp import Payload
from sigtran.m3ua import HEADER_LENGTH, MessageClass, Tag

PPID_M3UA = 3
_M3UA_LENGTH = struct.Struct(">I")
_TLV = struct.Struct(">HH")
_SLS_OFFSET = 11  # in Protocol Data: OPC (4), DPC (4), SI, NI, MP, SLS


def cut(data: bytes, header: int, length_at: Callable[[bytes, int], int]) -> list[bytes]:
    """Whole messages of ``data`` (``length_at(data, offset)``: the length in the header at
    ``offset``); octets that do not make a whole message go out as they are, in one piece."""
    messages: list[bytes] = []
    offset = 0
    while len(data) - offset >= header:
        length = length_at(data, offset)
        if length < header or offset + length > len(data):
            break
        messages.append(data if length == len(data) else data[offset:offset + length])
        offset += length
    if offset < len(data):
        messages.append(data[offset:])
    return messages


def m3ua_transfer(message: bytes) -> bool:
    """Whether ``message`` starts with an M3UA header of the Transfer class (DATA)."""
    return len(message) >= HEADER_LENGTH and message[0] == 1 and message[2] == MessageClass.TRANSFER


def m3ua_sls(message: bytes) -> int:
    """The SLS of a DATA message's Protocol Data; 0 when it has none."""
    offset = HEADER_LENGTH
    while len(message) - offset >= _TLV.size:
        tag, length = _TLV.unpack_from(message, offset)
        if length < _TLV.size:
            break
        if tag == Tag.PROTOCOL_DATA and length > _TLV.size + _SLS_OFFSET:
            return message[offset + _TLV.size + _SLS_OFFSET]
        offset += (length + 3) & ~3
    return 0


def m3ua_stream(message: bytes, outbound: int) -> int:
    """RFC 4666: DATA on a non-zero stream chosen by its SLS, everything else on stream 0.
    An association granted a single stream leaves no choice."""
    if outbound < 2 or not m3ua_transfer(message):
        return 0
    return 1 + m3ua_sls(message) % (outbound - 1)


def m3ua_split(data: bytes, outbound: int) -> list[tuple[bytes, int]]:
    messages = cut(data, HEADER_LENGTH, lambda d, at: int(_M3UA_LENGTH.unpack_from(d, at + 4)[0]))
    return [(message, m3ua_stream(message, outbound)) for message in messages]


M3UA = Payload(PPID_M3UA, m3ua_split)
