"""Our encoder against pycrate, built independently from the same values through pycrate's
own API (pycrate_diameter.Diameter3GPP): the octets must be identical, and each side must
decode the other's octets to the same fields."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrate_diameter.Diameter3GPP import Diameter3GPP

from diameter.avp import Avp
from diameter.constants import APP_S13, VENDOR_3GPP
from diameter.dictionary import AvpType
from diameter.message import Message, decode_message
from tests import diameter_samples as s

PROPERTY = settings(max_examples=max(50, settings.default.max_examples // 20))

# --- pycrate side: messages from values ------------------------------------------------


def avp(code: int, data: Any, *, m: int = 1, vendor: int | None = None) -> dict[str, Any]:
    header: dict[str, Any] = {"Code": code, "M": m}
    if vendor is not None:
        header.update(V=1, VendorID=vendor)
    return {"AVPHdr": header, "AVPData": data}


def g3(code: int, data: Any) -> dict[str, Any]:
    return avp(code, data, vendor=VENDOR_3GPP)


def identity(name: str) -> bytes:
    return name.encode("ascii")  # pycrate keeps DiameterIdentity as a buffer


def address(text: str) -> dict[str, Any]:
    ip = ipaddress.ip_address(text)
    return {"AddressType": 1 if ip.version == 4 else 2, "Value": ip.packed}


def pycrate_message(command: int, avps: list[dict[str, Any]], *, request: bool, proxiable: bool,
                    app: int = 0, hbh: int = s.HOP_BY_HOP, e2e: int = s.END_TO_END) -> Diameter3GPP:
    message = Diameter3GPP()
    message.set_val({
        "DiameterHdr": {"Vers": 1, "R": int(request), "P": int(proxiable), "E": 0, "T": 0,
                        "Cmd": command, "AppID": app, "HHID": hbh, "EEID": e2e},
        "AVPs": avps,
    })
    return message


def s13_app() -> dict[str, Any]:
    return avp(260, [avp(266, VENDOR_3GPP), avp(258, APP_S13)])


def pc_ecr(imei: str = s.IMEI, sv: str = s.SOFTWARE_VERSION, imsi: str = s.IMSI, session: str = s.SESSION_ID,
           origin_host: str = s.MME_HOST, hbh: int = s.HOP_BY_HOP, e2e: int = s.END_TO_END) -> Diameter3GPP:
    return pycrate_message(324, [
        avp(263, session),
        s13_app(),
        avp(277, 1),
        avp(264, identity(origin_host)),
        avp(296, identity(s.MME_REALM)),
        avp(283, identity(s.EIR_REALM)),
        g3(1401, [g3(1402, imei), g3(1403, sv)]),
        avp(1, imsi),
    ], request=True, proxiable=True, app=APP_S13, hbh=hbh, e2e=e2e)


def pc_ecr_proxied() -> Diameter3GPP:
    def proxy(host: str, state: bytes) -> dict[str, Any]:
        return avp(284, [avp(280, identity(host)), avp(33, state)])
    return pycrate_message(324, [
        avp(263, s.SESSION_ID), s13_app(), avp(277, 1),
        avp(264, identity(s.MME_HOST)), avp(296, identity(s.MME_REALM)),
        avp(293, identity(s.EIR_HOST)), avp(283, identity(s.EIR_REALM)),
        g3(1401, [g3(1402, s.IMEI), g3(1403, s.SOFTWARE_VERSION)]),
        avp(1, s.IMSI),
        proxy("dra1.example.org", b"\x01\x02"), proxy("dra2.example.org", b"st"),
        avp(282, identity("dra1.example.org")),
    ], request=True, proxiable=True, app=APP_S13)


def pc_eca(status: int = 0) -> Diameter3GPP:
    return pycrate_message(324, [
        avp(263, s.SESSION_ID), s13_app(), avp(268, 2001), avp(277, 1),
        avp(264, identity(s.EIR_HOST)), avp(296, identity(s.EIR_REALM)),
        g3(1445, status),
    ], request=False, proxiable=True, app=APP_S13)


def pc_eca_unknown() -> Diameter3GPP:
    return pycrate_message(324, [
        avp(263, s.SESSION_ID), s13_app(),
        avp(297, [avp(266, VENDOR_3GPP), avp(298, 5422)]),
        avp(277, 1), avp(264, identity(s.EIR_HOST)), avp(296, identity(s.EIR_REALM)),
    ], request=False, proxiable=True, app=APP_S13)


def _capabilities(host: str, ip: str) -> list[dict[str, Any]]:
    return [
        avp(264, identity(host)), avp(296, identity(s.MME_REALM if host == s.MME_HOST else s.EIR_REALM)),
        avp(257, address(ip)), avp(266, s.PRODUCT_VENDOR), avp(269, s.PRODUCT_NAME, m=0),
        avp(278, s.ORIGIN_STATE_ID), avp(265, VENDOR_3GPP), avp(258, APP_S13), s13_app(),
        avp(267, s.FIRMWARE_REVISION, m=0),
    ]


def pc_cer() -> Diameter3GPP:
    return pycrate_message(257, _capabilities(s.MME_HOST, s.MME_ADDRESS), request=True, proxiable=False)


def pc_cea() -> Diameter3GPP:
    return pycrate_message(257, [avp(268, 2001), *_capabilities(s.EIR_HOST, s.EIR_ADDRESS)],
                           request=False, proxiable=False)


def pc_dwr() -> Diameter3GPP:
    return pycrate_message(280, [avp(264, identity(s.MME_HOST)), avp(296, identity(s.MME_REALM)),
                                 avp(278, s.ORIGIN_STATE_ID)], request=True, proxiable=False)


def pc_dwa() -> Diameter3GPP:
    return pycrate_message(280, [avp(268, 2001), avp(264, identity(s.EIR_HOST)), avp(296, identity(s.EIR_REALM)),
                                 avp(278, s.ORIGIN_STATE_ID)], request=False, proxiable=False)


def pc_dpr() -> Diameter3GPP:
    return pycrate_message(282, [avp(264, identity(s.MME_HOST)), avp(296, identity(s.MME_REALM)),
                                 avp(273, 0)], request=True, proxiable=False)


def pc_dpa() -> Diameter3GPP:
    return pycrate_message(282, [avp(268, 2001), avp(264, identity(s.EIR_HOST)), avp(296, identity(s.EIR_REALM))],
                           request=False, proxiable=False)


PYCRATE: dict[str, Callable[[], Diameter3GPP]] = {
    "ECR": pc_ecr, "ECR-proxied": pc_ecr_proxied, "ECA": pc_eca, "ECA-unknown": pc_eca_unknown,
    "CER": pc_cer, "CEA": pc_cea, "DWR": pc_dwr, "DWA": pc_dwa, "DPR": pc_dpr, "DPA": pc_dpa,
}
NAMES = sorted(s.SAMPLES)


def test_every_sample_has_a_reference() -> None:
    assert set(PYCRATE) == set(s.SAMPLES)


# --- one shape for both sides' decoded fields --------------------------------------------


def pycrate_fields(message: Diameter3GPP) -> tuple[tuple[int, ...], list[Any]]:
    header = message["DiameterHdr"]
    fields = tuple(header[name].get_val() for name in ("Vers", "Len", "R", "P", "E", "T", "Cmd", "AppID",
                                                         "HHID", "EEID"))
    return fields, [_pycrate_avp(a) for a in message["AVPs"]]


def _pycrate_avp(element: Any) -> tuple[Any, ...]:
    header = element["AVPHdr"]
    vendor = header["VendorID"].get_val() if header["V"].get_val() else None
    data = element[1]
    if type(data).__name__ == "Grouped":
        value: Any = [_pycrate_avp(member) for member in data]
    else:
        value = data.get_val()
    return (header["Code"].get_val(), header["V"].get_val(), header["M"].get_val(), header["P"].get_val(),
            header["Len"].get_val(), vendor, value)


def our_fields(message: Message, wire: bytes) -> tuple[tuple[int, ...], list[Any]]:
    flags = message.flags
    fields = (1, len(wire), flags >> 7 & 1, flags >> 6 & 1, flags >> 5 & 1, flags >> 4 & 1,
              message.command_code, message.application_id, message.hop_by_hop, message.end_to_end)
    return fields, [_our_avp(a) for a in message.avps]


def _our_avp(a: Avp) -> tuple[Any, ...]:
    assert a.definition is not None, f"{a!r} is not in our dictionary"
    kind = a.definition.type
    value: Any = a.value
    if kind is AvpType.GROUPED:
        value = [_our_avp(member) for member in a.value]
    elif kind is AvpType.DIAMETER_IDENTITY:
        value = value.encode("ascii")
    elif kind is AvpType.ADDRESS:
        value = [1 if value.version == 4 else 2, value.packed]
    header = 12 if a.flags & 0x80 else 8
    return (a.code, a.flags >> 7 & 1, a.flags >> 6 & 1, a.flags >> 5 & 1, header + len(a.data),
            a.vendor_id if a.flags & 0x80 else None, value)


# --- the comparisons ---------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_octets_identical_with_pycrate(name: str) -> None:
    ours = s.sample_bytes(name)
    theirs = PYCRATE[name]().to_bytes()
    assert ours.hex() == theirs.hex()


@pytest.mark.parametrize("name", NAMES)
def test_pycrate_decodes_ours_to_the_same_fields(name: str) -> None:
    message = s.SAMPLES[name]()
    wire = message.to_bytes()
    parsed = Diameter3GPP()
    parsed.from_bytes(wire)
    assert pycrate_fields(parsed) == our_fields(message, wire)
    assert parsed.to_bytes() == wire


@pytest.mark.parametrize("name", NAMES)
def test_we_decode_pycrate_to_the_same_fields(name: str) -> None:
    reference = PYCRATE[name]()
    wire = reference.to_bytes()
    decoded = decode_message(wire)
    assert decoded.problems == []
    assert our_fields(decoded, wire) == pycrate_fields(reference)
    assert decoded.to_bytes() == wire


def test_eca_fields_read_back() -> None:
    """Values read through our API from pycrate's octets, named one by one."""
    success = decode_message(pc_eca(status=1).to_bytes())
    assert success.value("Result-Code") == 2001
    assert success.value("Equipment-Status") == 1
    assert success.find("Experimental-Result") is None
    unknown = decode_message(pc_eca_unknown().to_bytes())
    assert unknown.find("Result-Code") is None
    assert unknown.find("Equipment-Status") is None
    experimental = unknown.find("Experimental-Result")
    assert experimental is not None
    assert experimental.find("Vendor-Id").value == VENDOR_3GPP  # type: ignore[union-attr]
    assert experimental.find("Experimental-Result-Code").value == 5422  # type: ignore[union-attr]


