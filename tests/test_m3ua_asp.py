"""The M3UA ASP state machines (sigtran/asp.py): the server (SGP/IPSP) side over a full ASP
lifecycle and every error case, the client (ASP) side, the two talking to each other, and
fuzzing (marked ``fuzz``: the profile's count, 10,000 in CI): whatever the octets, the
machines never raise, everything they send decodes, and they keep serving after every error.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sigtran.asp import (
    AspActive,
    AspClient,
    AspDown,
    AspInactive,
    AspServer,
    AspState,
    AspUp,
    BadMessage,
    ClientSettings,
    CloseConnection,
    DataDiscarded,
    DataReceived,
    ErrorReceived,
    Event,
    MessageReceived,
    NotifyReceived,
    ServerSettings,
)
from sigtran.m3ua import (
    AsState,
    ErrorCode,
    Kind,
    M3uaError,
    Message,
    MessageReader,
    ProtocolData,
    StatusType,
    Tag,
    TrafficMode,
    build_aspac,
    build_data,
    build_notify,
    decode_message,
    error_message,
    u32,
)
from tests.m3ua_samples import NAMES, SCCP_UDT, sample_bytes
from tests.test_m3ua import mutate

RC = 7
BEAT = Message(Kind.BEAT).add(Tag.HEARTBEAT_DATA, b"ping")
DATA = build_data(0x0102, 0x0203, 3, 2, 0, 5, SCCP_UDT, routing_context=RC)


def replies(endpoint: AspServer | AspClient) -> list[Message]:
    return [decode_message(frame) for frame in MessageReader().feed(endpoint.data_to_send())]


def kinds(messages: list[Message]) -> list[Kind]:
    return [m.kind for m in messages]


def feed(endpoint: AspServer | AspClient, *messages: Message | bytes, now: float = 1.0
         ) -> tuple[list[Event], list[Message]]:
    data = b"".join(m if isinstance(m, bytes) else m.to_bytes() for m in messages)
    events = endpoint.receive_data(data, now)
    return events, replies(endpoint)


def server(**settings: object) -> AspServer:
    return AspServer(ServerSettings(**{"routing_contexts": frozenset({RC}), **settings}))  # type: ignore[arg-type]


def inactive_server(**settings: object) -> AspServer:
    s = server(**settings)
    feed(s, Message(Kind.ASPUP))
    return s


def active_server(**settings: object) -> AspServer:
    s = inactive_server(**settings)
    feed(s, build_aspac(TrafficMode.LOADSHARE, (RC,)))
    assert s.state is AspState.ACTIVE
    return s


def assert_err(message: Message, code: ErrorCode, offending: Message | bytes | None = None) -> None:
    assert message.kind is Kind.ERR and message.error_code == code
    if offending is not None:
        wire = offending if isinstance(offending, bytes) else offending.to_bytes()
        assert message.get(Tag.DIAGNOSTIC_INFORMATION) == wire


def assert_still_serving(endpoint: AspServer | AspClient) -> None:
    events, out = feed(endpoint, BEAT)
    assert events == [] and kinds(out) == [Kind.BEAT_ACK] and out[0].get(Tag.HEARTBEAT_DATA) == b"ping"


# --- the server over a full lifecycle -------------------------------------------------------------

def test_full_lifecycle() -> None:
    s = server()
    assert s.state is AspState.DOWN

    events, out = feed(s, Message(Kind.ASPUP).add(Tag.ASP_IDENTIFIER, u32(42)))
    assert events == [AspUp(42)] and s.state is AspState.INACTIVE
    assert kinds(out) == [Kind.ASPUP_ACK, Kind.NTFY]
    assert out[1].status == (StatusType.AS_STATE_CHANGE, AsState.AS_INACTIVE)

    assert_still_serving(s)

    events, out = feed(s, build_aspac(TrafficMode.LOADSHARE, (RC,)))
    assert events == [AspActive(TrafficMode.LOADSHARE, (RC,))] and s.state is AspState.ACTIVE
    assert kinds(out) == [Kind.ASPAC_ACK, Kind.NTFY]
    assert out[0].traffic_mode == TrafficMode.LOADSHARE and out[0].routing_contexts == (RC,)
    assert out[1].status == (StatusType.AS_STATE_CHANGE, AsState.AS_ACTIVE) and out[1].routing_contexts == (RC,)

    events, out = feed(s, DATA)
    assert out == []
    assert events == [DataReceived(ProtocolData(0x0102, 0x0203, 3, 2, 0, 5, SCCP_UDT), RC)]
    received = events[0]
    assert isinstance(received, DataReceived)
    s.send_data(received.data.reply(b"answer"), received.routing_context)
    (answer,) = replies(s)
    assert answer.kind is Kind.DATA and answer.routing_contexts == (RC,)
    assert answer.protocol_data == ProtocolData(0x0203, 0x0102, 3, 2, 0, 5, b"answer")

    events, out = feed(s, Message(Kind.ASPIA).add(Tag.ROUTING_CONTEXT, u32(RC)), now=10.0)
    assert events == [AspInactive((RC,))] and s.state is AspState.INACTIVE
    assert kinds(out) == [Kind.ASPIA_ACK, Kind.NTFY] and out[0].routing_contexts == (RC,)
    assert out[1].status == (StatusType.AS_STATE_CHANGE, AsState.AS_PENDING)
    assert s.next_deadline() == 12.0
    assert s.handle_timer(11.9) == [] and replies(s) == []
    assert s.handle_timer(12.0) == []
    (ntfy,) = replies(s)
    assert ntfy.status == (StatusType.AS_STATE_CHANGE, AsState.AS_INACTIVE) and s.next_deadline() is None

    events, out = feed(s, Message(Kind.ASPDN))
    assert events == [AspDown()] and kinds(out) == [Kind.ASPDN_ACK] and s.state is AspState.DOWN

    events, out = feed(s, Message(Kind.ASPUP))  # and up again on the same connection
    assert events == [AspUp(None)] and s.state is AspState.INACTIVE


def test_reactivation_while_as_pending_cancels_the_recovery_timer() -> None:
    s = active_server()
    feed(s, Message(Kind.ASPIA), now=5.0)
    events, out = feed(s, build_aspac(), now=6.0)
    assert events == [AspActive(None, ())] and kinds(out) == [Kind.ASPAC_ACK, Kind.NTFY]
    assert out[1].status == (StatusType.AS_STATE_CHANGE, AsState.AS_ACTIVE)
    assert s.next_deadline() is None and s.handle_timer(100.0) == [] and replies(s) == []


def test_repeated_requests_are_acknowledged_again() -> None:
    s = inactive_server()
    assert feed(s, Message(Kind.ASPUP)) == ([], [Message(Kind.ASPUP_ACK)])
    assert feed(s, Message(Kind.ASPIA)) == ([], [Message(Kind.ASPIA_ACK)])
    s = active_server()
    events, out = feed(s, build_aspac(TrafficMode.LOADSHARE, (RC,)))
    assert events == [] and kinds(out) == [Kind.ASPAC_ACK]
    s = server()
    assert feed(s, Message(Kind.ASPDN)) == ([], [Message(Kind.ASPDN_ACK)])


def test_aspdn_from_active() -> None:
    s = active_server()
    events, out = feed(s, Message(Kind.ASPDN), now=10.0)
    assert events == [AspDown()] and kinds(out) == [Kind.ASPDN_ACK]
    assert s.next_deadline() == 12.0  # AS-PENDING: T(r) runs (RFC 4666 4.3.2)
    events, out = feed(s, DATA)
    assert_err(out[0], ErrorCode.UNEXPECTED_MESSAGE, DATA)


def test_beat_without_data_and_in_every_state() -> None:
    for s in (server(), inactive_server(), active_server()):
        assert feed(s, Message(Kind.BEAT)) == ([], [Message(Kind.BEAT_ACK)])
        assert_still_serving(s)


def test_any_routing_context_when_none_is_configured() -> None:
    s = AspServer()
    feed(s, Message(Kind.ASPUP))
    events, _ = feed(s, build_aspac(TrafficMode.OVERRIDE, (1234,)))
    assert events == [AspActive(TrafficMode.OVERRIDE, (1234,))]


def test_peer_err_ntfy_and_scon_are_reported_not_answered() -> None:
    s = active_server()
    events, out = feed(s, error_message(ErrorCode.PROTOCOL_ERROR, b"x"), build_notify(2, 3, (RC,)))
    assert out == []
    assert events == [ErrorReceived(ErrorCode.PROTOCOL_ERROR, b"x"), NotifyReceived(2, 3, (RC,))]
    scon = Message(Kind.SCON).add(Tag.AFFECTED_POINT_CODE, u32(5))
    assert feed(s, scon) == ([MessageReceived(scon)], [])
    assert feed(s, Message(Kind.BEAT_ACK)) == ([], [])


def test_daud() -> None:
    s = active_server(point_codes=frozenset({0x203}))
    daud = Message(Kind.DAUD).add(Tag.ROUTING_CONTEXT, u32(RC)).add(Tag.AFFECTED_POINT_CODE, u32(0x203))
    events, out = feed(s, daud)
    assert events == [] and kinds(out) == [Kind.DAVA]
    assert out[0].affected_point_codes == ((0, 0x203),) and out[0].routing_contexts == (RC,)
    both = Message(Kind.DAUD).add(Tag.AFFECTED_POINT_CODE, u32(0x203) + u32(0x999))
    events, out = feed(s, both)
    assert kinds(out) == [Kind.DAVA, Kind.ERR]
    assert_err(out[1], ErrorCode.DESTINATION_STATUS_UNKNOWN, both)
    assert out[1].affected_point_codes == ((0, 0x999),)
    assert [type(e) for e in events] == [BadMessage]


def test_data_for_an_asp_that_is_not_active_is_dropped_not_raised() -> None:
    answer = ProtocolData(1, 2, 3, 0, 0, 0, b"x")
    s = inactive_server()  # AS-INACTIVE: nothing to queue for
    assert s.send_data(answer) is False and replies(s) == []
    c = client()
    assert c.send_data(answer) is False and replies(c) == []
    feed(s, build_aspac())
    assert s.send_data(answer) is True and kinds(replies(s)) == [Kind.DATA]


def test_data_and_aspia_in_one_read_the_answer_waits_for_the_asp_to_be_active_again() -> None:
    """RFC 4666 4.3.2: while AS-PENDING the SGP queues; ASPAC within T(r) gets the answer."""
    s = active_server()
    events, out = feed(s, DATA, Message(Kind.ASPIA), now=5.0)
    assert [type(e) for e in events] == [DataReceived, AspInactive]
    assert kinds(out) == [Kind.ASPIA_ACK, Kind.NTFY]
    received = events[0]
    assert isinstance(received, DataReceived)
    assert s.send_data(received.data.reply(b"answer"), received.routing_context) is True
    assert replies(s) == []  # not to an inactive ASP
    events, out = feed(s, build_aspac(TrafficMode.LOADSHARE, (RC,)), now=6.0)
    assert events == [AspActive(TrafficMode.LOADSHARE, (RC,))]
    assert kinds(out) == [Kind.ASPAC_ACK, Kind.NTFY, Kind.DATA]
    assert out[2].protocol_data == ProtocolData(0x0203, 0x0102, 3, 2, 0, 5, b"answer")
    assert s.handle_timer(100.0) == [] and replies(s) == []


@pytest.mark.parametrize("ending", ["timer", "connection_lost"])
def test_answers_queued_while_as_pending_are_discarded_when_it_ends(ending: str) -> None:
    s = active_server(max_pending=2)
    feed(s, Message(Kind.ASPIA), now=5.0)
    answer = ProtocolData(1, 2, 3, 0, 0, 0, b"x")
    assert [s.send_data(answer) for _ in range(3)] == [True, True, False]  # the third is beyond max_pending
    if ending == "timer":
        assert s.handle_timer(5.0 + 2.0) == [DataDiscarded(2, "T(r) expired with no active ASP")]
        assert [m.status for m in replies(s)] == [(StatusType.AS_STATE_CHANGE, AsState.AS_INACTIVE)]
    else:
        assert s.connection_lost() == [DataDiscarded(2, "connection lost"), AspDown()]
        return
    feed(s, Message(Kind.ASPUP))
    _, out = feed(s, build_aspac())
    assert kinds(out) == [Kind.ASPAC_ACK, Kind.NTFY]  # nothing left over


def test_answers_queued_through_an_aspdn_are_sent_when_the_asp_is_back_within_t_r() -> None:
    """RFC 4666 4.3.2: ASP-DOWN of the last active ASP puts the AS in AS-PENDING as ASPIA
    does. Seen in the socket fuzz: answers discarded at the ASPDN of a DATA's same read."""
    s = active_server()
    events, out = feed(s, DATA, Message(Kind.ASPDN), now=5.0)
    received = events[0]
    assert isinstance(received, DataReceived) and kinds(out) == [Kind.ASPDN_ACK]
    assert s.send_data(received.data.reply(b"answer"), received.routing_context) is True
    assert replies(s) == []
    feed(s, Message(Kind.ASPUP), now=5.5)
    events, out = feed(s, build_aspac(TrafficMode.LOADSHARE, (RC,)), now=6.0)
    assert kinds(out)[-1] is Kind.DATA and out[-1].protocol_data.user_data == b"answer"
    feed(s, Message(Kind.ASPDN), now=7.0)
    assert s.send_data(received.data.reply(b"late"), received.routing_context) is True
    assert s.handle_timer(9.0) == [DataDiscarded(1, "T(r) expired with no active ASP")]


