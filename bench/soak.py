"""Soak and fault run: a real `eir serve` under a steady S13 and MAP load for a bounded time,
with fuzzed frames, idle and non-reading peers, a locked registry and SIGKILL/restart
around it (the schedule: simulator/soak.py). Every answer is checked against the one its
IMEI's class should get; prints answers, wrong and refused answers, first sights lost,
peak RSS and p99 (overall and outside the fault windows) as one table, and exits 1 when
a target is missed: a wrong answer, a lost first sight, p99 outside the fault windows
over 10 ms, or RSS over --max-rss-mib.

    python bench/soak.py [--minutes 10] [--quick] [--keep DIR]
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import tempfile
from pathlib import Path

from simulator.soak import Options, misses, soak, summary


def parse_arguments() -> tuple[Options, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run (default 10)")
    parser.add_argument("--quick", action="store_true", help="a one-minute run, to see that it works")
    parser.add_argument("--s13-rate", type=float, default=200.0, help="S13 requests a second")
    parser.add_argument("--map-rate", type=float, default=100.0, help="MAP CheckIMEI dialogues a second")
    parser.add_argument("--new-share", type=float, default=0.05,
                        help="share of the queries about an IMEI never seen (each answer waits for its first sight)")
    parser.add_argument("--fuzz-rate", type=int, default=400, help="fuzzed frames a second per connection")
    parser.add_argument("--idle", type=int, default=50, help="idle connections per port")
    parser.add_argument("--non-reader-rate", type=int, default=1000,
                        help="requests a second from the peer that never reads")
    parser.add_argument("--max-rss-mib", type=float, default=200.0, help="the agent's RSS bound")
    parser.add_argument("--keep", type=Path, help="work in DIR and keep the registry and logs")
    args = parser.parse_args()
    options = Options(duration=60.0 if args.quick else args.minutes * 60, s13_rate=args.s13_rate,
                      map_rate=args.map_rate, new_share=args.new_share, fuzz_rate=args.fuzz_rate, idle_count=args.idle,
                      non_reader_rate=args.non_reader_rate, max_rss_mib=args.max_rss_mib)
    return options, args.keep


def main() -> None:
    options, keep = parse_arguments()
    # Answers that come after the load gave up on them are logged by the client's Diameter
    # stack, one line each: a lock window would bury the summary.
    logging.getLogger("diameter.transport").setLevel(logging.ERROR)
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, {platform.platform()}")
    with tempfile.TemporaryDirectory(prefix="eir-soak-") as scratch:
        folder = keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        report = soak(options, folder)
    for line in summary(report, options):
        print(line)
    missed = misses(report, options)
    print("targets: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
