"""The sans-I/O peer state machine: two Peers wired back to back, time passed in."""

from __future__ import annotations

import random

import pytest

from diameter.answers import answer_to, finish_answer, result_code_of
from diameter.capabilities import LocalNode
from diameter.constants import APP_RELAY, APP_S13, FLAG_E, FLAG_T, Command, DisconnectCause, ResultCode
from diameter.message import Message, decode_message, make_message
from diameter.peer import (
    AnswerReceived,
    BadMessage,
    CapabilitiesExchanged,
    CloseConnection,
    DuplicateCache,
    Event,
    Peer,
    PeerDisconnecting,
    PeerSettings,
    PeerState,
    RequestReceived,
    RequestTimedOut,
    Role,
    WatchdogChanged,
)
from diameter.watchdog import WatchdogState

MME = LocalNode("mme.localdomain", "localdomain")
EIR = LocalNode("eir.localdomain", "localdomain")
TW = 30.0


def settings(**kw: object) -> PeerSettings:
    return PeerSettings(tw_init=TW, tw_jitter=0.0, rng=random.Random(7), **kw)  # type: ignore[arg-type]


class Wire:
    """Two peers and the events each has seen; ``pump`` carries bytes both ways."""

    def __init__(self, client: Peer, server: Peer) -> None:
        self.client, self.server = client, server
        self.client_events: list[Event] = []
        self.server_events: list[Event] = []
        self.cut = False  # when True, bytes from the server are lost

    def connect(self, now: float = 0.0) -> None:
        self.server_events += self.server.connection_made(now)
        self.client_events += self.client.connection_made(now)
        self.pump(now)

    def pump(self, now: float) -> None:
        for _ in range(20):
            to_server, to_client = self.client.data_to_send(), self.server.data_to_send()
            if not to_server and not to_client:
                return
            if to_server:
                self.server_events += self.server.receive_data(to_server, now)
            if to_client and not self.cut:
                self.client_events += self.client.receive_data(to_client, now)

    def timers(self, now: float) -> None:
        self.client_events += self.client.handle_timer(now)
        self.server_events += self.server.handle_timer(now)
        self.pump(now)


def pair(client_settings: PeerSettings | None = None, server_settings: PeerSettings | None = None,
         client_node: LocalNode = MME) -> Wire:
    client = Peer(client_node, Role.INITIATOR, client_settings or settings(), now_epoch=1_700_000_000)
    server = Peer(EIR, Role.RESPONDER, server_settings or settings(), now_epoch=1_700_000_000)
    return Wire(client, server)


def ecr(session: str = "1") -> Message:
    m = make_message(Command.ME_IDENTITY_CHECK, request=True, proxiable=True, application_id=APP_S13)
    m.add("Session-Id", f"mme.localdomain;{session}").add("Auth-Session-State", 1)
    m.add("Origin-Host", "mme.localdomain").add("Origin-Realm", "localdomain").add("Destination-Realm", "localdomain")
    m.avps.append(m.group("Terminal-Information", ("IMEI", "35209900176148")))
    return m


def eca_for(request: Message, status: int = 0) -> Message:
    a = answer_to(request, "eir.localdomain", "localdomain", ResultCode.DIAMETER_SUCCESS)
    a.add("Auth-Session-State", 1).add("Equipment-Status", status)
    return finish_answer(request, a)


def of(kind: type, events: list[Event]) -> list:
    return [e for e in events if isinstance(e, kind)]


def open_wire(**kw: object) -> Wire:
    wire = pair(**kw)  # type: ignore[arg-type]
    wire.connect()
    assert wire.client.state is PeerState.OPEN and wire.server.state is PeerState.OPEN
    return wire


# --- capabilities exchange ---------------------------------------------------------------

