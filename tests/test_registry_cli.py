"""``eir registry import|export|show``, run as the real command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry.imei import luhn_check_digit

EIR = [sys.executable, "-m", "eir"]
WHITE, GREY, PAIRED = "35209900176148", "35209900176149", "35209900176152"
IMSI = "437011234567890"


def imei15(key: str) -> str:
    return key + luhn_check_digit(key)


def eir(*args: str, registry: str | None = None, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [*EIR, *(["--registry", registry] if registry else []), "registry", *args]
    environment = {k: v for k, v in os.environ.items() if k != "EIR_REGISTRY"} | (env or {})
    environment["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd, env=environment)


@pytest.fixture
def url(registry_url: str) -> str:
    """The registry's URL: each test here runs on SQLite, then on PostgreSQL."""
    return registry_url


def test_import_with_bad_rows_keeps_the_good_ones_and_exits_1(tmp_path: Path, url: str) -> None:
    csv = tmp_path / "white.csv"
    csv.write_text(f"imei,reason\n{imei15(WHITE)},customs cleared\n{WHITE[:-1]}X,typo\n{GREY},\n")
    done = eir("import", "white", str(csv), registry=url)
    assert done.returncode == 1, done.stderr
    assert f"{csv}:3: bad IMEI '{WHITE[:-1]}X': IMEI has a non-digit 'X' at position 14" in done.stderr
    assert done.stdout.startswith("white: 3 rows read, 2 imported (2 new, 0 changed, 0 unchanged), 1 bad; ")

    shown = eir("show", imei15(WHITE), registry=url)
    assert shown.returncode == 0, shown.stderr
    assert f"IMEI {WHITE} (15 digits: {imei15(WHITE)})" in shown.stdout
    assert "list:     white (customs cleared)" in shown.stdout
    assert "stolen:   no" in shown.stdout and "source:   import:white.csv" in shown.stdout
    assert "list: (none) -> white (customs cleared)  [import:white.csv]" in shown.stdout


def test_strict_refuses_the_file_exit_1_and_nothing_is_written(tmp_path: Path, url: str) -> None:
    csv = tmp_path / "grey.csv"
    csv.write_text(f"imei\n{GREY}\n{GREY}\n")
    done = eir("import", "grey", "--strict", str(csv), registry=url)
    assert done.returncode == 1
    assert f"{csv}:3: duplicate: IMEI {GREY} already on line 2" in done.stderr
    assert "file refused (--strict): nothing written" in done.stdout
    shown = eir("show", GREY, registry=url)
    assert shown.returncode == 1 and "not in the registry" in shown.stdout


def test_all_good_rows_exit_0_export_round_trips_and_show_everything(tmp_path: Path, url: str) -> None:
    (tmp_path / "paired.csv").write_text(f"imei,imsi,msisdn\n{PAIRED},{IMSI},\n{PAIRED},,+992900123456\n")
    (tmp_path / "stolen.csv").write_text(f"imei,reason\n{PAIRED},police report 42\n")
    (tmp_path / "tac.csv").write_text("tac,brand,model,device_type\n35209900,Acme,Phone 1,smartphone\n")
    for kind in ("paired", "stolen", "tac"):
        done = eir("import", kind, str(tmp_path / f"{kind}.csv"), registry=url)
        assert done.returncode == 0, done.stdout + done.stderr

    out = tmp_path / "export.csv"
    exported = eir("export", "paired", "--out", str(out), registry=url)
    assert exported.returncode == 0 and "paired: 2 rows exported" in exported.stderr
    assert out.read_text() == f"imei,imsi,msisdn\n{imei15(PAIRED)},{IMSI},\n{imei15(PAIRED)},,992900123456\n"
    again = eir("import", "paired", str(out), registry=url)
    assert again.returncode == 0 and "(0 new, 0 changed, 2 unchanged), 0 bad" in again.stdout

    shown = eir("show", PAIRED + "07", registry=url)  # an IMEISV: the SVN is not part of the key
    assert shown.returncode == 0
    for line in ("TAC 35209900: Acme Phone 1 (smartphone)", "list:     paired", "stolen:   yes (police report 42)",
                 f"paired:   IMSI {IMSI}, MSISDN -", "paired:   IMSI -, MSISDN 992900123456",
                 "source:   import:stolen.csv (last change)", f"pairing: (none) -> imsi={IMSI}",
                 "stolen: false -> true (police report 42)  [import:stolen.csv]"):
        assert line in shown.stdout
    assert shown.stdout.index("list: (none) -> paired") < shown.stdout.index("stolen: false -> true")

    stdout = eir("export", "stolen", "--out", "-", registry=url)
    assert stdout.returncode == 0 and stdout.stdout == f"imei,reason\n{imei15(PAIRED)},police report 42\n"


def test_usage_file_and_registry_errors_exit_2(tmp_path: Path, url: str) -> None:
    invalid = eir("show", "4901542032375", registry=url)
    assert invalid.returncode == 2
    assert "invalid IMEI '4901542032375': IMEI must be 14, 15 or 16 digits, got 13" in invalid.stderr
    missing = eir("import", "white", str(tmp_path / "missing.csv"), registry=url)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("imei,imsi,msisdn\n")
    header = eir("import", "white", str(wrong), registry=url)
    assert header.returncode == 2 and "unknown column 'imsi'" in header.stderr and "nothing imported" in header.stderr
    no_dir = eir("show", WHITE, registry=f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    assert no_dir.returncode == 2 and "cannot open registry sqlite:///" in no_dir.stderr


def test_registry_url_from_environment_and_default_file(tmp_path: Path) -> None:
    csv = tmp_path / "black.csv"
    csv.write_text(f"imei,reason\n{WHITE},grace over\n")
    by_env = eir("import", "black", str(csv), env={"EIR_REGISTRY": f"sqlite:///{tmp_path / 'env.db'}"})
    assert by_env.returncode == 0 and (tmp_path / "env.db").is_file()
    default = eir("import", "black", str(csv), cwd=tmp_path)
    assert default.returncode == 0 and (tmp_path / "eir.db").is_file()
    shown = eir("show", WHITE, cwd=tmp_path)
    assert shown.returncode == 0 and "list:     black (grace over)" in shown.stdout
