"""Kernel SCTP under asyncio: one-to-one sockets, one upper-layer message per SCTP message,
each sent with its own PPID and stream. The only module of ``sigtran`` that touches sockets.

asyncio's socket transports write with ``send()``: no PPID, no stream, and writes queued
together leave as one SCTP message. ``SctpTransport`` is an ``asyncio.Transport`` that cuts
what its protocol writes into the upper layer's messages (``Payload.split``) and sends each
with ``sendmsg`` and an SCTP_SNDINFO control message (RFC 6458 5.3.4: stream and PPID). It
reads with ``recvmsg`` and SCTP_RCVINFO (RFC 6458 5.3.5): a ``MessageProtocol`` is given each
message with the stream and PPID it came on, any other protocol plain ``data_received``.

Each association asks for 16 streams each way (SCTP_INITMSG); the peer may grant fewer.

- M3UA (RFC 4666, PPID 3): DATA on stream 1 + SLS mod (outbound streams - 1), so one
  signalling link selection keeps its order and DATA never rides on stream 0; every other
  class (MGMT, SSNM, ASPSM, ASPTM) on stream 0.
- Diameter (RFC 6733, PPID 46) gives its own ``Payload`` (all on stream 0) in
  ``diameter.transport``.

Where the kernel has no SCTP, ``SctpUnavailable`` says so in one line at start-up; nothing
here falls back to TCP.

Backpressure, for every transport (TCP or SCTP) of Diameter and M3UA: a protocol built on
``ReadPausing`` stops reading a connection whose write buffer is above ``WRITE_HIGH`` and
reads again once it is down to ``WRITE_LOW``, so a peer that never reads its answers
cannot make the agent buffer without limit; it only stalls itself. ``SctpTransport``
calls ``pause_writing``/``resume_writing`` as asyncio's own transports do.

Hostile numbers of connections: ``capped`` wraps a listener's protocol factory so that past
its cap a new connection is closed at once (``Refused``), counted and logged (throttled);
``throttle_accept_errors`` makes asyncio's "socket.accept() out of system resource" (one
report per attempt, a hundred a second, when descriptors run out) one counted line every
few seconds. asyncio tries the accept again every second, so peers waiting in the listen
queue get in as soon as descriptors are free; ``SctpServer`` does the same.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import socket
import struct
import time
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sigtran.m3ua import HEADER_LENGTH, MessageClass, Tag

log = logging.getLogger("sigtran.sctp")

PPID_M3UA = 3
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
_M3UA_LENGTH = struct.Struct(">I")
_TLV = struct.Struct(">HH")
_SLS_OFFSET = 11  # in Protocol Data: OPC (4), DPC (4), SI, NI, MP, SLS
WRITE_HIGH = 64 * 1024  # octets waiting to be written above which a connection is not read
WRITE_LOW = 16 * 1024  # ... and at or below which it is read again
ACCEPT_RETRY = 1.0  # seconds before a listener that ran out of descriptors accepts again
LOG_INTERVAL = 5.0  # seconds between two lines about refused connections or failed accepts
ACCEPT_OUT_OF_RESOURCES = "socket.accept() out of system resource"  # asyncio's report
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

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


# --- cutting written bytes into messages -----------------------------------------------------

def cut(data: bytes, header: int, length_at: Callable[[bytes, int], int]) -> list[bytes]:
    """Whole messages of ``data`` (``length_at(data, offset)``: the length in the header at
    ``offset``); octets that do not make a whole message go out as they are, in one piece."""
    messages: list[bytes] = []
    offset = 0
    while len(data) - offset >= header:
        length = length_at(data, offset)
        if length < header or offset + length > len(data):
            break
        messages.append(data if length == len(data) else data[offset:offset + length])
        offset += length
    if offset < len(data):
        messages.append(data[offset:])
    return messages


def m3ua_transfer(message: bytes) -> bool:
    """Whether ``message`` starts with an M3UA header of the Transfer class (DATA)."""
    return len(message) >= HEADER_LENGTH and message[0] == 1 and message[2] == MessageClass.TRANSFER


def m3ua_sls(message: bytes) -> int:
    """The SLS of a DATA message's Protocol Data; 0 when it has none."""
    offset = HEADER_LENGTH
    while len(message) - offset >= _TLV.size:
        tag, length = _TLV.unpack_from(message, offset)
        if length < _TLV.size:
            break
        if tag == Tag.PROTOCOL_DATA and length > _TLV.size + _SLS_OFFSET:
            return message[offset + _TLV.size + _SLS_OFFSET]
        offset += (length + 3) & ~3
    return 0


