"""A live capture with tshark on the loopback, for the interop tests that judge or replay
what the real agent sent (``tshark_capturing``)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tshark_capturing(tshark: str, capture_filter: str, path: Path) -> Iterator[None]:
    """tshark writes what passes on ``lo`` matching ``capture_filter`` to ``path`` while the
    block runs: it is capturing when the block starts, and stopped (SIGINT) when it ends,
    half a second after a block that ended normally so the last segments are in."""
    sniffer = subprocess.Popen([tshark, "-i", "lo", "-f", capture_filter, "-w", str(path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_capturing(sniffer)
        yield
        time.sleep(0.5)  # let the last segments reach the capture
    finally:
        sniffer.send_signal(signal.SIGINT)
        sniffer.wait(10)


def wait_capturing(sniffer: subprocess.Popen[str], timeout: float = 15.0) -> None:
    """tshark says "Capturing on 'Loopback: lo'" on stderr, then "Capture started." once
    packets are really being captured: wait for the second."""
    assert sniffer.stderr is not None
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        line = sniffer.stderr.readline()
        seen += line
        if "Capture started" in line:
            return
        if sniffer.poll() is not None:
            break
    pytest.fail(f"tshark did not start capturing: {seen}")
