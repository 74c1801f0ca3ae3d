"""Diameter messages: decoding with problems reported as data, and encoding (framing: diameter.framing).

``decode_message`` never raises for AVP-level trouble: each problem becomes an
``AvpProblem`` (result code + offending AVP) on ``Message.problems``, so the answer can
carry Failed-AVP. Only framing that cannot be trusted raises ``FramingError``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from diameter.avp import Avp, SharedAvp, example_avp
from diameter.constants import (
    AVP_FLAG_M,
    AVP_FLAG_V,
    DIAMETER_VERSION,
    FLAG_E,
    FLAG_P,
    FLAG_R,
    FLAG_T,
    HEADER_LENGTH,
    ResultCode,
)
from diameter.dictionary import (
    BASE_S13,
    AvpDef,
    CommandDef,
    Dictionary,
    FlagRule,
    Grammar,
    avp_key,
)
from diameter.errors import AvpProblem, EncodeError, FramingError
from diameter.framing import DEFAULT_MAX_MESSAGE_LENGTH, frame_length
from diameter.framing import MessageReader as MessageReader  # the stream reader, where it was before
from diameter.types import ValueProblem

_HEADER = struct.Struct(">IIIII")
_AVP_HEADER = struct.Struct(">II")
_U32 = struct.Struct(">I")
# Grouped AVPs inside Grouped AVPs: deeper input is refused (5012), never a RecursionError.
MAX_GROUPED_DEPTH = 32
CLEAN_SHAPES_LIMIT = 1024
_FAILED_AVP = avp_key(279, 0)


class Message:
    """A Diameter message: the header fields and the top-level AVPs in wire order."""

    __slots__ = (
        "application_id",
        "avps",
        "command_code",
        "definition",
        "dictionary",
        "end_to_end",
        "flags",
        "hop_by_hop",
        "problems",
    )

    def __init__(self, command_code: int, flags: int, application_id: int,
                 hop_by_hop: int = 0, end_to_end: int = 0, avps: list[Avp] | None = None,
                 dictionary: Dictionary = BASE_S13) -> None:
        self.command_code = command_code
        self.flags = flags
        self.application_id = application_id
        self.hop_by_hop = hop_by_hop
        self.end_to_end = end_to_end
        self.avps: list[Avp] = avps if avps is not None else []
        self.problems: list[AvpProblem] = []
        self.dictionary = dictionary
        self.definition: CommandDef | None = dictionary.command(command_code, bool(flags & FLAG_R))

    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_R)

    @property
    def is_proxiable(self) -> bool:
        return bool(self.flags & FLAG_P)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & FLAG_E)

    @property
    def is_retransmission(self) -> bool:
        return bool(self.flags & FLAG_T)

    @property
    def name(self) -> str:
        if self.definition is not None:
            return self.definition.name
        return f"{'Request' if self.is_request else 'Answer'}-{self.command_code}"

    def add(self, name: str, value: Any) -> Message:
        """Append an AVP built from the dictionary; returns self so calls chain."""
        self.avps.append(Avp.of(self.dictionary.avp_def(name), value))
        return self

    def group(self, name: str, *members: tuple[str, Any] | Avp) -> Avp:
        """Build a Grouped AVP from (name, value) pairs or ready AVPs (not appended)."""
        return group(self.dictionary, name, *members)

    def find(self, name: str) -> Avp | None:
        definition = self.dictionary.avp_def(name)
        for avp in self.avps:
            if avp.code == definition.code and avp.vendor_id == definition.vendor_id:
                return avp
        return None

    def find_all(self, name: str) -> list[Avp]:
        definition = self.dictionary.avp_def(name)
        return [a for a in self.avps if a.code == definition.code and a.vendor_id == definition.vendor_id]

    def value(self, name: str, default: Any = None) -> Any:
        avp = self.find(name)
        return default if avp is None or avp.value is None else avp.value

    def to_bytes(self) -> bytes:
        body = b"".join([avp.wire or avp.to_bytes() for avp in self.avps])
        return encode_header(self, HEADER_LENGTH + len(body)) + body

    def __repr__(self) -> str:
        return (f"Message({self.name}, flags=0x{self.flags:02x}, app={self.application_id}, "
                f"hbh=0x{self.hop_by_hop:08x}, e2e=0x{self.end_to_end:08x}, avps={self.avps!r})")


def encode_header(message: Message, length: int) -> bytes:
    if length > 0xFFFFFF:
        raise EncodeError(f"message of {length} octets exceeds the 24-bit length")
    return _HEADER.pack((DIAMETER_VERSION << 24) | length,
                        (message.flags << 24) | message.command_code,
                        message.application_id, message.hop_by_hop, message.end_to_end)


def group(dictionary: Dictionary, name: str, *members: tuple[str, Any] | Avp) -> Avp:
    built = [m if isinstance(m, Avp) else Avp.of(dictionary.avp_def(m[0]), m[1]) for m in members]
    return Avp.grouped(dictionary.avp_def(name), built)


# --- decoding ------------------------------------------------------------------------

def decode_message(data: bytes, dictionary: Dictionary = BASE_S13,
                   max_length: int = DEFAULT_MAX_MESSAGE_LENGTH) -> Message:
    """Decode one whole message; AVP problems land on ``Message.problems``.

    ``data`` must hold exactly one message: shorter input or trailing octets raise
    FramingError, as does any header the stream could not be trusted after.
    """
    length = frame_length(data, max_length)
    if length is None or len(data) < HEADER_LENGTH:
        raise FramingError(f"truncated header: {len(data)} octets")
    if len(data) != length:
        raise FramingError(f"message length {length} but {len(data)} octets given")
    _, flags_cmd, app_id, hbh, e2e = _HEADER.unpack_from(data)
    message = Message(flags_cmd & 0xFFFFFF, flags_cmd >> 24, app_id, hbh, e2e, [], dictionary)
    problems = message.problems
    shape: list[int] = []
    message.avps = _decode_avps(data, HEADER_LENGTH, length, dictionary, problems, (), True, shape)
    flags = message.flags
    definition = message.definition
    if flags & FLAG_E or (definition is not None and definition.proxiable != bool(flags & FLAG_P)):
        _check_header_bits(message)
    if flags & FLAG_E and not flags & FLAG_R:
        check_grammar(message.avps, dictionary.answer_message, problems, (), tuple(shape))  # RFC 6733 7.2
    elif definition is not None:
        check_grammar(message.avps, definition.grammar, problems, (), tuple(shape))
    return message


def _decode_avps(data: bytes, offset: int, end: int, dictionary: Dictionary,
                 problems: list[AvpProblem], path: tuple[Avp, ...], top: bool, shape: list[int]) -> list[Avp]:
    """Decode the AVPs in data[offset:end]; the hot path of the codec, kept flat on purpose.
    An AVP whose value repeats across requests (``Dictionary.stable``) comes from the
    dictionary's memo of clean decodes when its octets were seen before. Each AVP's key
    is appended to ``shape``, for the grammar check."""
    avps: list[Avp] = []
    append = avps.append
    append_key = shape.append
    stable = dictionary.stable
    memo = dictionary.decoded
    unpack_header = _AVP_HEADER.unpack_from
    unpack_vendor = _U32.unpack_from
    while offset < end:
        if end - offset < 8:
            _truncated(problems, path, top, end - offset)
            break
        code, flags_length = unpack_header(data, offset)
        flags = flags_length >> 24
        length = flags_length & 0xFFFFFF
        header = 12 if flags & AVP_FLAG_V else 8
        if length < header or offset + length > end:
            _bad_length(problems, path, data, offset, code, flags, end, header, dictionary.avps)
            break
        vendor = unpack_vendor(data, offset + 8)[0] if header == 12 else 0
        key = (vendor << 32) | code
        append_key(key)
        if key in stable:
            raw = data[offset:offset + length]
            avp = memo.get(raw)
            if avp is None:
                before = len(problems)
                avp = _decode_one(data, offset, header, length, code, flags, vendor, dictionary, problems, path)
                if len(problems) == before:
                    avp = _memoize(memo, dictionary.decoded_limit, raw, avp)
        else:
            avp = _decode_one(data, offset, header, length, code, flags, vendor, dictionary, problems, path)
        append(avp)
        offset += (length + 3) & ~3
    return avps


def _memoize(decoded: dict[bytes, Avp], limit: int, raw: bytes, avp: Avp) -> Avp:
    """Keep a cleanly decoded stable AVP, shared from now on: a SharedAvp with its wire
    form, which cannot be changed (a change would reach every later message)."""
    if len(decoded) >= limit:
        decoded.clear()
    shared = SharedAvp.freeze(avp, raw + b"\0" * (-len(raw) & 3))
    decoded[raw] = shared
    return shared


def _decode_one(data: bytes, offset: int, header: int, length: int, code: int, flags: int, vendor: int,
                dictionary: Dictionary, problems: list[AvpProblem], path: tuple[Avp, ...]) -> Avp:
    """Decode one AVP whose header was read and whose length fits."""
    payload = data[offset + header:offset + length]
    definition = dictionary.avps.get((vendor << 32) | code)
    if definition is None:
        avp = Avp(code, flags, vendor, payload)
        if flags & AVP_FLAG_M:
            problems.append(AvpProblem(ResultCode.DIAMETER_AVP_UNSUPPORTED,
                                       f"AVP {code} (vendor {vendor}) with M bit is not supported", avp, path))
        return avp
    if definition.grouped:
        avp = Avp(code, flags, vendor, payload, None, definition)
        _check_m_bit(avp, definition, problems, path)
        _decode_grouped(avp, definition, dictionary, problems, path)
        return avp
    try:
        value, failure = definition.decode(payload), None
    except ValueProblem as problem:
        value, failure = None, problem
    avp = Avp(code, flags, vendor, payload, value, definition)
    if (flags ^ definition.flags) & AVP_FLAG_M:
        _check_m_bit(avp, definition, problems, path)
    if failure is not None:
        problems.append(AvpProblem(failure.result_code, f"{definition.name}: {failure.reason}", avp, path))
    elif definition.values is not None and value not in definition.values:
        problems.append(AvpProblem(ResultCode.DIAMETER_INVALID_AVP_VALUE,
                                   f"{definition.name}: {value} is not a defined value", avp, path))
    return avp


def _check_m_bit(avp: Avp, definition: AvpDef, problems: list[AvpProblem], path: tuple[Avp, ...]) -> None:
    """3009 when the M bit contradicts the AVP's definition (MUST, or MUST NOT, be set)."""
    if not (avp.flags ^ definition.flags) & AVP_FLAG_M or definition.m_bit is FlagRule.MAY:
        return
    state = "set" if avp.flags & AVP_FLAG_M else "clear"
    problems.append(AvpProblem(ResultCode.DIAMETER_INVALID_AVP_BITS,
                               f"{definition.name}: M bit {state} against its definition", avp, path))


