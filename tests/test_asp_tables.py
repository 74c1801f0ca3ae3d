"""The M3UA ASP (state, trigger) tables (sigtran/asp_server.py, sigtran/asp_client.py): every
message kind in every state of both sides either takes its table row or the one not-allowed
path (ERR Unexpected Message quoting it, the state unchanged), and each RFC 4666 4.3
transition, one test apiece, sends and reports what the RFC says.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

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
    Event,
    ServerSettings,
)
from sigtran.m3ua import (
    AsState,
    ErrorCode,
    Kind,
    Message,
    MessageReader,
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

RC = 7
PC = 0x203

SAMPLE: dict[Kind, Message] = {
    Kind.ERR: error_message(ErrorCode.PROTOCOL_ERROR, b"x"),
    Kind.NTFY: build_notify(StatusType.AS_STATE_CHANGE, AsState.AS_ACTIVE, (RC,)),
    Kind.DATA: build_data(1, 2, 3, 2, 0, 5, b"\x09\x81", routing_context=RC),
    **{kind: Message(kind).add(Tag.AFFECTED_POINT_CODE, u32(PC))
       for kind in (Kind.DUNA, Kind.DAVA, Kind.DAUD, Kind.SCON, Kind.DRST)},
    Kind.DUPU: Message(Kind.DUPU).add(Tag.AFFECTED_POINT_CODE, u32(PC)).add(Tag.USER_CAUSE, u32(3)),
    Kind.ASPUP: Message(Kind.ASPUP),
    Kind.ASPDN: Message(Kind.ASPDN),
    Kind.BEAT: Message(Kind.BEAT).add(Tag.HEARTBEAT_DATA, b"ping"),
    Kind.ASPUP_ACK: Message(Kind.ASPUP_ACK),
    Kind.ASPDN_ACK: Message(Kind.ASPDN_ACK),
    Kind.BEAT_ACK: Message(Kind.BEAT_ACK),
    Kind.ASPAC: build_aspac(TrafficMode.LOADSHARE, (RC,)),
    Kind.ASPIA: Message(Kind.ASPIA).add(Tag.ROUTING_CONTEXT, u32(RC)),
    Kind.ASPAC_ACK: build_aspac(TrafficMode.LOADSHARE, (RC,), Kind.ASPAC_ACK),
    Kind.ASPIA_ACK: Message(Kind.ASPIA_ACK),
}


def replies(endpoint: AspServer | AspClient) -> list[Message]:
    return [decode_message(frame) for frame in MessageReader().feed(endpoint.data_to_send())]


def kinds(endpoint: AspServer | AspClient) -> list[Kind]:
    return [m.kind for m in replies(endpoint)]


def feed(endpoint: AspServer | AspClient, *messages: Message, now: float = 1.0) -> list[Event]:
    return endpoint.receive_data(b"".join(m.to_bytes() for m in messages), now)


def server(state: AspState = AspState.DOWN, **settings: object) -> AspServer:
    s = AspServer(ServerSettings(**{"routing_contexts": frozenset({RC}), "point_codes": frozenset({PC}),
                                    **settings}))  # type: ignore[arg-type]
    s.connection_made(0.0)
    if state is not AspState.DOWN:
        feed(s, SAMPLE[Kind.ASPUP], now=0.0)
    if state is AspState.ACTIVE:
        feed(s, SAMPLE[Kind.ASPAC], now=0.0)
    s.data_to_send()
    assert s.state is state
    return s


def client(state: AspState = AspState.DOWN, **settings: object) -> AspClient:
    """Connected (ASPUP sent, its ACK awaited), and brought to ``state`` by the gateway's ACKs."""
    c = AspClient(ClientSettings(**{"routing_contexts": (RC,), **settings}))  # type: ignore[arg-type]
    c.connection_made(0.0)
    if state is not AspState.DOWN:
        feed(c, SAMPLE[Kind.ASPUP_ACK], now=0.0)
    if state is AspState.ACTIVE:
        feed(c, SAMPLE[Kind.ASPAC_ACK], now=0.0)
    c.data_to_send()
    assert c.state is state
    return c


MAKERS: dict[str, Callable[[AspState], AspServer | AspClient]] = {"server": server, "client": client}


# --- every (state, kind): its row, or the not-allowed path --------------------------------------

