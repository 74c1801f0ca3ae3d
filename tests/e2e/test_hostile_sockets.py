"""End to end, hostile peers at the socket level (issue 12, items 4, 6 and 7), each against a
real `eir serve` process over loopback sockets, with raw M3UA and Diameter octets:

- item 4: a peer that sends many requests and never reads its answers: the agent stops
  reading it (the peer's own sends block), its memory stays bounded, and once the peer
  reads, every request is answered; over Diameter and over M3UA;
- item 6: M3UA peers are screened (address, point code, routing context; loopback only
  by default), associations that never become active are closed, each listener keeps at
  most its cap of connections (M3UA and Diameter), and when descriptors run out the
  failed accepts make one log line every few seconds and S13 peers get in again as soon
  as descriptors are free;
- item 7: a DATA and an ASPIA in one TCP write: the association stays up, the answer is
  held while the AS is AS-PENDING and sent after the next ASPAC (RFC 4666 4.3.2), or
  discarded and counted when T(r) runs out first; never a RuntimeError.
"""

from __future__ import annotations

import asyncio
import select
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from diameter.constants import ResultCode
from diameter.message import decode_message as decode_diameter
from diameter.peer import Peer, PeerSettings, PeerState, Role
from diameter.transport import connect
from sigtran import map as mapv
from sigtran import sccp, tcap
from sigtran.m3ua import SI_SCCP, AsState, Kind, Message, StatusType, Tag, build_aspac, build_data, decode_message
from simulator.agent_process import LOOPBACK, AgentProcess, free_port
from simulator.demo_registry import IMSI, WHITE
from tests.e2e.test_s13_agent import MME, ecr
from tests.tools import MakeAgent, wait_until

MSC_GT, EIR_GT = "992900000001", "992900000009"
MSC_PC, EIR_PC = 2, 1


@pytest.fixture
def agent(make_agent: MakeAgent) -> AgentProcess:
    """With bounds on requests in progress too high to matter: a flood read 256 KiB at a
    time would otherwise get 3004s past the 256th request of a read (test_durability_and_overload)."""
    return make_agent(config="limits: {in_progress_per_peer: 1000000, in_progress: 1000000}\n", m3ua=True)


# --- a raw M3UA peer ------------------------------------------------------------------------


