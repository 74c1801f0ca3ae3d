"""Duplicate detection (RFC 6733 6.1.9, 6.5): a request sent again with the T flag, after
its sender lost the connection before the answer came, gets the answer already sent, not
a second decision.

The key is the request's own Origin-Host and End-to-End id, not the peer's identity:
behind a relay one peer carries the requests of many origins, and two of them may use the
same End-to-End id. Only a request whose Origin-Host passed the identity check
(``diameter.request_checks``) gets this far, or a peer could ask for another node's answers.
One ``DuplicateCache`` may be shared by every connection of a server, so that a request
retransmitted on a new connection finds the answer given on the old one.
"""

from __future__ import annotations

import struct
from collections import OrderedDict

from diameter.message import Message
from diameter.request_checks import origin_host

_U32 = struct.Struct(">I")


class DuplicateCache:
    """Answers as sent, by (Origin-Host, End-to-End id), to re-send for T-flagged requests
    (RFC 6733 6.1.9); the oldest go first once ``size`` are kept."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._answers: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    def remember(self, origin_host: str, end_to_end: int, answer: bytes) -> None:
        answers = self._answers
        answers[(origin_host, end_to_end)] = answer
        if len(answers) > self._size:
            answers.popitem(last=False)

    def lookup(self, origin_host: str, end_to_end: int) -> bytes | None:
        return self._answers.get((origin_host, end_to_end))


def origin_of(request: Message, peer_host: str | None) -> str | None:
    """Whose request this is, for duplicate detection: its Origin-Host, else the peer's
    (``peer_host``, from CER/CEA)."""
    return origin_host(request) or peer_host


def remember_answer(cache: DuplicateCache, request: Message, answer: bytes, peer_host: str | None) -> None:
    """Keep ``answer`` (as it went on the wire) for a retransmission of ``request``."""
    origin = origin_of(request, peer_host)
    if origin is not None:
        cache.remember(origin, request.end_to_end, answer)


def answer_again(cache: DuplicateCache, request: Message, peer_host: str | None) -> bytes | None:
    """The answer already sent to this T-flagged request (same Origin-Host and End-to-End
    id), carrying this copy's Hop-by-Hop id; None when there is none."""
    origin = origin_of(request, peer_host)
    cached = None if origin is None else cache.lookup(origin, request.end_to_end)
    if cached is None:
        return None
    return cached[:12] + _U32.pack(request.hop_by_hop) + cached[16:]
