"""MAP CheckIMEI (sigtran/map.py): TBCD, application contexts, the argument of each version
(the vendor variant with the IMSI included) and the result, byte for byte against pycrate's
MAP types (pycrate_asn1dir.TCAP_MAPv2v3) built from the same values; every MapError problem;
indefinite lengths, prefixes and trailing octets; and fuzzing (marked ``fuzz``: the
profile's count, 10,000 in CI).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from pycrate_asn1dir import TCAP_MAPv2v3

from sigtran.map import (
    CHECK_IMEI,
    EQUIPMENT_MANAGEMENT_CONTEXT,
    CheckImeiArgument,
    EquipmentStatus,
    ErrorCode,
    MapError,
    Problem,
    context_version,
    decode_check_imei,
    decode_check_imei_result,
    decode_tbcd,
    encode_check_imei,
    encode_check_imei_result,
    encode_tbcd,
    equipment_context,
)
from tests.fuzzing import MUTATIONS, mutate
from tests.tcap_samples import to_indefinite
from tests.test_tcap import STATUS_NAMES

PROPERTY = settings(max_examples=max(100, settings.default.max_examples // 20))
IMEI, IMEI_TBCD = "352099001761480", bytes.fromhex("53029900711684f0")  # TS 29.002 / PROTOCOLS.md example
IMEISV = "3520990017614823"
IMSI_ODD, IMSI_EVEN = "250991234567890", "25099123456789"
IMEI_ELEMENT = b"\x04\x08" + IMEI_TBCD
MISSING, MISTYPED, UNEXPECTED = Problem.MISSING, Problem.MISTYPED, Problem.UNEXPECTED
V1_V2 = (1, 2)


def pycrate(kind: Any, value: Any) -> bytes:
    kind.set_val(value)
    return bytes(kind.to_ber())


def pc_imei(tbcd: bytes) -> bytes:
    return pycrate(TCAP_MAPv2v3.MAPv2_CommonDataTypes.IMEI, tbcd)


def pc_arg_v3(tbcd: bytes, bits: int, **more: Any) -> bytes:
    return pycrate(TCAP_MAPv2v3.MAP_MS_DataTypes.CheckIMEI_Arg,
                   {"imei": tbcd, "requestedEquipmentInfo": (bits, 2), **more})


def pc_result(version: int, value: Any) -> bytes:
    if version < 3:
        return pycrate(TCAP_MAPv2v3.MAPv2_MS_DataTypes.EquipmentStatus, value)
    return pycrate(TCAP_MAPv2v3.MAP_MS_DataTypes.CheckIMEI_Res, value)


def hexes(*parts: str) -> bytes:
    return bytes.fromhex("".join(parts))


# --- constants, contexts ---------------------------------------------------------------


def test_codes() -> None:
    assert CHECK_IMEI == 43
    assert {e.name: e.value for e in ErrorCode} == {"UNKNOWN_EQUIPMENT": 7, "SYSTEM_FAILURE": 34, "DATA_MISSING": 35,
                                                    "UNEXPECTED_DATA_VALUE": 36}
    assert [s.value for s in EquipmentStatus] == [0, 1, 2]


def test_application_contexts() -> None:
    for version in (1, 2, 3):
        assert equipment_context(version) == f"0.4.0.0.1.0.13.{version}"
        assert context_version(equipment_context(version)) == version
    for other in ("0.4.0.0.1.0.13.4", EQUIPMENT_MANAGEMENT_CONTEXT, "0.4.0.0.1.0.13.3.1", "0.4.0.0.1.0.14.3", ""):
        assert context_version(other) is None
    for version in (0, 4, -1):
        with pytest.raises(ValueError):
            equipment_context(version)
        with pytest.raises(ValueError):
            decode_check_imei(version, IMEI_ELEMENT)


# --- TBCD ------------------------------------------------------------------------------

TBCD = [
    (IMEI, "53029900711684f0"),  # TAC 35209900, SNR 176148, spare digit 0, filler
    (IMEISV, "5302990071168432"),
    (IMSI_ODD, "52901932547698f0"),
    ("", ""),
    ("1", "f1"),
    ("12345", "2143f5"),
    ("0000", "0000"),
]


@pytest.mark.parametrize(("digits", "octets"), TBCD)
def test_tbcd_examples(digits: str, octets: str) -> None:
    assert encode_tbcd(digits) == bytes.fromhex(octets)
    assert decode_tbcd(bytes.fromhex(octets)) == digits


@pytest.mark.parametrize("octets", ["1a", "a1", "0f", "ff", "f121", "2143ff", "21e3", "f0f0"])
def test_tbcd_nibbles_that_are_not_decimal_digits(octets: str) -> None:
    """*, #, a, b, c (A-E) never; the filler F only as the very last nibble."""
    with pytest.raises(MapError) as raised:
        decode_tbcd(bytes.fromhex(octets))
    assert raised.value.problem is UNEXPECTED