def test_cer_cea_opens_both_sides_with_s13_in_common() -> None:
    wire = open_wire()
    (client_open,) = of(CapabilitiesExchanged, wire.client_events)
    (server_open,) = of(CapabilitiesExchanged, wire.server_events)
    assert client_open.peer.origin_host == "eir.localdomain"
    assert server_open.peer.origin_host == "mme.localdomain"
    assert client_open.applications == server_open.applications == frozenset({APP_S13})
    assert wire.client.cea_result == ResultCode.DIAMETER_SUCCESS
    assert wire.server.watchdog.state is WatchdogState.OKAY


def test_no_common_application_gets_5010_and_both_close() -> None:
    hss = LocalNode("hss.localdomain", "localdomain", auth_application_ids=(16777251,),
                    vendor_specific_applications=((10415, 16777251),))
    wire = pair(client_node=hss)
    wire.connect()
    assert wire.client.cea_result == ResultCode.DIAMETER_NO_COMMON_APPLICATION
    assert of(CloseConnection, wire.client_events) and of(CloseConnection, wire.server_events)
    assert [e.result_code for e in of(BadMessage, wire.server_events)] == [5010]


def test_relay_application_is_common_with_everything() -> None:
    relay = LocalNode("dra.localdomain", "localdomain", auth_application_ids=(APP_RELAY,),
                      vendor_specific_applications=())
    wire = pair(client_node=relay)
    wire.connect()
    assert wire.server.state is PeerState.OPEN
    assert wire.server.applications == frozenset({APP_S13})


def test_peer_not_allowed_gets_3010_with_e_bit() -> None:
    captured: list[bytes] = []
    wire = pair(server_settings=settings(accept_peer=lambda info, address: info.origin_host.startswith("mme-ok")))
    wire.server_events += wire.server.connection_made(0)
    wire.client_events += wire.client.connection_made(0)
    wire.server_events += wire.server.receive_data(wire.client.data_to_send(), 0)
    captured.append(wire.server.data_to_send())
    cea = decode_message(captured[0])
    assert result_code_of(cea) == ResultCode.DIAMETER_UNKNOWN_PEER and cea.is_error
    assert cea.find("Host-IP-Address") is not None and cea.find("Product-Name") is not None
    assert of(CloseConnection, wire.server_events)
    wire.client_events += wire.client.receive_data(captured[0], 0)
    assert wire.client.state is PeerState.CLOSED and wire.client.cea_result == 3010


def test_message_before_cer_closes_the_connection() -> None:
    server = Peer(EIR, Role.RESPONDER, settings())
    server.connection_made(0)
    events = server.receive_data(ecr().to_bytes(), 0)
    assert of(CloseConnection, events) and server.state is PeerState.CLOSED


def test_responder_closes_when_no_cer_arrives_in_time() -> None:
    server = Peer(EIR, Role.RESPONDER, settings(cer_timeout=5.0))
    server.connection_made(100.0)
    assert server.next_deadline() == 105.0
    assert server.handle_timer(104.9) == []
    assert of(CloseConnection, server.handle_timer(105.0))


def test_untrusted_framing_closes_the_connection() -> None:
    wire = open_wire()
    events = wire.server.receive_data(b"\x02\x00\x00\x14" + bytes(16), 1.0)
    assert of(CloseConnection, events) and wire.server.state is PeerState.CLOSED


# --- requests and answers ------------------------------------------------------------------

def test_application_request_and_answer_matched_by_hop_by_hop() -> None:
    wire = open_wire()
    request = wire.client.send_request(ecr(), 1.0)
    wire.pump(1.0)
    (received,) = of(RequestReceived, wire.server_events)
    assert received.message.hop_by_hop == request.hop_by_hop
    wire.server.send_answer(received.message, eca_for(received.message, status=2))
    wire.pump(1.0)
    (answered,) = of(AnswerReceived, wire.client_events)
    assert answered.request is request
    assert answered.message.find("Equipment-Status").value == 2


