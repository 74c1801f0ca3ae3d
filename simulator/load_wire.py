"""The load generator's wire work, kept off its hot path: IMEI sources, the ECRs
pre-encoded once per IMEI, and the light reading of answers (frame length, Hop-by-Hop,
Result-Code, Experimental-Result-Code and Equipment-Status) without the codec."""

from __future__ import annotations

import csv
import itertools
import struct
from collections.abc import Iterator, Sequence

from diameter.capabilities import LocalNode
from diameter.constants import (
    FLAG_R,
    HEADER_LENGTH,
    VENDOR_3GPP,
    Command,
)
from registry.imei import luhn_check_digit
from simulator.mme import MmeIdentity, build_ecr

HEADER = struct.Struct(">IIIII")
IDS = struct.Struct(">II")
AVP_HEADER = struct.Struct(">II")
_U32 = struct.Struct(">I")
COUNTER_WIDTH = 12  # Session-Id suffix: connection number * 10**9 + request number
CONNECTION_SPAN = 10**9
MAX_CONNECTIONS = 999
MAX_IMEIS = 2_000_000  # each pre-encoded request holds about 280 bytes
IMSI_LENGTH = 15
DEFAULT_TAC = "35209900"
GENERATED_IMEIS = 10_000
HISTOGRAM_US = 100_000  # 1-microsecond buckets up to 100 ms; slower answers are kept exactly
MASK_32 = 0xFFFFFFFF
ECA = Command.ME_IDENTITY_CHECK
R_BIT = FLAG_R << 24
_V_BIT = 0x80000000
SESSION_ID = 263


# --- IMEIs -----------------------------------------------------------------------------

def generated_imeis(tac: str = DEFAULT_TAC, count: int = GENERATED_IMEIS) -> list[str]:
    """Valid 15-digit IMEIs: the TAC, serial numbers from 000000, and the Luhn digit."""
    if len(tac) != 8 or not tac.isdigit():
        raise ValueError(f"a TAC is 8 digits, not {tac!r}")
    return [body + luhn_check_digit(body) for body in (f"{tac}{n:06d}" for n in range(min(count, 1_000_000)))]


def read_imeis(path: str) -> list[str]:
    """One IMEI per line, or a CSV whose header names an ``imei`` column (only that is used).

    Values are kept as written (stripped): invalid IMEIs are sent as they are."""
    with open(path, newline="", encoding="utf-8") as handle:
        first = handle.readline()
        header = [c.strip().lower() for c in next(csv.reader([first]), [])]
        if "imei" in header:
            column = header.index("imei")
            rows: Iterator[str] = (row[column].strip() for row in csv.reader(handle) if len(row) > column)
        else:
            rows = (line.strip() for line in itertools.chain([first], handle))
        imeis = [value for value in rows if value and not value.startswith("#")]
    if not imeis:
        raise ValueError(f"{path}: no IMEI found")
    return imeis


# --- pre-encoded requests ------------------------------------------------------------------

