"""End to end, ``eir serve --workers 2``: a supervisor and two real agent processes sharing
the S13 and M3UA ports. Which worker holds which connection is read from the kernel
(/proc: each worker's socket descriptors against the TCP table), not from the agent; each
worker's own answer log says what it answered."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from diameter.constants import DisconnectCause
from diameter.peer import PeerState
from diameter.transport import PeerConnection, connect
from netio import transports
from sigtran import map as mapv
from sigtran import tcap
from sigtran.asp import AspClient, DataReceived
from sigtran.m3ua_streams import M3UA
from sigtran.sccp import Udt
from sigtran.sccp import decode_message as decode_sccp
from simulator.agent_process import EIR, LOOPBACK, AgentProcess, free_port, run_eir
from simulator.demo_registry import WHITE, build_demo_registry, imei15
from simulator.mme import MmeIdentity, build_ecr
from simulator.msc import (
    MscIdentity,
    MscLink,
    asp_handshake,
    check_imei_begin,
    check_imei_udt,
    describe,
    map_imei,
    request_data,
    send_checkimei,
)
from tests.tools import wait_until

CONNECTIONS = 24  # over 2 workers, all on one: a chance of 2 in 2**24
ESTABLISHED, LISTEN = "01", "0A"
ANNOUNCED = re.compile(r"^eir: (M3UA |)listening on 127\.0\.0\.1:(\d+)", re.MULTILINE)
MME = MmeIdentity().node()


# --- what the kernel says ---------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return sorted(found)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def tcp_sockets(pid: int, port: int, state: str) -> list[int]:
    """The remote ports of ``pid``'s TCP sockets of local port ``port`` in ``state`` (IPv4)."""
    mine = _socket_inodes(pid)
    remote = []
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, peer, st, inode = fields[1], fields[2], fields[3], fields[9]
        if st == state and inode in mine and int(local.split(":")[1], 16) == port:
            remote.append(int(peer.split(":")[1], 16))
    return remote