def test_answer_with_unknown_hop_by_hop_is_reported_not_delivered() -> None:
    wire = open_wire()
    stray = eca_for(ecr())
    stray.hop_by_hop = 0x12345678
    events = wire.client.receive_data(stray.to_bytes(), 1.0)
    assert not of(AnswerReceived, events)
    assert "unknown Hop-by-Hop" in of(BadMessage, events)[0].reason


def test_request_without_answer_times_out() -> None:
    wire = open_wire(client_settings=settings(request_timeout=4.0))
    request = wire.client.send_request(ecr(), 10.0)
    assert of(RequestTimedOut, wire.client.handle_timer(13.9)) == []
    (timed_out,) = of(RequestTimedOut, wire.client.handle_timer(14.0))
    assert timed_out.request is request


@pytest.mark.parametrize(("application", "command", "code"), [
    (16777251, 316, ResultCode.DIAMETER_APPLICATION_UNSUPPORTED),  # S6a ULR to an EIR
    (APP_S13, 999, ResultCode.DIAMETER_COMMAND_UNSUPPORTED),
])
def test_unsupported_application_or_command_is_answered_with_e_bit(application: int, command: int,
                                                                   code: int) -> None:
    wire = open_wire()
    request = make_message(command, request=True, proxiable=True, application_id=application, hop_by_hop=5)
    request.add("Session-Id", "x;1").add("Origin-Host", "mme.localdomain").add("Origin-Realm", "localdomain")
    events = wire.server.receive_data(request.to_bytes(), 1.0)
    answer = decode_message(wire.server.data_to_send())
    assert result_code_of(answer) == code and answer.is_error and answer.hop_by_hop == 5
    assert answer.value("Session-Id") == "x;1"
    assert not of(RequestReceived, events)


def test_malformed_request_is_answered_and_the_peer_keeps_serving() -> None:
    wire = open_wire()
    bad = ecr()
    bad.avps = [a for a in bad.avps if a.name != "Terminal-Information"]
    wire.client.send_request(bad, 1.0)
    wire.pump(1.0)
    (answer,) = of(AnswerReceived, wire.client_events)
    assert result_code_of(answer.message) == ResultCode.DIAMETER_MISSING_AVP
    wire.client.send_request(ecr("2"), 1.0)
    wire.pump(1.0)
    assert len(of(RequestReceived, wire.server_events)) == 1


# --- watchdog --------------------------------------------------------------------------------

def test_idle_connection_sends_dwr_and_dwa_keeps_it_okay() -> None:
    wire = open_wire()
    wire.timers(TW)
    assert wire.client.watchdog.pending is False  # DWR went out and its DWA came back
    assert wire.client.watchdog.state is WatchdogState.OKAY
    assert not of(CloseConnection, wire.client_events)


def test_silent_peer_goes_suspect_then_down_and_the_connection_closes() -> None:
    wire = open_wire()
    wire.cut = True
    wire.timers(TW)  # DWR sent, DWA lost
    wire.timers(2 * TW)
    assert wire.client.watchdog.state is WatchdogState.SUSPECT
    wire.timers(3 * TW)
    assert wire.client.watchdog.state is WatchdogState.DOWN
    assert of(CloseConnection, wire.client_events)
    changes = [(e.old, e.new) for e in of(WatchdogChanged, wire.client_events)]
    assert (WatchdogState.OKAY, WatchdogState.SUSPECT) in changes
    assert (WatchdogState.SUSPECT, WatchdogState.DOWN) in changes


# --- disconnection -----------------------------------------------------------------------------

def test_dpr_from_initiator_gets_dpa_and_closes() -> None:
    wire = open_wire()
    wire.client_events += wire.client.disconnect(5.0, DisconnectCause.BUSY)
    wire.pump(5.0)
    (disconnecting,) = of(PeerDisconnecting, wire.server_events)
    assert disconnecting.cause == DisconnectCause.BUSY
    assert of(CloseConnection, wire.client_events) and wire.client.state is PeerState.CLOSED


