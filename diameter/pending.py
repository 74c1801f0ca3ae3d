"""Requests this node sent and waits for (RFC 6733 3, 5.5.4): their ids, their timers, and
their retransmission with the T flag once a connection is up again.

A request is pending from the moment it is queued until its answer arrives (matched by
Hop-by-Hop id) or its timer runs out. When the connection is lost, the application's
pending requests are kept and sent again with the T flag (potentially retransmitted) on
the next connection, once the watchdog trusts it (5.5.4); requests of the peer's own
procedures (CER, DWR, DPR) are not: they belong to the connection that is gone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from diameter.constants import FLAG_T
from diameter.message import Message


class IdGenerator:
    """Hop-by-Hop ids count from a random start; End-to-End ids put the low 12 bits of
    the start time in the high bits and a counter in the low 20 (RFC 6733 3)."""

    def __init__(self, rng: random.Random, now_epoch: float) -> None:
        self._hop = rng.getrandbits(32)
        self._e2e_high = (int(now_epoch) & 0xFFF) << 20
        self._e2e_low = rng.getrandbits(20)

    def hop_by_hop(self) -> int:
        self._hop = (self._hop + 1) & 0xFFFFFFFF
        return self._hop

    def end_to_end(self) -> int:
        self._e2e_low = (self._e2e_low + 1) & 0xFFFFF
        return self._e2e_high | self._e2e_low


@dataclass(slots=True)
class PendingRequest:
    request: Message
    deadline: float
    internal: bool  # a DWR, DPR or CER of our own: not reported to the application


class PendingRequests:
    """The requests of one peer waiting for their answers, and those kept for retransmission."""

    def __init__(self, ids: IdGenerator) -> None:
        self.ids = ids
        self._by_hop: dict[int, PendingRequest] = {}
        self._retransmit: list[Message] = []

    def send(self, request: Message, deadline: float, internal: bool) -> bytes:
        """Give ``request`` its ids (a retransmission keeps its End-to-End id), wait for its
        answer until ``deadline``; returns it as it goes on the wire."""
        request.hop_by_hop = self.ids.hop_by_hop()
        if request.end_to_end == 0:
            request.end_to_end = self.ids.end_to_end()
        self._by_hop[request.hop_by_hop] = PendingRequest(request, deadline, internal)
        return request.to_bytes()

    def answered(self, hop_by_hop: int) -> PendingRequest | None:
        """The request an answer with this Hop-by-Hop id answers, no longer pending."""
        return self._by_hop.pop(hop_by_hop, None)

    def next_deadline(self) -> float | None:
        return min((p.deadline for p in self._by_hop.values()), default=None)

    def expired(self, now: float) -> list[Message]:
        """Stop waiting for the requests whose time is up; the application's among them."""
        timed_out: list[Message] = []
        for hop, pending in list(self._by_hop.items()):
            if now >= pending.deadline:
                del self._by_hop[hop]
                if not pending.internal:
                    timed_out.append(pending.request)
        return timed_out

    def connection_lost(self) -> None:
        """Keep the application's pending requests for the next connection; drop the rest."""
        for pending in self._by_hop.values():
            if not pending.internal:
                self._retransmit.append(pending.request)
        self._by_hop.clear()

    def retransmissions(self) -> list[Message]:
        """The requests kept from a lost connection, T flag set, to send again now (5.5.4)."""
        requests, self._retransmit = self._retransmit, []
        for request in requests:
            request.flags |= FLAG_T
        return requests
