"""``eir registry import observations``, ``block``, ``unblock``, ``export notification|exception``
and ``eir notices export``, run as the real command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.service import EquipmentCheck, Interface
from registry.decision import Query
from registry.imei import luhn_check_digit
from registry.observations import Recorder
from registry.profile import Profile
from registry.store import Registry

EIR = [sys.executable, "-m", "eir"]
A, B, PAIRED = "35209900176148", "35209900176149", "35209900176152"
MEGAFON, TCELL = "436011234567890", "436059876543210"
MSISDN = "992900123456"


def imei15(key: str) -> str:
    return key + luhn_check_digit(key)


def eir(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "EIR_REGISTRY"}
    environment["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return subprocess.run([*EIR, "--registry", url, *args], capture_output=True, text=True, timeout=60,
                          env=environment)


@pytest.fixture
def url(registry_url: str) -> str:
    """The registry's URL: each test here runs on SQLite, then on PostgreSQL."""
    return registry_url


def test_import_observations_reports_bad_rows_and_exports_them_back(tmp_path: Path, url: str) -> None:
    csv = tmp_path / "seen.csv"
    csv.write_text(f"date,imei,imsi,msisdn\n2025-03-01,{imei15(A)},{MEGAFON},+{MSISDN}\n"
                   f"2025-03-04T09:00:00,{A},{MEGAFON},\n2025-03-02,{B},,\n2025-13-01,{B},{TCELL},\n")
    done = eir(url, "registry", "import", "observations", str(csv))
    assert done.returncode == 1, done.stderr
    assert f"{csv}:5: bad date '2025-13-01'" in done.stderr
    assert done.stdout.startswith("observations: 4 rows read, 3 imported (2 new pairs, 1 merged into known pairs), "
                                  "1 bad; ")
    exported = eir(url, "registry", "export", "observations", "--out", "-")
    assert exported.returncode == 0 and "observations: 2 rows exported to -" in exported.stderr
    assert exported.stdout == (f"date,imei,imsi,msisdn\n2025-03-01T00:00:00Z,{imei15(A)},{MEGAFON},{MSISDN}\n"
                               f"2025-03-02T00:00:00Z,{imei15(B)},,\n")
    strict = eir(f"sqlite:///{tmp_path / 'strict.db'}", "registry", "import", "observations", "--strict", str(csv))
    assert strict.returncode == 1 and "file refused (--strict): nothing written" in strict.stdout


def test_block_and_unblock_show_in_history_with_exit_statuses(sqlite_url: str) -> None:
    url = sqlite_url  # it begins with no registry at all: a file not made yet
    assert eir(url, "registry", "block", imei15(A), "--reason", "x").returncode == 2  # no registry: none is made
    assert eir(url, "registry", "init").returncode == 0
    blocked = eir(url, "registry", "block", imei15(A), "--reason", "police request 42")
    assert blocked.returncode == 0, blocked.stderr
    assert blocked.stdout == f"IMEI {A} blocked: stolen (police request 42); it was not in the registry\n"
    assert eir(url, "check", A).returncode == 1  # black
    again = eir(url, "registry", "block", A, "--reason", "police request 43")
    assert again.returncode == 0 and "was already blocked (police request 42); reason now: police request 43" in \
        again.stdout
    unblocked = eir(url, "registry", "unblock", A, "--reason", "returned to its owner")
    assert unblocked.returncode == 0, unblocked.stderr
    assert unblocked.stdout == f"IMEI {A} unblocked (returned to its owner); now answered by its list: none\n"
    shown = eir(url, "registry", "show", A)
    assert shown.returncode == 0 and "stolen:   no" in shown.stdout and "source:   cli:unblock" in shown.stdout
    assert "stolen: (none) -> true (police request 42)  [cli:block]" in shown.stdout
    assert "stolen: true -> false (returned to its owner)  [cli:unblock]" in shown.stdout

    not_blocked = eir(url, "registry", "unblock", A, "--reason", "again")
    assert not_blocked.returncode == 1
    assert f"IMEI {A} is not blocked (not reported stolen); nothing changed" in not_blocked.stderr
    invalid = eir(url, "registry", "block", A + "0", "--reason", "x")
    assert invalid.returncode == 2 and f"invalid IMEI '{A}0': check digit 0 does not match" in invalid.stderr
    assert eir(url, "registry", "unblock", "12345", "--reason", "x").returncode == 2
    assert eir(url, "registry", "block", A).returncode == 2  # --reason is required
    assert eir(url, "registry", "block", A, "--reason", " ").returncode == 2


