"""The enforcement report as a regulator opens it: a real `eir sim run --report` of the
grace-period scenario, opened in Debian's headless Chromium with the network off. The page
logs no console error and requests nothing but itself; the rendered page (the DOM after
layout, not the file) holds the scenario, day 31, grace-expired, the deadline, the status
words and a visible status chart; a screenshot is kept in the test's folder."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from simulator.agent_process import EIR
from tests.browser import offline_page
from tests.tools import require_tool, unavailable

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "tajikistan" / "grace_then_black.yaml"
TITLE = "A phone bought abroad gets 30 days with a local SIM, is reminded, and is cut off on day 31"


def playwright_installed() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("playwright is not installed (python3 -m pip install playwright; the test extra has it)")


def test_the_report_opens_offline_in_chromium_with_what_a_regulator_looks_for(tmp_path: Path) -> None:
    chromium = require_tool("chromium")
    playwright_installed()
    report = tmp_path / "grace_then_black.html"
    done = subprocess.run([*EIR, "sim", "run", str(SCENARIO), "--report", str(report)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with offline_page(report, chromium) as view:
        page = view.page
        text = page.inner_text("body")
        statuses = page.locator("table.timeline .status").all_inner_texts()
        chart = page.locator("figure.chart.lanes svg").first
        visible, box = chart.is_visible(), chart.bounding_box()
        chart_words = chart.locator("text").all_text_contents()
        black_chip = page.eval_on_selector(".status-black", "e => getComputedStyle(e).backgroundColor")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert view.console_errors == []
    assert view.failed == []
    assert view.requests == [view.url]  # the page itself, nothing else
    assert TITLE in text
    assert re.search(r"day 31\s+2024-03-31\s+attach phone\s+black\s+grace-expired", text), text[:3000]
    assert "deadline 2024-03-31" in text and "black notice queued" in text
    assert "reminder-7d notice queued" in text and "grey notice queued" in text
    assert {"grey", "black"} <= set(statuses)
    assert re.search(r"PASS\s+tajikistan/grace_then_black\s+\[s13\]", text)
    assert re.search(r"PASS\s+tajikistan/grace_then_black\s+\[map\]", text)
    assert visible and box is not None and box["width"] > 300 and box["height"] > 80
    assert {"phone", "grey", "black", "reminder-1d"} <= set(chart_words)
    assert black_chip == "rgb(26, 26, 26)"  # the inline style sheet applied
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
