"""Bounded waits on PostgreSQL: a registry read or write that never hangs for longer than
its caller can afford.

psycopg waits for the server's reply for as long as it takes: a server that stopped
answering (a hung host, a network dropping packets, a proxy that no longer forwards) holds
the waiting thread for minutes, and the agent's event loop with it. libpq's
``connect_timeout`` counts whole seconds and TCP timeouts do not see a peer that
acknowledges and never answers. So the bound is the caller's: a thread sets one with
``registry.deadline.within(seconds)``, and no wait of a ``BoundedConnection`` on that
thread lasts longer. Past it the connection is closed (where it stood in the protocol is
unknown) and ``DeadlineExceeded`` raised, a psycopg OperationalError (and a
``registry.deadline.Expired``): SQLAlchemy takes it for a disconnect and drops that
connection (only that one: the others in the pool are fine). Without a bound set the
connection waits as psycopg does.

``bound(engine)`` makes an engine's new connections BoundedConnections, with libpq's
``connect_timeout`` at ``CONNECT_TIMEOUT`` seconds unless the URL gives one. psycopg counts
a connection's wait itself, in whole seconds (at least 2): a thread with a bound has its
connection made on a thread of its own and waits for it that long (``connect_within``).
Engines of other drivers are left as they are (``bound`` returns False).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.abc import PQGen
from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext

from registry.clock import SYSTEM_CLOCK
from registry.deadline import Expired, limit

__all__ = ["CONNECT_TIMEOUT", "BoundedConnection", "DeadlineExceeded", "bound"]

RV = TypeVar("RV")
CONNECT_TIMEOUT = 2  # seconds (libpq's least): how long a new connection may take to be made
WAIT_INTERVAL = 0.1  # psycopg's: how often a wait wakes up to notice an interrupt


class DeadlineExceeded(psycopg.OperationalError, Expired):
    """The database did not answer within the bound the thread set; the connection is closed."""


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection whose waits end at the deadline of the thread that waits."""

    def wait(self, gen: PQGen[RV], interval: float = WAIT_INTERVAL, timeout: float | None = None) -> RV:
        bound = limit()
        if bound is None:
            return super().wait(gen, interval, timeout)
        started = SYSTEM_CLOCK.monotonic()
        try:
            return super().wait(gen, interval, bound if timeout is None else min(timeout, bound))
        except psycopg.OperationalError:
            if SYSTEM_CLOCK.monotonic() - started >= bound:  # psycopg's own wait timed out at our bound
                self._give_up()
            raise

    def _give_up(self) -> None:
        self.pgconn.finish()  # mid-protocol: the connection cannot be used again
        raise DeadlineExceeded(f"no answer from the database within {limit()} s: connection closed")


def bound(engine: Engine) -> bool:
    """Make ``engine``'s new connections BoundedConnections (psycopg 3 only; True when done).
    Connections already in its pool are dropped, so every connection is bounded."""
    if engine.dialect.driver != "psycopg" or getattr(engine.dialect, "is_async", False):
        return False

    def connect(_dialect: Any, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]) -> BoundedConnection:
        cparams.setdefault("connect_timeout", CONNECT_TIMEOUT)
        bound = limit()
        if bound is None:
            return BoundedConnection.connect(*cargs, **cparams)
        return connect_within(bound, lambda: BoundedConnection.connect(*cargs, **cparams))

    event.listen(engine, "do_connect", connect)
    event.listen(engine, "handle_error", _one_connection)
    engine.dispose()
    return True


def _one_connection(context: ExceptionContext) -> None:
    """A deadline closes one connection; the others in the pool are fine (SQLAlchemy would
    drop them all, as for a server that went away, and the next reads would connect anew)."""
    if isinstance(context.original_exception, DeadlineExceeded):
        context.invalidate_pool_on_disconnect = False


def connect_within(seconds: float, connect: Callable[[], BoundedConnection]) -> BoundedConnection:
    """``connect()`` on a thread of its own, waited for at most ``seconds`` (psycopg's own
    connect timeout counts whole seconds, at least 2). A connection made too late is closed
    by that thread; DeadlineExceeded here."""
    outcome: list[BoundedConnection | Exception] = []
    lock = threading.Lock()
    done = threading.Event()
    abandoned = False

    def run() -> None:
        try:
            made: BoundedConnection | Exception = connect()
        except Exception as error:
            made = error
        with lock:
            outcome.append(made)
            done.set()
            late = abandoned
        if late and isinstance(made, BoundedConnection):
            made.close()

    threading.Thread(target=run, name="eir-db-connect", daemon=True).start()
    done.wait(seconds)
    with lock:
        if not outcome:
            abandoned = True
            raise DeadlineExceeded(f"no connection to the database within {seconds} s")
    found = outcome[0]
    if isinstance(found, Exception):
        raise found
    return found
