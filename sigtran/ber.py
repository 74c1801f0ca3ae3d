"""BER (ITU-T X.690) as TCAP and MAP use it: tag-length-value elements, sans-I/O.

Only what the EIR's dialogues need, and all of it strict: an identifier (class,
constructed bit, tag number, high tag numbers included), a length in the short or long
definite form, or the indefinite form for constructed elements (closed by 00 00), and
the contents. Every malformed input raises ``BerError``: a length past the end, a long
form with more than four length octets, an indefinite length on a primitive, nesting
deeper than ``MAX_DEPTH``. Encoding always writes the minimal definite form, as
pycrate's BER encoder does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

UNIVERSAL, APPLICATION, CONTEXT, PRIVATE = 0x00, 0x40, 0x80, 0xC0
CONSTRUCTED = 0x20
MAX_DEPTH = 16  # deeper indefinite-length nesting is refused, never a RecursionError
MAX_LENGTH_OCTETS = 4


class BerError(ValueError):
    """Input that is not well-formed BER; ``str(e)`` says where and why."""


@dataclass(frozen=True, slots=True)
class Tag:
    cls: int  # UNIVERSAL, APPLICATION, CONTEXT or PRIVATE
    constructed: bool
    number: int

    def encode(self) -> bytes:
        first = self.cls | (CONSTRUCTED if self.constructed else 0)
        if self.number < 31:
            return bytes([first | self.number])
        groups = []
        number = self.number
        while True:
            groups.append(number & 0x7F)
            number >>= 7
            if not number:
                break
        return bytes([first | 0x1F, *(g | 0x80 for g in reversed(groups[1:])), groups[0]])


@dataclass(frozen=True, slots=True)
class Element:
    """One decoded element: its tag and where its contents lie in ``data``."""

    tag: Tag
    data: bytes
    start: int  # first octet of the contents
    end: int  # one past the last octet of the contents (before an end-of-contents marker)
    next: int  # where the following element starts

    @property
    def contents(self) -> bytes:
        return self.data[self.start:self.end]

    def children(self) -> Iterator[Element]:
        """The elements inside a constructed element."""
        if not self.tag.constructed:
            raise BerError(f"tag {self.tag.number} is primitive: it has no elements inside")
        return iterate(self.data, self.start, self.end)


def read(data: bytes, offset: int = 0, end: int | None = None, depth: int = 0) -> Element:
    """The element at ``data[offset:]`` (which must end by ``end``)."""
    limit = len(data) if end is None else end
    tag, offset = _read_tag(data, offset, limit)
    length, offset = _read_length(data, offset, limit)
    if length is None:
        if not tag.constructed:
            raise BerError(f"indefinite length on primitive tag {tag.number}")
        return _indefinite(data, tag, offset, limit, depth)
    if offset + length > limit:
        raise BerError(f"tag {tag.number}: {length} octets of contents but {limit - offset} left")
    return Element(tag, data, offset, offset + length, offset + length)


def decode_one(data: bytes) -> Element:
    """Exactly one element filling ``data``: trailing octets are an error."""
    element = read(data)
    if element.next != len(data):
        raise BerError(f"{len(data) - element.next} octets after the element")
    return element


def iterate(data: bytes, offset: int, end: int, depth: int = 0) -> Iterator[Element]:
    """The elements one after the other in ``data[offset:end]``."""
    while offset < end:
        element = read(data, offset, end, depth)
        yield element
        offset = element.next


def _read_tag(data: bytes, offset: int, limit: int) -> tuple[Tag, int]:
    if offset >= limit:
        raise BerError(f"an identifier was expected at octet {offset}, the input ends")
    first = data[offset]
    offset += 1
    number = first & 0x1F
    if number == 0x1F:
        number = 0
        for count in range(5):
            if offset >= limit:
                raise BerError("the input ends inside a high tag number")
            octet = data[offset]
            offset += 1
            if count == 0 and octet == 0x80:
                raise BerError("a high tag number with a leading zero group")
            number = (number << 7) | (octet & 0x7F)
            if not octet & 0x80:
                break
        else:
            raise BerError("a tag number longer than five octets")
        if number < 31:
            raise BerError(f"tag number {number} written in the high form")
    return Tag(first & 0xC0, bool(first & CONSTRUCTED), number), offset


def _read_length(data: bytes, offset: int, limit: int) -> tuple[int | None, int]:
    if offset >= limit:
        raise BerError("the input ends before a length")
    first = data[offset]
    offset += 1
    if first < 0x80:
        return first, offset
    if first == 0x80:
        return None, offset
    count = first & 0x7F
    if count > MAX_LENGTH_OCTETS or first == 0xFF:
        raise BerError(f"a length of {count} octets is not supported")
    if offset + count > limit:
        raise BerError("the input ends inside a length")
    return int.from_bytes(data[offset:offset + count], "big"), offset + count


def _indefinite(data: bytes, tag: Tag, offset: int, limit: int, depth: int) -> Element:
    if depth >= MAX_DEPTH:
        raise BerError(f"indefinite lengths nested deeper than {MAX_DEPTH}")
    start = position = offset
    while True:
        if position + 2 <= limit and data[position] == 0 and data[position + 1] == 0:
            return Element(tag, data, start, position, position + 2)
        if position >= limit:
            raise BerError(f"tag {tag.number}: no end-of-contents before the input ends")
        position = read(data, position, limit, depth + 1).next


# -- encoding ------------------------------------------------------------------------------

def length(size: int) -> bytes:
    """The minimal definite length of ``size`` content octets."""
    if size < 0x80:
        return bytes([size])
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def tlv(tag: Tag | int, contents: bytes) -> bytes:
    """An element with a definite length; ``tag`` as a Tag or as its one identifier octet."""
    identifier = tag.encode() if isinstance(tag, Tag) else bytes([tag])
    return identifier + length(len(contents)) + contents


def integer(value: int) -> bytes:
    """The contents of an INTEGER: two's complement, minimal."""
    size = max(1, (value + (value < 0)).bit_length() // 8 + 1)
    return value.to_bytes(size, "big", signed=True)


def read_integer(contents: bytes) -> int:
    if not contents:
        raise BerError("an INTEGER without contents")
    if len(contents) > 1 and contents[0] in (0, 0xFF) and (contents[0] == 0) == (contents[1] < 0x80):
        raise BerError("an INTEGER not in its minimal form")  # nine leading bits all 0 or all 1
    return int.from_bytes(contents, "big", signed=True)


def oid(dotted: str) -> bytes:
    """The contents of an OBJECT IDENTIFIER, from its dotted form."""
    arcs = [int(arc) for arc in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39):
        raise ValueError(f"{dotted!r} is not an object identifier")
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        groups = [arc & 0x7F]
        arc >>= 7
        while arc:
            groups.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(groups))
    return bytes(out)


def read_oid(contents: bytes) -> str:
    if not contents or contents[-1] & 0x80:
        raise BerError("an OBJECT IDENTIFIER that is empty or ends inside an arc")
    arcs, arc = [], 0
    for index, octet in enumerate(contents):
        if arc == 0 and octet == 0x80 and (index == 0 or not contents[index - 1] & 0x80):
            raise BerError("an OBJECT IDENTIFIER arc with a leading zero group")
        arc = (arc << 7) | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(arc)
            arc = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in [*head, *arcs[1:]])
