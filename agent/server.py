"""``eir serve``: one process answering S13 (Diameter) and MAP CheckIMEI (M3UA) from the
registry, through one EquipmentCheck service, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from agent.admission import Admission
from agent.answer_log import AnswerLog
from agent.config import AgentConfig, Listen
from agent.dbhealth import DatabaseHealth
from agent.durable import GroupCommit
from agent.map import MapAnswerer
from agent.map_server import M3uaService
from agent.s13 import S13Answerer
from agent.service import EquipmentCheck
from diameter.capabilities import LocalNode, PeerInfo
from diameter.constants import DisconnectCause
from diameter.peer import PeerSettings
from diameter.transport import DiameterServer, start_server
from registry.clock import SYSTEM_CLOCK, Clock, LabClock
from registry.observations import Recorder
from registry.profile import load_profile
from registry.schema import sqlite_file
from registry.store import Registry

if TYPE_CHECKING:
    from agent.lab import LabEndpoint

log = logging.getLogger("eir.agent")
UNWRITTEN_EXIT = 75  # EX_TEMPFAIL: stopped with observations the registry would not take
FLUSH_INTERVAL = 0.2  # seconds between answer log flushes
OBSERVATIONS_INTERVAL = 0.2  # seconds between writes of the sights kept in memory (small batches, short stalls)


def firmware_revision() -> int:
    """Our version as Firmware-Revision (RFC 6733 5.3.4): 1.2.3 -> 10203."""
    try:
        parts = [int(p) for p in version("eir").split(".")[:3] if p.isdigit()]
    except PackageNotFoundError:
        return 0
    parts += [0] * (3 - len(parts))
    return parts[0] * 10000 + parts[1] * 100 + parts[2]


def local_node(config: AgentConfig, clock: Clock = SYSTEM_CLOCK) -> LocalNode:
    """Who we are to Diameter peers; Origin-State-Id is the start time (RFC 6733 8.16)."""
    addresses = []
    for listen in config.listen:
        try:
            address = ipaddress.ip_address(listen.host)
        except ValueError:
            continue
        if not address.is_unspecified and address not in addresses:
            addresses.append(address)
    return LocalNode(config.origin_host, config.origin_realm,
                     host_ip_addresses=tuple(addresses) or (ipaddress.IPv4Address("127.0.0.1"),),
                     product_name="eir", firmware_revision=firmware_revision(),
                     origin_state_id=int(clock.now().timestamp()))


def open_answer_log(config: AgentConfig, clock: Clock = SYSTEM_CLOCK) -> tuple[AnswerLog | None, TextIO | None]:
    """The answer log and the file to close at exit (None for stderr or off)."""
    if config.answer_log == "off":
        return None, None
    if config.answer_log == "-":
        return AnswerLog(sys.stderr, config.mask_imsi, clock), None
    stream = open(config.answer_log, "a", buffering=1 << 16)  # noqa: SIM115 - closed in serve()
    return AnswerLog(stream, config.mask_imsi, clock), stream


def peer_settings(config: AgentConfig) -> Callable[[], PeerSettings]:
    def admits(info: PeerInfo, address: Any) -> bool | str:
        """True, or why not: the Peer answers CEA 3010 and its BadMessage carries the reason
        to the rate-limited bad-input line and the answer log (S13Answerer.bad_message)."""
        host = address[0] if isinstance(address, tuple) and address else None
        why = config.refusal(info.origin_host, host)
        return True if why is None else f"connecting from {host}, {why}"

    def make() -> PeerSettings:
        return PeerSettings(tw_init=config.watchdog_tw, max_message_length=config.max_message_length,
                            accept_peer=admits)
    return make


class StartError(Exception):
    """The agent cannot start: a listener it cannot open, an answer log it cannot write.
    The message names which, for one line on stderr."""


def _where(listen: Listen) -> str:
    host = f"[{listen.host}]" if ":" in listen.host else listen.host
    return f"{host}:{listen.port}"


def listen_error(listen: Listen, what: str, error: OSError) -> StartError:
    """``cannot listen on HOST:PORT (WHAT, TRANSPORT): why`` (asyncio words a bind error as a
    sentence of its own: the errno's text is shorter)."""
    why = os.strerror(error.errno) if error.errno and error.errno > 0 else error.strerror or str(error)
    return StartError(f"cannot listen on {_where(listen)} ({what}, {listen.transport}): {why}")


async def serve(config: AgentConfig, announce: Callable[[str], None], registry: Registry | None = None,
                clock: Clock | None = None, control: Path | None = None, *, share_ports: bool = False,
                ready: Callable[[], None] | None = None) -> int:
    """Run until SIGTERM or SIGINT; then DPR to every peer and return 0. ``registry``: one
    opened (and verified) by the caller, closed here; None opens ``config.registry``, which
    must exist at this eir's schema version and be writable (registry/schema.py). A
    listener or answer log that cannot be opened is a StartError naming it. ``clock``: the
    one clock of every part (the registry's when not given; the system's without either).
    ``control``: lab mode (``clock`` must be a LabClock): the control socket at this path
    (agent/lab.py), announced before the listening lines. ``share_ports``: one worker of
    ``eir serve --workers`` (agent/workers.py): every listener binds with SO_REUSEPORT.
    ``ready``: called once every listener is open and announced."""
    faulthandler.enable()  # a fatal signal (SIGBUS from a mapped -shm file, SIGSEGV) leaves its line in the log
    profile = load_profile(config.profile)
    if clock is None:
        clock = SYSTEM_CLOCK if registry is None else registry.clock
    if registry is None:
        registry = Registry(config.registry, create=False, writable=True, clock=clock)
    try:
        answer_log, owned = open_answer_log(config, clock)
    except OSError as error:
        registry.close()
        raise StartError(f"cannot open the answer log {config.answer_log}: {error.strerror or error}") from None
    recorder = Recorder(registry, clock=clock)
    health = DatabaseHealth(registry, profile.database_unreachable)  # what to answer when it cannot be read
    commits = GroupCommit(recorder, config.limits.commit_timeout, health=health)
    admission = Admission(config.limits.in_progress_per_peer, config.limits.in_progress)
    node = local_node(config, clock)
    service = EquipmentCheck(registry, profile, recorder, clock=clock, health=health)
    answerer = S13Answerer(service, node, answer_log, commits=commits)
    map_answerer = MapAnswerer(service, answer_log, commits=commits)
    server = DiameterServer(node)
    server.on_bad = answerer.bad_message  # one rate-limited reporter; answered errors in the answer log
    m3ua = M3uaService(config.m3ua, map_answerer, admission, config.max_message_length, reuse_port=share_ports)
    lab = None if control is None else lab_endpoint(control, clock, registry, recorder)
    written = False
    try:
        for listen in config.listen:
            try:
                await start_server(node, answerer, listen.host, listen.port, transport=listen.transport,
                                   settings=peer_settings(config), server=server, load=admission,
                                   max_connections=config.max_connections, reuse_port=share_ports)
            except OSError as error:
                raise listen_error(listen, "S13 Diameter", error) from None
        try:
            await m3ua.start()
        except OSError as error:  # M3uaService.start opens config.m3ua.listen in order: the next one failed
            failed = len(m3ua.servers)
            if failed >= len(config.m3ua.listen):
                raise
            raise listen_error(config.m3ua.listen[failed], "M3UA", error) from None
        if lab is not None:
            await start_lab(lab, announce)
        for host, port in server.addresses:
            announce(f"eir: listening on {host}:{port}, origin {node.origin_host} realm {node.origin_realm}, "
                     f"registry {config.registry}, profile {profile.name} ({profile.country})")
        for line in _m3ua_lines(config, m3ua):
            announce(line)
        if ready is not None:
            ready()
        await _run_until_signal(answer_log, commits, registry)
        if lab is not None:
            await lab.close()  # no more writes from the lab once stopping
        log.info("stopping: DPR to %d peer(s), %d M3UA connection(s) closed", len(server.connections),
                 len(m3ua.connections))
        await asyncio.gather(server.close(DisconnectCause.REBOOTING), m3ua.close())
    finally:
        if lab is not None:
            await lab.close()
        if answer_log is not None:
            answer_log.flush()
        if owned is not None:
            owned.close()
        health.close()
        written = await commits.close()
        registry.close()
    log.info("S13 answers %s; Diameter connections %s; MAP answers %s; M3UA/SCCP %s; observation commits %d, "
             "failed %d; answers refused as unrecorded %d, as too busy %d (peak in progress %d, "
             "peak waiting for a commit %d)",
             dict(answerer.counters), dict(server.counters),
             dict(map_answerer.counters), dict(m3ua.counters + m3ua.router.counters), recorder.commits,
             recorder.failures, commits.unrecorded, admission.refused, admission.peak, commits.waiting_peak)
    log.info("registry health: %s", health.summary())
    if not written:
        log.error("%d sights, notices or automatic entries were not written at exit: the registry refused them "
                  "(no answer rested on them: those waited and were refused)", recorder.unwritten)
        return UNWRITTEN_EXIT
    return 0


def lab_endpoint(control: Path, clock: Clock, registry: Registry, recorder: Recorder) -> LabEndpoint:
    """The control endpoint of lab mode; the clock must be the lab's. (agent/lab.py is
    imported only in lab mode: an agent in service does not load it.)"""
    from agent.lab import LabEndpoint

    if not isinstance(clock, LabClock):
        raise TypeError(f"a control endpoint moves a LabClock, not a {type(clock).__name__}")
    return LabEndpoint(control, clock, registry, recorder)


async def start_lab(lab: LabEndpoint, announce: Callable[[str], None]) -> None:
    """Open the control socket and say where, with the lab time; a StartError when it cannot."""
    from agent.lab import ControlStartError, iso

    try:
        await lab.start()
    except ControlStartError as error:
        raise StartError(f"cannot open the control socket {lab.path}: {error}") from None
    announce(f"eir: lab clock at {iso(lab.clock.now())}; control socket {lab.path}")


def _m3ua_lines(config: AgentConfig, m3ua: M3uaService) -> list[str]:
    settings = config.m3ua
    if not settings.enabled:
        return ["eir: MAP over M3UA is off (m3ua.listen / --m3ua-listen, or m3ua.connect)"]
    point_code = "any" if settings.point_code is None else str(settings.point_code)
    title = settings.global_title or "as called"
    lines = [f"eir: M3UA listening on {host}:{port} for MAP CheckIMEI, point code {point_code}, GT {title}"
             for host, port in m3ua.addresses]
    lines += [f"eir: M3UA joining gateway {link.listen} as an ASP" for link in settings.connect]
    return lines


class RegistryFileWatch:
    """Notices a SQLite registry file deleted or replaced under the running agent. SQLite
    goes on reading and writing the file it opened, so answers go on; but a deleted file's
    sightings and notices are gone at the next start (which then refuses to run), and a
    replaced one is not what imports write to: say so loudly, at most once a minute, and
    count it. Other databases have no file to watch."""

    LOG_EVERY = 60.0

    def __init__(self, registry: Registry) -> None:
        self.path = sqlite_file(registry.url)
        self.identity = self._identity()
        self.events = 0  # times the file was found deleted or replaced
        self._problem: str | None = None
        self._quiet_until = 0.0

    def _identity(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        return found.st_dev, found.st_ino

    def check(self, now: float) -> str | None:
        """The problem with the file now (None: it is the one the agent opened)."""
        if self.path is None:
            return None
        current = self._identity()
        problem = None if current == self.identity else "deleted" if current is None else "replaced by another file"
        if problem != self._problem:
            if problem is None:
                log.warning("registry file %s is back: the agent's own file again", self.path)
            else:
                self.events += 1
                self._quiet_until = 0.0
            self._problem = problem
        if problem is not None and now >= self._quiet_until:
            log.error("registry file %s was %s while the agent runs: answers go on from the file it opened, but "
                      "what it records is lost at the next start; restore it, or restart on the right --registry",
                      self.path, problem)
            self._quiet_until = now + self.LOG_EVERY
        return problem


async def _run_until_signal(answer_log: AnswerLog | None, commits: GroupCommit, registry: Registry) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    watch = RegistryFileWatch(registry)
    flushed = loop.time()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), FLUSH_INTERVAL)
        if answer_log is not None:
            answer_log.flush()
        if loop.time() - flushed >= OBSERVATIONS_INTERVAL:
            commits.flush()  # off the loop, with the durable rows
            if registry.changed():  # an import may have changed the TAC catalogue
                commits.recorder.forget_types()
            watch.check(loop.time())
            flushed = loop.time()
    if watch.events:
        log.error("registry file %s was deleted or replaced %d time(s) while the agent ran", watch.path,
                  watch.events)
