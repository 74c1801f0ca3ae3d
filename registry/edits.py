"""One IMEI at a time: register (white list), block (stolen) and unblock, as ``eir registry
block|unblock`` and the lab control endpoint (agent/lab.py) both do them, each with a
history entry naming its source (``cli:block``, ``lab:register``...).

Parsing comes first (``edit_key``, ``edit_reason``: an EditError says what is wrong, and
nothing is written); the writes then take a valid key. They read and write on connections
of their own, so they may run off the agent's event loop (asyncio.to_thread).
"""

from __future__ import annotations

from registry.decision import EquipmentFacts, ListName
from registry.imei import ImeiError, parse_imei
from registry.store import Counts, Registry

__all__ = ["EditError", "block", "edit_key", "edit_reason", "register", "unblock"]


class EditError(ValueError):
    """An IMEI or a reason that cannot be written; the message says why."""


def edit_key(text: str) -> str:
    """The registry key (14 digits) of an IMEI as typed (14, 15 or 16 digits)."""
    try:
        return parse_imei(text).key
    except ImeiError as error:
        raise EditError(f"invalid IMEI {text!r}: {error}") from None


def edit_reason(text: str | None, required: bool = True) -> str | None:
    """A reason, stripped; an empty one is refused when ``required``, else None."""
    stripped = (text or "").strip()
    if not stripped and required:
        raise EditError("the reason must not be empty")
    return stripped or None


def register(store: Registry, key: str, reason: str | None, source: str) -> Counts:
    """Put the IMEI on the white list (as a white-list import of one row does)."""
    return store.put_list(ListName.WHITE, [(key, reason)], source)


def block(store: Registry, key: str, reason: str, source: str) -> EquipmentFacts | None:
    """Set the IMEI's stolen flag (its list is kept; an IMEI the registry lacks is added,
    known only as stolen); the facts held before (None: it was not in the registry)."""
    before = store.read_facts(key)
    store.put_stolen([(key, reason)], source)
    return before


def unblock(store: Registry, key: str, reason: str, source: str) -> EquipmentFacts | None:
    """Clear the IMEI's stolen flag; the facts after, or None when it was not blocked
    (nothing changed)."""
    counts = store.put_stolen([(key, reason)], source, stolen=False)
    return store.read_facts(key) if counts.changed else None
