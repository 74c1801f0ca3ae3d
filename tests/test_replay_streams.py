"""simulator/replay_streams.py without files or sockets: TCP directions reassembled from segments
in any order (overlaps, retransmissions, gaps, sequence wrap), messages cut out of a run by
their Diameter or M3UA header (resynchronising mid-stream), SCTP fragments joined by TSN."""

from __future__ import annotations

from diameter.constants import APP_S13
from simulator.mme import MmeIdentity, build_ecr
from simulator.msc import MscIdentity, encode_request
from simulator.replay_streams import DIAMETER, M3UA, Chunk, Piece, Run, SctpDirection, TcpDirection, cut_messages

ECR = build_ecr(MmeIdentity().node(), "35209900176148", session="1;2").to_bytes()
ECR2 = build_ecr(MmeIdentity().node(), "35209900176149", session="1;3").to_bytes()
DATA = encode_request(MscIdentity(), b"\x01\x02\x03\x04", "352099001761480", 3)


def feed(direction: TcpDirection, seq: int, stream: bytes, cuts: list[tuple[int, int]], frame: int = 1) -> int:
    """Segments stream[a:b] for each (a, b) in ``cuts``, in that order, one frame each."""
    for a, b in cuts:
        direction.add((seq + a) % (1 << 32), stream[a:b], frame, float(frame))
        frame += 1
    return frame


def messages(direction: TcpDirection, protocol: str = DIAMETER) -> list[Piece]:
    return [piece for run in direction.runs() for piece in cut_messages(run, protocol).pieces]


def test_out_of_order_overlapping_and_retransmitted_segments_give_each_message_once() -> None:
    stream = ECR + ECR2
    direction = TcpDirection()
    direction.syn(1000)
    size = len(stream)
    feed(direction, 1001, stream, [(0, 50), (100, size), (40, 120), (0, 50), (100, size)])
    found = messages(direction)
    assert [piece.data for piece in found] == [ECR, ECR2]
    assert [piece.frame for piece in found] == [3, 3]  # both were whole once the third frame came


def test_the_sequence_number_wraps() -> None:
    direction = TcpDirection()
    direction.syn((1 << 32) - 30)
    feed(direction, (1 << 32) - 29, ECR, [(40, len(ECR)), (0, 40)])
    assert [piece.data for piece in messages(direction)] == [ECR]


def test_a_gap_ends_a_run_and_the_next_run_resynchronises() -> None:
    stream = ECR + ECR2 + ECR
    direction = TcpDirection()
    direction.syn(0)
    feed(direction, 1, stream, [(0, len(ECR)), (len(ECR) + 30, len(stream))])  # ECR2's first 30 octets lost
    runs = direction.runs()
    assert len(runs) == 2
    second = cut_messages(runs[1], DIAMETER)
    assert [piece.data for piece in second.pieces] == [ECR]
    assert second.skipped == len(ECR2) - 30


def test_a_message_cut_short_at_the_end_is_counted_not_read() -> None:
    run = Run()
    run.data += ECR + DATA[:0] + ECR2[:50]
    cut = cut_messages(_spanned(run), DIAMETER)
    assert [piece.data for piece in cut.pieces] == [ECR] and cut.incomplete == 50 and cut.skipped == 0


def test_m3ua_messages_are_framed_by_their_own_header() -> None:
    run = Run()
    run.data += b"\x00" * 3 + DATA + DATA
    cut = cut_messages(_spanned(run), M3UA)
    assert [piece.data for piece in cut.pieces] == [DATA, DATA] and cut.skipped == 3
    assert cut_messages(_spanned(run), DIAMETER).pieces == []  # not Diameter
    assert int.from_bytes(ECR[8:12], "big") == APP_S13


def _spanned(run: Run) -> Run:
    from simulator.replay_streams import Span

    run.spans.append(Span(0, len(run.data), 7, 7.0))
    return run


def test_sctp_fragments_join_by_tsn_and_a_missing_fragment_drops_its_message() -> None:
    direction = SctpDirection()
    direction.add(Chunk(11, 46, False, True, ECR[30:], 2, 2.0))  # the end first
    direction.add(Chunk(10, 46, True, False, ECR[:30], 1, 1.0))
    direction.add(Chunk(10, 46, True, False, ECR[:30], 3, 3.0))  # retransmitted: the same TSN
    direction.add(Chunk(12, 3, True, False, DATA[:20], 4, 4.0))  # TSN 13, its end, never captured
    direction.add(Chunk(14, 3, True, True, DATA, 5, 5.0))
    assert direction.messages() == [(46, Piece(2, 2.0, ECR)), (3, Piece(5, 5.0, DATA))]
