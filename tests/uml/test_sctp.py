"""Real kernel SCTP, inside User-Mode Linux: the real ``eir serve`` with M3UA and Diameter over
SCTP, asked by the simulator's MSC (``eir sim checkimei --transport sctp``) and MME
(``eir sim ecr --transport sctp``) and by a raw ASP written with plain sendmsg/recvmsg
(tests/uml/guest_sctp.py runs all of it in one guest boot).

What each message carried on the wire is checked twice, by parties other than our
transport: tshark decodes the guest's capture (SCTP stream and PPID of every DATA chunk,
and the M3UA/SCCP/TCAP/MAP or Diameter inside), and the raw ASP reports the stream and
PPID the kernel gave each message the agent sent it (SCTP_RCVINFO).

Skipped where user-mode-linux or tshark is missing, except with CI=true, where it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from simulator.demo_registry import BLACK, WHITE, imei15
from simulator.demo_registry import build_demo_registry as build_registry
from tests.tools import require_tool, unknown_tac_profile
from tests.uml.uml import GuestRun, require_uml, run_driver
from tests.uml.wire import (
    CHECK_IMEI,
    DATA,
    ERR,
    MGMT,
    PPID_DIAMETER,
    PPID_M3UA,
    TRANSFER,
    Chunk,
    decode,
    malformed,
    on_port,
)

pytestmark = [pytest.mark.uml, pytest.mark.interop]

M3UA_PORT, DIAMETER_PORT = 2905, 3868  # as tests/uml/guest_sctp.py listens
IMEIS = {"white": imei15(WHITE), "black": imei15(BLACK), "unknown": "99999999000001"}  # a TAC the catalogue lacks


@dataclass(frozen=True)
class Guest:
    run: GuestRun
    result: dict[str, Any]
    chunks: list[Chunk]
    malformed: list[str]
    taps: dict[str, tuple[list[Chunk], list[str]]]  # each --pcap of the guest's commands: chunks, malformed


def guest_setup(folder: Path) -> dict[str, Any]:
    """The registry (built on the host with the real CLI) and the profile the guest's agent uses."""
    profile = unknown_tac_profile(folder)
    return {"registry": build_registry(folder), "profile": str(profile), "imeis": IMEIS}


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    require_uml()
    tshark = require_tool("tshark")
    require_tool("dumpcap")
    folder = tmp_path_factory.mktemp("uml-sctp")
    booted = run_driver(folder, guest_setup(folder))
    taps = {path.stem[4:]: (decode(tshark, path), malformed(tshark, path))
            for path in sorted(folder.glob("tap-*.pcap"))}
    yield Guest(booted.run, booted.result, decode(tshark, booted.capture), malformed(tshark, booted.capture), taps)


def to_agent(chunk: Chunk) -> bool:
    return chunk.destination in (M3UA_PORT, DIAMETER_PORT)


def m3ua_chunks(guest: Guest) -> list[Chunk]:
    return on_port(guest.chunks, M3UA_PORT)


# --- the answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "status", "error"), [
    ("white", "WHITE_LISTED", None), ("black", "BLACK_LISTED", None), ("unknown", None, "UNKNOWN_EQUIPMENT")])
def test_sim_checkimei_over_sctp_is_answered(guest: Guest, name: str, status: str | None, error: str | None) -> None:
    asked = guest.result["checkimei"][name]
    assert asked["exit"] == 0, asked
    outcome = asked["output"]
    assert (outcome["message"], outcome["status"], outcome["error_name"]) == ("END", status, error), outcome
    assert outcome["answered_version"] == 3


def test_agent_answered_from_its_registry_and_stopped_cleanly(guest: Guest) -> None:
    log = guest.result["agent_log"]
    assert "M3UA listening on 127.0.0.1:2905" in log
    assert "MAP answers {'white': 2, 'black': 1, 'unknown': 1}" in log  # the raw ASP asked for white once more
    assert guest.result["agent_exit"] == 0
    assert "Traceback" not in log


# --- what the wire carried ----------------------------------------------------------------------


def test_every_m3ua_message_carries_ppid_3(guest: Guest) -> None:
    chunks = m3ua_chunks(guest)
    assert chunks and all(c.m3ua is not None for c in chunks), "tshark did not decode M3UA on SCTP"
    assert {c.ppid for c in chunks} == {PPID_M3UA}