class RawAsp:
    """M3UA octets over a TCP stream, every message read back decoded, nothing answered."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, address: tuple[str, int], source: str | None = None) -> RawAsp:
        return cls(*await asyncio.open_connection(*address, local_addr=(source, 0) if source else None))

    async def refused(self, timeout: float = 5.0) -> bool:
        """True when the agent closes the connection (before answering anything)."""
        try:
            return await asyncio.wait_for(self.reader.read(1), timeout) == b""
        except ConnectionResetError:
            return True

    def send(self, *messages: Message) -> None:
        self.writer.write(b"".join(m.to_bytes() for m in messages))  # one write

    async def read(self, timeout: float = 5.0) -> Message:
        header = await asyncio.wait_for(self.reader.readexactly(8), timeout)
        (length,) = struct.unpack_from(">I", header, 4)
        return decode_message(header + await asyncio.wait_for(self.reader.readexactly(length - 8), timeout))

    async def read_until(self, kind: Kind, timeout: float = 5.0) -> list[Message]:
        messages = [await self.read(timeout)]
        while messages[-1].kind is not kind:
            messages.append(await self.read(timeout))
        return messages

    async def quiet(self, seconds: float) -> bool:
        """True when nothing comes for ``seconds``."""
        try:
            await asyncio.wait_for(self.reader.read(1), seconds)
        except TimeoutError:
            return True
        return False

    async def activate(self) -> None:
        self.send(Message(Kind.ASPUP))
        await self.read_until(Kind.ASPUP_ACK)
        self.send(build_aspac())
        await self.read_until(Kind.ASPAC_ACK)
        assert (await self.read()).status == (StatusType.AS_STATE_CHANGE, AsState.AS_ACTIVE)

    def close(self) -> None:
        self.writer.close()


def check_imei(otid: bytes, imei: str = WHITE, opc: int = MSC_PC, routing_context: int | None = None) -> Message:
    """A DATA carrying a CheckIMEI v3 Begin from the MSC to the EIR."""
    invoke = tcap.Invoke(1, mapv.CHECK_IMEI, mapv.encode_check_imei(3, mapv.CheckImeiArgument(imei + "0")))
    begin = tcap.encode_begin(otid, [invoke], tcap.DialogueRequest(mapv.equipment_context(3)))
    udt = sccp.Udt(sccp.gt_address(EIR_GT, sccp.SSN_EIR), sccp.gt_address(MSC_GT, sccp.SSN_MSC), begin, 1, False)
    return build_data(opc, EIR_PC, SI_SCCP, 2, 0, 5, udt.to_bytes(), routing_context=routing_context)


def answered_status(message: Message, otid: bytes) -> mapv.EquipmentStatus:
    assert message.kind is Kind.DATA and message.protocol_data is not None
    answer = sccp.decode_message(message.protocol_data.user_data)
    assert isinstance(answer, sccp.Udt)
    end = tcap.decode(answer.data)
    assert end.type is tcap.MessageType.END and end.dtid == otid
    (component,) = end.components
    assert isinstance(component, tcap.ReturnResult)
    status = mapv.decode_check_imei_result(3, component.result)
    assert status is not None
    return status


# --- item 7: DATA and ASPIA in one read -------------------------------------------------------


def test_data_then_aspia_in_one_write_the_answer_follows_the_next_aspac(agent: AgentProcess) -> None:
    async def main() -> None:
        asp = await RawAsp.open(agent.m3ua_address)
        try:
            await asp.activate()
            asp.send(check_imei(b"\x00\x00\x00\x01"), Message(Kind.ASPIA))
            got = await asp.read_until(Kind.NTFY)
            assert [m.kind for m in got] == [Kind.ASPIA_ACK, Kind.NTFY]
            assert got[1].status == (StatusType.AS_STATE_CHANGE, AsState.AS_PENDING)
            assert await asp.quiet(0.3)  # no DATA to an inactive ASP
            asp.send(build_aspac())
            got = [await asp.read() for _ in range(3)]
            assert [m.kind for m in got] == [Kind.ASPAC_ACK, Kind.NTFY, Kind.DATA]
            assert answered_status(got[2], b"\x00\x00\x00\x01") == mapv.EquipmentStatus.WHITE_LISTED
            asp.send(check_imei(b"\x00\x00\x00\x02"))  # the association is up and serving
            assert answered_status(await asp.read(), b"\x00\x00\x00\x02") == mapv.EquipmentStatus.WHITE_LISTED
        finally:
            asp.close()
    asyncio.run(main())
    assert agent.stop() == 0
    log = agent.log()
    assert "cannot send DATA" not in log and "Traceback" not in log


def test_an_answer_held_past_the_recovery_timer_is_discarded_and_counted(agent: AgentProcess) -> None:
    async def main() -> None:
        asp = await RawAsp.open(agent.m3ua_address)
        try:
            await asp.activate()
            asp.send(check_imei(b"\x00\x00\x00\x03"), Message(Kind.ASPIA))
            await asp.read_until(Kind.NTFY)  # ASPIA-ACK, NTFY AS-PENDING
            ntfy = await asp.read(timeout=5)  # T(r), 2 s: AS-INACTIVE
            assert ntfy.status == (StatusType.AS_STATE_CHANGE, AsState.AS_INACTIVE)
            asp.send(build_aspac())
            got = [await asp.read(), await asp.read()]
            assert [m.kind for m in got] == [Kind.ASPAC_ACK, Kind.NTFY]
            assert await asp.quiet(0.3)  # the stale answer is not sent
            asp.send(check_imei(b"\x00\x00\x00\x04"))
            assert answered_status(await asp.read(), b"\x00\x00\x00\x04") == mapv.EquipmentStatus.WHITE_LISTED
        finally:
            asp.close()
    asyncio.run(main())
    assert agent.stop() == 0
    log = agent.log()
    assert "1 answer(s) discarded: T(r) expired" in log and "'m3ua_answers_discarded': 1" in log
    assert "Traceback" not in log


# --- item 4: a peer that never reads ----------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the agent closed the connection"
        data += chunk
    return data


FLOOD = 100_000  # requests: well beyond what the kernel's buffers on both sides hold


def small_buffers(sock: socket.socket) -> None:
    """Before connecting: the peer's own buffers small, so what it could send is what the agent read."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)