def test_connection_lost() -> None:
    s = active_server()
    assert s.connection_lost() == [AspDown()]
    assert s.receive_data(BEAT.to_bytes(), 2.0) == [] and s.data_to_send() == b""
    assert server().connection_lost() == []


# --- the server's error cases -----------------------------------------------------------------------

ASPAC_RC = build_aspac(routing_contexts=(RC,))
ASPIA = Message(Kind.ASPIA)


@pytest.mark.parametrize(("make", "message", "code"), [
    (server, DATA, ErrorCode.UNEXPECTED_MESSAGE),
    (inactive_server, DATA, ErrorCode.UNEXPECTED_MESSAGE),
    (server, ASPAC_RC, ErrorCode.UNEXPECTED_MESSAGE),
    (server, ASPIA, ErrorCode.UNEXPECTED_MESSAGE),
    (server, Message(Kind.DAUD).add(Tag.AFFECTED_POINT_CODE, u32(1)), ErrorCode.UNEXPECTED_MESSAGE),
    (server, Message(Kind.SCON).add(Tag.AFFECTED_POINT_CODE, u32(1)), ErrorCode.UNEXPECTED_MESSAGE),
    (active_server, Message(Kind.DUNA).add(Tag.AFFECTED_POINT_CODE, u32(1)), ErrorCode.UNEXPECTED_MESSAGE),
    (active_server, Message(Kind.ASPUP_ACK), ErrorCode.UNEXPECTED_MESSAGE),
    (active_server, Message(Kind.ASPAC_ACK), ErrorCode.UNEXPECTED_MESSAGE),
    (active_server, Message(Kind.ASPIA_ACK), ErrorCode.UNEXPECTED_MESSAGE),
    (active_server, Message(Kind.ASPDN_ACK), ErrorCode.UNEXPECTED_MESSAGE),
    (inactive_server, build_aspac(routing_contexts=(8,)), ErrorCode.INVALID_ROUTING_CONTEXT),
    (inactive_server, build_aspac(routing_contexts=(RC, 8)), ErrorCode.INVALID_ROUTING_CONTEXT),
    (inactive_server, build_aspac(traffic_mode=4), ErrorCode.UNSUPPORTED_TRAFFIC_MODE_TYPE),
    (inactive_server, build_aspac(traffic_mode=0), ErrorCode.UNSUPPORTED_TRAFFIC_MODE_TYPE),
    (active_server, build_data(1, 2, 3, 0, 0, 0, b"", routing_context=8), ErrorCode.INVALID_ROUTING_CONTEXT),
    (active_server, Message(Kind.DATA).add(Tag.ROUTING_CONTEXT, u32(RC) + u32(RC))
     .add(Tag.PROTOCOL_DATA, bytes(12)), ErrorCode.PARAMETER_FIELD_ERROR),
    (active_server, Message(Kind.ASPIA).add(Tag.ROUTING_CONTEXT, u32(9)), ErrorCode.INVALID_ROUTING_CONTEXT),
])
def test_error_answers(make: object, message: Message, code: ErrorCode) -> None:
    s = make()  # type: ignore[operator]
    state = s.state
    events, out = feed(s, message)
    assert len(out) == 1
    assert_err(out[0], code, message)
    assert [type(e) for e in events] == [BadMessage] and events[0].code == code
    assert s.state is state
    if code is ErrorCode.INVALID_ROUTING_CONTEXT:
        assert RC not in out[0].routing_contexts and out[0].routing_contexts
    assert_still_serving(s)