def changed_runs(a: bytes, b: bytes) -> list[tuple[int, int]]:
    """The [start, end) runs where two encodings of the same shape differ."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y and start is None:
            start = i
        elif x == y and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(a)))
    return runs


def imsi_at(prefix: str, index: int) -> str:
    """The User-Name of the request for the IMEI at ``index`` of the load's list: the
    prefix, then the index (modulo what fits) padded to 15 digits."""
    width = IMSI_LENGTH - len(prefix)
    return f"{prefix}{index % 10 ** width:0{width}d}"


class EcrTemplates:
    """One pre-encoded ECR per IMEI, shared by every connection of the run.

    The codec encodes one request per IMEI length twice, with different digits in the
    variable fields, to find where the Session-Id counter, the IMEI and the IMSI sit;
    each IMEI's request is then that encoding with its own digits. Sending a request is
    copying it and patching the ids and the Session-Id counter, nothing else."""

    def __init__(self, identity: MmeIdentity, imeis: Sequence[str], session_prefix: str,
                 imsi_prefix: str | None, software_version: str | None) -> None:
        if imsi_prefix is not None and not (imsi_prefix.isdigit() and 3 <= len(imsi_prefix) < IMSI_LENGTH):
            raise ValueError(f"an IMSI prefix is 3 to 14 digits (MCC MNC ...), not {imsi_prefix!r}")
        if len(imeis) > MAX_IMEIS:
            raise ValueError(f"{len(imeis)} IMEIs: at most {MAX_IMEIS} (one pre-encoded request each)")
        self.imsi_width = IMSI_LENGTH - len(imsi_prefix) if imsi_prefix is not None else 0
        node = identity.node()
        # Session-Id, the first AVP, is "<Origin-Host>;<session_prefix><counter>"
        self.counter_at = HEADER_LENGTH + 8 + len(f"{node.origin_host};{session_prefix}".encode())
        self.requests: list[bytes] = []
        shapes: dict[int, tuple[bytes, list[tuple[int, int]]]] = {}
        for index, imei in enumerate(imeis):
            digits = imei.encode()
            shape = shapes.get(len(digits))
            if shape is None:
                shape = shapes[len(digits)] = self._shape(node, len(digits), session_prefix, imsi_prefix,
                                                          software_version, identity.destination_realm)
            template, runs = shape
            request = bytearray(template)
            request[runs[1][0]:runs[1][1]] = digits
            if imsi_prefix is not None:
                request[runs[2][0]:runs[2][1]] = imsi_at(imsi_prefix, index)[len(imsi_prefix):].encode()
            self.requests.append(bytes(request))

    def _shape(self, node: LocalNode, length: int, session_prefix: str, imsi_prefix: str | None,
               sv: str | None, destination_realm: str) -> tuple[bytes, list[tuple[int, int]]]:
        def encode(digit: str) -> bytes:
            imsi = None if imsi_prefix is None else imsi_prefix + digit * self.imsi_width
            return build_ecr(node, digit * length, imsi, software_version=sv, destination_realm=destination_realm,
                             session=session_prefix + digit * COUNTER_WIDTH).to_bytes()
        one, two = encode("1"), encode("2")
        runs = changed_runs(one, two)
        widths = [COUNTER_WIDTH, length] + ([self.imsi_width] if imsi_prefix is not None else [])
        if [end - start for start, end in runs] != widths or runs[0][0] != self.counter_at:
            raise ValueError(f"cannot locate the variable fields of an ECR with a {length}-character IMEI")
        return one, runs

    def request(self, index: int, counter: int, hop_by_hop: int, end_to_end: int) -> bytes:
        """The ECR for IMEI ``index`` with these ids (the hot path inlines the same steps)."""
        out = bytearray(self.requests[index])
        IDS.pack_into(out, 12, hop_by_hop, end_to_end)
        out[self.counter_at:self.counter_at + COUNTER_WIDTH] = b"%012d" % counter
        return bytes(out)


# --- light answer parsing ------------------------------------------------------------------

def scan_answer(data: bytes, start: int, end: int) -> tuple[int | None, int | None]:
    """(result code, Equipment-Status) from the top-level AVP headers of data[start:end].

    The result code is Result-Code, or the Experimental-Result-Code inside Experimental-Result."""
    code = status = None
    unpack = AVP_HEADER.unpack_from
    while start + 12 <= end:
        avp_code, flags_length = unpack(data, start)
        length = flags_length & 0xFFFFFF
        if length < 8 or start + length > end:
            break
        if avp_code == 268 and length == 12:
            code = _U32.unpack_from(data, start + 8)[0]
        elif avp_code == 1445 and flags_length & _V_BIT and length == 16:
            if _U32.unpack_from(data, start + 8)[0] == VENDOR_3GPP:
                status = _U32.unpack_from(data, start + 12)[0]
        elif avp_code == 297 and code is None:
            code = _experimental_code(data, start + 8, start + length)
        start += (length + 3) & ~3
    return code, status


class AnswerScanner:
    """``scan_answer`` behind a memo keyed by the answer's octets after its Session-Id.

    An EIR's answers differ from one another only in ids and Session-Id, so a few distinct
    bodies cover a whole run; the same octets always give the same reading."""

    def __init__(self, limit: int = 4096) -> None:
        self.memo: dict[bytes, tuple[int | None, int | None]] = {}
        self.limit = limit

    def __call__(self, data: bytes, start: int, end: int) -> tuple[int | None, int | None]:
        code, flags_length = AVP_HEADER.unpack_from(data, start)
        skip = ((flags_length & 0xFFFFFF) + 3) & ~3
        if code != SESSION_ID or skip < 8 or start + skip > end:
            return scan_answer(data, start, end)
        key = data[start + skip:end]
        outcome = self.memo.get(key)
        if outcome is None:
            outcome = scan_answer(data, start, end)
            if len(self.memo) < self.limit:
                self.memo[key] = outcome
        return outcome


def _experimental_code(data: bytes, start: int, end: int) -> int | None:
    while start + 12 <= end:
        avp_code, flags_length = AVP_HEADER.unpack_from(data, start)
        length = flags_length & 0xFFFFFF
        if length < 8:
            return None
        if avp_code == 298 and length == 12:
            return int(_U32.unpack_from(data, start + 8)[0])
        start += (length + 3) & ~3
    return None


# --- results -------------------------------------------------------------------------------
