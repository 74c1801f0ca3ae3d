"""Several agents on one PostgreSQL registry (issue 16): two real `eir serve` processes on
the throwaway server the session starts (tests/postgres.py), each asked about the same
devices at the same moment over its own S13 connection.

An IMEI's first sight is one fact across agents. The race that would make two of it: agent
B's clock reads a little earlier than agent A's, and B's first sight reaches the database
after A's (or B reads A's row, later than its own now). Both agents here run on lab clocks
standing still two seconds apart, on either side of local midnight (the tj profile: UTC+5),
so the deadline each answer rests on shows in its answer-log reason as a date: "30-day
window from 2026-03-02 ends 2026-04-01" from A, "from 2026-03-01 ends 2026-03-31" from B.
Every IMEI's answers must name the same window, the sighting the database holds must be
that window's start, and the one grey notice of the pair must carry that deadline. (On
the code before this test, every run had most of the 200 IMEIs answered with two windows,
and grey notices whose deadline was not their sighting's.)

A second run lets the machines' own clocks race (microseconds apart), and checks the
database's side alone: one sighting per pair, one grey notice, its deadline from that sighting.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from diameter.transport import PeerConnection, connect
from registry.clock import parse_stamp
from registry.imei import luhn_check_digit
from simulator.agent_process import AgentProcess, run_eir
from simulator.mme import MmeIdentity, build_ecr, describe
from tests.postgres import reset, stored_rows
from tests.tools import wait_until

GRACE = timedelta(days=30)  # the tj profile's window
LOCAL = timedelta(hours=5)  # the tj profile's utc_offset
A_START = "2026-03-01T19:00:01+00:00"  # 2026-03-02 00:00:01 local
B_START = "2026-03-01T18:59:59+00:00"  # 2026-03-01 23:59:59 local: two seconds behind A, the day before
COUNT = 200  # new IMEIs, each sent to both agents at the same moment
TAC = "35888800"
REGISTERED, STOLEN, BLACK = TAC + "900001", TAC + "900002", TAC + "900003"


def imei15(key: str) -> str:
    return key + luhn_check_digit(key)


def new_pairs(serial: int) -> list[tuple[str, str]]:
    """COUNT (IMEI key, local IMSI) pairs no registry holds."""
    return [(f"{TAC}{serial:02d}{n:04d}", f"43601{serial:02d}{n:08d}") for n in range(COUNT)]


@pytest.fixture
def shared_registry(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A registry with a registered, a stolen and a black IMEI: the emptied PostgreSQL
    database, or with the parameter "sqlite" one SQLite file (as ``eir serve --workers`` shares one)."""
    if getattr(request, "param", "postgresql") == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        reset(url)
    run_eir(url, "registry", "init")
    for kind, key in (("white", REGISTERED), ("stolen", STOLEN), ("black", BLACK)):
        path = tmp_path / f"{kind}.csv"
        path.write_text(f"imei,reason\n{imei15(key)},{kind} for the test\n")
        run_eir(url, "registry", "import", kind, str(path))
    return url


@pytest.fixture
def agents(tmp_path: Path, shared_registry: str, request: pytest.FixtureRequest) -> Iterator[list[AgentProcess]]:
    """Two agents on the registry, on the lab clocks given as the test's parameter (None:
    the machine's clock)."""
    clocks: tuple[str | None, str | None] = request.param
    started: list[AgentProcess] = []
    try:
        for n, clock in enumerate(clocks):
            folder = tmp_path / f"agent-{n}"
            folder.mkdir()
            started.append(AgentProcess(folder, shared_registry, "--profile", "tj", lab_clock=clock))
        yield started
    finally:
        codes = [agent.stop() for agent in started]
    assert codes == [0] * len(started)


async def ask_both(agents: list[AgentProcess], queries: list[tuple[str, str | None]]) -> list[tuple[str, ...]]:
    """Every query written to every agent at once (one connection each, the requests of
    one query side by side); each query's Equipment-Status from each agent."""
    identity = MmeIdentity()
    connections: list[PeerConnection] = [await connect(identity.node(), *agent.address) for agent in agents]
    try:
        asked = []
        for imei, imsi in queries:
            for connection in connections:
                request = build_ecr(identity.node(), imei15(imei), imsi)
                asked.append(asyncio.ensure_future(connection.request(request, 30.0)))
        answers = await asyncio.gather(*asked)
    finally:
        for connection in connections:
            await connection.disconnect()
    statuses = [describe(answer, "", "", 0.0).equipment_status or f"result {describe(answer, '', '', 0).result_code}"
                for answer in answers]
    width = len(connections)
    return [tuple(statuses[i:i + width]) for i in range(0, len(statuses), width)]