@pytest.mark.parametrize("digits", ["12a", "١٢", " 1", "1-2", "*"])
def test_tbcd_encodes_decimal_digits_only(digits: str) -> None:
    with pytest.raises(MapError):
        encode_tbcd(digits)


@PROPERTY
@given(st.text("0123456789", max_size=40))
def test_tbcd_round_trips(digits: str) -> None:
    octets = encode_tbcd(digits)
    assert decode_tbcd(octets) == digits and len(octets) == (len(digits) + 1) // 2


def test_tbcd_prefixes_and_trailing_octets() -> None:
    """A prefix of TBCD octets is TBCD (fewer digits); octets after the filler are refused."""
    for end in range(len(IMEI_TBCD)):
        assert decode_tbcd(IMEI_TBCD[:end]) == IMEI[:2 * end]
    with pytest.raises(MapError) as raised:
        decode_tbcd(IMEI_TBCD + b"\x00")
    assert raised.value.problem is UNEXPECTED


# --- the argument, against pycrate -----------------------------------------------------------


@pytest.mark.parametrize("version", V1_V2)
@pytest.mark.parametrize("imei", [IMEI, IMEISV])
def test_v1_v2_argument_is_the_bare_imei(version: int, imei: str) -> None:
    argument = CheckImeiArgument(imei)
    wire = encode_check_imei(version, argument)
    assert wire == pc_imei(encode_tbcd(imei)) == b"\x04\x08" + encode_tbcd(imei)
    assert decode_check_imei(version, wire) == argument


@pytest.mark.parametrize(("status", "bmuef"), itertools.product((True, False), repeat=2))
@pytest.mark.parametrize("imei", [IMEI, IMEISV])
def test_v3_argument_matches_pycrate(imei: str, status: bool, bmuef: bool) -> None:
    argument = CheckImeiArgument(imei, None, status, bmuef)
    wire = encode_check_imei(3, argument)
    assert wire == pc_arg_v3(encode_tbcd(imei), status << 1 | bmuef)
    assert decode_check_imei(3, wire) == argument


def test_v3_extension_container_and_additions_are_skipped() -> None:
    extension = {"extensionContainer": {"privateExtensionList": [{"extId": (1, 2, 3)}]}}
    wire = pc_arg_v3(IMEI_TBCD, 0b10, **extension)
    assert wire.endswith(bytes.fromhex("3008a006300406022a03"))
    assert decode_check_imei(3, wire) == CheckImeiArgument(IMEI)
    with_additions = hexes("3016", "040853029900711684f0", "03020640", "8101ff", "a003800100")
    assert decode_check_imei(3, with_additions) == CheckImeiArgument(IMEI, None, False, True)


@pytest.mark.parametrize(("bits", "status", "bmuef"), [
    ("030207c0", True, False),  # one bit only: SIZE (2..8) is not enforced on receipt, bmuef reads 0
    ("03020780", True, False),
    ("030100", False, False),  # no bits at all
    ("030300ffff", True, True),  # 16 bits: those past bmuef are discarded
    ("030206ff", True, True),  # unused bits set: ignored
])
def test_v3_requested_equipment_info_variants(bits: str, status: bool, bmuef: bool) -> None:
    wire = hexes("30", f"{10 + len(bits) // 2:02x}", "040853029900711684f0", bits)
    assert decode_check_imei(3, wire) == CheckImeiArgument(IMEI, None, status, bmuef)


