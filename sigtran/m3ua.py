"""M3UA messages (RFC 4666 3), sans-I/O: the common header, TLV parameters, the stream reader.

A message is a class, a type and a list of parameters (tag, value). ``decode_message``
checks what the RFC lets a receiver check without knowing any state: the header, the
message class and type, the TLV layout, which parameters each message may carry, the
size of fixed-size parameters and the mandatory ones. Everything wrong raises
``M3uaError`` carrying the RFC 4666 3.8.1 error code to answer with; a header the byte
stream cannot be trusted after raises its subclass ``FramingError`` (close the connection).
``error_message`` builds that answer. ``MessageReader`` cuts whole messages from a TCP
byte stream (M3UA over TCP, as Osmocom offers it).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

VERSION = 1
HEADER_LENGTH = 8
DEFAULT_MAX_MESSAGE_LENGTH = 65536
MAX_DIAGNOSTIC_LENGTH = 256  # how much of an offending message an ERR quotes
SI_SCCP = 3

_HEADER = struct.Struct(">BBBBI")
_TLV = struct.Struct(">HH")
_U32 = struct.Struct(">I")
_STATUS = struct.Struct(">HH")
_ROUTING_LABEL = struct.Struct(">IIBBBB")


class ErrorCode(enum.IntEnum):
    """RFC 4666 3.8.1."""

    INVALID_VERSION = 0x01
    UNSUPPORTED_MESSAGE_CLASS = 0x03
    UNSUPPORTED_MESSAGE_TYPE = 0x04
    UNSUPPORTED_TRAFFIC_MODE_TYPE = 0x05
    UNEXPECTED_MESSAGE = 0x06
    PROTOCOL_ERROR = 0x07
    INVALID_STREAM_IDENTIFIER = 0x09
    REFUSED_MANAGEMENT_BLOCKING = 0x0D
    ASP_IDENTIFIER_REQUIRED = 0x0E
    INVALID_ASP_IDENTIFIER = 0x0F
    INVALID_PARAMETER_VALUE = 0x11
    PARAMETER_FIELD_ERROR = 0x12
    UNEXPECTED_PARAMETER = 0x13
    DESTINATION_STATUS_UNKNOWN = 0x14
    INVALID_NETWORK_APPEARANCE = 0x15
    MISSING_PARAMETER = 0x16
    INVALID_ROUTING_CONTEXT = 0x19
    NO_CONFIGURED_AS_FOR_ASP = 0x1A


class M3uaError(Exception):
    """Bad input: ``code`` is the ERR's Error Code, ``parameters`` what else the ERR must carry."""

    def __init__(self, code: ErrorCode, reason: str, parameters: tuple[Parameter, ...] = ()) -> None:
        super().__init__(f"{code.name}: {reason}")
        self.code = code
        self.reason = reason
        self.parameters = parameters


class FramingError(M3uaError):
    """The byte stream cannot be trusted any more: answer with ERR, then close the connection."""


class MessageClass(enum.IntEnum):
    MGMT = 0
    TRANSFER = 1
    SSNM = 2
    ASPSM = 3
    ASPTM = 4


class Kind(enum.Enum):
    """Every supported (class, type) pair, named as RFC 4666 3.1.2 names them."""

    ERR = (MessageClass.MGMT, 0)
    NTFY = (MessageClass.MGMT, 1)
    DATA = (MessageClass.TRANSFER, 1)
    DUNA = (MessageClass.SSNM, 1)
    DAVA = (MessageClass.SSNM, 2)
    DAUD = (MessageClass.SSNM, 3)
    SCON = (MessageClass.SSNM, 4)
    DUPU = (MessageClass.SSNM, 5)
    DRST = (MessageClass.SSNM, 6)
    ASPUP = (MessageClass.ASPSM, 1)
    ASPDN = (MessageClass.ASPSM, 2)
    BEAT = (MessageClass.ASPSM, 3)
    ASPUP_ACK = (MessageClass.ASPSM, 4)
    ASPDN_ACK = (MessageClass.ASPSM, 5)
    BEAT_ACK = (MessageClass.ASPSM, 6)
    ASPAC = (MessageClass.ASPTM, 1)
    ASPIA = (MessageClass.ASPTM, 2)
    ASPAC_ACK = (MessageClass.ASPTM, 3)
    ASPIA_ACK = (MessageClass.ASPTM, 4)