def test_dpr_from_responder_gets_dpa_and_closes() -> None:
    wire = open_wire()
    wire.server_events += wire.server.disconnect(5.0, DisconnectCause.REBOOTING)
    wire.pump(5.0)
    assert of(PeerDisconnecting, wire.client_events)
    assert of(CloseConnection, wire.server_events) and wire.server.state is PeerState.CLOSED


def test_after_its_dpr_a_peer_is_closing_its_requests_get_3002_and_it_is_closed_if_it_stays() -> None:
    """RFC 6733 5.6: R-Rcv-DPR leads to Closing. A peer that sent DPR, got DPA and keeps the
    connection (and its ECRs coming) is answered 3002 and closed after dpa_timeout."""
    wire = open_wire(server_settings=settings(dpa_timeout=2.0))
    wire.client.disconnect(5.0, DisconnectCause.DO_NOT_WANT_TO_TALK_TO_YOU)  # and then never closes
    wire.pump(5.0)
    assert of(PeerDisconnecting, wire.server_events) and wire.server.state is PeerState.CLOSING
    request = ecr("after-dpr")
    request.hop_by_hop, request.end_to_end = 77, 78
    events = wire.server.receive_data(request.to_bytes(), 5.5)
    assert not of(RequestReceived, events)
    (bad,) = of(BadMessage, events)
    assert (bad.result_code, bad.answered, bad.session) == (ResultCode.DIAMETER_UNABLE_TO_DELIVER, True,
                                                            "mme.localdomain;after-dpr")
    answer = decode_message(wire.server.data_to_send())
    assert result_code_of(answer) == ResultCode.DIAMETER_UNABLE_TO_DELIVER and answer.flags & FLAG_E
    assert not of(CloseConnection, wire.server.handle_timer(6.9))
    (closing,) = of(CloseConnection, wire.server.handle_timer(7.0))
    assert "did not close the connection" in closing.reason and wire.server.state is PeerState.CLOSED


def test_missing_dpa_closes_after_the_timeout() -> None:
    wire = open_wire(client_settings=settings(dpa_timeout=2.0))
    wire.cut = True
    wire.client.disconnect(5.0)
    wire.pump(5.0)
    assert wire.client.state is PeerState.CLOSING
    assert of(CloseConnection, wire.client.handle_timer(7.0))


# --- retransmission with the T flag -------------------------------------------------------------

def test_lost_connection_retransmits_pending_requests_with_t_flag_after_reopen() -> None:
    shared = DuplicateCache(16)
    wire = open_wire()
    wire.server.duplicates = shared
    request = wire.client.send_request(ecr(), 1.0)
    e2e = request.end_to_end
    wire.cut = True  # the server answers, the answer is lost with the connection
    wire.pump(1.0)
    (received,) = of(RequestReceived, wire.server_events)
    wire.server.send_answer(received.message, eca_for(received.message, status=1))
    wire.pump(1.0)
    wire.client.connection_lost(2.0)
    assert wire.client.watchdog.state is WatchdogState.DOWN

    server2 = Peer(EIR, Role.RESPONDER, settings(), duplicates=shared)
    wire2 = Wire(wire.client, server2)
    wire2.connect(3.0)
    assert wire.client.watchdog.state is WatchdogState.REOPEN
    for step in range(1, 4):  # RFC 3539: three DWAs before the peer is trusted again
        wire2.timers(3.0 + step * TW)
    assert wire.client.watchdog.state is WatchdogState.OKAY
    answers = of(AnswerReceived, wire2.client_events)
    assert len(answers) == 1
    assert answers[0].request.flags & FLAG_T and answers[0].request.end_to_end == e2e
    assert answers[0].message.find("Equipment-Status").value == 1  # the cached answer, not a new decision
    assert not of(RequestReceived, wire2.server_events)


