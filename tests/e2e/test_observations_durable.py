"""End to end: grace clocks survive a crash. A real `eir serve` process answers a stream of
unregistered IMEIs (each answer starts a grace clock), is killed with SIGKILL while
requests are in flight, and every clock whose answer reached the MME is in the registry
afterwards, unchanged when the agent comes back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from diameter.capabilities import LocalNode
from diameter.constants import EquipmentStatus
from diameter.transport import connect
from registry.imei import luhn_check_digit
from registry.observations import Observations
from registry.profile import load_profile
from registry.store import Registry
from simulator.agent_process import AgentProcess, run_eir
from simulator.mme import build_ecr

MME = LocalNode("mme01.localdomain", "localdomain", product_name="durability-mme")
INFLIGHT = 32
KILL_AFTER = 600  # answers received before the agent is killed
TJ = load_profile("tj")  # the agent's default profile
BOTH_DATABASES = True  # tests/e2e/conftest.py: the module runs on SQLite and on PostgreSQL


def imeis(count: int) -> list[str]:
    return [f"35999{n:09d}" for n in range(count)]


def imsi_for(index: int) -> str:
    return f"43601{index:010d}"


async def answered_until_killed(agent: AgentProcess, keys: list[str]) -> dict[str, datetime]:
    """Send ECRs with INFLIGHT in flight; after KILL_AFTER answers SIGKILL the agent while
    requests are outstanding. Returns the IMEIs answered grey, with when the answer came."""
    connection = await connect(MME, *agent.address)
    answered: dict[str, datetime] = {}
    queue = iter(enumerate(keys))

    async def worker() -> None:
        for index, key in queue:
            request = build_ecr(MME, key, imsi_for(index), session=f"kill;{index}")
            try:
                answer = await connection.request(request, timeout=5)
            except (ConnectionError, TimeoutError):
                return
            if answer.value("Equipment-Status") == EquipmentStatus.GREYLISTED:
                answered[key] = datetime.now(UTC)
            if len(answered) == KILL_AFTER:
                agent.process.kill()

    await asyncio.gather(*(worker() for _ in range(INFLIGHT)))
    return answered


def test_no_answered_grace_clock_is_lost_when_the_agent_is_killed(tmp_path: Path, backend: str,
                                                                  registry_url_for: Callable[[str, Path], str]) -> None:
    url = registry_url_for(backend, tmp_path)
    run_eir(url, "registry", "init")
    keys = imeis(5000)
    agent = AgentProcess(tmp_path, url, answer_log=False)
    answered = asyncio.run(answered_until_killed(agent, keys))
    agent.process.wait(10)
    assert agent.process.returncode == -9  # killed, not stopped
    assert KILL_AFTER <= len(answered) < len(keys)  # killed with work outstanding
    clocks = first_sights(url, answered)
    assert [key for key in answered if key not in clocks] == []  # no answered clock lost
    assert all(clocks[key] <= at for key, at in answered.items())  # durable before the answer left

    # The agent comes back: the clocks are the same ones, neither lost nor restarted.
    sample = sorted(answered)[:5]
    restarted = AgentProcess(tmp_path, url)
    try:
        asyncio.run(ask_again(restarted, [(key, keys.index(key)) for key in sample]))
        for key in sample:
            logged = restarted.answer_for(f"{MME.origin_host};again;{key}")
            assert logged is not None and logged["rule"] == "grace"
            assert f"window from {TJ.local_date(clocks[key])}" in logged["reason"]
    finally:
        assert restarted.stop() == 0
    assert first_sights(url, answered) == clocks
    check = run_eir(url, "check", sample[0] + luhn_check_digit(sample[0]), "--imsi",
                    imsi_for(keys.index(sample[0])), "--json", check=False)
    deadline = datetime.fromisoformat(json.loads(check.stdout)["deadline"])
    assert abs(deadline - (clocks[sample[0]] + timedelta(days=30))) < timedelta(seconds=1)


def first_sights(url: str, keys: dict[str, datetime]) -> dict[str, datetime]:
    with Registry(url) as registry:
        observations = Observations(registry)
        found = {key: [s.first_seen for s in observations.sightings(key)] for key in keys}
    return {key: min(times) for key, times in found.items() if times}


async def ask_again(agent: AgentProcess, keys: list[tuple[str, int]]) -> None:
    connection = await connect(MME, *agent.address)
    try:
        for key, index in keys:
            request = build_ecr(MME, key, imsi_for(index), session=f"again;{key}")
            answer = await connection.request(request, timeout=5)
            assert answer.value("Equipment-Status") == EquipmentStatus.GREYLISTED
    finally:
        await connection.disconnect()


def test_the_kg_profile_cuts_off_at_once_and_queues_the_black_notice(
        tmp_path: Path, backend: str, registry_url_for: Callable[[str, Path], str]) -> None:
    """Kyrgyzstan since 28 August 2024: no window. A real agent under `--profile kg` answers
    an unregistered handset with a Kyrgyz SIM black at its first query, and the SMS that
    tells its owner is in the outbox that `eir notices export` writes."""
    url = registry_url_for(backend, tmp_path)
    run_eir(url, "registry", "init")
    agent = AgentProcess(tmp_path, url, "--profile", "kg")
    key, imsi = "35999000004242", "437091234567890"
    try:
        async def ask() -> int:
            connection = await connect(MME, *agent.address)
            try:
                answer = await connection.request(build_ecr(MME, key, imsi, session="kg;1"), timeout=5)
                return int(answer.value("Equipment-Status"))
            finally:
                await connection.disconnect()
        assert asyncio.run(ask()) == EquipmentStatus.BLACKLISTED
        logged = agent.answer_for(f"{MME.origin_host};kg;1")
        assert logged is not None and logged["rule"] == "no-grace"
    finally:
        assert agent.stop() == 0
    out = tmp_path / "notices.csv"
    run_eir(url, "notices", "export", "--out", str(out))
    rows = out.read_text().splitlines()
    assert rows[0] == "imei,imsi,msisdn,event,deadline,reason,created_at"
    assert len(rows) == 2 and rows[1].startswith(f"{key + luhn_check_digit(key)},{imsi},,black,")
    run_eir(url, "notices", "export", "--out", str(out))  # exported once: the next export is empty
    assert out.read_text().splitlines()[1:] == []
