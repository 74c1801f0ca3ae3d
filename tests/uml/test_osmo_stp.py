"""A real STP between the MSC and the agent, over real kernel SCTP inside User-Mode Linux:
osmo-stp (libosmo-sigtran, nobody here wrote it) with two static ASPs in two ASs, routing on
the DPC. The agent joins it as an ASP (``m3ua.connect`` over SCTP, routing context 2, point
code 1); ``eir sim checkimei --transport sctp`` joins as the MSC (routing context 1, point
code 2) and asks through it. osmo-stp reads the PPID and stream of everything it gets
(it drops "unknown PPID" messages and refuses DATA on stream 0), and tshark decodes the
capture of both associations.

Skipped where user-mode-linux, osmo-stp or tshark is missing, except with CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.tools import require_tool
from tests.uml.test_sctp import guest_setup
from tests.uml.uml import GuestRun, require_uml, run_driver
from tests.uml.wire import CHECK_IMEI, DATA, ERR, PPID_M3UA, TRANSFER, Chunk, decode, malformed, on_port

pytestmark = [pytest.mark.uml, pytest.mark.interop]

MSC_PORT, EIR_PORT = 2905, 2906  # the STP's listeners, as tests/uml/guest_sctp.py configures them
STP = {"msc_pc": 2, "eir_pc": 1, "msc_rc": 1, "eir_rc": 2}


@dataclass(frozen=True)
class Routed:
    run: GuestRun
    result: dict[str, Any]
    chunks: list[Chunk]
    malformed: list[str]


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routed]:
    require_uml()
    require_tool("osmo-stp")
    tshark = require_tool("tshark")
    require_tool("dumpcap")
    folder = tmp_path_factory.mktemp("uml-stp")
    booted = run_driver(folder, {**guest_setup(folder), "stp": STP})
    yield Routed(booted.run, booted.result, decode(tshark, booted.capture), malformed(tshark, booted.capture))


@pytest.mark.parametrize(("name", "status", "error"), [
    ("white", "WHITE_LISTED", None), ("black", "BLACK_LISTED", None), ("unknown", None, "UNKNOWN_EQUIPMENT")])
def test_checkimei_through_osmo_stp_is_answered(routed: Routed, name: str, status: str | None,
                                                error: str | None) -> None:
    asked = routed.result["checkimei"][name]
    assert asked["exit"] == 0, (asked, routed.result["stp_log"][-2000:])
    outcome = asked["output"]
    assert (outcome["message"], outcome["status"], outcome["error_name"]) == ("END", status, error), outcome


def test_the_agent_joined_the_stp_as_an_asp_and_left_cleanly(routed: Routed) -> None:
    log = routed.result["agent_log"]
    assert routed.result["joined"], log
    assert "active (traffic mode 2, routing contexts [2])" in log
    assert "MAP answers {'white': 1, 'black': 1, 'unknown': 1}" in log
    assert routed.result["agent_exit"] == 0 and "Traceback" not in log


def test_osmo_stp_found_nothing_to_complain_about(routed: Routed) -> None:
    complaints = [line for line in routed.result["stp_log"].splitlines()
                  if any(word in line.lower() for word in ("ppid", "stream", "error", "unexpected", "invalid"))]
    assert not complaints


@pytest.mark.parametrize(("port", "operations"), [(MSC_PORT, 3), (EIR_PORT, 2)])
def test_both_associations_carry_ppid_3_and_data_off_stream_0(routed: Routed, port: int, operations: int) -> None:
    """What the simulator sent the STP (three invokes) and what the agent sent it (three
    answers: two results naming checkIMEI, one returnError unknownEquipment, which names none)."""
    chunks = on_port(routed.chunks, port)
    ours = [c for c in chunks if c.destination == port]
    assert ours and {c.ppid for c in chunks} == {PPID_M3UA}
    assert all(c.m3ua is not None for c in chunks), "tshark did not decode M3UA on SCTP"
    assert all((c.stream != 0) == (c.m3ua is not None and c.m3ua[0] == TRANSFER) for c in ours)
    data = [c for c in ours if c.m3ua == DATA]
    assert len(data) == 3 and len([c for c in data if c.map_operation == CHECK_IMEI]) == operations
    assert not [c for c in chunks if c.m3ua == ERR]
    assert not routed.malformed, routed.malformed