def relayed_ecr(origin: str, end_to_end: int, session: str, retransmitted: bool = False) -> Message:
    """An ECR from ``origin`` as a relay (DRA) forwards it, with the Route-Record the relay
    appends: the identity of the peer it received the request from (RFC 6733 6.1.9)."""
    m = make_message(Command.ME_IDENTITY_CHECK, request=True, proxiable=True, application_id=APP_S13)
    m.add("Session-Id", f"{origin};{session}").add("Auth-Session-State", 1)
    m.add("Origin-Host", origin).add("Origin-Realm", "localdomain").add("Destination-Realm", "localdomain")
    m.avps.append(m.group("Terminal-Information", ("IMEI", "35209900176148")))
    m.add("Route-Record", origin)
    m.end_to_end = end_to_end
    if retransmitted:
        m.flags |= FLAG_T
    return m


def test_duplicates_are_known_by_the_requests_origin_host_not_the_peers() -> None:
    """RFC 6733 6.5: behind a relay, MME Y's T-flagged request with the End-to-End id that
    MME X used is a request of its own, never X's cached answer; X's retransmission is."""
    wire = open_wire()
    server = wire.server
    x = relayed_ecr("mme-x.localdomain", 0x1234, "x")
    server.receive_data(x.to_bytes(), 1.0)
    server.send_answer(x, eca_for(x, status=1))
    server.data_to_send()
    y = relayed_ecr("mme-y.localdomain", 0x1234, "y", retransmitted=True)
    events = server.receive_data(y.to_bytes(), 2.0)
    assert [e.message.value("Session-Id") for e in of(RequestReceived, events)] == ["mme-y.localdomain;y"]
    assert server.data_to_send() == b""  # nothing re-sent: Y's request goes to the application
    again = relayed_ecr("mme-x.localdomain", 0x1234, "x", retransmitted=True)
    assert not of(RequestReceived, server.receive_data(again.to_bytes(), 3.0))
    resent = server.data_to_send()
    assert b"mme-x.localdomain;x" in resent and resent[12:16] == again.hop_by_hop.to_bytes(4, "big")


# --- the originator's identity (RFC 6733 6.1.9, 6.3, 6.7.1) ------------------------------------

def from_origin(origin: str, *route_records: str, session: str = "1") -> Message:
    """An ECR whose Origin-Host is ``origin``, with these Route-Records."""
    m = make_message(Command.ME_IDENTITY_CHECK, request=True, proxiable=True, application_id=APP_S13)
    m.add("Session-Id", f"{origin};{session}").add("Auth-Session-State", 1)
    m.add("Origin-Host", origin).add("Origin-Realm", "localdomain").add("Destination-Realm", "localdomain")
    m.avps.append(m.group("Terminal-Information", ("IMEI", "35209900176148")))
    for record in route_records:
        m.add("Route-Record", record)
    return m


def refused(wire: Wire, request: Message, now: float = 1.0) -> tuple[Message, BadMessage]:
    """The server's answer to ``request`` and its BadMessage; nothing reached the application."""
    events = wire.server.receive_data(request.to_bytes(), now)
    assert not of(RequestReceived, events)
    (bad,) = of(BadMessage, events)
    return decode_message(wire.server.data_to_send()), bad


def test_a_direct_request_claiming_another_origin_host_gets_5003_and_the_connection_stays() -> None:
    """No Route-Record: the request came straight from the peer, so its Origin-Host must be
    the identity the peer gave in CER. Answered 5003 in the ECA's grammar, no E bit, the
    Origin-Host in Failed-AVP; reported as from the peer that did send it."""
    wire = open_wire()
    answer, bad = refused(wire, from_origin("spoofed-mme.other.test"))
    assert result_code_of(answer) == ResultCode.DIAMETER_AUTHORIZATION_REJECTED and not answer.is_error
    assert answer.value("Auth-Session-State") == 1 and answer.find("Equipment-Status") is None
    (failed,) = answer.find("Failed-AVP").value
    assert (failed.name, failed.value) == ("Origin-Host", "spoofed-mme.other.test")
    message = answer.value("Error-Message")
    assert "spoofed-mme.other.test" in message and "mme.localdomain" in message and "Route-Record" in message
    assert (bad.result_code, bad.answered, bad.origin_host, bad.session) == (
        5003, True, "mme.localdomain", "spoofed-mme.other.test;1")
    assert wire.server.state is PeerState.OPEN
    genuine = wire.server.receive_data(from_origin("mme.localdomain", session="2").to_bytes(), 2.0)
    assert [e.message.value("Session-Id") for e in of(RequestReceived, genuine)] == ["mme.localdomain;2"]


