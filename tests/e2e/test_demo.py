"""`eir demo`, the README quick start's main job, run as a new user runs it: a real process
that plays the shipped enforcement tour on S13 and on MAP and must end with exit status 0
(every step as the scenario expects), each answer explained by the agent's rule."""

from __future__ import annotations

import re
import subprocess

from simulator.agent_process import EIR
from simulator.demo import TOUR
from simulator.scenario import load_scenario


def test_eir_demo_plays_the_enforcement_tour_over_s13_and_map() -> None:
    done = subprocess.run([*EIR, "demo"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    scenario = load_scenario(TOUR)
    for interface in ("s13", "map"):
        assert f"PASS tajikistan/enforcement_tour [{interface}]" in done.stdout
    steps = [line for line in lines if re.match(r"  (ok  |FAIL) step", line)]
    assert len(steps) == 2 * len(scenario.steps) and all(line.startswith("  ok") for line in steps)
    ecas = [line for line in steps if "-> ECA" in line]
    ends = [line for line in steps if "-> CheckIMEI" in line]
    # every answer carries the rule and reason the agent logged for it
    assert ecas and ends and all(re.search(r"\[[a-z-]+: .+\]$", line) for line in ecas + ends)
    rules = {found for line in ecas + ends for found in re.findall(r"\[([a-z-]+): ", line)}
    assert rules >= {"white-list", "grey-list", "black-list", "stolen", "paired-match", "paired-mismatch", "grace",
                     "roamer", "auto-entered", "invalid-imei", "malformed-request", "grace-expired",
                     "grey-list-expired"}
    assert {version for line in ends for version in re.findall(r"CheckIMEI v(\d)", line)} == {"2", "3"}
    # MAP v3 carries no IMSI: the SIM last seen with the IMEI decides
    v3 = next(line for line in ends if "CheckIMEI v3" in line)
    assert "grey" in v3 and "was last seen with this IMEI" in v3
    assert "2 of 2 runs passed" in done.stdout