def test_broadcast_refused_when_not_configured() -> None:
    s = inactive_server(traffic_modes=frozenset({TrafficMode.OVERRIDE, TrafficMode.LOADSHARE}))
    _, out = feed(s, build_aspac(TrafficMode.BROADCAST))
    assert_err(out[0], ErrorCode.UNSUPPORTED_TRAFFIC_MODE_TYPE)
    assert s.state is AspState.INACTIVE


def test_asp_identifier_required() -> None:
    s = server(asp_identifier_required=True)
    _, out = feed(s, Message(Kind.ASPUP))
    assert_err(out[0], ErrorCode.ASP_IDENTIFIER_REQUIRED, Message(Kind.ASPUP))
    assert s.state is AspState.DOWN
    events, _ = feed(s, Message(Kind.ASPUP).add(Tag.ASP_IDENTIFIER, u32(1)))
    assert events == [AspUp(1)]


def test_aspup_while_active() -> None:
    s = active_server()
    events, out = feed(s, Message(Kind.ASPUP), now=3.0)
    assert kinds(out) == [Kind.ASPUP_ACK, Kind.ERR, Kind.NTFY]
    assert_err(out[1], ErrorCode.UNEXPECTED_MESSAGE, Message(Kind.ASPUP))
    assert out[2].status == (StatusType.AS_STATE_CHANGE, AsState.AS_PENDING)
    assert [type(e) for e in events] == [BadMessage, AspInactive] and s.state is AspState.INACTIVE
    assert s.next_deadline() == 5.0


