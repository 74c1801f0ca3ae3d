"""Overload is answered, not queued: bounds on the requests in progress.

A request is *in progress* from the moment its connection hands it to the answerer until
its answer is written: the requests of one read, and the answers waiting for their first
sight to be on disk (agent/durable.py). Each connection (S13 peer or M3UA association)
counts its own; ``Admission`` counts them all, S13 and MAP together, for they share one
decision service and one database. Past ``per_peer`` on a connection, or ``total`` in all,
a request is refused at once, without a decision: S13 answers 3004 DIAMETER_TOO_BUSY (RFC
6733 7.1.3: the MME may send it to another EIR), MAP a TCAP Abort with P-Abort cause
resourceLimitation (Q.773), so the MSC applies its fallback instead of timing out. Each
refusal is counted and in the answer log (rule ``overload``); the log says so at most ten
times a second.
"""

from __future__ import annotations

from typing import Protocol

PER_PEER = 256  # requests in progress on one connection
TOTAL = 1024  # requests in progress in all


class Holder(Protocol):
    """A connection that counts its requests in progress."""

    in_progress: int


class Admission:
    """The shared count and the bounds; the connections keep it up to date."""

    def __init__(self, per_peer: int = PER_PEER, total: int = TOTAL) -> None:
        self.per_peer = per_peer
        self.total = total
        self.in_progress = 0  # updated by the connections, with their own
        self.refused = 0
        self.peak = 0

    def full(self, holder: Holder | None) -> bool:
        """Whether the request just counted in ``holder`` is past a bound (then refuse it)."""
        in_progress = self.in_progress
        if in_progress > self.peak:
            self.peak = in_progress
        if (holder is not None and holder.in_progress > self.per_peer) or in_progress > self.total:
            self.refused += 1
            return True
        return False
