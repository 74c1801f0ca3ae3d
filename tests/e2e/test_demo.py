"""`eir demo`, the README quick start's main job, run as a new user runs it: a real process
that must end with exit status 0 (every answer as expected) and show both interfaces."""

from __future__ import annotations

import re
import subprocess

from simulator.agent_process import EIR


def test_eir_demo_answers_every_case_over_s13_and_map() -> None:
    done = subprocess.run([*EIR, "demo"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    ecas = [line for line in lines if "-> ECA" in line]
    ends = [line for line in lines if "-> END" in line]
    assert len(ecas) == 11 and len(ends) == 8
    assert all(re.search(r" ok +\S+: ", line) for line in ecas + ends), done.stdout
    assert {version for line in ends for version in re.findall(r" v(\d) IMEI", line)} == {"1", "2", "3"}
    assert "UNEXPECTED" not in done.stdout and "grace-expired" in done.stdout
    # MAP v3 carries no IMSI: the roamer seen over S13 is still a roamer
    roamer = next(line for line in ends if line.lstrip().startswith("roamer over S13, no IMSI"))
    assert "WHITE_LISTED" in roamer and "roamer:" in roamer and "was last seen with this IMEI" in roamer
