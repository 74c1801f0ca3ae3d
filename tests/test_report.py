"""The enforcement report from RunResults built here from a shipped scenario (the browser
test, tests/e2e/test_report_browser.py, opens one a real `eir sim run` wrote): the texts a
regulator looks for, one timeline row per event, notices once each with their deadlines,
failures with their difference, every value from a scenario or the wire escaped, nothing
loaded from anywhere, and the traffic charts."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from simulator.report import render_report, write_report
from simulator.report_charts import svg_ids
from simulator.report_data import TrafficDay
from simulator.report_model import run_view
from simulator.scenario import load_scenario
from simulator.scenario_model import Action, Scenario
from simulator.scenario_run import RunResult, StepResult

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
GRACE = SCENARIOS / "tajikistan" / "grace_then_black.yaml"
WHY_GREY = "grace: not registered; 30-day window from 2024-03-01 ends 2024-03-31"
WHY_BLACK = "grace-expired: not registered; the 30-day window from 2024-03-01 ended 2024-03-31"
NOTICES = [  # what the agent queues for the phone, by the day of the notices step that sees them
    (1, {"event": "grey", "deadline": "2024-03-31T05:00:00Z", "created_at": "2024-03-01T05:00:00Z"}),
    (30, {"event": "reminder-7d", "deadline": "2024-03-31T05:00:00Z", "created_at": "2024-03-24T05:00:00Z"}),
    (30, {"event": "reminder-1d", "deadline": "2024-03-31T05:00:00Z", "created_at": "2024-03-30T05:00:00Z"}),
    (31, {"event": "black", "deadline": "2024-03-31T05:00:00Z", "created_at": "2024-03-31T05:00:00Z"}),
]


def played(scenario: Scenario, interface: str = "s13") -> RunResult:
    """grace_then_black as the runner records it when every step passes."""
    result = RunResult(scenario, interface, seconds=3.2)
    day = 1
    for step in scenario.steps:
        if step.action is Action.AT:
            day = int((step.at - scenario.start).days) + 1 if step.at else day
        found = StepResult(step, day, compared=step.expect is not None or step.notices is not None)
        if step.action is Action.ATTACH:
            black = day >= 31
            found.status, found.rule = ("black", "grace-expired") if black else ("grey", "grace")
            found.why = WHY_BLACK if black else WHY_GREY
            found.received = f"ECA 2001 {found.status}"
        elif step.action is Action.NOTICES:
            found.notices = [notice for seen, notice in NOTICES if seen <= day]
            found.received = ", ".join(notice["event"] for notice in found.notices)
        elif step.action is Action.CHECK:
            found.status, found.rule = "black", "grace-expired"
            found.received = "black (grace-expired), deadline 2024-03-31"
        result.steps.append(found)
    return result


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(GRACE)


def text_of(html: str) -> str:
    """The page's words (tags dropped, entities decoded, spaces collapsed), as a reader sees them."""
    parser = _Text()
    parser.feed(html)
    return re.sub(r"\s+", " ", " ".join(parser.words))


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.words: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.skip += tag in ("style", "script")

    def handle_endtag(self, tag: str) -> None:
        self.skip -= tag in ("style", "script")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.words.append(data)


def test_the_timeline_holds_what_a_regulator_looks_for(scenario: Scenario) -> None:
    html = render_report([played(scenario), played(scenario, "map")])
    text = text_of(html)
    assert scenario.title in text
    for seen in ("day 1 2024-03-01", "day 24 2024-03-24", "day 30 2024-03-30", "day 31 2024-03-31",
                 "day 45 2024-04-14", "grey notice queued", "reminder-7d notice queued",
                 "reminder-1d notice queued", "black notice queued", "deadline 2024-03-31",
                 "insert dilshod into phone slot 1", "the 30-day window from 2024-03-01 ended 2024-03-31"):
        assert seen in text, seen
    assert re.search(r"attach phone black grace-expired", text)
    assert re.search(r"eir check phone at day 45 black grace-expired deadline 2024-03-31", text)
    assert "profile tj" in text and "day 1 = 2024-03-01 10:00 (UTC+05:00)" in text
    assert re.search(r"Scenarios 1 Runs 2 Passed 2 Failed 0 Skipped 0 Notices sent 8 Devices cut off 2", text)
    assert "FAIL" not in text


def test_each_notice_is_one_event_on_the_day_it_was_queued(scenario: Scenario) -> None:
    view = run_view(played(scenario))
    [phone] = view.devices
    notices = [(event.day, event.text, event.deadline) for event in phone.events if event.kind == "notice"]
    assert notices == [(1, "grey", date(2024, 3, 31)), (24, "reminder-7d", date(2024, 3, 31)),
                       (30, "reminder-1d", date(2024, 3, 31)), (31, "black", date(2024, 3, 31))]
    assert phone.statuses == [(1, "grey"), (24, "grey"), (30, "grey"), (31, "black"), (45, "black")]
    assert phone.cut_off and view.last_day == 45 and view.notices_sent == 4


