"""BER elements (sigtran/ber.py): known encodings from TCAP traces, round trips, and every
malformed input answered by BerError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sigtran.ber import (
    APPLICATION,
    CONTEXT,
    UNIVERSAL,
    BerError,
    Tag,
    decode_one,
    integer,
    iterate,
    length,
    oid,
    read,
    read_integer,
    read_oid,
    tlv,
)

# A TCAP Begin's dialogue portion as MSCs send it: EXTERNAL { dialogue-as-id, AARQ {
# protocol-version, application-context-name equipmentMngtContext-v3 } }.
DIALOGUE = bytes.fromhex("6b1a2818060700118605010101a00d600ba1090607040000010"
                         "00d03")


def test_known_object_identifiers() -> None:
    assert oid("0.0.17.773.1.1.1") == bytes.fromhex("00118605010101")  # dialogue-as-id
    assert oid("0.4.0.0.1.0.13.3") == bytes.fromhex("04000001000d03")  # equipmentMngtContext-v3
    assert read_oid(bytes.fromhex("04000001000d02")) == "0.4.0.0.1.0.13.2"
    assert read_oid(oid("2.999.3")) == "2.999.3"


def test_a_dialogue_portion_walks_down_to_its_application_context() -> None:
    portion = decode_one(DIALOGUE)
    assert portion.tag == Tag(APPLICATION, True, 11)
    (external,) = portion.children()
    direct, encoding = external.children()
    assert read_oid(direct.contents) == "0.0.17.773.1.1.1"
    (aarq,) = encoding.children()
    (context,) = aarq.children()
    (name,) = context.children()
    assert context.tag == Tag(CONTEXT, True, 1) and read_oid(name.contents) == "0.4.0.0.1.0.13.3"


def test_the_indefinite_form_of_the_same_dialogue_decodes_alike() -> None:
    inner = bytes.fromhex("a00d600ba109060704000001000d03")
    indefinite = bytes.fromhex("6b80") + bytes.fromhex("2880") + tlv(0x06, oid("0.0.17.773.1.1.1")) + inner + \
        bytes(4)
    portion = decode_one(indefinite)
    (external,) = portion.children()
    assert [child.tag.number for child in external.children()] == [6, 0]
    assert portion.next == len(indefinite)


@given(st.integers(min_value=-(2 ** 64), max_value=2 ** 64))
def test_integers_round_trip_in_their_minimal_form(value: int) -> None:
    contents = integer(value)
    assert read_integer(contents) == value
    assert contents == value.to_bytes(len(contents), "big", signed=True)
    assert len(contents) == 1 or integer(value) != contents[1:]


@given(st.integers(min_value=0, max_value=2), st.lists(st.integers(min_value=0, max_value=2 ** 40), max_size=8),
       st.integers(min_value=0, max_value=39))
def test_object_identifiers_round_trip(first: int, rest: list[int], second: int) -> None:
    dotted = ".".join(str(arc) for arc in [first, second, *rest])
    assert read_oid(oid(dotted)) == dotted


@given(st.sampled_from([UNIVERSAL, APPLICATION, CONTEXT]), st.booleans(),
       st.integers(min_value=0, max_value=2 ** 28), st.binary(max_size=300))
def test_elements_round_trip_with_any_tag_and_length(cls: int, constructed: bool, number: int,
                                                     contents: bytes) -> None:
    if cls == UNIVERSAL and number == 0 and constructed is False and not contents:
        return  # 00 00 is the end-of-contents marker
    tag = Tag(cls, constructed, number)
    encoded = tlv(tag, contents)
    element = decode_one(encoded)
    assert (element.tag, element.contents) == (tag, contents)
    assert list(iterate(encoded + encoded, 0, 2 * len(encoded)))[1].contents == contents


def test_lengths_are_minimal() -> None:
    assert length(0x7F) == b"\x7f" and length(0x80) == b"\x81\x80" and length(0x100) == b"\x82\x01\x00"


@pytest.mark.parametrize(("data", "why"), [
    (b"", "ends"),
    (b"\x04", "before a length"),
    (b"\x04\x05abc", "octets of contents"),
    (b"\x04\x80\x00\x00", "primitive"),
    (b"\x30\x80\x04\x01a", "end-of-contents"),
    (b"\x04\x85\x00\x00\x00\x00\x01a", "not supported"),
    (b"\x04\x83\x00", "inside a length"),
    (b"\x1f\x80\x01\x00", "leading zero"),
    (b"\x1f\x05\x00", "high form"),
    (b"\x1f\x81", "inside a high tag"),
    (b"\x30\x80" * 40, "deeper"),
    (b"\x04\x01ab", "after the element"),
])
def test_malformed_input_is_a_ber_error(data: bytes, why: str) -> None:
    with pytest.raises(BerError, match=why):
        decode_one(data)


@pytest.mark.parametrize("contents", [b"", b"\x00\x01", b"\xff\x80"])
def test_integers_not_minimal_are_refused(contents: bytes) -> None:
    with pytest.raises(BerError):
        read_integer(contents)


@given(st.binary(max_size=64))
def test_any_octets_decode_or_raise_ber_error_only(data: bytes) -> None:
    try:
        element = read(data)
        if element.tag.constructed:
            list(element.children())
    except BerError:
        pass


def test_pycrate_reads_the_same_dialogue_portion_and_encodes_it_to_the_same_octets() -> None:
    from pycrate_asn1dir import TCAP_MAPv2v3

    portion = TCAP_MAPv2v3.TCAPMessages.DialoguePortion
    portion.from_ber(DIALOGUE)
    value = portion.get_val()
    assert value["direct-reference"] == (0, 0, 17, 773, 1, 1, 1)
    assert value["encoding"][1][1][1]["application-context-name"] == (0, 4, 0, 0, 1, 0, 13, 3)
    assert portion.to_ber() == DIALOGUE
