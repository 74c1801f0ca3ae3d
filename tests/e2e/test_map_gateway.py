"""End to end, MAP, the agent as an ASP: a real `eir serve` whose YAML config says
`m3ua.connect` joins a test signalling gateway on loopback TCP. The gateway is our own
sans-I/O SGP side (``sigtran.asp.AspServer``) over a blocking socket; its CheckIMEI requests
are built, and the answers read, with the MSC emulator's functions (simulator/msc.py).

It checks the join (ASPUP with the configured ASP Identifier, ASPAC with the configured
routing context and traffic mode, ASP-ACTIVE on the gateway side), the answers (DATA with
the routing context and the routing label turned round, SCCP to the calling address from
our configured global title), BEAT, the reconnection with backoff after the gateway drops
the link (1 s after a lost association, 2 s after a failed handshake, 1 s again after an
association that reached ASP-ACTIVE), and the leave on SIGTERM: ASPDN, the connection kept
until the ASPDN-ACK, exit code 0."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from sigtran import map as mapv
from sigtran import tcap
from sigtran.asp import AspActive, AspServer, AspState, AspUp, BadMessage, DataReceived, Event, ServerSettings
from sigtran.m3ua import SI_SCCP, Kind, Message, MessageReader, Tag, TrafficMode, decode_message
from sigtran.sccp import SSN_EIR, SSN_MSC, Udt
from sigtran.sccp import decode_message as decode_sccp
from simulator.agent_process import LOOPBACK, AgentProcess
from simulator.demo_registry import BLACK, WHITE
from simulator.demo_registry import build_demo_registry as build_registry
from simulator.msc import CheckImeiOutcome, MscIdentity, address_text, describe, encode_request, map_imei
from tests.tools import unknown_tac_profile

ROUTING_CONTEXT, ASP_IDENTIFIER = 100, 7
EIR_PC, GATEWAY_PC = 1 << 11 | 2 << 3 | 3, 2  # the agent's point code is configured as 1-2-3
EIR_GT = "992900000009"  # configured: the calling GT of the agent's answers
CALLED_GT = "992900000000"  # what the MSC asked for; the STP routes it to the agent
UNKNOWN_TAC_IMEI = "99999999000001"  # the test profile answers a TAC it lacks with unknownEquipment
MSC = MscIdentity(opc=GATEWAY_PC, dpc=EIR_PC, routing_context=ROUTING_CONTEXT, called_gt=CALLED_GT)
EXPECTED = {WHITE: mapv.EquipmentStatus.WHITE_LISTED, BLACK: mapv.EquipmentStatus.BLACK_LISTED,
            UNKNOWN_TAC_IMEI: mapv.ErrorCode.UNKNOWN_EQUIPMENT}
E = TypeVar("E")


class Gateway:
    """The SGP side of one connection the agent opened: an AspServer over a blocking socket.
    Every message received is kept (``messages``); the AspServer's answers are sent at once
    unless ``read(flush=False)``."""

    def __init__(self, listener: socket.socket, timeout: float = 10.0) -> None:
        listener.settimeout(timeout)
        self.sock, _ = listener.accept()
        self.sock.settimeout(timeout)
        self.asp = AspServer(ServerSettings(routing_contexts=frozenset({ROUTING_CONTEXT})))
        self.reader = MessageReader()
        self.messages: list[Message] = []
        self.events: list[Event] = []

    def read(self, flush: bool = True) -> bool:
        """One recv; False at end of stream."""
        data = self.sock.recv(65536)
        if not data:
            return False
        self.messages += [decode_message(frame) for frame in self.reader.feed(data)]
        events = self.asp.receive_data(data, time.monotonic())
        bad = [event for event in events if isinstance(event, BadMessage)]
        assert not bad, f"the agent sent what the gateway refuses: {bad}"
        self.events += events
        if flush:
            self.flush()
        return True

    def flush(self) -> None:
        out = self.asp.data_to_send()
        if out:
            self.sock.sendall(out)

    def until(self, done: Callable[[], bool], flush: bool = True) -> None:
        while not done():
            assert self.read(flush), "the agent closed the connection"

    def next_event(self, kind: type[E]) -> E:
        while True:
            for event in self.events:
                if isinstance(event, kind):
                    self.events.remove(event)
                    return event
            assert self.read(), "the agent closed the connection"

    def kinds(self) -> list[Kind]:
        return [message.kind for message in self.messages]

    def close(self) -> None:
        self.sock.close()


def join(listener: socket.socket) -> Gateway:
    """Accept the agent and see it become an active ASP as configured."""
    gateway = Gateway(listener)
    gateway.until(lambda: gateway.asp.state is AspState.ACTIVE)
    assert gateway.kinds() == [Kind.ASPUP, Kind.ASPAC]
    aspup, aspac = gateway.messages
    assert aspup.asp_identifier == ASP_IDENTIFIER
    assert aspac.traffic_mode == TrafficMode.OVERRIDE and aspac.routing_contexts == (ROUTING_CONTEXT,)
    assert gateway.next_event(AspUp) == AspUp(ASP_IDENTIFIER)
    assert gateway.next_event(AspActive) == AspActive(TrafficMode.OVERRIDE, (ROUTING_CONTEXT,))
    return gateway


def check_imei(gateway: Gateway, imei: str, version: int) -> CheckImeiOutcome:
    """One CheckIMEI dialogue from the gateway; the answer's M3UA and SCCP envelope checked."""
    otid, sls = os.urandom(4), 5
    gateway.sock.sendall(encode_request(MSC, otid, map_imei(imei), version, sls=sls))
    event = gateway.next_event(DataReceived)
    assert event.routing_context == ROUTING_CONTEXT
    data = event.data
    assert (data.opc, data.dpc, data.si, data.ni, data.sls) == (EIR_PC, GATEWAY_PC, SI_SCCP, MSC.network_indicator, sls)
    answer = decode_sccp(data.user_data)
    assert isinstance(answer, Udt)
    assert (answer.called.digits, answer.called.ssn) == (MSC.calling_gt, SSN_MSC)
    assert (answer.calling.digits, answer.calling.ssn) == (EIR_GT, SSN_EIR)
    message = tcap.decode(answer.data)
    assert message.dtid == otid
    return describe(message, peer="agent", imei=imei, imei_sent=map_imei(imei), version=version,
                    answered_by=address_text(answer.calling))


