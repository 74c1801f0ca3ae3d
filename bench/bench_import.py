"""Registry import and lookup benchmark.

Generates a white-list CSV of N valid 15-digit IMEIs (default 1,000,000; random TACs and
serial numbers, in random order, each with a reason) in a temporary directory, then runs
the real command three times into a fresh SQLite registry:

  1. ``eir registry import white``  all rows new (N equipment rows + N history rows)
  2. the same file again           all rows unchanged
  3. ``eir registry import grey``   all rows moved white -> grey (N more history rows)

and prints rows/s and seconds for each (wall time of the whole process, as a user sees it,
and the command's own figure), the peak memory of the import process, then the cost of
``Registry.lookup`` (hits and misses, with and without the shared read snapshot).

    python bench/bench_import.py [--rows N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from workdir import registry_megabytes, workdir

from registry.imei import luhn_check_digit
from registry.store import Registry

EIR = [sys.executable, "-m", "eir"]


def generate(path: Path, rows: int, seed: int = 7) -> list[str]:
    """Write ``rows`` unique valid IMEIs (15 digits) with reasons; return their keys."""
    rng = random.Random(seed)
    tacs = [f"{rng.randrange(10_000_000, 99_999_999)}" for _ in range(max(1, rows // 5000))]
    keys = {f"{rng.choice(tacs)}{rng.randrange(1_000_000):06d}" for _ in range(int(rows * 1.1) + 100)}
    chosen = list(keys)[:rows]
    while len(chosen) < rows:  # only for tiny TAC sets
        key = f"{rng.choice(tacs)}{rng.randrange(1_000_000):06d}"
        if key not in keys:
            keys.add(key)
            chosen.append(key)
    rng.shuffle(chosen)
    with path.open("w") as out:
        out.write("imei,reason\n")
        out.writelines(f"{key}{luhn_check_digit(key)},customs declaration {n}\n" for n, key in enumerate(chosen))
    return chosen


def run_import(registry: str, kind: str, csv_path: Path) -> tuple[float, str, int]:
    """Run ``eir registry import`` as a user would; wall seconds, its summary, peak RSS (KiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run([*EIR, "--registry", registry, "registry", "import", kind, str(csv_path)],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"import failed ({done.returncode}): {done.stdout}{done.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, done.stdout.strip(), max(peak, before)


def lookup_cost(registry: str, keys: list[str], count: int, snapshot_seconds: float | None) -> tuple[float, float]:
    """Microseconds per lookup for present keys and absent keys."""
    rng = random.Random(11)
    hits = rng.sample(keys, min(count, len(keys)))
    misses = [f"00000000{rng.randrange(1_000_000):06d}" for _ in range(len(hits))]
    store = Registry(registry) if snapshot_seconds is None else Registry(registry, snapshot_seconds=snapshot_seconds)
    try:
        assert store.lookup(hits[0]) is not None and store.lookup(misses[0]) is None
        for key in hits[: len(hits) // 4]:  # warm the page cache
            store.lookup(key)
        results = []
        for batch in (hits, misses):
            started = time.perf_counter()
            for key in batch:
                store.lookup(key)
            results.append((time.perf_counter() - started) / len(batch) * 1e6)
    finally:
        store.close()
    return results[0], results[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=200_000)
    parser.add_argument("--keep", type=Path, help="work in this directory and keep its files")
    args = parser.parse_args()
    with workdir(args.keep, "white.csv") as (folder, csv_path, registry):
        started = time.perf_counter()
        keys = generate(csv_path, args.rows)
        print(f"generated {args.rows:,} IMEIs ({csv_path.stat().st_size / 1e6:.0f} MB CSV) in "
              f"{time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
        for label, kind in (("new", "white"), ("unchanged", "white"), ("white->grey", "grey")):
            seconds, summary, peak = run_import(registry, kind, csv_path)
            own = re.search(r"; ([0-9.]+) s$", summary)
            print(f"import {label:12} {args.rows / seconds:>9,.0f} rows/s  {seconds:6.2f} s wall "
                  f"({own.group(1) if own else '?'} s in the command), peak RSS {peak / 1024:.0f} MiB")
            print(f"    {summary}")
        print(f"registry file: {registry_megabytes(folder):.0f} MB")
        for label, snapshot in (("shared snapshot (default)", None), ("snapshot per lookup", 0.0)):
            hit, miss = lookup_cost(registry, keys, args.lookups, snapshot)
            print(f"lookup, {label}: {hit:.2f} µs per present IMEI, {miss:.2f} µs per absent IMEI")


if __name__ == "__main__":
    main()
