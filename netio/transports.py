"""Listening and connecting over TCP or kernel SCTP alike: one call, the transport named by
the configuration ("tcp" or "sctp"); over SCTP the upper layer's ``Payload`` says its PPID
and streams (``netio.sctp``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from netio import sctp

if TYPE_CHECKING:  # netio.capture loads scapy: only those who capture pay for it
    from netio.capture import Capture

TRANSPORTS = ("tcp", "sctp")
P = TypeVar("P", bound=asyncio.Protocol)


def check_transport(transport: str) -> None:
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown transport {transport!r} (tcp or sctp)")


async def listen(factory: Callable[[], asyncio.Protocol], host: str, port: int, transport: str,
                 payload: sctp.Payload, *, reuse_port: bool = False) -> asyncio.AbstractServer:
    """Listen on host:port, each connection given a protocol from ``factory``. ``reuse_port``:
    bind with SO_REUSEPORT (TCP), so that several processes of one user listen on the same
    port and the kernel spreads new connections over them (``eir serve --workers``)."""
    check_transport(transport)
    if transport == "sctp":
        if reuse_port:
            raise ValueError("SO_REUSEPORT listeners are TCP only here (eir serve --workers refuses SCTP)")
        return await sctp.start_server(factory, host, port, payload)
    return await asyncio.get_running_loop().create_server(factory, host, port, reuse_address=True,
                                                          reuse_port=reuse_port or None)


async def connect(factory: Callable[[], P], host: str, port: int, transport: str,
                  payload: sctp.Payload, capture: Capture | None = None) -> tuple[asyncio.BaseTransport, P]:
    """A connection to host:port, like ``loop.create_connection``; with a ``capture``, every
    octet it writes and reads is recorded there (``netio.capture``)."""
    check_transport(transport)
    if capture is not None:
        made, tap = await _open(capture.factory(factory, payload), host, port, transport, payload)
        return tap.opened(made)
    return await _open(factory, host, port, transport, payload)


async def _open(factory: Callable[[], P], host: str, port: int, transport: str,
                payload: sctp.Payload) -> tuple[asyncio.BaseTransport, P]:
    if transport == "sctp":
        return await sctp.connect(factory, host, port, payload)
    return await asyncio.get_running_loop().create_connection(factory, host, port)