@pytest.mark.parametrize(("wire", "code"), [
    (bytes.fromhex("0100050100000008"), ErrorCode.UNSUPPORTED_MESSAGE_CLASS),
    (bytes.fromhex("0100090100000008"), ErrorCode.UNSUPPORTED_MESSAGE_CLASS),
    (bytes.fromhex("0100030900000008"), ErrorCode.UNSUPPORTED_MESSAGE_TYPE),
    (bytes.fromhex("0100040000000008"), ErrorCode.UNSUPPORTED_MESSAGE_TYPE),
    (bytes.fromhex("0100010100000008"), ErrorCode.MISSING_PARAMETER),
    (bytes.fromhex("010003010000000c02100004"), ErrorCode.UNEXPECTED_PARAMETER),
    (bytes.fromhex("010003030000000c00090003"), ErrorCode.PARAMETER_FIELD_ERROR),
])
def test_undecodable_messages_are_answered(wire: bytes, code: ErrorCode) -> None:
    for s in (server(), active_server()):
        state = s.state
        events, out = feed(s, wire)
        assert_err(out[0], code, wire) and len(out) == 1
        assert events == [BadMessage(code, events[0].reason, f"class {wire[2]} type {wire[3]}")]  # type: ignore
        assert s.state is state
        assert_still_serving(s)


