"""Our Diameter encoding against freeDiameter, a peer nobody here wrote.

A plain TCP socket plays the MME: CER, DWR and DPR built with our codec go to a freeDiameter
relay, and every message it sends back is decoded with our codec, which must find no problem.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from diameter.constants import APP_RELAY, APP_S13, VENDOR_3GPP, Command, DisconnectCause, ResultCode
from diameter.message import Message, MessageReader, decode_message, make_message
from tests.interop.freediameter import FreeDiameterRelay, Peer, RelayConfig
from tests.tools import LOOPBACK, free_tcp_port

pytestmark = pytest.mark.interop

CLIENT_HOST = "mme.localdomain"
REALM = "localdomain"
RELAY_HOST = "dra.localdomain"
EIR_HOST = "eir.localdomain"


class DiameterClient:
    """A blocking Diameter connection that decodes and keeps every message it receives."""

    def __init__(self, address: tuple[str, int], timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.reader = MessageReader()
        self.received: list[Message] = []
        self._frames: list[bytes] = []

    def send(self, message: Message) -> None:
        self.sock.sendall(message.to_bytes())

    def receive(self) -> Message | None:
        """The next message, or None when the peer closed the connection."""
        while not self._frames:
            data = self.sock.recv(65536)
            if not data:
                return None
            self._frames += self.reader.feed(data)
        message = decode_message(self._frames.pop(0))
        self.received.append(message)
        return message

    def request(self, message: Message) -> Message:
        self.send(message)
        answer = self.receive()
        assert answer is not None, f"connection closed instead of answering {message.name}"
        return answer

    def close(self) -> None:
        self.sock.close()


def capabilities_exchange_request(hop_by_hop: int) -> Message:
    cer = make_message(Command.CAPABILITIES_EXCHANGE, request=True, application_id=0,
                       hop_by_hop=hop_by_hop, end_to_end=hop_by_hop + 0x1000)
    cer.add("Origin-Host", CLIENT_HOST).add("Origin-Realm", REALM)
    cer.add("Host-IP-Address", ipaddress.IPv4Address(LOOPBACK)).add("Vendor-Id", 0)
    cer.add("Product-Name", "eir-interop-test").add("Origin-State-Id", 1)
    cer.add("Supported-Vendor-Id", VENDOR_3GPP).add("Auth-Application-Id", APP_S13)
    cer.avps.append(cer.group("Vendor-Specific-Application-Id", ("Vendor-Id", VENDOR_3GPP),
                              ("Auth-Application-Id", APP_S13)))
    return cer


def device_watchdog_request(hop_by_hop: int) -> Message:
    dwr = make_message(Command.DEVICE_WATCHDOG, request=True, application_id=0,
                       hop_by_hop=hop_by_hop, end_to_end=hop_by_hop + 0x1000)
    return dwr.add("Origin-Host", CLIENT_HOST).add("Origin-Realm", REALM).add("Origin-State-Id", 1)


def disconnect_peer_request(hop_by_hop: int) -> Message:
    dpr = make_message(Command.DISCONNECT_PEER, request=True, application_id=0,
                       hop_by_hop=hop_by_hop, end_to_end=hop_by_hop + 0x1000)
    dpr.add("Origin-Host", CLIENT_HOST).add("Origin-Realm", REALM)
    return dpr.add("Disconnect-Cause", DisconnectCause.DO_NOT_WANT_TO_TALK_TO_YOU)


def me_identity_check_request(hop_by_hop: int, imei: str) -> Message:
    ecr = make_message(Command.ME_IDENTITY_CHECK, request=True, proxiable=True, application_id=APP_S13,
                       hop_by_hop=hop_by_hop, end_to_end=hop_by_hop + 0x1000)
    ecr.add("Session-Id", f"{CLIENT_HOST};1;{hop_by_hop}").add("Auth-Session-State", 1)
    ecr.add("Origin-Host", CLIENT_HOST).add("Origin-Realm", REALM).add("Destination-Realm", REALM)
    ecr.avps.append(ecr.group("Terminal-Information", ("IMEI", imei), ("Software-Version", "01")))
    return ecr.add("User-Name", "437011234567890")


def advertised_applications(cea: Message) -> set[int]:
    """Auth-Application-Id values, top level and inside Vendor-Specific-Application-Id."""
    applications = {avp.value for avp in cea.find_all("Auth-Application-Id")}
    for vsai in cea.find_all("Vendor-Specific-Application-Id"):
        inner = vsai.find("Auth-Application-Id")
        if inner is not None:
            applications.add(inner.value)
    return applications


def assert_answers(request: Message, answer: Message) -> None:
    assert answer.command_code == request.command_code
    assert not answer.is_request
    assert (answer.hop_by_hop, answer.end_to_end) == (request.hop_by_hop, request.end_to_end)


def answer_to(request: Message, result_code: int = ResultCode.DIAMETER_SUCCESS) -> Message:
    """The EIR's answer to a request from the relay: CEA, ECA (BLACKLISTED), DWA or DPA."""
    answer = make_message(request.command_code, request=False, proxiable=request.is_proxiable,
                          application_id=request.application_id, hop_by_hop=request.hop_by_hop,
                          end_to_end=request.end_to_end)
    if request.command_code == Command.ME_IDENTITY_CHECK:
        answer.add("Session-Id", request.value("Session-Id")).add("Result-Code", result_code)
        answer.add("Auth-Session-State", 1).add("Origin-Host", EIR_HOST).add("Origin-Realm", REALM)
        return answer.add("Equipment-Status", 1)
    answer.add("Result-Code", result_code).add("Origin-Host", EIR_HOST).add("Origin-Realm", REALM)
    if request.command_code == Command.CAPABILITIES_EXCHANGE:
        answer.add("Host-IP-Address", ipaddress.IPv4Address(LOOPBACK)).add("Vendor-Id", 0)
        answer.add("Product-Name", "fake-eir").add("Auth-Application-Id", APP_S13)
    return answer