def m3ua_stream(message: bytes, outbound: int) -> int:
    """RFC 4666: DATA on a non-zero stream chosen by its SLS, everything else on stream 0.
    An association granted a single stream leaves no choice."""
    if outbound < 2 or not m3ua_transfer(message):
        return 0
    return 1 + m3ua_sls(message) % (outbound - 1)


def m3ua_split(data: bytes, outbound: int) -> list[tuple[bytes, int]]:
    messages = cut(data, HEADER_LENGTH, lambda d, at: int(_M3UA_LENGTH.unpack_from(d, at + 4)[0]))
    return [(message, m3ua_stream(message, outbound)) for message in messages]


M3UA = Payload(PPID_M3UA, m3ua_split)


# --- flow control -----------------------------------------------------------------------------

class Throttled:
    """A warning at most every ``interval`` seconds, saying how many were held back."""

    def __init__(self, log: logging.Logger, interval: float = 5.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.log = log
        self.interval = interval
        self.clock = clock
        self._next = float("-inf")
        self._held = 0

    def __call__(self, text: str, *args: object) -> None:
        now = self.clock()
        if now < self._next:
            self._held += 1
            return
        held, self._held, self._next = self._held, 0, now + self.interval
        self.log.warning(text + (f" (and {held} more like it since)" if held else ""), *args)


class PerSecond:
    """Peer events (connections opened and closed, ASP and watchdog state changes, NTFY and
    ERR received) logged at most ``limit`` lines a second at their own level: a peer that
    flips its state at line rate must not fill the disk. Lines held back are counted and
    the next line logged says how many."""

    def __init__(self, log: logging.Logger, limit: int = 10, clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.limit = limit
        self.clock = clock
        self._second_began = float("-inf")
        self._lines = 0
        self.held = 0  # lines held back so far

    def __call__(self, level: int, text: str, *args: object) -> None:
        now = self.clock()
        if now - self._second_began >= 1.0:
            self._second_began, self._lines = now, 0
        self._lines += 1
        if self._lines > self.limit:
            self.held += 1
            return
        if self.held:
            text += f" ({self.held} peer event lines held back so far)"
        self.log.log(level, text, *args)


class ReadPausing(asyncio.Protocol):
    """Backpressure: not read while the transport's write buffer is above the high-water
    mark (asyncio calls ``pause_writing``), read again below the low one (``resume_writing``).
    Subclasses set ``transport`` and ``counters``; ``paused_log`` reports pauses, throttled."""

    transport: asyncio.Transport | None
    counters: Counter[str]
    paused_counter = "connections_paused"
    paused_log = Throttled(log)

    def limit_writes(self, transport: asyncio.Transport) -> None:
        transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)

    def pause_writing(self) -> None:
        if self.transport is None:
            return
        self.transport.pause_reading()
        self.counters[self.paused_counter] += 1
        self.paused_log("%s: not reading %s, %d octets of answers wait for it to read (%s: %d so far)",
                        type(self).__name__, self.transport.get_extra_info("peername"),
                        self.transport.get_write_buffer_size(), self.paused_counter,
                        self.counters[self.paused_counter])

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()


# --- too many connections ---------------------------------------------------------------------

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
    where = _address(sock.getsockname) if hasattr(sock, "getsockname") else None
    throttled("cannot accept a connection on %s: %s; new connections wait in the listen queue until descriptors "
              "are free (accept_out_of_resources: %d so far)", where, error,
              ACCEPT_ERRORS["accept_out_of_resources"])


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
        super().__init__({"socket": sock, "peername": _address(sock.getpeername),
                          "sockname": _address(sock.getsockname), "sctp_streams": (inbound, outbound)})
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


def _address(getter: Callable[[], Any]) -> Any:
    try:
        return getter()
    except OSError:
        return None


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
            if exc.errno in _OUT_OF_RESOURCES:  # the socket stays readable: wait, as asyncio does
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
            log.warning("SCTP association from %s dropped: %s", _address(conn.getpeername), exc)
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
