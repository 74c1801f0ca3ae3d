"""``--pcap FILE`` of the simulator's commands: where each capture goes, and opening one.

- ``eir sim ecr``, ``eir sim checkimei``: FILE.
- ``eir sim load``: FILE holds every connection of every process. With ``--processes N``
  each worker writes its own part beside FILE (FILE's stem + ``-part<K>.pcap``, K the
  worker's first connection number); once they are done the parts are merged into FILE in
  time order and removed.
- ``eir sim run``: one run (one scenario, one interface): FILE. Several: one file per run,
  FILE's stem + ``-<suite>-<scenario>-<interface>.pcap`` beside FILE (``run_path``).

The capture itself is ``netio.capture`` (loaded only when a capture is asked for: scapy
takes a while to import).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netio.capture import Capture, Clock


class SteppedClock:
    """A clock that is set (``set``: seconds since the epoch) and runs at real speed from
    there: a lab clock seen from outside, whose jumps the capture shows as they are."""

    def __init__(self, start: float) -> None:
        self._at = start
        self._since = time.monotonic()

    def set(self, now: float) -> None:
        self._at = now
        self._since = time.monotonic()

    def __call__(self) -> float:
        return self._at + (time.monotonic() - self._since)


class CaptureError(Exception):
    """The capture file cannot be written."""


def open_capture(path: Path, clock: Clock | None = None) -> Capture:
    """A capture writing ``path`` (its folder made if missing); CaptureError if it cannot."""
    from netio.capture import Capture

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return Capture(path, clock) if clock is not None else Capture(path)
    except OSError as error:
        raise CaptureError(f"cannot write the capture {path}: {error.strerror or error}") from None


@contextmanager
def capturing(path: Path | None, clock: Clock | None = None) -> Iterator[Capture | None]:
    """A capture to ``path`` for the block, closed after it (None when no path is given)."""
    if path is None:
        yield None
        return
    capture = open_capture(path, clock)
    try:
        yield capture
    finally:
        capture.close()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def run_path(path: Path, suite: str, scenario: str, interface: str) -> Path:
    """The capture of one run of several: FILE's stem + ``-<suite>-<scenario>-<interface>.pcap``."""
    return path.with_name(f"{path.stem}-{_safe(suite)}-{_safe(scenario)}-{_safe(interface)}.pcap")


def part_path(path: Path, numbers: Sequence[int], processes: int) -> Path:
    """The capture of the load worker running connections ``numbers``: FILE with one process."""
    if processes <= 1:
        return path
    return path.with_name(f"{path.stem}-part{numbers[0]}.pcap")


def merge_parts(path: Path, processes: int) -> int:
    """Merge the load workers' parts into ``path`` in time order and remove them; the frame count."""
    if processes <= 1:
        return 0
    from netio.pcap import merge_pcaps

    parts = [part_path(path, [number], processes) for number in range(processes)]
    present = [part for part in parts if part.exists()]
    try:
        return merge_pcaps(present, path)
    finally:
        for part in present:
            part.unlink(missing_ok=True)