def test_data_rides_a_non_zero_stream_and_everything_else_stream_0(guest: Guest) -> None:
    """Both ways: the simulator's requests and the agent's answers. The one DATA on stream 0 is
    the raw ASP's deliberate mistake (test_data_on_stream_0_gets_err_invalid_stream_identifier)."""
    chunks = m3ua_chunks(guest)
    data = [c for c in chunks if c.m3ua == DATA]
    assert [c.stream for c in data if c.stream == 0 and to_agent(c)] == [0]
    assert all(c.stream != 0 for c in data if not to_agent(c))
    assert len([c for c in data if c.stream != 0 and to_agent(c)]) == 4  # three `eir sim checkimei`, one raw
    assert all(c.stream == 0 for c in chunks if c.m3ua is not None and c.m3ua[0] != TRANSFER)
    checks = [c for c in data if c.map_operation == CHECK_IMEI]  # checkIMEI, decoded through SCCP and TCAP
    assert len(checks) == 8 and not guest.malformed, guest.malformed


def test_answers_keep_the_stream_of_their_request(guest: Guest) -> None:
    """The simulator and the agent both pick the stream from the SLS, and the answer keeps the
    request's SLS: each answer rides its request's stream (one SLS, one order). The raw ASP,
    which picked stream 1 itself, is left out (next test)."""
    data = [c for c in m3ua_chunks(guest) if c.m3ua == DATA]
    raw = {c.source for c in data if c.stream == 0}
    asked = {c.source: c.stream for c in data if to_agent(c) and c.source not in raw}
    answered = {c.destination: c.stream for c in data if not to_agent(c) and c.destination not in raw}
    assert len(asked) == 3 and asked == answered


def test_data_on_stream_0_gets_err_invalid_stream_identifier(guest: Guest) -> None:
    raw = guest.result["raw_asp"]
    assert raw["on_stream_0"] == {"err": 0x09, "class": MGMT, "type": 0, "stream": 0, "ppid": PPID_M3UA,
                                  "length": raw["on_stream_0"]["length"]}
    answer = raw["on_stream_1"]  # the raw ASP's DATA has SLS 5: 1 + 5 mod (16 streams - 1)
    assert (answer["class"], answer["type"], answer["stream"], answer["ppid"]) == (TRANSFER, 1, 6, PPID_M3UA)
    assert "data" in answer
    # as the raw ASP's kernel reported them: every message from the agent PPID 3, DATA alone off stream 0
    assert all(m["ppid"] == PPID_M3UA for m in raw["received"])
    assert all((m["stream"] != 0) == (m["class"] == TRANSFER) for m in raw["received"])
    errors = [c for c in m3ua_chunks(guest) if c.m3ua == ERR]
    assert [c.error_code for c in errors] == [0x09]
    assert "'bad_input.m3ua.0x09': 1" in guest.result["agent_log"]


def test_diameter_over_sctp_carries_ppid_46_one_message_per_chunk(guest: Guest) -> None:
    ecr = guest.result["ecr"]
    assert ecr["exit"] == 0, ecr
    assert (ecr["output"]["result_code"], ecr["output"]["equipment_status"]) == (2001, "WHITELISTED")
    chunks = on_port(guest.chunks, DIAMETER_PORT)
    assert {(c.ppid, c.stream) for c in chunks} == {(PPID_DIAMETER, 0)}
    # CER/CEA, ECR/ECA, DPR/DPA: each its own SCTP message, each decoded by tshark
    assert sorted(c.diameter_command or 0 for c in chunks) == [257, 257, 282, 282, 324, 324]


def test_each_commands_pcap_holds_the_chunks_the_kernel_carried(guest: Guest) -> None:
    """``--pcap`` over kernel SCTP: each command's own capture (netio.capture) has exactly the
    DATA chunks dumpcap saw on that association: same ports, streams, PPIDs and messages, in
    order each way (across the two ways, what the tap saw read and what it wrote may cross)."""
    assert sorted(guest.taps) == ["checkimei-black", "checkimei-unknown", "checkimei-white", "ecr"]
    for name, (chunks, bad) in guest.taps.items():
        assert chunks and not bad, (name, bad)
        (client,) = {chunk.source for chunk in chunks if to_agent(chunk)}
        on_wire = [chunk for chunk in guest.chunks if client in (chunk.source, chunk.destination)]
        for way in (True, False):
            tapped = [replace(chunk, frame=0) for chunk in chunks if to_agent(chunk) is way]
            assert tapped == [replace(chunk, frame=0) for chunk in on_wire if to_agent(chunk) is way], (name, way)


def test_guest_boot_and_run_time(guest: Guest) -> None:
    timings = guest.result["timings"]
    print(f"UML guest: {guest.run.seconds:.1f} s in all; agent ready after {timings['agent_ready']} s, "
          f"run {timings['total']} s; each eir sim: "
          + ", ".join(f"{k} {v['seconds']} s" for k, v in guest.result["checkimei"].items()))
    assert guest.run.seconds < 60
