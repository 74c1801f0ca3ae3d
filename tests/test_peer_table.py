"""The peer's (state, event) table (RFC 6733 5.6): every pair is either a row of the table or
takes the one not-allowed path, and each row written behaves as the RFC's row says."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from diameter.answers import answer_to, finish_answer, result_code_of
from diameter.capabilities import LocalNode, build_cer, capability_avps
from diameter.constants import APP_S13, FLAG_E, FLAG_T, Command, DisconnectCause, ResultCode
from diameter.disconnect import build_dpr
from diameter.errors import FramingError
from diameter.message import Message, decode_message, make_message
from diameter.peer import (
    TRANSITIONS,
    AnswerReceived,
    BadMessage,
    CapabilitiesExchanged,
    CloseConnection,
    Event,
    Peer,
    PeerDisconnecting,
    PeerEvent,
    PeerSettings,
    PeerState,
    RequestReceived,
    Role,
    allowed,
)
from diameter.watchdog import WatchdogState

MME = LocalNode("mme.localdomain", "localdomain")
EIR = LocalNode("eir.localdomain", "localdomain")
HSS = LocalNode("hss.localdomain", "localdomain", auth_application_ids=(16777251,),
                vendor_specific_applications=((10415, 16777251),))
TW = 30.0


def settings(**kw: object) -> PeerSettings:
    return PeerSettings(tw_init=TW, tw_jitter=0.0, rng=random.Random(7), cer_timeout=5.0, dpa_timeout=2.0,
                        **kw)  # type: ignore[arg-type]


def wire(message: Message) -> Message:
    """``message`` as the Peer receives it: encoded and decoded again."""
    return decode_message(message.to_bytes())


def of(kind: type, events: list[Event]) -> list:
    return [e for e in events if isinstance(e, kind)]


def ecr(session: str = "1") -> Message:
    m = make_message(Command.ME_IDENTITY_CHECK, request=True, proxiable=True, application_id=APP_S13)
    m.add("Session-Id", f"mme.localdomain;{session}").add("Auth-Session-State", 1)
    m.add("Origin-Host", "mme.localdomain").add("Origin-Realm", "localdomain").add("Destination-Realm", "localdomain")
    m.avps.append(m.group("Terminal-Information", ("IMEI", "35209900176148")))
    return m


def eca_for(request: Message) -> Message:
    a = answer_to(request, "eir.localdomain", "localdomain", ResultCode.DIAMETER_SUCCESS)
    a.add("Auth-Session-State", 1).add("Equipment-Status", 0)
    return finish_answer(request, a)


def cea_for(cer: Message, node: LocalNode = EIR, code: int = ResultCode.DIAMETER_SUCCESS) -> Message:
    cea = answer_to(cer, node.origin_host, node.origin_realm, code)
    capability_avps(cea, node)
    return cea


def base_request(command: int, **avps: object) -> Message:
    m = make_message(command, request=True, application_id=0)
    m.add("Origin-Host", "mme.localdomain").add("Origin-Realm", "localdomain")
    for name, value in avps.items():
        m.add(name.replace("_", "-"), value)
    return m


def base_answer(request: Message) -> Message:
    return finish_answer(request, answer_to(request, "mme.localdomain", "localdomain", ResultCode.DIAMETER_SUCCESS))


# --- a Peer in each state ------------------------------------------------------------------------

def closed() -> Peer:
    return Peer(MME, Role.INITIATOR, settings())


def wait_cer() -> Peer:
    server = Peer(EIR, Role.RESPONDER, settings())
    server.connection_made(0.0)
    return server


def wait_cea(**kw: object) -> Peer:
    client = Peer(MME, Role.INITIATOR, settings(**kw))
    client.connection_made(0.0)
    return client


def open_pair(**client_settings: object) -> tuple[Peer, Peer]:
    """An initiator (I-Open) and a responder (R-Open) after CER/CEA."""
    client, server = wait_cea(**client_settings), wait_cer()
    server.receive_data(client.data_to_send(), 0.0)
    client.receive_data(server.data_to_send(), 0.0)
    assert client.state is PeerState.OPEN and server.state is PeerState.OPEN
    return client, server


def r_open() -> Peer:
    return open_pair()[1]


def closing() -> Peer:
    server = r_open()
    server.disconnect(1.0)
    server.data_to_send()
    assert server.state is PeerState.CLOSING
    return server


IN_STATE: dict[PeerState, Callable[[], Peer]] = {
    PeerState.CLOSED: closed, PeerState.WAIT_CER: wait_cer, PeerState.WAIT_CEA: wait_cea,
    PeerState.OPEN: r_open, PeerState.CLOSING: closing,
}


def subject(event: PeerEvent) -> object:
    """What comes with ``event``: the message received or sent, the error, or nothing."""
    cer = build_cer(MME)
    cer.hop_by_hop = 1
    dwr, dpr = base_request(Command.DEVICE_WATCHDOG), build_dpr(MME, DisconnectCause.BUSY)
    request = ecr()
    request.hop_by_hop = 9
    return {
        PeerEvent.UNTRUSTED_STREAM: FramingError("unsupported Diameter version 2"),
        PeerEvent.STOP: build_dpr(EIR, DisconnectCause.REBOOTING),
        PeerEvent.SEND_MESSAGE: ecr(),
        PeerEvent.RCV_CER: wire(cer),
        PeerEvent.RCV_CEA: wire(cea_for(cer)),
        PeerEvent.RCV_DWR: wire(dwr),
        PeerEvent.RCV_DWA: wire(base_answer(dwr)),
        PeerEvent.RCV_DPR: wire(dpr),
        PeerEvent.RCV_DPA: wire(base_answer(dpr)),
        PeerEvent.RCV_REQUEST: wire(request),
        PeerEvent.RCV_ANSWER: wire(eca_for(request)),
    }.get(event)


RECEIVED = {e for e in PeerEvent if e.name.startswith("RCV_")}


# --- every pair --------------------------------------------------------------------------------------

def test_the_connection_and_the_stream_are_events_of_every_state() -> None:
    for state in PeerState:
        assert allowed(state, PeerEvent.PEER_DISC) and allowed(state, PeerEvent.UNTRUSTED_STREAM)
    assert all(isinstance(state, PeerState) and isinstance(event, PeerEvent) for state, event in TRANSITIONS)


@pytest.mark.parametrize("state", list(PeerState), ids=lambda s: s.value)
@pytest.mark.parametrize("event", list(PeerEvent), ids=lambda e: e.value)
def test_every_pair_is_a_row_or_takes_the_not_allowed_path(state: PeerState, event: PeerEvent) -> None:
    peer = IN_STATE[state]()
    assert peer.state is state
    if allowed(state, event):
        events = peer.handle_event(event, subject(event), 10.0)
        assert isinstance(peer.state, PeerState) and isinstance(events, list)
        return
    # Not allowed: what each kind of event does there, the same in every state.
    if event in (PeerEvent.START, PeerEvent.SEND_MESSAGE):  # a call the I/O layer must not make now
        with pytest.raises(RuntimeError, match=state.value):
            peer.handle_event(event, subject(event), 10.0)
        assert peer.state is state
        return
    events = peer.handle_event(event, subject(event), 10.0)
    if event in RECEIVED:  # RFC 6733 5.6 "Error": reported, not answered, the connection closed
        name = subject(event).name  # type: ignore[attr-defined]
        (bad, close) = events
        assert isinstance(bad, BadMessage) and (bad.result_code, bad.command, bad.answered) == (0, name, False)
        assert isinstance(close, CloseConnection) and close.reason == bad.reason and name in close.reason
        assert peer.state is PeerState.CLOSED and peer.data_to_send() == b""
    elif event is PeerEvent.STOP:
        assert events == [CloseConnection("disconnect before the peer was open")]
        assert peer.state is PeerState.CLOSED
    else:  # a timer that is not this state's
        assert event in (PeerEvent.TIMEOUT, PeerEvent.TW)
        assert events == [] and peer.state is state


def test_a_message_before_cer_is_named_so() -> None:
    peer = wait_cer()
    events = peer.receive_data(ecr().to_bytes(), 1.0)
    (bad,) = of(BadMessage, events)
    assert bad.reason == f"{bad.command} before CER" and not bad.answered
    assert peer.state is PeerState.CLOSED


# --- the rows, one test each --------------------------------------------------------------------------

def test_closed_start_initiator_sends_cer_and_waits_for_cea() -> None:
    """Closed, Start (I-Rcv-Conn-Ack): I-Snd-CER, Wait-I-CEA."""
    peer = closed()
    assert peer.connection_made(100.0) == []
    assert peer.state is PeerState.WAIT_CEA and peer.next_deadline() == 105.0
    sent = decode_message(peer.data_to_send())
    assert sent.command_code == Command.CAPABILITIES_EXCHANGE and sent.is_request


def test_closed_start_responder_accepts_and_waits_for_cer() -> None:
    """Closed, Start (R-Accept, the first half of R-Conn-CER): Wait-CER, nothing sent."""
    peer = Peer(EIR, Role.RESPONDER, settings())
    assert peer.connection_made(100.0) == []
    assert peer.state is PeerState.WAIT_CER and peer.next_deadline() == 105.0 and peer.data_to_send() == b""


def test_wait_cer_cer_is_processed_answered_and_opens() -> None:
    """R-Conn-CER: R-Accept, Process-CER, R-Snd-CEA, R-Open."""
    peer = wait_cer()
    events = peer.receive_data(build_cer(MME).to_bytes(), 1.0)
    (opened,) = of(CapabilitiesExchanged, events)
    assert opened.peer.origin_host == "mme.localdomain" and opened.applications == frozenset({APP_S13})
    assert result_code_of(decode_message(peer.data_to_send())) == ResultCode.DIAMETER_SUCCESS
    assert peer.state is PeerState.OPEN and peer.role is Role.RESPONDER


def test_wait_cer_a_cer_refused_gets_an_error_cea_and_closes() -> None:
    """Process-CER fails: the error CEA (5010 here), Closed."""
    peer = wait_cer()
    events = peer.receive_data(build_cer(HSS).to_bytes(), 1.0)
    assert [e.result_code for e in of(BadMessage, events)] == [ResultCode.DIAMETER_NO_COMMON_APPLICATION]
    assert of(CloseConnection, events) and peer.state is PeerState.CLOSED
    assert result_code_of(decode_message(peer.data_to_send())) == ResultCode.DIAMETER_NO_COMMON_APPLICATION


def test_wait_cer_timeout_closes() -> None:
    peer = wait_cer()
    assert peer.handle_timer(4.9) == [] and peer.state is PeerState.WAIT_CER
    assert peer.handle_timer(5.0) == [CloseConnection("no CER in time")] and peer.state is PeerState.CLOSED


def test_wait_cer_peer_disc_closes() -> None:
    peer = wait_cer()
    assert peer.connection_lost(1.0) == [] and peer.state is PeerState.CLOSED


def test_wait_i_cea_cea_is_processed_and_opens() -> None:
    """Wait-I-CEA, I-Rcv-CEA: Process-CEA, I-Open."""
    peer = wait_cea()
    cer = decode_message(peer.data_to_send())
    events = peer.receive_data(cea_for(cer).to_bytes(), 1.0)
    assert of(CapabilitiesExchanged, events) and peer.state is PeerState.OPEN
    assert peer.cea_result == ResultCode.DIAMETER_SUCCESS


def test_wait_i_cea_a_refusing_cea_closes() -> None:
    peer = wait_cea()
    cer = decode_message(peer.data_to_send())
    refusal = cea_for(cer, code=ResultCode.DIAMETER_UNKNOWN_PEER)
    refusal.flags |= FLAG_E
    events = peer.receive_data(refusal.to_bytes(), 1.0)
    assert events == [CloseConnection("capabilities exchange failed: CEA 3010")]
    assert peer.state is PeerState.CLOSED and peer.cea_result == ResultCode.DIAMETER_UNKNOWN_PEER


@pytest.mark.parametrize("answer", ["ECA", "DWA", "DPA", "CEA of no CER"])
def test_wait_i_cea_non_cea_closes(answer: str) -> None:
    """Wait-I-CEA, I-Rcv-Non-CEA: Error, Closed (no BadMessage: the CEA never came)."""
    peer = wait_cea()
    cer = decode_message(peer.data_to_send())
    message = {"ECA": lambda: eca_for(ecr()), "DWA": lambda: base_answer(base_request(Command.DEVICE_WATCHDOG)),
               "DPA": lambda: base_answer(build_dpr(MME, DisconnectCause.BUSY)),
               "CEA of no CER": lambda: cea_for(cer)}[answer]()
    if answer == "CEA of no CER":
        message.hop_by_hop = cer.hop_by_hop + 1
    events = peer.receive_data(message.to_bytes(), 1.0)
    (close,) = events
    assert isinstance(close, CloseConnection) and "received while waiting for CEA" in close.reason
    assert peer.state is PeerState.CLOSED


def test_wait_i_cea_timeout_closes() -> None:
    peer = wait_cea()
    assert peer.handle_timer(5.0) == [CloseConnection("no CEA in time")] and peer.state is PeerState.CLOSED


def test_wait_i_cea_peer_disc_closes_and_keeps_no_cer_for_later() -> None:
    """Wait-I-CEA, I-Peer-Disc: I-Disc, Closed; the CER is not retransmitted."""
    peer = wait_cea()
    assert peer.connection_lost(1.0) == [] and peer.state is PeerState.CLOSED
    assert peer.pending.retransmissions() == []


def test_open_send_message_sends_and_waits_for_the_answer() -> None:
    """I-Open, Send-Message: I-Snd-Message; its answer (Rcv-Message: Process) is matched."""
    client, server = open_pair()
    request = client.send_request(ecr(), 1.0)
    (received,) = of(RequestReceived, server.receive_data(client.data_to_send(), 1.0))
    assert received.message.hop_by_hop == request.hop_by_hop
    server.send_answer(received.message, eca_for(received.message))
    (answered,) = of(AnswerReceived, client.receive_data(server.data_to_send(), 1.0))
    assert answered.request is request and client.state is PeerState.OPEN


def test_open_rcv_dwr_is_answered() -> None:
    """R-Open, R-Rcv-DWR: Process-DWR, R-Snd-DWA."""
    server = r_open()
    assert server.receive_data(base_request(Command.DEVICE_WATCHDOG).to_bytes(), 1.0) == []
    dwa = decode_message(server.data_to_send())
    assert dwa.command_code == Command.DEVICE_WATCHDOG and not dwa.is_request
    assert result_code_of(dwa) == ResultCode.DIAMETER_SUCCESS and server.state is PeerState.OPEN


def test_open_rcv_dwa_is_processed_by_the_watchdog() -> None:
    """I-Open, I-Rcv-DWA: Process-DWA (the watchdog's DWR is no longer pending)."""
    client, server = open_pair()
    client.handle_timer(TW)
    assert client.watchdog.pending
    server.receive_data(client.data_to_send(), TW)
    assert client.receive_data(server.data_to_send(), TW) == []
    assert not client.watchdog.pending and client.watchdog.state is WatchdogState.OKAY


def test_open_tw_sends_dwr() -> None:
    """Open, Tw (ours, RFC 3539): the watchdog sends DWR."""
    server = r_open()
    assert server.handle_timer(TW) == []
    assert decode_message(server.data_to_send()).command_code == Command.DEVICE_WATCHDOG


@pytest.mark.parametrize("role", [Role.INITIATOR, Role.RESPONDER])
def test_open_stop_sends_dpr_and_is_closing(role: Role) -> None:
    """I-Open/R-Open, Stop: I-Snd-DPR/R-Snd-DPR, Closing."""
    client, server = open_pair()
    peer = client if role is Role.INITIATOR else server
    assert peer.disconnect(1.0, DisconnectCause.BUSY) == []
    dpr = decode_message(peer.data_to_send())
    assert dpr.command_code == Command.DISCONNECT_PEER and dpr.value("Disconnect-Cause") == DisconnectCause.BUSY
    assert peer.state is PeerState.CLOSING and peer.next_deadline() == 3.0


@pytest.mark.parametrize("role", [Role.INITIATOR, Role.RESPONDER])
def test_open_rcv_dpr_sends_dpa_and_is_closing(role: Role) -> None:
    """I-Open/R-Open, Rcv-DPR: Snd-DPA, Closing (RFC 6733; RFC 3588 went to Closed)."""
    client, server = open_pair()
    peer = client if role is Role.INITIATOR else server
    events = peer.receive_data(build_dpr(EIR, DisconnectCause.BUSY).to_bytes(), 1.0)
    assert events == [PeerDisconnecting(DisconnectCause.BUSY)]
    dpa = decode_message(peer.data_to_send())
    assert dpa.command_code == Command.DISCONNECT_PEER and not dpa.is_request
    assert peer.state is PeerState.CLOSING


def test_open_peer_disc_closes_and_the_watchdog_is_down() -> None:
    """Open, Peer-Disc: Disc, Closed."""
    server = r_open()
    server.connection_lost(1.0)
    assert server.state is PeerState.CLOSED and server.watchdog.state is WatchdogState.DOWN


def test_open_rcv_cer_gets_5012_and_the_connection_stays() -> None:
    """Open, Rcv-CER (ours): refused 5012 with the capability AVPs, still open."""
    server = r_open()
    (bad,) = server.receive_data(build_cer(MME).to_bytes(), 1.0)
    assert isinstance(bad, BadMessage) and bad.result_code == ResultCode.DIAMETER_UNABLE_TO_COMPLY
    assert result_code_of(decode_message(server.data_to_send())) == ResultCode.DIAMETER_UNABLE_TO_COMPLY
    assert server.state is PeerState.OPEN


def test_closing_rcv_dpa_closes() -> None:
    """Closing, Rcv-DPA: Disc, Closed."""
    client, server = open_pair()
    client.disconnect(1.0)
    server.receive_data(client.data_to_send(), 1.0)
    assert client.receive_data(server.data_to_send(), 1.0) == [CloseConnection("DPA received")]
    assert client.state is PeerState.CLOSED


def test_closing_a_dpa_of_no_dpr_is_reported_and_stays_closing() -> None:
    peer = closing()
    stray = base_answer(build_dpr(MME, DisconnectCause.BUSY))
    stray.hop_by_hop = 0x0BAD
    (bad,) = peer.receive_data(stray.to_bytes(), 1.5)
    assert isinstance(bad, BadMessage) and "unknown Hop-by-Hop" in bad.reason
    assert peer.state is PeerState.CLOSING


def test_closing_timeout_closes() -> None:
    """Closing, Timeout: Error, Closed."""
    peer = closing()
    assert peer.handle_timer(2.9) == []
    assert peer.handle_timer(3.0) == [CloseConnection("no DPA in time")] and peer.state is PeerState.CLOSED


def test_closing_peer_disc_closes() -> None:
    peer = closing()
    peer.connection_lost(1.5)
    assert peer.state is PeerState.CLOSED and peer.next_deadline() is None


@pytest.mark.parametrize("state", list(PeerState), ids=lambda s: s.value)
def test_untrusted_stream_closes_in_every_state(state: PeerState) -> None:
    peer = IN_STATE[state]()
    events = peer.receive_data(b"\x02\x00\x00\x14" + bytes(16), 1.0)
    assert [type(e) for e in events] == [BadMessage, CloseConnection] and peer.state is PeerState.CLOSED


def test_closed_peer_disc_after_a_close_keeps_the_applications_requests() -> None:
    """Closed, Peer-Disc (ours): the transport confirms a close the Peer asked for; the
    application's requests still pending are kept for the next connection, with T."""
    client = open_pair(request_timeout=1000.0)[0]
    request = client.send_request(ecr(), 1.0)
    client.data_to_send()
    for now in (TW, 2 * TW, 3 * TW):  # no DWA ever comes: SUSPECT, then DOWN and closed
        client.handle_timer(now)
    assert client.state is PeerState.CLOSED and client.watchdog.state is WatchdogState.DOWN
    assert client.connection_lost(3 * TW) == [] and client.state is PeerState.CLOSED
    (again,) = client.pending.retransmissions()
    assert again is request and again.flags & FLAG_T


def test_wait_i_cea_requests_are_handled_as_on_an_open_connection() -> None:
    """Wait-I-CEA, a request (ours, kept): the watchdog throws an ECR away, a DWR is answered."""
    peer = wait_cea()
    peer.data_to_send()
    assert peer.receive_data(ecr().to_bytes(), 1.0) == [] and peer.data_to_send() == b""
    assert peer.receive_data(base_request(Command.DEVICE_WATCHDOG).to_bytes(), 1.0) == []
    assert decode_message(peer.data_to_send()).command_code == Command.DEVICE_WATCHDOG
    assert peer.state is PeerState.WAIT_CEA


@pytest.mark.parametrize("command", [Command.CAPABILITIES_EXCHANGE, Command.DISCONNECT_PEER])
def test_open_a_cea_or_dpa_is_an_answer_like_any_other(command: int) -> None:
    """Open, Rcv-CEA and Rcv-DPA (ours): matched by Hop-by-Hop id like any answer."""
    server = r_open()
    stray = base_answer(base_request(command))
    stray.hop_by_hop = 0x0BAD
    (bad,) = server.receive_data(stray.to_bytes(), 1.0)
    assert isinstance(bad, BadMessage) and "unknown Hop-by-Hop" in bad.reason and server.state is PeerState.OPEN


def test_closing_answers_to_outstanding_requests_are_still_delivered() -> None:
    """Closing, Rcv-Message (ours, kept): a request sent before our DPR gets its answer."""
    client, server = open_pair()
    request = client.send_request(ecr(), 1.0)
    (received,) = of(RequestReceived, server.receive_data(client.data_to_send(), 1.0))
    client.disconnect(1.5)
    server.send_answer(received.message, eca_for(received.message))
    (answered,) = of(AnswerReceived, client.receive_data(server.data_to_send(), 1.6))
    assert answered.request is request and client.state is PeerState.CLOSING