def _decode_grouped(avp: Avp, definition: AvpDef, dictionary: Dictionary,
                    problems: list[AvpProblem], path: tuple[Avp, ...]) -> None:
    if len(path) >= MAX_GROUPED_DEPTH:
        offender = example_avp(definition)  # the header only: the rest may be huge
        offender.flags = avp.flags
        problems.append(AvpProblem(ResultCode.DIAMETER_UNABLE_TO_COMPLY,
                                   f"{definition.name}: Grouped AVPs nested deeper than {MAX_GROUPED_DEPTH}",
                                   offender, path))
        return
    inner = (*path, avp)
    # RFC 6733 7.5: Failed-AVP holds offending AVPs as they came (or a Grouped AVP holding
    # only the offender), so its content is decoded for reading but never judged.
    found = [] if definition.key == _FAILED_AVP else problems
    shape: list[int] = []
    avp.value = _decode_avps(avp.data, 0, len(avp.data), dictionary, found, inner, False, shape)
    grammar = dictionary.grouped.get(definition.key)
    if grammar is not None:
        check_grammar(avp.value, grammar, found, inner, tuple(shape))


def _truncated(problems: list[AvpProblem], path: tuple[Avp, ...], top: bool, left: int) -> None:
    if top:
        problems.append(AvpProblem(ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH,
                                   f"{left} trailing octets cannot hold an AVP header"))
    else:
        problems.append(AvpProblem(ResultCode.DIAMETER_INVALID_AVP_LENGTH,
                                   f"{path[-1].name}: {left} trailing octets cannot hold an AVP header",
                                   path[-1], path[:-1]))