def diameter_peer(address: tuple[str, int]) -> tuple[socket.socket, bytes, int]:
    """A connection that passed CER/CEA, N ECRs in one buffer, and how many."""
    sock = socket.socket()
    small_buffers(sock)
    sock.connect(address)
    peer = Peer(MME, Role.INITIATOR, PeerSettings(), time.time())
    peer.connection_made(time.monotonic())
    sock.sendall(peer.data_to_send())
    header = read_exactly(sock, 20)
    peer.receive_data(header + read_exactly(sock, int.from_bytes(header[1:4]) - 20), time.monotonic())
    assert peer.state is PeerState.OPEN
    template = bytearray(ecr(WHITE, IMSI).to_bytes())
    count = FLOOD
    requests = bytearray()
    for number in range(1, count + 1):
        template[12:20] = number.to_bytes(4, "big") * 2  # Hop-by-Hop and End-to-End ids
        requests += template
    return sock, bytes(requests), count


def m3ua_peer(address: tuple[str, int]) -> tuple[socket.socket, bytes, int]:
    sock = socket.socket()
    small_buffers(sock)
    sock.connect(address)
    sock.sendall(Message(Kind.ASPUP).to_bytes() + build_aspac().to_bytes())
    kinds = []
    while Kind.NTFY not in kinds[2:]:  # ASPUP-ACK, NTFY, ASPAC-ACK, NTFY
        header = read_exactly(sock, 8)
        kinds.append(decode_message(header + read_exactly(sock, struct.unpack_from(">I", header, 4)[0] - 8)).kind)
    count = FLOOD
    return sock, check_imei(b"\x00\x00\x00\x07").to_bytes() * count, count


def answers_in(data: bytes, header: int, length_at: Callable[[bytes, int], int]) -> tuple[list[bytes], bytes]:
    frames, offset = [], 0
    while len(data) - offset >= header and len(data) - offset >= length_at(data, offset):
        length = length_at(data, offset)
        frames.append(data[offset:offset + length])
        offset += length
    return frames, data[offset:]


def send_until_blocked(sock: socket.socket, data: bytes, seconds: float) -> int:
    """Send without reading until the socket accepts nothing for a second (or ``seconds``
    pass, or all is sent); the octets sent."""
    sock.setblocking(False)
    sent, blocked_since, deadline = 0, None, time.monotonic() + seconds
    while sent < len(data) and time.monotonic() < deadline:
        try:
            sent += sock.send(data[sent:sent + 65536])
            blocked_since = None
        except BlockingIOError:
            blocked_since = blocked_since or time.monotonic()
            if time.monotonic() - blocked_since > 1.0:
                break
            time.sleep(0.01)  # pacing: the socket is full, try again soon
    return sent


def read_all_answers(sock: socket.socket, data: bytes, sent: int, count: int, header: int,
                     length_at: Callable[[bytes, int], int], seconds: float = 90.0) -> list[bytes]:
    """Read now, sending what is left; every answer, once ``count`` came (or time is up)."""
    answers: list[bytes] = []
    rest = b""
    deadline = time.monotonic() + seconds
    while len(answers) < count and time.monotonic() < deadline:
        readable, writable, _ = select.select([sock], [sock] if sent < len(data) else [], [], 1.0)
        if writable:
            sent += sock.send(data[sent:sent + 65536])
        if readable:
            chunk = sock.recv(1 << 20)
            assert chunk, "the agent closed the connection"
            frames, rest = answers_in(rest + chunk, header, length_at)
            answers += frames
    return answers


FLOODS = {
    "diameter": (diameter_peer, 20, lambda d, at: int.from_bytes(d[at + 1:at + 4])),
    "m3ua": (m3ua_peer, 8, lambda d, at: struct.unpack_from(">I", d, at + 4)[0]),
}


class Queues(NamedTuple):
    """Octets the kernel holds on each end of one loopback TCP connection (/proc/net/tcp):
    ``rx_queue`` received and not yet read by the socket's owner, ``tx_queue`` written by
    its owner and not yet acknowledged by the other end."""

    agent_rx: int
    agent_tx: int
    our_rx: int
    our_tx: int


