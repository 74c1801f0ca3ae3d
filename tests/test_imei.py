"""IMEI, IMEISV and subscriber identity parsing (TS 23.003 clause 6 and Annex B)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.imei import (
    IdentityError,
    Imei,
    ImeiError,
    imei15_key,
    imei_key,
    luhn_check_digit,
    parse_imei,
    parse_imeisv,
    parse_imsi,
    parse_msisdn,
    parse_svn,
    parse_tac,
)

SOME = settings(max_examples=max(100, settings().max_examples // 20))
keys14 = st.text(alphabet="0123456789", min_size=14, max_size=14)


def luhn_valid(number: str) -> bool:
    """The textbook Luhn test, written independently: from the right, double every second
    digit, subtract 9 from products above 9; the sum must be a multiple of 10."""
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


# -- valid forms -----------------------------------------------------------------------

def test_14_digits_is_the_key_without_check_digit() -> None:
    imei = parse_imei("35209900176148")
    assert imei == Imei("35209900176148", check_digit=None, svn=None)
    assert (imei.tac, imei.snr) == ("35209900", "176148")


@pytest.mark.parametrize("text, key, check", [
    ("352099001761481", "35209900176148", "1"),  # the example of TS 23.003 Annex B
    ("490154203237518", "49015420323751", "8"),
    ("356938035643809", "35693803564380", "9"),
])
def test_15_digits_with_a_matching_luhn_check_digit(text: str, key: str, check: str) -> None:
    imei = parse_imei(text)
    assert (imei.key, imei.check_digit, imei.svn) == (key, check, None)
    assert imei.imei15 == text


def test_16_digits_is_an_imeisv_whose_svn_is_split_off() -> None:
    imei = parse_imei("3520990017614823")
    assert (imei.key, imei.check_digit, imei.svn) == ("35209900176148", None, "23")
    assert parse_imeisv("3520990017614823") == imei


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_imei("  490154203237518\t\n").key == "49015420323751"


def test_luhn_check_digit_of_known_imeis() -> None:
    assert luhn_check_digit("35209900176148") == "1"
    assert luhn_check_digit("49015420323751") == "8"
    assert luhn_check_digit("35209900176149") == "9"


# -- all zeros -------------------------------------------------------------------------

def test_fourteen_zeros_parse_the_policy_decides_later() -> None:
    assert parse_imei("00000000000000").key == "00000000000000"


def test_fifteen_zeros_have_check_digit_zero() -> None:
    assert luhn_check_digit("00000000000000") == "0"
    assert parse_imei("000000000000000").check_digit == "0"
    with pytest.raises(ImeiError, match=r"^check digit 1 does not match 0 \(Luhn\)$"):
        parse_imei("000000000000001")


# -- precise errors --------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("", "IMEI is empty"),
    ("   ", "IMEI is empty"),
    ("4901542032375", "IMEI must be 14, 15 or 16 digits, got 13"),
    ("49015420323751811", "IMEI must be 14, 15 or 16 digits, got 17"),
    ("1", "IMEI must be 14, 15 or 16 digits, got 1"),
    ("4901A420323751", "IMEI has a non-digit 'A' at position 5"),
    ("49015420323751X", "IMEI has a non-digit 'X' at position 15"),
    ("4901542 0323751", "IMEI has a non-digit ' ' at position 8"),
    ("49015420-323751", "IMEI has a non-digit '-' at position 9"),
    ("+490154203237518", "IMEI has a non-digit '+' at position 1"),
    ("4901542032375١8", "IMEI has a non-digit '١' at position 14"),  # Arabic-Indic digit one
    ("490154203237519", "check digit 9 does not match 8 (Luhn)"),
    ("352099001761483", "check digit 3 does not match 1 (Luhn)"),
])
def test_invalid_imeis_say_precisely_why(text: str, message: str) -> None:
    with pytest.raises(ImeiError) as raised:
        parse_imei(text)
    assert str(raised.value) == message
    assert isinstance(raised.value, ValueError)


def test_imeisv_must_be_16_digits() -> None:
    with pytest.raises(ImeiError, match=r"^IMEISV must be 16 digits, got 15$"):
        parse_imeisv("490154203237518")


def test_luhn_needs_14_digits() -> None:
    with pytest.raises(ImeiError, match="14 digits"):
        luhn_check_digit("4901542032375")
    with pytest.raises(ImeiError):
        luhn_check_digit("4901542032375A")


def test_non_text_is_an_error_not_a_crash() -> None:
    with pytest.raises(ImeiError, match="must be text"):
        parse_imei(490154203237518)  # type: ignore[arg-type]


# -- properties ------------------------------------------------------------------------

@SOME
@given(keys14)
def test_a_computed_check_digit_always_validates(key: str) -> None:
    full = key + luhn_check_digit(key)
    assert luhn_valid(full)
    imei = parse_imei(full)
    assert (imei.key, imei.check_digit) == (key, full[14])


@SOME
@given(keys14, st.sampled_from("0123456789"))
def test_any_other_check_digit_fails(key: str, digit: str) -> None:
    right = luhn_check_digit(key)
    if digit == right:
        assert parse_imei(key + digit).key == key
    else:
        assert not luhn_valid(key + digit)
        with pytest.raises(ImeiError, match=rf"^check digit {digit} does not match {right} \(Luhn\)$"):
            parse_imei(key + digit)


@SOME
@given(keys14, st.integers(0, 13), st.integers(1, 9))
def test_a_single_wrong_digit_is_always_caught(key: str, position: int, delta: int) -> None:
    full = key + luhn_check_digit(key)
    changed = full[:position] + str((int(full[position]) + delta) % 10) + full[position + 1:]
    with pytest.raises(ImeiError, match="Luhn"):
        parse_imei(changed)


@SOME
@given(st.text(alphabet=st.sampled_from("0123456789 \t-+Aa١"), max_size=18))
def test_fast_key_paths_agree_with_parse_imei(text: str) -> None:
    try:
        expected: str | None = parse_imei(text).key
    except ImeiError:
        expected = None
    if expected is None:
        with pytest.raises(ImeiError):
            imei_key(text)
    else:
        assert imei_key(text) == expected
    fifteen = text if len(text) == 15 and text.isascii() and text.isdigit() else None
    assert imei15_key(text) == (expected if fifteen is not None else None)


@SOME
@given(st.text(max_size=20))
def test_any_text_parses_or_raises_imei_error(text: str) -> None:
    try:
        imei = parse_imei(text)
    except ImeiError as error:
        assert str(error)
    else:
        assert len(imei.key) == 14 and imei.key.isdigit()


# -- the other identities --------------------------------------------------------------

def test_imsi_is_6_to_15_digits() -> None:
    assert parse_imsi(" 437011234567890 ") == "437011234567890"
    assert parse_imsi("437011") == "437011"
    with pytest.raises(IdentityError, match=r"^IMSI must be 6 to 15 digits, got 16$"):
        parse_imsi("4370112345678901")
    with pytest.raises(IdentityError, match=r"^IMSI must be 6 to 15 digits, got 5$"):
        parse_imsi("43701")
    with pytest.raises(IdentityError, match=r"^IMSI has a non-digit 'x' at position 4$"):
        parse_imsi("437x1234567890")


def test_msisdn_is_digits_with_an_optional_plus_which_is_dropped() -> None:
    assert parse_msisdn("+992900123456") == "992900123456"
    assert parse_msisdn("992900123456") == "992900123456"
    with pytest.raises(IdentityError, match="non-digit '-'"):
        parse_msisdn("+992-900-123456")
    with pytest.raises(IdentityError, match=r"^MSISDN must be 5 to 15 digits"):
        parse_msisdn("+1234")
    with pytest.raises(IdentityError, match=r"^MSISDN is empty$"):
        parse_msisdn("+")


def test_tac_and_svn() -> None:
    assert parse_tac("35209900") == "35209900"
    assert parse_svn("07") == "07"
    with pytest.raises(IdentityError, match=r"^TAC must be 8 digits, got 7$"):
        parse_tac("3520990")
    with pytest.raises(ImeiError, match=r"^software version must be 2 digits, got 3$"):
        parse_svn("123")
