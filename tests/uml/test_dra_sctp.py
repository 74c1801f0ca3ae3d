"""Two agents behind freeDiameter 1.2.1 as the DRA over real kernel SCTP, inside User-Mode Linux:
tests/interop/test_dra_failover.py again (SIGKILL agent A under load, the DRA fails its pending
ECRs over to B, A started again on its port rejoins), with every Diameter association over SCTP
(freeDiameter ``No_TCP``; the agents ``--transport sctp``; the MME ``transport="sctp"``).
tests/uml/guest_dra.py runs it all in one guest boot; this side builds the registries with the
real CLI, and judges what the guest reported with the host test's own checks.

The guest is far slower than the host (UML runs each guest system call through ptrace), so the
load is gentle (tests/uml/guest_dra.PLAN: 20 ECRs/s) and the rejoin bound wider: freeDiameter's
TcTimer 1 makes an attempt every 0 to 4 s, and 6 s more are allowed for the CER/CEA and the
three DWR/DWA of STATE_REOPEN in the guest.

Skipped where user-mode-linux or freeDiameter is missing (failed with CI=true), and where the
host's CPU cannot run UML (tests/uml/uml.py: every UML test skips there, in CI too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.interop.dra_load import MME, Figures, check_failover, import_devices
from tests.interop.freediameter import find_extension_dir
from tests.tools import require_tool
from tests.uml.guest_dra import GUEST_ADDRESS, PLAN, A, B
from tests.uml.uml import require_uml, run_driver

pytestmark = [pytest.mark.uml, pytest.mark.interop]

PORTS = {"relay": 3868, A: 3869, B: 3870}  # inside the guest, where nothing else listens
REJOIN_BOUND = 4.0 + 6.0


def guest_setup(folder: Path) -> dict[str, Any]:
    """One SQLite registry per agent, with the same devices, made with the real CLI on the host."""
    registries, devices = {}, {}
    for identity in (A, B):
        place = folder / f"registry-{identity.split('.')[0]}"
        place.mkdir()
        registries[identity] = f"sqlite:///{place / 'registry.db'}"
        devices = import_devices(registries[identity], place)
    return {"registries": registries, "devices": devices, "transport": "sctp", "address": GUEST_ADDRESS,
            "dummy": True, "ports": PORTS}


def test_sigkill_one_agent_behind_freediameter_over_sctp(tmp_path: Path) -> None:
    require_uml()
    require_tool("freeDiameterd")
    find_extension_dir()
    booted = run_driver(tmp_path, guest_setup(tmp_path), timeout=240.0, driver="tests.uml.guest_dra")
    result = booted.result
    figures = Figures.from_json(result["figures"])
    text = figures.text(PLAN, f"freeDiameter 1.2.1 over SCTP in UML (guest {booted.run.seconds:.0f} s)")
    print(text, result["timings"])
    assert result["opened"] == {A: True, B: True}, result["relay_log_tail"]
    assert {identity: set(kinds) for identity, kinds in result["transports"].items()} == \
        {A: {"SCTP"}, B: {"SCTP"}, MME.origin_host: {"SCTP"}}, result["transports"]  # no TCP anywhere
    check_failover(figures, REJOIN_BOUND, text)
    assert result["retransmitted_to_b"] == figures.failed_over, result["agent_logs"]
    assert result["broken"] == {A: 1, B: 0}, result["relay_log_tail"]
    assert result["answers_again"] > 0, result["agent_logs"]
    assert result["agent_exits"] == {"a": -9, "b": 0, "a-again": 0}, result["agent_logs"]