def assert_answers(gateway: Gateway, version: int) -> None:
    for imei, expected in EXPECTED.items():
        outcome = check_imei(gateway, imei, version)
        assert outcome.message == "END", outcome.lines()
        assert outcome.answered_version == (version if version > 1 else None)
        got = outcome.status if outcome.error_code is None else outcome.error_code
        assert got == expected, (imei, outcome.lines())


@pytest.fixture
def linked(tmp_path: Path) -> Iterator[tuple[socket.socket, AgentProcess]]:
    """A gateway's listening socket, and an agent configured to join it."""
    registry = build_registry(tmp_path)
    profile = unknown_tac_profile(tmp_path)
    with socket.create_server((LOOPBACK, 0)) as listener:
        config = tmp_path / "agent.yaml"
        config.write_text(f"""profile: {profile}
m3ua:
  connect:
    - {{address: "{LOOPBACK}:{listener.getsockname()[1]}", routing_context: {ROUTING_CONTEXT},
       asp_identifier: {ASP_IDENTIFIER}}}
  point_code: 1-2-3
  global_title: "{EIR_GT}"
  traffic_mode: override
""")
        agent = AgentProcess(tmp_path, registry, config=config)
        try:
            yield listener, agent
        finally:
            agent.stop()
            assert "Traceback" not in agent.log(), agent.log()


def test_joins_answers_beats_and_rejoins_after_the_gateway_drops_it(
        linked: tuple[socket.socket, AgentProcess]) -> None:
    listener, agent = linked
    gateway = join(listener)
    assert_answers(gateway, 3)

    gateway.sock.sendall(Message(Kind.BEAT).add(Tag.HEARTBEAT_DATA, b"gateway beat 1").to_bytes())
    gateway.until(lambda: Kind.BEAT_ACK in gateway.kinds())
    (ack,) = [message for message in gateway.messages if message.kind is Kind.BEAT_ACK]
    assert ack.get(Tag.HEARTBEAT_DATA) == b"gateway beat 1"

    gateway.close()  # the association is lost: the agent tries again after 1 s
    dropped = time.monotonic()
    half_way = Gateway(listener)
    waited = time.monotonic() - dropped
    assert 0.9 <= waited < 4, f"reconnected after {waited:.2f} s"
    half_way.until(lambda: Kind.ASPUP in half_way.kinds(), flush=False)
    half_way.close()  # the handshake fails: the next try comes 2 s later
    dropped = time.monotonic()
    gateway = join(listener)
    waited = time.monotonic() - dropped
    assert 1.9 <= waited < 6, f"reconnected after {waited:.2f} s"
    assert_answers(gateway, 2)

    gateway.close()  # a session that reached ASP-ACTIVE resets the backoff: 1 s again
    dropped = time.monotonic()
    gateway = join(listener)
    waited = time.monotonic() - dropped
    assert 0.9 <= waited < 3, f"reconnected after {waited:.2f} s"
    assert_answers(gateway, 1)
    assert agent.process.poll() is None
    log = agent.log()
    assert "joined M3UA gateway" in log and "closed before ASP-ACTIVE" in log
    gateway.close()


def test_sigterm_sends_aspdn_and_waits_for_the_ack(linked: tuple[socket.socket, AgentProcess]) -> None:
    listener, agent = linked
    gateway = join(listener)
    assert_answers(gateway, 3)
    joined = len(gateway.messages)
    agent.process.send_signal(signal.SIGTERM)
    gateway.until(lambda: Kind.ASPDN in gateway.kinds(), flush=False)
    assert gateway.kinds()[joined:] == [Kind.ASPDN]  # no ASPIA first: RFC 4666 lets an active ASP go down at once
    gateway.sock.settimeout(0.5)
    with pytest.raises(TimeoutError):  # the agent keeps the connection until the ASPDN-ACK
        assert gateway.read(flush=False), "the agent closed the connection before the ASPDN-ACK"
    gateway.flush()  # ASPDN-ACK
    assert gateway.asp.state is AspState.DOWN
    gateway.sock.settimeout(5)
    assert not gateway.read(), "the agent kept the connection after the ASPDN-ACK"
    assert agent.process.wait(10) == 0
    gateway.close()
