"""Sample Diameter messages for tests: S13 ECR/ECA and the base CER/CEA, DWR/DWA, DPR/DPA.

Each builder returns a fresh ``Message`` built with the production codec; keyword
arguments change one field at a time, ``None`` leaves an optional AVP out. ``raw_avp`` and
``raw_message`` build octets by hand, for input the codec itself would refuse to make.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterable, Sequence

from diameter.avp import Avp
from diameter.constants import (
    APP_COMMON,
    APP_S13,
    AVP_FLAG_M,
    AVP_FLAG_V,
    FLAG_P,
    FLAG_R,
    VENDOR_3GPP,
    AuthSessionState,
    Command,
    DisconnectCause,
    EquipmentStatus,
    ResultCode,
)
from diameter.message import Message, make_message

MME_HOST = "mme01.epc.mnc001.mcc001.3gppnetwork.org"
MME_REALM = "epc.mnc001.mcc001.3gppnetwork.org"
EIR_HOST = "eir01.epc.mnc001.mcc001.3gppnetwork.org"
EIR_REALM = "epc.mnc001.mcc001.3gppnetwork.org"
IMEI = "35209900176148"
SOFTWARE_VERSION = "01"
IMSI = "001010123456789"
SESSION_ID = f"{MME_HOST};1096298391;1"
HOP_BY_HOP = 0x1A2B3C4D
END_TO_END = 0x5E6F7081
PRODUCT_NAME = "eir-test"
PRODUCT_VENDOR = 32473  # RFC 5612: the enterprise number kept for documentation
MME_ADDRESS = "192.0.2.10"
EIR_ADDRESS = "192.0.2.20"
ORIGIN_STATE_ID = 1700000000
FIRMWARE_REVISION = 100


def s13_application() -> Avp:
    """Vendor-Specific-Application-Id {Vendor-Id 10415, Auth-Application-Id S13}."""
    probe = make_message(0, request=True, application_id=APP_COMMON)
    return probe.group("Vendor-Specific-Application-Id", ("Vendor-Id", VENDOR_3GPP), ("Auth-Application-Id", APP_S13))


def proxy_info(host: str, state: bytes) -> Avp:
    probe = make_message(0, request=True, application_id=APP_COMMON)
    return probe.group("Proxy-Info", ("Proxy-Host", host), ("Proxy-State", state))


def ecr(imei: str | None = IMEI, sv: str | None = SOFTWARE_VERSION, imsi: str | None = IMSI, *,
        session_id: str = SESSION_ID, origin_host: str = MME_HOST, origin_realm: str = MME_REALM,
        destination_realm: str = EIR_REALM, destination_host: str | None = None,
        vendor_specific: bool = True, proxy_infos: Sequence[Avp] = (), route_records: Sequence[str] = (),
        hop_by_hop: int = HOP_BY_HOP, end_to_end: int = END_TO_END) -> Message:
    """ME-Identity-Check-Request (TS 29.272 7.2.9) in the order of its CCF."""
    message = make_message(Command.ME_IDENTITY_CHECK, request=True, proxiable=True, application_id=APP_S13,
                           hop_by_hop=hop_by_hop, end_to_end=end_to_end)
    message.add("Session-Id", session_id)
    if vendor_specific:
        message.avps.append(s13_application())
    message.add("Auth-Session-State", AuthSessionState.NO_STATE_MAINTAINED)
    message.add("Origin-Host", origin_host).add("Origin-Realm", origin_realm)
    if destination_host is not None:
        message.add("Destination-Host", destination_host)
    message.add("Destination-Realm", destination_realm)
    members: list[tuple[str, object]] = []
    if imei is not None:
        members.append(("IMEI", imei))
    if sv is not None:
        members.append(("Software-Version", sv))
    message.avps.append(message.group("Terminal-Information", *members))
    if imsi is not None:
        message.add("User-Name", imsi)
    message.avps.extend(proxy_infos)
    for host in route_records:
        message.add("Route-Record", host)
    return message


def eca(status: int | None = EquipmentStatus.WHITELISTED, *, result_code: int | None = ResultCode.DIAMETER_SUCCESS,
        experimental: int | None = None, session_id: str = SESSION_ID, origin_host: str = EIR_HOST,
        origin_realm: str = EIR_REALM, vendor_specific: bool = True, proxy_infos: Sequence[Avp] = (),
        hop_by_hop: int = HOP_BY_HOP, end_to_end: int = END_TO_END) -> Message:
    """ME-Identity-Check-Answer (TS 29.272 7.2.10).

    ``experimental`` puts Experimental-Result {Vendor-Id 10415, that code} and leaves
    Result-Code out, as an unknown equipment answer does (``eca(None, experimental=5422)``).
    """
    message = make_message(Command.ME_IDENTITY_CHECK, request=False, proxiable=True, application_id=APP_S13,
                           hop_by_hop=hop_by_hop, end_to_end=end_to_end)
    message.add("Session-Id", session_id)
    if vendor_specific:
        message.avps.append(s13_application())
    if experimental is not None:
        message.avps.append(message.group("Experimental-Result", ("Vendor-Id", VENDOR_3GPP),
                                          ("Experimental-Result-Code", experimental)))
    elif result_code is not None:
        message.add("Result-Code", result_code)
    message.add("Auth-Session-State", AuthSessionState.NO_STATE_MAINTAINED)
    message.add("Origin-Host", origin_host).add("Origin-Realm", origin_realm)
    if status is not None:
        message.add("Equipment-Status", status)
    message.avps.extend(proxy_infos)
    return message


def _capabilities(message: Message, addresses: Iterable[str], vendor_id: int, product_name: str,
                  origin_state_id: int | None, firmware_revision: int | None) -> Message:
    """The CER/CEA body after Origin-Realm (RFC 6733 5.3.1, 5.3.2), advertising S13."""
    for address in addresses:
        message.add("Host-IP-Address", ipaddress.ip_address(address))
    message.add("Vendor-Id", vendor_id).add("Product-Name", product_name)
    if origin_state_id is not None:
        message.add("Origin-State-Id", origin_state_id)
    message.add("Supported-Vendor-Id", VENDOR_3GPP)
    message.add("Auth-Application-Id", APP_S13)
    message.avps.append(s13_application())
    if firmware_revision is not None:
        message.add("Firmware-Revision", firmware_revision)
    return message


def cer(origin_host: str = MME_HOST, origin_realm: str = MME_REALM, *, addresses: Iterable[str] = (MME_ADDRESS,),
        vendor_id: int = PRODUCT_VENDOR, product_name: str = PRODUCT_NAME,
        origin_state_id: int | None = ORIGIN_STATE_ID, firmware_revision: int | None = FIRMWARE_REVISION,
        hop_by_hop: int = HOP_BY_HOP, end_to_end: int = END_TO_END) -> Message:
    message = make_message(Command.CAPABILITIES_EXCHANGE, request=True, application_id=APP_COMMON,
                           hop_by_hop=hop_by_hop, end_to_end=end_to_end)
    message.add("Origin-Host", origin_host).add("Origin-Realm", origin_realm)
    return _capabilities(message, addresses, vendor_id, product_name, origin_state_id, firmware_revision)


def cea(result_code: int = ResultCode.DIAMETER_SUCCESS, *, origin_host: str = EIR_HOST,
        origin_realm: str = EIR_REALM, addresses: Iterable[str] = (EIR_ADDRESS,),
        vendor_id: int = PRODUCT_VENDOR, product_name: str = PRODUCT_NAME,
        origin_state_id: int | None = ORIGIN_STATE_ID, firmware_revision: int | None = FIRMWARE_REVISION,
        hop_by_hop: int = HOP_BY_HOP, end_to_end: int = END_TO_END) -> Message:
    message = make_message(Command.CAPABILITIES_EXCHANGE, request=False, application_id=APP_COMMON,
                           hop_by_hop=hop_by_hop, end_to_end=end_to_end)
    message.add("Result-Code", result_code)
    message.add("Origin-Host", origin_host).add("Origin-Realm", origin_realm)
    return _capabilities(message, addresses, vendor_id, product_name, origin_state_id, firmware_revision)


def dwr(origin_host: str = MME_HOST, origin_realm: str = MME_REALM, *,
        origin_state_id: int | None = ORIGIN_STATE_ID, hop_by_hop: int = HOP_BY_HOP,
        end_to_end: int = END_TO_END) -> Message:
    message = make_message(Command.DEVICE_WATCHDOG, request=True, application_id=APP_COMMON,
                           hop_by_hop=hop_by_hop, end_to_end=end_to_end)
    message.add("Origin-Host", origin_host).add("Origin-Realm", origin_realm)
    if origin_state_id is not None:
        message.add("Origin-State-Id", origin_state_id)
    return message


def dwa(result_code: int = ResultCode.DIAMETER_SUCCESS, *, origin_host: str = EIR_HOST,
        origin_realm: str = EIR_REALM, origin_state_id: int | None = ORIGIN_STATE_ID,
        hop_by_hop: int = HOP_BY_HOP, end_to_end: int = END_TO_END) -> Message:
    message = make_message(Command.DEVICE_WATCHDOG, request=False, application_id=APP_COMMON,
                           hop_by_hop=hop_by_hop, end_to_end=end_to_end)
    message.add("Result-Code", result_code)
    message.add("Origin-Host", origin_host).add("Origin-Realm", origin_realm)
    if origin_state_id is not None:
        message.add("Origin-State-Id", origin_state_id)
    return message


def dpr(cause: int = DisconnectCause.REBOOTING, *, origin_host: str = MME_HOST, origin_realm: str = MME_REALM,
        hop_by_hop: int = HOP_BY_HOP, end_to_end: int = END_TO_END) -> Message:
    message = make_message(Command.DISCONNECT_PEER, request=True, application_id=APP_COMMON,
                           hop_by_hop=hop_by_hop, end_to_end=end_to_end)
    message.add("Origin-Host", origin_host).add("Origin-Realm", origin_realm)
    return message.add("Disconnect-Cause", cause)


def dpa(result_code: int = ResultCode.DIAMETER_SUCCESS, *, origin_host: str = EIR_HOST,
        origin_realm: str = EIR_REALM, hop_by_hop: int = HOP_BY_HOP, end_to_end: int = END_TO_END) -> Message:
    message = make_message(Command.DISCONNECT_PEER, request=False, application_id=APP_COMMON,
                           hop_by_hop=hop_by_hop, end_to_end=end_to_end)
    message.add("Result-Code", result_code)
    return message.add("Origin-Host", origin_host).add("Origin-Realm", origin_realm)


def eca_unknown() -> Message:
    """The answer for unknown equipment: Experimental-Result 5422, no Result-Code, no status."""
    return eca(None, experimental=ResultCode.DIAMETER_ERROR_EQUIPMENT_UNKNOWN)


def ecr_with_proxies() -> Message:
    """An ECR as a relay forwards it: Proxy-Info twice and a Route-Record."""
    return ecr(destination_host=EIR_HOST,
               proxy_infos=(proxy_info("dra1.example.org", b"\x01\x02"), proxy_info("dra2.example.org", b"st")),
               route_records=("dra1.example.org",))


SAMPLES: dict[str, Callable[[], Message]] = {
    "ECR": ecr,
    "ECR-proxied": ecr_with_proxies,
    "ECA": eca,
    "ECA-unknown": eca_unknown,
    "CER": cer,
    "CEA": cea,
    "DWR": dwr,
    "DWA": dwa,
    "DPR": dpr,
    "DPA": dpa,
}
"""Every sample by name: a fresh message on each call."""

REQUESTS = tuple(name for name, build in SAMPLES.items() if build().is_request)


def sample_bytes(name: str) -> bytes:
    return SAMPLES[name]().to_bytes()


# --- hand-made octets --------------------------------------------------------------------

def raw_avp(code: int, data: bytes, *, flags: int = AVP_FLAG_M, vendor: int | None = None,
            length: int | None = None, pad: bool = True) -> bytes:
    """An AVP as octets. ``vendor`` sets the V bit and Vendor-Id; ``length`` overrides the
    length field (the data written stays ``data``); ``pad=False`` leaves padding out."""
    if vendor is not None:
        flags |= AVP_FLAG_V
        header = struct.pack(">III", code, (flags << 24) | (length if length is not None else 12 + len(data)), vendor)
    else:
        header = struct.pack(">II", code, (flags << 24) | (length if length is not None else 8 + len(data)))
    padding = b"\0" * (-len(data) % 4) if pad else b""
    return header + data + padding


def raw_3gpp(code: int, data: bytes, *, flags: int = AVP_FLAG_M, length: int | None = None) -> bytes:
    return raw_avp(code, data, flags=flags, vendor=VENDOR_3GPP, length=length)


def raw_message(command: int, body: bytes, *, flags: int = FLAG_R, application_id: int = APP_COMMON,
                hop_by_hop: int = HOP_BY_HOP, end_to_end: int = END_TO_END, length: int | None = None,
                version: int = 1) -> bytes:
    """A message as octets: header (length field = 20 + len(body) unless given) and body."""
    size = length if length is not None else 20 + len(body)
    header = struct.pack(">IIIII", (version << 24) | size, (flags << 24) | command, application_id,
                         hop_by_hop, end_to_end)
    return header + body


def raw_ecr(body: bytes, *, flags: int = FLAG_R | FLAG_P) -> bytes:
    return raw_message(Command.ME_IDENTITY_CHECK, body, flags=flags, application_id=APP_S13)


def avp_bytes(message: Message) -> list[bytes]:
    """The encoded top-level AVPs of a message, one item each, in wire order."""
    return [avp.to_bytes() for avp in message.avps]
