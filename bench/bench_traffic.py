"""A country's attach traffic at scale: 100,000 subscribers over 45 days on one agent (tj).

Plays the same run as ``eir sim traffic`` (simulator/traffic.py) in this process, so it
can print the time of each phase: building the population, starting the agent, importing
the registry rows through the lab endpoint, encoding every line's requests and
connecting, and the days (registrations, attaches, reading the answer log, counting
notices, comparing with the model). Then the answers per second over the days and the
wall time. Every answer is still checked against the model: the run fails on a mismatch.

    python bench/bench_traffic.py [--subscribers N] [--days D] [--interface s13|map|both] [--rate R]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import UTC, date, datetime, time

from registry.profile import load_profile
from simulator.traffic import TrafficOptions, run_traffic, summary
from simulator.traffic_population import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--profile", default="tj")
    parser.add_argument("--interface", choices=("s13", "map", "both"), default="s13",
                        help="s13 (default): one ECR per active line a day; both doubles the answers")
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quiet", action="store_true", help="no line per day")
    args = parser.parse_args()
    interfaces = ("s13", "map") if args.interface == "both" else (args.interface,)
    profile = load_profile(args.profile)
    start = datetime.combine(date(2025, 3, 3), time(9), tzinfo=UTC) - profile.utc_offset
    options = TrafficOptions(args.profile, Settings(args.subscribers, args.days, args.seed), start, interfaces,
                             args.rate)
    print(f"eir sim traffic --profile {args.profile} --subscribers {args.subscribers:,} --days {args.days} "
          f"--interface {args.interface}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}", flush=True)
    result = run_traffic(options, (lambda line: None) if args.quiet else (lambda line: print(line, flush=True)))
    for line in summary(result):
        print(line)
    days = result.phases.get("days", 0.0)
    print("phases: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.phases.items()))
    print(f"{result.answers:,} answers in {days:.1f} s of days: {result.answers / max(days, 1e-9):,.0f} answers/s; "
          f"wall {result.seconds:.1f} s")
    sys.exit(1 if result.mismatch_count else 0)


if __name__ == "__main__":
    main()