_KINDS: dict[tuple[int, int], Kind] = {kind.value: kind for kind in Kind}


class Tag(enum.IntEnum):
    """Parameter tags (RFC 4666 3.2)."""

    INFO_STRING = 0x0004
    ROUTING_CONTEXT = 0x0006
    DIAGNOSTIC_INFORMATION = 0x0007
    HEARTBEAT_DATA = 0x0009
    TRAFFIC_MODE_TYPE = 0x000B
    ERROR_CODE = 0x000C
    STATUS = 0x000D
    ASP_IDENTIFIER = 0x0011
    AFFECTED_POINT_CODE = 0x0012
    CORRELATION_ID = 0x0013
    NETWORK_APPEARANCE = 0x0200
    USER_CAUSE = 0x0204
    CONGESTION_INDICATIONS = 0x0205
    CONCERNED_DESTINATION = 0x0206
    PROTOCOL_DATA = 0x0210


class TrafficMode(enum.IntEnum):
    OVERRIDE = 1
    LOADSHARE = 2
    BROADCAST = 3


class StatusType(enum.IntEnum):
    AS_STATE_CHANGE = 1
    OTHER = 2


class AsState(enum.IntEnum):
    """Status Information of an AS-State_Change NTFY (RFC 4666 3.8.2)."""

    AS_INACTIVE = 2
    AS_ACTIVE = 3
    AS_PENDING = 4


# --- which parameters each message carries (RFC 4666 3.3 to 3.8) ------------------------

_T = Tag
_SSNM_COMMON = frozenset({_T.NETWORK_APPEARANCE, _T.ROUTING_CONTEXT, _T.INFO_STRING})
_ASPTM = frozenset({_T.TRAFFIC_MODE_TYPE, _T.ROUTING_CONTEXT, _T.INFO_STRING})
_INFO = frozenset({_T.INFO_STRING})
_APC = frozenset({_T.AFFECTED_POINT_CODE})

# kind -> (mandatory, optional)
PARAMETERS: dict[Kind, tuple[frozenset[Tag], frozenset[Tag]]] = {
    Kind.ERR: (frozenset({_T.ERROR_CODE}), frozenset({_T.ROUTING_CONTEXT, _T.NETWORK_APPEARANCE,
                                                       _T.AFFECTED_POINT_CODE, _T.DIAGNOSTIC_INFORMATION})),
    Kind.NTFY: (frozenset({_T.STATUS}), frozenset({_T.ASP_IDENTIFIER, _T.ROUTING_CONTEXT, _T.INFO_STRING})),
    Kind.DATA: (frozenset({_T.PROTOCOL_DATA}),
                frozenset({_T.NETWORK_APPEARANCE, _T.ROUTING_CONTEXT, _T.CORRELATION_ID})),
    Kind.DUNA: (_APC, _SSNM_COMMON),
    Kind.DAVA: (_APC, _SSNM_COMMON),
    Kind.DAUD: (_APC, _SSNM_COMMON),
    Kind.DRST: (_APC, _SSNM_COMMON),
    Kind.SCON: (_APC, _SSNM_COMMON | {_T.CONCERNED_DESTINATION, _T.CONGESTION_INDICATIONS}),
    Kind.DUPU: (_APC | {_T.USER_CAUSE}, _SSNM_COMMON),
    Kind.ASPUP: (frozenset(), frozenset({_T.ASP_IDENTIFIER, _T.INFO_STRING})),
    Kind.ASPUP_ACK: (frozenset(), frozenset({_T.ASP_IDENTIFIER, _T.INFO_STRING})),
    Kind.ASPDN: (frozenset(), _INFO),
    Kind.ASPDN_ACK: (frozenset(), _INFO),
    Kind.BEAT: (frozenset(), frozenset({_T.HEARTBEAT_DATA})),
    Kind.BEAT_ACK: (frozenset(), frozenset({_T.HEARTBEAT_DATA})),
    Kind.ASPAC: (frozenset(), _ASPTM),
    Kind.ASPAC_ACK: (frozenset(), _ASPTM),
    Kind.ASPIA: (frozenset(), frozenset({_T.ROUTING_CONTEXT, _T.INFO_STRING})),
    Kind.ASPIA_ACK: (frozenset(), frozenset({_T.ROUTING_CONTEXT, _T.INFO_STRING})),
}

