"""`eir sim run` as a QA engineer runs it in CI: the real command, real `eir serve
--lab-clock` processes, real sockets. Every shipped scenario passes on S13 and on MAP;
a wrong expectation fails with the step, the device, the day and the difference; a
schema error names the file, the line and the key; the JUnit XML reads in junitparser
(what CI tools use), and `--target` runs the conformance suite against an EIR the
runner did not start."""

from __future__ import annotations

import subprocess
from pathlib import Path

import junitparser
import pytest

from simulator.agent_process import EIR, AgentProcess
from simulator.scenario import find_scenarios, load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def sim_run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EIR, "sim", "run", *args], capture_output=True, text=True, timeout=timeout)


def test_every_shipped_scenario_passes_on_both_interfaces(tmp_path: Path) -> None:
    report = tmp_path / "results.xml"
    done = sim_run(str(SCENARIOS), "--junit", str(report), "--quiet")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    scenarios = [load_scenario(path) for path in find_scenarios([SCENARIOS])]
    cases = [case for suite in junitparser.JUnitXml.fromfile(str(report)) for case in suite]
    assert len(cases) == 2 * len(scenarios)
    names = {f"{scenario.name} [{interface}]" for scenario in scenarios for interface in ("s13", "map")}
    assert {case.name for case in cases} == names
    ran = [case for case in cases if case.is_passed]
    skipped = [case for case in cases if case.is_skipped]
    assert not [case for case in cases if not case.is_passed and not case.is_skipped]
    # a run is skipped only when the scenario has no step on that interface (a conformance file of one protocol)
    assert all("no step of this scenario speaks" in case.result[0].message for case in skipped)
    assert {case.classname.split(".")[0] for case in ran} == {s.suite for s in scenarios}
    assert f"{len(cases)} runs ({len(scenarios)} scenarios): {len(ran)} passed, 0 failed" in done.stdout


WRONG = """scenario: a wrong expectation
profile: tj
start: 2024-03-01T10:00+05:00
subscribers:
  owner: {plmn: 436-01}
handsets:
  phone: {tac: "35693899", type: Smartphone}
steps:
  - insert: {sim: owner, into: phone}
  - attach: phone
    expect: {status: grey, rule: grace}
  - at: day 31
  - attach: phone
    expect: {status: white, rule: white-list}
  - notices: phone
    expect: [{event: grey, deadline: 2024-04-01}, {event: black}]
  - check: phone
    at: day 40
    expect: {status: grey}
"""


def test_a_wrong_expectation_fails_naming_the_step_the_device_the_day_and_the_difference(tmp_path: Path) -> None:
    path = tmp_path / "suite" / "wrong.yaml"
    path.parent.mkdir()
    path.write_text(WRONG)
    report = tmp_path / "results.xml"
    done = sim_run(str(path), "--junit", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    for interface in ("s13", "map"):
        assert f"FAIL suite/wrong [{interface}]" in done.stdout
    failures = [line for line in done.stdout.splitlines() if line.lstrip().startswith("FAIL step")]
    assert len(failures) == 6, done.stdout  # three steps, on each interface
    attach = next(line for line in failures if "attach phone" in line)
    assert "step  4 (line 13) day  31" in attach
    assert "status: expected white, received black" in attach
    assert "rule: expected white-list, answer log says grace-expired" in attach
    notices = next(line for line in failures if "notices of phone" in line)
    assert "grey deadline: expected 2024-04-01, received 2024-03-31" in notices
    check = next(line for line in failures if "eir check phone at day 40" in line)
    assert "status: expected grey, received black" in check
    assert "ok   step  2 (line 10) day   1  attach phone" in done.stdout
    cases = [case for suite in junitparser.JUnitXml.fromfile(str(report)) for case in suite]
    assert len(cases) == 2 and all(not case.is_passed for case in cases)
    failure = cases[0].result[0]
    assert isinstance(failure, junitparser.Failure)
    assert failure.message.startswith("3 of 6 steps failed")
    assert "status: expected white, received black" in (failure.text or "")


def test_a_schema_error_names_the_file_the_line_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(WRONG.replace("expect: {status: white, rule: white-list}", "expect: {status: whit}"))
    done = sim_run(str(path))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"eir sim run: {path}:14: steps[4].expect.status: 'whit' is not a status "
                                   "(white, grey, black, unknown)")
    assert done.stdout == ""


