"""Capabilities exchange (RFC 6733 5.3): building CER/CEA, finding common applications,
and the checks of Process-CER and Process-CEA (RFC 6733 5.6) whose verdicts the peer state
machine (``diameter.peer``) acts on."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from diameter.answers import answer_to, result_code_of, select_problem
from diameter.avp import Avp
from diameter.constants import APP_COMMON, APP_RELAY, APP_S13, VENDOR_3GPP, Command, ResultCode
from diameter.errors import AvpProblem
from diameter.message import Message, make_message

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class LocalNode:
    """What this node says of itself in CER/CEA and every message it originates."""

    origin_host: str
    origin_realm: str
    host_ip_addresses: tuple[IpAddress, ...] = (ipaddress.IPv4Address("127.0.0.1"),)
    vendor_id: int = 0
    product_name: str = "eir"
    firmware_revision: int | None = None
    origin_state_id: int = 0
    auth_application_ids: tuple[int, ...] = (APP_S13,)
    vendor_specific_applications: tuple[tuple[int, int], ...] = ((VENDOR_3GPP, APP_S13),)
    supported_vendor_ids: tuple[int, ...] = (VENDOR_3GPP,)

    @property
    def applications(self) -> frozenset[int]:
        return frozenset(self.auth_application_ids) | {app for _, app in self.vendor_specific_applications}


@dataclass(frozen=True)
class PeerInfo:
    """What the remote peer said of itself in its CER or CEA."""

    origin_host: str
    origin_realm: str
    host_ip_addresses: tuple[IpAddress, ...] = ()
    vendor_id: int = 0
    product_name: str = ""
    origin_state_id: int | None = None
    applications: frozenset[int] = field(default_factory=frozenset)
    firmware_revision: int | None = None

    @property
    def is_relay(self) -> bool:
        return APP_RELAY in self.applications


def capability_avps(message: Message, node: LocalNode) -> None:
    """Append the capability AVPs shared by CER and CEA, in the order of their CCF."""
    for address in node.host_ip_addresses:
        message.add("Host-IP-Address", address)
    message.add("Vendor-Id", node.vendor_id).add("Product-Name", node.product_name)
    message.add("Origin-State-Id", node.origin_state_id)
    for vendor in node.supported_vendor_ids:
        message.add("Supported-Vendor-Id", vendor)
    for app in node.auth_application_ids:
        message.add("Auth-Application-Id", app)
    for vendor, app in node.vendor_specific_applications:
        message.avps.append(message.group("Vendor-Specific-Application-Id",
                                          ("Vendor-Id", vendor), ("Auth-Application-Id", app)))
    if node.firmware_revision is not None:
        message.add("Firmware-Revision", node.firmware_revision)


def build_cer(node: LocalNode) -> Message:
    cer = make_message(Command.CAPABILITIES_EXCHANGE, request=True, application_id=APP_COMMON)
    cer.add("Origin-Host", node.origin_host).add("Origin-Realm", node.origin_realm)
    capability_avps(cer, node)
    return cer


def peer_info(message: Message) -> PeerInfo:
    """Read a CER or CEA (already checked against its grammar)."""
    apps: set[int] = set()
    for name in ("Auth-Application-Id", "Acct-Application-Id"):
        apps.update(int(a.value) for a in message.find_all(name) if a.value is not None)
    for vsai in message.find_all("Vendor-Specific-Application-Id"):
        for member in vsai.value or ():
            if member.definition is not None and member.definition.name != "Vendor-Id" and member.value is not None:
                apps.add(int(member.value))
    return PeerInfo(
        origin_host=str(message.value("Origin-Host", "")),
        origin_realm=str(message.value("Origin-Realm", "")),
        host_ip_addresses=tuple(a.value for a in message.find_all("Host-IP-Address")
                                if isinstance(a.value, IpAddress)),
        vendor_id=int(message.value("Vendor-Id", 0)),
        product_name=str(message.value("Product-Name", "")),
        origin_state_id=message.value("Origin-State-Id"),
        applications=frozenset(apps),
        firmware_revision=message.value("Firmware-Revision"),
    )


def common_applications(node: LocalNode, peer: PeerInfo) -> frozenset[int]:
    """Applications both sides support; a relay (0xffffffff) supports them all (RFC 6733 2.4)."""
    if peer.is_relay:
        return node.applications
    return node.applications & peer.applications


def capability_avp_list(node: LocalNode) -> list[Avp]:
    """The capability AVPs alone, for an error CEA built by the generic error answer."""
    scratch = make_message(Command.CAPABILITIES_EXCHANGE, request=False, application_id=APP_COMMON)
    capability_avps(scratch, node)
    return scratch.avps


# Whether a peer may connect, from its CER and its transport address: True admits it, False
# or a sentence saying why refuses it (see ``diameter.peer.PeerSettings.accept_peer``).
AcceptPeer = Callable[[PeerInfo, Any], bool | str]


@dataclass(frozen=True)
class CerVerdict:
    """What Process-CER decided: who the peer is, the applications in common and, when the
    CER is refused, the problem the error CEA carries and what the log is told (``why``)."""

    peer: PeerInfo
    applications: frozenset[int]
    problem: AvpProblem | None = None
    why: str | None = None


def process_cer(node: LocalNode, cer: Message, accept: AcceptPeer | None, address: Any) -> CerVerdict:
    """Check a CER: its grammar, whether the peer is admitted (3010; the wire only hears
    "not allowed", the reason goes to ``why``), then an application in common (5010)."""
    problem = select_problem(cer.problems)
    info = peer_info(cer)
    why = None
    if problem is None and accept is not None:
        verdict = accept(info, address)
        if verdict is not True:
            problem = AvpProblem(ResultCode.DIAMETER_UNKNOWN_PEER, f"peer {info.origin_host} is not allowed")
            why = f"{problem.reason}: {verdict}" if isinstance(verdict, str) and verdict else None
    common = common_applications(node, info)
    if problem is None and not common:
        problem = AvpProblem(ResultCode.DIAMETER_NO_COMMON_APPLICATION, "no application in common")
    return CerVerdict(info, common, problem, why or (problem.reason if problem is not None else None))


def build_cea(node: LocalNode, cer: Message) -> Message:
    """The CEA accepting ``cer`` (R-Snd-CEA)."""
    cea = answer_to(cer, node.origin_host, node.origin_realm, ResultCode.DIAMETER_SUCCESS)
    capability_avps(cea, node)
    return cea


@dataclass(frozen=True)
class CeaVerdict:
    """What Process-CEA decided: the peer, the applications in common, the CEA's
    Result-Code and, when the exchange failed, why."""

    peer: PeerInfo
    applications: frozenset[int]
    result_code: int | None
    failure: str | None


def process_cea(node: LocalNode, cea: Message) -> CeaVerdict:
    """Check a CEA: success and an application in common, or the exchange failed."""
    code = result_code_of(cea)
    info = peer_info(cea)
    common = common_applications(node, info)
    failure = None
    if code != ResultCode.DIAMETER_SUCCESS or not common:
        reason = f"CEA {code}" if code != ResultCode.DIAMETER_SUCCESS else "no application in common"
        failure = f"capabilities exchange failed: {reason}"
    return CeaVerdict(info, common, code, failure)
