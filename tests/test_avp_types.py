"""Every AVP data format of RFC 6733 4.2-4.4 round-trips: value -> Avp -> octets -> message
decode -> the same value and the same octets, with and without the Vendor-Id header."""

from __future__ import annotations

import ipaddress
import math
import string
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from diameter.avp import Avp, pad4
from diameter.constants import AVP_FLAG_M, AVP_FLAG_V, FLAG_R, VENDOR_3GPP, ResultCode
from diameter.dictionary import BASE_S13, AvpDef, AvpType, Dictionary, FlagRule
from diameter.errors import EncodeError
from diameter.message import Message, decode_message
from diameter.types import NTP_EPOCH
from tests.diameter_samples import raw_avp, raw_message

# A twentieth of the profile's count (500 in CI); nested Grouped trees cost more to draw.
PROPERTY = settings(max_examples=max(100, settings.default.max_examples // 20))
NESTED = settings(max_examples=max(50, settings.default.max_examples // 50))

TEST_COMMAND = 8_000_001
TEST_APP = 4242
ENUM_VALUES = {-(2**31): "LOWEST", -1: "MINUS_ONE", 0: "ZERO", 7: "SEVEN", 2**31 - 1: "HIGHEST"}
VENDORS = (0, VENDOR_3GPP)


def _code(kind: AvpType, vendor: int) -> int:
    return 60_000 + list(AvpType).index(kind) + (100 if vendor else 0)


def _definition(kind: AvpType, vendor: int) -> AvpDef:
    rule = FlagRule.MUST if vendor else FlagRule.MAY
    return AvpDef(f"Test-{kind.value}-{vendor}", _code(kind, vendor), kind, rule, vendor,
                  ENUM_VALUES if kind is AvpType.ENUMERATED else None)


TEST_DEFS = {(kind, vendor): _definition(kind, vendor) for kind in AvpType for vendor in VENDORS}
_GROUPED_CCF = "\n\n".join(
    f"Test-Grouped-{v} ::= < AVP Header: {_code(AvpType.GROUPED, v)}{f' {v}' if v else ''} >\n  * [ AVP ]"
    for v in VENDORS)
TEST_DICT = Dictionary([*BASE_S13.avps.values(), *TEST_DEFS.values()],
                       f"<TST> ::= < Diameter Header: {TEST_COMMAND}, REQ, {TEST_APP} >\n  * [ AVP ]\n",
                       _GROUPED_CCF)


def decode_in_message(avp: Avp) -> Avp:
    """Put ``avp`` alone in a request, encode, decode: the decoded AVP, checked for octets."""
    wire = Message(TEST_COMMAND, FLAG_R, TEST_APP, 1, 2, [avp], TEST_DICT).to_bytes()
    back = decode_message(wire, TEST_DICT)
    assert back.problems == []
    assert len(back.avps) == 1
    got = back.avps[0]
    assert got.to_bytes() == avp.to_bytes()
    assert back.to_bytes() == wire
    return got


def check_header(avp: Avp, definition: AvpDef) -> None:
    """RFC 6733 4.1: V with a Vendor-Id, M as the definition says, length without padding,
    padding of zeros up to a multiple of 4."""
    raw = avp.to_bytes()
    code, flags_length = struct.unpack_from(">II", raw)
    flags, length = flags_length >> 24, flags_length & 0xFFFFFF
    header = 12 if definition.vendor_id else 8
    assert code == definition.code
    assert flags == (AVP_FLAG_V if definition.vendor_id else 0) | (
        AVP_FLAG_M if definition.m_bit is FlagRule.MUST else 0)
    if definition.vendor_id:
        assert struct.unpack_from(">I", raw, 8)[0] == definition.vendor_id
    assert length == header + len(avp.data)
    assert len(raw) == pad4(length)
    assert raw[header:length] == avp.data
    assert raw[length:] == b"\0" * (len(raw) - length)


def round_trip(kind: AvpType, vendor: int, value: Any) -> Avp:
    definition = TEST_DEFS[(kind, vendor)]
    avp = Avp.of(definition, value)
    check_header(avp, definition)
    got = decode_in_message(avp)
    assert got.definition == definition
    return got


vendors = pytest.mark.parametrize("vendor", VENDORS, ids=["base", "vendor"])


@vendors
@PROPERTY
@given(value=st.binary(max_size=300))
def test_octet_string(vendor: int, value: bytes) -> None:
    got = round_trip(AvpType.OCTET_STRING, vendor, value)
    assert got.value == value
    assert got.data == value


INTEGER_RANGES = {
    AvpType.INTEGER32: (-(2**31), 2**31 - 1, ">i"),
    AvpType.INTEGER64: (-(2**63), 2**63 - 1, ">q"),
    AvpType.UNSIGNED32: (0, 2**32 - 1, ">I"),
    AvpType.UNSIGNED64: (0, 2**64 - 1, ">Q"),
}


@vendors
@pytest.mark.parametrize("kind", list(INTEGER_RANGES), ids=lambda k: k.value)
@PROPERTY
@given(data=st.data())
def test_integers(vendor: int, kind: AvpType, data: st.DataObject) -> None:
    low, high, fmt = INTEGER_RANGES[kind]
    value = data.draw(st.one_of(st.integers(low, high), st.sampled_from([low, high, 0])))
    got = round_trip(kind, vendor, value)
    assert got.value == value
    assert got.data == struct.pack(fmt, value)


@pytest.mark.parametrize("kind", list(INTEGER_RANGES), ids=lambda k: k.value)
@PROPERTY
@given(data=st.data())
def test_integers_out_of_range_refused(kind: AvpType, data: st.DataObject) -> None:
    low, high, _ = INTEGER_RANGES[kind]
    value = data.draw(st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1)))
    with pytest.raises(EncodeError):
        Avp.of(TEST_DEFS[(kind, 0)], value)


def _same_float(got: float, want: float, fmt: str) -> None:
    assert struct.pack(fmt, got) == struct.pack(fmt, want)  # -0.0 and NaN compared by octets
    assert (math.isnan(got) and math.isnan(want)) or got == want


@vendors
@PROPERTY
@given(value=st.floats(width=32))
@example(value=math.nan)
@example(value=-0.0)
@example(value=math.inf)
def test_float32(vendor: int, value: float) -> None:
    got = round_trip(AvpType.FLOAT32, vendor, value)
    assert got.data == struct.pack(">f", value)
    _same_float(got.value, value, ">f")


@vendors
@PROPERTY
@given(value=st.floats())
@example(value=math.nan)
@example(value=-math.inf)
def test_float64(vendor: int, value: float) -> None:
    got = round_trip(AvpType.FLOAT64, vendor, value)
    assert got.data == struct.pack(">d", value)
    _same_float(got.value, value, ">d")


@pytest.mark.parametrize(("kind", "data"), [
    (AvpType.FLOAT32, bytes.fromhex("7f800001")),  # signalling NaN
    (AvpType.FLOAT32, bytes.fromhex("ffc12345")),  # negative quiet NaN with a payload
    (AvpType.FLOAT64, bytes.fromhex("7ff0000000000001")),
    (AvpType.FLOAT64, bytes.fromhex("fff8deadbeef0001")),
])
def test_nan_payload_survives_relay(kind: AvpType, data: bytes) -> None:
    """A NaN from the wire decodes as NaN, and the message re-encodes octet for octet:
    the data is kept as received, not re-packed from the float."""
    wire = raw_message(TEST_COMMAND, raw_avp(_code(kind, 0), data, flags=0), application_id=TEST_APP)
    message = decode_message(wire, TEST_DICT)
    assert message.problems == []
    assert math.isnan(message.avps[0].value)
    assert message.to_bytes() == wire


def test_float_overflow_refused() -> None:
    """Regression: struct raised OverflowError (not EncodeError) for a Float32 beyond its range."""
    with pytest.raises(EncodeError):
        Avp.of(TEST_DEFS[(AvpType.FLOAT32, 0)], 1e39)
    with pytest.raises(EncodeError):
        Avp.of(TEST_DEFS[(AvpType.FLOAT64, 0)], "1.5")


addresses = st.one_of(
    st.ip_addresses(v=4),
    st.ip_addresses(v=6),
    st.tuples(st.integers(0, 0xFFFF).filter(lambda f: f not in (1, 2)), st.binary(max_size=40)),
)


@vendors
@PROPERTY
@given(value=addresses)
@example(value=ipaddress.ip_address("192.0.2.1"))
@example(value=ipaddress.ip_address("2001:db8::1"))
@example(value=(8, b"\x00\x01+441234"))  # E.164 family
def test_address(vendor: int, value: Any) -> None:
    got = round_trip(AvpType.ADDRESS, vendor, value)
    assert got.value == value
    if isinstance(value, ipaddress.IPv4Address):
        assert got.data == b"\x00\x01" + value.packed
    elif isinstance(value, ipaddress.IPv6Address):
        assert got.data == b"\x00\x02" + value.packed
    else:
        assert got.data == struct.pack(">H", value[0]) + value[1]


@pytest.mark.parametrize(("data", "code"), [
    (b"\x00\x01\x7f\x00\x00", ResultCode.DIAMETER_INVALID_AVP_LENGTH),
    (b"\x00\x02" + b"\x00" * 15, ResultCode.DIAMETER_INVALID_AVP_LENGTH),
    (b"\x00", ResultCode.DIAMETER_INVALID_AVP_LENGTH),
])
def test_address_wrong_size(data: bytes, code: int) -> None:
    wire = raw_message(TEST_COMMAND, raw_avp(_code(AvpType.ADDRESS, 0), data, flags=0), application_id=TEST_APP)
    assert [p.result_code for p in decode_message(wire, TEST_DICT).problems] == [code]


# RFC 6733 4.3.1 / RFC 5905: NTP seconds since 1900; values with the top bit clear are in
# the era that starts 2036-02-07T06:28:16Z, so the format spans 1968-01-20 to 2104-02-26.
ERA_BOUNDARY = datetime(2036, 2, 7, 6, 28, 16, tzinfo=UTC)
EARLIEST = datetime(1968, 1, 20, 3, 14, 8, tzinfo=UTC)
LATEST = datetime(2104, 2, 26, 9, 42, 23, tzinfo=UTC)

times = st.datetimes(min_value=EARLIEST.replace(tzinfo=None), max_value=LATEST.replace(tzinfo=None),
                     timezones=st.just(UTC)).map(lambda t: t.replace(microsecond=0))


@vendors
@PROPERTY
@given(value=times)
@example(value=ERA_BOUNDARY - timedelta(seconds=1))
@example(value=ERA_BOUNDARY)
@example(value=ERA_BOUNDARY + timedelta(seconds=1))
@example(value=EARLIEST)
@example(value=LATEST)
def test_time(vendor: int, value: datetime) -> None:
    got = round_trip(AvpType.TIME, vendor, value)
    assert got.value == value
    seconds = struct.unpack(">I", got.data)[0]
    assert bool(seconds & 0x80000000) == (value < ERA_BOUNDARY)
    assert seconds == int((value - NTP_EPOCH).total_seconds()) % 2**32


@pytest.mark.parametrize(("wire", "when"), [
    (0xFFFFFFFF, ERA_BOUNDARY - timedelta(seconds=1)),
    (0x00000000, ERA_BOUNDARY),
    (0x00000001, ERA_BOUNDARY + timedelta(seconds=1)),
    (0x80000000, EARLIEST),
    (0x7FFFFFFF, LATEST),
    (3913056000, datetime(2024, 1, 1, tzinfo=UTC)),
])
def test_time_wire_values(wire: int, when: datetime) -> None:
    got = decode_in_message(Avp(_code(AvpType.TIME, 0), 0, 0, struct.pack(">I", wire)))
    assert got.value == when


def test_time_in_other_zone_is_the_same_instant() -> None:
    zone = timezone(timedelta(hours=5, minutes=30))
    local = datetime(2030, 6, 1, 12, 0, 0, tzinfo=zone)
    assert round_trip(AvpType.TIME, 0, local).value == local


@pytest.mark.parametrize("value", [
    EARLIEST - timedelta(seconds=1),
    LATEST + timedelta(seconds=1),
    datetime(1900, 1, 1, tzinfo=UTC),
    datetime(2030, 1, 1),  # naive: no instant
    1_700_000_000,
])
def test_time_out_of_range_refused(value: Any) -> None:
    with pytest.raises(EncodeError):
        Avp.of(TEST_DEFS[(AvpType.TIME, 0)], value)


@vendors
@PROPERTY
@given(value=st.text(max_size=80))
@example(value="")
@example(value="Ünïcødé ✓ 𝄞")
def test_utf8_string(vendor: int, value: str) -> None:
    got = round_trip(AvpType.UTF8_STRING, vendor, value)
    assert got.value == value
    assert got.data == value.encode("utf-8")


ascii_text = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=80)
hostnames = st.lists(st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=12),
                     min_size=1, max_size=5).map(".".join)


