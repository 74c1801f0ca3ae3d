"""``eir sim replay`` of a capture of a real SCTP run: the guest of tests/uml (real kernel SCTP
inside User-Mode Linux) captures on its loopback while the simulator's MSC and MME and a raw ASP
ask its agent over M3UA (PPID 3) and Diameter (PPID 46); that capture, read on the host, is
replayed against a fresh host agent (over TCP) on the same registry and profile: no answer
differs, and the raw ASP's DATA on stream 0, which the agent refused with an M3UA ERR, is the
one request the capture holds no answer for.

Skipped where user-mode-linux is missing or the CPU cannot run it, except with CI=true, where a
missing tool fails (tests/uml/uml.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from simulator.agent_process import EIR, AgentProcess
from simulator.demo_registry import build_demo_registry
from simulator.replay import load_requests
from tests.tools import require_tool
from tests.uml.test_sctp import IMEIS, guest_setup
from tests.uml.uml import require_uml, run_driver

pytestmark = [pytest.mark.uml, pytest.mark.interop]


def test_a_capture_of_an_sctp_run_replays_with_no_difference(tmp_path: Path) -> None:
    require_uml()
    require_tool("dumpcap")
    guest_folder = tmp_path / "guest"
    guest_folder.mkdir()
    setup = guest_setup(guest_folder)
    guest = run_driver(guest_folder, setup)
    found = load_requests(guest.capture)
    assert {r.transport for r in found.requests} == {"sctp"}
    assert [r.interface for r in found.requests].count("S13") == 1
    assert {r.imei[:14] for r in found.requests if r.interface == "MAP"} == {imei[:14] for imei in IMEIS.values()}
    unanswered = [r for r in found.requests if r.answer is None]
    assert len(unanswered) == 1 and unanswered[0].interface == "MAP"  # the raw ASP's DATA on stream 0
    host = tmp_path / "host"
    host.mkdir()
    agent = AgentProcess(host, build_demo_registry(host), "--profile", setup["profile"], m3ua=True)
    try:
        result = subprocess.run([*EIR, "sim", "replay", str(guest.capture), "--peer", f"127.0.0.1:{agent.port}",
                                 "--map-peer", f"127.0.0.1:{agent.m3ua_port}", "--json"],
                                capture_output=True, text=True, timeout=120)
    finally:
        assert agent.stop() == 0, agent.log()
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert (report["requests"], report["different"], report["unanswered"]) == (len(found.requests), 0, 1)
    assert report["same"] == len(found.requests) - 1