def test_operator_lists(tmp_path: Path, url: str) -> None:
    seen = (datetime.now(UTC) - timedelta(days=2)).date()
    (tmp_path / "seen.csv").write_text(f"date,imei,imsi,msisdn\n{seen},{A},{MEGAFON},{MSISDN}\n{seen},{B},{TCELL},\n")
    (tmp_path / "paired.csv").write_text(f"imei,imsi,msisdn\n{PAIRED},{MEGAFON},\n{PAIRED},{TCELL},\n")
    for kind, name in (("observations", "seen.csv"), ("paired", "paired.csv")):
        assert eir(url, "registry", "import", kind, str(tmp_path / name)).returncode == 0

    out = tmp_path / "notification.csv"
    done = eir(url, "registry", "export", "notification", "--operator", "436-01", "--out", str(out))
    assert done.returncode == 0 and f"notification: 1 rows exported to {out}" in done.stderr
    deadline = seen + timedelta(days=30)
    assert out.read_text() == (f"imei,imsi,msisdn,deadline,reason\n{imei15(A)},{MEGAFON},{MSISDN},"
                               f"{deadline}T00:00:00Z,not registered; 30-day window from {seen} ends {deadline}\n")
    past = eir(url, "registry", "export", "notification", "--operator", "436-01", "--at", "2020-01-01", "--out", "-")
    assert past.returncode == 0 and past.stdout == "imei,imsi,msisdn,deadline,reason\n"  # not seen yet then
    exception = eir(url, "registry", "export", "exception", "--operator", "436-05", "--profile", "tj", "--out", "-")
    assert exception.returncode == 0 and exception.stdout == f"imei,imsi\n{imei15(PAIRED)},{TCELL}\n"

    foreign = eir(url, "registry", "export", "exception", "--operator", "437-01", "--out", "-")
    assert foreign.returncode == 2 and "operator 437-01 is not a home PLMN of profile tj" in foreign.stderr
    assert eir(url, "registry", "export", "exception", "--operator", "437-01", "--profile", "kg",
               "--out", "-").returncode == 0
    missing = eir(url, "registry", "export", "notification", "--out", "-")
    assert missing.returncode == 2 and "the notification list needs --operator MCC-MNC" in missing.stderr
    misplaced = eir(url, "registry", "export", "white", "--operator", "436-01", "--out", "-")
    assert misplaced.returncode == 2
    no_profile = eir(url, "registry", "export", "exception", "--operator", "436-01", "--profile", "xx", "--out", "-")
    assert no_profile.returncode == 2 and "no profile 'xx'" in no_profile.stderr


def test_notices_export_writes_the_new_ones_and_marks_them(tmp_path: Path, url: str, tj: Profile) -> None:
    at = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    with Registry(url) as store:
        recorder = Recorder(store)
        service = EquipmentCheck(store, tj, recorder)
        for key in (A, B):
            service.answer(Query(key, Interface.S13, at, imsi=MEGAFON, msisdn=MSISDN))
        recorder.close()
    header = "imei,imsi,msisdn,event,deadline,reason,created_at\n"

    failed = eir(url, "notices", "export", "--out", str(tmp_path / "no" / "such" / "dir.csv"))
    assert failed.returncode == 2 and "cannot write" in failed.stderr and "nothing marked" in failed.stderr
    out = tmp_path / "notices.csv"
    done = eir(url, "notices", "export", "--out", str(out))
    assert done.returncode == 0 and f"notices: 2 written to {out} (marked exported)" in done.stderr
    lines = out.read_text().splitlines(keepends=True)
    assert lines[0] == header and len(lines) == 3
    assert lines[1] == (f"{imei15(A)},{MEGAFON},{MSISDN},grey,2026-03-31T08:30:00Z,not registered; 30-day window "
                        "from 2026-03-01 ends 2026-03-31,2026-03-01T08:30:00Z\n")
    again = eir(url, "notices", "export")  # standard output by default
    assert again.returncode == 0 and again.stdout == header and "notices: 0 written to -" in again.stderr
    everything = eir(url, "notices", "export", "--all", "--out", "-")
    assert everything.returncode == 0 and everything.stdout == "".join(lines)
    assert "(all notices, none marked)" in everything.stderr