@pytest.mark.parametrize(("wire", "code"), [
    (bytes.fromhex("0200030100000008"), ErrorCode.INVALID_VERSION),
    (bytes.fromhex("0100030100000006"), ErrorCode.PROTOCOL_ERROR),
    (bytes.fromhex("0100030100000004"), ErrorCode.PROTOCOL_ERROR),
    (bytes.fromhex("01000301ffffff00"), ErrorCode.PROTOCOL_ERROR),
])
def test_untrusted_framing_closes_the_connection(wire: bytes, code: ErrorCode) -> None:
    s = active_server()
    events = s.receive_data(BEAT.to_bytes() + wire, 1.0)
    out = replies(s)
    assert kinds(out) == [Kind.BEAT_ACK, Kind.ERR]  # what came before the bad header is served
    assert_err(out[1], code, wire)
    assert [type(e) for e in events] == [BadMessage, CloseConnection] and events[0].code == code  # type: ignore
    assert s.closed and s.state is AspState.DOWN
    assert s.receive_data(BEAT.to_bytes(), 2.0) == [] and s.data_to_send() == b""


def test_maximum_length_from_settings() -> None:
    s = active_server(max_message_length=64)
    events = s.receive_data(build_data(1, 2, 3, 0, 0, 0, bytes(64)).to_bytes(), 1.0)
    assert isinstance(events[-1], CloseConnection)


