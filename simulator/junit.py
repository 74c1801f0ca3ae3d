"""Scenario results as JUnit XML, the report CI systems (Jenkins, GitLab, GitHub actions)
read: ``testsuites`` > one ``testsuite`` per suite folder > one ``testcase`` per scenario
and interface, with a ``failure`` holding every difference, an ``error`` for a run that
could not be played, a ``skipped`` saying why, and the step lines in ``system-out``."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from simulator.scenario_run import RunResult


def junit_tree(results: Iterable[RunResult], started: datetime | None = None) -> ET.ElementTree:
    results = list(results)
    stamp = (started or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S")
    root = ET.Element("testsuites", name="eir scenarios")
    suites: dict[str, list[RunResult]] = {}
    for result in results:
        suites.setdefault(result.scenario.suite, []).append(result)
    for name, members in suites.items():
        suite = ET.SubElement(root, "testsuite", name=name, timestamp=stamp, hostname=socket.gethostname())
        for result in members:
            _testcase(suite, result)
        _totals(suite, members)
    _totals(root, results)
    ET.indent(root)
    return ET.ElementTree(root)


def _testcase(suite: ET.Element, result: RunResult) -> None:
    scenario = result.scenario
    case = ET.SubElement(suite, "testcase", name=f"{scenario.name} [{result.interface}]",
                         classname=f"{scenario.suite}.{scenario.name}", file=str(scenario.path),
                         time=f"{result.seconds:.3f}")
    if result.skipped is not None:
        ET.SubElement(case, "skipped", message=result.skipped)
        return
    if result.error is not None:
        error = ET.SubElement(case, "error", message=result.error, type="ScenarioError")
        error.text = result.error
    failures = result.failures
    if failures:
        failure = ET.SubElement(case, "failure", type="ScenarioFailure",
                                message=f"{len(failures)} of {len(result.steps)} steps failed: {scenario.title}")
        failure.text = "\n".join(step.line() for step in failures)
    out = ET.SubElement(case, "system-out")
    out.text = "\n".join(result.lines())


def _totals(element: ET.Element, results: list[RunResult]) -> None:
    element.set("tests", str(len(results)))
    element.set("failures", str(sum(1 for result in results if result.failures and result.error is None)))
    element.set("errors", str(sum(1 for result in results if result.error is not None)))
    element.set("skipped", str(sum(1 for result in results if result.skipped is not None)))
    element.set("time", f"{sum(result.seconds for result in results):.3f}")


def write_junit(path: Path, results: Iterable[RunResult], started: datetime | None = None) -> None:
    junit_tree(results, started).write(path, encoding="utf-8", xml_declaration=True)
