"""Kernel SCTP under asyncio: one-to-one sockets, one upper-layer message per SCTP message,
each sent with its own PPID and stream. The only module of the house that touches SCTP sockets.

asyncio's socket transports write with ``send()``: no PPID, no stream, and writes queued
together leave as one SCTP message. ``SctpTransport`` is an ``asyncio.Transport`` that cuts
what its protocol writes into the upper layer's messages (``Payload.split``) and sends each
with ``sendmsg`` and an SCTP_SNDINFO control message (RFC 6458 5.3.4: stream and PPID). It
reads with ``recvmsg`` and SCTP_RCVINFO (RFC 6458 5.3.5): a ``MessageProtocol`` is given each
message with the stream and PPID it came on, any other protocol plain ``data_received``.

Each association asks for 16 streams each way (SCTP_INITMSG); the peer may grant fewer.
Each upper layer gives its ``Payload``: M3UA in ``sigtran.m3ua_streams`` (PPID 3, DATA off
stream 0), Diameter in ``diameter.transport`` (PPID 46, all on stream 0).

Where the kernel has no SCTP, ``SctpUnavailable`` says so in one line at start-up; nothing
here falls back to TCP. ``SctpTransport`` calls ``pause_writing``/``resume_writing`` as
asyncio's own transports do (``netio.flow``); ``SctpServer`` waits and accepts again when
descriptors run out, as asyncio's listeners do (``netio.accepting``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from netio.accepting import ACCEPT_RETRY, LOG_INTERVAL, OUT_OF_RESOURCES, accept_failed, address
from netio.flow import WRITE_HIGH, WRITE_LOW, ReadPausing
from netio.logs import Throttled

log = logging.getLogger("netio.sctp")

STREAMS = 16  # asked for each way; the peer may grant fewer
SCTP_INITMSG = 2  # socket options, linux/sctp.h
SCTP_NODELAY = 3
SCTP_STATUS = 14
SCTP_RECVRCVINFO = 32
SCTP_SNDINFO = 2  # control message types, linux/sctp.h
SCTP_RCVINFO = 3
MSG_NOTIFICATION = 0x8000
RECEIVE_SIZE = 1 << 17  # above the largest message either upper layer accepts (64 KiB)
_INITMSG = struct.Struct("=HHHH")  # struct sctp_initmsg
_SNDINFO = struct.Struct("=HHIIi")  # struct sctp_sndinfo
_RCVINFO = struct.Struct("=HHHxxIIIIi")  # struct sctp_rcvinfo
_STATUS_SIZE = 256  # struct sctp_status is 176 octets; the kernel wants at least that
_STATUS_STREAMS = struct.Struct("=HH")  # sstat_instrms, sstat_outstrms at offset 16
_ANCILLARY_SIZE = socket.CMSG_SPACE(_RCVINFO.size)

Split = Callable[[bytes, int], list[tuple[bytes, int]]]
P = TypeVar("P", bound=asyncio.Protocol)


class SctpUnavailable(RuntimeError):
    """The kernel has no SCTP: say so once, clearly, and never fall back to TCP."""


@dataclass(frozen=True)
class Payload:
    """What an upper layer sends over SCTP: its PPID, and ``split`` cutting the bytes it
    writes into (message, stream) pairs, given the association's outbound streams."""

    ppid: int
    split: Split


@dataclass(frozen=True)
class Received:
    """Where a received message came from; ``starts`` is False for the continuation of a
    message larger than one read."""

    stream: int
    ppid: int
    starts: bool = True


# --- sockets ---------------------------------------------------------------------------------

def sctp_socket(family: int = socket.AF_INET) -> socket.socket:
    """A one-to-one SCTP socket; SctpUnavailable (one line) where the kernel has no SCTP."""
    try:
        return socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    except OSError as exc:
        hint = " (load the kernel module: modprobe sctp)" if exc.errno in (errno.EPROTONOSUPPORT, 93) else ""
        raise SctpUnavailable(f"SCTP is not available in this kernel: {exc.strerror or exc}{hint}; "
                              "choose transport tcp") from None


def check_sctp() -> None:
    """Raise SctpUnavailable now, at start-up, rather than at the first connection."""
    sctp_socket().close()


