"""Shared TCAP test values: CheckIMEI components and dialogues of MAP v1 to v3 built by our
codecs (sigtran/tcap.py, sigtran/map.py)."""

from __future__ import annotations

from sigtran import ber
from sigtran import map as mapv
from sigtran.map import CHECK_IMEI, CheckImeiArgument, EquipmentStatus
from sigtran.tcap import DialogueRequest, DialogueResponse, Invoke, PAbortCause, ReturnResult

OTID, DTID = bytes.fromhex("00000001"), bytes.fromhex("0a0b0c")
IMEI = "352099001761480"
VERSIONS = (1, 2, 3)
BADLY, INCORRECT = PAbortCause.BADLY_FORMATTED_TRANSACTION_PORTION, PAbortCause.INCORRECT_TRANSACTION_PORTION


def request(version: int) -> DialogueRequest | None:
    return DialogueRequest(mapv.equipment_context(version)) if version > 1 else None


def response(version: int) -> DialogueResponse | None:
    return DialogueResponse(mapv.equipment_context(version)) if version > 1 else None


def check_imei(version: int, invoke_id: int = 1, imei: str = IMEI) -> Invoke:
    return Invoke(invoke_id, CHECK_IMEI, mapv.encode_check_imei(version, CheckImeiArgument(imei)))


def result(version: int, status: EquipmentStatus, invoke_id: int = 1) -> ReturnResult:
    return ReturnResult(invoke_id, CHECK_IMEI, mapv.encode_check_imei_result(version, status))


def to_indefinite(data: bytes) -> bytes:
    """The same elements with every constructed one in the indefinite form."""
    out = b""
    for element in ber.iterate(data, 0, len(data)):
        if element.tag.constructed:
            out += element.tag.encode() + b"\x80" + to_indefinite(element.contents) + b"\x00\x00"
        else:
            out += ber.tlv(element.tag, element.contents)
    return out
