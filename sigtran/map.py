"""MAP CheckIMEI (3GPP TS 29.002), the one operation an EIR answers: arguments, results, TBCD; sans-I/O.

The version is the dialogue's: no dialogue portion is v1, equipmentMngtContext-vN
(0.4.0.0.1.0.13.N) is vN. ``decode_check_imei`` reads an Invoke's parameter octets:

- v1/v2: the bare IMEI, OCTET STRING (SIZE (8)) of TBCD digits. A vendor (Huawei)
  variant appends the IMSI as a second OCTET STRING (SIZE (3..8)): it is accepted and kept;
- v3: CheckIMEI-Arg ::= SEQUENCE { imei, requestedEquipmentInfo BIT STRING
  { equipmentStatus (0), bmuef (1) }, extensionContainer OPTIONAL, ... }. Elements after
  requestedEquipmentInfo (the extension container, extension additions) are skipped, and so
  are bits past bmuef (TS 29.002 asks receivers to discard unknown bits); the BIT STRING's
  SIZE (2..8) is not enforced on receipt, a shorter one reads its missing bits as 0.

The only exception the decoders raise is ``MapError``, whose ``problem`` says how the
argument is answered (TS 29.002 Check_Indication, Q.773 mistypedParameter):
MISSING (ReturnError dataMissing): an empty parameter, or a v3 SEQUENCE without imei or
requestedEquipmentInfo; MISTYPED (Reject mistypedParameter): octets that are not BER, a
wrong tag, an IMEI not of 8 octets, a vendor IMSI not of 3 to 8, anything after it;
UNEXPECTED (ReturnError unexpectedDataValue): TBCD nibbles that are not decimal digits, a
vendor IMSI of other than 6 to 15 digits.

TBCD (TS 29.002 TBCD-STRING): two digits an octet, low nibble first, filler F only as the
very last nibble (after an odd count of digits); the digits are decimal only here (the
*, #, a, b, c of TBCD have no place in an IMEI or IMSI). An IMEI's 8 octets hold 15 digits
(TAC, SNR and the spare digit, sent as 0, then the filler) or 16 (an IMEISV); both are
returned as sent. An IMSI of odd length ends in the filler, as TS 29.002 writes it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from enum import IntEnum

from sigtran import ber
from sigtran.ber import BerError

CHECK_IMEI = 43
EQUIPMENT_MANAGEMENT_CONTEXT = "0.4.0.0.1.0.13"
VERSIONS = (1, 2, 3)
IMSI_DIGITS = range(6, 16)  # TS 23.003: MCC 3 + MNC 2-3 + MSIN, at most 15

_OCTET_STRING, _BIT_STRING, _ENUMERATED, _SEQUENCE = 0x04, 0x03, 0x0A, 0x30
_CONSTRUCTED = 0x20
_IMEI_OCTETS = 8
_IMSI_OCTETS = range(3, 9)
_EQUIPMENT_STATUS_BIT, _BMUEF_BIT = 0x80, 0x40


class ErrorCode(IntEnum):
    UNKNOWN_EQUIPMENT = 7
    SYSTEM_FAILURE = 34
    DATA_MISSING = 35
    UNEXPECTED_DATA_VALUE = 36


class EquipmentStatus(IntEnum):
    WHITE_LISTED = 0
    BLACK_LISTED = 1
    GREY_LISTED = 2


class Problem(enum.Enum):
    """How a bad argument is answered."""

    MISSING = "missing"  # ReturnError dataMissing
    MISTYPED = "mistyped"  # TCAP Reject invoke mistypedParameter
    UNEXPECTED = "unexpected"  # ReturnError unexpectedDataValue


class MapError(ValueError):
    """A CheckIMEI argument or result that cannot be used; ``problem`` says how to answer it."""

    def __init__(self, problem: Problem, reason: str) -> None:
        super().__init__(reason)
        self.problem = problem
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CheckImeiArgument:
    """``imei``: the TBCD digits as sent, without the filler (15, or 16 for an IMEISV);
    ``imsi``: the vendor variant's (v1/v2); the bools: v3 requestedEquipmentInfo bits 0 and 1."""

    imei: str
    imsi: str | None = None
    equipment_status: bool = True
    bmuef: bool = False


# --- application contexts --------------------------------------------------------------


def _check_version(version: int) -> None:
    if version not in VERSIONS:
        raise ValueError(f"MAP version {version}: equipmentMngtContext has versions 1 to 3")


def equipment_context(version: int) -> str:
    """equipmentMngtContext-vN's object identifier, dotted."""
    _check_version(version)
    return f"{EQUIPMENT_MANAGEMENT_CONTEXT}.{version}"