def gone(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return True
    return fields[0] == "Z"


def two_workers(agent: AgentProcess, without: int | None = None) -> list[int]:
    """The supervisor's two workers (none of them ``without``), once it has two."""
    def look() -> list[int] | None:
        found = children(agent.process.pid)
        return found if len(found) == 2 and without not in found else None
    return wait_until(look, 30, "two workers")


def answers(agent: AgentProcess, index: int) -> list[dict[str, object]]:
    path = agent.answer_log.with_name(f"{agent.answer_log.stem}.w{index}{agent.answer_log.suffix}")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- Diameter ---------------------------------------------------------------------------------


async def open_and_ask(agent: AgentProcess, count: int) -> tuple[list[PeerConnection], list[int]]:
    """``count`` connections, one ECR answered on each; their local ports."""
    connections = await asyncio.gather(*(connect(MME, *agent.address) for _ in range(count)))
    answered = await asyncio.gather(*(c.request(build_ecr(MME, WHITE), timeout=10) for c in connections))
    assert all(a.value("Result-Code") == 2001 for a in answered)
    ports = [c.transport.get_extra_info("sockname")[1] for c in connections if c.transport is not None]
    assert len(ports) == count
    return list(connections), ports


def holders(workers: list[int], port: int, clients: list[int]) -> dict[int, list[int]]:
    """Worker pid -> the client ports among ``clients`` whose connection it holds."""
    return {pid: sorted(set(tcp_sockets(pid, port, ESTABLISHED)) & set(clients)) for pid in workers}


@pytest.fixture
def demo(tmp_path: Path) -> str:
    return build_demo_registry(tmp_path)


@pytest.fixture
def white_registry(tmp_path: Path, registry_url: str) -> str:
    """A registry of each kind (SQLite, PostgreSQL) with WHITE on the white list, made with the CLI."""
    run_eir(registry_url, "registry", "init")
    white = tmp_path / "white.csv"
    white.write_text(f"imei,reason\n{imei15(WHITE)},customs cleared\n")
    run_eir(registry_url, "registry", "import", "white", str(white))
    return registry_url


def test_two_workers_share_the_port_and_all_stop_with_dpr(tmp_path: Path, white_registry: str) -> None:
    agent = AgentProcess(tmp_path, white_registry, "--workers", "2")
    try:
        workers = two_workers(agent)
        assert agent.log().count("eir: listening on") == 1  # once, from the supervisor
        assert f"2 workers share these ports (pids {workers[0]}, {workers[1]})" in agent.log()
        for pid in workers:  # each worker listens on the one port
            assert tcp_sockets(pid, agent.port, LISTEN), pid

        async def main() -> tuple[list[PeerConnection], dict[int, list[int]]]:
            connections, ports = await open_and_ask(agent, CONNECTIONS)
            held = holders(workers, agent.port, ports)
            await asyncio.to_thread(agent.stop)
            await asyncio.wait_for(asyncio.gather(*(c.closed for c in connections)), 10)
            return connections, held

        connections, held = asyncio.run(main())
    finally:
        code = agent.stop()
    assert all(held.values()), f"a worker accepted no connection: {held}"
    assert sum(len(ports) for ports in held.values()) == CONNECTIONS
    assert code == 0, agent.log()
    assert all(c.peer.state is PeerState.CLOSED for c in connections)
    assert [c.disconnect_cause for c in connections] == [DisconnectCause.REBOOTING] * CONNECTIONS
    assert all(gone(pid) for pid in workers)
    counts = [len(answers(agent, index)) for index in (1, 2)]
    assert sorted(counts) == sorted(len(ports) for ports in held.values()), counts


def test_a_killed_worker_is_started_again_and_the_port_keeps_answering(tmp_path: Path, demo: str) -> None:
    agent = AgentProcess(tmp_path, demo, "--workers", "2")
    try:
        killed, kept = two_workers(agent)
        os.kill(killed, signal.SIGKILL)
        wait_until(lambda: gone(killed), 10, "the killed worker gone")  # its listener with it
        assert asyncio.run(open_and_ask(agent, 4))  # the other worker answers meanwhile
        workers = two_workers(agent, without=killed)
        (new,) = set(workers) - {kept}
        wait_until(lambda: "is back" in agent.log(), 30, "the restarted worker listening")
        assert f"(pid {killed}) was killed by signal 9 (SIGKILL); starting it again in 0.5 s" in agent.log()

        async def main() -> dict[int, list[int]]:
            connections, ports = await open_and_ask(agent, CONNECTIONS)
            held = holders(workers, agent.port, ports)
            for connection in connections:
                await connection.disconnect(DisconnectCause.DO_NOT_WANT_TO_TALK_TO_YOU)
            return held

        held = asyncio.run(main())
        assert held[new], f"the restarted worker accepted nothing: {held}"
    finally:
        assert agent.stop() == 0, agent.log()


def test_the_workers_stop_when_the_supervisor_is_killed(tmp_path: Path, demo: str) -> None:
    agent = AgentProcess(tmp_path, demo, "--workers", "2")
    try:
        workers = two_workers(agent)
        agent.process.kill()
        agent.process.wait()
        wait_until(lambda: all(gone(pid) for pid in workers), 20, "both workers gone")
    finally:
        agent.stop()
    with socket.socket() as again:  # nothing holds the port any more
        again.bind(agent.address)


def test_port_0_is_one_port_for_every_worker_announced_once(tmp_path: Path, demo: str) -> None:
    log = tmp_path / "agent.log"
    with log.open("w") as stderr:
        process = subprocess.Popen([*EIR, "--registry", demo, "serve", "--workers", "2", "--answer-log", "off",
                                    "--listen", f"{LOOPBACK}:0", "--m3ua-listen", f"{LOOPBACK}:0"],
                                   stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            wait_until(lambda: "workers share these ports" in log.read_text() or process.poll() is not None, 60,
                       "the announcement")
            found = [(what, int(port)) for what, port in ANNOUNCED.findall(log.read_text())]
            workers = children(process.pid)
            listening = {port: [pid for pid in workers if tcp_sockets(pid, port, LISTEN)] for _, port in found}
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(30)
    assert [what for what, _ in found] == ["", "M3UA "], log.read_text()
    assert all(port for _, port in found)
    assert listening == {port: workers for _, port in found} and len(workers) == 2, listening
    assert code == 0, log.read_text()


# --- MAP over M3UA ----------------------------------------------------------------------------


def test_asp_connections_land_on_both_workers_and_are_answered(tmp_path: Path, demo: str) -> None:
    agent = AgentProcess(tmp_path, demo, "--workers", "2", m3ua=True)
    try:
        two_workers(agent)

        async def main() -> list[mapv.EquipmentStatus | None]:
            return [(await send_checkimei(*agent.m3ua_address, WHITE)).status for _ in range(16)]

        assert asyncio.run(main()) == [mapv.EquipmentStatus.WHITE_LISTED] * 16
    finally:
        assert agent.stop() == 0, agent.log()
    by_worker = [[line for line in answers(agent, index) if line["interface"] == "map"] for index in (1, 2)]
    assert all(by_worker), [len(lines) for lines in by_worker]
    assert sum(len(lines) for lines in by_worker) == 16


async def asp_on_link(agent: AgentProcess) -> tuple[MscLink, int]:
    """An MSC's association, ASP-ACTIVE; its local port."""
    identity = MscIdentity()
    _, link = await transports.connect(lambda: MscLink(AspClient(identity.settings())), *agent.m3ua_address, "tcp",
                                       M3UA)
    await asp_handshake(link, "eir", 10)
    assert link.transport is not None
    return link, link.transport.get_extra_info("sockname")[1]


async def check_imei(link: MscLink, otid: bytes) -> mapv.EquipmentStatus | None:
    """One CheckIMEI on ``link``: the status of the TCAP answer to ``otid``."""
    identity = MscIdentity()
    digits = map_imei(WHITE)
    link.send(request_data(identity, check_imei_udt(identity, check_imei_begin(otid, digits, 3)), 0),
              identity.routing_context)
    while True:
        event = await link.next_event(link.loop.time() + 10)
        assert event is not False and event is not None, "no answer"
        if isinstance(event, DataReceived):
            answer = decode_sccp(event.data.user_data)
            assert isinstance(answer, Udt)
            message = tcap.decode(answer.data)
            assert message.dtid == otid
            return describe(message, peer="eir", imei=WHITE, imei_sent=digits, version=3).status


async def closed_by_agent(link: MscLink, timeout: float = 10) -> bool:
    """Whether the agent closes ``link`` within ``timeout`` (whatever it sends first)."""
    deadline = link.loop.time() + timeout
    while (event := await link.next_event(deadline)) is not None:
        if event is False:
            return False
    return True


def test_held_associations_on_both_workers_are_answered_and_closed_at_stop(tmp_path: Path, demo: str) -> None:
    agent = AgentProcess(tmp_path, demo, "--workers", "2", m3ua=True)
    try:
        workers = two_workers(agent)
        port = agent.m3ua_address[1]

        async def main() -> tuple[list[int], list[mapv.EquipmentStatus | None], list[bool]]:
            links: dict[int, tuple[MscLink, int]] = {}  # worker pid -> the first association it holds
            for _ in range(CONNECTIONS):
                link, local = await asp_on_link(agent)
                (holder,) = [pid for pid in workers if local in tcp_sockets(pid, port, ESTABLISHED)]
                links.setdefault(holder, (link, local))
                if len(links) == 2:
                    break
            statuses = [await check_imei(link, bytes([1, 2, 3, n])) for n, (link, _) in enumerate(links.values())]
            await asyncio.to_thread(agent.stop)
            return sorted(links), statuses, [await closed_by_agent(link) for link, _ in links.values()]

        holders, statuses, closed = asyncio.run(main())
    finally:
        code = agent.stop()
    assert holders == sorted(workers)  # one association on each worker
    assert statuses == [mapv.EquipmentStatus.WHITE_LISTED] * 2
    assert closed == [True, True]  # each worker closed its association when told to stop
    assert code == 0, agent.log()


# --- refusals ---------------------------------------------------------------------------------


def refused(registry: str, *args: str) -> tuple[int, str]:
    done = run_eir(registry, "serve", "--answer-log", "off", *args, check=False, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return done.returncode, lines[0]


def test_a_taken_port_is_refused_in_one_line(demo: str) -> None:
    for reuse_port in (False, True):  # True: as another eir serve --workers holds it
        with socket.socket() as taken:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(reuse_port))
            taken.bind((LOOPBACK, 0))
            taken.listen()
            port = taken.getsockname()[1]
            assert refused(demo, "--workers", "2", "--listen", f"{LOOPBACK}:{port}") == (
                1, f"eir serve: cannot listen on {LOOPBACK}:{port} (S13 Diameter, tcp): Address already in use")


def test_a_worker_that_cannot_start_stops_the_agent_with_its_line(tmp_path: Path, demo: str) -> None:
    missing = tmp_path / "no-such-folder" / "answers.jsonl"
    done = run_eir(demo, "serve", "--workers", "2", "--listen", f"{LOOPBACK}:{free_port()}", "--answer-log",
                   str(missing), check=False, timeout=60)
    assert (done.returncode, done.stderr) == (
        1, f"eir serve: cannot open the answer log {missing.with_name('answers.w1.jsonl')}: No such file or "
           "directory\n")


def test_what_workers_cannot_do_is_refused(tmp_path: Path, demo: str) -> None:
    listen = f"{LOOPBACK}:{free_port()}"
    code, line = refused(demo, "--workers", "2", "--listen", listen, "--lab-clock", "2025-01-01")
    assert (code, line) == (2, "eir serve: --workers 2 cannot run in lab mode (--lab-clock, --control): one clock, "
                               "one process")
    code, line = refused(demo, "--workers", "2", "--listen", listen, "--transport", "sctp")
    assert code == 1 and line.startswith("eir serve: workers: 2 needs TCP listeners"), line
    config = tmp_path / "agent.yaml"
    config.write_text("workers: 0\n")
    assert refused(demo, "--config", str(config)) == (
        1, f"eir serve: {config}: workers is a whole number of agent processes, 1 to 64")
    done = run_eir(demo, "serve", "--workers", "65", check=False, timeout=60)  # click's usage error
    assert done.returncode == 2 and "Invalid value for '--workers': 65 is not in the range 1<=x<=64" in done.stderr
