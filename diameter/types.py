"""The AVP data formats of RFC 6733 (4.2 basic, 4.3 derived, 4.4 Grouped) and their codecs.

Each format has one decoder (octets -> value, raising ValueProblem with the result code
for data that does not fit) and one encoder (value -> octets). The dictionary binds them
to every AVP definition once, so the hot path never looks a format up.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from diameter.constants import ResultCode
from diameter.errors import EncodeError


class AvpType(Enum):
    """The basic and derived AVP data formats of RFC 6733 4.2 and 4.3, and Grouped (4.4)."""

    OCTET_STRING = "OctetString"
    INTEGER32 = "Integer32"
    INTEGER64 = "Integer64"
    UNSIGNED32 = "Unsigned32"
    UNSIGNED64 = "Unsigned64"
    FLOAT32 = "Float32"
    FLOAT64 = "Float64"
    GROUPED = "Grouped"
    ADDRESS = "Address"
    TIME = "Time"
    UTF8_STRING = "UTF8String"
    DIAMETER_IDENTITY = "DiameterIdentity"
    DIAMETER_URI = "DiameterURI"
    ENUMERATED = "Enumerated"
    IP_FILTER_RULE = "IPFilterRule"



class FlagRule(Enum):
    """What the AVP flag rules table says of the M bit: MUST, MAY or MUST NOT be set."""

    MUST = "must"
    MAY = "may"
    MUST_NOT = "must_not"


_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_HDR = struct.Struct(">II")
_HDR_V = struct.Struct(">III")
_ADDR_FAMILY = struct.Struct(">H")

# RFC 5905 / RFC 6733 4.3.1: Time is NTP seconds. Values with the top bit clear are in
# era 1, i.e. after 2036-02-07T06:28:16Z.
NTP_EPOCH = datetime(1900, 1, 1, tzinfo=UTC)
_ERA_1 = 1 << 32

ADDRESS_FAMILY_IPV4 = 1
ADDRESS_FAMILY_IPV6 = 2

Address = ipaddress.IPv4Address | ipaddress.IPv6Address | tuple[int, bytes]


class ValueProblem(Exception):
    """An AVP's data does not fit its type: becomes an AvpProblem, never escapes the codec."""

    def __init__(self, result_code: int, reason: str) -> None:
        super().__init__(reason)
        self.result_code = result_code
        self.reason = reason


def _fixed(size: int, unpack: Callable[[bytes], tuple[Any, ...]], kind: str) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        if len(data) != size:
            raise ValueProblem(ResultCode.DIAMETER_INVALID_AVP_LENGTH,
                               f"{kind} needs {size} octets, got {len(data)}")
        return unpack(data)[0]
    return decode


def _decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueProblem(ResultCode.DIAMETER_INVALID_AVP_VALUE, f"not UTF-8: {exc.reason}") from None


def _decode_ascii(data: bytes) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueProblem(ResultCode.DIAMETER_INVALID_AVP_VALUE, "not an ASCII identity") from None


def _decode_address(data: bytes) -> Address:
    if len(data) < 2:
        raise ValueProblem(ResultCode.DIAMETER_INVALID_AVP_LENGTH, "Address shorter than its family")
    family = _ADDR_FAMILY.unpack_from(data)[0]
    body = data[2:]
    if family == ADDRESS_FAMILY_IPV4:
        if len(body) != 4:
            raise ValueProblem(ResultCode.DIAMETER_INVALID_AVP_LENGTH, "IPv4 Address needs 4 octets")
        return ipaddress.IPv4Address(body)
    if family == ADDRESS_FAMILY_IPV6:
        if len(body) != 16:
            raise ValueProblem(ResultCode.DIAMETER_INVALID_AVP_LENGTH, "IPv6 Address needs 16 octets")
        return ipaddress.IPv6Address(body)
    return (family, bytes(body))


def _encode_address(value: Address) -> bytes:
    if isinstance(value, ipaddress.IPv4Address):
        return _ADDR_FAMILY.pack(ADDRESS_FAMILY_IPV4) + value.packed
    if isinstance(value, ipaddress.IPv6Address):
        return _ADDR_FAMILY.pack(ADDRESS_FAMILY_IPV6) + value.packed
    family, body = value
    return _ADDR_FAMILY.pack(family) + bytes(body)


