"""``eir serve --workers N``: N agent processes on one machine sharing the listening ports,
so that a machine's cores answer.

The choices, as an operator meets them:

- The parent is a supervisor, not an agent: it answers nothing and holds no registry
  connection. ``eir serve`` verifies the registry once before it (the same one-line
  refusal as a single agent), then each worker is started by re-executing
  ``sys.executable -m eir ARGS --worker K:PARENT:PORTS`` with the parent's own arguments
  (a fresh interpreter: never a fork of a process that holds an event loop or a database
  connection). The hidden ``--worker`` option tells the worker its number, its parent's
  pid and the ports the parent reserved; a worker re-reads the same --config file.
- Ports (TCP only; SCTP listeners are refused with workers above 1): for each listening
  address of S13 and M3UA the parent first binds a plain socket (SO_REUSEADDR only, as a
  single ``eir serve`` does): that fails as ``eir serve`` fails when another process
  listens there (another ``eir serve --workers`` included), and for port 0 it learns the
  port the kernel chose. It then holds a socket bound with SO_REUSEPORT (without
  SO_REUSEADDR: ``_holder``) to that port, not listening (the kernel gives it no
  connection), for as long as it runs: the port stays this agent's while a worker restarts.
  Each worker binds its own SO_REUSEPORT listener to it; Linux spreads new connections
  over the listening sockets by a hash of the addresses. A connection belongs to the
  worker that accepted it for its whole life; when a worker dies, its connections go with
  it, and those still in its listener's queue are reset (peers connect again and land on
  a listening worker).
- Announcements: a worker writes its ``eir: ...`` lines to its stdout, a pipe to the
  parent, then ``READY``. The parent starts worker 1, waits for it to listen, then starts
  the others; once all listen, it writes worker 1's lines once on stderr (one
  "listening on" line per address, with the real port) and a line naming the workers' pids.
- Each worker is a whole agent: its own Recorder and GroupCommit, its own Diameter and
  M3UA connections, the same Origin-Host (one EIR node; Origin-State-Id is each worker's
  start). Answer log: worker K writes FILE with ``.wK`` before its extension
  (answers.jsonl -> answers.w1.jsonl); ``-`` stays stderr, each line written whole; ``off``
  stays off. Its log lines say ``[worker K]`` (JSON logs: a "worker" field). SQLite works
  with several writers (the writer retries on a lock); PostgreSQL is the backend meant.
- SIGTERM or SIGINT to the parent: SIGTERM to every worker, each stops as ``eir serve``
  does (DPR to each Diameter peer, ASPDN and M3UA close, observations written); the
  parent exits 0 once all exited 0, else the worst status (75 when a worker stopped with
  observations unwritten, otherwise 1). A worker still running after STOP_TIMEOUT is
  killed, with a log line.
- A worker that dies while the agent runs: a warning naming its status or signal, and it
  is started again after a back-off (0.5 s doubling to 30 s; back to 0.5 s once a worker
  served a minute). A worker that cannot start when the agent starts (its one line is
  already on stderr): the others are stopped and the parent exits with its status.
- Workers die with the parent: each asks the kernel for SIGTERM when its parent goes
  (PR_SET_PDEATHSIG), so none outlives a SIGKILLed supervisor holding a port.
- Lab mode (--lab-clock, --control) is one process by nature: refused with workers above 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.config import AgentConfig, ConfigError, Listen
from agent.server import UNWRITTEN_EXIT, listen_error

log = logging.getLogger("eir.workers")

READY = "eir-worker: ready"  # a worker's last line on its stdout once it listens and has announced
STOP_TIMEOUT = 30.0  # seconds the workers get to stop (DPR waits 3 s, then the last commits)
FIRST_DELAY, MOST_DELAY = 0.5, 30.0  # seconds before a dead worker is started again, doubling
STEADY = 60.0  # seconds a worker must serve for its back-off to start again from FIRST_DELAY
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """What the parent tells a worker on its command line (``--worker K:PARENT:PORTS``)."""

    index: int  # 1..N
    parent: int  # the supervisor's pid
    ports: tuple[int, ...]  # of config.listen then config.m3ua.listen, in order

    def text(self) -> str:
        return f"{self.index}:{self.parent}:{','.join(str(port) for port in self.ports)}"

    @classmethod
    def parse(cls, text: str) -> WorkerRole:
        parts = text.split(":")
        numbers = parts[2].split(",") if len(parts) == 3 and parts[2] else []
        if len(parts) != 3 or not all(word.isdigit() for word in [*parts[:2], *numbers]):
            raise ValueError(f"--worker {text!r} is not K:PARENT:PORT,PORT... (eir serve --workers sets it)")
        return cls(int(parts[0]), int(parts[1]), tuple(int(port) for port in numbers))


def shared_listens(config: AgentConfig) -> list[tuple[Listen, str]]:
    """The listening addresses the workers share, each with what it serves (for error lines)."""
    return [(listen, "S13 Diameter") for listen in config.listen] + [(listen, "M3UA") for listen in config.m3ua.listen]


def check_shareable(config: AgentConfig) -> None:
    """ConfigError when ``config`` cannot run as several workers."""
    if any(listen.transport != "tcp" for listen, _ in shared_listens(config)):
        raise ConfigError(f"workers: {config.workers} needs TCP listeners: SCTP ports are not shared between "
                          "processes here; run one agent per SCTP port (several agents behind the DRA or STP)")
    named = [link for link in config.m3ua.connect if link.asp_identifier is not None]
    if named:
        raise ConfigError(f"workers: {config.workers} with m3ua.connect asp_identifier {named[0].asp_identifier}: "
                          "each worker joins the gateway as an ASP of its own, and one ASP Identifier names "
                          "one ASP; leave asp_identifier out or run one worker")


def worker_answer_log(answer_log: str, index: int) -> str:
    """Worker ``index``'s answer log: FILE with ``.wK`` before its extension; - and off unchanged."""
    if answer_log in ("-", "off"):
        return answer_log
    path = Path(answer_log)
    return str(path.with_name(f"{path.stem}.w{index}{path.suffix}"))


