"""IMEI and IMEISV parsing and validation (3GPP TS 23.003 clause 6 and Annex B), and the
other subscriber identities the registry stores (IMSI, MSISDN, TAC). Pure functions: no I/O.

- 14 digits: TAC (8) + SNR (6), the registry key; networks often carry only these.
- 15 digits: TAC + SNR + the Luhn check digit, which must match.
- 16 digits: IMEISV = TAC + SNR + SVN (2-digit software version); it has no check digit.

Only surrounding whitespace is forgiven; anything else that is not one of these is an
``ImeiError`` whose text says precisely what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

DIGITS = "0123456789"
TAC_LENGTH = 8


class IdentityError(ValueError):
    """A subscriber or equipment identity that is not well formed; ``str(e)`` says why."""


class ImeiError(IdentityError):
    """Text that is not an IMEI (14 or 15 digits) or IMEISV (16 digits)."""


@dataclass(frozen=True, slots=True)
class Imei:
    key: str  # TAC + SNR, 14 digits: the registry key
    check_digit: str | None = None  # as received (15-digit form); verified
    svn: str | None = None  # software version number (16-digit IMEISV form)

    @property
    def tac(self) -> str:
        """Type Allocation Code: make and model (8 digits)."""
        return tac_of(self.key)

    @property
    def snr(self) -> str:
        """Serial number (6 digits)."""
        return self.key[8:]

    @property
    def imei15(self) -> str:
        """The full 15-digit IMEI, with its computed check digit."""
        return self.key + luhn_check_digit(self.key)

    def __str__(self) -> str:
        return self.key


def tac_of(key: str) -> str:
    """The Type Allocation Code of a registry key (or of any IMEI as digits): its first 8 digits."""
    return key[:TAC_LENGTH]


# Luhn over digit pairs: the first digit of a pair counts as is, the second is doubled
# (digits of the product summed). The key is read as 4+4+4+2 digits, one table look-up each.
_PAIR_SUM = {f"{x}{y}": x + (2 * y if y < 5 else 2 * y - 9) for x in range(10) for y in range(10)}
_QUAD_SUM = {a + b: _PAIR_SUM[a] + _PAIR_SUM[b] for a in _PAIR_SUM for b in _PAIR_SUM}


def luhn_check_digit(key14: str) -> str:
    """The Luhn check digit of a 14-digit TAC+SNR (TS 23.003 Annex B)."""
    if len(key14) != 14 or not _is_digits(key14):
        raise ImeiError(f"the Luhn check digit is computed over 14 digits, got {key14!r}")
    return _luhn(key14)


def _luhn(key14: str, quad: dict[str, int] = _QUAD_SUM, pair: dict[str, int] = _PAIR_SUM) -> str:
    total = quad[key14[0:4]] + quad[key14[4:8]] + quad[key14[8:12]] + pair[key14[12:14]]
    return DIGITS[-total % 10]


def parse_imei(text: str) -> Imei:
    """Parse an IMEI (14 or 15 digits) or an IMEISV (16 digits); the check digit of a
    15-digit IMEI is verified. Surrounding whitespace is ignored, nothing else is."""
    digits = _digits("IMEI", text)
    n = len(digits)
    if n == 14:
        return Imei(digits)
    if n == 15:
        key, given = digits[:14], digits[14]
        expected = luhn_check_digit(key)
        if given != expected:
            raise ImeiError(f"check digit {given} does not match {expected} (Luhn)")
        return Imei(key, check_digit=given)
    if n == 16:
        return Imei(digits[:14], svn=digits[14:])
    raise ImeiError(f"IMEI must be 14, 15 or 16 digits, got {n}")


def imei_key(text: str) -> str:
    """The registry key (TAC+SNR) of an IMEI or IMEISV: ``parse_imei(text).key``, with a
    fast path for the common 14 and 15-digit forms (bulk imports call it per row)."""
    n = len(text)
    if n == 15 and text.isdigit() and text.isascii():
        key = text[:14]
        if _luhn(key) == text[14]:
            return key
    elif n == 14 and text.isdigit() and text.isascii():
        return text
    return parse_imei(text).key


def imei15_key(text: str) -> str | None:
    """The key of ``text`` if it is exactly 15 ASCII digits with the right check digit,
    else None (then ``parse_imei`` says why, or accepts another form)."""
    if len(text) == 15 and text.isdigit() and text.isascii():
        key = text[:14]
        if _luhn(key) == text[14]:
            return key
    return None


def parse_imeisv(text: str) -> Imei:
    """Parse an IMEISV: exactly 16 digits, TAC + SNR + SVN."""
    digits = _digits("IMEISV", text)
    if len(digits) != 16:
        raise ImeiError(f"IMEISV must be 16 digits, got {len(digits)}")
    return Imei(digits[:14], svn=digits[14:])


def parse_svn(text: str) -> str:
    """A Software Version Number: 2 digits."""
    digits = _digits("software version", text)
    if len(digits) != 2:
        raise ImeiError(f"software version must be 2 digits, got {len(digits)}")
    return digits


def parse_tac(text: str) -> str:
    """A Type Allocation Code: 8 digits."""
    digits = _digits("TAC", text, error=IdentityError)
    if len(digits) != 8:
        raise IdentityError(f"TAC must be 8 digits, got {len(digits)}")
    return digits


def parse_imsi(text: str) -> str:
    """An IMSI: MCC (3) + MNC (2 or 3) + MSIN, 6 to 15 digits in all (TS 23.003 2.2)."""
    digits = _digits("IMSI", text, error=IdentityError)
    if not 6 <= len(digits) <= 15:
        raise IdentityError(f"IMSI must be 6 to 15 digits, got {len(digits)}")
    return digits


def parse_msisdn(text: str) -> str:
    """An MSISDN in international (E.164) form: 5 to 15 digits, an optional leading '+'.
    The '+' is dropped: MSISDNs are stored as the digits Diameter and MAP carry."""
    stripped = text.strip()
    digits = _digits("MSISDN", stripped[1:] if stripped.startswith("+") else stripped, error=IdentityError)
    if not 5 <= len(digits) <= 15:
        raise IdentityError(f"MSISDN must be 5 to 15 digits (an optional leading +), got {len(digits)}")
    return digits


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _digits(what: str, text: str, error: type[IdentityError] = ImeiError) -> str:
    """``text`` without surrounding whitespace, if it is ASCII digits only."""
    if not isinstance(text, str):
        raise error(f"{what} must be text, got {type(text).__name__}")
    stripped = text.strip()
    if _is_digits(stripped):
        return stripped
    if not stripped:
        raise error(f"{what} is empty")
    for position, char in enumerate(stripped, start=1):
        if char not in DIGITS:
            raise error(f"{what} has a non-digit {char!r} at position {position}")
    raise AssertionError("unreachable")  # pragma: no cover