@pytest.mark.parametrize("version", V1_V2)
@pytest.mark.parametrize("imsi", [IMSI_ODD, IMSI_EVEN, "250991"])
def test_vendor_variant_carries_the_imsi_after_the_imei(version: int, imsi: str) -> None:
    argument = CheckImeiArgument(IMEI, imsi)
    wire = encode_check_imei(version, argument)
    assert wire == IMEI_ELEMENT + b"\x04" + bytes([len(encode_tbcd(imsi))]) + encode_tbcd(imsi)
    assert decode_check_imei(version, wire) == argument
    if len(imsi) % 2:
        assert wire[-1] >> 4 == 0xF  # an odd IMSI ends in the filler


def test_vendor_variant_wire_example() -> None:
    wire = hexes("040853029900711684f0", "0408", "52909921436587f9")
    assert decode_check_imei(1, wire) == CheckImeiArgument(IMEI, "250999123456789")


# --- every MapError problem --------------------------------------------------------------------

ARGUMENT_ERRORS = {
    "v1 empty": (1, "", MISSING),
    "v2 empty": (2, "", MISSING),
    "v3 empty": (3, "", MISSING),
    "v3 empty SEQUENCE": (3, "3000", MISSING),
    "v3 without imei": (3, "3004 03020680", MISSING),
    "v3 without requestedEquipmentInfo": (3, "300a 040853029900711684f0", MISSING),
    "v3 extension instead of bits": (3, "300c 040853029900711684f0 3000", MISSING),
    "not BER": (1, "04", MISTYPED),
    "IMEI length past end": (1, "040853029900711684", MISTYPED),
    "IMEI of 7 octets": (2, "040753029900711684", MISTYPED),
    "IMEI of 9 octets": (2, "040953029900711684f000", MISTYPED),
    "constructed IMEI": (1, "240a 040853029900711684f0", MISTYPED),
    "IMEI as ENUMERATED": (1, "0a0100", MISTYPED),
    "three elements": (2, "040853029900711684f0 0403214365 0500", MISTYPED),
    "IMSI of tag 0x80": (1, "040853029900711684f0 8003214365", MISTYPED),
    "IMSI of 2 octets": (1, "040853029900711684f0 04022143", MISTYPED),
    "IMSI of 9 octets": (1, "040853029900711684f0 0409214365870921436587", MISTYPED),
    "trailing octet": (1, "040853029900711684f0 00", MISTYPED),
    "v3 bare IMEI": (3, "040853029900711684f0", MISTYPED),
    "v3 two SEQUENCEs": (3, "3000 3000", MISTYPED),
    "v3 trailing octet": (3, "300e040853029900711684f003020680 00", MISTYPED),
    "v3 imei of tag 0x80": (3, "300e 800853029900711684f0 03020680", MISTYPED),
    "v3 IMEI of 7 octets": (3, "300d 040753029900711684 03020680", MISTYPED),
    "v3 constructed bits": (3, "3010 040853029900711684f0 2304 03020680", MISTYPED),
    "v3 bits empty": (3, "300c 040853029900711684f0 0300", MISTYPED),
    "v3 bits unused 8": (3, "300e 040853029900711684f0 03020880", MISTYPED),
    "v3 bits unused without bits": (3, "300d 040853029900711684f0 030105", MISTYPED),
    "v3 inner not BER": (3, "3003 040853", MISTYPED),
    "IMEI hex digit": (1, "04085302990071168af0", UNEXPECTED),
    "IMEI filler in the middle": (2, "0408f3029900711684f0", UNEXPECTED),
    "IMEI low filler": (1, "040853029900711684ff", UNEXPECTED),
    "v3 IMEI hex digit": (3, "300e 04085302990071168af0 03020680", UNEXPECTED),
    "IMSI hex digit": (1, "040853029900711684f0 04032143a5", UNEXPECTED),
    "IMSI of 5 digits": (2, "040853029900711684f0 04032143f5", UNEXPECTED),
    "IMSI of 16 digits": (2, "040853029900711684f0 04082143658709214365", UNEXPECTED),
}