@vendors
@pytest.mark.parametrize("kind", [AvpType.DIAMETER_IDENTITY, AvpType.IP_FILTER_RULE], ids=lambda k: k.value)
@PROPERTY
@given(value=st.one_of(ascii_text, hostnames))
def test_ascii_types(vendor: int, kind: AvpType, value: str) -> None:
    got = round_trip(kind, vendor, value)
    assert got.value == value
    assert got.data == value.encode("ascii")


@vendors
@PROPERTY
@given(host=hostnames, port=st.none() | st.integers(1, 65535),
       transport=st.sampled_from(["", ";transport=tcp", ";transport=sctp"]),
       scheme=st.sampled_from(["aaa", "aaas"]))
@example(host="eir.example.org", port=3868, transport=";transport=tcp;protocol=diameter", scheme="aaa")
def test_diameter_uri(vendor: int, host: str, port: int | None, transport: str, scheme: str) -> None:
    uri = f"{scheme}://{host}{f':{port}' if port else ''}{transport}"
    got = round_trip(AvpType.DIAMETER_URI, vendor, uri)
    assert got.value == uri


@vendors
@PROPERTY
@given(value=st.sampled_from(sorted(ENUM_VALUES)))
def test_enumerated(vendor: int, value: int) -> None:
    got = round_trip(AvpType.ENUMERATED, vendor, value)
    assert got.value == value
    assert got.data == struct.pack(">i", value)


