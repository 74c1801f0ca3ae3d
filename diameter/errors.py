"""The one exception family that bad input may raise, and AVP problems reported as data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diameter.avp import Avp


class DiameterError(Exception):
    """Base of every error the diameter package raises on bad input."""


class FramingError(DiameterError):
    """The byte stream cannot be trusted any more (RFC 6733 3): the connection must close."""


class EncodeError(DiameterError):
    """A message or AVP built by our own code cannot be encoded (a programming error)."""


@dataclass(frozen=True, slots=True)
class AvpProblem:
    """One problem found while decoding or checking a message.

    ``result_code`` is the answer's Result-Code; ``avp`` the AVP to put in Failed-AVP
    (for a missing AVP, an example with a zero-filled value); ``path`` the codes of the
    enclosing Grouped AVPs, outermost first, so Failed-AVP can wrap it as RFC 6733 7.5 allows.
    """

    result_code: int
    reason: str
    avp: Avp | None = None
    path: tuple[Avp, ...] = ()