def _bad_length(problems: list[AvpProblem], path: tuple[Avp, ...], data: bytes, offset: int,
                code: int, flags: int, end: int, header_length: int, known: dict[int, AvpDef]) -> None:
    """RFC 6733 7.5: an AVP length below its header or past the message is reported with
    the AVP header and a zero-filled payload of the minimum length."""
    vendor = 0
    if header_length == 12 and end - offset >= 12:
        vendor = _U32.unpack_from(data, offset + 8)[0]
    definition = known.get(avp_key(code, vendor))
    offender = example_avp(definition) if definition else Avp(code, flags, vendor, b"")
    offender.flags = flags
    problems.append(AvpProblem(ResultCode.DIAMETER_INVALID_AVP_LENGTH,
                               f"AVP {code}: length does not fit the message", offender, path))


def _check_header_bits(message: Message) -> None:
    """RFC 6733 3: E never on a request; P as the command's definition says (3008)."""
    definition = message.definition
    if message.is_request and message.is_error:
        message.problems.insert(0, AvpProblem(ResultCode.DIAMETER_INVALID_HDR_BITS, "E bit set on a request"))
    elif message.is_error:
        return  # RFC 6733 7.2: an error answer copies the request's P bit, whatever it was
    elif definition is not None and definition.proxiable != message.is_proxiable:
        expected = "set" if definition.proxiable else "clear"
        message.problems.insert(0, AvpProblem(ResultCode.DIAMETER_INVALID_HDR_BITS,
                                              f"{definition.name}: P bit must be {expected}"))