def test_enumerated_undefined_value_is_5004() -> None:
    avp = Avp.of(TEST_DEFS[(AvpType.ENUMERATED, 0)], 8)  # encodable, just not defined
    wire = Message(TEST_COMMAND, FLAG_R, TEST_APP, 1, 2, [avp], TEST_DICT).to_bytes()
    problems = decode_message(wire, TEST_DICT).problems
    assert [(p.result_code, p.avp) for p in problems] == [(ResultCode.DIAMETER_INVALID_AVP_VALUE, avp)]


# Leaves for Grouped members: a value of each simple type, built through the codec.
_LEAF_VALUES: dict[AvpType, st.SearchStrategy[Any]] = {
    AvpType.OCTET_STRING: st.binary(max_size=20),
    AvpType.INTEGER32: st.integers(-(2**31), 2**31 - 1),
    AvpType.UNSIGNED64: st.integers(0, 2**64 - 1),
    AvpType.FLOAT64: st.floats(allow_nan=False),
    AvpType.ADDRESS: addresses,
    AvpType.TIME: times,
    AvpType.UTF8_STRING: st.text(max_size=20),
    AvpType.DIAMETER_IDENTITY: hostnames,
    AvpType.ENUMERATED: st.sampled_from(sorted(ENUM_VALUES)),
}
leaves = st.one_of([
    st.builds(Avp.of, st.sampled_from([TEST_DEFS[(kind, v)] for v in VENDORS]), values)
    for kind, values in _LEAF_VALUES.items()
])
trees = st.recursive(
    leaves,
    lambda children: st.builds(Avp.grouped, st.sampled_from([TEST_DEFS[(AvpType.GROUPED, v)] for v in VENDORS]),
                               st.lists(children, max_size=4)),
    max_leaves=12,
)