def test_origin_host_is_compared_without_regard_to_case() -> None:
    wire = open_wire()
    events = wire.server.receive_data(from_origin("MME.LocalDomain").to_bytes(), 1.0)
    assert len(of(RequestReceived, events)) == 1 and not of(BadMessage, events)


@pytest.mark.parametrize(("origin", "records", "served"), [
    ("mme-x.localdomain", ["mme-x.localdomain"], True),  # one relay: it names the MME it received from
    ("mme-x.localdomain", ["MME-X.localdomain", "dra1.localdomain"], True),  # two relays, the first names the MME
    ("mme-x.localdomain", ["mme-y.localdomain"], False),  # the relay received it from Y, which claims to be X
    ("mme-x.localdomain", ["dra1.localdomain", "mme-x.localdomain"], False),  # the originator is not first
])
def test_a_relayed_request_is_served_when_its_first_route_record_names_its_origin_host(
        origin: str, records: list[str], served: bool) -> None:
    wire = open_wire(client_node=LocalNode("dra.localdomain", "localdomain"))
    request = from_origin(origin, *records)
    if served:
        events = wire.server.receive_data(request.to_bytes(), 1.0)
        assert len(of(RequestReceived, events)) == 1 and not of(BadMessage, events)
        return
    answer, bad = refused(wire, request)
    assert result_code_of(answer) == ResultCode.DIAMETER_AUTHORIZATION_REJECTED and not answer.is_error
    assert answer.find("Failed-AVP").value[0].value == origin
    assert records[0] in answer.value("Error-Message")
    assert bad.origin_host == records[0]  # the node the relay says it got the request from
    assert wire.server.state is PeerState.OPEN


def test_a_t_flagged_request_claiming_another_peers_origin_does_not_get_its_cached_answer() -> None:
    """Duplicates are kept by Origin-Host and End-to-End id for the whole server: without the
    identity check, peer A could ask for peer B's answers (its sessions, its IMEIs' status)."""
    shared = DuplicateCache(16)
    b = open_wire(server_settings=settings(), client_node=LocalNode("mme-b.localdomain", "localdomain"))
    b.server.duplicates = shared
    request = from_origin("mme-b.localdomain", session="b")
    request.end_to_end = 0x4242
    (received,) = of(RequestReceived, b.server.receive_data(request.to_bytes(), 1.0))
    b.server.send_answer(received.message, eca_for(received.message, status=1))
    b.server.data_to_send()
    a = open_wire(client_node=LocalNode("mme-a.localdomain", "localdomain"))
    a.server.duplicates = shared
    replay = from_origin("mme-b.localdomain", session="b")
    replay.end_to_end, replay.flags = 0x4242, replay.flags | FLAG_T
    answer, bad = refused(a, replay)
    assert result_code_of(answer) == ResultCode.DIAMETER_AUTHORIZATION_REJECTED
    assert answer.find("Equipment-Status") is None and bad.origin_host == "mme-a.localdomain"


