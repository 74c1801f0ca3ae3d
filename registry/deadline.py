"""A thread's bound on each of its database waits: ``within(seconds)`` sets it, ``limit()``
reads it. The registry's bounded connections (registry/bounded.py) end every wait that
lasts longer and raise an ``Expired`` error; code that never imports a database driver can
set the bound and recognise the error.

The bound is per wait (a statement's reply, a commit, a new connection), not for the
caller's whole work: the time the caller spends computing between its reads, or waiting
for a busy CPU, never counts; a database that does not answer one read is found out after
``seconds``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Expired", "limit", "within"]

_local = threading.local()


class Expired(Exception):
    """A database wait outlasted the bound its thread set (the connection is closed)."""


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Every database wait of this thread ends after ``seconds`` (or a smaller bound an
    enclosing ``within`` set)."""
    previous: float | None = getattr(_local, "limit", None)
    _local.limit = seconds if previous is None else min(previous, seconds)
    try:
        yield
    finally:
        _local.limit = previous


def limit() -> float | None:
    """This thread's bound on a database wait, in seconds; None without one."""
    found: float | None = getattr(_local, "limit", None)
    return found