def _same_tree(got: Avp, want: Avp) -> None:
    assert got == want  # code, flags, vendor and data
    assert got.definition == want.definition
    if want.definition is not None and want.definition.type is AvpType.GROUPED:
        assert len(got.value) == len(want.value)
        for a, b in zip(got.value, want.value, strict=True):
            _same_tree(a, b)
    elif isinstance(want.value, float):
        _same_float(got.value, want.value, ">d")
    else:
        assert got.value == want.value


@vendors
@NESTED
@given(members=st.lists(trees, max_size=5))
def test_grouped_nested(vendor: int, members: list[Avp]) -> None:
    got = round_trip(AvpType.GROUPED, vendor, members)
    assert got.data == b"".join(m.to_bytes() for m in members)
    _same_tree(got, Avp.grouped(TEST_DEFS[(AvpType.GROUPED, vendor)], members))


def test_grouped_member_padding_counts_in_group_length() -> None:
    """RFC 6733 4.4: a Grouped AVP's data is whole member AVPs, their padding included."""
    inner = Avp.of(TEST_DEFS[(AvpType.OCTET_STRING, 0)], b"abcde")  # 13 octets + 3 padding
    group = round_trip(AvpType.GROUPED, 0, [inner])
    assert len(group.data) == 16
    assert struct.unpack_from(">I", group.to_bytes(), 4)[0] & 0xFFFFFF == 8 + 16