@pytest.mark.parametrize(("version", "parameter", "problem"), ARGUMENT_ERRORS.values(), ids=ARGUMENT_ERRORS.keys())
def test_argument_errors(version: int, parameter: str, problem: Problem) -> None:
    with pytest.raises(MapError) as raised:
        decode_check_imei(version, hexes(parameter.replace(" ", "")))
    assert raised.value.problem is problem and raised.value.reason == str(raised.value)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(("version", "argument"), [
    (1, CheckImeiArgument("35209900176148")),  # 14 digits do not fill 8 octets
    (2, CheckImeiArgument("35209900176148012")),
    (3, CheckImeiArgument(IMEI, IMSI_ODD)),  # the IMSI is the v1/v2 vendor variant only
    (2, CheckImeiArgument(IMEI, "12345")),
    (1, CheckImeiArgument("35209900176148x")),
])
def test_encoding_refuses(version: int, argument: CheckImeiArgument) -> None:
    with pytest.raises(ValueError):
        encode_check_imei(version, argument)


# --- the result ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", EquipmentStatus)
@pytest.mark.parametrize("version", (1, 2, 3))
def test_result_matches_pycrate(version: int, status: EquipmentStatus) -> None:
    name = STATUS_NAMES[status]
    wire = encode_check_imei_result(version, status)
    assert wire == pc_result(version, name if version < 3 else {"equipmentStatus": name})
    assert wire == (bytes([0x0A, 1, status]) if version < 3 else bytes([0x30, 3, 0x0A, 1, status]))
    assert decode_check_imei_result(version, wire) is status


def test_v3_result_without_status_or_with_more() -> None:
    assert decode_check_imei_result(3, pc_result(3, {})) is None
    with_bmuef = pc_result(3, {"equipmentStatus": "blackListed", "bmuef": {"uesbi-IuA": (1, 1)}})
    assert decode_check_imei_result(3, with_bmuef) is EquipmentStatus.BLACK_LISTED
    assert decode_check_imei_result(3, pc_result(3, {"bmuef": {"uesbi-IuA": (1, 1)}})) is None
    assert decode_check_imei_result(3, hexes("3008", "0a0102", "a0008101ff")) is EquipmentStatus.GREY_LISTED


RESULT_ERRORS = {
    "v1 empty": (1, "", MISSING),
    "v3 empty": (3, "", MISSING),
    "unknown status": (2, "0a0103", UNEXPECTED),
    "v3 unknown status": (3, "30030a0105", UNEXPECTED),
    "not minimal": (1, "0a020001", MISTYPED),
    "empty ENUMERATED": (1, "0a00", MISTYPED),
    "INTEGER": (2, "020100", MISTYPED),
    "truncated": (1, "0a01", MISTYPED),
    "two elements": (2, "0a01000a0100", MISTYPED),
    "trailing octet": (1, "0a010000", MISTYPED),
    "v3 bare status": (3, "0a0100", MISTYPED),
    "v3 inner truncated": (3, "30020a01", MISTYPED),
    "v3 trailing": (3, "30030a010000", MISTYPED),
}


@pytest.mark.parametrize(("version", "result", "problem"), RESULT_ERRORS.values(), ids=RESULT_ERRORS.keys())
def test_result_errors(version: int, result: str, problem: Problem) -> None:
    with pytest.raises(MapError) as raised:
        decode_check_imei_result(version, hexes(result))
    assert raised.value.problem is problem


# --- indefinite lengths, prefixes, trailing octets ---------------------------------------------

ARGUMENTS = [
    (1, IMEI_ELEMENT),
    (2, encode_check_imei(2, CheckImeiArgument(IMEISV, IMSI_ODD))),
    (3, encode_check_imei(3, CheckImeiArgument(IMEI, None, True, True))),
    (3, pc_arg_v3(IMEI_TBCD, 0b10, extensionContainer={"privateExtensionList": [{"extId": (1, 2, 3)}]})),
]
RESULTS = [(version, encode_check_imei_result(version, EquipmentStatus.GREY_LISTED)) for version in (1, 2, 3)]


