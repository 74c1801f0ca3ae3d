"""End to end: a real `eir serve` on PostgreSQL whose database goes away and comes back.

The shipped profile's setting applies (``database_unreachable: {answer: cache, cache_age:
1h, otherwise: white}``): while the database cannot be read, an IMEI the agent answered
black a moment before is answered black again from its cache, a new IMEI white (never grey:
its first sight cannot be made durable), over S13 and MAP, each answer within a bound
measured at the client (0.5 s here, generously: the design bound is 100 ms; the first
answer after a hang includes the 50 ms read deadline). The agent logs one line when the
registry goes down and one when it is back, and counts them; it recovers by itself, and
the sights it made meanwhile are in the database afterwards: a new IMEI seen during the
outage is grey once the registry is back, its window counted from that sight.

Two ways to lose the database: the server stopped (``pg_ctl stop -m immediate``: refused
connections), on a cluster of the test's own, where a second agent's profile says
``answer: unable`` (S13 5012, MAP systemFailure); and a server that stops answering (a TCP
proxy between agent and server that stops forwarding, then forwards again), on the
session's server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from registry.decision import ListName
from registry.imei import luhn_check_digit
from registry.observations import Observations
from registry.profile import PROFILES
from registry.store import Registry
from simulator.agent_process import LOOPBACK, AgentProcess, run_eir
from simulator.mme import send_ecr
from simulator.msc import send_checkimei
from tests.postgres import Cluster, reset
from tests.tools import unavailable, wait_until

BOUND = 0.5  # seconds an answer may take at the client while the database is unreachable
STOLEN = "35999000031313"  # black-listed: answered black before the outage, so cached
IMSI = "436011111111111"  # a local SIM of the tj profile
NEW_S13, NEW_MAP = "35999000042424", "35999000053535"  # first seen while the database is unreachable
SHIPPED_SETTING = "database_unreachable: {answer: cache, cache_age: 1h, otherwise: white}"


def imei(key: str) -> str:
    return key + luhn_check_digit(key)


def ecr(agent: AgentProcess, key: str) -> tuple[str | None, float]:
    """The ECA's Equipment-Status (or result name) and the seconds from ECR to ECA at the client."""
    outcome = asyncio.run(send_ecr(*agent.address, imei(key), imsi=IMSI))
    return outcome.equipment_status or outcome.result_name, outcome.rtt_ms / 1000


def checkimei(agent: AgentProcess, key: str) -> tuple[str | None, float]:
    """The CheckIMEI's EquipmentStatus (or error) and the seconds from Begin to End at the client."""
    outcome = asyncio.run(send_checkimei(*agent.m3ua_address, imei(key), imsi=IMSI, version=2))
    return (outcome.status.name if outcome.status is not None else outcome.error_name), outcome.rtt_ms / 1000


Ask = Callable[[AgentProcess, str], tuple[str | None, float]]


def answered_within(ask: Ask, agent: AgentProcess, key: str, expected: str, times: int = 3) -> None:
    """``times`` answers for ``key`` are ``expected``, each within BOUND at the client."""
    for _ in range(times):
        status, seconds = ask(agent, key)
        assert status == expected, (key, status)
        assert seconds < BOUND, f"{key}: answered in {seconds:.3f} s"


def rules(agent: AgentProcess, key: str) -> list[str]:
    """The rules of the answer log's lines for ``key``, in order."""
    return [line["rule"] for line in agent.answers() if line.get("imei") == key]


def first_sight(url: str, key: str) -> datetime | None:
    with Registry(url, create=False) as registry:
        seen = [s.first_seen for s in Observations(registry).sightings(key) if s.imsi == IMSI]
    return min(seen) if seen else None


def seed(url: str) -> None:
    run_eir(url, "registry", "init")
    with Registry(url, create=False) as registry:
        registry.put_list(ListName.BLACK, [(STOLEN, "reported stolen")], "test")


def before_the_outage(agent: AgentProcess) -> None:
    """The stolen IMEI answered black from the registry: the agent's cache has it now."""
    assert ecr(agent, STOLEN)[0] == "BLACKLISTED"
    assert wait_until(lambda: rules(agent, STOLEN), 3, "the answer log line") == ["black-list"]


def during_the_outage(agent: AgentProcess) -> datetime:
    """Answers by the setting, each in time; returns when the outage's sights began."""
    began = datetime.now(UTC).replace(microsecond=0)
    answered_within(ecr, agent, STOLEN, "BLACKLISTED")  # from the cache
    answered_within(ecr, agent, NEW_S13, "WHITELISTED")  # otherwise: white, never grey
    answered_within(checkimei, agent, NEW_MAP, "WHITE_LISTED")
    answered_within(checkimei, agent, STOLEN, "BLACK_LISTED")
    wait_until(lambda: "registry unreachable" in agent.log(), 3, "the line saying the registry is unreachable")
    wait_until(lambda: len(rules(agent, NEW_MAP)) >= 3, 3, "the answer log lines")
    assert set(rules(agent, NEW_S13)) == {"database-unreachable"}
    assert set(rules(agent, NEW_MAP)) == {"database-unreachable"}
    assert rules(agent, STOLEN)[-3:] == ["database-unreachable"] * 3
    return began


