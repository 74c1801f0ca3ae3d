"""``eir sim replay`` end to end: a capture of real exchanges with a real agent (recorded by a
relay with the real ports of both ends, written by netio/pcap.py) replayed against a fresh
agent on the same registry; the same capture cut into segments, reordered, retransmitted,
started mid-stream, or carried over SCTP reads as the same requests; bad files get one line
and exit 2."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.layers.sctp import SCTP, SCTPChunkData
from scapy.packet import Packet
from scapy.utils import rdpcap, wrpcap, wrpcapng

from netio.pcap import Record, write_pcap
from simulator.agent_process import EIR, AgentProcess
from simulator.demo_registry import GREY, build_demo_registry
from simulator.lab_client import LabControl
from simulator.replay import load_requests
from simulator.replay_read import read_capture
from simulator.replay_streams import DIAMETER
from tests.replay_capture import ASKED, capture_run
from tests.tools import unknown_tac_profile

LAB_START = "2026-01-01"


@dataclass
class Captured:
    pcap: Path
    records: list[Record]
    profile: Path


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Captured:
    folder = tmp_path_factory.mktemp("replay")
    profile = unknown_tac_profile(folder)
    agent = AgentProcess(folder, build_demo_registry(folder), "--profile", str(profile), m3ua=True)
    try:
        pcap = folder / "run.pcap"
        records = capture_run(pcap, agent.address, agent.m3ua_address)
    finally:
        assert agent.stop() == 0, agent.log()
    return Captured(pcap, records, profile)


@pytest.fixture
def fresh_agent(tmp_path: Path, captured: Captured) -> Iterator[AgentProcess]:
    """A new agent on a new copy of the same registry, with a lab clock to edit it through."""
    agent = AgentProcess(tmp_path, build_demo_registry(tmp_path), "--profile", str(captured.profile), m3ua=True,
                         lab_clock=LAB_START)
    yield agent
    assert agent.stop() == 0, agent.log()


def replay(pcap: Path, agent: AgentProcess, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EIR, "sim", "replay", str(pcap), "--peer", f"127.0.0.1:{agent.port}",
                           "--map-peer", f"127.0.0.1:{agent.m3ua_port}", *extra],
                          capture_output=True, text=True, timeout=120)


def items(pcap: Path) -> list[tuple[Any, ...]]:
    """What each request of the capture is, without where it sits in the file."""
    return [(r.label, r.imei, r.imsi, r.otid, r.answer) for r in load_requests(pcap).requests]


def grey_frame(pcap: Path) -> int:
    (grey,) = [r for r in load_requests(pcap).requests if r.imei == GREY]
    return grey.frame


# --- against an agent ------------------------------------------------------------------------


def test_the_capture_holds_every_request_and_its_answer(captured: Captured) -> None:
    found = load_requests(captured.pcap)
    assert [(r.interface, r.imsi) for r in found.requests] == [(i, imsi) for i, _, imsi, _ in ASKED]
    assert [r.version for r in found.requests if r.interface == "MAP"] == [3, 2, 2, 1]
    assert all(r.answer is not None and r.answer_frame and r.answer_frame > r.frame for r in found.requests)
    statuses = [r.answer.status or r.answer.error or r.answer.result_code for r in found.requests if r.answer]
    assert statuses == ["WHITELISTED", "GREYLISTED", "BLACKLISTED", 5422,
                        "WHITE_LISTED", "BLACK_LISTED", "WHITE_LISTED", "UNKNOWN_EQUIPMENT"]
    assert found.notes == []


def test_replay_against_a_fresh_agent_finds_no_difference(captured: Captured, fresh_agent: AgentProcess) -> None:
    result = replay(captured.pcap, fresh_agent, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert (report["requests"], report["same"], report["different"], report["unanswered"]) == (8, 8, 0, 0)
    requests = load_requests(captured.pcap).requests
    assert [item["imei"] for item in report["items"]] == [r.imei for r in requests]
    first = report["items"][0]
    assert (first["frame"], first["interface"], first["imsi"], first["differences"]) == (
        requests[0].frame, "S13", requests[0].imsi, [])
    assert datetime.fromisoformat(first["at"]).timestamp() == pytest.approx(captured.records[0].timestamp, abs=1)
    assert first["captured"] == first["replayed"] == {"message": "ECA", "result_code": 2001, "status": "WHITELISTED",
                                                       "error": None, "reject": None, "abort": None}
    assert report["items"][-1]["interface"] == "MAP v1"
    assert report["items"][-1]["replayed"]["error"] == "UNKNOWN_EQUIPMENT"


def test_a_changed_registry_shows_exactly_that_frame(captured: Captured, fresh_agent: AgentProcess) -> None:
    control = fresh_agent.control_path
    assert control is not None

    async def block() -> None:
        async with await LabControl.connect(control) as lab:
            await lab.block(GREY, "stolen, police report 2026-301")

    asyncio.run(block())
    (grey,) = [r for r in load_requests(captured.pcap).requests if r.imei == GREY]
    frame = rdpcap(str(captured.pcap))[grey.frame - 1]
    assert GREY.encode() in bytes(frame)  # the frame named is the one that carries the ECR
    result = replay(captured.pcap, fresh_agent)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[:-1] == [f"frame {grey.frame} S13 IMEI {GREY}: status captured GREYLISTED "
                          f"(frame {grey.answer_frame}), replayed BLACKLISTED"]
    assert lines[-1].endswith("8 requests (4 S13, 4 MAP): 7 same, 1 different, 0 unanswered in the capture")


def test_the_lab_clock_follows_the_frames_forward_only(captured: Captured, fresh_agent: AgentProcess,
                                                        tmp_path: Path) -> None:
    """The capture's requests stamped on days 5 and 20 of the lab's month: the clock goes to
    each; a capture stamped before the clock leaves it where it is."""
    start = datetime(2026, 1, 5, 9, tzinfo=UTC).timestamp()
    first, last = captured.records[0].timestamp, captured.records[-1].timestamp
    middle = (first + last) / 2
    shifted = [r._replace(timestamp=start + (r.timestamp - first) + (15 * 86400 if r.timestamp > middle else 0))
               for r in captured.records]
    write_pcap(tmp_path / "days.pcap", shifted)
    assert fresh_agent.control_path is not None
    control = str(fresh_agent.control_path)
    result = replay(tmp_path / "days.pcap", fresh_agent, "--control", control)
    assert result.returncode == 0, result.stdout + result.stderr

    async def now() -> str:
        async with await LabControl.connect(control) as lab:
            return await lab.time()

    assert asyncio.run(now()).startswith("2026-01-20T09:")
    early = [r._replace(timestamp=r.timestamp - 400 * 86400) for r in captured.records]
    write_pcap(tmp_path / "early.pcap", early)
    assert replay(tmp_path / "early.pcap", fresh_agent, "--control", control).returncode == 0
    assert asyncio.run(now()).startswith("2026-01-20T09:")  # not set back
    # the capture's own time, months after the lab's January: the clock follows, and the grey
    # phone first seen on January 5 is past its grace period now (tj: black on day 31)
    late = replay(captured.pcap, fresh_agent, "--control", control)
    assert asyncio.run(now())[:10] == datetime.fromtimestamp(captured.records[-1].timestamp, UTC).date().isoformat()
    assert late.returncode == 1
    assert late.stdout.splitlines()[0].startswith(f"frame {grey_frame(captured.pcap)} S13 IMEI {GREY}: status "
                                                  "captured GREYLISTED")


# --- the same requests, however the capture carries them -------------------------------------


def _started_early(records: list[Record], move: int) -> list[Record]:
    """Each write but the first of its direction on its connection gives its first ``move``
    octets to the previous write of that direction: two messages share a segment, and the
    message after is cut across two segments."""
    out = list(records)
    last: dict[tuple[Any, ...], int] = {}
    for index, record in enumerate(out):
        key = (record.src_ip, record.src_port, record.dst_ip, record.dst_port)
        if key in last and len(record.payload) > move:
            before = out[last[key]]
            out[last[key]] = before._replace(payload=before.payload + record.payload[:move])
            out[index] = record._replace(payload=record.payload[move:])
        last[key] = index
    return out


def _data_frames(packets: list[Packet]) -> list[int]:
    return [i for i, p in enumerate(packets) if p.haslayer("TCP") and len(p["TCP"].payload) > 0]


def test_segments_cut_merged_reordered_and_retransmitted_read_as_the_same(captured: Captured,
                                                                        tmp_path: Path) -> None:
    path = tmp_path / "segmented.pcap"
    write_pcap(path, _started_early(captured.records, 30), mss=64)
    packets = list(rdpcap(str(path)))
    data = _data_frames(packets)
    # swap two data segments that follow each other in one direction, and send one again later
    pairs = [(a, b) for a, b in itertools.pairwise(data)
             if b == a + 1 and packets[a]["TCP"].sport == packets[b]["TCP"].sport]
    assert len(pairs) > 3
    a, b = pairs[len(pairs) // 2]
    packets[a], packets[b] = packets[b], packets[a]
    packets.insert(b + 3, packets[data[5]].copy())
    wrpcap(str(path), packets)
    assert items(path) == items(captured.pcap)
    assert load_requests(path).notes == []


def test_a_capture_that_starts_mid_message_resynchronises(captured: Captured, tmp_path: Path) -> None:
    whole = tmp_path / "whole.pcap"
    write_pcap(whole, captured.records, mss=64)
    first = load_requests(whole).requests[0]
    packets = list(rdpcap(str(whole)))
    wrpcap(str(tmp_path / "late.pcap"), packets[first.frame - 2:])  # the ECR's last two segments only
    found = load_requests(tmp_path / "late.pcap")
    assert [(r.label, r.imei, r.answer) for r in found.requests] == \
        [(r.label, r.imei, r.answer) for r in load_requests(captured.pcap).requests[1:]]
    assert any("skipped" in note and "diameter" in note for note in found.notes), found.notes
    assert any("an ECA whose ECR the capture does not hold" in note for note in found.notes), found.notes


def test_the_same_messages_over_sctp_read_as_the_same_requests(captured: Captured, tmp_path: Path) -> None:
    """Every Diameter (PPID 46) and M3UA (PPID 3) message of the TCP capture in its own SCTP DATA
    chunk; one of them in two fragments (B, then E), one chunk sent twice, two bundled in a packet,
    one with PPID 0 (unspecified: known by its header)."""
    messages = read_capture(captured.pcap).messages
    tsn: dict[tuple[Any, ...], int] = {}
    packets: list[Packet] = []
    previous: tuple[Any, ...] | None = None
    bundled = 0
    for index, found in enumerate(messages):
        key = (found.src, found.dst)
        data = found.piece.data
        parts = [data[:24], data[24:]] if index == 3 else [data]
        for number, part in enumerate(parts):
            tsn[key] = tsn.get(key, 1000) + 1
            ppid = 46 if found.protocol == DIAMETER else 3
            chunk = SCTPChunkData(tsn=tsn[key], stream_id=0, proto_id=0 if index == 8 else ppid,
                                  data=part, beginning=number == 0, ending=number == len(parts) - 1)
            if key == previous and not bundled and len(parts) == 1:
                packets[-1] = packets[-1] / chunk  # two chunks of one direction in one packet
                bundled += 1
            else:
                packets.append(Ether() / IP(src=found.src[0], dst=found.dst[0]) /
                               SCTP(sport=found.src[1], dport=found.dst[1]) / chunk)
        if index == 6:
            packets.append(packets[-1].copy())  # a retransmission: the same TSN again
        previous = key
    assert bundled == 1
    for number, packet in enumerate(packets):
        packet.time = 1_700_000_000 + number / 1000
    wrpcap(str(tmp_path / "sctp.pcap"), packets)
    found = load_requests(tmp_path / "sctp.pcap")
    assert {r.transport for r in found.requests} == {"sctp"}
    assert [(r.label, r.imei, r.imsi, r.otid, r.answer) for r in found.requests] == items(captured.pcap)


# --- bad captures --------------------------------------------------------------------------------


def _replay_error(path: Path) -> str:
    result = subprocess.run([*EIR, "sim", "replay", str(path), "--peer", "127.0.0.1:9"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and result.stdout == "", result.stderr
    return lines[0]


def test_a_file_that_is_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "notes.pcap"
    path.write_text("imei,reason\n352099001761481,customs cleared\n")
    assert _replay_error(path) == f"eir sim replay: {path}: not a pcap or pcapng file (Not a supported capture file)"


def test_a_truncated_capture(captured: Captured, tmp_path: Path) -> None:
    whole = captured.pcap.read_bytes()
    frames = len(rdpcap(str(captured.pcap)))
    path = tmp_path / "cut-in-a-frame.pcap"
    path.write_bytes(whole[:-20])
    assert _replay_error(path) == (f"eir sim replay: {path}: truncated or damaged capture after frame {frames - 1}: "
                                   "Pcap: packet has been truncated")
    pcapng = tmp_path / "whole.pcapng"
    wrpcapng(str(pcapng), rdpcap(str(captured.pcap)))
    assert len(load_requests(pcapng).requests) == len(ASKED)
    cut_ng = tmp_path / "cut-in-a-block.pcapng"
    cut_ng.write_bytes(pcapng.read_bytes()[:-20])
    assert _replay_error(cut_ng).startswith(f"eir sim replay: {cut_ng}: truncated or damaged capture after frame "
                                            f"{frames - 1}: PcapNg: ")
    header_cut = tmp_path / "cut-in-a-header.pcap"
    last_record = len(bytes(rdpcap(str(captured.pcap))[-1])) + 16
    header_cut.write_bytes(whole[:len(whole) - last_record + 5])
    assert _replay_error(header_cut) == (f"eir sim replay: {header_cut}: truncated or damaged capture after frame "
                                         f"{frames - 1}: 5 octets of a record at the end")


def test_map_requests_without_a_map_peer(captured: Captured) -> None:
    first = next(r for r in load_requests(captured.pcap).requests if r.interface == "MAP")
    assert _replay_error(captured.pcap) == (
        f"eir sim replay: {captured.pcap}: 4 MAP CheckIMEI invoke(s), the first in frame {first.frame}: give the "
        "agent's M3UA address with --map-peer HOST:PORT")


def test_a_capture_without_diameter_or_m3ua(tmp_path: Path) -> None:
    path = tmp_path / "web.pcap"
    write_pcap(path, [Record(1_700_000_000.0, "10.0.0.1", 40000, "10.0.0.2", 80, b"GET / HTTP/1.1\r\n\r\n"),
                      Record(1_700_000_000.1, "10.0.0.2", 80, "10.0.0.1", 40000, b"HTTP/1.1 200 OK\r\n\r\n")])
    frames = len(rdpcap(str(path)))
    assert _replay_error(path) == (
        f"eir sim replay: {path}: no S13 ECR and no MAP CheckIMEI invoke in {frames} frames (Diameter or M3UA "
        "over TCP, ports 3868, 2905 or recognised by their headers, or SCTP PPID 46 or 3; see --diameter-port "
        "and --m3ua-port)")
