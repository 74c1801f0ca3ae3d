"""One structured line per answer (JSON Lines): what was asked, what was answered, why, how fast."""

from __future__ import annotations

import sys
import time
from json.encoder import encode_basestring_ascii
from typing import TextIO


def _q(text: str | None) -> str:
    return "null" if text is None else encode_basestring_ascii(str(text))


def mask_imsi(imsi: str | None) -> str | None:
    """Keep the MCC+MNC (5 digits) and the last 2 digits; mask the rest of the MSIN."""
    if imsi is None or len(imsi) <= 7:
        return imsi
    return imsi[:5] + "*" * (len(imsi) - 7) + imsi[-2:]


class AnswerLog:
    """Buffered JSON Lines writer. ``flush()`` is called by the server on a timer and at exit,
    so a line costs a format and a buffered write, not a system call."""

    def __init__(self, stream: TextIO | None = None, mask: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.mask = mask
        self.lines = 0

    def write(self, interface: str, peer: str | None, session: str | None, imei: str | None, imsi: str | None,
              status: str, rule: str, reason: str, result: int, latency_us: int) -> None:
        """One line: every string is escaped by the json module's own C encoder, numbers are
        ints, so the line is valid JSON (json.dumps costs several times more per answer)."""
        if self.mask:
            imsi = mask_imsi(imsi)
        self.stream.write(
            f'{{"ts":{time.time():.6f},"interface":{_q(interface)},"peer":{_q(peer)},"session":{_q(session)},'
            f'"imei":{_q(imei)},"imsi":{_q(imsi)},"status":{_q(status)},"rule":{_q(rule)},'
            f'"reason":{_q(reason)},"result":{int(result)},"latency_us":{int(latency_us)}}}\n')
        self.lines += 1

    def flush(self) -> None:
        self.stream.flush()
