"""AVPs: the value codecs of every RFC 6733 data format, and the Avp object."""

from __future__ import annotations

import struct
from typing import Any

from diameter.constants import AVP_FLAG_M, AVP_FLAG_V
from diameter.dictionary import AvpDef
from diameter.errors import EncodeError
from diameter.types import MINIMUM_DATA_LENGTH

_HDR = struct.Struct(">II")
_HDR_V = struct.Struct(">III")


def pad4(length: int) -> int:
    return (length + 3) & ~3


class Avp:
    """One AVP: header fields, the raw data octets, and the decoded value.

    ``data`` is kept exactly as received so an AVP can be relayed or echoed in Failed-AVP
    unchanged. ``value`` is the decoded value (a list of Avp for Grouped), or None when
    the AVP is not in the dictionary or its data did not decode.
    """

    __slots__ = ("code", "data", "definition", "flags", "value", "vendor_id", "wire")

    def __init__(self, code: int, flags: int, vendor_id: int, data: bytes,
                 value: Any = None, definition: AvpDef | None = None) -> None:
        self.code = code
        self.flags = flags
        self.vendor_id = vendor_id
        self.data = data
        self.value = value
        self.definition = definition
        self.wire: bytes | None = None  # the encoded AVP, kept only for AVPs that are never changed

    @classmethod
    def of(cls, definition: AvpDef, value: Any) -> Avp:
        """Build an AVP from a dictionary definition and a Python value."""
        if definition.grouped:
            return cls.grouped(definition, value)
        try:
            data = definition.encode(value)
        except (struct.error, TypeError, ValueError, AttributeError, UnicodeError, OverflowError) as exc:
            raise EncodeError(f"{definition.name}: cannot encode {value!r}: {exc}") from None
        return cls(definition.code, definition.flags, definition.vendor_id, data, value, definition)

    @classmethod
    def grouped(cls, definition: AvpDef, members: list[Avp]) -> Avp:
        if not isinstance(members, list | tuple) or not all(isinstance(m, Avp) for m in members):
            raise EncodeError(f"{definition.name}: a Grouped value is a list of Avp, not {members!r}")
        data = b"".join(member.to_bytes() for member in members)
        return cls(definition.code, definition.flags, definition.vendor_id, data, list(members), definition)

    @property
    def name(self) -> str:
        return self.definition.name if self.definition else f"AVP-{self.code}"

    @property
    def mandatory(self) -> bool:
        return bool(self.flags & AVP_FLAG_M)

    @classmethod
    def constant(cls, definition: AvpDef, value: Any) -> Avp:
        """An AVP built once and sent many times (Origin-Host, a Result-Code): its encoding
        is kept with it, and it cannot be changed (a SharedAvp)."""
        avp = cls.of(definition, value)
        return SharedAvp.freeze(avp, avp.to_bytes())

    def to_bytes(self) -> bytes:
        if self.wire is not None:
            return self.wire
        data = self.data
        if self.flags & AVP_FLAG_V:
            length = 12 + len(data)
            header = _HDR_V.pack(self.code, (self.flags << 24) | length, self.vendor_id)
        else:
            length = 8 + len(data)
            header = _HDR.pack(self.code, (self.flags << 24) | length)
        return header + data + b"\0" * (-length & 3)

    def find(self, name: str) -> Avp | None:
        """The first member AVP of this Grouped AVP with that name."""
        for member in self.value or ():
            if member.definition is not None and member.definition.name == name:
                return member
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Avp):
            return NotImplemented
        return (self.code, self.flags, self.vendor_id, self.data) == (
            other.code, other.flags, other.vendor_id, other.data)

    def __hash__(self) -> int:
        return hash((self.code, self.flags, self.vendor_id, self.data))

    def __repr__(self) -> str:
        shown = self.value if self.value is not None else self.data
        return f"Avp({self.name}, flags=0x{self.flags:02x}, vendor={self.vendor_id}, {shown!r})"



def example_avp(definition: AvpDef) -> Avp:
    """An AVP with a zero-filled value, for Failed-AVP when the AVP was missing (5005)."""
    data = b"\0" * MINIMUM_DATA_LENGTH.get(definition.type, 0)
    return Avp(definition.code, definition.flags, definition.vendor_id, data, None, definition)


class SharedAvp(Avp):
    """An AVP that many messages hold at once (a constant of ours, or a decoded AVP the
    codec's memo hands to every message carrying the same octets): changing it would change
    them all, so it cannot be changed. Copy it (``Avp(avp.code, ...)``) to build another.
    A Grouped one holds its members as a tuple of SharedAvp."""

    __slots__ = ()

    @classmethod
    def freeze(cls, avp: Avp, wire: bytes) -> SharedAvp:
        shared = object.__new__(cls)
        value = avp.value
        if isinstance(value, list | tuple):
            value = tuple(member if isinstance(member, SharedAvp) else cls.freeze(member, member.to_bytes())
                          for member in value)
        for name, held in (("code", avp.code), ("flags", avp.flags), ("vendor_id", avp.vendor_id),
                           ("data", avp.data), ("value", value), ("definition", avp.definition), ("wire", wire)):
            object.__setattr__(shared, name, held)
        return shared

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self.name} is shared by many messages and cannot be changed; build a new Avp")