_CONTEXT_VERSIONS = {f"{EQUIPMENT_MANAGEMENT_CONTEXT}.{version}": version for version in VERSIONS}


def context_version(name: str) -> int | None:
    """1 to 3 for equipmentMngtContext-vN, None for any other application context (a later
    version included)."""
    return _CONTEXT_VERSIONS.get(name)


# --- TBCD ------------------------------------------------------------------------------

_PAIRS = {low | high << 4: f"{low}{high}" for low in range(10) for high in range(10)}
_LAST = {**_PAIRS, **{low | 0xF0: str(low) for low in range(10)}}


def decode_tbcd(octets: bytes) -> str:
    """The decimal digits of ``octets``; MapError(UNEXPECTED) for any other nibble, the
    last one's filler F excepted."""
    if not octets:
        return ""
    try:
        return "".join([_PAIRS[octet] for octet in octets[:-1]]) + _LAST[octets[-1]]
    except KeyError:
        raise MapError(Problem.UNEXPECTED, f"TBCD {octets.hex()} holds a nibble that is not a decimal digit") from None


def encode_tbcd(digits: str) -> bytes:
    """Two digits an octet, low nibble first, filler F after an odd count."""
    if digits and not (digits.isascii() and digits.isdigit()):
        raise MapError(Problem.UNEXPECTED, f"{digits!r} is not all decimal digits")
    padded = [int(digit) for digit in digits] + ([0xF] if len(digits) % 2 else [])
    return bytes([padded[i] | padded[i + 1] << 4 for i in range(0, len(padded), 2)])


# --- elements --------------------------------------------------------------------------

_Part = tuple[int, int, int]  # identifier octet, start and end of the contents


def _elements(data: bytes, start: int = 0, end: int | None = None) -> list[_Part]:
    """The elements one after the other; MapError(MISTYPED) when the octets are not BER. The
    short definite form is read here, anything else through ber.read."""
    stop = len(data) if end is None else end
    parts = []
    while start < stop:
        identifier = data[start]
        size = data[start + 1] if start + 1 < stop else 0x80
        if size < 0x80 and identifier & 0x1F != 0x1F and start + 2 + size <= stop:
            parts.append((identifier, start + 2, start + 2 + size))
            start += 2 + size
            continue
        try:
            element = ber.read(data, start, stop)
        except BerError as error:
            raise MapError(Problem.MISTYPED, f"not BER: {error}") from None
        parts.append((identifier, element.start, element.end))
        start = element.next
    return parts


def _octets(data: bytes, part: _Part, what: str, sizes: range) -> bytes:
    identifier, start, end = part
    if identifier != _OCTET_STRING:
        raise MapError(Problem.MISTYPED, f"{what} of tag {identifier:#04x}, not a primitive OCTET STRING")
    if end - start not in sizes:
        raise MapError(Problem.MISTYPED, f"{what} of {end - start} octets, not {sizes.start} to {sizes.stop - 1}")
    return data[start:end]


def _imei(data: bytes, part: _Part) -> str:
    return decode_tbcd(_octets(data, part, "IMEI", range(_IMEI_OCTETS, _IMEI_OCTETS + 1)))


# --- the argument --------------------------------------------------------------------------


def decode_check_imei(version: int, parameter: bytes) -> CheckImeiArgument:
    """The argument of a CheckIMEI invoke (``Invoke.parameter``) in the dialogue's version."""
    _check_version(version)
    if not parameter:
        raise MapError(Problem.MISSING, "CheckIMEI without its argument")
    parts = _elements(parameter)
    if version < 3:
        return _argument_v1_v2(parameter, parts)
    if len(parts) != 1 or parts[0][0] != _SEQUENCE:
        raise MapError(Problem.MISTYPED, "a v3 CheckIMEI argument that is not one CheckIMEI-Arg SEQUENCE")
    return _argument_v3(parameter, _elements(parameter, parts[0][1], parts[0][2]))


def _argument_v1_v2(data: bytes, parts: list[_Part]) -> CheckImeiArgument:
    if len(parts) > 2:
        raise MapError(Problem.MISTYPED, f"{len(parts)} elements: the IMEI, and the vendor's IMSI at most")
    imei = _imei(data, parts[0])
    if len(parts) == 1:
        return CheckImeiArgument(imei)
    imsi = decode_tbcd(_octets(data, parts[1], "IMSI", _IMSI_OCTETS))
    if len(imsi) not in IMSI_DIGITS:
        raise MapError(Problem.UNEXPECTED, f"IMSI of {len(imsi)} digits, not 6 to 15")
    return CheckImeiArgument(imei, imsi)