def after_the_outage(agent: AgentProcess, url: str, began: datetime) -> None:
    """Recovered without a restart: the new IMEIs' sights kept during the outage are in the
    database, and the registry decides again (grey, the window counted from that sight)."""
    wait_until(lambda: "registry readable again" in agent.log(), 30, "the agent's recovery")
    assert ecr(agent, NEW_S13)[0] == "GREYLISTED"
    assert checkimei(agent, NEW_MAP)[0] == "GREY_LISTED"
    assert ecr(agent, STOLEN)[0] == "BLACKLISTED"
    wait_until(lambda: rules(agent, STOLEN)[-1] == "black-list", 3, "the registry's answer in the answer log")
    for key in (NEW_S13, NEW_MAP):
        seen = first_sight(url, key)
        assert seen is not None and began <= seen.astimezone(UTC) < datetime.now(UTC), (key, seen)
    assert agent.stop() == 0
    summary = next(line for line in agent.log().splitlines() if "registry health:" in line)
    assert "went down 1 time(s), back 1" in summary, summary
    assert "'white': 6" in summary and "'cache': 6" in summary, summary
    assert "waiting 0 pairs" in summary, summary


# -- the server stopped ----------------------------------------------------------------------


def pg_ctl(cluster: Cluster, *args: str) -> None:
    """pg_ctl on the test's cluster (as the server's user when the tests run as root)."""
    command = [cluster.pg_ctl, "-D", str(cluster.data), *args]
    if cluster.user:
        command = ["runuser", "-u", cluster.user, "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of this test's own: it is stopped and started again."""
    try:
        made = Cluster()
    except FileNotFoundError as missing:
        unavailable(str(missing))
    try:
        made.start()
        yield made
    finally:
        made.stop()


def unable_profile(folder: Path) -> Path:
    """tj, answering that the EIR cannot comply while the database is unreachable."""
    profile = folder / "unable.yaml"
    shipped = (PROFILES / "tj.yaml").read_text()
    profile.write_text(shipped.replace(SHIPPED_SETTING, "database_unreachable: {answer: unable}"))
    return profile


def test_a_stopped_database_is_answered_by_the_profile_and_recovered_from(tmp_path: Path, cluster: Cluster) -> None:
    url = cluster.url
    seed(url)
    agent = AgentProcess(tmp_path, url, m3ua=True)
    unable = AgentProcess(tmp_path, url, "--profile", str(unable_profile(tmp_path)), m3ua=True)
    try:
        before_the_outage(agent)
        pg_ctl(cluster, "-m", "immediate", "-w", "stop")
        began = during_the_outage(agent)
        # answer: unable: S13 5012 and MAP systemFailure, the MME's and MSC's own fallback applies
        answered_within(ecr, unable, STOLEN, "DIAMETER_UNABLE_TO_COMPLY")
        answered_within(checkimei, unable, NEW_MAP, "SYSTEM_FAILURE")
        wait_until(lambda: len(rules(unable, NEW_MAP)) == 3, 3, "the answer log lines")
        assert set(rules(unable, STOLEN)) == set(rules(unable, NEW_MAP)) == {"database-unreachable"}
        options = f"-p {cluster.port} -k {cluster.folder} -c listen_addresses={LOOPBACK}"
        pg_ctl(cluster, "-w", "-l", str(cluster.folder / "server.log"), "-o", options, "start")
        after_the_outage(agent, url, began)
        wait_until(lambda: "registry readable again" in unable.log(), 30, "the second agent's recovery")
        assert ecr(unable, STOLEN)[0] == "BLACKLISTED"
    finally:
        agent.stop()
        unable.stop()


# -- a server that stops answering -------------------------------------------------------------


class Blackhole:
    """A TCP proxy to ``upstream`` that can stop forwarding (``hold``) and forward again
    (``release``): while held it accepts and reads nothing, as a peer whose packets are
    dropped; what was sent meanwhile flows when released, as TCP would retransmit it."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.flowing = threading.Event()
        self.flowing.set()
        self.listener = socket.create_server((LOOPBACK, 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self) -> None:
        self.flowing.clear()

    def release(self) -> None:
        self.flowing.set()

    def _accept(self) -> None:
        while not self.closed:
            self.flowing.wait()
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.flowing.wait()
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                self.flowing.wait()
                data = source.recv(65536)
                self.flowing.wait()
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed = True
        self.flowing.set()
        self.listener.close()
        for end in self.sockets:
            end.close()


def test_a_database_that_stops_answering_is_answered_in_time_and_recovered_from(tmp_path: Path,
                                                                                 postgres_url: str) -> None:
    reset(postgres_url)
    seed(postgres_url)
    server = make_url(postgres_url)
    proxy = Blackhole((server.host or LOOPBACK, server.port or 5432))
    url = server.set(host=LOOPBACK, port=proxy.port).render_as_string(hide_password=False)
    agent = AgentProcess(tmp_path, url, m3ua=True)
    try:
        before_the_outage(agent)
        proxy.hold()
        began = during_the_outage(agent)
        proxy.release()
        after_the_outage(agent, postgres_url, began)
    finally:
        agent.stop()
        proxy.close()
