"""``eir sim replay`` of a capture that tshark itself wrote (pcapng, a live loopback capture, as
the other interop tests make them): the simulator's MME and MSC ask a real agent about white,
grey, black and unknown phones over S13 and MAP v1 to v3; replayed against a fresh agent on
the same registry, no answer differs; the frame numbers named are tshark's. Requires tshark
(fails under CI=true when missing)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from simulator.agent_process import EIR, AgentProcess
from simulator.demo_registry import build_demo_registry
from simulator.replay import load_requests
from simulator.replay_items import Request
from tests.interop.test_tshark_map import FRAMING_LUA
from tests.interop.tshark import tshark_capturing
from tests.replay_capture import ASKED, ask
from tests.tools import require_tool, unknown_tac_profile

pytestmark = pytest.mark.interop


def test_a_tshark_capture_of_a_live_run_replays_with_no_difference(tmp_path: Path) -> None:
    tshark = require_tool("tshark")
    profile = unknown_tac_profile(tmp_path)
    (tmp_path / "live").mkdir()
    agent = AgentProcess(tmp_path / "live", build_demo_registry(tmp_path / "live"), "--profile", str(profile),
                         m3ua=True)
    pcap = tmp_path / "live.pcapng"
    try:
        with tshark_capturing(tshark, f"tcp port {agent.port} or tcp port {agent.m3ua_port}", pcap):
            asyncio.run(ask(agent.address, agent.m3ua_address))
    finally:
        assert agent.stop() == 0, agent.log()
    # the live agent listened on random ports: say which carry what, as an operator would
    found = load_requests(pcap, diameter_ports=(agent.port,), m3ua_ports=(agent.m3ua_port or 0,))
    assert [(r.interface, r.imsi) for r in found.requests] == [(i, imsi) for i, _, imsi, _ in ASKED]
    assert all(r.answer is not None for r in found.requests)
    assert_frames_as_tshark_numbers_them(tshark, pcap, found.requests, agent.port, agent.m3ua_port or 0, tmp_path)
    (tmp_path / "fresh").mkdir()
    fresh = AgentProcess(tmp_path / "fresh", build_demo_registry(tmp_path / "fresh"), "--profile", str(profile),
                         m3ua=True)
    try:
        for ports in ([], ["--diameter-port", str(agent.port), "--m3ua-port", str(agent.m3ua_port)]):
            result = subprocess.run([*EIR, "sim", "replay", str(pcap), "--peer", f"127.0.0.1:{fresh.port}",
                                     "--map-peer", f"127.0.0.1:{fresh.m3ua_port}", "--json", *ports],
                                    capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stdout + result.stderr
            report = json.loads(result.stdout)
            # without the ports, the messages are recognised by their headers
            assert (report["requests"], report["same"], report["different"]) == (len(ASKED), len(ASKED), 0), ports
    finally:
        assert fresh.stop() == 0, fresh.log()


def assert_frames_as_tshark_numbers_them(tshark: str, pcap: Path, requests: list[Request], diameter_port: int,
                                         m3ua_port: int, folder: Path) -> None:
    """The frame of each request and of its answer is the one Wireshark shows the reassembled
    message in: what an engineer looks up."""
    lua = folder / "m3ua_tcp.lua"
    lua.write_text(FRAMING_LUA.replace("local port = 2905", f"local port = {m3ua_port}"))
    fields = subprocess.run([tshark, "-r", str(pcap), "-d", f"tcp.port=={diameter_port},diameter",
                             "-X", f"lua_script:{lua}", "-Y", "diameter.cmd.code == 324 || tcap",
                             "-T", "fields", "-e", "frame.number", "-e", "diameter.IMEI", "-e", "tcap.otid",
                             "-e", "tcap.dtid"], capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [line.split("\t") for line in fields.splitlines()]
    ours = []
    for request in requests:
        assert request.answer_frame is not None
        if request.interface == "S13":
            ours += [[str(request.frame), request.imei, "", ""], [str(request.answer_frame), "", "", ""]]
        else:
            otid = request.otid.hex()
            ours += [[str(request.frame), "", otid, ""], [str(request.answer_frame), "", "", otid]]
    assert rows == ours
