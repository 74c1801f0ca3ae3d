"""A capture tap: every chunk of bytes a client connection writes and reads, into a pcap file.

It knows no protocol. ``Capture(path, clock)`` is one pcap file; a connection is tapped by
making it through ``capture.factory(factory, payload)`` (``netio.transports.connect`` and the
load generators do this when given a capture): the protocol it makes is wrapped so that each
``write`` of the protocol and each ``data_received`` (or SCTP ``message_received``) is recorded
with the connection's real addresses (``sockname``, ``peername``), its direction and the
time of ``clock`` when it happened, then passed on unchanged. TCP connections are written as
TCP flows (``netio.pcap``: handshake when the connection opens, seq/ack, MSS cuts, FIN when
it is lost); SCTP associations as SCTP, each message one DATA chunk with the PPID and stream
it went on (``netio.pcap_sctp``; a write is cut into messages by the upper layer's ``Payload``
as ``netio.sctp`` does). With no capture, nothing is wrapped: a connection costs nothing more.

``clock`` is any callable giving seconds since the epoch: ``time.time`` by default; the
scenario runner gives one that follows its lab clock (``simulator.captures.SteppedClock``).

    capture = Capture("s13.pcap")
    transport, protocol = await transports.connect(factory, host, port, "tcp", payload, capture=capture)
    ...
    capture.close()
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

from netio.pcap import Endpoint, PcapFlowWriter
from netio.pcap_sctp import SctpAssociations
from netio.sctp import MessageProtocol, Payload, Received

Clock = Callable[[], float]
P = TypeVar("P", bound=asyncio.Protocol)


class Capture:
    """One pcap file and the connections tapped into it (``factory``); ``close`` ends every
    flow still open and closes the file. Also a context manager."""

    def __init__(self, path: str | Path, clock: Clock = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self.writer = PcapFlowWriter(self.path)
        self.sctp = SctpAssociations(self.writer)
        self.connections = 0  # tapped so far
        self.closed = False  # a connection that outlives the capture is no longer recorded

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def frames(self) -> int:
        return self.writer.frames

    def factory(self, factory: Callable[[], P], payload: Payload | None = None) -> Callable[[], TapProtocol[P]]:
        """A protocol factory making ``factory``'s protocols, tapped; ``payload``: how an SCTP
        association cuts writes into messages (its PPID and streams), unused over TCP."""
        def make() -> TapProtocol[P]:
            inner = factory()
            kind = TapMessageProtocol if isinstance(inner, MessageProtocol) else TapProtocol
            return kind(inner, self, payload)
        return make

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        now = self.clock()
        self.sctp.close_all(now)
        self.writer.close(now)

    # what a tapped connection reports

    def opened(self, local: Endpoint, remote: Endpoint, sctp: bool) -> None:
        if self.closed:
            return
        self.connections += 1
        if sctp:
            self.sctp.open(self.clock(), local, remote)
        else:
            self.writer.open_flow(self.clock(), local, remote)

    def tcp(self, src: Endpoint, dst: Endpoint, data: bytes) -> None:
        if not self.closed:
            self.writer.send(self.clock(), src, dst, data)

    def sctp_message(self, src: Endpoint, dst: Endpoint, data: bytes, ppid: int, stream: int) -> None:
        if not self.closed:
            self.sctp.send(self.clock(), src, dst, data, ppid, stream)

    def lost(self, local: Endpoint, remote: Endpoint, sctp: bool) -> None:
        if self.closed:
            return
        if sctp:
            self.sctp.close(self.clock(), local, remote)
        else:
            self.writer.close_flow(self.clock(), local, remote)


def _endpoint(address: Any) -> Endpoint | None:
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), int(address[1])
    return None


class _Recorder:
    """What one tapped connection writes and reads, told to its capture."""

    def __init__(self, capture: Capture, transport: asyncio.BaseTransport, payload: Payload | None) -> None:
        self.capture = capture
        local, remote = _endpoint(transport.get_extra_info("sockname")), _endpoint(transport.get_extra_info("peername"))
        self.live = local is not None and remote is not None  # else nothing to record it under
        self.local: Endpoint = local or ("0.0.0.0", 0)
        self.remote: Endpoint = remote or ("0.0.0.0", 0)
        streams = transport.get_extra_info("sctp_streams")
        self.sctp = streams is not None and payload is not None
        self.payload = payload
        self.outbound = int(streams[1]) if streams is not None else 1
        if self.live:
            capture.opened(self.local, self.remote, self.sctp)

    def sent(self, data: bytes) -> None:
        if not self.live or not data:
            return
        if self.sctp:
            assert self.payload is not None
            for message, stream in self.payload.split(data, self.outbound):
                self.capture.sctp_message(self.local, self.remote, message, self.payload.ppid,
                                          stream)
        else:
            self.capture.tcp(self.local, self.remote, data)

    def received(self, data: bytes, received: Received | None = None) -> None:
        if not self.live or not data:
            return
        if self.sctp:
            assert self.payload is not None
            ppid = received.ppid if received is not None else self.payload.ppid
            stream = received.stream if received is not None else 0
            self.capture.sctp_message(self.remote, self.local, data, ppid, stream)
        else:
            self.capture.tcp(self.remote, self.local, data)

    def lost(self) -> None:
        if self.live:
            self.live = False
            self.capture.lost(self.local, self.remote, self.sctp)


class TappedTransport(asyncio.Transport):
    """The transport a tapped protocol sees: each write recorded, then written; the rest as is."""

    def __init__(self, transport: asyncio.Transport, recorder: _Recorder) -> None:
        super().__init__()
        self.transport = transport
        self.recorder = recorder

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.transport.is_closing():
            self.recorder.sent(bytes(data))
        self.transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def close(self) -> None:
        self.transport.close()

    def abort(self) -> None:
        self.transport.abort()

    def is_reading(self) -> bool:
        return self.transport.is_reading()

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.transport.get_write_buffer_limits()

    def can_write_eof(self) -> bool:
        return self.transport.can_write_eof()

    def write_eof(self) -> None:
        self.transport.write_eof()

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.transport.get_protocol()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.transport.set_protocol(protocol)


class TapProtocol(asyncio.Protocol, Generic[P]):
    """Stands between a transport and the protocol ``inner``: records what goes through and
    hands it on. ``opened`` gives the caller ``inner`` and the transport it writes to."""

    def __init__(self, inner: P, capture: Capture, payload: Payload | None) -> None:
        self.inner = inner
        self.capture = capture
        self.payload = payload
        self.tapped: TappedTransport | None = None

    def wrap(self, transport: asyncio.BaseTransport) -> TappedTransport:
        """The tapped transport of ``transport`` (made once)."""
        if self.tapped is None:
            assert isinstance(transport, asyncio.Transport)
            self.tapped = TappedTransport(transport, _Recorder(self.capture, transport, self.payload))
        return self.tapped

    def opened(self, transport: asyncio.BaseTransport) -> tuple[asyncio.Transport, P]:
        """What ``loop.create_connection`` would have returned without the tap."""
        return self.wrap(transport), self.inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(self.wrap(transport))

    def data_received(self, data: bytes) -> None:
        if self.tapped is not None:
            self.tapped.recorder.received(data)
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.tapped is not None:
            self.tapped.recorder.lost()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class TapMessageProtocol(TapProtocol[P], MessageProtocol):
    """A tapped protocol that takes SCTP messages with their stream and PPID."""

    def message_received(self, data: bytes, received: Received) -> None:
        if self.tapped is not None:
            self.tapped.recorder.received(data, received)
        inner = self.inner
        assert isinstance(inner, MessageProtocol)
        inner.message_received(data, received)
