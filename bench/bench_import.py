"""Registry import benchmark: rows/s and the import process's peak memory, on SQLite and
PostgreSQL.

Writes a white-list CSV of N valid 15-digit IMEIs (default 10,000,000; 100,000 with
--quick), unique by construction and streamed to disk (the benchmark holds none of them),
and a grey-list CSV of every tenth of them. Then, on each backend, into a fresh registry,
runs the real command as a user would (``python -m eir registry import``, a subprocess):

  1. ``import white``  every row new (N equipment rows and N history rows)
  2. ``import grey``   N/10 of them move white -> grey (N/10 more history rows)

and prints, for each, rows/s over the process's wall time, the command's own seconds, the
process's CPU seconds (user + system: on a shared machine, rows per CPU second says more
than the wall time; the database server's CPU is not in it), and its peak RSS (VmHWM, which
the process writes as it exits). Then, on SQLite,
the cost of ``Registry.lookup`` on the imported registry (hits and misses).

Backends: a SQLite file in the scratch folder; PostgreSQL at --postgres URL (a scratch
database: its tables are dropped first), else a throwaway PostgreSQL 15 cluster
(tests/postgres.py) started for the run and removed after. --backend picks one.

    PYTHONPATH=. python bench/bench_import.py [--rows N | --quick] [--backend sqlite|postgresql]
        [--postgres URL] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workdir import registry_megabytes, workdir

from registry.imei import luhn_check_digit
from registry.store import Registry

# ``python -m eir`` that writes its own VmHWM to stderr as it exits: wait4's ru_maxrss will
# not do, as Linux carries the parent's peak RSS into a child's across fork and exec (this
# process maps the SQLite registry for the lookups).
EIR_MEASURED = [sys.executable, "-c", "import atexit, runpy, sys; atexit.register(lambda: sys.stderr.write("
                "next(line for line in open('/proc/self/status') if line.startswith('VmHWM:')))); "
                "runpy.run_module('eir', run_name='__main__', alter_sys=True)"]
GREY_EVERY = 10  # the grey file moves every tenth IMEI of the white file
SNR_STEP = 7919  # a prime: i -> i * SNR_STEP mod 10**6 visits every serial number once


class Keys:
    """N distinct 14-digit keys, computed from their index (nothing held in memory): TAC
    ``i % T`` and serial number ``(i // T) * SNR_STEP mod 10**6``; consecutive rows fall
    under different TACs, so the file is in no key order."""

    def __init__(self, rows: int, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.count = max(1, -(-rows // 5000))  # 5,000 serial numbers per TAC at most
        tacs: set[str] = set()
        while len(tacs) < self.count:
            tacs.add(f"{rng.randrange(10_000_000, 99_999_999)}")
        self.tacs = sorted(tacs)
        rng.shuffle(self.tacs)
        self.rows = rows

    def key(self, i: int) -> str:
        return f"{self.tacs[i % self.count]}{(i // self.count) * SNR_STEP % 1_000_000:06d}"


def generate(folder: Path, keys: Keys) -> tuple[Path, Path]:
    """The white CSV (every key, with a reason) and the grey CSV (every GREY_EVERY-th key)."""
    white, grey = folder / "white.csv", folder / "grey.csv"
    with white.open("w") as all_rows, grey.open("w") as some:
        all_rows.write("imei,reason\n")
        some.write("imei,reason\n")
        for i in range(keys.rows):
            key = keys.key(i)
            all_rows.write(f"{key}{luhn_check_digit(key)},customs declaration {i}\n")
            if i % GREY_EVERY == 0:
                some.write(f"{key}{luhn_check_digit(key)},unpaid duty {i}\n")
    return white, grey


def run_import(registry: str, kind: str, csv_path: Path) -> tuple[float, str, float, int]:
    """Run ``eir registry import`` as a user would: wall seconds, its summary, its CPU
    seconds (user + system, from wait4) and its peak RSS (VmHWM, KiB)."""
    with tempfile.TemporaryFile("w+") as output:
        started = time.perf_counter()
        child = subprocess.Popen([*EIR_MEASURED, "--registry", registry, "registry", "import", kind, str(csv_path)],
                                 stdout=output, stderr=subprocess.STDOUT, text=True)
        _pid, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        output.seek(0)
        text = output.read().strip()
    peak = re.search(r"^VmHWM:\s+(\d+) kB$", text, re.MULTILINE)
    if child.returncode != 0 or peak is None:
        sys.exit(f"import failed ({child.returncode}): {text}")
    summary = text[:peak.start()] + text[peak.end():]
    return seconds, summary.strip(), usage.ru_utime + usage.ru_stime, int(peak.group(1))


def lookup_cost(registry: str, keys: Keys, count: int) -> tuple[float, float]:
    """Microseconds per lookup for present keys and absent keys (SQLite's default snapshot)."""
    rng = random.Random(11)
    hits = [keys.key(rng.randrange(keys.rows)) for _ in range(count)]
    misses = [f"00000000{rng.randrange(1_000_000):06d}" for _ in range(count)]
    with Registry(registry) as store:
        assert store.lookup(hits[0]) is not None and store.lookup(misses[0]) is None
        for key in hits[: count // 4]:  # warm the page cache
            store.lookup(key)
        results = []
        for batch in (hits, misses):
            started = time.perf_counter()
            for key in batch:
                store.lookup(key)
            results.append((time.perf_counter() - started) / len(batch) * 1e6)
    return results[0], results[1]


@contextmanager
def postgres(url: str | None) -> Iterator[str]:
    """The PostgreSQL database to import into: ``url`` emptied, or a throwaway cluster."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.postgres import Cluster, reset

    if url is not None:
        reset(url)
        yield url
        return
    cluster = Cluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def bench(label: str, registry: str, white: Path, grey: Path, rows: int) -> None:
    for step, kind, path, count in (("new", "white", white, rows), ("white->grey", "grey", grey,
                                                                      -(-rows // GREY_EVERY))):
        seconds, summary, cpu, peak = run_import(registry, kind, path)
        own = re.search(r"; ([0-9.]+) s$", summary)
        print(f"{label:10} import {step:12} {count:>11,} rows {count / seconds:>9,.0f} rows/s  {seconds:7.2f} s wall "
              f"({own.group(1) if own else '?'} s in the command), {cpu:7.2f} s CPU ({count / cpu:,.0f} rows per "
              f"CPU second), peak RSS {peak / 1024:.0f} MiB", flush=True)
        print(f"    {summary}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 rows: a sanity run of a few seconds")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--postgres", metavar="URL", help="a scratch PostgreSQL database (default: a throwaway "
                                                          "cluster)")
    parser.add_argument("--lookups", type=int, default=200_000, help="SQLite lookups timed after the imports")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep its files")
    args = parser.parse_args()
    rows = 100_000 if args.quick else args.rows
    with workdir(args.keep, "white.csv") as (folder, _csv, sqlite_url):
        started = time.perf_counter()
        keys = Keys(rows)
        white, grey = generate(folder, keys)
        print(f"generated {rows:,} IMEIs ({white.stat().st_size / 1e6:.0f} MB CSV) in "
              f"{time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f}, Python {sys.version.split()[0]}", flush=True)
        if args.backend in ("sqlite", "both"):
            bench("sqlite", sqlite_url, white, grey, rows)
            print(f"registry file: {registry_megabytes(folder):.0f} MB", flush=True)
            if args.lookups:
                hit, miss = lookup_cost(sqlite_url, keys, args.lookups)
                print(f"lookup: {hit:.2f} µs per present IMEI, {miss:.2f} µs per absent IMEI", flush=True)
        if args.backend in ("postgresql", "both"):
            with postgres(args.postgres) as url:
                bench("postgresql", url, white, grey, rows)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