@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.name)
@pytest.mark.parametrize("state", list(AspState), ids=lambda s: s.name)
@pytest.mark.parametrize("side", sorted(MAKERS))
def test_every_message_in_every_state(side: str, state: AspState, kind: Kind) -> None:
    endpoint = MAKERS[side](state)
    wire = SAMPLE[kind].to_bytes()
    events = endpoint.receive_data(wire, 1.0)
    out = endpoint.data_to_send()
    transition = type(endpoint).MESSAGES.get((state, kind))
    if transition is None:
        assert events == [BadMessage(ErrorCode.UNEXPECTED_MESSAGE, f"{kind.name} in {state.value}",
                                     f"class {wire[2]} type {wire[3]}")]
        assert out == error_message(ErrorCode.UNEXPECTED_MESSAGE, wire).to_bytes()
        assert endpoint.state is state
    else:
        assert endpoint.state is transition.target
        bad = [e for e in events if isinstance(e, BadMessage)]
        if (side, state, kind) == ("server", AspState.ACTIVE, Kind.ASPUP):  # RFC 4666 4.3.4.1: ACK and ERR
            assert bad == [BadMessage(ErrorCode.UNEXPECTED_MESSAGE, "ASPUP in ASP-ACTIVE", "ASPUP")]
        else:
            assert bad == []
    assert not endpoint.closed


@pytest.mark.parametrize("side", sorted(MAKERS))
def test_the_tables_name_only_states_and_message_kinds(side: str) -> None:
    cls = type(MAKERS[side](AspState.DOWN))
    for (state, kind), transition in cls.MESSAGES.items():
        assert isinstance(state, AspState) and isinstance(kind, Kind) and isinstance(transition.target, AspState)
    for state in AspState:  # BEAT, ERR and NTFY are taken in every state; DATA only in ASP-ACTIVE
        assert {Kind.BEAT, Kind.BEAT_ACK, Kind.ERR, Kind.NTFY} <= {k for s, k in cls.MESSAGES if s is state}
        assert ((state, Kind.DATA) in cls.MESSAGES) is (state is AspState.ACTIVE)


def test_the_state_is_read_only() -> None:
    s = server()
    with pytest.raises(AttributeError):
        s.state = AspState.ACTIVE  # type: ignore[misc]


