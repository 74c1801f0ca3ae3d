"""``eir sim run``: play scenario suites against a real agent and report each step."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from diameter.transport import DIAMETER_PORT
from simulator.command_options import address
from simulator.msc import M3UA_PORT


@click.command("run")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--interface", "interface", default="both", show_default=True,
              type=click.Choice(["s13", "map", "both"]), help="Play each scenario over S13, MAP, or both (twice).")
@click.option("--junit", "junit", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.xml",
              help="Also write the results as JUnit XML.")
@click.option("--jobs", default=0, type=click.IntRange(0, 64), help="Runs side by side [default: the CPUs].")
@click.option("--target", callback=address(DIAMETER_PORT), metavar="HOST:PORT",
              help="Run the conformance scenarios against this EIR (S13) instead of an agent of our own.")
@click.option("--map-target", "map_target", callback=address(M3UA_PORT), metavar="HOST:PORT",
              help="With --target (or alone): the EIR's M3UA address for the MAP scenarios.")
@click.option("--registry-template", "template", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              metavar="FILE.db", help="A SQLite registry every run starts from (a copy) instead of an empty one.")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Keep each run's registry, answer log and agent log under DIR.")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.html",
              help="Also write the enforcement report: one HTML file that opens offline (simulator/report.py).")
@click.option("--quiet", "-q", is_flag=True, help="Print the failing steps only, and one line per scenario.")
@click.option("--pcap", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write every message of each run to a pcap file, stamped with the lab clock: FILE for one "
                   "run; for several, FILE's stem + -SUITE-SCENARIO-INTERFACE.pcap beside it (printed).")
def run(paths: tuple[Path, ...], interface: str, junit: Path | None, jobs: int, target: tuple[str, int] | None,
        map_target: tuple[str, int] | None, template: Path | None, keep: Path | None, report_file: Path | None,
        quiet: bool, pcap: Path | None) -> None:
    """Play the scenarios in PATHS (files, or folders of suites: scenarios/README.md) over
    real sockets: each scenario on each interface gets its own `eir serve --lab-clock`
    on a throwaway registry. One line per step: ok, or FAIL with the step, the device,
    the day and the difference.

    \b
    Exit status: 0 every step passed; 1 a step failed or a run could not be played;
    2 a scenario file cannot be read (the message names the file, the line and the key)."""
    from simulator.junit import write_junit
    from simulator.scenario import ScenarioError, find_scenarios, load_scenario
    from simulator.scenario_run import RunResult, RunSettings, run_all

    started = datetime.now(UTC)
    try:
        scenarios = [load_scenario(path) for path in find_scenarios(list(paths))]
    except ScenarioError as error:
        click.echo(f"eir sim run: {error}", err=True)
        sys.exit(2)
    if not scenarios:
        click.echo("eir sim run: no scenario (*.yaml) in " + " ".join(map(str, paths)), err=True)
        sys.exit(2)
    for option, where in (("--junit", junit), ("--report", report_file), ("--pcap", pcap)):
        _check_folder(option, where)
    interfaces = ("s13", "map") if interface == "both" else (interface,)
    settings = RunSettings(interfaces, jobs, target, map_target, template, keep, pcap)

    def report(result: RunResult) -> None:
        lines = result.lines()
        if quiet:
            lines = [lines[0]] + [step.line() for step in result.failures] + [line for line in lines
                                                                             if line.startswith(("  ERROR", "  pcap"))]
        for line in lines:
            click.echo(line)

    results = asyncio.run(run_all(scenarios, settings, report))
    if junit is not None:
        try:
            write_junit(junit, results, started)
        except OSError as error:
            click.echo(f"eir sim run: cannot write the JUnit XML {junit}: {error.strerror or error}", err=True)
            sys.exit(2)
    if report_file is not None:
        from simulator.report import write_report

        try:
            write_report(report_file, results, generated=started)
        except OSError as error:
            click.echo(f"eir sim run: cannot write the report {report_file}: {error.strerror or error}", err=True)
            sys.exit(2)
    passed = sum(result.passed for result in results)
    skipped = sum(result.skipped is not None for result in results)
    failed = len(results) - passed - skipped
    steps = sum(len(result.steps) for result in results)
    seconds = (datetime.now(UTC) - started).total_seconds()
    click.echo(f"{len(results)} runs ({len(scenarios)} scenarios): {passed} passed, {failed} failed, {skipped} skipped;"
               f" {steps} steps in {seconds:.1f} s" + (f"; JUnit XML: {junit}" if junit else ""))
    sys.exit(1 if failed else 0)


def _check_folder(option: str, path: Path | None) -> None:
    """A file to write after the runs must have a folder to go in: said before anything
    runs (exit 2), not after minutes of runs."""
    if path is not None and not path.resolve().parent.is_dir():
        click.echo(f"eir sim run: {option} {path}: no such folder {path.resolve().parent}", err=True)
        sys.exit(2)
