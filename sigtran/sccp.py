"""SCCP connectionless messages (ITU-T Q.713): UDT, XUDT, UDTS and XUDTS, sans-I/O.

``decode_message`` turns the octets of one SCCP message (the payload of an M3UA DATA
message's Protocol Data) into a ``Udt``, ``Xudt``, ``Udts`` or ``Xudts``;
``encode_message`` (or ``message.to_bytes()``) does the reverse. Party addresses
(Q.713 3.4) are ``SccpAddress`` values: routing indicator, 14-bit ITU point code, SSN and
a global title of indicator 1 to 4 with its digits as a str.

Every malformed input raises ``SccpError`` (a ValueError) carrying a reason and, where
Q.713 3.12 has one, the return cause a UDTS would name. The decoder is strict:

- a pointer of 0 (except the optional-part pointer of an XUDT/XUDTS), a pointer outside
  the message, a length past the end, or variable parts that overlap, leave gaps or are
  followed by octets no pointer reaches. SCCP has no length of its own (M3UA's Protocol
  Data bounds it), so octets after the last variable part (for a UDT, after the data
  part its length octet bounds) are an error, never silently dropped;
- a message type other than the four above, a protocol class other than 0 or 1, a hop
  counter outside 1..15 (0 with the cause "hop counter violation"), an optional part
  without its end of optional parameters octet, a known optional parameter of the wrong
  length or repeated (unknown ones are kept as raw octets; an optional part holding only
  the end octet is read as no optional part);
- a global title indicator of 5 to 15, routing on GT without a global title, routing on
  SSN without an SSN, an encoding scheme other than BCD odd/even (1, 2), BCD nibbles that
  are not 0-9 (codes 11, 12 and ST are refused too). The filler of an odd count is the
  last nibble only; Q.713 codes it 0000, and F is accepted on receipt.

Spare bits are ignored on receipt and sent as 0: the two above a point code, bit 8 of the
nature of address octet of GTI 4, and the spare values of the protocol class's handling
nibble (only "return message on error", bit 8, is kept). GTI 2 carries no odd/even
indication: its address octets are read as an even count of BCD digits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from typing import ClassVar, overload

# --- constants (Q.713 3.4, 3.6, 3.12, 3.18, 4) -----------------------------------------

UDT, UDTS, XUDT, XUDTS = 0x09, 0x0A, 0x11, 0x12
MESSAGE_NAMES = {UDT: "UDT", UDTS: "UDTS", XUDT: "XUDT", XUDTS: "XUDTS"}

SSN_HLR, SSN_VLR, SSN_MSC, SSN_EIR, SSN_SGSN = 6, 7, 8, 9, 149

GTI_NONE, GTI_NAI, GTI_TT, GTI_TT_NP_ES, GTI_TT_NP_ES_NAI = 0, 1, 2, 3, 4
NP_UNKNOWN, NP_ISDN, NP_GENERIC, NP_DATA, NP_TELEX, NP_MARITIME = 0, 1, 2, 3, 4, 5
NP_LAND_MOBILE, NP_ISDN_MOBILE, NP_PRIVATE = 6, 7, 14  # E.212, E.214, network specific
ES_UNKNOWN, ES_BCD_ODD, ES_BCD_EVEN, ES_NATIONAL = 0, 1, 2, 3
NAI_UNKNOWN, NAI_SUBSCRIBER, NAI_NATIONAL_USE, NAI_NATIONAL_SIGNIFICANT, NAI_INTERNATIONAL = 0, 1, 2, 3, 4

RETURN_ON_ERROR = 0x80  # protocol class octet, bit 8 of the handling nibble (classes 0 and 1)
MAX_HOP_COUNTER = 15
OPT_END, OPT_SEGMENTATION, OPT_IMPORTANCE = 0x00, 0x10, 0x12

_AI_NATIONAL, _AI_ROUTE_ON_SSN, _AI_SSN, _AI_PC = 0x80, 0x40, 0x02, 0x01


class ReturnCause(IntEnum):
    """Q.713 3.12; a UDTS/XUDTS carries one."""

    NO_TRANSLATION_FOR_NATURE = 0x00  # no translation for an address of such nature
    NO_TRANSLATION_FOR_ADDRESS = 0x01  # no translation for this specific address
    SUBSYSTEM_CONGESTION = 0x02
    SUBSYSTEM_FAILURE = 0x03
    UNEQUIPPED_USER = 0x04
    MTP_FAILURE = 0x05
    NETWORK_CONGESTION = 0x06
    UNQUALIFIED = 0x07
    ERROR_IN_MESSAGE_TRANSPORT = 0x08
    ERROR_IN_LOCAL_PROCESSING = 0x09
    CANNOT_REASSEMBLE = 0x0A  # destination cannot perform reassembly
    SCCP_FAILURE = 0x0B
    HOP_COUNTER_VIOLATION = 0x0C
    SEGMENTATION_NOT_SUPPORTED = 0x0D
    SEGMENTATION_FAILURE = 0x0E


class SccpError(ValueError):
    """Bad SCCP input (or values our own code cannot encode); ``reason`` says why.

    ``return_cause`` is the Q.713 3.12 cause a UDTS would carry, or None where none fits
    (an unknown message type is discarded, never returned).
    """

    def __init__(self, reason: str, return_cause: ReturnCause | None = ReturnCause.UNQUALIFIED) -> None:
        super().__init__(reason)
        self.reason = reason
        self.return_cause = return_cause


def _bad_gt(reason: str) -> SccpError:
    return SccpError(reason, ReturnCause.NO_TRANSLATION_FOR_NATURE)


# --- BCD digits (Q.713 3.4.2.3.1: low nibble first, filler 0000 after an odd count) ---

_PAIRS = {lo | hi << 4: f"{lo}{hi}" for lo in range(10) for hi in range(10)}
_FILLERS = (0x0, 0xF)


def decode_bcd(octets: bytes, odd: bool) -> str:
    """The digits of ``octets``; with ``odd`` the last high nibble is the filler."""
    if odd and not octets:
        raise _bad_gt("odd number of digits in an empty address")
    body = octets[:-1] if odd else octets
    try:
        digits = "".join([_PAIRS[octet] for octet in body])
    except KeyError:
        raise _bad_gt(f"BCD octets {octets.hex()} hold a nibble that is not a digit") from None
    if odd:
        last = octets[-1]
        if last & 0x0F > 9 or last >> 4 not in _FILLERS:
            raise _bad_gt(f"last BCD octet {last:02x} of an odd count is not a digit and a filler")
        digits += str(last & 0x0F)
    return digits


def encode_bcd(digits: str) -> bytes:
    """Two digits an octet, low nibble first, filler 0 after an odd count."""
    if digits and not (digits.isascii() and digits.isdigit()):
        raise _bad_gt(f"digits {digits!r} are not all 0-9")
    padded = digits + "0" if len(digits) % 2 else digits
    return bytes([int(padded[i]) | int(padded[i + 1]) << 4 for i in range(0, len(padded), 2)])


# --- party addresses (Q.713 3.4) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SccpAddress:
    """A called or calling party address. ``gti`` says which of ``translation_type``,
    ``numbering_plan`` and ``nature`` the global title carries (1: nature; 2: TT; 3: TT,
    NP; 4: TT, NP, nature); the encoding scheme follows from the digit count (BCD).
    The fields a GTI does not carry must keep their defaults (TT 0, E.164, international),
    as decoding leaves them. ``national`` is bit 8 of the address indicator, reserved for
    national use in ITU networks (the national/international indicator of ANSI T1.112)."""

    route_on_gt: bool
    ssn: int | None = None
    point_code: int | None = None
    gti: int = GTI_NONE
    digits: str = ""
    translation_type: int = 0
    numbering_plan: int = NP_ISDN
    nature: int = NAI_INTERNATIONAL
    national: bool = False

    def __post_init__(self) -> None:
        _check_address(self)

    def to_bytes(self) -> bytes:
        return encode_address(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> SccpAddress:
        return decode_address(data)


def gt_address(digits: str, ssn: int | None = None, *, point_code: int | None = None, translation_type: int = 0,
               numbering_plan: int = NP_ISDN, nature: int = NAI_INTERNATIONAL) -> SccpAddress:
    """An address routed on a GTI 4 global title (the usual MAP addressing)."""
    return SccpAddress(True, ssn, point_code, GTI_TT_NP_ES_NAI, digits, translation_type, numbering_plan, nature)


def ssn_address(ssn: int, point_code: int | None = None) -> SccpAddress:
    """An address routed on SSN (and the MTP point code), without a global title."""
    return SccpAddress(False, ssn, point_code)


def _check_range(name: str, value: int | None, top: int) -> None:
    if value is not None and not 0 <= value <= top:
        raise SccpError(f"{name} {value} is outside 0..{top}")


def _check_address(address: SccpAddress) -> None:
    _check_range("SSN", address.ssn, 0xFF)
    _check_range("point code", address.point_code, 0x3FFF)
    _check_range("translation type", address.translation_type, 0xFF)
    _check_range("numbering plan", address.numbering_plan, 0x0F)
    _check_range("nature of address", address.nature, 0x7F)
    if not GTI_NONE <= address.gti <= GTI_TT_NP_ES_NAI:
        raise _bad_gt(f"global title indicator {address.gti} is spare")
    if address.gti == GTI_NONE and address.digits:
        raise _bad_gt("digits without a global title")
    if address.digits and (not address.digits.isascii() or not address.digits.isdigit()):
        raise _bad_gt(f"digits {address.digits!r} are not all 0-9")
    if address.gti == GTI_TT and len(address.digits) % 2:
        raise _bad_gt("GTI 2 has no odd/even indication: it needs an even number of digits")
    _check_carried(address)
    if address.route_on_gt and address.gti == GTI_NONE:
        raise _bad_gt("routing on global title without a global title")
    if not address.route_on_gt and address.ssn is None:
        raise SccpError("routing on SSN without a subsystem number")


_CARRIED = {GTI_NONE: (False, False, False), GTI_NAI: (False, False, True), GTI_TT: (True, False, False),
            GTI_TT_NP_ES: (True, True, False), GTI_TT_NP_ES_NAI: (True, True, True)}


def _check_carried(address: SccpAddress) -> None:
    """A field the global title does not carry keeps its default, so equal addresses are equal on the wire."""
    tt, np, nature = _CARRIED[address.gti]
    if not tt and address.translation_type != 0:
        raise _bad_gt(f"GTI {address.gti} carries no translation type")
    if not np and address.numbering_plan != NP_ISDN:
        raise _bad_gt(f"GTI {address.gti} carries no numbering plan")
    if not nature and address.nature != NAI_INTERNATIONAL:
        raise _bad_gt(f"GTI {address.gti} carries no nature of address")


@lru_cache(maxsize=1024)
def encode_address(address: SccpAddress) -> bytes:
    """The address parameter's contents (without its length octet). Cached, as decode_address:
    an EIR hears from and answers the same few MSC, VLR and SGSN addresses over and over."""
    indicator = ((_AI_NATIONAL if address.national else 0) | (0 if address.route_on_gt else _AI_ROUTE_ON_SSN)
                 | address.gti << 2 | (_AI_SSN if address.ssn is not None else 0)
                 | (_AI_PC if address.point_code is not None else 0))
    out = bytearray([indicator])
    if address.point_code is not None:
        out += address.point_code.to_bytes(2, "little")
    if address.ssn is not None:
        out.append(address.ssn)
    return bytes(out) + _encode_gt(address)


def _encode_gt(address: SccpAddress) -> bytes:
    gti, digits = address.gti, address.digits
    if gti == GTI_NONE:
        return b""
    odd = len(digits) % 2
    if gti == GTI_NAI:
        return bytes([odd << 7 | address.nature]) + encode_bcd(digits)
    if gti == GTI_TT:
        return bytes([address.translation_type]) + encode_bcd(digits)
    np_es = address.numbering_plan << 4 | (ES_BCD_ODD if odd else ES_BCD_EVEN)
    if gti == GTI_TT_NP_ES:
        return bytes([address.translation_type, np_es]) + encode_bcd(digits)
    return bytes([address.translation_type, np_es, address.nature]) + encode_bcd(digits)


@lru_cache(maxsize=1024)
def decode_address(data: bytes) -> SccpAddress:
    """An address parameter's contents (without its length octet); cached (the value is frozen,
    and errors are not cached)."""
    if not data:
        raise SccpError("empty party address")
    indicator = data[0]
    gti = indicator >> 2 & 0x0F
    if gti > GTI_TT_NP_ES_NAI:
        raise _bad_gt(f"address indicator {indicator:02x}: global title indicator {gti} is spare")
    position, point_code, ssn = 1, None, None
    if indicator & _AI_PC:
        if len(data) < 3:
            raise SccpError("address too short for its point code")
        point_code = (data[1] | data[2] << 8) & 0x3FFF
        position = 3
    if indicator & _AI_SSN:
        if len(data) <= position:
            raise SccpError("address too short for its subsystem number")
        ssn = data[position]
        position += 1
    title = data[position:]
    if gti == GTI_NONE and title:
        raise SccpError(f"{len(title)} octets after an address without global title")
    tt, np, nature, digits = _decode_gt(gti, title)
    return SccpAddress(not indicator & _AI_ROUTE_ON_SSN, ssn, point_code, gti, digits, tt, np, nature,
                       bool(indicator & _AI_NATIONAL))


_GT_HEADER = {GTI_NAI: 1, GTI_TT: 1, GTI_TT_NP_ES: 2, GTI_TT_NP_ES_NAI: 3}  # octets before the digits


def _decode_gt(gti: int, title: bytes) -> tuple[int, int, int, str]:
    """(translation type, numbering plan, nature, digits), defaults where absent."""
    if gti == GTI_NONE:
        return 0, NP_ISDN, NAI_INTERNATIONAL, ""
    header = _GT_HEADER[gti]
    if len(title) < header:
        raise _bad_gt(f"global title of indicator {gti} shorter than its {header} header octet(s)")
    if gti == GTI_NAI:
        return 0, NP_ISDN, title[0] & 0x7F, decode_bcd(title[1:], bool(title[0] & 0x80))
    if gti == GTI_TT:
        return title[0], NP_ISDN, NAI_INTERNATIONAL, decode_bcd(title[1:], False)
    scheme = title[1] & 0x0F
    if scheme not in (ES_BCD_ODD, ES_BCD_EVEN):
        raise _bad_gt(f"global title encoding scheme {scheme} is not BCD")
    nature = title[2] & 0x7F if gti == GTI_TT_NP_ES_NAI else NAI_INTERNATIONAL
    return title[0], title[1] >> 4, nature, decode_bcd(title[header:], scheme == ES_BCD_ODD)


# --- messages (Q.713 4.10, 4.11, 4.18, 4.19) -------------------------------------------


@dataclass(frozen=True, slots=True)
class Segmentation:
    """Q.713 3.17: first segment, class 1 selected, remaining segments, local reference."""

    first: bool
    class_1: bool
    remaining: int
    local_reference: int

    def to_bytes(self) -> bytes:
        _check_range("remaining segments", self.remaining, 0x0F)
        _check_range("segmentation local reference", self.local_reference, 0xFFFFFF)
        head = (0x80 if self.first else 0) | (0x40 if self.class_1 else 0) | self.remaining
        return bytes([head]) + self.local_reference.to_bytes(3, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> Segmentation:
        if len(data) != 4:
            raise SccpError(f"segmentation parameter of {len(data)} octets, not 4")
        return cls(bool(data[0] & 0x80), bool(data[0] & 0x40), data[0] & 0x0F, int.from_bytes(data[1:], "big"))


@dataclass(frozen=True, slots=True)
class Udt:
    """Unitdata: protocol class 0 or 1, with the return-on-error option."""

    MESSAGE_TYPE: ClassVar[int] = UDT
    called: SccpAddress
    calling: SccpAddress
    data: bytes
    protocol_class: int = 0
    return_on_error: bool = False

    def to_bytes(self) -> bytes:
        return encode_message(self)


@dataclass(frozen=True, slots=True)
class Xudt:
    """Extended unitdata: a UDT with a hop counter and optional parameters. ``other_optional``
    keeps the optional parameters this codec does not know, as (name, contents), in order."""

    MESSAGE_TYPE: ClassVar[int] = XUDT
    called: SccpAddress
    calling: SccpAddress
    data: bytes
    protocol_class: int = 0
    return_on_error: bool = False
    hop_counter: int = MAX_HOP_COUNTER
    segmentation: Segmentation | None = None
    importance: int | None = None
    other_optional: tuple[tuple[int, bytes], ...] = ()

    @property
    def needs_reassembly(self) -> bool:
        """True for a segment of a longer message (Q.714 segmentation), which this codec does not join."""
        return self.segmentation is not None and (not self.segmentation.first or self.segmentation.remaining > 0)

    def to_bytes(self) -> bytes:
        return encode_message(self)


@dataclass(frozen=True, slots=True)
class Udts:
    """Unitdata service: a UDT returned with the reason it could not be delivered."""

    MESSAGE_TYPE: ClassVar[int] = UDTS
    called: SccpAddress
    calling: SccpAddress
    data: bytes
    return_cause: int

    def to_bytes(self) -> bytes:
        return encode_message(self)


@dataclass(frozen=True, slots=True)
class Xudts:
    """Extended unitdata service: an XUDT returned with the reason."""

    MESSAGE_TYPE: ClassVar[int] = XUDTS
    called: SccpAddress
    calling: SccpAddress
    data: bytes
    return_cause: int
    hop_counter: int = MAX_HOP_COUNTER
    segmentation: Segmentation | None = None
    importance: int | None = None
    other_optional: tuple[tuple[int, bytes], ...] = ()

    def to_bytes(self) -> bytes:
        return encode_message(self)


SccpMessage = Udt | Xudt | Udts | Xudts


# --- answers ---------------------------------------------------------------------------


@overload
def answer(request: Udt, data: bytes, *, return_on_error: bool = False) -> Udt: ...
@overload
def answer(request: Xudt, data: bytes, *, return_on_error: bool = False) -> Xudt: ...
def answer(request: Udt | Xudt, data: bytes, *, return_on_error: bool = False) -> Udt | Xudt:
    """The reply's addressing: to the request's calling address, from its called address,
    in the same message type and protocol class (an XUDT's answer starts a fresh hop count)."""
    if isinstance(request, Xudt):
        return Xudt(request.calling, request.called, data, request.protocol_class, return_on_error,
                    importance=request.importance)
    return Udt(request.calling, request.called, data, request.protocol_class, return_on_error)


@overload
def undeliverable(message: Udt, cause: ReturnCause) -> Udts: ...
@overload
def undeliverable(message: Xudt, cause: ReturnCause) -> Xudts: ...
def undeliverable(message: Udt | Xudt, cause: ReturnCause) -> Udts | Xudts:
    """The UDTS/XUDTS returning ``message`` to its sender (Q.714 message return). Q.714 returns only
    messages whose ``return_on_error`` is set; checking that is the caller's choice."""
    if isinstance(message, Xudt):
        return Xudts(message.calling, message.called, message.data, cause, importance=message.importance)
    return Udts(message.calling, message.called, message.data, cause)


# --- encoding --------------------------------------------------------------------------


def encode_message(message: SccpMessage) -> bytes:
    """The octets of ``message``; SccpError for values Q.713 cannot carry."""
    if isinstance(message, Udt | Xudt):
        if message.protocol_class not in (0, 1):
            raise SccpError(f"protocol class {message.protocol_class} is not connectionless (0 or 1)")
        second = message.protocol_class | (RETURN_ON_ERROR if message.return_on_error else 0)
    else:
        _check_range("return cause", message.return_cause, 0xFF)
        second = message.return_cause
    if not message.data:
        raise SccpError("the data part is empty")
    parts = [_length_value(message.called.to_bytes(), "called party address"),
             _length_value(message.calling.to_bytes(), "calling party address"),
             _length_value(message.data, "data")]
    if isinstance(message, Udt | Udts):
        return bytes([message.MESSAGE_TYPE, second]) + _pointers(parts, None) + b"".join(parts)
    _check_range("hop counter", message.hop_counter, MAX_HOP_COUNTER)
    if message.hop_counter == 0:
        raise SccpError("hop counter 0", ReturnCause.HOP_COUNTER_VIOLATION)
    optional = _encode_optional(message.segmentation, message.importance, message.other_optional)
    head = bytes([message.MESSAGE_TYPE, second, message.hop_counter])
    return head + _pointers(parts, optional) + b"".join(parts) + optional


def _length_value(value: bytes, name: str) -> bytes:
    if len(value) > 0xFF:
        raise SccpError(f"{name} of {len(value)} octets exceeds its one-octet length")
    return bytes([len(value)]) + value


def _pointers(parts: list[bytes], optional: bytes | None) -> bytes:
    """One-octet pointers, each counted from its own octet (Q.713 2.3); the optional
    part's pointer is 0 when it is empty."""
    count = len(parts) + (optional is not None)
    values, offset = [], count
    for index, part in enumerate(parts):
        values.append(offset - index)
        offset += len(part)
    if optional is not None:
        values.append(offset - len(parts) if optional else 0)
    if max(values) > 0xFF:
        raise SccpError(f"a pointer of {max(values)} does not fit one octet: the message is too long")
    return bytes(values)


def _encode_optional(segmentation: Segmentation | None, importance: int | None,
                     others: Iterable[tuple[int, bytes]]) -> bytes:
    out = bytearray()
    if segmentation is not None:
        out += bytes([OPT_SEGMENTATION, 4]) + segmentation.to_bytes()
    if importance is not None:
        _check_range("importance", importance, 7)
        out += bytes([OPT_IMPORTANCE, 1, importance])
    for name, value in others:
        if name in (OPT_END, OPT_SEGMENTATION, OPT_IMPORTANCE) or not 0 <= name <= 0xFF:
            raise SccpError(f"optional parameter name {name} cannot be sent as an unknown parameter")
        out += bytes([name]) + _length_value(value, f"optional parameter {name:#04x}")
    return bytes(out + bytes([OPT_END])) if out else b""


# --- decoding --------------------------------------------------------------------------

_LAYOUTS = {UDT: (2, 3), UDTS: (2, 3), XUDT: (3, 4), XUDTS: (3, 4)}  # fixed part, pointers
_PART_NAMES = ("called party address", "calling party address", "data", "optional part")


def decode_message(data: bytes) -> SccpMessage:
    """Decode exactly one whole message; anything malformed raises SccpError."""
    if not data:
        raise SccpError("empty SCCP message", None)
    layout = _LAYOUTS.get(data[0])
    if layout is None:
        raise SccpError(f"message type {data[0]:#04x} is unknown or not a connectionless data message", None)
    fixed, count = layout
    if len(data) < fixed + count:
        raise SccpError(f"{MESSAGE_NAMES[data[0]]} of {len(data)} octets is shorter than its fixed part")
    spans = _locate_parts(data, fixed, count)
    _check_tiling(data, spans, fixed + count)
    called, calling, payload = (data[start + 1:end] for start, end, _ in spans[:3])
    if not payload:
        raise SccpError("the data part is empty")
    addresses = _address(called, "called"), _address(calling, "calling")
    if count == 3:
        return _decode_udt(data, *addresses, payload)
    return _decode_xudt(data, *addresses, payload, spans[3] if len(spans) == 4 else None)


def _address(contents: bytes, which: str) -> SccpAddress:
    try:
        return decode_address(contents)
    except SccpError as error:
        raise SccpError(f"{which} party: {error.reason}", error.return_cause) from None


def _locate_parts(data: bytes, fixed: int, count: int) -> list[tuple[int, int, int]]:
    """(start, end, index) of each variable part, in pointer order; the optional part last
    when present."""
    spans = []
    for index in range(count):
        position = fixed + index
        pointer = data[position]
        if pointer == 0:
            if index == 3:
                continue
            raise SccpError(f"pointer to the {_PART_NAMES[index]} is 0")
        start = position + pointer
        if start >= len(data):
            raise SccpError(f"pointer to the {_PART_NAMES[index]} ({pointer}) points past the message")
        end = _optional_end(data, start) if index == 3 else start + 1 + data[start]
        if end > len(data):
            raise SccpError(f"the {_PART_NAMES[index]}'s length {data[start]} runs past the message")
        spans.append((start, end, index))
    return spans


def _check_tiling(data: bytes, spans: list[tuple[int, int, int]], expected: int) -> None:
    """The variable parts follow the pointers without overlap, gap or trailing octets."""
    for start, end, index in sorted(spans):
        if start < expected:
            raise SccpError(f"the {_PART_NAMES[index]} overlaps the pointers or another part")
        if start > expected:
            raise SccpError(f"{start - expected} octets no pointer reaches before the {_PART_NAMES[index]}")
        expected = end
    if expected != len(data):
        raise SccpError(f"{len(data) - expected} trailing octets after the last part")


def _optional_end(data: bytes, start: int) -> int:
    """Where the optional part ends: one past its end of optional parameters octet."""
    position = start
    while position < len(data):
        if data[position] == OPT_END:
            return position + 1
        if position + 1 >= len(data):
            break
        position += 2 + data[position + 1]
    raise SccpError("optional part without end of optional parameters")


def _protocol_class(octet: int) -> tuple[int, bool]:
    protocol_class = octet & 0x0F
    if protocol_class > 1:
        raise SccpError(f"protocol class {protocol_class} in a connectionless message")
    return protocol_class, bool(octet & RETURN_ON_ERROR)


def _decode_udt(data: bytes, called: SccpAddress, calling: SccpAddress, payload: bytes) -> Udt | Udts:
    if data[0] == UDTS:
        return Udts(called, calling, payload, data[1])
    return Udt(called, calling, payload, *_protocol_class(data[1]))


def _decode_xudt(data: bytes, called: SccpAddress, calling: SccpAddress, payload: bytes,
                 optional: tuple[int, int, int] | None) -> Xudt | Xudts:
    hop_counter = data[2]
    if hop_counter == 0:
        raise SccpError("hop counter 0", ReturnCause.HOP_COUNTER_VIOLATION)
    if hop_counter > MAX_HOP_COUNTER:
        raise SccpError(f"hop counter {hop_counter} above {MAX_HOP_COUNTER}")
    segmentation, importance, others = _decode_optional(data[optional[0]:optional[1]] if optional else b"")
    if data[0] == XUDTS:
        return Xudts(called, calling, payload, data[1], hop_counter, segmentation, importance, others)
    protocol_class, return_on_error = _protocol_class(data[1])
    return Xudt(called, calling, payload, protocol_class, return_on_error, hop_counter, segmentation, importance,
                others)


def _decode_optional(part: bytes) -> tuple[Segmentation | None, int | None, tuple[tuple[int, bytes], ...]]:
    """The optional parameters of ``part`` (already bounded by ``_optional_end``)."""
    segmentation: Segmentation | None = None
    importance: int | None = None
    others: list[tuple[int, bytes]] = []
    position = 0
    while part and part[position] != OPT_END:
        name, length = part[position], part[position + 1]
        value = part[position + 2:position + 2 + length]
        position += 2 + length
        if name == OPT_SEGMENTATION:
            if segmentation is not None:
                raise SccpError("segmentation parameter repeated")
            segmentation = Segmentation.from_bytes(value)
        elif name == OPT_IMPORTANCE:
            if importance is not None:
                raise SccpError("importance parameter repeated")
            if length != 1:
                raise SccpError(f"importance parameter of {length} octets, not 1")
            importance = value[0] & 0x07
        else:
            others.append((name, value))
    return segmentation, importance, tuple(others)
