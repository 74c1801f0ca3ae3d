"""An MME emulator: one S13 ME-Identity-Check over our own Diameter transport.

It connects like an MME (CER/CEA), sends one ECR carrying the IMEI exactly as given
(14, 15 or 16 digits, or anything else: judging it is the EIR's job), describes the
answer, and disconnects with DPR. The load generator in ``simulator.load`` builds its
pre-encoded requests from the same ``build_ecr``.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from diameter.answers import result_code_of
from diameter.avp import Avp
from diameter.capabilities import LocalNode
from diameter.constants import APP_S13, VENDOR_3GPP, AuthSessionState, Command, EquipmentStatus, ResultCode
from diameter.message import Message, make_message
from diameter.transport import DIAMETER_PORT, CapabilitiesRefused, connect
from netio.sctp import SctpUnavailable

if TYPE_CHECKING:
    from netio.capture import Capture

DEFAULT_ORIGIN_HOST = "mme.localdomain"
DEFAULT_REALM = "localdomain"


class EcrFailed(Exception):
    """No answer came: connection refused, capabilities refused, lost or timed out."""

    def __init__(self, message: str, result_code: int | None = None) -> None:
        super().__init__(message)
        self.result_code = result_code


@dataclass(frozen=True)
class MmeIdentity:
    """Who the emulated MME says it is, and where it sends its requests."""

    origin_host: str = DEFAULT_ORIGIN_HOST
    origin_realm: str = DEFAULT_REALM
    destination_realm: str = DEFAULT_REALM

    def node(self) -> LocalNode:
        return LocalNode(self.origin_host, self.origin_realm, product_name="eir-sim-mme",
                         origin_state_id=int(time.time()))


@dataclass
class EcrOutcome:
    """The decoded ECA, as ``eir sim ecr`` prints it."""

    peer: str
    imei: str
    command: str
    result_code: int | None
    result_name: str
    experimental: bool
    error_bit: bool
    equipment_status: str | None
    error_message: str | None
    failed_avps: list[str] = field(default_factory=list)
    origin_host: str | None = None
    rtt_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        kind = "Experimental-Result-Code" if self.experimental else "Result-Code"
        code = "none" if self.result_code is None else str(self.result_code)
        lines = [f"{self.command} from {self.origin_host or '?'} ({self.peer}) in {self.rtt_ms:.2f} ms",
                 f"  {kind}: {code} {self.result_name}{' (E bit)' if self.error_bit else ''}"]
        if self.equipment_status is not None:
            lines.append(f"  Equipment-Status: {self.equipment_status}")
        if self.error_message:
            lines.append(f"  Error-Message: {self.error_message}")
        if self.failed_avps:
            lines.append(f"  Failed-AVP: {', '.join(self.failed_avps)}")
        return lines


def parse_peer(text: str, default_port: int = DIAMETER_PORT) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT, or HOST alone (``default_port``, 3868 unless told)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host:
        raise ValueError(f"no host in {text!r} (expected HOST:PORT)")
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad port in {text!r} (expected HOST:PORT)")
    return host, int(port)


def os_error_text(exc: OSError) -> str:
    """'Connection refused' rather than asyncio's "Connect call failed ('127.0.0.1', 9)"."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


def session_suffix() -> str:
    """"<high 32 bits>;<low 32 bits>" of a Session-Id (RFC 6733 8.8): the time and a random number."""
    return f"{int(time.time()) & 0xFFFFFFFF};{int.from_bytes(os.urandom(4), 'big')}"


def build_ecr(node: LocalNode, imei: str, imsi: str | None = None, *, software_version: str | None = None,
              session: str | None = None, destination_realm: str | None = None) -> Message:
    """ME-Identity-Check-Request (TS 29.272 7.2.9) from ``node``, AVPs in the order of its CCF.

    The IMEI is sent exactly as given; Session-Id is "<Origin-Host>;<session>" (default: a
    fresh "<time>;<random>"); Destination-Realm defaults to the node's own realm."""
    message = make_message(Command.ME_IDENTITY_CHECK, request=True, proxiable=True, application_id=APP_S13)
    message.add("Session-Id", f"{node.origin_host};{session if session is not None else session_suffix()}")
    message.avps.append(message.group("Vendor-Specific-Application-Id",
                                      ("Vendor-Id", VENDOR_3GPP), ("Auth-Application-Id", APP_S13)))
    message.add("Auth-Session-State", AuthSessionState.NO_STATE_MAINTAINED)
    message.add("Origin-Host", node.origin_host).add("Origin-Realm", node.origin_realm)
    message.add("Destination-Realm", destination_realm or node.origin_realm)
    members: list[tuple[str, Any]] = [("IMEI", imei)]
    if software_version is not None:
        members.append(("Software-Version", software_version))
    message.avps.append(message.group("Terminal-Information", *members))
    if imsi is not None:
        message.add("User-Name", imsi)
    return message


