"""One M3UA message of every supported class and type, each with the same content written
for pycrate_mobile.M3UA (its structured parameter classes), so tests can compare the two
encoders byte for byte.

pycrate's M3UA module has no structure for User/Cause (0x0204, it is left a raw buffer)
and makes Network Appearance a Uint8 where RFC 4666 3.3.1 has 32 bits: those two are given
to pycrate as raw octets.
"""

from __future__ import annotations

from typing import Any

from sigtran.m3ua import (
    Kind,
    Message,
    Parameter,
    StatusType,
    Tag,
    TrafficMode,
    build_aspac,
    build_data,
    build_notify,
    error_message,
    u32,
    u32_list,
)

SCCP_UDT = bytes.fromhex("09810305070a0412060011041122334455060702920900010a")  # a UDT-shaped payload
OPC, DPC = 0x00000102, 0x00000203


def _pd(opc: int, dpc: int, si: int, ni: int, mp: int, sls: int, data: bytes) -> dict[str, Any]:
    return {"OPC": opc, "DPC": dpc, "SI": si, "NI": ni, "MP": mp, "SLS": sls, "Data": data}


def _apc(*pcs: int) -> list[dict[str, int]]:
    return [{"Mask": 0, "PC": pc} for pc in pcs]


# name -> (our message, pycrate (tag, value) pairs)
SAMPLES: dict[str, tuple[Message, list[tuple[int, Any]]]] = {
    "ERR": (error_message(0x06, b"\x01\x00\x01\x01\x00\x00\x00\x08"),
            [(0x0C, 6), (0x07, b"\x01\x00\x01\x01\x00\x00\x00\x08")]),
    "ERR-RC": (error_message(0x19, parameters=[Parameter(Tag.ROUTING_CONTEXT, u32(9))]),
               [(0x0C, 0x19), (0x06, [9])]),
    "NTFY": (build_notify(StatusType.AS_STATE_CHANGE, 3, (7,)), [(0x0D, {"Type": 1, "Info": 3}), (0x06, [7])]),
    "NTFY-ASPID": (build_notify(StatusType.OTHER, 2, asp_identifier=44),
                   [(0x0D, {"Type": 2, "Info": 2}), (0x11, 44)]),
    "DATA": (build_data(OPC, DPC, 3, 2, 0, 5, SCCP_UDT, routing_context=7),
             [(0x06, [7]), (0x210, _pd(OPC, DPC, 3, 2, 0, 5, SCCP_UDT))]),
    "DATA-ALL": (build_data(OPC, DPC, 3, 0, 1, 15, b"abc", routing_context=1, network_appearance=8, correlation_id=99),
                 [(0x200, u32(8)), (0x06, [1]), (0x210, _pd(OPC, DPC, 3, 0, 1, 15, b"abc")), (0x13, 99)]),
    "DATA-BARE": (build_data(1, 2, 3, 0, 0, 0, b""), [(0x210, _pd(1, 2, 3, 0, 0, 0, b""))]),
    "DUNA": (Message(Kind.DUNA).add(Tag.ROUTING_CONTEXT, u32(3)).add(Tag.AFFECTED_POINT_CODE, u32_list((100, 200))),
             [(0x06, [3]), (0x12, _apc(100, 200))]),
    "DAVA": (Message(Kind.DAVA).add(Tag.AFFECTED_POINT_CODE, u32(100)).add(Tag.INFO_STRING, b"up"),
             [(0x12, _apc(100)), (0x04, "up")]),
    "DAUD": (Message(Kind.DAUD).add(Tag.AFFECTED_POINT_CODE, u32(0x203)), [(0x12, _apc(0x203))]),
    "SCON": (Message(Kind.SCON).add(Tag.AFFECTED_POINT_CODE, u32(100)).add(Tag.CONCERNED_DESTINATION, u32(5))
             .add(Tag.CONGESTION_INDICATIONS, u32(2)),
             [(0x12, _apc(100)), (0x206, 5), (0x205, 2)]),
    "DUPU": (Message(Kind.DUPU).add(Tag.AFFECTED_POINT_CODE, u32(100)).add(Tag.USER_CAUSE, bytes.fromhex("00020003")),
             [(0x12, _apc(100)), (0x204, bytes.fromhex("00020003"))]),
    "DRST": (Message(Kind.DRST).add(Tag.NETWORK_APPEARANCE, u32(1)).add(Tag.AFFECTED_POINT_CODE, u32(100)),
             [(0x200, u32(1)), (0x12, _apc(100))]),
    "ASPUP": (Message(Kind.ASPUP), []),
    "ASPUP-ID": (Message(Kind.ASPUP).add(Tag.ASP_IDENTIFIER, u32(5)).add(Tag.INFO_STRING, b"msc-1"),
                 [(0x11, 5), (0x04, "msc-1")]),
    "ASPDN": (Message(Kind.ASPDN), []),
    "BEAT": (Message(Kind.BEAT).add(Tag.HEARTBEAT_DATA, b"hello"), [(0x09, b"hello")]),
    "ASPUP-ACK": (Message(Kind.ASPUP_ACK), []),
    "ASPDN-ACK": (Message(Kind.ASPDN_ACK).add(Tag.INFO_STRING, b"bye"), [(0x04, "bye")]),
    "BEAT-ACK": (Message(Kind.BEAT_ACK).add(Tag.HEARTBEAT_DATA, b"\x00\x01\x02"), [(0x09, b"\x00\x01\x02")]),
    "ASPAC": (build_aspac(TrafficMode.LOADSHARE, (7, 8)), [(0x0B, 2), (0x06, [7, 8])]),
    "ASPIA": (Message(Kind.ASPIA).add(Tag.ROUTING_CONTEXT, u32(7)), [(0x06, [7])]),
    "ASPAC-ACK": (build_aspac(TrafficMode.OVERRIDE, (7,), Kind.ASPAC_ACK), [(0x0B, 1), (0x06, [7])]),
    "ASPIA-ACK": (Message(Kind.ASPIA_ACK), []),
}

NAMES = sorted(SAMPLES)


def sample_bytes(name: str) -> bytes:
    return SAMPLES[name][0].to_bytes()
