"""Hostile numbers of connections, for every listener (TCP or SCTP, Diameter or M3UA).

``capped`` wraps a listener's protocol factory so that past its cap a new connection is
closed at once (``Refused``), counted and logged (throttled); ``throttle_accept_errors``
makes asyncio's "socket.accept() out of system resource" (one report per attempt, a
hundred a second, when descriptors run out) one counted line every few seconds. asyncio
tries the accept again every second, so peers waiting in the listen queue get in as soon
as descriptors are free; ``netio.sctp.SctpServer`` does the same.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from netio.logs import Throttled

log = logging.getLogger("netio.accepting")

ACCEPT_RETRY = 1.0  # seconds before a listener that ran out of descriptors accepts again
LOG_INTERVAL = 5.0  # seconds between two lines about refused connections or failed accepts
ACCEPT_OUT_OF_RESOURCES = "socket.accept() out of system resource"  # asyncio's report
OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class Refused(asyncio.Protocol):
    """A connection past its listener's cap: closed at once (an RST), nothing read or sent."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.Transport):
            transport.abort()
        else:
            transport.close()


class Closable(Protocol):
    @property
    def closed(self) -> asyncio.Future[None]: ...


C = TypeVar("C", bound=Closable)


def capped(factory: Callable[[], C], limit: int | None, what: str, counters: Counter[str], counter: str,
           throttled: Throttled) -> Callable[[], C | Refused]:
    """``factory`` for a listener that keeps at most ``limit`` connections open (None: no cap);
    past it, each new one is ``Refused``, counted in ``counters[counter]`` and logged (throttled)."""
    open_ones: set[C] = set()

    def make() -> C | Refused:
        if limit is not None and len(open_ones) >= limit:
            counters[counter] += 1
            throttled("%s: %d connections open, the most allowed: new ones are closed at once (%s: %d so far)",
                      what, limit, counter, counters[counter])
            return Refused()
        protocol = factory()
        open_ones.add(protocol)
        protocol.closed.add_done_callback(lambda _: open_ones.discard(protocol))
        return protocol
    return make


ACCEPT_ERRORS: Counter[str] = Counter()  # "accept_out_of_resources": failed accepts of this process
_THROTTLED_LOOPS: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def throttle_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio reports every failed accept when descriptors run out (and retries each listener
    every second, up to a hundred attempts each time): count them all, log one line every
    ``LOG_INTERVAL`` seconds; every other report goes where it went before."""
    if loop in _THROTTLED_LOOPS:
        return
    _THROTTLED_LOOPS.add(loop)
    previous = loop.get_exception_handler()
    throttled = Throttled(log, LOG_INTERVAL)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if _stale_accept_retry(context):
            return
        if context.get("message") != ACCEPT_OUT_OF_RESOURCES:
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        accept_failed(context.get("exception"), context.get("socket"), throttled)

    loop.set_exception_handler(handler)


def _stale_accept_retry(context: dict[str, Any]) -> bool:
    """asyncio schedules a retry of the listener after each failed accept (one a second per
    failure); those still pending when the listener closes at shutdown fail on its closed
    socket, a traceback each (200 seen after a minute without descriptors). Nothing is lost:
    the listener is gone on purpose."""
    handle = context.get("handle")
    callback = getattr(handle, "_callback", None)
    return (isinstance(context.get("exception"), ValueError)
            and getattr(callback, "__name__", "") == "_start_serving")


def accept_failed(error: object, sock: Any, throttled: Throttled) -> None:
    """One failed accept: counted; a line when ``throttled`` allows."""
    ACCEPT_ERRORS["accept_out_of_resources"] += 1
    where = address(sock.getsockname) if hasattr(sock, "getsockname") else None
    throttled("cannot accept a connection on %s: %s; new connections wait in the listen queue until descriptors "
              "are free (accept_out_of_resources: %d so far)", where, error,
              ACCEPT_ERRORS["accept_out_of_resources"])


def address(getter: Callable[[], Any]) -> Any:
    """A socket's address (``getsockname``, ``getpeername``); None once it has none."""
    try:
        return getter()
    except OSError:
        return None