def configure(sock: socket.socket) -> None:
    """Streams asked for, no Nagle-like delay, and the stream and PPID of each received message."""
    sock.setsockopt(socket.IPPROTO_SCTP, SCTP_INITMSG, _INITMSG.pack(STREAMS, STREAMS, 0, 0))
    sock.setsockopt(socket.IPPROTO_SCTP, SCTP_NODELAY, 1)
    sock.setsockopt(socket.IPPROTO_SCTP, SCTP_RECVRCVINFO, 1)
    sock.setblocking(False)


def streams(sock: socket.socket) -> tuple[int, int]:
    """(inbound, outbound) streams of the association, as negotiated (SCTP_STATUS)."""
    status = sock.getsockopt(socket.IPPROTO_SCTP, SCTP_STATUS, _STATUS_SIZE)
    inbound, outbound = _STATUS_STREAMS.unpack_from(status, 16)
    return int(inbound), int(outbound)


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


# --- the transport ----------------------------------------------------------------------------

class MessageProtocol(ReadPausing):
    """A protocol that wants each SCTP message with the stream and PPID it came on."""

    def message_received(self, data: bytes, received: Received) -> None:
        self.data_received(data)


class SctpTransport(asyncio.Transport):
    """A connected one-to-one SCTP socket: messages out with their stream and PPID, in with theirs."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol: asyncio.Protocol,
                 payload: Payload) -> None:
        inbound, outbound = streams(sock)
        super().__init__({"socket": sock, "peername": address(sock.getpeername),
                          "sockname": address(sock.getsockname), "sctp_streams": (inbound, outbound)})
        self._loop = loop
        self._sock = sock
        self._protocol = protocol
        self._payload = payload
        self._outbound = outbound
        self._queue: collections.deque[tuple[bytes, int]] = collections.deque()
        self._queued = 0
        self._closing = False
        self._finished = False
        self._reading = False
        self._writing = False
        self._continued = False  # the last read ended inside a message
        self._high, self._low = WRITE_HIGH, WRITE_LOW
        self._protocol_paused = False
        loop.call_soon(protocol.connection_made, self)
        loop.call_soon(self._start_reading)

    # --- asyncio.Transport ---------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        for message, stream in self._payload.split(bytes(data), self._outbound):
            self._queue.append((message, stream))
            self._queued += len(message)
        if not self._writing:
            self._send_queued()
        if self._queued > self._high and not self._protocol_paused:
            self._protocol_paused = True
            self._protocol.pause_writing()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self.pause_reading()
        if not self._queue:
            self._loop.call_soon(self._finish, None)

    def abort(self) -> None:
        """Close at once, dropping what is queued; the kernel sends an SCTP ABORT."""
        if self._finished:
            return
        self._closing = True
        self._queue.clear()
        self._queued = 0
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._finish(None)

    def is_closing(self) -> bool:
        return self._closing

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._protocol = protocol

    def get_write_buffer_size(self) -> int:
        return self._queued

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = WRITE_HIGH if high is None else high
        self._low = min(self._high, self._high // 4 if low is None else low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def can_write_eof(self) -> bool:
        return False

    def is_reading(self) -> bool:
        return self._reading

    def pause_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._sock.fileno())
            self._reading = False

    def resume_reading(self) -> None:
        if not self._closing:
            self._start_reading()

    # --- internals -----------------------------------------------------------------------------

    def _start_reading(self) -> None:
        if not self._reading and not self._closing:
            self._loop.add_reader(self._sock.fileno(), self._on_readable)
            self._reading = True

    def _send_queued(self) -> None:
        ppid = socket.htonl(self._payload.ppid)
        while self._queue:
            message, stream = self._queue[0]
            control = [(socket.IPPROTO_SCTP, SCTP_SNDINFO, _SNDINFO.pack(stream, 0, ppid, 0, 0))]
            try:
                self._sock.sendmsg([message], control)
            except (BlockingIOError, InterruptedError):
                self._want_writable(True)
                return
            except OSError as exc:
                self._fail(exc)
                return
            self._queue.popleft()
            self._queued -= len(message)
            self._maybe_resume()
        self._want_writable(False)
        if self._closing:
            self._finish(None)

    def _maybe_resume(self) -> None:
        if self._protocol_paused and self._queued <= self._low:
            self._protocol_paused = False
            self._protocol.resume_writing()

    def _want_writable(self, wanted: bool) -> None:
        if wanted and not self._writing:
            self._loop.add_writer(self._sock.fileno(), self._send_queued)
        elif not wanted and self._writing:
            self._loop.remove_writer(self._sock.fileno())
        self._writing = wanted

    def _on_readable(self) -> None:
        try:
            data, ancillary, flags, _ = self._sock.recvmsg(RECEIVE_SIZE, _ANCILLARY_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(exc)
            return
        if flags & MSG_NOTIFICATION:
            return  # none subscribed; the kernel may still say something
        if not data:
            self._protocol.eof_received()
            self.close()
            return
        received = _received(ancillary, starts=not self._continued)
        self._continued = not flags & socket.MSG_EOR
        if isinstance(self._protocol, MessageProtocol):
            self._protocol.message_received(data, received)
        else:
            self._protocol.data_received(data)

    def _fail(self, exc: OSError) -> None:
        log.debug("SCTP association with %s lost: %s", self.get_extra_info("peername"), exc)
        self._queue.clear()
        self._queued = 0
        self._closing = True
        self._finish(exc)

    def _finish(self, exc: Exception | None) -> None:
        if self._finished:
            return
        self._finished = True
        self.pause_reading()
        self._want_writable(False)
        self._sock.close()
        self._loop.call_soon(self._protocol.connection_lost, exc)


def _received(ancillary: list[tuple[int, int, bytes]], starts: bool) -> Received:
    for level, kind, value in ancillary:
        if level == socket.IPPROTO_SCTP and kind == SCTP_RCVINFO and len(value) >= _RCVINFO.size:
            stream, _, _, ppid, *_ = _RCVINFO.unpack_from(value)
            return Received(stream, socket.ntohl(ppid), starts)
    return Received(0, 0, starts)


# --- connecting and listening -----------------------------------------------------------------

async def connect(protocol_factory: Callable[[], P], host: str, port: int, payload: Payload) -> tuple[SctpTransport, P]:
    """An association to host:port carrying ``payload``, like ``loop.create_connection``."""
    loop = asyncio.get_running_loop()
    sock = sctp_socket(_family(host))
    try:
        configure(sock)
        await loop.sock_connect(sock, (host, port))
        protocol = protocol_factory()
        return SctpTransport(loop, sock, protocol, payload), protocol
    except BaseException:
        sock.close()
        raise


class SctpServer(asyncio.AbstractServer):
    """A listening SCTP socket whose associations get an ``SctpTransport`` each."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 protocol_factory: Callable[[], asyncio.Protocol], payload: Payload) -> None:
        self._loop = loop
        self._sock: socket.socket | None = sock
        self._factory = protocol_factory
        self._payload = payload
        self.sockets: tuple[socket.socket, ...] = (sock,)
        self._closed = loop.create_future()
        self._throttled = Throttled(log, LOG_INTERVAL)
        loop.add_reader(sock.fileno(), self._accept)

    def _resume_accepting(self) -> None:
        if self._sock is not None:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def _accept(self) -> None:
        if self._sock is None:
            return
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as exc:
            if exc.errno in OUT_OF_RESOURCES:  # the socket stays readable: wait, as asyncio does
                accept_failed(exc, self._sock, self._throttled)
                self._loop.remove_reader(self._sock.fileno())
                self._loop.call_later(ACCEPT_RETRY, self._resume_accepting)
            else:
                self._throttled("SCTP accept on %s failed: %s", self.sockets[0].getsockname()[:2], exc)
            return
        try:
            configure(conn)
            SctpTransport(self._loop, conn, self._factory(), self._payload)
        except OSError as exc:
            log.warning("SCTP association from %s dropped: %s", address(conn.getpeername), exc)
            conn.close()

    def close(self) -> None:
        if self._sock is None:
            return
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        self.sockets = ()
        self._closed.set_result(None)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._sock is not None

    async def start_serving(self) -> None:
        """Serving from the start: nothing to do."""

    async def serve_forever(self) -> None:
        await self.wait_closed()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)


async def start_server(protocol_factory: Callable[[], asyncio.Protocol], host: str, port: int, payload: Payload,
                       backlog: int = 128) -> SctpServer:
    """Listen on host:port for associations carrying ``payload``, like ``loop.create_server``."""
    sock = sctp_socket(_family(host))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        configure(sock)
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return SctpServer(asyncio.get_running_loop(), sock, protocol_factory, payload)