def code_name(code: int | None) -> str:
    if code is None:
        return "no result code"
    try:
        return ResultCode(code).name
    except ValueError:
        return "unknown code"


def status_name(value: int) -> str:
    try:
        return EquipmentStatus(value).name
    except ValueError:
        return f"UNKNOWN({value})"


def _avp_paths(avp: Avp, prefix: str = "") -> list[str]:
    """Names of the AVPs inside Failed-AVP, a Grouped one as Outer/Inner."""
    name = f"{prefix}{avp.name}"
    members = avp.value if isinstance(avp.value, list) else []
    if not members:
        return [name]
    return [path for member in members for path in _avp_paths(member, f"{name}/")]


def describe(answer: Message, peer: str, imei: str, rtt_ms: float) -> EcrOutcome:
    code = result_code_of(answer)
    failed = answer.find("Failed-AVP")
    failed_names = [p for member in (failed.value or []) for p in _avp_paths(member)] if failed is not None else []
    status = answer.value("Equipment-Status")
    message = answer.value("Error-Message")
    return EcrOutcome(
        peer=peer, imei=imei, command=answer.name, result_code=code, result_name=code_name(code),
        experimental=answer.value("Result-Code") is None and answer.find("Experimental-Result") is not None,
        error_bit=answer.is_error,
        equipment_status=status_name(int(status)) if status is not None else None,
        error_message=str(message) if message is not None else None,
        failed_avps=failed_names, origin_host=answer.value("Origin-Host"), rtt_ms=round(rtt_ms, 3))


async def send_ecr(host: str, port: int, imei: str, *, identity: MmeIdentity | None = None,
                   imsi: str | None = None, software_version: str | None = None,
                   timeout: float = 5.0, transport: str = "tcp", capture: Capture | None = None) -> EcrOutcome:
    """Connect (``transport`` tcp or sctp), exchange capabilities, send one ECR, describe its
    answer, send DPR. With a ``capture``, the connection is recorded there.

    Raises EcrFailed when no answer came (with the CEA Result-Code when refused)."""
    identity = identity or MmeIdentity()
    peer = f"{host}:{port}"
    try:
        connection = await asyncio.wait_for(connect(identity.node(), host, port, transport=transport,
                                                    timeout=timeout, capture=capture), timeout)
    except CapabilitiesRefused as refused:
        code = refused.result_code
        detail = (f"CEA Result-Code {code} {code_name(code)}" if code not in (None, ResultCode.DIAMETER_SUCCESS)
                  else "CEA without S13 (no application in common)" if code is not None else "closed without a CEA")
        raise EcrFailed(f"{peer} refused the capabilities exchange: {detail}", code) from None
    except TimeoutError:
        raise EcrFailed(f"{peer}: no CEA within {timeout:g} s") from None
    except SctpUnavailable as exc:
        raise EcrFailed(str(exc)) from None
    except OSError as exc:
        raise EcrFailed(f"cannot connect to {peer}: {os_error_text(exc)}") from None
    request = build_ecr(identity.node(), imei, imsi, software_version=software_version,
                        destination_realm=identity.destination_realm)
    try:
        started = time.perf_counter_ns()
        answer = await connection.request(request, timeout)
        rtt_ms = (time.perf_counter_ns() - started) / 1e6
    except TimeoutError:
        raise EcrFailed(f"{peer}: no answer to the ECR within {timeout:g} s") from None
    except ConnectionError as exc:
        raise EcrFailed(f"{peer}: {exc}") from None
    finally:
        await connection.disconnect(timeout=min(timeout, 5.0))
    return describe(answer, peer, imei, rtt_ms)
