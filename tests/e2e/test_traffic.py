"""``eir sim traffic`` end to end: the real command starts its own ``eir serve --lab-clock``,
plays a small country (300 subscribers, 35 days, S13 and MAP) and checks every answer
against the population model; its kept answers.csv and devices.csv are read here to
check the enforcement story itself (nobody black for want of registration before day 31
under tj; a phone registered on day 12 white from day 12; a stolen phone black from its
report's day). A deliberately wrong model (its grace windows one day longer) must be
caught as mismatches: the run's check can fail."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

EIR = [sys.executable, "-m", "eir"]
DAY_LINE = re.compile(r"^day +(\d+) (\d{4}-\d\d-\d\d)  devices [\d,]+  answers [\d,]+: .*\| rules: .*\| notices: .*"
                      r"\| cut off [\d,]+ \| mismatches (\d+)$", re.MULTILINE)
WANT_OF_REGISTRATION = {"grace-expired", "no-grace", "not-registered"}


def traffic(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([*EIR, "sim", "traffic", *args], capture_output=True, text=True, timeout=timeout,
                          env=environment, check=False)


@pytest.fixture(scope="module")
def country(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    keep = tmp_path_factory.mktemp("traffic") / "run"
    done = traffic("--profile", "tj", "--subscribers", "300", "--days", "35", "--seed", "7", "--interface", "both",
                   "--keep", str(keep), "--report", str(keep.parent / "traffic.html"))
    return done, keep


def rows(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_country_plays_day_by_day_with_every_answer_as_predicted(
        country: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, keep = country
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    days = DAY_LINE.findall(done.stdout)
    assert [int(day) for day, _, _ in days] == list(range(1, 36))
    assert days[0][1] == "2025-03-03" and all(mismatches == "0" for _, _, mismatches in days)
    assert "0 mismatches with the population model" in done.stdout
    answers = rows(keep / "answers.csv")
    assert {row["interface"] for row in answers} == {"s13", "map"}
    assert all(row["received"] == row["expected"] and row["rule"] in row["expected_rule"].split("|")
               for row in answers)
    rules = {row["rule"] for row in answers}
    assert {"white-list", "grace", "grace-expired", "roamer", "paired-match", "paired-mismatch", "auto-entered",
            "stolen"} <= rules
    assert (keep / "registry.db").exists() and list(keep.glob("answers-*.jsonl"))


def test_the_report_draws_the_days(country: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, keep = country
    page = (keep.parent / "traffic.html").read_text(encoding="utf-8")
    assert f"report: {keep.parent / 'traffic.html'}" in done.stdout
    assert "Traffic, day by day" in page and "35 days played from 2025-03-03" in page
    assert 'id="chart-traffic-shares"' in page and 'id="chart-traffic-cut-off"' in page


def test_nobody_is_black_for_want_of_registration_before_day_31_under_tj(
        country: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, keep = country
    answers = rows(keep / "answers.csv")
    cut = [row for row in answers if row["rule"] in WANT_OF_REGISTRATION]
    assert cut, "the run never reached the end of a grace window: the check below would prove nothing"
    assert min(int(row["day"]) for row in cut) >= 31
    assert all(row["received"] == "black" for row in cut)
    early = {(row["received"], row["rule"]) for row in answers if int(row["day"]) < 31 and row["kind"] == "abroad"}
    assert early == {("grey", "grace")}


def test_a_phone_registered_on_day_12_is_white_from_day_12(
        country: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, keep = country
    devices = rows(keep / "devices.csv")
    on_12 = {row["imei"] for row in devices if row["registered_day"] == "12"}
    assert on_12, "no phone registered on day 12 in this population"
    seen: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for row in rows(keep / "answers.csv"):
        if row["imei"] in on_12:
            seen["before" if int(row["day"]) < 12 else "from"].add((row["received"], row["rule"]))
    assert seen["before"] == {("grey", "grace")}
    assert seen["from"] == {("white", "white-list")}


def test_a_stolen_phone_is_black_from_its_reports_day(country: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, keep = country
    reported = {row["imei"]: int(row["stolen_day"]) for row in rows(keep / "devices.csv") if row["stolen_day"]}
    assert reported
    answers = [row for row in rows(keep / "answers.csv") if row["imei"] in reported]
    assert {row["received"] for row in answers if int(row["day"]) < reported[row["imei"]]} == {"white"}
    assert {(row["received"], row["rule"]) for row in answers
            if int(row["day"]) >= reported[row["imei"]]} == {("black", "stolen")}


def test_a_wrong_model_is_caught_as_mismatches(tmp_path: Path) -> None:
    """The model's grace windows one day longer: on the day each window ends the agent says
    black (grace-expired) where the model says grey, and its reminders come a day before
    the model's; the run prints them and exits 1. Before the first reminder all agree."""
    done = traffic("--subscribers", "80", "--days", "31", "--interface", "s13", "--active", "1",
                   "--share", "abroad=0.5", "--model-grace-shift", "1")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    found = re.search(r"^([\d,]+) days?, [\d,]+ answers in .*; ([\d,]+) mismatches", done.stdout, re.MULTILINE)
    assert found is not None and int(found[2].replace(",", "")) > 0
    assert re.search(r"day  31  device \d+ \(abroad\) IMEI \d{15} IMSI \d{15} s13: expected grey \(grace\), "
                     r"received black \(grace-expired\)", done.stdout), done.stdout[-3000:]
    assert "days whose notices differ from the model:" in done.stdout
    assert re.search(r"day  2\d  notices queued: expected .*, the registry holds .*reminder-7d \d+", done.stdout)
    assert all(int(mismatches) == 0 for day, _, mismatches in DAY_LINE.findall(done.stdout) if int(day) < 24)
