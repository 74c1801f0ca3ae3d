"""CSV imports read one record a line (issue 12, item 13): a quote left open is one bad
row, not the swallowing of every row after it; an overlong line or field is one bad row,
not a refused file; memory stays bounded whatever a line's length. Through the real
`eir registry import` where the file is big."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from registry.imei import luhn_check_digit
from registry.imports import MAX_LINE, ImportKind, import_file, parse_rows
from registry.store import Registry
from simulator.agent_process import EIR


def imei(n: int) -> str:
    key = f"35209900{n:06d}"
    return key + luhn_check_digit(key)


def good_rows(first: int, count: int) -> str:
    return "".join(f"{imei(n)},customs {n}\n" for n in range(first, first + count))


@pytest.mark.parametrize("header", ["imei,reason", "reason,imei"])  # the fast path and the general one
def test_an_unterminated_quote_is_one_bad_row_and_the_rows_after_it_are_kept(tmp_path: Path,
                                                                            registry: Registry,
                                                                            header: str) -> None:
    rows = good_rows(0, 3) + f'{imei(3)},"customs, open quote\n' + good_rows(4, 5000)
    if header.startswith("reason"):
        rows = "".join(",".join(reversed(line.split(",", 1))) + "\n" if '"' not in line else
                       f'"customs, open quote,{imei(3)}\n' for line in rows.splitlines())
    path = tmp_path / "white.csv"
    path.write_text(f"{header}\n{rows}")
    report = import_file(registry, ImportKind.WHITE, path)
    assert [(bad.line, "quote" in bad.reason) for bad in report.bad] == [(5, True)]
    assert report.rows == 5004 and report.counts.new == 5003
    assert registry.lookup(imei(4)[:14]) is not None and registry.lookup(imei(5003)[:14]) is not None


def test_a_quote_in_the_middle_and_a_field_after_a_closed_quote_are_rows_of_their_own() -> None:
    parsed = parse_rows(ImportKind.WHITE, ["imei,reason\n", f'{imei(0)},"a"b\n', f"{imei(1)},ok\n",
                                           f'{imei(2)},x"y\n'])
    assert [(bad.line, bad.reason.startswith("not readable as CSV")) for bad in parsed.bad] == [(2, True)]
    assert [row[1] for row in parsed.rows] == ["ok", 'x"y']


def test_an_overlong_line_or_field_is_one_bad_row(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "white.csv"
    path.write_text("imei,reason\n" + good_rows(0, 2) + f"{imei(2)},{'r' * (200 * 1024)}\n" + good_rows(3, 2))
    report = import_file(registry, ImportKind.WHITE, path)
    assert [(bad.line, bad.reason) for bad in report.bad] == [(4, f"line longer than {MAX_LINE:,} characters")]
    assert report.counts.new == 4
    strict = import_file(registry, ImportKind.GREY, path, strict=True)
    assert strict.refused and registry.lookup(imei(0)[:14]).list.value == "white"  # type: ignore[union-attr]


def test_a_line_of_a_header_that_is_not_one_line_refuses_the_file(registry: Registry) -> None:
    from registry.imports import CsvFormatError

    with pytest.raises(CsvFormatError, match="line 1: a quote is opened"):
        parse_rows(ImportKind.WHITE, ['"imei,reason\n', f"{imei(0)},x\n"])


def test_memory_stays_bounded_with_a_huge_line(tmp_path: Path) -> None:
    """A 300 MB line between good rows: the real command imports the good rows, reports the
    line, and its peak memory stays far below the line's size."""
    path = tmp_path / "white.csv"
    with path.open("w") as out:
        out.write("imei,reason\n" + good_rows(0, 10))
        out.write(imei(10) + ",")
        chunk = "x" * (1 << 20)
        for _ in range(300):
            out.write(chunk)
        out.write("\n" + good_rows(11, 10))
    url = f"sqlite:///{tmp_path / 'r.db'}"
    probe = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
             "print(done.stdout + done.stderr)")
    run = subprocess.run([sys.executable, "-c", probe, *EIR, "--registry", url, "registry", "import", "white",
                          str(path)], capture_output=True, text=True, timeout=300)
    first, _, output = run.stdout.partition("\n")
    code, peak_kib = (int(part) for part in first.split())
    assert code == 1, output  # one bad row
    assert f"{path}:12: line longer than {MAX_LINE:,} characters" in output
    assert "20 imported" in output
    assert peak_kib < 200 * 1024, f"peak RSS {peak_kib} KiB for a 300 MiB line"