def test_base_requests_are_not_checked_for_the_originator() -> None:
    """DWR and DPR are the peer's own, hop by hop: they are answered whatever they say."""
    wire = open_wire()
    dwr = make_message(Command.DEVICE_WATCHDOG, request=True, application_id=0)
    dwr.add("Origin-Host", "other.localdomain").add("Origin-Realm", "localdomain")
    events = wire.server.receive_data(dwr.to_bytes(), 1.0)
    assert not of(BadMessage, events)
    assert result_code_of(decode_message(wire.server.data_to_send())) == ResultCode.DIAMETER_SUCCESS


def test_a_refused_peer_is_told_not_allowed_and_the_event_says_why() -> None:
    """The allow-list's reason (which address for which name) goes to the log, not the wire."""
    why = "127.0.0.1 is outside mme.localdomain@192.0.2.0/24"
    wire = pair(server_settings=settings(accept_peer=lambda info, address: why))
    wire.server_events += wire.server.connection_made(0)
    wire.client_events += wire.client.connection_made(0)
    wire.server_events += wire.server.receive_data(wire.client.data_to_send(), 0)
    cea = decode_message(wire.server.data_to_send())
    assert result_code_of(cea) == ResultCode.DIAMETER_UNKNOWN_PEER
    assert cea.value("Error-Message") == "peer mme.localdomain is not allowed"
    (bad,) = of(BadMessage, wire.server_events)
    assert bad.reason == f"peer mme.localdomain is not allowed: {why}"


def test_application_requests_are_thrown_away_while_reopening_but_dwr_is_answered() -> None:
    wire = open_wire()
    wire.client.connection_lost(1.0)
    server2 = Peer(EIR, Role.RESPONDER, settings())
    # Seen from the server: a fresh connection is OKAY at once; seen from the client, REOPEN.
    wire2 = Wire(wire.client, server2)
    wire2.connect(2.0)
    assert wire.client.watchdog.state is WatchdogState.REOPEN
    request = make_message(Command.ME_IDENTITY_CHECK, request=True, proxiable=True, application_id=APP_S13)
    request.add("Session-Id", "eir;1").add("Auth-Session-State", 1).add("Origin-Host", "eir.localdomain")
    request.add("Origin-Realm", "localdomain").add("Destination-Realm", "localdomain")
    request.avps.append(request.group("Terminal-Information", ("IMEI", "35209900176148")))
    server2.send_request(request, 2.0)
    wire2.pump(2.0)
    assert not of(RequestReceived, wire2.client_events)
    assert wire.client.watchdog.num_dwa == 1  # its own DWR was answered meanwhile


@pytest.mark.parametrize(("avp", "value", "code"), [
    ("Route-Record", "eir.localdomain", ResultCode.DIAMETER_LOOP_DETECTED),
    ("Destination-Host", "eir2.localdomain", ResultCode.DIAMETER_UNABLE_TO_DELIVER),
])
def test_requests_this_node_must_not_serve_get_protocol_errors(avp: str, value: str, code: int) -> None:
    wire = open_wire()
    request = ecr()
    request.add(avp, value)
    request.hop_by_hop = 77
    events = wire.server.receive_data(request.to_bytes(), 1.0)
    answer = decode_message(wire.server.data_to_send())
    assert result_code_of(answer) == code and answer.is_error
    assert answer.find("Failed-AVP").value[0].value == value
    assert not of(RequestReceived, events)


def test_request_for_another_realm_gets_3003() -> None:
    wire = open_wire()
    request = ecr()
    request.avps = [a for a in request.avps if a.name != "Destination-Realm"]
    request.add("Destination-Realm", "other.example")
    wire.server.receive_data(request.to_bytes(), 1.0)
    answer = decode_message(wire.server.data_to_send())
    assert result_code_of(answer) == ResultCode.DIAMETER_REALM_NOT_SERVED and answer.is_error


def test_destination_host_naming_this_node_is_served() -> None:
    wire = open_wire()
    request = ecr().add("Destination-Host", "EIR.localdomain")
    events = wire.server.receive_data(request.to_bytes(), 1.0)
    assert len(of(RequestReceived, events)) == 1
