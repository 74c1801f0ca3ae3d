"""Fuzz the peer state machine: whatever arrives on an open connection, the Peer answers
or closes, and nothing but events comes out of it (the agent keeps serving)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from diameter.capabilities import LocalNode
from diameter.errors import FramingError
from diameter.message import MessageReader, decode_message, frame_length
from diameter.peer import CloseConnection, Peer, PeerSettings, PeerState, RequestReceived, Role
from tests.diameter_samples import EIR_HOST, EIR_REALM, sample_bytes

EIR = LocalNode(EIR_HOST, EIR_REALM)  # the node the samples are addressed to
SAMPLES = ["ECR", "DWR", "DPR", "CER"]


def open_server() -> Peer:
    """A responder that has completed capabilities exchange with an MME."""
    server = Peer(EIR, Role.RESPONDER, PeerSettings(rng=random.Random(1)))
    server.connection_made(0.0)
    server.receive_data(sample_bytes("CER"), 0.0)
    server.data_to_send()
    assert server.state is PeerState.OPEN
    return server


def mutate(data: bytes, choices: st.DataObject) -> bytes:
    buffer = bytearray(data)
    for _ in range(choices.draw(st.integers(1, 4))):
        position = choices.draw(st.integers(0, len(buffer) - 1))
        action = choices.draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        if action == "flip":
            buffer[position] ^= 1 << choices.draw(st.integers(0, 7))
        elif action == "set":
            buffer[position] = choices.draw(st.integers(0, 255))
        elif action == "insert":
            buffer[position:position] = choices.draw(st.binary(min_size=1, max_size=8))
        elif len(buffer) > 1:
            del buffer[position]
    return bytes(buffer)


def frames_exactly(data: bytes) -> bool:
    """True when ``data`` is whole messages with nothing left over and trusted framing."""
    reader = MessageReader()
    try:
        reader.feed(data)
    except FramingError:
        return False
    return reader.buffered == 0


def requests_in(data: bytes) -> int:
    """How many whole, decodable requests the Peer will find in ``data`` before any
    framing it cannot trust."""
    count = 0
    try:
        for frame in MessageReader().feed(data):
            if decode_message(frame).is_request:
                count += 1
    except FramingError:
        pass
    return count


def check(server: Peer, data: bytes) -> None:
    events = server.receive_data(data, 1.0)  # must not raise, whatever the bytes
    out = server.data_to_send()
    closed = any(isinstance(e, CloseConnection) for e in events)
    if closed:
        assert server.state is PeerState.CLOSED
        return
    answers = MessageReader().feed(out)
    delivered = sum(isinstance(e, RequestReceived) for e in events)
    # Every request is answered by the Peer itself or handed to the application.
    assert len(answers) + delivered >= requests_in(data)
    for frame in answers:  # and what the Peer sends is itself well formed
        assert frame_length(frame) == len(frame)
        answer = decode_message(frame)
        assert not answer.is_request


@pytest.mark.fuzz
@given(name=st.sampled_from(SAMPLES), choices=st.data())
def test_mutated_messages_on_an_open_connection(name: str, choices: st.DataObject) -> None:
    check(open_server(), mutate(sample_bytes(name), choices))


@pytest.mark.fuzz
@given(data=st.binary(max_size=300))
def test_random_bytes_on_an_open_connection(data: bytes) -> None:
    check(open_server(), data)


@pytest.mark.fuzz
@given(name=st.sampled_from(SAMPLES), choices=st.data())
def test_a_good_request_after_a_bad_one_is_still_served(name: str, choices: st.DataObject) -> None:
    server = open_server()
    bad = mutate(sample_bytes(name), choices)
    server.receive_data(bad, 1.0)
    server.data_to_send()
    if server.state is not PeerState.OPEN or not frames_exactly(bad):
        # Closing is the answer to framing it cannot trust; a short message swallows the
        # next one's first octets on any byte stream, so there is no "next request" to test.
        return
    events = server.receive_data(sample_bytes("ECR"), 2.0)
    assert [type(e) for e in events if isinstance(e, RequestReceived)] == [RequestReceived], events
