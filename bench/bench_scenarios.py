"""The shipped scenario suites, timed as a QA engineer's CI job sees them.

Runs the real command ``eir sim run scenarios/ --interface both`` (each scenario on S13
and on MAP, each run its own ``eir serve --lab-clock`` on a throwaway registry) a number
of times and prints, per round: the wall time of the whole command, the runs and steps,
and steps per second; then the median. Target: the whole shipped suite under 60 s on
both interfaces on a 2-core VM.

    python bench/bench_scenarios.py [--rounds N] [--jobs J] [PATH ...]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

EIR = [sys.executable, "-m", "eir"]
SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SUMMARY = re.compile(r"(\d+) runs \((\d+) scenarios\): (\d+) passed, (\d+) failed, (\d+) skipped; (\d+) steps")


def one_round(paths: list[str], jobs: int) -> tuple[float, dict[str, int]]:
    started = time.monotonic()
    done = subprocess.run([*EIR, "sim", "run", *paths, "--quiet", "--jobs", str(jobs)], capture_output=True,
                          text=True, check=False)
    seconds = time.monotonic() - started
    found = SUMMARY.search(done.stdout)
    if found is None or done.returncode != 0:
        sys.exit(f"eir sim run failed (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    names = ("runs", "scenarios", "passed", "failed", "skipped", "steps")
    return seconds, dict(zip(names, map(int, found.groups()), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=[str(SCENARIOS)])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=0, help="runs side by side (0: the CPUs)")
    args = parser.parse_args()
    print(f"eir sim run {' '.join(args.paths)} --interface both, {args.rounds} rounds, jobs "
          f"{args.jobs or os.cpu_count()} ({os.cpu_count()} CPUs)")
    times = []
    for number in range(1, args.rounds + 1):
        seconds, counts = one_round(args.paths, args.jobs)
        times.append(seconds)
        print(f"  round {number}: {seconds:6.1f} s wall for {counts['runs']} runs ({counts['scenarios']} scenarios, "
              f"{counts['passed']} passed, {counts['skipped']} skipped), {counts['steps']} steps: "
              f"{counts['steps'] / seconds:6.1f} steps/s")
    median = statistics.median(times)
    print(f"median {median:.1f} s wall ({'under' if median < 60 else 'OVER'} the 60 s target); "
          f"{counts['steps'] / median:.1f} steps/s")


if __name__ == "__main__":
    main()