def _argument_v3(data: bytes, parts: list[_Part]) -> CheckImeiArgument:
    if not parts or parts[0][0] == _BIT_STRING:
        raise MapError(Problem.MISSING, "CheckIMEI-Arg without its imei")
    imei = _imei(data, parts[0])
    if len(parts) < 2 or parts[1][0] not in (_BIT_STRING, _BIT_STRING | _CONSTRUCTED):
        raise MapError(Problem.MISSING, "CheckIMEI-Arg without its requestedEquipmentInfo")
    identifier, start, end = parts[1]
    bits = data[start:end]
    if identifier != _BIT_STRING or not bits or bits[0] > 7 or (len(bits) == 1 and bits[0]):
        raise MapError(Problem.MISTYPED, f"requestedEquipmentInfo {bits.hex()} is not a primitive BIT STRING")
    count = 8 * (len(bits) - 1) - bits[0]
    return CheckImeiArgument(imei, None, count > 0 and bool(bits[1] & _EQUIPMENT_STATUS_BIT),
                             count > 1 and bool(bits[1] & _BMUEF_BIT))


def encode_check_imei(version: int, argument: CheckImeiArgument) -> bytes:
    """The parameter octets of a CheckIMEI invoke; the IMSI only in v1/v2 (the vendor variant)."""
    _check_version(version)
    imei = encode_tbcd(argument.imei)
    if len(imei) != _IMEI_OCTETS:
        raise ValueError(f"IMEI {argument.imei!r}: 15 or 16 digits fill the 8 octets of a MAP IMEI")
    element = ber.tlv(_OCTET_STRING, imei)
    if version < 3:
        if argument.imsi is None:
            return element
        if len(argument.imsi) not in IMSI_DIGITS:
            raise ValueError(f"IMSI {argument.imsi!r}: 6 to 15 digits")
        return element + ber.tlv(_OCTET_STRING, encode_tbcd(argument.imsi))
    if argument.imsi is not None:
        raise ValueError("CheckIMEI v3 carries no IMSI (the vendor variant is v1/v2)")
    bits = (_EQUIPMENT_STATUS_BIT if argument.equipment_status else 0) | (_BMUEF_BIT if argument.bmuef else 0)
    return ber.tlv(_SEQUENCE, element + bytes((_BIT_STRING, 2, 6, bits)))  # SIZE (2..8): two bits, six unused


# --- the result ----------------------------------------------------------------------------

_STATUS_ELEMENTS = {status: bytes((_ENUMERATED, 1, status)) for status in EquipmentStatus}


def encode_check_imei_result(version: int, status: EquipmentStatus) -> bytes:
    """v1/v2: EquipmentStatus; v3: CheckIMEI-Res { equipmentStatus } (never bmuef: the EIR keeps no UESBI)."""
    _check_version(version)
    element = _STATUS_ELEMENTS[EquipmentStatus(status)]
    return element if version < 3 else ber.tlv(_SEQUENCE, element)


def decode_check_imei_result(version: int, result: bytes) -> EquipmentStatus | None:
    """The equipment status a CheckIMEI result (``ReturnResult.result``) carries; None for a v3
    CheckIMEI-Res without one (its other elements are skipped)."""
    _check_version(version)
    if not result:
        raise MapError(Problem.MISSING, "CheckIMEI result without its parameter")
    parts = _elements(result)
    if len(parts) != 1:
        raise MapError(Problem.MISTYPED, f"a CheckIMEI result of {len(parts)} elements")
    if version >= 3:
        if parts[0][0] != _SEQUENCE:
            raise MapError(Problem.MISTYPED, f"CheckIMEI-Res of tag {parts[0][0]:#04x}, not a SEQUENCE")
        parts = _elements(result, parts[0][1], parts[0][2])
        if not parts or parts[0][0] != _ENUMERATED:
            return None
    return _status(result, parts[0])


def _status(data: bytes, part: _Part) -> EquipmentStatus:
    identifier, start, end = part
    if identifier != _ENUMERATED:
        raise MapError(Problem.MISTYPED, f"EquipmentStatus of tag {identifier:#04x}, not ENUMERATED")
    try:
        value = ber.read_integer(data[start:end])
    except BerError as error:
        raise MapError(Problem.MISTYPED, f"EquipmentStatus: {error}") from None
    try:
        return EquipmentStatus(value)
    except ValueError:
        raise MapError(Problem.UNEXPECTED, f"EquipmentStatus {value} is not one of TS 29.002's") from None