def tcp_queues(agent_port: int, our_port: int) -> Queues:
    """Both ends of the connection from ``our_port`` to ``agent_port``, read in one pass."""
    ends: dict[tuple[int, int], tuple[int, int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        lines = Path(table).read_text().splitlines()[1:] if Path(table).exists() else []
        for line in lines:
            fields = line.split()
            local, remote, (tx, rx) = fields[1], fields[2], fields[4].split(":")
            ports = int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)
            if ports in ((agent_port, our_port), (our_port, agent_port)):
                ends[ports] = int(tx, 16), int(rx, 16)
    agent_tx, agent_rx = ends[(agent_port, our_port)]
    our_tx, our_rx = ends[(our_port, agent_port)]
    return Queues(agent_rx, agent_tx, our_rx, our_tx)


def not_reading(agent_port: int, our_port: int, seconds: float = 30.0) -> tuple[Queues, Queues]:
    """Two looks at the connection a second apart during which the agent read nothing: its
    receive queue holds octets and did not shrink. On a busy host the agent may still be
    answering what it read when our sends block, and read once more; so look again until
    such a second comes, or fail after ``seconds``."""
    def quiet_second() -> tuple[Queues, Queues] | None:
        first = tcp_queues(agent_port, our_port)
        time.sleep(1.0)  # the test: neither we nor the agent read for a second
        held = tcp_queues(agent_port, our_port)
        return (first, held) if first.agent_rx > 0 and held.agent_rx >= first.agent_rx else None
    return wait_until(quiet_second, seconds, "a second in which the agent does not read a peer that never reads")


WRITE_HIGH = 64 * 1024  # the agent stops reading a connection above this many octets of answers unwritten
READ_SIZE = 256 * 1024  # what asyncio reads from a socket at a time


def most_the_agent_may_read(queues: Queues, request: int, answer: int) -> int:
    """The agent reads a connection until its answers waiting in user space pass WRITE_HIGH;
    it then has read at most one read more. Its answers are in the kernel (its send queue,
    our receive queue) or in its write buffer (WRITE_HIGH, plus the answers to the last
    read): so many answers, scaled back to requests, plus two reads. What the kernel
    holds is measured, so the bound holds whatever the host's tcp_rmem and tcp_wmem."""
    answers_held = queues.agent_tx + queues.our_rx + WRITE_HIGH + READ_SIZE * answer // request
    return answers_held * request // answer + 2 * READ_SIZE


@pytest.mark.parametrize("interface", sorted(FLOODS))
def test_a_peer_that_never_reads_is_not_read_and_memory_stays_bounded(agent: AgentProcess, interface: str) -> None:
    open_peer, header, length_at = FLOODS[interface]
    agent_port = agent.m3ua_port if interface == "m3ua" else agent.port
    assert agent_port is not None
    sock, data, count = open_peer((LOOPBACK, agent_port))
    try:
        before = rss_kib(agent.process.pid)
        sent = send_until_blocked(sock, data, seconds=60)
        first, held = not_reading(agent_port, sock.getsockname()[1])
        grown = rss_kib(agent.process.pid) - before
        agent_read = sent - held.agent_rx - held.our_tx
        assert first.agent_rx > 0 and held.agent_rx >= first.agent_rx, \
            f"the agent reads a peer that never reads: {first}, then {held}"
        assert grown < 10 * 1024, f"RSS grew {grown} KiB"
        answers = read_all_answers(sock, data, sent, count, header, length_at)
    finally:
        sock.close()
    assert len(answers) == count
    request = len(data) // count
    bound = most_the_agent_may_read(held, request, len(answers[0]))
    assert agent_read <= bound, f"the agent read {agent_read} of {len(data)} octets from a peer that never reads; " \
        f"at most {bound} with {held}"
    if interface == "diameter":
        sample = decode_diameter(answers[-1])
        assert sample.value("Result-Code") == ResultCode.DIAMETER_SUCCESS
        assert {int.from_bytes(a[12:16]) for a in answers} == set(range(1, count + 1))
    else:
        assert answered_status(decode_message(answers[-1]), b"\x00\x00\x00\x07") == mapv.EquipmentStatus.WHITE_LISTED
    assert agent.stop() == 0
    log = agent.log()
    assert "not reading" in log and "Traceback" not in log


# --- item 6: who may connect, for how long, how many ------------------------------------------


def non_loopback_address() -> str:
    """An address of this host outside 127.0.0.0/8 (the one a route to TEST-NET-1 would use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            pytest.skip("this host has no address outside loopback")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("this host has no address outside loopback")
    return address


def err_code(message: Message) -> int | None:
    assert message.kind is Kind.ERR, message
    return message.error_code


def test_m3ua_peers_are_screened_by_address_point_code_and_routing_context(make_agent: MakeAgent) -> None:
    process = make_agent(m3ua=True, config="""m3ua:
  allow:
    - from: [127.0.0.1/32]
      point_codes: [2]
    - from: [127.0.0.3]
      routing_contexts: [100]
""")

    async def main() -> None:
        stranger = await RawAsp.open(process.m3ua_address, source="127.0.0.2")
        stranger.send(Message(Kind.ASPUP))
        assert await stranger.refused()
        stranger.close()

        msc = await RawAsp.open(process.m3ua_address)
        await msc.activate()
        msc.send(check_imei(b"\x00\x00\x01\x01", opc=5))
        err = await msc.read()
        assert err_code(err) == 0x0D and err.get(Tag.DIAGNOSTIC_INFORMATION) == check_imei(
            b"\x00\x00\x01\x01", opc=5).to_bytes()
        msc.send(check_imei(b"\x00\x00\x01\x02", opc=2))
        assert answered_status(await msc.read(), b"\x00\x00\x01\x02") == mapv.EquipmentStatus.WHITE_LISTED
        msc.close()

        stp = await RawAsp.open(process.m3ua_address, source="127.0.0.3")
        await stp.activate()
        stp.send(check_imei(b"\x00\x00\x01\x03", routing_context=7))
        err = await stp.read()
        assert err_code(err) == 0x19 and err.routing_contexts == (7,)
        stp.send(check_imei(b"\x00\x00\x01\x04"))
        assert err_code(await stp.read()) == 0x16
        stp.send(check_imei(b"\x00\x00\x01\x05", opc=9, routing_context=100))
        answer = await stp.read()
        assert answered_status(answer, b"\x00\x00\x01\x05") == mapv.EquipmentStatus.WHITE_LISTED
        assert answer.routing_contexts == (100,)
        stp.close()

    try:
        asyncio.run(main())
    finally:
        assert process.stop() == 0
    log = process.log()
    assert "M3UA connection from 127.0.0.2" in log and "'m3ua_refused_address': 1" in log
    assert "'bad_input.m3ua.refused_point_code': 1" in log and "'bad_input.m3ua.refused_routing_context': 2" in log
    assert "Traceback" not in log


@pytest.mark.parametrize("flag", [False, True])
def test_m3ua_admits_loopback_only_unless_told_otherwise(make_agent: MakeAgent, flag: bool) -> None:
    """The S13 default for M3UA too: with no m3ua.allow, a client from a non-loopback
    address is closed at once; --m3ua-allow CIDR admits its network (and only it)."""
    outside = non_loopback_address()
    port = free_port()
    extra = ["--m3ua-listen", f"0.0.0.0:{port}", *(["--m3ua-allow", f"{outside}/32"] if flag else [])]
    process = make_agent(*extra)

    async def main() -> None:
        admitted, refused = (outside, "127.0.0.1") if flag else ("127.0.0.1", outside)
        asp = await RawAsp.open((refused, port), source=refused)
        asp.send(Message(Kind.ASPUP))
        assert await asp.refused()
        asp.close()
        asp = await RawAsp.open((admitted, port), source=admitted)
        await asp.activate()
        asp.send(check_imei(b"\x00\x00\x02\x01"))
        assert answered_status(await asp.read(), b"\x00\x00\x02\x01") == mapv.EquipmentStatus.WHITE_LISTED
        asp.close()

    try:
        asyncio.run(main())
    finally:
        assert process.stop() == 0
    assert "'m3ua_refused_address': 1" in process.log()


def test_an_association_that_never_becomes_active_is_closed(make_agent: MakeAgent) -> None:
    process = make_agent(m3ua=True, config="m3ua:\n  activation_timeout: 1\n")

    async def main() -> None:
        silent = await RawAsp.open(process.m3ua_address)
        up_only = await RawAsp.open(process.m3ua_address)
        up_only.send(Message(Kind.ASPUP))
        await up_only.read_until(Kind.NTFY)
        active = await RawAsp.open(process.m3ua_address)
        await active.activate()
        assert await silent.refused(timeout=5) and await up_only.refused(timeout=5)
        await asyncio.sleep(1.5)  # the active one stays, quiet as it is
        active.send(check_imei(b"\x00\x00\x03\x01"))
        assert answered_status(await active.read(), b"\x00\x00\x03\x01") == mapv.EquipmentStatus.WHITE_LISTED
        for asp in (silent, up_only, active):
            asp.close()

    try:
        asyncio.run(main())
    finally:
        assert process.stop() == 0
    assert process.log().count("not ASP-ACTIVE within 1 s") == 2


def test_each_listener_keeps_at_most_its_cap_of_connections(make_agent: MakeAgent) -> None:
    process = make_agent(m3ua=True, config="diameter:\n  max_connections: 2\nm3ua:\n  max_connections: 5\n")

    async def main() -> None:
        kept = [await RawAsp.open(process.m3ua_address) for _ in range(5)]
        over = [await RawAsp.open(process.m3ua_address) for _ in range(20)]
        assert all([await asp.refused(timeout=5) for asp in over])
        for asp in kept:  # the first five are served
            await asp.activate()
        peer = await connect(MME, *process.address, timeout=5)  # S13 is not touched by M3UA's crowd
        idle = await asyncio.open_connection(*process.address)  # the second Diameter connection: the cap
        with pytest.raises(ConnectionError):
            await connect(MME, *process.address, timeout=5)
        idle[1].write_eof()
        assert await idle[0].read() == b""  # the agent closed its end: its place is free
        idle[1].close()
        second = await connect(MME, *process.address, timeout=5)  # a place is free again
        for connection in (peer, second):
            await connection.disconnect()
        for asp in [*kept, *over]:
            asp.close()

    try:
        asyncio.run(main())
    finally:
        assert process.stop() == 0
    log = process.log()
    assert "'m3ua_refused_over_cap': 20" in log
    assert log.count("connections open, the most allowed") <= 3, log  # throttled: one line every 5 s per listener
    assert "Traceback" not in log


def test_out_of_descriptors_accept_errors_are_throttled_and_s13_gets_in_once_they_are_free(
        make_agent: MakeAgent) -> None:
    """Issue 12, item 6: with its descriptors used up by idle M3UA connections (no cap
    here), the agent logs a line every few seconds, not one per accept attempt, and an S13
    peer that connected meanwhile gets its CEA once the idle connections go."""
    import resource

    process = make_agent(m3ua=True, config="m3ua:\n  max_connections: 100000\n  activation_timeout: 600\n")
    in_use = len(list(Path(f"/proc/{process.process.pid}/fd").iterdir()))
    resource.prlimit(process.process.pid, resource.RLIMIT_NOFILE, (in_use + 20, in_use + 20))

    async def main() -> None:
        idle = [await RawAsp.open(process.m3ua_address) for _ in range(60)]
        mme = asyncio.create_task(connect(MME, *process.address, timeout=20))
        await asyncio.sleep(4)  # the test: descriptors stay out for a few seconds, the log is throttled
        assert not mme.done()  # waiting in the listen queue
        for asp in idle:
            asp.close()
        peer = await mme
        assert peer.remote is not None and peer.remote.origin_host == "eir.localdomain"
        await peer.disconnect()

    try:
        asyncio.run(main())
    finally:
        assert process.stop() == 0
    log = process.log()
    assert "out of system resource" not in log
    lines = [line for line in log.splitlines() if "cannot accept a connection" in line]
    assert 1 <= len(lines) <= 3, lines
    assert "Traceback" not in log  # not even for the listener's accept retries pending at shutdown
    assert len(log) < 50_000
