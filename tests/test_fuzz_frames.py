"""The socket fuzz's frames (simulator/fuzz_frames.py) keep the framing below the fuzzed
layer valid, so that an agent that closes on one of them is at fault; a seed gives the
same frames again; the probes are valid requests for a white IMEI."""

from __future__ import annotations

import pytest

from diameter.message import decode_message as decode_diameter
from diameter.message import frame_length as diameter_length
from sigtran.m3ua import decode_message as decode_m3ua
from sigtran.m3ua import frame_length as m3ua_length
from sigtran.sccp import SSN_EIR, Udt
from sigtran.sccp import decode_message as decode_sccp
from simulator.fuzz_frames import LAYERS, MAX_LARGE, PROBE_MARK, source_for

COUNT = 3_000


@pytest.mark.parametrize("layer", LAYERS)
def test_a_seed_gives_the_same_frames_and_another_seed_others(layer: str) -> None:
    first, again, other = (source_for(layer, seed) for seed in (5, 5, 6))
    frames = [first.frame() for _ in range(200)]
    assert frames == [again.frame() for _ in range(200)]
    assert frames != [other.frame() for _ in range(200)]
    assert len(set(frames)) > 150


def test_diameter_frames_have_a_trusted_header_and_are_never_a_dpr() -> None:
    source = source_for("diameter", 1)
    for _ in range(COUNT):
        frame = source.frame()
        assert diameter_length(frame) == len(frame) <= MAX_LARGE  # version 1, a multiple of 4, whole
        assert not (frame[4] & 0x80 and frame[5:8] == b"\x00\x01\x1a")  # a DPR would be a request to close
        assert int.from_bytes(frame[12:16], "big") & 0xF0000000 != PROBE_MARK


@pytest.mark.parametrize("layer", ["m3ua", "sccp", "tcap"])
def test_m3ua_frames_have_a_trusted_header(layer: str) -> None:
    source = source_for(layer, 1)
    for _ in range(COUNT):
        frame = source.frame()
        assert m3ua_length(frame) == len(frame) <= MAX_LARGE


@pytest.mark.parametrize("layer", ["sccp", "tcap"])
def test_sccp_and_tcap_frames_are_valid_m3ua_data_of_sccp(layer: str) -> None:
    source = source_for(layer, 2)
    for _ in range(COUNT):
        data = decode_m3ua(source.frame()).protocol_data
        assert data is not None and data.si == 3
        if layer == "tcap":
            udt = decode_sccp(data.user_data)
            assert isinstance(udt, Udt) and udt.called.ssn == SSN_EIR


@pytest.mark.parametrize("layer", LAYERS)
def test_probes_are_valid_requests_numbered_apart_from_the_fuzz(layer: str) -> None:
    source = source_for(layer, 3)
    probes = [source.probe() for _ in range(3)]
    assert [p.key for p in probes] == [PROBE_MARK | 1, PROBE_MARK | 2, PROBE_MARK | 3]
    if layer == "diameter":
        request = decode_diameter(probes[0].wire)
        assert not request.problems and request.hop_by_hop == PROBE_MARK | 1
    else:
        sccp = decode_sccp(decode_m3ua(probes[0].wire).protocol_data.user_data)  # type: ignore[union-attr]
        assert sccp.data[2:4] == b"\x48\x04" and sccp.data[4:8] == (PROBE_MARK | 1).to_bytes(4, "big")
