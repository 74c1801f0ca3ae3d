"""SCCP connectionless codec (sigtran/sccp.py): round trips, byte-for-byte agreement with
pycrate_mobile.SCCP built independently from the same values, strict decoding of malformed
input (every failure an SccpError with a Q.713 return cause where one fits), answers and
returned messages, and fuzzing (marked ``fuzz``: the profile's count, 10,000 in CI).

pycrate's encoder cannot place optional parameters it does not know, so messages with
``other_optional`` are compared on our side only; pycrate ignores trailing octets after the
last variable part where we refuse them.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import example, given, note, settings
from hypothesis import strategies as st
from pycrate_mobile.SCCP import SCCPExtUnitData, SCCPExtUnitDataService, SCCPUnitData, SCCPUnitDataService, parse_SCCP

from sigtran.sccp import (
    GTI_NAI,
    GTI_NONE,
    GTI_TT,
    GTI_TT_NP_ES,
    GTI_TT_NP_ES_NAI,
    NAI_INTERNATIONAL,
    NP_ISDN,
    NP_ISDN_MOBILE,
    SSN_EIR,
    SSN_HLR,
    SSN_MSC,
    SSN_SGSN,
    SSN_VLR,
    UDT,
    XUDT,
    ReturnCause,
    SccpAddress,
    SccpError,
    SccpMessage,
    Segmentation,
    Udt,
    Udts,
    Xudt,
    Xudts,
    answer,
    decode_address,
    decode_bcd,
    decode_message,
    encode_bcd,
    encode_message,
    gt_address,
    ssn_address,
    undeliverable,
)
from tests.fuzzing import MUTATIONS, mutate

PROPERTY = settings(max_examples=max(100, settings.default.max_examples // 20))

# A MAP v1 CheckIMEI TCAP Begin (IMEI 35209900176148 as in PROTOCOLS.md): opaque to SCCP.
TCAP_BEGIN = bytes.fromhex("621a 4804 00000001 6c12 a110 020101 02012b 0408 53029900711684f0")
EIR_GT, MSC_GT = "491720000009", "49172000001"

# The known example: an EIR-bound UDT, class 0 with return on error, called party routed
# on GT (GTI 4, TT 0, E.164, even, international) with SSN 9, calling party the MSC, SSN 8
# with an odd number of digits (filler 0 in the last high nibble). Written out by hand
# from Q.713 3.4 and 4.10.
KNOWN_UDT = bytes.fromhex(
    "09" "80" "03" "0e" "19"  # UDT, class 0 + return on error, pointers 3, 14, 25
    "0b" "12" "09" "00" "12" "04" "947102000090"  # called: AI 0x12, SSN 9, TT 0, NP 1/ES 2, NAI 4
    "0b" "12" "08" "00" "11" "04" "947102000001"  # calling: SSN 8, ES 1 (odd), 11 digits
    "1c"
) + TCAP_BEGIN


def eir_request() -> Udt:
    return Udt(gt_address(EIR_GT, SSN_EIR), gt_address(MSC_GT, SSN_MSC), TCAP_BEGIN, 0, True)


# --- pycrate side: the same messages built through pycrate's own API -------------------


def pycrate_address(address: SccpAddress) -> dict[str, Any]:
    indicator = {"res": int(address.national), "RoutingInd": int(not address.route_on_gt), "GTInd": address.gti,
                 "SSNInd": int(address.ssn is not None), "PCInd": int(address.point_code is not None)}
    value: dict[str, Any] = {"AddrInd": indicator}
    if address.point_code is not None:
        value["PC"] = address.point_code
    if address.ssn is not None:
        value["SSN"] = address.ssn
    gt: dict[str, Any] = {
        GTI_NONE: {},
        GTI_NAI: {"NAI": address.nature},
        GTI_TT: {"TranslationType": address.translation_type},
        GTI_TT_NP_ES: {"TranslationType": address.translation_type, "NumberingPlan": address.numbering_plan},
        GTI_TT_NP_ES_NAI: {"TranslationType": address.translation_type, "NumberingPlan": address.numbering_plan,
                           "NAI": address.nature},
    }[address.gti]
    if gt:
        value["GT"] = gt
    return {"Value": value}


def set_pycrate_digits(party: Any, address: SccpAddress) -> None:
    if address.gti == GTI_NONE:
        return
    title = party[1]["GT"].get_alt()
    if address.gti == GTI_NAI:
        title.set_addr(address.digits)
    elif address.gti == GTI_TT:
        title.set_addr(bytes(int(address.digits[i + 1]) << 4 | int(address.digits[i])
                             for i in range(0, len(address.digits), 2)).hex())
    else:
        title.set_addr_bcd(address.digits)


def pycrate_bytes(message: SccpMessage) -> bytes:
    values: dict[str, Any] = {"CalledPartyAddr": pycrate_address(message.called),
                              "CallingPartyAddr": pycrate_address(message.calling),
                              "Data": {"Value": message.data}}
    if isinstance(message, Udt | Xudt):
        values["ProtocolClass"] = {"Handling": 8 if message.return_on_error else 0, "Class": message.protocol_class}
    else:
        values["RetCause"] = message.return_cause
    if isinstance(message, Xudt | Xudts):
        values["HopCounter"] = message.hop_counter
    kind = {Udt: SCCPUnitData, Xudt: SCCPExtUnitData, Udts: SCCPUnitDataService, Xudts: SCCPExtUnitDataService}
    built = kind[type(message)]()
    built.set_val(values)
    set_pycrate_digits(built["CalledPartyAddr"], message.called)
    set_pycrate_digits(built["CallingPartyAddr"], message.calling)
    if isinstance(message, Xudt | Xudts):
        set_pycrate_options(built["Opt"], message)
    return built.to_bytes()


def set_pycrate_options(options: Any, message: Xudt | Xudts) -> None:
    assert not message.other_optional, "pycrate cannot encode optional parameters it does not know"
    segmentation = message.segmentation
    if segmentation is not None:
        options["Segmentation"].set_trans(False)
        options["Segmentation"][2].set_val({"F": int(segmentation.first), "C": int(segmentation.class_1),
                                            "RemainingSeg": segmentation.remaining,
                                            "SegmentLocalRef": segmentation.local_reference})
    if message.importance is not None:
        options["Importance"].set_trans(False)
        options["Importance"][2].set_val({"Value": message.importance})
    if segmentation is not None or message.importance is not None:
        options["EOO"].set_trans(False)


# --- strategies --------------------------------------------------------------------------


@st.composite
def addresses(draw: st.DrawFn) -> SccpAddress:
    gti = draw(st.integers(GTI_NONE, GTI_TT_NP_ES_NAI))
    ssn = draw(st.none() | st.integers(0, 255))
    if gti == GTI_NONE and ssn is None:
        ssn = draw(st.integers(0, 255))
    route_on_gt = gti != GTI_NONE and (ssn is None or draw(st.booleans()))
    digits = draw(st.text("0123456789", max_size=16)) if gti != GTI_NONE else ""
    if gti == GTI_TT and len(digits) % 2:
        digits += "0"
    return canonical(route_on_gt, ssn, draw(st.none() | st.integers(0, 0x3FFF)), gti, digits,
                       draw(st.integers(0, 255)), draw(st.integers(0, 15)), draw(st.integers(0, 127)),
                       draw(st.booleans()))


@st.composite
def messages(draw: st.DrawFn, unknown_options: bool = False) -> SccpMessage:
    kind = draw(st.sampled_from([Udt, Xudt, Udts, Xudts]))
    called, calling = draw(addresses()), draw(addresses())
    data = draw(st.binary(min_size=1, max_size=180))
    if kind in (Udt, Xudt):
        head: tuple[Any, ...] = (draw(st.integers(0, 1)), draw(st.booleans()))
    else:
        head = (draw(st.integers(0, 255)),)
    if kind in (Udt, Udts):
        return kind(called, calling, data, *head)
    segmentation = draw(st.none() | st.builds(Segmentation, st.booleans(), st.booleans(), st.integers(0, 15),
                                              st.integers(0, 0xFFFFFF)))
    others = draw(st.lists(st.tuples(st.integers(1, 255).filter(lambda n: n not in (0x10, 0x12)),
                                     st.binary(max_size=8)), max_size=3)) if unknown_options else []
    return kind(called, calling, data, *head, draw(st.integers(1, 15)),
                segmentation, draw(st.none() | st.integers(0, 7)), tuple(others))


# --- the known example ---------------------------------------------------------------------


def test_known_eir_bound_udt() -> None:
    request = eir_request()
    assert request.to_bytes() == KNOWN_UDT
    assert pycrate_bytes(request) == KNOWN_UDT
    assert decode_message(KNOWN_UDT) == request
    decoded = decode_message(KNOWN_UDT)
    assert isinstance(decoded, Udt)
    assert decoded.called.ssn == SSN_EIR and decoded.called.digits == EIR_GT and decoded.called.route_on_gt
    assert decoded.calling.ssn == SSN_MSC and decoded.calling.digits == MSC_GT
    assert decoded.return_on_error and decoded.protocol_class == 0


def test_known_example_through_pycrate_decoder() -> None:
    parsed, error = parse_SCCP(KNOWN_UDT)
    assert error == 0
    assert parsed["CalledPartyAddr"][1]["GT"].get_alt().get_addr() == EIR_GT
    assert parsed["CallingPartyAddr"][1]["GT"].get_alt().get_addr() == MSC_GT
    assert parsed["CalledPartyAddr"][1]["SSN"].get_val() == SSN_EIR
    assert parsed["Data"][1].get_val() == TCAP_BEGIN


def test_subsystem_numbers() -> None:
    assert (SSN_HLR, SSN_VLR, SSN_MSC, SSN_EIR, SSN_SGSN) == (6, 7, 8, 9, 149)


# --- round trips, every address combination, against pycrate ------------------------------

def canonical(route_on_gt: bool, ssn: int | None, point_code: int | None, gti: int, digits: str,
              translation_type: int, numbering_plan: int, nature: int, national: bool) -> SccpAddress:
    """An address whose fields the GTI does not carry hold their defaults."""
    return SccpAddress(route_on_gt, ssn, point_code, gti, digits,
                       translation_type if gti >= GTI_TT else 0,
                       numbering_plan if gti >= GTI_TT_NP_ES else NP_ISDN,
                       nature if gti in (GTI_NAI, GTI_TT_NP_ES_NAI) else NAI_INTERNATIONAL, national)


COMBINATIONS = [
    canonical(route, ssn, pc, gti, digits, 10, NP_ISDN_MOBILE, 3, national)
    for gti, ssn, pc, route, national, digits in itertools.product(
        range(5), (None, SSN_EIR), (None, 0x2ABC), (True, False), (False, True), ("", "1234", "12345"))
    if not (route and gti == GTI_NONE) and not (not route and ssn is None)
    and not (gti == GTI_NONE and digits) and not (gti == GTI_TT and len(digits) % 2)
]


def message_of(kind: type, called: SccpAddress, calling: SccpAddress) -> SccpMessage:
    data = b"\x62\x03\x48\x01\x07"
    if kind is Udt:
        return Udt(called, calling, data, 1, True)
    if kind is Xudt:
        return Xudt(called, calling, data, 0, False, 7, Segmentation(True, False, 0, 0xABCDEF), 3)
    if kind is Udts:
        return Udts(called, calling, data, ReturnCause.SUBSYSTEM_FAILURE)
    return Xudts(called, calling, data, ReturnCause.UNQUALIFIED, 12)


@pytest.mark.parametrize("kind", [Udt, Xudt, Udts, Xudts], ids=lambda k: k.__name__)
@pytest.mark.parametrize("address", COMBINATIONS, ids=repr)
def test_round_trip_each_address_combination(kind: type, address: SccpAddress) -> None:
    message = message_of(kind, address, gt_address(MSC_GT, SSN_MSC, point_code=0x0101))
    wire = encode_message(message)
    assert decode_message(wire) == message
    assert pycrate_bytes(message) == wire
    swapped = message_of(kind, ssn_address(SSN_HLR), address)
    assert decode_message(swapped.to_bytes()) == swapped
    assert pycrate_bytes(swapped) == swapped.to_bytes()


def test_combinations_cover_every_indicator() -> None:
    seen = {(a.gti, a.ssn is not None, a.point_code is not None, a.route_on_gt) for a in COMBINATIONS}
    assert len(seen) == 16 + 10  # on GT: GTI 1-4 x SSN? x PC?; on SSN (an SSN needed): GTI 0-4 x PC?
    assert len(COMBINATIONS) > 50


@PROPERTY
@given(messages())
def test_random_messages_match_pycrate(message: SccpMessage) -> None:
    wire = encode_message(message)
    note(wire.hex())
    assert decode_message(wire) == message
    assert pycrate_bytes(message) == wire


@PROPERTY
@given(messages(unknown_options=True))
def test_round_trip_with_unknown_optional_parameters(message: SccpMessage) -> None:
    wire = encode_message(message)
    assert decode_message(wire) == message
    assert encode_message(decode_message(wire)) == wire


def test_unknown_optional_parameter_kept_raw() -> None:
    message = Xudt(gt_address(EIR_GT, SSN_EIR), gt_address(MSC_GT, SSN_MSC), b"\x01", importance=2,
                   other_optional=((0x13, b"\xaa\xbb"), (0x7F, b"")))
    wire = message.to_bytes()
    assert wire.endswith(b"\x12\x01\x02\x13\x02\xaa\xbb\x7f\x00\x00")
    assert decode_message(wire) == message


def test_xudt_without_optional_part_has_pointer_zero() -> None:
    message = Xudt(ssn_address(SSN_EIR, 1), ssn_address(SSN_MSC, 2), b"\x05", hop_counter=15)
    wire = message.to_bytes()
    assert wire[:7] == bytes([XUDT, 0, 15, 4, 8, 12, 0])
    assert decode_message(wire) == message == decode_message(pycrate_bytes(message))
    assert not message.needs_reassembly


def test_lone_end_of_optional_parameters_is_an_empty_optional_part() -> None:
    wire = bytes([XUDT, 0, 15, 4, 6, 8, 9, 2, 0x42, 9, 2, 0x42, 8, 1, 5, 0])
    decoded = decode_message(wire)
    assert isinstance(decoded, Xudt) and decoded.segmentation is None and decoded.other_optional == ()


def test_needs_reassembly() -> None:
    base = Xudt(ssn_address(9), ssn_address(8), b"\x05")
    assert Xudt(base.called, base.calling, b"x", segmentation=Segmentation(True, True, 2, 7)).needs_reassembly
    assert Xudt(base.called, base.calling, b"x", segmentation=Segmentation(False, True, 0, 7)).needs_reassembly
    assert not Xudt(base.called, base.calling, b"x", segmentation=Segmentation(True, True, 0, 7)).needs_reassembly


# --- whole, prefixes, trailing data ----------------------------------------------------------

SAMPLE_WIRES = [
    KNOWN_UDT,
    Xudt(gt_address(EIR_GT, SSN_EIR, point_code=3), gt_address(MSC_GT, SSN_MSC), TCAP_BEGIN, 1, True, 9,
         Segmentation(True, True, 0, 42), 4, ((0x33, b"\x01\x02"),)).to_bytes(),
    Udts(gt_address(MSC_GT, SSN_MSC), ssn_address(SSN_EIR, 77), TCAP_BEGIN, ReturnCause.SUBSYSTEM_FAILURE).to_bytes(),
    Xudts(SccpAddress(True, None, None, GTI_NAI, "123", nature=3), SccpAddress(False, 8, gti=GTI_TT, digits="44",
          translation_type=5), b"\x00", ReturnCause.HOP_COUNTER_VIOLATION, 1).to_bytes(),
]


@pytest.mark.parametrize("wire", SAMPLE_WIRES, ids=lambda w: w[:1].hex())
def test_every_strict_prefix_is_refused(wire: bytes) -> None:
    decode_message(wire)
    for end in range(len(wire)):
        with pytest.raises(SccpError):
            decode_message(wire[:end])


@pytest.mark.parametrize("wire", SAMPLE_WIRES, ids=lambda w: w[:1].hex())
@pytest.mark.parametrize("tail", [b"\x00", b"\xff\xff", TCAP_BEGIN])
def test_trailing_octets_are_refused(wire: bytes, tail: bytes) -> None:
    """SCCP has no length of its own: the last variable part ends the message (for a UDT,
    the data part's length octet). Octets after it are refused; pycrate ignores them."""
    with pytest.raises(SccpError, match="trailing octets") as raised:
        decode_message(wire + tail)
    assert raised.value.return_cause is ReturnCause.UNQUALIFIED


def test_pycrate_ignores_trailing_octets() -> None:
    parsed, error = parse_SCCP(KNOWN_UDT + b"\x00\x00")
    assert error == 0 and parsed.to_bytes() == KNOWN_UDT


# --- malformed input -------------------------------------------------------------------------

NO_NATURE, UNQUALIFIED = ReturnCause.NO_TRANSLATION_FOR_NATURE, ReturnCause.UNQUALIFIED
SSN_ONLY = "0242 09"  # an address routed on SSN 9: AI 0x42, SSN


def udt(called: str, calling: str = SSN_ONLY, data: str = "01 aa", head: str = "09 00") -> bytes:
    """A UDT with the parts in order and correct pointers, from hex with spaces."""
    a, b = bytes.fromhex(called), bytes.fromhex(calling)
    return bytes.fromhex(head) + bytes([3, 2 + len(a), 1 + len(a) + len(b)]) + a + b + bytes.fromhex(data)


MALFORMED = {
    "empty": (b"", "empty", None),
    "unknown type": (bytes.fromhex("0100000000"), "unknown", None),
    "connection oriented type": (bytes.fromhex("0600000000"), "unknown", None),
    "short fixed part": (bytes.fromhex("09000304"), "shorter than its fixed part", UNQUALIFIED),
    "pointer zero": (bytes.fromhex("0900000405") + bytes.fromhex("0242090242080101"), "is 0", UNQUALIFIED),
    "pointer past end": (bytes.fromhex("0900030540024209024208"), "points past", UNQUALIFIED),
    "length past end": (udt(SSN_ONLY, data="05 aa"), "runs past", UNQUALIFIED),
    "overlap": (bytes.fromhex("0900030204") + bytes.fromhex("02420901aa"), "overlaps", UNQUALIFIED),
    "into the pointers": (bytes.fromhex("0900020401 01aa 024208"), "overlaps", UNQUALIFIED),
    "gap": (bytes.fromhex("0900040608") + bytes.fromhex("ff024209024208") + bytes.fromhex("01aa"), "no pointer",
            UNQUALIFIED),
    "empty data": (udt(SSN_ONLY, data="00"), "data part is empty", UNQUALIFIED),
    "protocol class 2": (udt(SSN_ONLY, head="09 02"), "protocol class 2", UNQUALIFIED),
    "empty address": (udt("00"), "empty party address", UNQUALIFIED),
    "spare GTI 5": (udt("0356 09 00"), "spare", NO_NATURE),
    "spare GTI 15": (udt("037e 09 00"), "spare", NO_NATURE),
    "route on GT without GT": (udt("0202 09"), "without a global title", NO_NATURE),
    "route on SSN without SSN": (udt("0140"), "without a subsystem number", UNQUALIFIED),
    "short for point code": (udt("0243 01"), "point code", UNQUALIFIED),
    "short for SSN": (udt("0142"), "subsystem number", UNQUALIFIED),
    "octets after no GT": (udt("0342 0900"), "without global title", UNQUALIFIED),
    "GTI 4 header short": (udt("0412 09 00 11"), "header", NO_NATURE),
    "GTI 3 header short": (udt("020e 00"), "header", NO_NATURE),
    "GTI 1 header short": (udt("0104"), "header", NO_NATURE),
    "encoding scheme 0": (udt("0512 09 00 10 04"), "not BCD", NO_NATURE),
    "encoding scheme 3": (udt("0612 09 00 13 04 21"), "not BCD", NO_NATURE),
    "odd count in no octet": (udt("0512 09 00 11 04"), "empty address", NO_NATURE),
    "hex digit": (udt("0612 09 00 12 04 2a"), "not a digit", NO_NATURE),
    "filler in the middle": (udt("0712 09 00 11 04 f1 21"), "not a digit", NO_NATURE),
    "filler of even count": (udt("0612 09 00 12 04 f1"), "not a digit", NO_NATURE),
    "bad filler": (udt("0612 09 00 11 04 51"), "filler", NO_NATURE),
    "digit nibble of odd count": (udt("0612 09 00 11 04 0c"), "filler", NO_NATURE),
    "GTI 1 odd bit, empty": (udt("0306 09 84"), "empty address", NO_NATURE),
    "GTI 2 filler": (udt("040a 09 00 f1"), "not a digit", NO_NATURE),
    "calling party bad": (udt(SSN_ONLY, calling="0356 08 00"), "calling party", NO_NATURE),
}


@pytest.mark.parametrize(("wire", "reason", "cause"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed(wire: bytes, reason: str, cause: ReturnCause | None) -> None:
    with pytest.raises(SccpError, match=reason) as raised:
        decode_message(wire)
    assert raised.value.return_cause is cause
    assert isinstance(raised.value, ValueError) and raised.value.reason == str(raised.value)


def test_malformed_samples_are_otherwise_well_formed() -> None:
    assert decode_message(udt(SSN_ONLY)) == Udt(ssn_address(9), ssn_address(9), b"\xaa")
    assert decode_message(udt("0612 09 00 11 04 01")).called == gt_address("1", 9)
    assert decode_message(xudt("")) == Xudt(ssn_address(9), ssn_address(8), b"\xaa")


def xudt(optional: str, hop: int = 15) -> bytes:
    head = bytes([XUDT, 0, hop, 4, 6, 8, 9 if optional else 0])
    return head + bytes.fromhex("0242 09 0242 08 01 aa" + optional)


XUDT_MALFORMED = {
    "hop counter 0": (xudt("", 0), "hop counter 0", ReturnCause.HOP_COUNTER_VIOLATION),
    "hop counter 16": (xudt("", 16), "hop counter 16", UNQUALIFIED),
    "no end of optional parameters": (xudt("12 01 03"), "without end", UNQUALIFIED),
    "optional length past end": (xudt("12 05 03 00"), "without end", UNQUALIFIED),
    "optional name without length": (xudt("12"), "without end", UNQUALIFIED),
    "segmentation of 3 octets": (xudt("10 03 80 00 01 00"), "not 4", UNQUALIFIED),
    "importance of 2 octets": (xudt("12 02 03 00 00"), "not 1", UNQUALIFIED),
    "importance repeated": (xudt("12 01 03 12 01 04 00"), "repeated", UNQUALIFIED),
    "segmentation repeated": (xudt("10 04 80 00 00 01 10 04 80 00 00 01 00"), "repeated", UNQUALIFIED),
    "trailing after end": (xudt("12 01 03 00 ff"), "trailing", UNQUALIFIED),
}


@pytest.mark.parametrize(("wire", "reason", "cause"), XUDT_MALFORMED.values(), ids=XUDT_MALFORMED.keys())
def test_malformed_xudt(wire: bytes, reason: str, cause: ReturnCause) -> None:
    with pytest.raises(SccpError, match=reason) as raised:
        decode_message(wire)
    assert raised.value.return_cause is cause


def test_xudt_helper_builds_valid_messages() -> None:
    decoded = decode_message(xudt("10 04 c2 00 00 2a 12 01 f3 00"))
    assert isinstance(decoded, Xudt)
    assert decoded.segmentation == Segmentation(True, True, 2, 42) and decoded.importance == 3
    assert decoded.needs_reassembly


def test_spare_bits_are_ignored_on_receipt() -> None:
    wire = udt("0443 34 f2 09", head="09 71")  # PC spare bits set, spare handling value 7
    decoded = decode_message(wire)
    assert isinstance(decoded, Udt) and not decoded.return_on_error and decoded.protocol_class == 1
    assert decoded.called.point_code == 0x3234
    assert decode_address(bytes.fromhex("12 09 00 12 84 21")) == gt_address("12", 9)  # GTI 4's spare bit 8
    assert decode_address(bytes.fromhex("12 09 00 11 04 f1")) == gt_address("1", 9)  # filler F accepted


# --- encoding refuses what Q.713 cannot carry ------------------------------------------------

BAD_VALUES = {
    "route on GT without GT": lambda: SccpAddress(True, 9),
    "route on SSN without SSN": lambda: SccpAddress(False, None, 5, GTI_TT_NP_ES_NAI, "12"),
    "digits without GT": lambda: SccpAddress(False, 9, digits="12"),
    "letters": lambda: gt_address("12a4", 9),
    "unicode digits": lambda: gt_address("١٢", 9),
    "GTI 2 odd": lambda: SccpAddress(True, 9, None, GTI_TT, "123"),
    "spare GTI": lambda: SccpAddress(True, 9, None, 5, "12"),
    "point code 15 bits": lambda: ssn_address(9, 0x4000),
    "SSN 256": lambda: ssn_address(256),
    "nature 128": lambda: gt_address("1", nature=128),
    "numbering plan 16": lambda: gt_address("1", numbering_plan=16),
    "translation type 256": lambda: gt_address("1", translation_type=256),
    "empty data": lambda: Udt(ssn_address(9), ssn_address(8), b"").to_bytes(),
    "data of 256": lambda: Udt(ssn_address(9), ssn_address(8), bytes(256)).to_bytes(),
    "class 2": lambda: Udt(ssn_address(9), ssn_address(8), b"x", 2).to_bytes(),
    "hop counter 0": lambda: Xudt(ssn_address(9), ssn_address(8), b"x", hop_counter=0).to_bytes(),
    "hop counter 16": lambda: Xudt(ssn_address(9), ssn_address(8), b"x", hop_counter=16).to_bytes(),
    "importance 8": lambda: Xudt(ssn_address(9), ssn_address(8), b"x", importance=8).to_bytes(),
    "unknown named importance": lambda: Xudt(ssn_address(9), ssn_address(8), b"x",
                                             other_optional=((0x12, b"\x01"),)).to_bytes(),
    "unknown named end": lambda: Xudts(ssn_address(9), ssn_address(8), b"x", 1,
                                       other_optional=((0, b""),)).to_bytes(),
    "TT on GTI 1": lambda: SccpAddress(True, None, None, GTI_NAI, "1", translation_type=1),
    "NP on GTI 2": lambda: SccpAddress(True, None, None, GTI_TT, "12", numbering_plan=NP_ISDN_MOBILE),
    "nature on GTI 3": lambda: SccpAddress(True, None, None, GTI_TT_NP_ES, "1", nature=3),
    "BCD of letters": lambda: encode_bcd("12a"),
    "remaining 16": lambda: Segmentation(True, True, 16, 0).to_bytes(),
    "local reference 25 bits": lambda: Segmentation(True, True, 0, 1 << 24).to_bytes(),
    "return cause 256": lambda: Udts(ssn_address(9), ssn_address(8), b"x", 256).to_bytes(),
    "address of 256": lambda: Udt(gt_address("1" * 500, 9), ssn_address(8), b"x").to_bytes(),
    "pointer past 255": lambda: Xudt(gt_address("1" * 400, 9), gt_address("2" * 100, 8), b"x" * 200,
                                     importance=1).to_bytes(),
}


@pytest.mark.parametrize("build", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_encoding_refuses(build: Any) -> None:
    with pytest.raises(SccpError):
        build()


def test_bcd_helpers() -> None:
    assert encode_bcd("12345") == bytes.fromhex("214305")
    assert encode_bcd("") == b""
    assert decode_bcd(bytes.fromhex("214305"), True) == "12345"
    assert decode_bcd(bytes.fromhex("2143f5"), True) == "12345"
    assert decode_bcd(bytes.fromhex("21f3"), True) == "123"
    assert decode_bcd(b"", False) == ""
    assert SccpAddress.from_bytes(bytes.fromhex("12 09 00 11 04 01")) == gt_address("1", SSN_EIR)
    assert gt_address("1", SSN_EIR).to_bytes() == bytes.fromhex("12 09 00 11 04 01")


# --- answers ---------------------------------------------------------------------------------


def test_answer_swaps_addresses() -> None:
    request = eir_request()
    reply = answer(request, b"\x64\x00")
    assert isinstance(reply, Udt)
    assert reply.called == request.calling and reply.calling == request.called
    assert reply.data == b"\x64\x00" and reply.protocol_class == 0 and not reply.return_on_error
    decoded = decode_message(reply.to_bytes())
    assert decoded == reply and decoded.called.ssn == SSN_MSC and decoded.calling.ssn == SSN_EIR


def test_answer_to_xudt_is_xudt_with_fresh_hop_counter() -> None:
    request = Xudt(gt_address(EIR_GT, SSN_EIR), gt_address(MSC_GT, SSN_MSC), TCAP_BEGIN, 1, True, 3, importance=5)
    reply = answer(request, b"\x64\x00", return_on_error=True)
    assert isinstance(reply, Xudt)
    assert (reply.called, reply.calling) == (request.calling, request.called)
    assert reply.hop_counter == 15 and reply.protocol_class == 1 and reply.return_on_error and reply.importance == 5
    assert decode_message(reply.to_bytes()) == reply


def test_undeliverable_returns_the_message() -> None:
    request = eir_request()
    returned = undeliverable(request, ReturnCause.SUBSYSTEM_FAILURE)
    assert isinstance(returned, Udts)
    assert returned == Udts(request.calling, request.called, request.data, ReturnCause.SUBSYSTEM_FAILURE)
    assert decode_message(returned.to_bytes()) == returned
    assert pycrate_bytes(returned) == returned.to_bytes()
    extended = undeliverable(Xudt(request.called, request.calling, b"x"), ReturnCause.NO_TRANSLATION_FOR_ADDRESS)
    assert isinstance(extended, Xudts) and extended.return_cause == 1 and extended.called == request.calling


# --- fuzzing: nothing but SccpError ----------------------------------------------------------


def exercise(wire: bytes) -> None:
    """Decode; a decoded message re-encodes (or refuses with SccpError, when its parts came
    in an order whose re-encoding needs a pointer past 255) and decodes to itself."""
    try:
        message = decode_message(wire)
    except SccpError as error:
        assert error.reason and (error.return_cause is None or isinstance(error.return_cause, ReturnCause))
        return
    repr(message)
    try:
        again = encode_message(message)
    except SccpError as error:
        assert "pointer" in error.reason
        return
    assert decode_message(again) == message


@pytest.mark.fuzz
@given(st.binary(max_size=300))
@example(b"\x09")
@example(bytes([XUDT, 0, 1, 4, 6, 8, 9]) + bytes.fromhex("024209024208010a00"))
def test_fuzz_random_octets(wire: bytes) -> None:
    exercise(wire)


@pytest.mark.fuzz
@given(st.sampled_from([UDT, 0x0A, XUDT, 0x12]), st.binary(max_size=300))
def test_fuzz_known_type_random_body(kind: int, body: bytes) -> None:
    exercise(bytes([kind]) + body)


@pytest.mark.fuzz
@given(st.sampled_from(SAMPLE_WIRES) | messages(unknown_options=True).map(encode_message), MUTATIONS)
def test_fuzz_mutated_valid_messages(wire: bytes, mutations: list[tuple[str, int, int]]) -> None:
    mutated = mutate(wire, mutations)
    note(mutated.hex())
    exercise(mutated)