REFUSED: list[tuple[AvpType, Any]] = [
    (AvpType.OCTET_STRING, 5),  # bytes(5) would be five zero octets
    (AvpType.OCTET_STRING, "text"),
    (AvpType.INTEGER32, 1.5),
    (AvpType.UNSIGNED32, "1"),
    (AvpType.ENUMERATED, 2**31),
    (AvpType.FLOAT32, float(2**128)),
    (AvpType.UTF8_STRING, "\ud800"),  # lone surrogate: no UTF-8 for it
    (AvpType.UTF8_STRING, b"bytes"),
    (AvpType.DIAMETER_IDENTITY, "hôte.example"),
    (AvpType.DIAMETER_URI, "aaa://hôte"),
    (AvpType.IP_FILTER_RULE, "permit in ip from ∀ to any"),
    (AvpType.ADDRESS, "192.0.2.1"),
    (AvpType.ADDRESS, (70_000, b"")),
    (AvpType.ADDRESS, (8, "text")),
    (AvpType.GROUPED, "members"),
    (AvpType.GROUPED, [1, 2]),
    (AvpType.GROUPED, 7),
]


@pytest.mark.parametrize(("kind", "value"), REFUSED, ids=[f"{k.value}-{v!r}" for k, v in REFUSED])
def test_bad_values_refused_at_build(kind: AvpType, value: Any) -> None:
    with pytest.raises(EncodeError):
        Avp.of(TEST_DEFS[(kind, 0)], value)


FIXED_SIZES = {AvpType.INTEGER32: 4, AvpType.INTEGER64: 8, AvpType.UNSIGNED32: 4, AvpType.UNSIGNED64: 8,
               AvpType.FLOAT32: 4, AvpType.FLOAT64: 8, AvpType.ENUMERATED: 4, AvpType.TIME: 4}


@pytest.mark.parametrize("kind", list(FIXED_SIZES), ids=lambda k: k.value)
@pytest.mark.parametrize("delta", [-1, 1, 4])
def test_fixed_size_with_wrong_length_is_5014(kind: AvpType, delta: int) -> None:
    data = b"\0" * (FIXED_SIZES[kind] + delta)
    wire = raw_message(TEST_COMMAND, raw_avp(_code(kind, 0), data, flags=0), application_id=TEST_APP)
    problems = decode_message(wire, TEST_DICT).problems
    assert [p.result_code for p in problems] == [ResultCode.DIAMETER_INVALID_AVP_LENGTH]
    assert problems[0].avp is not None and problems[0].avp.data == data


@pytest.mark.parametrize("kind", [AvpType.UTF8_STRING, AvpType.DIAMETER_IDENTITY, AvpType.DIAMETER_URI])
def test_undecodable_text_is_5004(kind: AvpType) -> None:
    data = b"\xc3\x28" if kind is AvpType.UTF8_STRING else "é".encode()
    wire = raw_message(TEST_COMMAND, raw_avp(_code(kind, 0), data, flags=0), application_id=TEST_APP)
    message = decode_message(wire, TEST_DICT)
    assert [p.result_code for p in message.problems] == [ResultCode.DIAMETER_INVALID_AVP_VALUE]
    assert message.avps[0].value is None
    assert message.to_bytes() == wire


@pytest.mark.parametrize("build", [
    lambda: Avp(1, 0x40, 0, b"\xff"),
    lambda: Avp.of(TEST_DEFS[(AvpType.GROUPED, VENDOR_3GPP)], [Avp(9, 0xFF, 77, b"")]),
    lambda: Avp(99, 0xE0, 2**32 - 1, b"", value=object()),
], ids=["unknown", "grouped", "odd-value"])
def test_repr_never_raises(build: Callable[[], Avp]) -> None:
    text = repr(build())
    assert text.startswith("Avp(")


def test_string_printables_in_identity() -> None:
    """Every printable ASCII character is carried as is (no validation beyond ASCII)."""
    got = round_trip(AvpType.DIAMETER_IDENTITY, 0, string.printable)
    assert got.value == string.printable