def test_one_place_sets_the_state() -> None:
    """``_state`` is assigned in ``__init__`` and ``_enter`` of the shared endpoint, nowhere else."""
    sigtran = Path(__file__).resolve().parent.parent / "sigtran"
    places = []
    for path in sorted(sigtran.glob("asp*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                places += [(path.name, node.name) for target in ast.walk(node)
                           if isinstance(target, ast.Attribute) and target.attr == "_state"
                           and isinstance(target.ctx, ast.Store)]
    assert places == [("asp_endpoint.py", "__init__"), ("asp_endpoint.py", "_enter")]


def test_an_ack_whose_request_is_not_outstanding_is_not_allowed() -> None:
    c = client()
    c.close(1.0)  # the ASPDN replaced the ASPUP: its ACK is no longer awaited
    c.data_to_send()
    events = feed(c, SAMPLE[Kind.ASPUP_ACK])
    assert events == [BadMessage(ErrorCode.UNEXPECTED_MESSAGE, "ASPUP_ACK in ASP-DOWN", "class 3 type 4")]
    assert c.data_to_send() == error_message(ErrorCode.UNEXPECTED_MESSAGE, SAMPLE[Kind.ASPUP_ACK].to_bytes()).to_bytes()
    assert c.state is AspState.DOWN


# --- RFC 4666 4.3: one test per transition ----------------------------------------------------------

def ntfy(endpoint: AspServer | AspClient) -> list[tuple[int, int] | None]:
    return [m.status for m in replies(endpoint) if m.kind is Kind.NTFY]


def test_server_asp_down_to_inactive_on_aspup() -> None:
    """4.3.4.1: ASPUP-ACK; the AS has an ASP up and none active: NTFY AS-INACTIVE."""
    s = server()
    assert feed(s, SAMPLE[Kind.ASPUP]) == [AspUp(None)] and s.state is AspState.INACTIVE
    out = replies(s)
    assert [m.kind for m in out] == [Kind.ASPUP_ACK, Kind.NTFY]
    assert out[1].status == (StatusType.AS_STATE_CHANGE, AsState.AS_INACTIVE)


def test_server_asp_inactive_stays_on_aspup() -> None:
    """4.3.4.1: already ASP-INACTIVE, an ASPUP-ACK and no further action."""
    s = server(AspState.INACTIVE)
    assert feed(s, SAMPLE[Kind.ASPUP]) == [] and kinds(s) == [Kind.ASPUP_ACK] and s.state is AspState.INACTIVE


def test_server_asp_active_to_inactive_on_aspup() -> None:
    """4.3.4.1: ASPUP from an ASP-ACTIVE ASP: ASPUP-ACK, ERR Unexpected Message, ASP-INACTIVE."""
    s = server(AspState.ACTIVE)
    events = feed(s, SAMPLE[Kind.ASPUP], now=3.0)
    assert [type(e) for e in events] == [BadMessage, AspInactive] and s.state is AspState.INACTIVE
    out = replies(s)
    assert [m.kind for m in out] == [Kind.ASPUP_ACK, Kind.ERR, Kind.NTFY]
    assert out[2].status == (StatusType.AS_STATE_CHANGE, AsState.AS_PENDING) and s.next_deadline() == 5.0


def test_server_asp_inactive_to_active_on_aspac() -> None:
    """4.3.4.3: ASPAC-ACK, then NTFY AS-ACTIVE (the AS's first active ASP)."""
    s = server(AspState.INACTIVE)
    assert feed(s, SAMPLE[Kind.ASPAC]) == [AspActive(TrafficMode.LOADSHARE, (RC,))] and s.state is AspState.ACTIVE
    out = replies(s)
    assert [m.kind for m in out] == [Kind.ASPAC_ACK, Kind.NTFY]
    assert out[1].status == (StatusType.AS_STATE_CHANGE, AsState.AS_ACTIVE)


def test_server_asp_active_stays_on_aspac() -> None:
    s = server(AspState.ACTIVE)
    assert feed(s, SAMPLE[Kind.ASPAC]) == [] and kinds(s) == [Kind.ASPAC_ACK] and s.state is AspState.ACTIVE


def test_server_asp_active_to_inactive_on_aspia() -> None:
    """4.3.4.4: ASPIA-ACK; the AS lost its last active ASP: AS-PENDING (NTFY), T(r) runs."""
    s = server(AspState.ACTIVE)
    assert feed(s, SAMPLE[Kind.ASPIA], now=4.0) == [AspInactive((RC,))] and s.state is AspState.INACTIVE
    assert ntfy(s) == [(StatusType.AS_STATE_CHANGE, AsState.AS_PENDING)] and s.next_deadline() == 6.0


def test_server_asp_inactive_stays_on_aspia() -> None:
    s = server(AspState.INACTIVE)
    assert feed(s, SAMPLE[Kind.ASPIA]) == [] and kinds(s) == [Kind.ASPIA_ACK] and s.state is AspState.INACTIVE


@pytest.mark.parametrize("state", list(AspState), ids=lambda s: s.name)
def test_server_asp_down_on_aspdn(state: AspState) -> None:
    """4.3.4.2: ASPDN-ACK in every state, even to an ASP already ASP-DOWN; from ASP-ACTIVE the
    AS is AS-PENDING (T(r) runs), with no NTFY to a down ASP."""
    s = server(state)
    events = feed(s, SAMPLE[Kind.ASPDN], now=4.0)
    assert events == ([] if state is AspState.DOWN else [AspDown()]) and s.state is AspState.DOWN
    assert kinds(s) == [Kind.ASPDN_ACK]
    assert s.next_deadline() == (6.0 if state is AspState.ACTIVE else None)


@pytest.mark.parametrize("state", list(AspState), ids=lambda s: s.name)
@pytest.mark.parametrize("side", sorted(MAKERS))
def test_asp_down_on_sctp_cdi(side: str, state: AspState) -> None:
    """4.3.1: the SCTP association gone (Communication Down), the ASP is ASP-DOWN."""
    endpoint = MAKERS[side](state)
    assert endpoint.connection_lost() == ([] if state is AspState.DOWN else [AspDown()])
    assert endpoint.state is AspState.DOWN and endpoint.closed and endpoint.data_to_send() == b""


@pytest.mark.parametrize("state", list(AspState), ids=lambda s: s.name)
@pytest.mark.parametrize("side", sorted(MAKERS))
def test_asp_down_when_we_release_an_untrusted_stream(side: str, state: AspState) -> None:
    """A header the stream cannot be trusted after: ERR, and we release the association."""
    endpoint = MAKERS[side](state)
    events = endpoint.receive_data(bytes.fromhex("0200030100000008"), 1.0)
    assert [type(e) for e in events] == [BadMessage, CloseConnection]
    assert endpoint.state is AspState.DOWN and endpoint.closed


def test_server_t_r_expiry_as_pending_to_as_inactive() -> None:
    """4.3.2: T(r) ran out with no active ASP: the AS is AS-INACTIVE (NTFY to the ASP still up)."""
    s = server(AspState.ACTIVE)
    feed(s, SAMPLE[Kind.ASPIA], now=1.0)
    replies(s)
    assert s.handle_timer(3.0) == [] and s.state is AspState.INACTIVE
    assert ntfy(s) == [(StatusType.AS_STATE_CHANGE, AsState.AS_INACTIVE)]


def test_server_activation_timer_closes_an_asp_never_active() -> None:
    s = server(AspState.INACTIVE, activation_timeout=5.0)
    assert s.handle_timer(5.0) == [CloseConnection("not ASP-ACTIVE within 5 s")]
    assert s.closed and s.state is AspState.INACTIVE


def test_client_m_asp_up_request_sends_aspup() -> None:
    c = AspClient(ClientSettings(asp_identifier=9))
    assert c.connection_made(0.0) == [] and c.state is AspState.DOWN
    (aspup,) = replies(c)
    assert aspup.kind is Kind.ASPUP and aspup.asp_identifier == 9 and c.next_deadline() == 2.0


def test_client_asp_down_to_inactive_on_aspup_ack() -> None:
    """4.3.4.1 at the ASP: ASP-INACTIVE, and ASPAC at once."""
    c = client()
    assert feed(c, SAMPLE[Kind.ASPUP_ACK]) == [AspUp(None)] and c.state is AspState.INACTIVE
    assert kinds(c) == [Kind.ASPAC]


def test_client_asp_inactive_to_active_on_aspac_ack() -> None:
    c = client(AspState.INACTIVE)
    assert feed(c, SAMPLE[Kind.ASPAC_ACK]) == [AspActive(TrafficMode.LOADSHARE, (RC,))]
    assert c.state is AspState.ACTIVE and c.next_deadline() is None and kinds(c) == []


@pytest.mark.parametrize("state", [AspState.INACTIVE, AspState.ACTIVE], ids=lambda s: s.name)
def test_client_asp_down_on_an_unsolicited_aspdn_ack(state: AspState) -> None:
    """4.3.4.2: an ASPDN-ACK we did not ask for: the ASP is ASP-DOWN; the connection stays."""
    c = client(state)
    assert feed(c, SAMPLE[Kind.ASPDN_ACK]) == [AspDown()] and c.state is AspState.DOWN and not c.closed


@pytest.mark.parametrize("state", list(AspState), ids=lambda s: s.name)
def test_client_m_asp_down_request_then_aspdn_ack(state: AspState) -> None:
    """4.3.4.2 at the ASP: ASPDN; its ACK makes the ASP ASP-DOWN and ends the connection."""
    c = client(state)
    assert c.close(5.0) == [] and kinds(c) == [Kind.ASPDN] and c.state is state
    assert feed(c, SAMPLE[Kind.ASPDN_ACK]) == [AspDown(), CloseConnection("ASPDN-ACK received")]
    assert c.state is AspState.DOWN and c.closed


def test_client_t_ack_expiry_resends_then_gives_up() -> None:
    """4.3.4.1: no ASPUP-ACK within T(ack): ASPUP again; after ``max_attempts``, give up."""
    c = client(max_attempts=2)
    assert c.handle_timer(2.0) == [] and kinds(c) == [Kind.ASPUP]
    assert c.handle_timer(4.0) == [CloseConnection("no ASPUP_ACK after 2 attempts")]
    assert c.closed and c.state is AspState.DOWN
