"""`eir sim run --report` where the report cannot be written: the runs are played and
reported on the terminal, then a precise message and exit status 2, no traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

from simulator.agent_process import EIR

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "tajikistan" / "stolen_and_recovered.yaml"


def test_a_report_that_cannot_be_written_is_a_precise_error(tmp_path: Path) -> None:
    target = tmp_path / "no such folder" / "report.html"
    done = subprocess.run([*EIR, "sim", "run", str(SCENARIO), "--interface", "s13", "--report", str(target)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "PASS tajikistan/stolen_and_recovered [s13]" in done.stdout
    assert f"eir sim run: cannot write the report {target}: No such file or directory" in done.stderr
    assert "Traceback" not in done.stderr
    assert not target.parent.exists()
