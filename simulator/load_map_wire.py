"""The MAP load generator's wire work, kept off its hot path: the CheckIMEI requests
pre-encoded once per IMEI, and the light reading of answers (M3UA DATA -> Protocol Data ->
SCCP data part -> TCAP dtid, and a memo of what the rest says) with the full decoders
behind it for anything unusual."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from sigtran import map as mapv
from sigtran import tcap
from sigtran.m3ua import M3uaError
from sigtran.m3ua import decode_message as decode_m3ua
from sigtran.sccp import SccpError, Udts, Xudts
from sigtran.sccp import decode_message as decode_sccp
from simulator.load_wire import MAX_IMEIS, changed_runs, imsi_at
from simulator.msc import MscIdentity, check_version, describe, encode_request, map_imei

Outcome = tuple[str, int | None]  # (result, EquipmentStatus): ("result", 0), ("unknownEquipment", None)...
RETURNED: Outcome = ("returned", None)  # the request came back in a UDTS/XUDTS
UNDECODABLE: Outcome = ("undecodable", None)
UNEXPECTED: Outcome = ("unexpected", None)  # DATA that is not SCCP

_TLV = struct.Struct(">HH")
_U32 = struct.Struct(">I")
_TAG_ROUTING_CONTEXT = 0x0006
_TAG_PROTOCOL_DATA = 0x0210
_SI_SCCP = 3
_UDT, _XUDT = 0x09, 0x11
_DTID, _TID_LENGTH = 0x49, 4
_ZERO_OTID = bytes(4)


# --- pre-encoded requests ------------------------------------------------------------------

class MapTemplates:
    """One pre-encoded M3UA DATA per IMEI, shared by every connection of the run.

    ``simulator.msc.encode_request`` encodes one request per count of IMEI digits with
    different digits, otids and SLS, to find where the IMEI, the vendor IMSI, the otid and
    the SLS sit; each IMEI's request is that encoding with its own TBCD digits and an SLS
    from its position. Sending a request is copying it and writing the otid at
    ``otid_at[index]``, nothing else: the TBCD digits never change a length."""

    def __init__(self, identity: MscIdentity, imeis: Sequence[str], version: int, imsi_prefix: str | None) -> None:
        if imsi_prefix is not None and not (imsi_prefix.isascii() and imsi_prefix.isdigit()
                                            and 3 <= len(imsi_prefix) < 15):
            raise ValueError(f"an IMSI prefix is 3 to 14 digits (MCC MNC ...), not {imsi_prefix!r}")
        check_version(version, None if imsi_prefix is None else imsi_at(imsi_prefix, 0))
        if len(imeis) > MAX_IMEIS:
            raise ValueError(f"{len(imeis)} IMEIs: at most {MAX_IMEIS} (one pre-encoded request each)")
        self.identity = identity
        self.version = version
        self.imsi_prefix = imsi_prefix
        # routing label: OPC DPC SI NI MP SLS, after the header, the Routing Context and the Protocol Data tag
        self.sls_at = 8 + (8 if identity.routing_context is not None else 0) + 4 + 11
        self.requests: list[bytes] = []
        self.otid_at: list[int] = []
        shapes: dict[int, tuple[bytes, slice, slice | None, int]] = {}
        for index, imei in enumerate(imeis):
            try:
                sent = map_imei(imei)
            except ValueError as exc:
                raise ValueError(f"IMEI number {index + 1} of the list: {exc}") from None
            shape = shapes.get(len(sent))
            if shape is None:
                shape = shapes[len(sent)] = self._shape(len(sent))
            template, imei_at, imsi_slot, otid_at = shape
            request = bytearray(template)
            request[imei_at] = mapv.encode_tbcd(sent)
            if imsi_slot is not None and imsi_prefix is not None:
                request[imsi_slot] = mapv.encode_tbcd(imsi_at(imsi_prefix, index))
            request[self.sls_at] = self.sls(index)
            self.requests.append(bytes(request))
            self.otid_at.append(otid_at)

    @staticmethod
    def sls(index: int) -> int:
        """The SLS of the IMEI at ``index``: the dialogues spread over the 16 ITU link selections."""
        return index & 0x0F

    def _encode(self, digit: str, length: int, otid: bytes = _ZERO_OTID, sls: int = 0) -> bytes:
        imsi = None if self.imsi_prefix is None else digit * 15
        return encode_request(self.identity, otid, digit * length, self.version, imsi, sls)

    def _shape(self, length: int) -> tuple[bytes, slice, slice | None, int]:
        one = self._encode("1", length)
        runs = changed_runs(one, self._encode("2", length))
        widths = [(length + 1) // 2] + ([8] if self.imsi_prefix is not None else [])
        otid_runs = changed_runs(one, self._encode("1", length, b"\xff" * 4))
        sls_runs = changed_runs(one, self._encode("1", length, sls=15))
        if [end - start for start, end in runs] != widths or [end - start for start, end in otid_runs] != [4] \
                or sls_runs != [(self.sls_at, self.sls_at + 1)]:
            raise ValueError(f"cannot locate the variable fields of a CheckIMEI with a {length}-digit IMEI")
        imsi_slot = slice(*runs[1]) if len(runs) > 1 else None
        return one, slice(*runs[0]), imsi_slot, otid_runs[0][0]

    def request(self, index: int, otid: int) -> bytes:
        """The request for IMEI ``index`` with this otid (the hot path inlines the same steps)."""
        out = bytearray(self.requests[index])
        _U32.pack_into(out, self.otid_at[index], otid)
        return bytes(out)


# --- reading answers -----------------------------------------------------------------------

def result_key(message: tcap.TcMessage, version: int) -> Outcome:
    """How the load report counts one TCAP answer (the same reading as ``eir sim checkimei``)."""
    return describe(message, peer="", imei="", imei_sent="", version=version).result_key()


class AnswerReader:
    """(dtid as an int, outcome) of one M3UA frame, read lightly when it has the usual
    shape: DATA [Routing Context] Protocol Data (SI 3), a UDT or XUDT, a TCAP message with a
    short length and a 4-octet dtid first. The octets after the dtid decide the outcome, so
    a memo keyed by them (one per TCAP message type) answers after the first full decode.
    Everything else goes through the full decoders (``read_fully``)."""

    def __init__(self, version: int, limit: int = 4096) -> None:
        self.version = version
        self.limit = limit
        self.memos: dict[int, dict[bytes, Outcome]] = {}

    def read(self, data: bytes, start: int, end: int) -> tuple[int | None, Outcome]:
        try:
            position = start + 8
            tag, length = _TLV.unpack_from(data, position)
            if tag == _TAG_ROUTING_CONTEXT:
                position += (length + 3) & ~3
                tag, length = _TLV.unpack_from(data, position)
            sccp = position + 16
            if tag == _TAG_PROTOCOL_DATA and data[position + 12] == _SI_SCCP and position + length <= end:
                kind = data[sccp]
                pointer = sccp + 4 if kind == _UDT else sccp + 5 if kind == _XUDT else 0
                if pointer:
                    at = pointer + data[pointer]  # the data part's length octet
                    size = data[at]
                    begin, finish = at + 1, at + 1 + size
                    if finish <= position + length and data[begin + 1] == size - 2 \
                            and data[begin + 2] == _DTID and data[begin + 3] == _TID_LENGTH:
                        return _U32.unpack_from(data, begin + 4)[0], self._outcome(data, begin, finish)
        except (IndexError, struct.error):
            pass
        return self.read_fully(bytes(data[start:end]))

    def _outcome(self, data: bytes, begin: int, finish: int) -> Outcome:
        memo = self.memos.get(data[begin])
        if memo is None:
            memo = self.memos[data[begin]] = {}
        key = data[begin + 8:finish]
        outcome = memo.get(key)
        if outcome is None:
            outcome = self._classify(bytes(data[begin:finish]))
            if len(memo) < self.limit:
                memo[key] = outcome
        return outcome

    def _classify(self, octets: bytes) -> Outcome:
        try:
            return result_key(tcap.decode(octets), self.version)
        except tcap.TcapError:
            return UNDECODABLE

    def read_fully(self, frame: bytes) -> tuple[int | None, Outcome]:
        """The same reading through the full M3UA, SCCP and TCAP decoders."""
        try:
            data = decode_m3ua(frame).protocol_data
            if data is None or data.si != _SI_SCCP:
                return None, UNEXPECTED
            sccp = decode_sccp(data.user_data)
        except (M3uaError, SccpError):
            return None, UNDECODABLE
        try:
            message = tcap.decode(sccp.data)
        except tcap.TcapError:
            return None, RETURNED if isinstance(sccp, Udts | Xudts) else UNDECODABLE
        if isinstance(sccp, Udts | Xudts):  # our Begin came back: its otid is our key
            return _tid(message.otid), RETURNED
        return _tid(message.dtid), result_key(message, self.version)


def _tid(value: bytes | None) -> int | None:
    return int.from_bytes(value, "big") if value is not None and len(value) == _TID_LENGTH else None
