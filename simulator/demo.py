"""``eir demo``: the enforcement story end to end on loopback, in one command: the runner
playing the shipped scenario ``tajikistan/enforcement_tour.yaml`` (scenarios/README.md).

For each interface it starts a real ``eir serve --lab-clock`` on a throwaway registry, has
the national system's lists arrive over the lab control socket, and plays the story: an
MME asking S13 ME-Identity-Check (then an MSC asking MAP CheckIMEI over M3UA) for a device
on each list, a paired IMEI with its bound SIM and its clone with another, an unregistered
phone with a local SIM, a visitor's phone, a router, invalid IMEIs; the lab clock jumps to
day 31, when the unregistered phone is cut off; `eir check --at` confirms it on day 45.
Every answer is printed with the rule and the reason from the agent's answer log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from scenarios import SHIPPED
from simulator.scenario import load_scenario
from simulator.scenario_run import RunResult, RunSettings, run_all

TOUR = SHIPPED / "tajikistan" / "enforcement_tour.yaml"


def run_demo(out: Callable[[str], None] = print) -> int:
    """Play the tour on S13 and on MAP; returns how many runs did not pass."""
    scenario = load_scenario(TOUR)
    out(f"eir demo: {scenario.title}")
    out(f"  scenario {TOUR} (profile {scenario.profile}, lab clock from {scenario.start.isoformat()}),")
    out("  played twice against a real `eir serve --lab-clock`: over S13 (an MME) and over MAP (an MSC, M3UA/TCP)")

    def report(result: RunResult) -> None:
        for line in result.lines():
            out(line)

    results = asyncio.run(run_all([scenario], RunSettings(), report))
    failed = sum(not result.passed for result in results)
    out(f"{len(results) - failed} of {len(results)} runs passed; the same story with your own expectations: "
        "eir sim run PATH (scenarios/README.md)")
    return failed