def _decode_time(data: bytes) -> datetime:
    if len(data) != 4:
        raise ValueProblem(ResultCode.DIAMETER_INVALID_AVP_LENGTH, f"Time needs 4 octets, got {len(data)}")
    seconds = _U32.unpack(data)[0]
    if not seconds & 0x80000000:
        seconds += _ERA_1
    return NTP_EPOCH + timedelta(seconds=seconds)


def _encode_time(value: datetime) -> bytes:
    seconds = int((value - NTP_EPOCH).total_seconds())
    if not 0x80000000 <= seconds < _ERA_1 + 0x80000000:
        raise EncodeError(f"time {value.isoformat()} is outside the range a Time AVP can carry")
    return _U32.pack(seconds % _ERA_1)


def _encode_str(value: str) -> bytes:
    return value.encode("utf-8")


def _encode_identity(value: str) -> bytes:
    return value.encode("ascii")


def _encode_octets(value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        # bytes(5) would silently give five zero octets.
        raise TypeError(f"OctetString needs bytes, not {type(value).__name__}")
    return bytes(value)


def _grouped_not_here(_: Any) -> Any:
    raise EncodeError("Grouped values are encoded by Avp.grouped")


def _grouped_decoded_elsewhere(_: bytes) -> Any:
    raise EncodeError("Grouped values are decoded by the message codec")


Decoder = Callable[[bytes], Any]
Encoder = Callable[[Any], bytes]

DECODERS: dict[AvpType, Decoder] = {
    AvpType.OCTET_STRING: bytes,
    AvpType.INTEGER32: _fixed(4, _I32.unpack, "Integer32"),
    AvpType.INTEGER64: _fixed(8, _I64.unpack, "Integer64"),
    AvpType.UNSIGNED32: _fixed(4, _U32.unpack, "Unsigned32"),
    AvpType.UNSIGNED64: _fixed(8, _U64.unpack, "Unsigned64"),
    AvpType.FLOAT32: _fixed(4, _F32.unpack, "Float32"),
    AvpType.FLOAT64: _fixed(8, _F64.unpack, "Float64"),
    AvpType.ENUMERATED: _fixed(4, _I32.unpack, "Enumerated"),
    AvpType.ADDRESS: _decode_address,
    AvpType.TIME: _decode_time,
    AvpType.UTF8_STRING: _decode_utf8,
    AvpType.DIAMETER_IDENTITY: _decode_ascii,
    AvpType.DIAMETER_URI: _decode_ascii,
    AvpType.IP_FILTER_RULE: _decode_ascii,
    AvpType.GROUPED: _grouped_decoded_elsewhere,
}

ENCODERS: dict[AvpType, Encoder] = {
    AvpType.OCTET_STRING: _encode_octets,
    AvpType.INTEGER32: _I32.pack,
    AvpType.INTEGER64: _I64.pack,
    AvpType.UNSIGNED32: _U32.pack,
    AvpType.UNSIGNED64: _U64.pack,
    AvpType.FLOAT32: _F32.pack,
    AvpType.FLOAT64: _F64.pack,
    AvpType.ENUMERATED: _I32.pack,
    AvpType.ADDRESS: _encode_address,
    AvpType.TIME: _encode_time,
    AvpType.UTF8_STRING: _encode_str,
    AvpType.DIAMETER_IDENTITY: _encode_identity,
    AvpType.DIAMETER_URI: _encode_identity,
    AvpType.IP_FILTER_RULE: _encode_identity,
    AvpType.GROUPED: _grouped_not_here,
}

# Size of the zero-filled value of an example AVP in Failed-AVP (RFC 6733 7.5: "the
# minimum required length for the payload").
MINIMUM_DATA_LENGTH: dict[AvpType, int] = {
    AvpType.INTEGER32: 4, AvpType.INTEGER64: 8, AvpType.UNSIGNED32: 4,
    AvpType.UNSIGNED64: 8, AvpType.FLOAT32: 4, AvpType.FLOAT64: 8,
    AvpType.ENUMERATED: 4, AvpType.TIME: 4, AvpType.ADDRESS: 6,
}
