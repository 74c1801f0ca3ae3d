"""The one Diameter framing primitive (diameter.framing): whole input, byte by byte, with
trailing data, and a header that cannot be trusted after whole messages."""

from __future__ import annotations

import pytest

from diameter.errors import FramingError
from diameter.framing import MAX_MESSAGE_LENGTH, frame_ends, frames, split_messages
from tests.diameter_samples import SAMPLES, sample_bytes

WIRES = [sample_bytes(name) for name in sorted(SAMPLES)]
STREAM = b"".join(WIRES)
ENDS = [sum(len(wire) for wire in WIRES[:n + 1]) for n in range(len(WIRES))]


def test_every_message_of_a_stream_ends_where_its_length_says() -> None:
    assert frame_ends(STREAM) == (ENDS, None)
    assert frames(STREAM) == (WIRES, b"")


@pytest.mark.parametrize("cut", [1, 3, 4, 19, 20, 21])
def test_an_incomplete_last_message_is_the_rest(cut: int) -> None:
    partial = STREAM + WIRES[0][:cut]
    assert frame_ends(partial) == (ENDS, None)
    assert frames(partial) == (WIRES, WIRES[0][:cut])


def test_from_an_offset_byte_by_byte() -> None:
    first = len(WIRES[0])
    assert frame_ends(STREAM, first)[0] == ENDS[1:]
    for size in range(len(STREAM) + 1):
        assert frame_ends(STREAM[:size])[0] == [end for end in ENDS if end <= size]


@pytest.mark.parametrize(("header", "reason"), [
    (b"\x02\x00\x00\x14", "version"), (b"\x01\x00\x00\x10", "below"), (b"\x01\x00\x00\x16", "multiple of 4"),
    (b"\x01\x01\x00\x04", "maximum")])
def test_an_untrusted_header_after_whole_messages(header: bytes, reason: str) -> None:
    ends, error = frame_ends(STREAM + header + bytes(16))
    assert ends == ENDS and isinstance(error, FramingError) and reason in str(error)
    with pytest.raises(FramingError, match=reason):
        frames(STREAM + header + bytes(16))


def test_the_maximum_is_the_caller_s() -> None:
    longest = max(len(wire) for wire in WIRES)
    assert frame_ends(STREAM, 0, longest) == (ENDS, None)
    assert frame_ends(STREAM, 0, longest - 4)[1] is not None
    assert MAX_MESSAGE_LENGTH == 0xFFFFFF


def test_outgoing_bytes_one_piece_per_message_and_the_rest_as_it_is() -> None:
    assert split_messages(STREAM) == WIRES
    assert split_messages(STREAM + b"\x01\x00") == [*WIRES, b"\x01\x00"]
    assert split_messages(b"\x02" + STREAM[1:]) == [b"\x02" + STREAM[1:]]
    assert split_messages(b"") == []
