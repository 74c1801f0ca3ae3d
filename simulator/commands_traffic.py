"""``eir sim traffic``: a country's attach traffic, day by day, checked against the population model."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, time
from pathlib import Path

import click

from simulator.traffic_population import DEFAULT_ACTIVE, DEFAULT_SHARES, Kind

DEFAULT_START = date(2025, 3, 3)
SHARES_HELP = ", ".join(f"{kind.value} {share:g}" for kind, share in DEFAULT_SHARES.items())


@click.command("traffic")
@click.option("--profile", default="tj", show_default=True, help="The country profile: tj, kg or a YAML file.")
@click.option("--subscribers", default=1000, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Subscribers (each with one device; dual-SIM phones and clones attach as two lines).")
@click.option("--days", default=45, show_default=True, type=click.IntRange(1, 2047), help="Days to play.")
@click.option("--seed", default=1, show_default=True, type=int, help="The population's seed: same seed, same run.")
@click.option("--rate", type=click.FloatRange(min=1.0), metavar="R",
              help="At most R requests a second (S13 and MAP together) [default: as fast as the agent answers].")
@click.option("--interface", "interface", default="both", show_default=True,
              type=click.Choice(["s13", "map", "both"]),
              help="Attaches as S13 ECRs, MAP CheckIMEI location updates, or both (each active line asks both).")
@click.option("--share", "shares", multiple=True, metavar="NAME=FRACTION",
              help=f"A share of the subscribers, repeatable; defaults: {SHARES_HELP}; registered takes the rest.")
@click.option("--active", default=DEFAULT_ACTIVE, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="The chance that a phone attaches on a day of its stay (routers attach every day).")
@click.option("--start", "start", default=DEFAULT_START.isoformat(), show_default=True, metavar="DATE",
              help="The local date of day 1 (attaches at 09:00 local time).")
@click.option("--report", "report", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.html",
              help="Also draw the days as an HTML report.")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Keep the run under DIR: registry, answer and agent logs, devices.csv, answers.csv, days.json.")
@click.option("--inflight", default=64, show_default=True, type=click.IntRange(1, 1024),
              help="Requests in flight on each connection.")
@click.option("--model-grace-shift", "grace_shift", default=0, type=int, hidden=True,
              help="Test hook: the model's grace windows this many days longer (a wrong model must fail).")
def traffic(profile: str, subscribers: int, days: int, seed: int, rate: float | None, interface: str,
            shares: tuple[str, ...], active: float, start: str, report: Path | None, keep: Path | None,
            inflight: int, grace_shift: int) -> None:
    """Play a country's attach traffic against an agent on the lab clock, day by day.

    A seeded population (registered phones, phones bought abroad, dual-SIM phones, inbound
    roamers, foreigners with a local SIM, clones on the paired white list, routers and
    modems, phones reported stolen and phones registered during the window) attaches
    every day over S13 and MAP to its own `eir serve --lab-clock`. Each day prints the
    answers by status and rule, the notices queued and the devices cut off; every answer
    is checked against the status and rule the model predicts for that device that day.

    \b
    Exit status: 0 every answer as predicted; 1 a mismatch, or the run could not be played;
    2 bad options."""
    from registry.profile import ProfileError, load_profile
    from simulator.traffic import TrafficError, TrafficOptions, progress_stream, run_traffic, summary
    from simulator.traffic_population import Settings, ShareError, parse_shares

    try:
        parsed = parse_shares(shares)
        loaded = load_profile(profile)
        day_one = _date(start)
    except (ShareError, ProfileError, ValueError) as error:
        click.echo(f"eir sim traffic: {error}", err=True)
        sys.exit(2)
    at = datetime.combine(day_one, time(9), tzinfo=UTC) - loaded.utc_offset
    interfaces = ("s13", "map") if interface == "both" else (interface,)
    settings = Settings(subscribers, days, seed, {Kind(kind): share for kind, share in parsed.items()}, active)
    options = TrafficOptions(profile, settings, at, interfaces, rate, keep, grace_shift, inflight)
    try:
        result = run_traffic(options, click.echo, progress_stream())
    except TrafficError as error:
        click.echo(f"eir sim traffic: {error}", err=True)
        sys.exit(1)
    for line in summary(result):
        click.echo(line)
    if report is not None:  # drawn whatever the verdict: a failed run is the one to look at
        from simulator.report import write_report

        try:
            write_report(report, [], traffic=result.days)
        except OSError as error:
            click.echo(f"eir sim traffic: cannot write the report {report}: {error.strerror or error}", err=True)
            sys.exit(1)
        click.echo(f"report: {report}")
    sys.exit(1 if result.mismatch_count else 0)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--start {text!r}: a date, YYYY-MM-DD") from None