def check_grammar(avps: list[Avp], grammar: Grammar, problems: list[AvpProblem],
                  path: tuple[Avp, ...], shape: tuple[int, ...] | None = None) -> None:
    """Check a list of AVPs against a CCF grammar: 5005, 5008 and 5009 as RFC 6733 7.1.5.
    ``shape``: the AVPs' keys in order, when the decoder already has them."""
    if shape is None:
        shape = tuple([(avp.vendor_id << 32) | avp.code for avp in avps])
    if shape in grammar.clean_shapes:
        return
    before = len(problems)
    _check_rules(avps, grammar, problems, path)
    if len(problems) == before:
        if len(grammar.clean_shapes) >= CLEAN_SHAPES_LIMIT:
            grammar.clean_shapes.clear()
        grammar.clean_shapes[shape] = None


def _check_rules(avps: list[Avp], grammar: Grammar, problems: list[AvpProblem], path: tuple[Avp, ...]) -> None:
    by_key = grammar.by_key
    fixed_index = grammar.fixed_index
    counts: dict[int, int] = {}
    for index, avp in enumerate(avps):
        key = (avp.vendor_id << 32) | avp.code
        rule = by_key.get(key)
        if rule is None:
            if not grammar.any_avp:
                problems.append(AvpProblem(ResultCode.DIAMETER_AVP_NOT_ALLOWED,
                                           f"{avp.name} is not allowed here", avp, path))
            continue
        seen = counts[key] = counts.get(key, 0) + 1
        if seen == rule.max + 1:
            problems.append(AvpProblem(ResultCode.DIAMETER_AVP_OCCURS_TOO_MANY_TIMES,
                                       f"{rule.name} occurs more than {rule.max} time(s)", avp, path))
        position = fixed_index.get(key)
        if position is not None and position != index:
            problems.append(AvpProblem(ResultCode.DIAMETER_AVP_NOT_ALLOWED,
                                       f"{rule.name} must stand at position {position + 1}", avp, path))
    for rule in grammar.required:
        if counts.get(rule.avp.key, 0) < rule.min:  # type: ignore[union-attr]
            problems.append(AvpProblem(ResultCode.DIAMETER_MISSING_AVP, f"{rule.name} is missing",
                                       example_avp(rule.avp), path))  # type: ignore[arg-type]


def make_message(command_code: int, *, request: bool, application_id: int, proxiable: bool = False,
                 avps: Iterable[Avp] = (), hop_by_hop: int = 0, end_to_end: int = 0,
                 dictionary: Dictionary = BASE_S13) -> Message:
    flags = (FLAG_R if request else 0) | (FLAG_P if proxiable else 0)
    return Message(command_code, flags, application_id, hop_by_hop, end_to_end, list(avps), dictionary)