@pytest.mark.parametrize(("version", "wire"), ARGUMENTS + RESULTS)
def test_indefinite_lengths_read_alike(version: int, wire: bytes) -> None:
    indefinite = to_indefinite(wire)
    if version < 3:
        assert indefinite == wire  # nothing constructed
    elif (version, wire) in RESULTS:
        assert decode_check_imei_result(3, indefinite) == decode_check_imei_result(3, wire)
    else:
        assert indefinite != wire and decode_check_imei(3, indefinite) == decode_check_imei(3, wire)


@pytest.mark.parametrize(("version", "wire"), ARGUMENTS + [(3, to_indefinite(w)) for v, w in ARGUMENTS if v == 3])
def test_every_prefix_of_an_argument(version: int, wire: bytes) -> None:
    """Each prefix is a MapError, MISSING only when empty, except a vendor argument cut right
    after its IMEI, which is the plain argument (the IMSI is optional)."""
    full = decode_check_imei(version, wire)
    for end in range(len(wire)):
        if end == len(IMEI_ELEMENT) and version < 3:
            assert decode_check_imei(version, wire[:end]) == CheckImeiArgument(full.imei)
            continue
        with pytest.raises(MapError) as raised:
            decode_check_imei(version, wire[:end])
        assert (raised.value.problem is MISSING) == (end == 0)


@pytest.mark.parametrize(("version", "wire"), [*RESULTS, (3, to_indefinite(RESULTS[2][1]))])
def test_every_prefix_of_a_result(version: int, wire: bytes) -> None:
    for end in range(len(wire)):
        with pytest.raises(MapError) as raised:
            decode_check_imei_result(version, wire[:end])
        assert (raised.value.problem is MISSING) == (end == 0)


@pytest.mark.parametrize(("version", "wire"), ARGUMENTS + RESULTS)
@pytest.mark.parametrize("tail", [b"\x00", b"\x00\x00", b"\x05\x00", b"\x04\x09" + bytes(9)])
def test_trailing_octets_are_refused(version: int, wire: bytes, tail: bytes) -> None:
    decode = decode_check_imei_result if (version, wire) in RESULTS else decode_check_imei
    with pytest.raises(MapError) as raised:
        decode(version, wire + tail)
    assert raised.value.problem is MISTYPED


# --- fuzzing: nothing but MapError ---------------------------------------------------------------


def exercise(version: int, data: bytes) -> None:
    """Every decoder; a decoded argument re-encodes to octets that decode to it again."""
    try:
        argument = decode_check_imei(version, data)
    except MapError as error:
        assert isinstance(error.problem, Problem) and error.reason
    else:
        assert len(argument.imei) in (15, 16)
        assert decode_check_imei(version, encode_check_imei(version, argument)) == argument
    try:
        status = decode_check_imei_result(version, data)
    except MapError as error:
        assert isinstance(error.problem, Problem)
    else:
        assert status is None or decode_check_imei_result(version, encode_check_imei_result(version, status)) is status
    try:
        digits = decode_tbcd(data)
    except MapError as error:
        assert error.problem is UNEXPECTED
    else:
        assert encode_tbcd(digits)[:len(data)] == data[:len(encode_tbcd(digits))]


@pytest.mark.fuzz
@given(st.sampled_from((1, 2, 3)), st.binary(max_size=60))
def test_fuzz_random_octets(version: int, data: bytes) -> None:
    exercise(version, data)


@pytest.mark.fuzz
@given(st.sampled_from([wire for _, wire in ARGUMENTS + RESULTS]), MUTATIONS)
def test_fuzz_mutated_valid_parameters(wire: bytes, mutations: list[tuple[str, int, int]]) -> None:
    mutated = mutate(wire, mutations)
    note(mutated.hex())
    for each in (1, 2, 3):
        exercise(each, mutated)