def test_a_message_split_across_reads() -> None:
    s = active_server()
    wire = DATA.to_bytes()
    events = [e for i in range(len(wire)) for e in s.receive_data(wire[i:i + 1], 1.0)]
    assert [type(e) for e in events] == [DataReceived]


# --- the client ----------------------------------------------------------------------------------------

def client(**settings: object) -> AspClient:
    return AspClient(ClientSettings(**{"routing_contexts": (RC,), "asp_identifier": 9, **settings}))  # type: ignore


def test_client_lifecycle() -> None:
    c = client()
    assert c.connection_made(0.0) == []
    (aspup,) = replies(c)
    assert aspup.kind is Kind.ASPUP and aspup.asp_identifier == 9

    events, out = feed(c, Message(Kind.ASPUP_ACK), build_notify(1, AsState.AS_INACTIVE))
    assert events == [AspUp(None), NotifyReceived(1, AsState.AS_INACTIVE, ())] and c.state is AspState.INACTIVE
    assert kinds(out) == [Kind.ASPAC] and out[0].traffic_mode == TrafficMode.LOADSHARE
    assert out[0].routing_contexts == (RC,)

    events, out = feed(c, build_aspac(TrafficMode.LOADSHARE, (RC,), Kind.ASPAC_ACK))
    assert events == [AspActive(TrafficMode.LOADSHARE, (RC,))] and out == [] and c.state is AspState.ACTIVE
    assert c.next_deadline() is None

    c.send_data(ProtocolData(1, 2, 3, 2, 0, 0, b"query"), RC)
    (data,) = replies(c)
    assert data.protocol_data == ProtocolData(1, 2, 3, 2, 0, 0, b"query")
    events, _ = feed(c, build_data(2, 1, 3, 2, 0, 0, b"answer", routing_context=RC))
    assert events == [DataReceived(ProtocolData(2, 1, 3, 2, 0, 0, b"answer"), RC)]

    duna = Message(Kind.DUNA).add(Tag.AFFECTED_POINT_CODE, u32(5))
    assert feed(c, duna) == ([MessageReceived(duna)], [])
    assert_still_serving(c)

    assert c.close(5.0) == []
    assert kinds(replies(c)) == [Kind.ASPDN]
    events, _ = feed(c, Message(Kind.ASPDN_ACK))
    assert events == [AspDown(), CloseConnection("ASPDN-ACK received")] and c.closed
    assert c.close(6.0) == []