_FIXED_4 = frozenset({_T.TRAFFIC_MODE_TYPE, _T.ERROR_CODE, _T.STATUS, _T.ASP_IDENTIFIER, _T.CORRELATION_ID,
                      _T.NETWORK_APPEARANCE, _T.USER_CAUSE, _T.CONCERNED_DESTINATION})
_LIST_OF_4 = frozenset({_T.ROUTING_CONTEXT, _T.AFFECTED_POINT_CODE, _T.CONGESTION_INDICATIONS})


def _size_problem(tag: int, size: int) -> str | None:
    if tag in _FIXED_4 and size != 4:
        return f"{Tag(tag).name} holds {size} octets, not 4"
    if tag in _LIST_OF_4 and (size == 0 or size % 4):
        return f"{Tag(tag).name} holds {size} octets, not a non-empty multiple of 4"
    if tag == _T.PROTOCOL_DATA and size < _ROUTING_LABEL.size:
        return f"PROTOCOL_DATA holds {size} octets, fewer than the 12 of the routing label"
    return None


# --- values -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Parameter:
    tag: int
    value: bytes

    def encode(self) -> bytes:
        length = 4 + len(self.value)
        return _TLV.pack(self.tag, length) + self.value + bytes(-length % 4)


@dataclass(frozen=True, slots=True)
class ProtocolData:
    """The Protocol Data parameter: the MTP3 routing label and the user part's message."""

    opc: int
    dpc: int
    si: int
    ni: int
    mp: int
    sls: int
    user_data: bytes

    def encode(self) -> bytes:
        return _ROUTING_LABEL.pack(self.opc, self.dpc, self.si, self.ni, self.mp, self.sls) + self.user_data

    @classmethod
    def decode(cls, value: bytes) -> ProtocolData:
        if len(value) < _ROUTING_LABEL.size:
            raise M3uaError(ErrorCode.PARAMETER_FIELD_ERROR, f"Protocol Data of {len(value)} octets")
        opc, dpc, si, ni, mp, sls = _ROUTING_LABEL.unpack_from(value)
        return cls(opc, dpc, si, ni, mp, sls, value[_ROUTING_LABEL.size:])

    def reply(self, user_data: bytes) -> ProtocolData:
        """The same label the other way round (OPC and DPC swapped), carrying ``user_data``."""
        return ProtocolData(self.dpc, self.opc, self.si, self.ni, self.mp, self.sls, user_data)


@dataclass(slots=True)
class Message:
    kind: Kind
    parameters: list[Parameter] = field(default_factory=list)

    def add(self, tag: int, value: bytes) -> Message:
        self.parameters.append(Parameter(tag, value))
        return self

    def get(self, tag: int) -> bytes | None:
        """The value of the first parameter with ``tag``, or None."""
        return next((p.value for p in self.parameters if p.tag == tag), None)

    def to_bytes(self) -> bytes:
        body = b"".join(p.encode() for p in self.parameters)
        cls, typ = self.kind.value
        return _HEADER.pack(VERSION, 0, cls, typ, HEADER_LENGTH + len(body)) + body

    # typed views; each raises M3uaError if the value is malformed (decode_message already checked sizes)

    def _u32(self, tag: Tag) -> int | None:
        value = self.get(tag)
        if value is None:
            return None
        if len(value) != 4:
            raise M3uaError(ErrorCode.PARAMETER_FIELD_ERROR, f"{tag.name} holds {len(value)} octets")
        return int(_U32.unpack(value)[0])

    def _u32_list(self, tag: Tag) -> tuple[int, ...]:
        value = self.get(tag)
        if value is None:
            return ()
        if not value or len(value) % 4:
            raise M3uaError(ErrorCode.PARAMETER_FIELD_ERROR, f"{tag.name} holds {len(value)} octets")
        return struct.unpack(f">{len(value) // 4}I", value)

    @property
    def routing_contexts(self) -> tuple[int, ...]:
        return self._u32_list(Tag.ROUTING_CONTEXT)

    @property
    def affected_point_codes(self) -> tuple[tuple[int, int], ...]:
        """(mask, point code) pairs."""
        return tuple((v >> 24, v & 0xFFFFFF) for v in self._u32_list(Tag.AFFECTED_POINT_CODE))

    @property
    def traffic_mode(self) -> int | None:
        return self._u32(Tag.TRAFFIC_MODE_TYPE)

    @property
    def error_code(self) -> int | None:
        return self._u32(Tag.ERROR_CODE)

    @property
    def asp_identifier(self) -> int | None:
        return self._u32(Tag.ASP_IDENTIFIER)

    @property
    def status(self) -> tuple[int, int] | None:
        value = self.get(Tag.STATUS)
        if value is None:
            return None
        if len(value) != 4:
            raise M3uaError(ErrorCode.PARAMETER_FIELD_ERROR, f"STATUS holds {len(value)} octets")
        return _STATUS.unpack(value)

    @property
    def protocol_data(self) -> ProtocolData | None:
        value = self.get(Tag.PROTOCOL_DATA)
        return None if value is None else ProtocolData.decode(value)