def answer_lines(agent: AgentProcess, count: int) -> dict[str, dict[str, Any]]:
    """The agent's answer-log line for each IMEI, once ``count`` lines are flushed."""
    lines = wait_until(lambda: (found := agent.answers()) and len(found) >= count and found, 10.0,
                       f"{count} answer-log lines from {agent.address}")
    return {line["imei"]: line for line in lines}


def races(agent: AgentProcess) -> tuple[int, int]:
    """Stopped: the first sights another agent stored first, as its last log line counts them:
    found at commit (answers decided again), read ahead of its clock (decided as of them)."""
    assert agent.stop() == 0
    found = re.search(r"another agent stored first: (\d+) found at commit .*, (\d+) read", agent.log())
    return (int(found[1]), int(found[2])) if found else (0, 0)


def stored(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        return stored_rows(engine, sql)
    finally:
        engine.dispose()


def local_date(at: datetime) -> str:
    return (at + LOCAL).date().isoformat()


def assert_one_fact(url: str, pairs: list[tuple[str, str]]) -> dict[str, datetime]:
    """The database holds one sighting per pair and one grey notice whose deadline is that
    sighting's first sight plus the window; the first sight of each IMEI."""
    sightings = stored(url, "SELECT imei, imsi, first_seen FROM sighting")
    first = {imei: parse_stamp(seen) for imei, imsi, seen in sightings if (imei, imsi) in set(pairs)}
    assert len(first) == len(pairs) == len([row for row in sightings if row[0] in first])
    notices: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for imei, imsi, deadline in stored(url, "SELECT imei, imsi, deadline FROM notice WHERE event = 'grey'"):
        notices[(imei, imsi)].append(parse_stamp(deadline))
    wrong = {pair: (first[pair[0]], notices[pair]) for pair in pairs if notices[pair] != [first[pair[0]] + GRACE]}
    assert not wrong, f"{len(wrong)} pairs whose grey notice is not their first sight's: {list(wrong.items())[:3]}"
    return first


@pytest.mark.parametrize("shared_registry", ["postgresql", "sqlite"], indirect=True)
@pytest.mark.parametrize("agents", [(A_START, B_START)], indirect=True, ids=["lab-clocks-2s-apart"])
def test_two_agents_answer_a_first_sight_as_one_fact(agents: list[AgentProcess], shared_registry: str) -> None:
    pairs = new_pairs(1)
    known = [(REGISTERED, "436010000000001"), (STOLEN, "436010000000002"), (BLACK, "436010000000003")]
    statuses = asyncio.run(ask_both(agents, [*pairs, *known]))

    assert statuses[COUNT:] == [("WHITELISTED",) * 2, ("BLACKLISTED",) * 2, ("BLACKLISTED",) * 2]
    assert set(statuses[:COUNT]) == {("GREYLISTED", "GREYLISTED")}
    first = assert_one_fact(shared_registry, pairs)
    a, b = (answer_lines(agent, COUNT + len(known)) for agent in agents)
    starts = {parse_stamp(datetime.fromisoformat(start)) for start in (A_START, B_START)}
    differ = []
    for key, _ in pairs:
        assert first[key] in starts  # one of the two agents' first sights, not a mix
        window = f"window from {local_date(first[key])} ends {local_date(first[key] + GRACE)}"
        deadlines = {datetime.fromisoformat(line["deadline"]) for line in (a[key], b[key])}
        if not (window in a[key]["reason"] and window in b[key]["reason"]) or deadlines != {first[key] + GRACE}:
            differ.append((key, str(first[key]), a[key]["reason"], b[key]["reason"]))
    assert not differ, f"{len(differ)} IMEIs answered with another window than their first sight's: {differ[:3]}"
    # `eir check` reads the same fact: the deadline of the sighting the database holds.
    key, imsi = pairs[0]
    check = run_eir(shared_registry, "check", imei15(key), "--imsi", imsi, "--json", "--at", A_START, check=False)
    assert datetime.fromisoformat(json.loads(check.stdout)["deadline"]) == first[key] + GRACE
    # The race took place: answers were decided again after their commit, or as of a first sight read ahead.
    counts = [races(agent) for agent in agents]
    print("first sights stored first by the other agent (at commit, read ahead):", counts)
    assert sum(at_commit for at_commit, _ in counts) > 0


@pytest.mark.parametrize("agents", [(None, None)], indirect=True, ids=["machine-clocks"])
def test_two_agents_on_machine_clocks_store_one_first_sight(agents: list[AgentProcess],
                                                             shared_registry: str) -> None:
    pairs = new_pairs(2)
    before = datetime.now(UTC)
    statuses = asyncio.run(ask_both(agents, list(pairs)))

    assert set(statuses) == {("GREYLISTED", "GREYLISTED")}
    first = assert_one_fact(shared_registry, pairs)
    assert all(before <= seen <= datetime.now(UTC) for seen in first.values())
