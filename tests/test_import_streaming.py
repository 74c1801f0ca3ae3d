"""Imports stream: the import process's memory does not grow with the file, duplicates are
found by the database, and a file of many bad rows lists the first BAD_LISTED of them and
counts the rest. Each test runs on SQLite, then on PostgreSQL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from registry.bulk import Counts
from registry.decision import ListName
from registry.imei import luhn_check_digit
from registry.imports import BAD_LISTED, BadRow, ImportKind, import_file, import_lines
from registry.store import Registry
from tests.postgres import reset

# ``python -m eir`` that writes its own VmHWM to stderr as it exits. Not the rusage of
# wait4: Linux carries the parent's peak RSS into a child's ru_maxrss across fork and exec,
# so a child of a large pytest would report pytest's peak, not its own.
EIR_MEASURED = [sys.executable, "-c", "import atexit, runpy, sys; atexit.register(lambda: sys.stderr.write("
                "next(line for line in open('/proc/self/status') if line.startswith('VmHWM:')))); "
                "runpy.run_module('eir', run_name='__main__', alter_sys=True)"]
SMALL, LARGE = 20_000, 200_000
# What the import process may grow by between SMALL and LARGE rows, besides the SQLite page
# cache (below). A parse chunk (CHUNK rows of tuples, a few MB), allocator slack and the
# driver's buffers stay well under this; before imports streamed, the 180,000 more rows
# cost about 100 MiB of Python objects (a dict of every key, every row staged in RAM).
SLACK_MIB = 24


def key(i: int) -> str:
    return f"35{i:012d}"


def write_white(path: Path, rows: int) -> Path:
    with path.open("w") as out:
        out.write("imei,reason\n")
        for i in range(rows):  # 7919 is prime to 10**12: distinct keys, in no key order
            spread = key(i * 7919 % 10**12)
            out.write(f"{spread}{luhn_check_digit(spread)},customs declaration {i}\n")
    return path


def peak_import_mib(url: str, csv: Path) -> float:
    """Run the real ``eir registry import white`` and return its peak RSS (VmHWM) in MiB."""
    environment = {name: value for name, value in os.environ.items() if name != "EIR_REGISTRY"}
    environment["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    done = subprocess.run([*EIR_MEASURED, "--registry", url, "registry", "import", "white", str(csv)],
                          capture_output=True, text=True, env=environment, timeout=120)
    assert done.returncode == 0 and " 0 bad" in done.stdout, done.stdout + done.stderr
    peak = re.search(r"^VmHWM:\s+(\d+) kB$", done.stderr, re.MULTILINE)
    assert peak is not None, done.stderr
    return int(peak.group(1)) / 1024


def sqlite_file_mib(url: str) -> float:
    if not url.startswith("sqlite:///"):
        return 0.0
    database = Path(url.removeprefix("sqlite:///"))
    return sum(path.stat().st_size for path in database.parent.glob(database.name + "*")) / 2**20


def test_import_memory_does_not_grow_with_the_file(registry_url: str, tmp_path: Path) -> None:
    """SMALL then LARGE rows, each into an empty registry. On SQLite the page cache may hold
    the pages the import wrote (at most the registry's size, capped by cache_size): that
    growth is the database's, so the bound adds the file's growth to SLACK_MIB."""
    peaks, files = [], []
    for rows in (SMALL, LARGE):
        url = registry_url
        if url.startswith("sqlite:///"):
            url = f"sqlite:///{tmp_path / f'registry-{rows}.db'}"
        else:
            reset(url)
        peaks.append(peak_import_mib(url, write_white(tmp_path / f"white-{rows}.csv", rows)))
        files.append(sqlite_file_mib(url))
    grown, cache = peaks[1] - peaks[0], files[1] - files[0]
    assert grown < SLACK_MIB + cache, f"peak RSS {peaks[0]:.0f} -> {peaks[1]:.0f} MiB (file grew {cache:.0f} MiB)"


def test_many_bad_rows_are_counted_and_the_first_listed(registry: Registry, tmp_path: Path) -> None:
    """Bad rows and duplicates interleaved: the report lists the first BAD_LISTED by line,
    counts them all, and says so; the good rows are imported."""
    lines, good = ["imei,reason\n"], 0
    for i in range(BAD_LISTED + 200):
        lines.append(f"{key(i)}{luhn_check_digit(key(i))},first\n")  # good
        lines.append(f"{key(i)},again\n" if i % 2 else f"{key(i)}X,typo\n")  # duplicate, or bad
        good += 1
    report = import_lines(registry, ImportKind.WHITE, lines, "test")
    assert report.bad_total == BAD_LISTED + 200 and len(report.bad) == BAD_LISTED
    assert [bad.line for bad in report.bad] == list(range(3, 3 + 2 * BAD_LISTED, 2))  # by line, both kinds
    assert report.bad[1] == BadRow(5, f"duplicate: IMEI {key(1)} already on line 4")
    assert report.bad[0].reason.startswith(f"bad IMEI '{key(0)}X'")
    assert report.counts == Counts(new=good)
    assert f"{BAD_LISTED + 200} bad (the first {BAD_LISTED} listed)" in report.summary()
    assert registry.lookup(key(1)).reason == "first"  # type: ignore[union-attr]  # the first row wins


def test_strict_refusal_lists_duplicates_and_writes_nothing(registry: Registry, tmp_path: Path) -> None:
    csv = tmp_path / "grey.csv"
    csv.write_text(f"imei,reason\n{key(1)},a\n{key(2)},b\n{key(1)}{luhn_check_digit(key(1))},c\n")
    registry.put_list(ListName.WHITE, [(key(2), "cleared")], "test")
    report = import_file(registry, ImportKind.GREY, csv, strict=True)
    assert report.refused and report.bad == [BadRow(4, f"duplicate: IMEI {key(1)} already on line 2")]
    assert report.counts == Counts()
    assert registry.lookup(key(1)) is None and registry.lookup(key(2)).list is ListName.WHITE  # type: ignore[union-attr]
    assert [entry.new for entry in registry.history(key(2))] == ["white"]  # no move, no history written


def test_sqlite_bulk_writes_keep_temporary_tables_in_files_then_restore(sqlite_registry: Registry) -> None:
    """temp_store=FILE (1) inside a bulk write, so its staging tables and sorts are not held
    in RAM; the connection's own setting (MEMORY, 2) is back once the write is done."""
    with sqlite_registry.bulk() as bulk:
        bulk.add_entries([(key(1), None)])
        assert bulk.conn.exec_driver_sql("PRAGMA temp_store").scalar() == 1
        bulk.put_list(ListName.WHITE, "test")
    with sqlite_registry.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 2
