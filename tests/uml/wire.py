"""What the guest's capture says, as tshark decodes it: every SCTP DATA chunk with its stream,
its PPID and the M3UA or Diameter message inside."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

PPID_M3UA, PPID_DIAMETER = 3, 46
MGMT, TRANSFER = 0, 1  # M3UA message classes
DATA, ERR = (TRANSFER, 1), (MGMT, 0)
CHECK_IMEI = 43  # the MAP operation code
FIELDS = ("frame.number", "sctp.srcport", "sctp.dstport", "sctp.data_sid", "sctp.data_payload_proto_id",
          "m3ua.message_class", "m3ua.message_type", "m3ua.error_code", "gsm_old.localValue",
          "diameter.cmd.code")


@dataclass(frozen=True)
class Chunk:
    """One SCTP DATA chunk of the capture."""

    frame: int
    source: int
    destination: int
    stream: int
    ppid: int
    m3ua: tuple[int, int] | None  # (class, type)
    error_code: int | None
    map_operation: int | None
    diameter_command: int | None


def decode(tshark: str, capture: Path) -> list[Chunk]:
    """Every SCTP DATA chunk, in order. Each carries one M3UA or Diameter message: a frame that
    bundles chunks of several messages is reported, not guessed at."""
    command = [tshark, "-r", str(capture), "-Y", "sctp.data_sid", "-T", "fields", "-E", "separator=|",
               "-E", "occurrence=a", "-E", "aggregator=,", *(arg for field in FIELDS for arg in ("-e", field))]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    return [chunk for line in out.splitlines() if line.strip() for chunk in _chunks(line)]


def _chunks(line: str) -> list[Chunk]:
    frame, source, destination, streams, ppids, classes, types, error, operation, command = (
        [int(v, 0) for v in field.split(",") if v] for field in line.split("|"))
    assert len(streams) == len(ppids) and (not classes or len(classes) == len(streams)), f"bundled chunks: {line}"
    return [Chunk(frame[0], source[0], destination[0], stream, ppid,
                  (classes[i], types[i]) if classes else None, error[0] if error else None,
                  operation[0] if operation else None, command[0] if command else None)
            for i, (stream, ppid) in enumerate(zip(streams, ppids, strict=True))]


def malformed(tshark: str, capture: Path) -> list[str]:
    """The lines of tshark's full decode that say something is malformed."""
    out = subprocess.run([tshark, "-r", str(capture), "-V"], capture_output=True, text=True, timeout=60).stdout
    return [line for line in out.splitlines() if "malformed" in line.lower()]


def on_port(chunks: list[Chunk], port: int) -> list[Chunk]:
    return [c for c in chunks if port in (c.source, c.destination)]
