"""Framing: each sample decoded whole, split into arbitrary chunks, with trailing data, and
the header faults after which the stream cannot be trusted (RFC 6733 3)."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diameter.constants import Command
from diameter.errors import FramingError
from diameter.message import DEFAULT_MAX_MESSAGE_LENGTH, MessageReader, decode_message, frame_length
from tests.diameter_samples import SAMPLES, raw_avp, raw_message, sample_bytes

PROPERTY = settings(max_examples=max(100, settings.default.max_examples // 20))
NAMES = sorted(SAMPLES)
ALL_WIRES = [sample_bytes(name) for name in NAMES]


@pytest.mark.parametrize("name", NAMES)
def test_decoded_whole(name: str) -> None:
    built = SAMPLES[name]()
    wire = built.to_bytes()
    message = decode_message(wire)
    assert message.problems == []
    assert (message.command_code, message.flags, message.application_id) == (
        built.command_code, built.flags, built.application_id)
    assert (message.hop_by_hop, message.end_to_end) == (built.hop_by_hop, built.end_to_end)
    assert message.avps == built.avps
    assert [a.value for a in message.avps if a.definition and a.definition.type.value != "Grouped"] == [
        a.value for a in built.avps if a.definition and a.definition.type.value != "Grouped"]
    assert message.to_bytes() == wire
    assert frame_length(wire) == len(wire)


@pytest.mark.parametrize("name", NAMES)
def test_fed_one_byte_at_a_time(name: str) -> None:
    wire = sample_bytes(name)
    reader = MessageReader()
    frames: list[bytes] = []
    for index in range(len(wire)):
        got = reader.feed(wire[index:index + 1])
        if index < len(wire) - 1:
            assert got == []
            assert reader.buffered == index + 1
        frames.extend(got)
    assert frames == [wire]
    assert reader.buffered == 0


def test_all_samples_byte_by_byte_in_one_stream() -> None:
    stream = b"".join(ALL_WIRES)
    reader = MessageReader()
    frames = [frame for byte in stream for frame in reader.feed(bytes([byte]))]
    assert frames == ALL_WIRES
    assert reader.buffered == 0


@st.composite
def chunked(draw: st.DrawFn) -> tuple[list[bytes], list[bytes]]:
    """Some samples (repeats allowed) back to back, cut at random points."""
    wires = draw(st.lists(st.sampled_from(ALL_WIRES), min_size=1, max_size=6))
    stream = b"".join(wires)
    cuts = sorted(draw(st.sets(st.integers(1, len(stream) - 1), max_size=min(40, len(stream) - 1))))
    bounds = [0, *cuts, len(stream)]
    return wires, [stream[a:b] for a, b in itertools.pairwise(bounds)]


@PROPERTY
@given(chunked())
def test_random_chunks_give_the_same_frames(case: tuple[list[bytes], list[bytes]]) -> None:
    wires, chunks = case
    reader = MessageReader()
    frames = [frame for chunk in chunks for frame in reader.feed(chunk)]
    assert frames == wires
    assert reader.buffered == 0
    assert [decode_message(f).to_bytes() for f in frames] == wires


@PROPERTY
@given(data=st.data())
def test_partial_third_message_stays_buffered(data: st.DataObject) -> None:
    first, second, third = (data.draw(st.sampled_from(ALL_WIRES)) for _ in range(3))
    cut = data.draw(st.integers(0, len(third) - 1))
    reader = MessageReader()
    assert reader.feed(first + second + third[:cut]) == [first, second]
    assert reader.buffered == cut
    assert reader.feed(third[cut:]) == [third]
    assert reader.buffered == 0


@pytest.mark.parametrize("extra", [b"\x00", b"\x00" * 4, b"\x01\x00\x00\x14", sample_bytes("DWR")])
@pytest.mark.parametrize("name", NAMES)
def test_trailing_data_is_a_framing_error(name: str, extra: bytes) -> None:
    with pytest.raises(FramingError):
        decode_message(sample_bytes(name) + extra)


@pytest.mark.parametrize("name", NAMES)
def test_short_data_is_a_framing_error(name: str) -> None:
    wire = sample_bytes(name)
    for size in (0, 1, 3, 4, 19, 20, len(wire) - 4, len(wire) - 1):
        with pytest.raises(FramingError):
            decode_message(wire[:size])


def _with_length(wire: bytes, length: int) -> bytes:
    return struct.pack(">I", (wire[0] << 24) | length) + wire[4:]


def _with_version(wire: bytes, version: int) -> bytes:
    return bytes([version]) + wire[1:]


DWR = sample_bytes("DWR")
BAD_HEADERS = {
    "version 0": _with_version(DWR, 0),
    "version 2": _with_version(DWR, 2),
    "version 255": _with_version(DWR, 255),
    "length 0": _with_length(DWR, 0),
    "length 16": _with_length(DWR, 16),
    "length 19": _with_length(DWR, 19),
    "length 21": _with_length(DWR, 21),
    "length 122": _with_length(DWR, len(DWR) - 2),
    "length 125": _with_length(DWR, len(DWR) + 1),
    "length over max": _with_length(DWR, DEFAULT_MAX_MESSAGE_LENGTH + 4),
    "length 2^24-4": _with_length(DWR, 0xFFFFFC),
}


@pytest.mark.parametrize("wire", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_untrustworthy_header(wire: bytes) -> None:
    with pytest.raises(FramingError):
        frame_length(wire)
    with pytest.raises(FramingError):
        decode_message(wire)
    reader = MessageReader()
    with pytest.raises(FramingError):
        reader.feed(wire)


@pytest.mark.parametrize("wire", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_untrustworthy_header_after_a_good_message(wire: bytes) -> None:
    """A bad header is found as soon as its first 4 octets arrive, even when a good message
    came first in the same read."""
    reader = MessageReader()
    assert reader.feed(DWR) == [DWR]
    with pytest.raises(FramingError):
        reader.feed(wire[:4])


def test_three_octets_are_not_enough_to_judge() -> None:
    reader = MessageReader()
    assert reader.feed(b"\x02\x00\x00") == []
    assert frame_length(b"\x02\x00\x00") is None
    with pytest.raises(FramingError):
        reader.feed(b"\x14")


def _big_message(size: int) -> bytes:
    """A DWR padded with an unknown non-mandatory AVP to exactly ``size`` octets."""
    body = raw_avp(999_999, b"\0" * (size - 20 - 8), flags=0)
    return raw_message(Command.DEVICE_WATCHDOG, body)


@pytest.mark.parametrize("limit", [64, 1024, DEFAULT_MAX_MESSAGE_LENGTH])
def test_max_length_is_configurable(limit: int) -> None:
    at_limit, over = _big_message(limit), _big_message(limit + 4)
    assert decode_message(at_limit, max_length=limit).to_bytes() == at_limit
    assert MessageReader(max_length=limit).feed(at_limit) == [at_limit]
    assert frame_length(at_limit, limit) == limit
    with pytest.raises(FramingError):
        decode_message(over, max_length=limit)
    with pytest.raises(FramingError):
        MessageReader(max_length=limit).feed(over[:4])
    with pytest.raises(FramingError):
        frame_length(over, limit)
    assert decode_message(over, max_length=limit + 4).to_bytes() == over


def test_default_limit_refuses_a_larger_message() -> None:
    wire = _big_message(DEFAULT_MAX_MESSAGE_LENGTH + 4)
    with pytest.raises(FramingError):
        decode_message(wire)
    with pytest.raises(FramingError):
        MessageReader().feed(wire)


def test_reader_takes_bytearray_and_memoryview() -> None:
    reader = MessageReader()
    stream = DWR + DWR
    assert reader.feed(bytearray(stream[:30])) == []
    frames = reader.feed(memoryview(stream)[30:])
    assert frames == [DWR, DWR]
    assert all(type(frame) is bytes for frame in frames)


def test_decoded_avps_shared_through_the_memo_cannot_be_changed() -> None:
    """Issue 12, item 14: a stable AVP (Origin-Host, Vendor-Specific-Application-Id...) is
    decoded once and the same object is handed to every later message with the same octets,
    so changing it in one message would change the next ones: it is a SharedAvp, which
    refuses any change, its Grouped members included."""
    from diameter.avp import SharedAvp
    from diameter.capabilities import LocalNode, build_cer

    wire = build_cer(LocalNode("mme-memo.localdomain", "localdomain")).to_bytes()
    first, second = decode_message(wire), decode_message(wire)
    host = first.find("Origin-Host")
    assert isinstance(host, SharedAvp) and second.find("Origin-Host") is host
    with pytest.raises(AttributeError, match="cannot be changed"):
        host.value = "spoofed.localdomain"
    with pytest.raises(AttributeError):
        host.flags = 0
    grouped = first.find("Vendor-Specific-Application-Id")  # our CER advertises S13 in one
    assert isinstance(grouped, SharedAvp) and isinstance(grouped.value, tuple)
    with pytest.raises(AttributeError):
        grouped.value[0].value = 1
    assert decode_message(wire).value("Origin-Host") == "mme-memo.localdomain"
    assert first.to_bytes() == wire  # a shared AVP still encodes as it came