# --- builders -------------------------------------------------------------------------------

def u32(value: int) -> bytes:
    return _U32.pack(value)


def u32_list(values: Iterable[int]) -> bytes:
    return b"".join(_U32.pack(v) for v in values)


def build_data(opc: int, dpc: int, si: int, ni: int, mp: int, sls: int, payload: bytes,
               routing_context: int | None = None, network_appearance: int | None = None,
               correlation_id: int | None = None) -> Message:
    """DATA (RFC 4666 3.3.1), parameters in the RFC's order."""
    message = Message(Kind.DATA)
    if network_appearance is not None:
        message.add(Tag.NETWORK_APPEARANCE, u32(network_appearance))
    if routing_context is not None:
        message.add(Tag.ROUTING_CONTEXT, u32(routing_context))
    message.add(Tag.PROTOCOL_DATA, ProtocolData(opc, dpc, si, ni, mp, sls, payload).encode())
    if correlation_id is not None:
        message.add(Tag.CORRELATION_ID, u32(correlation_id))
    return message


def build_notify(status_type: int, status_info: int, routing_contexts: Iterable[int] = (),
                 asp_identifier: int | None = None) -> Message:
    message = Message(Kind.NTFY).add(Tag.STATUS, _STATUS.pack(status_type, status_info))
    if asp_identifier is not None:
        message.add(Tag.ASP_IDENTIFIER, u32(asp_identifier))
    rcs = u32_list(routing_contexts)
    if rcs:
        message.add(Tag.ROUTING_CONTEXT, rcs)
    return message


def build_aspac(traffic_mode: int | None = None, routing_contexts: Iterable[int] = (),
                kind: Kind = Kind.ASPAC) -> Message:
    message = Message(kind)
    if traffic_mode is not None:
        message.add(Tag.TRAFFIC_MODE_TYPE, u32(traffic_mode))
    rcs = u32_list(routing_contexts)
    if rcs:
        message.add(Tag.ROUTING_CONTEXT, rcs)
    return message


def error_message(code: int, offending: bytes | None = None, parameters: Iterable[Parameter] = (),
                  max_diagnostic: int = MAX_DIAGNOSTIC_LENGTH) -> Message:
    """ERR (RFC 4666 3.8.1): the Error Code, the parameters the code calls for (Routing Context,
    Network Appearance, Affected Point Code) and, as Diagnostic Information, the offending
    message (its first ``max_diagnostic`` octets)."""
    message = Message(Kind.ERR).add(Tag.ERROR_CODE, u32(code))
    message.parameters.extend(parameters)
    if offending:
        message.add(Tag.DIAGNOSTIC_INFORMATION, offending[:max_diagnostic])
    return message


def error_from(exc: M3uaError, offending: bytes | None, max_diagnostic: int = MAX_DIAGNOSTIC_LENGTH) -> Message:
    return error_message(exc.code, offending, exc.parameters, max_diagnostic)


# --- decoding --------------------------------------------------------------------------------

