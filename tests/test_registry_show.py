"""``eir registry show IMEI``: the entry and history, the IMEI's sightings and the decision
it would get (``--profile``, ``--at``), run as the real command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry.imei import luhn_check_digit

EIR = [sys.executable, "-m", "eir"]
WHITE, PAIRED, UNREGISTERED = "35209900176148", "35209900176152", "35209900999999"
BOUND, OTHER = "436011234567890", "436059999999999"


def imei15(key: str) -> str:
    return key + luhn_check_digit(key)


@pytest.fixture
def eir(tmp_path: Path, registry_url: str):  # type: ignore[no-untyped-def]
    url = registry_url
    environment = {k: v for k, v in os.environ.items() if k != "EIR_REGISTRY"}
    environment["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*EIR, "--registry", url, "registry", *args], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path, env=environment)

    def load(kind: str, text: str) -> None:
        path = tmp_path / f"{kind}.csv"
        path.write_text(text)
        done = run("import", kind, str(path))
        assert done.returncode == 0, done.stdout + done.stderr

    load("tac", "tac,brand,model,device_type\n35209900,Acme,Phone 1,Smartphone\n")
    load("white", f"imei,reason\n{imei15(WHITE)},customs cleared\n")
    load("paired", f"imei,imsi,msisdn\n{PAIRED},{BOUND},\n")
    load("observations", "date,imei,imsi,msisdn\n"
         f"2025-01-01,{WHITE},{BOUND},992900123456\n"
         f"2025-02-01T08:30:00,{WHITE},,\n"
         f"2025-01-01,{PAIRED},{BOUND},\n"
         f"2025-02-01,{PAIRED},{OTHER},\n"
         f"2025-03-01,{UNREGISTERED},{BOUND},\n"
         f"2025-03-20,{UNREGISTERED},{BOUND},\n")
    return run


def test_white_imei_shows_its_sightings_and_the_decision_now(eir) -> None:  # type: ignore[no-untyped-def]
    shown = eir("show", imei15(WHITE))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "  list:     white (customs cleared)" in lines
    start = lines.index("sightings (first seen first):")
    assert lines[start + 1] == ("  IMSI 436011234567890  first 2025-01-01 00:00:00 UTC  last 2025-01-01 00:00:00 UTC"
                                "  MSISDN 992900123456  via import")
    assert lines[start + 2] == ("  IMSI (none)           first 2025-02-01 08:30:00 UTC  last 2025-02-01 08:30:00 UTC"
                                "  MSISDN -  via import")
    assert lines[start + 3] == ("decision now (profile tj): WHITE (white-list): on the white list (customs cleared)"
                                "; asked without an IMSI (last seen without one)")
    assert len(lines) == start + 4


def test_the_decision_is_asked_with_the_imsi_last_seen_by_at(eir) -> None:  # type: ignore[no-untyped-def]
    now = eir("show", PAIRED)
    assert now.returncode == 0, now.stderr
    assert "  paired:   IMSI 436011234567890, MSISDN -" in now.stdout
    assert now.stdout.splitlines()[-1] == (
        "decision now (profile tj): BLACK (paired-mismatch): paired white, but used with 436059999999999, "
        "which is not bound to it; asked with IMSI 436059999999999 (the last seen)")

    before = eir("show", PAIRED, "--at", "2025-01-15")  # the other SIM was not seen yet
    assert before.returncode == 0, before.stderr
    last = before.stdout.splitlines()[-1]
    assert last.startswith("decision at 2025-01-15 12:00:00 UTC (profile tj): WHITE (paired-match): "), last
    assert last.endswith("; asked with IMSI 436011234567890 (the last seen)")


def test_an_unregistered_imei_shows_its_grace_clock_and_exits_1(eir) -> None:  # type: ignore[no-untyped-def]
    inside = eir("show", UNREGISTERED, "--at", "2025-03-25")
    assert inside.returncode == 1, inside.stderr
    lines = inside.stdout.splitlines()
    assert lines[:4] == [
        f"IMEI {UNREGISTERED} (15 digits: {imei15(UNREGISTERED)})",
        "  TAC 35209900: Acme Phone 1 (Smartphone)",
        "  not in the registry",
        "sightings (first seen first):",
    ]
    assert lines[4] == ("  IMSI 436011234567890  first 2025-03-01 00:00:00 UTC  last 2025-03-20 00:00:00 UTC"
                        "  MSISDN -  via import")
    assert lines[5].startswith("decision at 2025-03-25 12:00:00 UTC (profile tj): GREY (grace): not registered; ")
    assert "; deadline 2025-03-31" in lines[5]
    assert lines[5].endswith("; asked with IMSI 436011234567890 (the last seen)")

    after = eir("show", UNREGISTERED, "--at", "2025-04-15T09:00:00+05:00")
    assert after.returncode == 1
    assert after.stdout.splitlines()[-1].startswith(
        "decision at 2025-04-15 04:00:00 UTC (profile tj): BLACK (grace-expired): ")

    kg = eir("show", UNREGISTERED, "--at", "2025-04-15", "--profile", "kg")  # in Kyrgyzstan a Tajik SIM roams in
    assert kg.returncode == 1
    assert kg.stdout.splitlines()[-1].startswith(
        "decision at 2025-04-15 12:00:00 UTC (profile kg): WHITE (roamer): inbound roamer (IMSI 436011234567890)")


def test_a_never_seen_imei_and_bad_options(eir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    never = eir("show", "35209900176160")
    assert never.returncode == 1
    sightings, decision = never.stdout.splitlines()[-2:]
    assert sightings == "sightings: none"
    assert decision.startswith("decision now (profile tj): GREY (grace): not registered; "), decision
    assert decision.endswith("; asked without an IMSI (never seen)")

    bad_profile = eir("show", imei15(WHITE), "--profile", str(tmp_path / "missing.yaml"))
    assert bad_profile.returncode == 2 and bad_profile.stderr.startswith("eir registry: ")
    bad_at = eir("show", imei15(WHITE), "--at", "yesterday")
    assert bad_at.returncode == 2 and "'yesterday' is not a date" in bad_at.stderr
    bad_imei = eir("show", "352099001761482")
    assert bad_imei.returncode == 2 and "invalid IMEI" in bad_imei.stderr