def test_ecr_fields_read_back() -> None:
    ecr = decode_message(pc_ecr().to_bytes())
    assert ecr.is_request and ecr.is_proxiable
    assert ecr.value("Session-Id") == s.SESSION_ID
    terminal = ecr.find("Terminal-Information")
    assert terminal is not None
    assert terminal.find("IMEI").value == s.IMEI  # type: ignore[union-attr]
    assert terminal.find("Software-Version").value == s.SOFTWARE_VERSION  # type: ignore[union-attr]
    assert ecr.value("User-Name") == s.IMSI


digits = st.text(alphabet="0123456789", min_size=1, max_size=16)
hosts = st.from_regex(r"\A[a-z][a-z0-9-]{0,30}(\.[a-z0-9-]{1,20}){1,4}\Z")


@PROPERTY
@given(imei=digits, sv=st.text(alphabet="0123456789", min_size=0, max_size=3), imsi=digits,
       session=st.text(min_size=1, max_size=60), host=hosts,
       hbh=st.integers(0, 2**32 - 1), e2e=st.integers(0, 2**32 - 1))
def test_ecr_contents_identical_with_pycrate(imei: str, sv: str, imsi: str, session: str, host: str,
                                             hbh: int, e2e: int) -> None:
    ours = s.ecr(imei, sv, imsi, session_id=session, origin_host=host, hop_by_hop=hbh, end_to_end=e2e).to_bytes()
    assert ours == pc_ecr(imei, sv, imsi, session, host, hbh, e2e).to_bytes()


@PROPERTY
@given(status=st.sampled_from([0, 1, 2]))
def test_eca_status_identical_with_pycrate(status: int) -> None:
    assert s.eca(status).to_bytes() == pc_eca(status).to_bytes()