def frame_length(data: bytes | bytearray, max_length: int = DEFAULT_MAX_MESSAGE_LENGTH, offset: int = 0) -> int | None:
    """The length of the message starting at ``offset``, or None before its header is whole."""
    if len(data) - offset < HEADER_LENGTH:
        return None
    version, _, _, _, length = _HEADER.unpack_from(data, offset)
    if version != VERSION:
        raise FramingError(ErrorCode.INVALID_VERSION, f"version {version}")
    if length < HEADER_LENGTH or length % 4:
        raise FramingError(ErrorCode.PROTOCOL_ERROR, f"message length {length}")
    if length > max_length:
        raise FramingError(ErrorCode.PROTOCOL_ERROR, f"message length {length} beyond the maximum {max_length}")
    return int(length)


def decode_message(data: bytes, max_length: int = DEFAULT_MAX_MESSAGE_LENGTH) -> Message:
    """Decode exactly one whole message (short input or trailing octets raise FramingError)."""
    length = frame_length(data, max_length)
    if length is None or len(data) != length:
        raise FramingError(ErrorCode.PROTOCOL_ERROR, f"message length {length} but {len(data)} octets given")
    kind = _kind(data[2], data[3])
    mandatory, optional = PARAMETERS[kind]
    message = Message(kind, _decode_parameters(data, length, mandatory | optional))
    missing = mandatory - {p.tag for p in message.parameters}
    if missing:
        names = ", ".join(sorted(Tag(t).name for t in missing))
        raise M3uaError(ErrorCode.MISSING_PARAMETER, f"{kind.name} without {names}")
    return message


def _kind(cls: int, typ: int) -> Kind:
    kind = _KINDS.get((cls, typ))
    if kind is not None:
        return kind
    if cls not in MessageClass._value2member_map_:
        raise M3uaError(ErrorCode.UNSUPPORTED_MESSAGE_CLASS, f"message class {cls}")
    raise M3uaError(ErrorCode.UNSUPPORTED_MESSAGE_TYPE, f"message type {typ} of class {MessageClass(cls).name}")


def _decode_parameters(data: bytes, end: int, allowed: frozenset[Tag]) -> list[Parameter]:
    parameters: list[Parameter] = []
    offset = HEADER_LENGTH
    while offset < end:
        if end - offset < 4:
            raise M3uaError(ErrorCode.PARAMETER_FIELD_ERROR, f"{end - offset} octets left at {offset}")
        tag, length = _TLV.unpack_from(data, offset)
        if length < 4 or offset + length > end:
            raise M3uaError(ErrorCode.PARAMETER_FIELD_ERROR, f"parameter 0x{tag:04x} of length {length} at {offset}")
        if tag not in allowed:
            raise M3uaError(ErrorCode.UNEXPECTED_PARAMETER, f"parameter 0x{tag:04x} at {offset}")
        problem = _size_problem(tag, length - 4)
        if problem is not None:
            raise M3uaError(ErrorCode.PARAMETER_FIELD_ERROR, problem)
        parameters.append(Parameter(tag, bytes(data[offset + 4:offset + length])))
        offset += length + (-length % 4)  # never past ``end``: both are multiples of 4
    return parameters


class MessageReader:
    """Cuts whole messages from a byte stream (sans-I/O: feed bytes, take frames)."""

    def __init__(self, max_length: int = DEFAULT_MAX_MESSAGE_LENGTH) -> None:
        self._buffer = bytearray()
        self.max_length = max_length
        self.error: FramingError | None = None  # once set, the stream is beyond repair

    def feed(self, data: bytes) -> list[bytes]:
        """The whole messages buffered so far. A header that cannot be trusted raises FramingError,
        unless whole messages came before it: those are returned, ``error`` is set, and the next
        call raises."""
        if self.error is not None:
            raise self.error
        self._buffer += data
        buffer = self._buffer
        frames: list[bytes] = []
        offset = 0
        try:
            while (length := frame_length(buffer, self.max_length, offset)) is not None \
                    and len(buffer) - offset >= length:
                frames.append(bytes(buffer[offset:offset + length]))
                offset += length
        except FramingError as exc:
            self.error = exc
            if not frames:
                raise
        finally:
            del buffer[:offset]
        return frames

    def peek(self, size: int) -> bytes:
        """The first ``size`` octets buffered: after a FramingError, the header at fault."""
        return bytes(self._buffer[:size])

    @property
    def buffered(self) -> int:
        return len(self._buffer)