def test_a_shipped_suite_is_found_by_name_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    done = sim_run("no_such_suite")
    assert done.returncode == 2 and "no such file or folder, nor a shipped suite (conformance, " in done.stderr


@pytest.mark.parametrize("interface", ["s13", "map"])
def test_conformance_runs_against_an_eir_the_runner_did_not_start(tmp_path: Path, interface: str) -> None:
    registry = f"sqlite:///{tmp_path / 'target.db'}"
    agent = AgentProcess(tmp_path, registry, "--allow-peer", "mme*.localdomain", m3ua=True)
    try:
        host, port = agent.address
        map_host, map_port = agent.m3ua_address
        report = tmp_path / "target.xml"
        done = sim_run(str(SCENARIOS / "conformance"), str(SCENARIOS / "tajikistan"), "--interface", interface,
                       "--target", f"{host}:{port}", "--map-target", f"{map_host}:{map_port}", "--junit", str(report))
    finally:
        agent.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    cases = [case for suite in junitparser.JUnitXml.fromfile(str(report)) for case in suite]
    conformance = [case for case in cases if case.classname.startswith("conformance.")]
    tajik = [case for case in cases if case.classname.startswith("tajikistan.")]
    assert any(case.is_passed for case in conformance)
    assert tajik and all(case.is_skipped for case in tajik)
    assert all("needs our own agent (lab clock and registry changes" in case.result[0].message for case in tajik)
    assert "not run against --target" in done.stdout


TEMPLATED = """scenario: the operator's own registry as the starting point
profile: tj
start: 2024-03-01T10:00+05:00
subscribers:
  owner: {plmn: 436-01}
handsets:
  router: {imei: "864523070000019"}      # no type here: the template's TAC catalogue says Router
  listed: {imei: "356938035643809"}      # on the template's white list
steps:
  - insert: {sim: owner, into: router}
  - attach: router
    expect: {status: white, rule: auto-entered}
  - move: {sim: owner, to: listed}
  - attach: listed
    expect: {status: white, rule: white-list}
"""


def test_every_run_starts_from_a_copy_of_the_registry_template(tmp_path: Path) -> None:
    from simulator.agent_process import run_eir

    template = tmp_path / "operator.db"
    url = f"sqlite:///{template}"
    (tmp_path / "tac.csv").write_text("tac,device_type\n86452307,Router\n")
    (tmp_path / "white.csv").write_text("imei,reason\n356938035643809,customs cleared\n")
    run_eir(url, "registry", "import", "tac", str(tmp_path / "tac.csv"))
    run_eir(url, "registry", "import", "white", str(tmp_path / "white.csv"))
    before = template.read_bytes()
    path = tmp_path / "suite" / "templated.yaml"
    path.parent.mkdir()
    path.write_text(TEMPLATED)
    done = sim_run(str(path), "--registry-template", str(template))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[auto-entered: a Router: entered automatically]" in done.stdout
    assert template.read_bytes() == before  # runs write to their copies, never to the template
    without = sim_run(str(path))
    assert without.returncode == 1 and "status: expected white, received grey" in without.stdout


@pytest.mark.parametrize("option", ["--junit", "--report", "--pcap"])
def test_an_output_file_without_a_folder_is_refused_before_anything_runs(tmp_path: Path, option: str) -> None:
    target = tmp_path / "missing" / "out.file"
    done = sim_run(str(SCENARIOS / "grey_list"), option, str(target))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == f"eir sim run: {option} {target}: no such folder {target.parent}"
