"""Our Diameter encoding and our pcap writer, judged by tshark (Wireshark 4.0), which nobody here wrote.

S13 and base messages built with our codec are written by netio/pcap.py as TCP flows on
port 3868; tshark must decode them without a malformed packet or an expert warning (including
its TCP analysis) and hand back exactly the IMEIs, statuses and result codes written.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from diameter.constants import APP_S13, VENDOR_3GPP, Command, EquipmentStatus, ResultCode
from diameter.message import Message, make_message
from netio.pcap import PcapFlowWriter
from tests.tools import require_tool

pytestmark = pytest.mark.interop

MME = ("127.0.0.1", 40001)
EIR = ("127.0.0.1", 3868)
MME_HOST, EIR_HOST, REALM = "mme.localdomain", "eir.localdomain", "localdomain"
START = 1_700_000_000.0
UNKNOWN = None  # an IMEI the EIR does not know: Experimental-Result 5422

# tshark 4.0 field names (tshark -G fields).
FIELDS = ("diameter.cmd.code", "diameter.flags.request", "diameter.hopbyhopid", "diameter.IMEI",
          "diameter.Software-Version", "diameter.Equipment-Status", "diameter.Result-Code",
          "diameter.Experimental-Result-Code", "diameter.Auth-Application-Id")


@dataclass(frozen=True)
class Check:
    """One ECR/ECA exchange: the IMEI asked about and the status answered (None: unknown)."""

    imei: str
    status: EquipmentStatus | None


CHECKS = (
    Check("35209900176148", EquipmentStatus.WHITELISTED),
    Check("490154203237518", EquipmentStatus.BLACKLISTED),
    Check("35693803564380", EquipmentStatus.GREYLISTED),
    Check("86012345678901", EquipmentStatus.WHITELISTED),
    Check("99000000000001", UNKNOWN),
)


def _header(command: int, request: bool, hop_by_hop: int, application_id: int = 0,
            proxiable: bool = False) -> Message:
    return make_message(command, request=request, proxiable=proxiable, application_id=application_id,
                        hop_by_hop=hop_by_hop, end_to_end=0x5000_0000 + hop_by_hop)


def _capabilities(message: Message, host: str) -> Message:
    message.add("Origin-Host", host).add("Origin-Realm", REALM)
    message.add("Host-IP-Address", ipaddress.IPv4Address("127.0.0.1")).add("Vendor-Id", 0)
    message.add("Product-Name", "eir").add("Origin-State-Id", 7)
    message.add("Supported-Vendor-Id", VENDOR_3GPP).add("Auth-Application-Id", APP_S13)
    message.avps.append(message.group("Vendor-Specific-Application-Id", ("Vendor-Id", VENDOR_3GPP),
                                      ("Auth-Application-Id", APP_S13)))
    return message


def capabilities_exchange(hop_by_hop: int) -> tuple[Message, Message]:
    cer = _capabilities(_header(Command.CAPABILITIES_EXCHANGE, True, hop_by_hop), MME_HOST)
    cea = _header(Command.CAPABILITIES_EXCHANGE, False, hop_by_hop).add("Result-Code", ResultCode.DIAMETER_SUCCESS)
    return cer, _capabilities(cea, EIR_HOST)


def identity_check(hop_by_hop: int, check: Check) -> tuple[Message, Message]:
    session = f"{MME_HOST};{hop_by_hop};1"
    ecr = _header(Command.ME_IDENTITY_CHECK, True, hop_by_hop, APP_S13, proxiable=True)
    ecr.add("Session-Id", session).add("Auth-Session-State", 1).add("Origin-Host", MME_HOST)
    ecr.add("Origin-Realm", REALM).add("Destination-Realm", REALM)
    ecr.avps.append(ecr.group("Terminal-Information", ("IMEI", check.imei), ("Software-Version", "01")))
    ecr.add("User-Name", "437011234567890")
    eca = _header(Command.ME_IDENTITY_CHECK, False, hop_by_hop, APP_S13, proxiable=True)
    eca.add("Session-Id", session)
    if check.status is UNKNOWN:
        eca.avps.append(eca.group("Experimental-Result", ("Vendor-Id", VENDOR_3GPP),
                                  ("Experimental-Result-Code", ResultCode.DIAMETER_ERROR_EQUIPMENT_UNKNOWN)))
    else:
        eca.add("Result-Code", ResultCode.DIAMETER_SUCCESS)
    eca.add("Auth-Session-State", 1).add("Origin-Host", EIR_HOST).add("Origin-Realm", REALM)
    if check.status is not UNKNOWN:
        eca.add("Equipment-Status", check.status)
    return ecr, eca


def conversation() -> list[Message]:
    """CER, CEA, then an ECR and its ECA per check, in the order they cross the wire."""
    messages = list(capabilities_exchange(1))
    for index, check in enumerate(CHECKS, start=2):
        messages += identity_check(index, check)
    return messages


def write_conversation(path: Path, messages: list[Message], **writer_options: int) -> None:
    with PcapFlowWriter(path, **writer_options) as pcap:
        for index, message in enumerate(messages):
            src, dst = (MME, EIR) if message.is_request else (EIR, MME)
            pcap.send(START + index * 0.001, src, dst, message.to_bytes())


def tshark(*args: str) -> str:
    result = subprocess.run([require_tool("tshark"), *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def extract(path: Path) -> list[list[str]]:
    """One row per Diameter message: the FIELDS, several occurrences joined by commas."""
    options = ["-r", str(path), "-Y", "diameter", "-T", "fields", "-E", "separator=\t",
               "-E", "occurrence=a", "-E", "aggregator=,"]
    for name in FIELDS:
        options += ["-e", name]
    return [line.split("\t") for line in tshark(*options).splitlines()]


def expected_rows(messages: list[Message]) -> list[list[str]]:
    """What tshark should extract for FIELDS, computed from the messages we wrote."""
    return [[str(message.command_code), "1" if message.is_request else "0", f"0x{message.hop_by_hop:08x}",
             _member(message, "Terminal-Information", "IMEI"),
             _member(message, "Terminal-Information", "Software-Version"),
             _text(message.value("Equipment-Status")), _text(message.value("Result-Code")),
             _member(message, "Experimental-Result", "Experimental-Result-Code"),
             ",".join(str(a) for a in _applications(message))]
            for message in messages]


def _member(message: Message, group: str, name: str) -> str:
    outer = message.find(group)
    inner = outer.find(name) if outer is not None else None
    return "" if inner is None else str(inner.value)


def _applications(message: Message) -> list[int]:
    """Auth-Application-Id values in wire order, top level and inside Vendor-Specific-Application-Id."""
    found: list[int] = []
    for avp in message.avps:
        if avp.name == "Auth-Application-Id":
            found.append(avp.value)
        elif avp.name == "Vendor-Specific-Application-Id":
            found += [member.value for member in avp.value if member.name == "Auth-Application-Id"]
    return found


def _text(value: int | None) -> str:
    return "" if value is None else str(int(value))


def expert_problems(path: Path) -> list[str]:
    """Lines of the Errors and Warns sections of ``tshark -z expert``."""
    problems, section = [], ""
    for line in tshark("-r", str(path), "-q", "-z", "expert").splitlines():
        if line and not line.startswith(" ") and "(" in line:
            section = line.split(" (")[0]
        elif section in ("Errors", "Warns") and line.strip() and "Frequency" not in line and "===" not in line:
            problems.append(f"{section}: {line.strip()}")
    return problems


def assert_clean(path: Path, messages: list[Message]) -> None:
    verbose = tshark("-r", str(path), "-V")
    assert "malformed" not in verbose.lower()
    assert verbose.count("Diameter Protocol\n") == len(messages)
    assert expert_problems(path) == []
    assert tshark("-r", str(path), "-Y", "tcp.analysis.flags || _ws.malformed || _ws.expert.severity >= warning") == ""


@pytest.fixture(scope="module")
def messages() -> list[Message]:
    return conversation()


def test_tshark_decodes_s13_exchanges_without_complaint(tmp_path: Path, messages: list[Message]) -> None:
    path = tmp_path / "s13.pcap"
    write_conversation(path, messages)
    assert_clean(path, messages)


def test_tshark_extracts_exactly_what_was_written(tmp_path: Path, messages: list[Message]) -> None:
    path = tmp_path / "s13.pcap"
    write_conversation(path, messages)
    rows = extract(path)
    assert rows == expected_rows(messages)
    imeis = [row[3] for row in rows if row[0] == "324" and row[1] == "1"]
    statuses = [row[5] for row in rows if row[0] == "324" and row[1] == "0"]
    assert imeis == [check.imei for check in CHECKS]
    assert statuses == [_text(check.status) for check in CHECKS]
    assert [row[7] for row in rows if row[0] == "324" and row[1] == "0"] == ["", "", "", "", "5422"]


def test_segmented_messages_reassemble_cleanly(tmp_path: Path, messages: list[Message]) -> None:
    """A small MSS cuts every message into several segments and a small window forces pure
    ACKs: tshark must reassemble each message and its TCP analysis find nothing wrong."""
    path = tmp_path / "segmented.pcap"
    write_conversation(path, messages, mss=48, window=256)
    assert_clean(path, messages)
    assert extract(path) == expected_rows(messages)