def as_worker(config: AgentConfig, role: WorkerRole) -> None:
    """Make ``config`` worker ``role``'s: the ports its parent reserved, its own answer log."""
    listens = shared_listens(config)
    if len(role.ports) != len(listens):
        raise ConfigError(f"worker {role.index}: the parent reserved {len(role.ports)} port(s) for "
                          f"{len(listens)} listening address(es): was the configuration file changed?")
    ports = iter(role.ports)
    config.listen = [dataclasses.replace(listen, port=next(ports)) for listen in config.listen]
    config.m3ua.listen = [dataclasses.replace(listen, port=next(ports)) for listen in config.m3ua.listen]
    config.answer_log = worker_answer_log(config.answer_log, role.index)


def die_with_parent(parent: int) -> None:
    """SIGTERM to this process when ``parent`` goes (Linux); exit now if it is gone already."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        log.error("the supervisor (pid %d) is gone: this worker does not start", parent)
        sys.exit(1)


# --- the parent: ports -----------------------------------------------------------------------


def reserve_ports(config: AgentConfig) -> tuple[tuple[int, ...], list[socket.socket]]:
    """The port of each shared listening address (port 0: the kernel's choice) and the
    sockets that hold them; StartError (``cannot listen on ...``) when one is taken."""
    ports: list[int] = []
    held: list[socket.socket] = []
    try:
        for listen, what in shared_listens(config):
            try:
                port, sockets = _reserve(listen)
            except OSError as error:
                raise listen_error(listen, what, error) from None
            ports.append(port)
            held += sockets
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return tuple(ports), held


def _reserve(listen: Listen) -> tuple[int, list[socket.socket]]:
    """Every address ``listen.host`` names (as asyncio's create_server binds them), one port."""
    infos = socket.getaddrinfo(listen.host or None, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    port, held = listen.port, []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            with _socket(family, kind, proto) as probe:  # fails as a single eir serve fails
                probe.bind((address[0], port, *address[2:]))
                port = probe.getsockname()[1]
            held.append(_holder(family, kind, proto, (address[0], port, *address[2:])))
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return port, held


def _holder(family: int, kind: int, proto: int, address: tuple[object, ...]) -> socket.socket:
    """A socket bound to ``address`` with SO_REUSEPORT, not listening. Without SO_REUSEADDR
    it keeps the port from any socket that lacks SO_REUSEPORT (a single ``eir serve``, and
    the first bind of another supervisor), even while no worker listens; where connections
    of a listener without SO_REUSEPORT linger in TIME_WAIT on the port, that bind is
    refused, and the holder takes SO_REUSEADDR as well (the port is then this agent's
    while one of its workers listens)."""
    for reuse_address in (False, True):
        sock = _socket(family, kind, proto, reuse_address)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            return sock
        except OSError as error:
            sock.close()
            if reuse_address or error.errno != errno.EADDRINUSE:
                raise
    raise AssertionError("unreachable")


def _socket(family: int, kind: int, proto: int, reuse_address: bool = True) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    if reuse_address:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio's listeners
    return sock


# --- the parent: workers ---------------------------------------------------------------------


@dataclasses.dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    lines: list[str] = dataclasses.field(default_factory=list)  # its announcements, before READY
    ready: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    since: float = 0.0  # loop time it was started
    reader: asyncio.Task[None] | None = None


def how_it_ended(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return f"was killed by signal {-code} ({name})"
    return f"exited with status {code}"


def exit_status(codes: Sequence[int | None]) -> int:
    """The parent's status from the workers' last ones: 0 when all stopped cleanly (a worker
    that the passed-on SIGTERM ended before it could catch it had not answered yet)."""
    if all(code in (0, -signal.SIGTERM) for code in codes):
        return 0
    return UNWRITTEN_EXIT if UNWRITTEN_EXIT in codes else 1


class Supervisor:
    """Starts ``count`` workers with ``command(role)``, announces once, restarts the dead,
    passes SIGTERM and SIGINT on; ``run()`` returns the parent's exit status."""

    def __init__(self, count: int, command: Callable[[WorkerRole], list[str]], ports: tuple[int, ...],
                 announce: Callable[[str], None]) -> None:
        self.command = command
        self.ports = ports
        self.announce = announce
        self.workers = [Worker(index) for index in range(1, count + 1)]
        self.restarts = 0
        self._stop = asyncio.Event()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, self._stopped_by, number)
        failed = await self._start_all()
        if failed is not None and not self._stop.is_set():
            code = failed.process.returncode if failed.process else None
            await self._stop_all([])
            return code or 1
        if not self._stop.is_set():
            for line in self.workers[0].lines:
                self.announce(line)
            self.announce(f"eir: {len(self.workers)} workers share these ports (pids "
                          f"{', '.join(str(self._pid(worker)) for worker in self.workers)})")
        keeping = [asyncio.create_task(self._keep(worker)) for worker in self.workers]
        await self._stop.wait()
        return await self._stop_all(keeping)

    def _stopped_by(self, number: int) -> None:
        if not self._stop.is_set():
            log.info("%s: stopping %d workers", signal.Signals(number).name, len(self.workers))
        self._stop.set()

    @staticmethod
    def _pid(worker: Worker) -> int:
        return worker.process.pid if worker.process is not None else 0

    async def _start_all(self) -> Worker | None:
        """Worker 1, then the others; the first that exits before it listens (None: all listen)."""
        first, *rest = self.workers
        for group in ([first], rest):
            for worker in group:
                if not self._stop.is_set():
                    await self._spawn(worker)
            started = [worker for worker in group if worker.process is not None]
            await asyncio.gather(*(self._until_ready(worker) for worker in started))
            failed = next((worker for worker in started if not worker.ready.is_set()), None)
            if failed is not None or self._stop.is_set():
                return failed
        return None

    async def _spawn(self, worker: Worker) -> None:
        worker.ready = asyncio.Event()
        worker.lines = []
        role = WorkerRole(worker.index, os.getpid(), self.ports)
        process = await asyncio.create_subprocess_exec(*self.command(role), stdin=asyncio.subprocess.DEVNULL,
                                                       stdout=asyncio.subprocess.PIPE)
        worker.process = process
        worker.since = asyncio.get_running_loop().time()
        worker.reader = asyncio.create_task(self._read(worker, process))
        if self._stop.is_set():  # stopped while it was being started
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)

    async def _read(self, worker: Worker, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if line == READY:
                worker.ready.set()
            elif not worker.ready.is_set():
                worker.lines.append(line)
            else:  # nothing else is written there; should it be, it is not lost
                sys.stderr.write(line + "\n")

    async def _until_ready(self, worker: Worker) -> None:
        """Until ``worker`` listens, exits, or the parent is told to stop."""
        assert worker.process is not None
        waits = [asyncio.create_task(worker.ready.wait()), asyncio.create_task(worker.process.wait()),
                 asyncio.create_task(self._stop.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()

    async def _keep(self, worker: Worker) -> None:
        """Start ``worker`` again whenever it dies, until the parent stops."""
        loop = asyncio.get_running_loop()
        failures = 0
        while worker.process is not None:
            code = await worker.process.wait()
            if self._stop.is_set():
                return
            if loop.time() - worker.since >= STEADY:
                failures = 0
            delay = min(FIRST_DELAY * 2 ** failures, MOST_DELAY)
            failures += 1
            log.warning("worker %d (pid %d) %s; starting it again in %.1f s", worker.index, worker.process.pid,
                        how_it_ended(code), delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
                return
            await self._spawn(worker)
            self.restarts += 1
            await self._until_ready(worker)
            if worker.ready.is_set():
                log.warning("worker %d is back (pid %d) and listening", worker.index, worker.process.pid)

    async def _stop_all(self, keeping: list[asyncio.Task[None]]) -> int:
        """Pass the stop signal on, wait for every worker (killing the late); the status from
        those running when told to stop (one that died before is logged already)."""
        live = [worker.process for worker in self.workers
                if worker.process is not None and worker.process.returncode is None]
        for process in live:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        waits = [asyncio.create_task(process.wait()) for process in live]
        if waits:
            await asyncio.wait(waits, timeout=STOP_TIMEOUT)
        for worker in self.workers:
            late = worker.process
            if late is not None and late.returncode is None:
                log.error("worker %d (pid %d) did not stop within %g s: killed", worker.index, late.pid, STOP_TIMEOUT)
                late.kill()
                await late.wait()
        if keeping:
            await asyncio.wait(keeping, timeout=1.0)
        readers = [worker.reader for worker in self.workers if worker.reader is not None]
        if readers:
            await asyncio.wait(readers, timeout=1.0)
        for process in live:
            if process.returncode not in (0, -signal.SIGTERM):
                log.error("worker pid %d %s at stop", process.pid, how_it_ended(process.returncode or 0))
        return exit_status([process.returncode for process in live])


def worker_command(argv: Sequence[str]) -> Callable[[WorkerRole], list[str]]:
    """The command line of a worker: this ``eir`` with ``argv`` (the parent's arguments)."""
    def command(role: WorkerRole) -> list[str]:
        return [sys.executable, "-m", "eir", *argv, "--worker", role.text()]
    return command


def supervise(config: AgentConfig, argv: Sequence[str], announce: Callable[[str], None]) -> int:
    """Reserve the ports, run ``config.workers`` workers until SIGTERM or SIGINT; the exit
    status. StartError (one line) when a port cannot be had."""
    ports, held = reserve_ports(config)
    try:
        return asyncio.run(Supervisor(config.workers, worker_command(argv), ports, announce).run())
    finally:
        for sock in held:
            sock.close()