class FakeEir:
    """A stand-in EIR peer on loopback that the relay connects to: answers what it receives
    and keeps every request, decoded with our codec."""

    def __init__(self) -> None:
        self.listener = socket.create_server((LOOPBACK, 0))
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.received: list[Message] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with self.listener, self.listener.accept()[0] as connection:
            connection.settimeout(10)
            reader = MessageReader()
            while data := connection.recv(65536):
                for frame in reader.feed(data):
                    request = decode_message(frame)
                    self.received.append(request)
                    connection.sendall(answer_to(request).to_bytes())


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[FreeDiameterRelay]:
    # The EIR peer is declared (and routed to) but not running: freeDiameter keeps trying it.
    eir = Peer(EIR_HOST, LOOPBACK, free_tcp_port())
    config = RelayConfig(port=free_tcp_port(), identity=RELAY_HOST, realm=REALM, peers=[eir])
    with FreeDiameterRelay(tmp_path, config) as running:
        yield running


@pytest.fixture
def client(relay: FreeDiameterRelay) -> Iterator[DiameterClient]:
    connection = DiameterClient(relay.address)
    yield connection
    connection.close()  # before the relay stops: an open peer makes its shutdown wait 16 s


def test_capabilities_watchdog_and_disconnect(relay: FreeDiameterRelay, client: DiameterClient) -> None:
    cer = capabilities_exchange_request(1)
    cea = client.request(cer)
    assert_answers(cer, cea)
    assert cea.value("Result-Code") == ResultCode.DIAMETER_SUCCESS, relay.log_tail()
    assert cea.value("Origin-Host") == RELAY_HOST
    assert advertised_applications(cea) & {APP_RELAY, APP_S13}

    dwr = device_watchdog_request(2)
    dwa = client.request(dwr)
    assert_answers(dwr, dwa)
    assert dwa.value("Result-Code") == ResultCode.DIAMETER_SUCCESS

    dpr = disconnect_peer_request(3)
    dpa = client.request(dpr)
    assert_answers(dpr, dpa)
    assert dpa.value("Result-Code") == ResultCode.DIAMETER_SUCCESS
    assert client.receive() is None, "freeDiameter keeps the connection open after DPA"

    assert [m.name for m in client.received] == ["CEA", "DWA", "DPA"]
    assert [m.problems for m in client.received] == [[], [], []]
    assert f"Connected to '{CLIENT_HOST}'" in relay.log_text()


def test_unroutable_request_gets_a_protocol_error_our_codec_accepts(client: DiameterClient) -> None:
    """The EIR peer is down, so the relay answers the ECR itself with 3002 (E bit set).

    freeDiameter 1.2.1 clears the P bit of this answer and sends no Auth-Session-State: the
    answer follows RFC 6733 7.2 answer-message, not the ECA grammar, and our codec must accept it.
    """
    cea = client.request(capabilities_exchange_request(1))
    assert cea.value("Result-Code") == ResultCode.DIAMETER_SUCCESS
    ecr = me_identity_check_request(2, "35209900176148")
    answer = client.request(ecr)
    assert_answers(ecr, answer)
    assert answer.is_error
    assert answer.value("Result-Code") == ResultCode.DIAMETER_UNABLE_TO_DELIVER
    assert answer.value("Session-Id") == ecr.value("Session-Id")
    assert answer.problems == []


def test_relay_routes_ecr_to_the_eir_peer_and_back(tmp_path: Path) -> None:
    """ConnectPeer and rt_default as the helper writes them: the relay connects to the EIR,
    routes realm localdomain to it, and relays its ECA back; both sides decode cleanly."""
    eir = FakeEir()
    peers = [Peer(EIR_HOST, LOOPBACK, eir.port)]
    config = RelayConfig(port=free_tcp_port(), identity=RELAY_HOST, realm=REALM, peers=peers)
    with FreeDiameterRelay(tmp_path, config) as relay:
        assert relay.wait_peer_open(EIR_HOST), relay.log_tail()
        client = DiameterClient(relay.address)
        try:
            assert client.request(capabilities_exchange_request(1)).value("Result-Code") == ResultCode.DIAMETER_SUCCESS
            ecr = me_identity_check_request(2, "35209900176148")
            eca = client.request(ecr)
            client.request(disconnect_peer_request(3))
        finally:
            client.close()
    eir.thread.join(5)  # the relay said DPR to the EIR on its way out
    assert_answers(ecr, eca)
    assert eca.value("Result-Code") == ResultCode.DIAMETER_SUCCESS
    assert eca.value("Equipment-Status") == 1
    relayed = next(m for m in eir.received if m.name == "ECR")
    terminal = relayed.find("Terminal-Information")
    assert terminal is not None and terminal.value == ecr.value("Terminal-Information")
    assert [a.value for a in relayed.find_all("Route-Record")] == [CLIENT_HOST]
    assert [m.name for m in eir.received] == ["CER", "ECR", "DPR"]
    assert [m.problems for m in eir.received + client.received] == [[]] * (len(eir.received) + len(client.received))