def test_client_retransmits_and_gives_up() -> None:
    c = client(ack_timeout=2.0, max_attempts=3)
    c.connection_made(0.0)
    replies(c)
    assert c.handle_timer(1.0) == [] and replies(c) == []
    assert c.handle_timer(2.0) == [] and kinds(replies(c)) == [Kind.ASPUP]
    assert c.next_deadline() == 4.0
    assert c.handle_timer(4.0) == [] and kinds(replies(c)) == [Kind.ASPUP]
    events = c.handle_timer(6.0)
    assert [type(e) for e in events] == [CloseConnection] and c.closed


def test_client_close_times_out() -> None:
    c = client()
    c.connection_made(0.0)
    c.close(1.0)
    assert [type(e) for e in c.handle_timer(3.0)] == [CloseConnection]


def test_client_errors() -> None:
    c = client()
    c.connection_made(0.0)
    replies(c)
    for unexpected in (Message(Kind.ASPAC_ACK), DATA, Message(Kind.ASPUP),
                       Message(Kind.DAUD).add(Tag.AFFECTED_POINT_CODE, u32(1))):
        events, out = feed(c, unexpected)
        assert_err(out[0], ErrorCode.UNEXPECTED_MESSAGE, unexpected)
        assert [type(e) for e in events] == [BadMessage]
    events, out = feed(c, error_message(ErrorCode.INVALID_ROUTING_CONTEXT))
    assert events == [ErrorReceived(ErrorCode.INVALID_ROUTING_CONTEXT, None)] and out == []


def test_client_taken_down_by_the_gateway() -> None:
    c = client()
    c.connection_made(0.0)
    feed(c, Message(Kind.ASPUP_ACK), build_aspac(kind=Kind.ASPAC_ACK))
    events, _ = feed(c, Message(Kind.ASPDN_ACK))
    assert events == [AspDown()] and c.state is AspState.DOWN and not c.closed


def test_client_and_server_talk() -> None:
    c, s = client(), server()
    c.connection_made(0.0)
    seen: list[Event] = []
    for _ in range(4):
        seen += s.receive_data(c.data_to_send(), 1.0)
        seen += c.receive_data(s.data_to_send(), 1.0)
    assert c.state is AspState.ACTIVE and s.state is AspState.ACTIVE
    assert not any(isinstance(e, BadMessage) for e in seen)
    c.send_data(ProtocolData(1, 2, 3, 2, 0, 0, b"q"), RC)
    (received,) = s.receive_data(c.data_to_send(), 2.0)
    assert isinstance(received, DataReceived)
    s.send_data(received.data.reply(b"a"), received.routing_context)
    assert c.receive_data(s.data_to_send(), 2.0) == [DataReceived(ProtocolData(2, 1, 3, 2, 0, 0, b"a"), RC)]
    c.close(3.0)
    assert s.receive_data(c.data_to_send(), 3.0) == [AspDown()]
    assert c.receive_data(s.data_to_send(), 3.0) == [AspDown(), CloseConnection("ASPDN-ACK received")]


# --- fuzz ------------------------------------------------------------------------------------------------

MAKERS = {"down": server, "inactive": inactive_server, "active": active_server}


