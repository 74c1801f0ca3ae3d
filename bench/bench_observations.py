"""Observations import and operator-list benchmark.

Generates an observations CSV of N rows (default 1,000,000: about N/2 IMEIs, each seen
with one to three SIMs of the Tajik operators or a roamer's, dates over the last two
years, a third of them full times, half with an MSISDN) in a temporary directory, then
runs the real commands on a fresh SQLite registry and prints wall time, rows/s and the
peak memory of each process:

  1. ``eir registry import observations``  into an empty registry
  2. the same file again                   every row merged into a known pair
  3. ``eir registry export notification --operator 436-01``  (policy per sighting)
  4. ``eir registry export observations``

    python bench/bench_observations.py [--rows N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from workdir import registry_megabytes, workdir

from registry.imei import luhn_check_digit

EIR = [sys.executable, "-m", "eir"]
OPERATORS = ["43601", "43602", "43603", "43604", "43605", "25001"]  # the last: an inbound roamer


def generate(path: Path, rows: int, seed: int = 5) -> None:
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    tacs = [f"{rng.randrange(10_000_000, 99_999_999)}" for _ in range(max(1, rows // 5000))]
    keys = list({f"{rng.choice(tacs)}{rng.randrange(1_000_000):06d}" for _ in range(rows // 2)})
    sims = {key: [f"{rng.choice(OPERATORS)}{rng.randrange(10**9):010d}" for _ in range(rng.randint(1, 3))]
            for key in keys}
    with path.open("w") as out:
        out.write("date,imei,imsi,msisdn\n")
        for n in range(rows):
            key = keys[n % len(keys)] if n < len(keys) else rng.choice(keys)
            at = now - timedelta(seconds=rng.randrange(86_400, 730 * 86_400))
            when = at.strftime("%Y-%m-%dT%H:%M:%S") if n % 3 == 0 else at.strftime("%Y-%m-%d")
            msisdn = f"992{rng.randrange(10**9):09d}" if n % 2 else ""
            out.write(f"{when},{key}{luhn_check_digit(key)},{rng.choice(sims[key])},{msisdn}\n")


def run(registry: str, folder: Path, *args: str) -> tuple[float, str, int]:
    """Run ``eir`` as a user would: wall seconds, its output, its peak RSS (KiB)."""
    output = folder / "eir.out"
    with output.open("w+") as sink:
        started = time.perf_counter()
        process = subprocess.Popen([*EIR, "--registry", registry, *args], stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        sink.seek(0)
        text = sink.read().strip()
    if process.returncode != 0:
        sys.exit(f"eir {' '.join(args)} failed ({process.returncode}): {text}")
    return seconds, text, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="work in this directory and keep its files")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)  # in a child: the imports' peak RSS
    args = parser.parse_args()
    if args.generate:
        generate(args.generate, args.rows)
        return
    with workdir(args.keep, "observations.csv") as (folder, csv_path, registry):
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--generate", str(csv_path)], check=True)
        print(f"generated {args.rows:,} observation rows ({csv_path.stat().st_size / 1e6:.0f} MB CSV) in "
              f"{time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
        steps = [("import (empty registry)", ["registry", "import", "observations", str(csv_path)]),
                 ("import again (merges)", ["registry", "import", "observations", str(csv_path)]),
                 ("notification 436-01", ["registry", "export", "notification", "--operator", "436-01",
                                          "--out", str(folder / "notification.csv")]),
                 ("export observations", ["registry", "export", "observations", "--out", str(folder / "out.csv")])]
        for label, command in steps:
            seconds, output, peak = run(registry, folder, *command)
            print(f"{label:24} {seconds:6.2f} s wall, {args.rows / seconds:>9,.0f} rows/s of the CSV, "
                  f"peak RSS {peak / 1024:.0f} MiB")
            print(f"    {output.splitlines()[-1]}")
        print(f"registry file: {registry_megabytes(folder):.0f} MB")


if __name__ == "__main__":
    main()
