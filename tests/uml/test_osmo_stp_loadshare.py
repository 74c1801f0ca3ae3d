"""Two agents as the ASPs of one application server behind osmo-stp, in loadshare mode, over
real kernel SCTP inside User-Mode Linux; one of them goes down and CheckIMEI is still answered.

tests/uml/guest_stp_loadshare.py runs it in one guest boot: osmo-stp 1.6 (nobody here wrote it)
with the EIR's AS (routing context 2, point code 1) holding two ASPs in traffic-mode loadshare,
which it serves round robin over the active ones; the two agents join as those ASPs
(``m3ua.connect`` over SCTP, ASPAC in loadshare); ``eir sim checkimei --transport sctp`` asks
as the MSC through the STP. Both agents answer while both are up; agent A gets SIGKILL (its
kernel aborts the association, osmo-stp takes the ASP down and keeps the AS active through B)
and every CheckIMEI after that is answered, by B; A started again joins as the same ASP and
answers again.

Skipped where user-mode-linux or osmo-stp is missing (failed with CI=true), and where the
host's CPU cannot run UML (tests/uml/uml.py: every UML test skips there, in CI too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simulator.demo_registry import WHITE, build_demo_registry, imei15
from tests.tools import require_tool, unknown_tac_profile
from tests.uml.guest_stp_loadshare import ASKS
from tests.uml.uml import require_uml, run_driver

pytestmark = [pytest.mark.uml, pytest.mark.interop]

STP = {"msc_pc": 2, "eir_pc": 1, "msc_rc": 1, "eir_rc": 2}  # as tests/uml/test_osmo_stp.py


def loadshare_setup(folder: Path) -> dict[str, Any]:
    """Each agent's own copy of the demo registry, built with the real CLI on the host."""
    registries = {}
    for name in ("a", "b"):
        place = folder / f"registry-{name}"
        place.mkdir()
        registries[name] = build_demo_registry(place)
    return {"registries": registries, "profile": str(unknown_tac_profile(folder)), "imei": imei15(WHITE),
            "stp": STP}


def answered(asked: list[dict[str, Any]]) -> list[tuple[int, str | None, str | None]]:
    return [(run["exit"], run["output"].get("message"), run["output"].get("status")) for run in asked]


def test_one_asp_of_a_loadshare_as_goes_down_and_checkimei_is_still_answered(tmp_path: Path) -> None:
    require_uml()
    require_tool("osmo-stp")
    booted = run_driver(tmp_path, loadshare_setup(tmp_path), timeout=300.0, driver="tests.uml.guest_stp_loadshare")
    result = booted.result
    why = f"{result['answers']}\n{result['stp_log'][-3000:]}\n{result['agent_logs']}"
    print(f"UML guest {booted.run.seconds:.0f} s; timings {result['timings']}; MAP answers {result['answers']}")
    assert result["joined"] == {"a": True, "b": True, "a-again": True}, why
    for step, count in ASKS.items():
        assert answered(result["asked"][step]) == [(0, "END", "WHITE_LISTED")] * count, (step, why)
    both, one, again = (result["answers"][step] for step in ("both", "one", "again"))
    assert both["a"] > 0 and both["b"] > 0 and both["a"] + both["b"] == ASKS["both"], why  # shared: round robin
    assert one["a"] == both["a"] and one["b"] == both["b"] + ASKS["one"], why  # A gone: all to B
    assert again["a-again"] > 0 and again["a-again"] + again["b"] - one["b"] == ASKS["again"], why  # A back
    assert result["killed_exit"] == -9
    assert result["agent_exits"] == {"a": -9, "b": 0, "a-again": 0}, why
    assert "Traceback" not in "".join(result["agent_logs"].values()), why