def test_a_failed_step_is_highlighted_with_its_difference(scenario: Scenario) -> None:
    result = played(scenario)
    wrong = next(step for step in result.steps if step.step.action is Action.ATTACH and step.day == 31)
    wrong.differences.append("status: expected white, received black")
    html = render_report([result])
    assert '<span class="verdict verdict-failed">FAIL</span>' in html
    assert re.search(r'<tr class="kind-answer failed">', html)
    text = text_of(html)
    assert "1 failed step" in text
    assert "✗ FAIL status: expected white, received black" in text
    assert "step 10 (line 30), day 31: attach phone — status: expected white, received black" in text
    assert re.search(r"Passed 0 Failed 1", text)


def test_every_value_from_a_scenario_or_the_wire_is_escaped(scenario: Scenario) -> None:
    hostile = replace(scenario, title="<script>alert('title')</script>", description="<img src=x onerror=alert(1)>")
    result = played(hostile)
    result.steps[1].received = "ECA 2001 <b>grey</b>"
    result.steps[1].why = "grace: <script>alert('why')</script>"
    result.steps[2].notices = [{"event": "<i>grey</i>", "deadline": "2024-03-31T05:00:00Z",
                                "created_at": "2024-03-01T05:00:00Z"}]
    result.steps[4].differences.append("status: expected <u>white</u>")
    html = render_report([result], title="Report <em>now</em>")
    assert "<script" not in html.lower()
    for raw in ("<img", "<b>", "<i>", "<u>", "<em>"):
        assert raw not in html
    text = text_of(html)
    for shown in ("<script>alert('title')</script>", "<img src=x onerror=alert(1)>", "<script>alert('why')</script>",
                  "<i>grey</i> notice queued", "status: expected <u>white</u>", "Report <em>now</em>"):
        assert shown in text, shown
    assert "&lt;i&gt;grey&lt;/i&gt;</text>" in html  # in the chart too: the notice's name, escaped by matplotlib


def test_the_page_loads_nothing_and_runs_no_script(scenario: Scenario) -> None:
    html = render_report([played(scenario)])
    assert "<script" not in html
    assert 'http-equiv="Content-Security-Policy" content="default-src \'none\';' in html
    assert not re.search(r"\ssrc=", html)
    assert all(link.startswith("#") for link in re.findall(r'href="([^"]*)"', html))
    assert "@import" not in html and "url(http" not in html


def test_the_status_chart_is_inline_svg_with_its_words_as_text(scenario: Scenario) -> None:
    html = render_report([played(scenario), played(scenario, "map")])
    charts = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(charts) == 2
    lanes = charts[0]
    for word in ("phone", "grey", "black", "reminder-7d", "day (day 1 = 2024-03-01)"):
        assert f">{word}</text>" in lanes, word
    assert 'class="chart lanes"' in html
    assert not set(svg_ids(charts[0])) & set(svg_ids(charts[1]))  # two charts on one page share no id
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    references = set(re.findall(r'(?:url\(#|href="#)([^")]+)', html))
    assert references and references <= set(ids)  # hatches, clip paths, the runs' anchors: each found
    assert any(name.startswith("run-tajikistan-grace_then_black-map-") for name in references)


def test_a_run_that_could_not_be_played_or_was_skipped_says_why(scenario: Scenario) -> None:
    broken = RunResult(scenario, "s13", error="cannot start the agent: port in use")
    skipped = RunResult(scenario, "map", skipped="no step of this scenario speaks map")
    text = text_of(render_report([broken, skipped]))
    assert "ERROR tajikistan/grace_then_black [s13]" in text
    assert "Error: cannot start the agent: port in use" in text
    assert "SKIP tajikistan/grace_then_black [map]" in text and "Skipped: no step of this scenario speaks map" in text


def traffic_days() -> list[TrafficDay]:
    return [TrafficDay(day, date(2024, 3, day), answers={"white": 80, "grey": 20 - day, "black": day, "5004": 1},
                       rules={"white-list": 80, "grace": 20 - day, "grace-expired": day},
                       notices={"grey": 3, **({"black": day} if day > 2 else {})}, cut_off=day, devices=100)
            for day in range(1, 6)]


def test_a_traffic_run_is_drawn_and_counted_per_day(tmp_path: Path) -> None:
    path = tmp_path / "traffic.html"
    write_report(path, [], traffic_days(), title="Tajikistan, 100 subscribers",
                 generated=datetime(2024, 3, 6, 12, 0, tzinfo=UTC))
    html = path.read_text(encoding="utf-8")
    assert [item.name for item in tmp_path.iterdir()] == ["traffic.html"]  # nothing partial left beside it
    text = text_of(html)
    assert "Generated 2024-03-06 12:00 UTC" in text
    assert "5 days played from 2024-03-01: 505 answers (400 white, 85 grey, 15 black), 27 notices queued, " \
           "15 devices cut off." in text
    big = text_of(render_report([], [replace(traffic_days()[0], answers={"white": 1234567})]))
    assert "1,234,567 answers (1,234,567 white, 0 grey, 0 black)" in big
    assert "day 3 2024-03-03 100 80 17 3 5004 1 grey 3, black 3 3 white-list 80, grace 17, grace-expired 3" in text
    for chart in ("chart-traffic-shares", "chart-traffic-notices", "chart-traffic-cut-off"):
        assert re.search(rf'id="{chart}".*?<svg', html, re.S), chart
    shares = re.search(r'id="chart-traffic-shares".*?(<svg.*?</svg>)', html, re.S)
    assert shares is not None and ">share of answers (%)</text>" in shares[1]
    assert re.search(r"Notices sent 27 Devices cut off 15", text)
