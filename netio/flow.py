"""Flow control of one connection, for every transport (TCP or SCTP) of Diameter and M3UA.

Backpressure (``ReadPausing``): a protocol stops reading a connection whose write buffer is
above ``WRITE_HIGH`` and reads again once it is down to ``WRITE_LOW``, so a peer that never
reads its answers cannot make us buffer without limit; it only stalls itself.

Requests in progress (``InProgress``): a request is in progress from the moment the
connection hands it to its answerer until its answer is written. Those of one read are
released together once the read is handled (``settle``); one whose answer comes later (it
waits for a commit) is released when it comes, and the answers that come in one turn of
the loop leave in one write (``write_soon``), not one system call each. ``load`` counts the
requests of every connection together and says whether the one just counted is past a
bound (the application then refuses it at once).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any, Protocol

from netio.logs import Throttled

log = logging.getLogger("netio.flow")

WRITE_HIGH = 64 * 1024  # octets waiting to be written above which a connection is not read
WRITE_LOW = 16 * 1024  # ... and at or below which it is read again


class ReadPausing(asyncio.Protocol):
    """Backpressure: not read while the transport's write buffer is above the high-water
    mark (asyncio calls ``pause_writing``), read again below the low one (``resume_writing``).
    Subclasses set ``transport`` and ``counters``; ``paused_log`` reports pauses, throttled."""

    transport: asyncio.Transport | None
    counters: Counter[str]
    paused_counter = "connections_paused"
    paused_log = Throttled(log)

    def limit_writes(self, transport: asyncio.Transport) -> None:
        transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)

    def pause_writing(self) -> None:
        if self.transport is None:
            return
        self.transport.pause_reading()
        self.counters[self.paused_counter] += 1
        self.paused_log("%s: not reading %s, %d octets of answers wait for it to read (%s: %d so far)",
                        type(self).__name__, self.transport.get_extra_info("peername"),
                        self.transport.get_write_buffer_size(), self.paused_counter,
                        self.counters[self.paused_counter])

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()


class Load(Protocol):
    """The requests in progress of every connection together, and their bounds
    (agent/admission.py)."""

    in_progress: int

    def full(self, holder: Any) -> bool:
        """Whether the request just counted in ``holder`` (a connection) is past a bound."""
        ...


class InProgress:
    """The requests in progress of one connection (see the module's docstring). Subclasses
    set ``loop`` and ``load`` and write what their protocol has to send in ``write_pending``."""

    loop: asyncio.AbstractEventLoop
    load: Load | None = None
    in_progress = 0  # handed to the answerer and not answered yet
    busy = False  # the request counted last is past a bound of ``load``: refuse it
    _answered = 0  # answered in the read being handled, released at its end
    _write_due = False  # answers given later wait for one write at the end of the loop's turn

    def admit(self) -> bool:
        """Count one request handed to the answerer; whether it is past a bound (``busy``)."""
        self.in_progress += 1
        load = self.load
        if load is None:
            return False
        load.in_progress += 1
        busy = self.busy = load.full(self)
        return busy

    def answered(self) -> None:
        """A request of the read being handled is answered (or needs no answer)."""
        self._answered += 1

    def settle(self) -> None:
        """The read is handled and its answers written: they are no longer in progress."""
        if self._answered:
            self.release(self._answered)
            self._answered = 0

    def release(self, count: int) -> None:
        self.in_progress -= count
        if self.load is not None:
            self.load.in_progress -= count

    def write_soon(self) -> None:
        """One write for the answers given later in one turn of the loop (a commit resolves
        many at once)."""
        if not self._write_due:
            self._write_due = True
            self.loop.call_soon(self._write_later)

    def _write_later(self) -> None:
        self._write_due = False
        self.write_pending()

    def write_pending(self) -> None:
        """Write whatever the protocol has to send."""
        raise NotImplementedError
