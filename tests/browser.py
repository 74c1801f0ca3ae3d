"""Debian's Chromium, headless and offline, driven by Playwright (never a browser download):
``offline_page`` opens a local HTML file with the network off and records what a reader's
browser would complain about: console errors, uncaught page errors, every request made and
every request that failed. Used by tests/e2e/test_report_browser.py and
scripts/report_screenshot.py; it imports no pytest."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
# Root needs --no-sandbox; the rest keep Chromium from calling home (refused on a closed network,
# and not what a test of an offline page should depend on).
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions"]


@dataclass
class OfflinePage:
    page: Any  # playwright.sync_api.Page
    url: str
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@contextmanager
def offline_page(path: Path, executable: str = CHROMIUM, width: int = 1200, height: int = 900,
                 scale: float = 1) -> Iterator[OfflinePage]:
    """``path`` open in a new headless Chromium with a new profile and the network off."""
    import tempfile

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="eir-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=FLAGS, offline=True,
            viewport={"width": width, "height": height}, device_scale_factor=scale)
        try:
            page = context.new_page()
            view = OfflinePage(page, path.resolve().as_uri())
            page.on("console", lambda message: view.console_errors.append(message.text)
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: view.console_errors.append(f"uncaught: {error}"))
            page.on("request", lambda request: view.requests.append(request.url))
            page.on("requestfailed", lambda request: view.failed.append(f"{request.url}: {request.failure}"))
            page.goto(view.url, wait_until="load")
            yield view
        finally:
            context.close()
