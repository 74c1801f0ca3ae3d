"""What the Diameter peer (``diameter.peer.Peer``) tells the I/O layer: one dataclass per
event its methods return. Kept apart from the state machine so that each procedure module
(capabilities, disconnect, pending requests, duplicates, request checks) can name them without
importing the Peer."""

from __future__ import annotations

from dataclasses import dataclass

from diameter.capabilities import PeerInfo
from diameter.message import Message
from diameter.watchdog import WatchdogState


@dataclass(frozen=True)
class CapabilitiesExchanged:
    peer: PeerInfo
    applications: frozenset[int]


@dataclass(slots=True)
class RequestReceived:
    """An application request that decoded cleanly; the application must answer it.
    (Not frozen: one is made per request, and a frozen dataclass costs twice as much to make.)"""

    message: Message


@dataclass(slots=True)
class AnswerReceived:
    message: Message
    request: Message


@dataclass(frozen=True)
class RequestTimedOut:
    request: Message


@dataclass(frozen=True)
class BadMessage:
    """Bad input we answered (or dropped); for the log line, the counter and, when answered,
    the answer log (``session`` and ``origin_host``: the request's, when they decoded)."""

    result_code: int
    reason: str
    command: str
    answered: bool
    session: str | None = None
    origin_host: str | None = None


@dataclass(frozen=True)
class PeerDisconnecting:
    """The peer sent DPR; we answered DPA and expect it to close the connection."""

    cause: int | None


@dataclass(frozen=True)
class CloseConnection:
    """The I/O layer must close the transport connection now (after flushing)."""

    reason: str


@dataclass(frozen=True)
class WatchdogChanged:
    old: WatchdogState
    new: WatchdogState


@dataclass(frozen=True)
class ReconnectWanted:
    """RFC 3539 AttemptOpen: an initiator should try to connect again."""


Event = (CapabilitiesExchanged | RequestReceived | AnswerReceived | RequestTimedOut | BadMessage
         | PeerDisconnecting | CloseConnection | WatchdogChanged | ReconnectWanted)
