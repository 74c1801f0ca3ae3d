"""The README's picture of the enforcement report (docs/report.png): plays a shipped
scenario with the real `eir sim run --report`, opens the report in Debian's headless
Chromium with the network off (tests/browser.py) and saves the top of the page, its
colours reduced to a palette to keep the file small.

    python3 scripts/report_screenshot.py [--scenario FILE.yaml] [--out docs/report.png]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import offline_page  # noqa: E402  (the repository's root is on the path only now)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "tajikistan" / "grace_then_black.yaml")
    parser.add_argument("--interface", default="s13", choices=["s13", "map", "both"])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=1500)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eir-report-") as folder:
        report = Path(folder) / "report.html"
        done = subprocess.run([sys.executable, "-m", "eir", "sim", "run", str(options.scenario), "--interface",
                               options.interface, "--report", str(report), "--quiet"], cwd=ROOT)
        if done.returncode != 0 or not report.exists():
            print(f"eir sim run failed ({done.returncode}); no screenshot", file=sys.stderr)
            return 1
        shot = Path(folder) / "report.png"
        with offline_page(report, width=options.width, height=options.height) as view:
            view.page.screenshot(path=str(shot))
        if view.console_errors or view.failed:
            print(f"the page complained: {view.console_errors + view.failed}", file=sys.stderr)
            return 1
        _small_png(shot, options.out)
    print(f"{options.out}: {options.out.stat().st_size // 1024} KB")
    return 0


def _small_png(source: Path, target: Path) -> None:
    from PIL import Image  # matplotlib's dependency

    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.convert("RGB").quantize(colors=64).save(target, optimize=True)


if __name__ == "__main__":
    sys.exit(main())
