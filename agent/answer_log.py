"""One structured line per answer (JSON Lines): what was asked, what was answered, why, how fast."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import TextIO, TypeVar

from netio.bad_input import cut
from registry.clock import SYSTEM_CLOCK, Clock

# Fragments for values that repeat (interface and peer, status, rule and reason), escaped
# once; the memo starts again when it holds this many, so odd inputs cannot grow it.
FRAGMENT_LIMIT = 4096
TICK = 0.001  # seconds: the precision of "ts" (latency_us is the precise figure)
VALUE_LIMIT = 256  # characters of a value from the wire (peer, session, reason) a line keeps
_NUMBERS = re.compile(r"(?<!\d)\d{10,15}(?!\d)")  # IMSIs and MSISDNs in a reason


K = TypeVar("K")


def _remember(memo: dict[K, str], key: K, text: str) -> str:
    if len(memo) >= FRAGMENT_LIMIT:
        memo.clear()
    memo[key] = text
    return text


def _q(text: str | None) -> str:
    return "null" if text is None else encode_basestring_ascii(str(text))


def mask_imsi(imsi: str | None) -> str | None:
    """Keep the MCC+MNC (5 digits) and the last 2 digits; mask the rest of the MSIN."""
    if imsi is None or len(imsi) <= 7:
        return imsi
    return imsi[:5] + "*" * (len(imsi) - 7) + imsi[-2:]


def mask_numbers(text: str) -> str:
    """A reason with every subscriber number in it (10 to 15 digits: an IMSI, an MSISDN)
    masked as ``mask_imsi`` does."""
    return _NUMBERS.sub(lambda found: mask_imsi(found[0]) or "", text)


def _kept(text: str | None) -> str | None:
    """A value from the wire as a line keeps it: at most VALUE_LIMIT characters (``cut``)."""
    return None if text is None else cut(text, VALUE_LIMIT)


class AnswerLog:
    """Buffered JSON Lines writer. ``flush()`` is called by the server on a timer and at exit,
    so a line costs a format and a buffered write, not a system call. Each line holds
    ts (Unix time, to the millisecond), interface, peer (the asking node's Origin-Host),
    session, imei (the registry key), imsi (masked when configured, and with it every
    IMSI and MSISDN in the reason), status, rule, reason, result (S13: the Diameter result code; MAP: 0 for a result,
    the MAP error code, -1 for a TC-U-REJECT, -2 for a dialogue aborted), latency_us
    (from receipt to answer) and, for an answer with one (grey: its window's end; black:
    when it ended), the deadline (ISO time, UTC, to the microsecond: the same on every agent
    of one registry, since they share the pair's first sight). Values from the wire are cut at VALUE_LIMIT characters;
    the JSON encoder escapes control characters, so a value never breaks a line. "ts" is
    the ``clock``'s now."""

    def __init__(self, stream: TextIO | None = None, mask: bool = False, clock: Clock = SYSTEM_CLOCK) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.mask = mask
        self.clock = clock
        self._monotonic = clock.monotonic
        self.lines = 0
        self._origin: dict[tuple[str, str | None], str] = {}
        self._outcome: dict[tuple[str, str, str], str] = {}
        self._tick, self._tick_end = "", 0.0

    def write(self, interface: str, peer: str | None, session: str | None, imei: str | None, imsi: str | None,
              status: str, rule: str, reason: str, result: int, latency_us: int,
              deadline: datetime | None = None) -> None:
        """One line: every string is escaped by the json module's own C encoder, numbers are
        ints, so the line is valid JSON (json.dumps costs several times more per answer)."""
        if self.mask:
            imsi = mask_imsi(imsi)
        origin = self._origin.get((interface, peer)) or _remember(
            self._origin, (interface, peer), f'"interface":{_q(interface)},"peer":{_q(_kept(peer))}')
        outcome = self._outcome.get((status, rule, reason)) or _remember(
            self._outcome, (status, rule, reason), f'"status":{_q(status)},"rule":{_q(rule)},'
                                                   f'"reason":{_q(self._reason(reason))}')
        if session is not None and len(session) > VALUE_LIMIT:
            session = _kept(session)
        if self._monotonic() >= self._tick_end:  # "ts" has millisecond precision: format it once per millisecond
            self._new_tick()
        self.stream.write(
            f'{{"ts":{self._tick},{origin},"session":{_q(session)},"imei":{_q(imei)},"imsi":{_q(imsi)},'
            f'{outcome},"result":{int(result)},"latency_us":{int(latency_us)}'
            + (f',"deadline":"{deadline.astimezone(UTC).isoformat()}"}}\n' if deadline is not None else '}\n'))
        self.lines += 1

    def _new_tick(self) -> None:
        """Format "ts" from the clock's now, kept until that millisecond ends."""
        now = self.clock.now().timestamp()
        self._tick = f"{now:.3f}"
        self._tick_end = self._monotonic() + TICK - now % TICK

    def _reason(self, reason: str) -> str | None:
        """The reason as logged: cut, and its subscriber numbers masked when IMSIs are."""
        return _kept(mask_numbers(reason) if self.mask else reason)

    def flush(self) -> None:
        self.stream.flush()
