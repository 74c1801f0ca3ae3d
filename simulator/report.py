"""The enforcement report: one self-contained HTML file (``eir sim run --report``) that a
regulator opens offline and keeps: a summary of the runs, and per scenario run and device,
a timeline by day of the status the network was given, the rule that decided it, the
notices with their deadlines and the SIM, border and list events, failures with their
difference; charts of each device's status across the days and, for a traffic run, the
share of white, grey and black per day, the notices and the devices cut off.

Jinja2 renders the page with autoescape on: every value from a scenario file or the wire
is escaped; the only markup passed through is the SVG that matplotlib drew (which escapes
its own text). No script, and a Content-Security-Policy that forbids loading anything."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from simulator.report_charts import status_lanes, traffic_charts
from simulator.report_data import TrafficDay
from simulator.report_model import Event, RunView, run_views
from simulator.scenario_run import INTERFACES, RunResult

DEFAULT_TITLE = "EIR enforcement report"
VERDICT_WORDS = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP"}
EVENT_WORDS = {"notice": "{} notice queued", "notices": "{}"}


@dataclass
class InterfaceTotals:
    interface: str
    runs: int
    passed: int
    failed: int
    errors: int
    skipped: int
    steps: int
    failed_steps: int


@dataclass
class Summary:
    scenarios: int
    runs: int
    passed: int
    failed: int
    skipped: int
    notices: int
    cut_off: int


def write_report(path: Path, results: list[RunResult], traffic: list[TrafficDay] | None = None,
                 title: str = DEFAULT_TITLE, *, generated: datetime | None = None) -> None:
    """Write the report of ``results`` (and of a traffic run's days) to ``path``, whole or
    not at all (written beside it, then renamed over it)."""
    page = render_report(results, traffic, title, generated=generated)
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(page, encoding="utf-8")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def render_report(results: Sequence[RunResult], traffic: Sequence[TrafficDay] | None = None,
                  title: str = DEFAULT_TITLE, *, generated: datetime | None = None) -> str:
    runs = run_views(results)
    days = list(traffic or [])
    lanes = {run.anchor: _markup(status_lanes(run, run.anchor)) for run in runs}
    charts = {name: _markup(svg) for name, svg in traffic_charts(days, "traffic").items()}
    template = _environment().get_template("report.html.j2")
    return template.render(
        title=title, version=eir_version(), host=socket.gethostname(),
        generated=(generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
        profiles=sorted({run.profile_name for run in runs}), summary=summary(runs, days),
        interfaces=interface_totals(runs), runs=runs, lanes=lanes, traffic=days, traffic_charts=charts,
        traffic_totals=traffic_totals(days))


def _markup(svg: str | None) -> Markup | None:
    return None if svg is None else Markup(svg)  # matplotlib's SVG: it escapes its own text


def _environment() -> Environment:
    environment = Environment(loader=PackageLoader("simulator", "templates"), autoescape=True,
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters["thousands"] = "{:,}".format
    environment.globals.update(verdict=verdict_badge, event_text=event_text, detail=event_detail)
    return environment


def verdict_badge(verdict: str) -> Markup:
    word = VERDICT_WORDS.get(verdict, verdict.upper())
    return Markup('<span class="verdict verdict-{}">{}</span>').format(verdict, word)


def event_text(event: Event) -> str:
    return EVENT_WORDS.get(event.kind, "{}").format(event.text)


def event_detail(event: Event) -> str:
    """The detail column: the deadline, and the rule's reason (an answer) or what the step did."""
    parts = [f"deadline {event.deadline.isoformat()}"] if event.deadline is not None else []
    if event.kind == "answer":
        parts += [event.received if event.status is None else "", event.why or ""]
    elif event.kind not in ("check", "notice"):
        parts.append(event.received)
    return "; ".join(part for part in parts if part)


def eir_version() -> str:
    try:
        return version("eir")
    except PackageNotFoundError:
        return "0+unknown"


def summary(runs: Sequence[RunView], traffic: Sequence[TrafficDay]) -> Summary:
    verdicts = Counter(run.verdict for run in runs)
    return Summary(
        scenarios=len({run.scenario.path for run in runs}), runs=len(runs), passed=verdicts["passed"],
        failed=verdicts["failed"] + verdicts["error"], skipped=verdicts["skipped"],
        notices=sum(run.notices_sent for run in runs) + sum(sum(day.notices.values()) for day in traffic),
        cut_off=sum(run.cut_off for run in runs) + sum(day.cut_off for day in traffic))


def interface_totals(runs: Sequence[RunView]) -> list[InterfaceTotals]:
    found = []
    for interface in [*INTERFACES, *sorted({run.result.interface for run in runs} - set(INTERFACES))]:
        mine = [run for run in runs if run.result.interface == interface]
        if not mine:
            continue
        verdicts = Counter(run.verdict for run in mine)
        found.append(InterfaceTotals(
            interface, len(mine), verdicts["passed"], verdicts["failed"], verdicts["error"], verdicts["skipped"],
            sum(len(run.result.steps) for run in mine), sum(len(run.result.failures) for run in mine)))
    return found


@dataclass
class TrafficTotals:
    answers: int
    white: int
    grey: int
    black: int
    notices: int
    cut_off: int


def traffic_totals(days: Sequence[TrafficDay]) -> TrafficTotals:
    def total(status: str) -> int:
        return sum(day.answers.get(status, 0) for day in days)

    return TrafficTotals(sum(sum(day.answers.values()) for day in days), total("white"), total("grey"),
                         total("black"), sum(sum(day.notices.values()) for day in days),
                         sum(day.cut_off for day in days))