def check_machine(endpoint: AspServer | AspClient, data: bytes) -> None:
    events = endpoint.receive_data(data, 1.0)  # must not raise
    for frame in MessageReader().feed(endpoint.data_to_send()):  # everything sent is valid M3UA
        decode_message(frame)
    closed = any(isinstance(e, CloseConnection) for e in events)
    assert closed == endpoint.closed
    assert sum(isinstance(e, BadMessage) for e in events) <= len(data) // 8 + 1


def serving_after(endpoint: AspServer | AspClient, data: bytes) -> None:
    """A BEAT after the input is answered, unless the connection closed or the input left a partial message."""
    reader = MessageReader()
    try:
        reader.feed(data)
    except M3uaError:
        return
    if endpoint.closed or reader.buffered:
        return
    assert_still_serving(endpoint)


@pytest.mark.fuzz
@given(state=st.sampled_from(sorted(MAKERS)), data=st.binary(max_size=300))
def test_random_bytes_never_break_the_server(state: str, data: bytes) -> None:
    s = MAKERS[state]()
    check_machine(s, data)
    serving_after(s, data)


@pytest.mark.fuzz
@given(state=st.sampled_from(sorted(MAKERS)), name=st.sampled_from(NAMES), choices=st.data())
def test_mutated_messages_never_break_the_server(state: str, name: str, choices: st.DataObject) -> None:
    s = MAKERS[state]()
    data = mutate(sample_bytes(name), choices)
    check_machine(s, data)
    serving_after(s, data)


@pytest.mark.fuzz
@given(name=st.sampled_from(NAMES), choices=st.data(), active=st.booleans())
def test_mutated_messages_never_break_the_client(name: str, choices: st.DataObject, active: bool) -> None:
    c = client()
    c.connection_made(0.0)
    if active:
        feed(c, Message(Kind.ASPUP_ACK), build_aspac(kind=Kind.ASPAC_ACK))
    c.data_to_send()
    data = mutate(sample_bytes(name), choices)
    check_machine(c, data)
    serving_after(c, data)


# --- the activation timer: associations that never become active are closed ---------------------


def test_an_asp_not_active_within_the_activation_timeout_is_closed() -> None:
    s = server(activation_timeout=30.0)
    s.connection_made(100.0)
    assert s.next_deadline() == 130.0
    feed(s, Message(Kind.ASPUP), now=110.0)  # up, but not active: the clock runs on
    assert s.handle_timer(129.9) == [] and not s.closed
    assert s.handle_timer(130.0) == [CloseConnection("not ASP-ACTIVE within 30 s")]
    assert s.closed and s.receive_data(BEAT.to_bytes(), 131.0) == []


def test_the_activation_timer_stops_while_active_and_runs_again_when_the_asp_leaves() -> None:
    s = server(activation_timeout=30.0)
    s.connection_made(0.0)
    feed(s, Message(Kind.ASPUP), build_aspac(), now=1.0)
    assert s.state is AspState.ACTIVE and s.next_deadline() is None
    assert s.handle_timer(1000.0) == []  # an active ASP may stay quiet
    feed(s, Message(Kind.ASPIA), now=1000.0)
    assert s.next_deadline() == 1002.0  # T(r) first
    s.handle_timer(1002.0)
    assert s.next_deadline() == 1030.0
    feed(s, build_aspac(), now=1010.0)
    assert s.next_deadline() is None
    feed(s, Message(Kind.ASPDN), now=2000.0)
    assert s.next_deadline() == 2002.0  # T(r) first: the AS is pending
    s.handle_timer(2002.0)
    assert s.next_deadline() == 2030.0
    assert s.handle_timer(2030.0) == [CloseConnection("not ASP-ACTIVE within 30 s")]


def test_no_activation_timer_unless_configured() -> None:
    s = server()
    s.connection_made(0.0)
    assert s.next_deadline() is None and s.handle_timer(1e9) == []
