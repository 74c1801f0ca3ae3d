"""End to end on PostgreSQL: a real `eir serve --registry postgresql+psycopg://...` process
on the throwaway server the session starts (tests/postgres.py, fsync on). It answers a
fresh IMEI over S13 and another over MAP grey (grace), both first sights are in the
database once the answers left, and after SIGKILL and a restart the IMEI is still grey
with the same deadline: the first sight the answer rested on was durable."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

from registry.imei import luhn_check_digit
from registry.observations import Observations
from registry.store import Registry
from simulator.agent_process import EIR, AgentProcess, run_eir
from simulator.mme import send_ecr
from tests.postgres import reset

S13_KEY, MAP_KEY = "35999000013131", "35999000023232"
S13_IMSI, MAP_IMSI = "436011111111111", "436012222222222"
GRACE = timedelta(days=30)  # the tj profile's window, the agent's default


def ecr_status(agent: AgentProcess) -> str | None:
    outcome = asyncio.run(send_ecr(*agent.address, S13_KEY + luhn_check_digit(S13_KEY), imsi=S13_IMSI))
    return outcome.equipment_status


def checkimei_status(agent: AgentProcess) -> object:
    host, port = agent.m3ua_address
    run = subprocess.run([*EIR, "sim", "checkimei", "--peer", f"{host}:{port}", MAP_KEY, "--ac-version", "2",
                          "--imsi", MAP_IMSI, "--json"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)["status"]


def deadline(url: str, key: str, imsi: str) -> datetime:
    """The deadline `eir check` reads from the registry for the pair."""
    check = run_eir(url, "check", key + luhn_check_digit(key), "--imsi", imsi, "--json", check=False)
    answer = json.loads(check.stdout)
    assert answer["rule"] == "grace", answer
    return datetime.fromisoformat(answer["deadline"])


def first_sight(url: str, key: str, imsi: str) -> datetime | None:
    with Registry(url) as registry:
        seen = [s.first_seen for s in Observations(registry).sightings(key) if s.imsi == imsi]
    return min(seen) if seen else None


def test_a_first_sight_on_postgresql_survives_sigkill(tmp_path: Path, postgres_url: str) -> None:
    reset(postgres_url)
    url = postgres_url
    run_eir(url, "registry", "init")
    agent = AgentProcess(tmp_path, url, m3ua=True)
    try:
        assert ecr_status(agent) == "GREYLISTED"
        assert checkimei_status(agent) == "GREY_LISTED"
        # The answers left only once their first sights were committed: they are in the database now.
        s13_seen, map_seen = first_sight(url, S13_KEY, S13_IMSI), first_sight(url, MAP_KEY, MAP_IMSI)
        assert s13_seen is not None and map_seen is not None
        before = deadline(url, S13_KEY, S13_IMSI)
        assert abs(before - (s13_seen + GRACE)) < timedelta(seconds=1)
    finally:
        agent.process.kill()
        agent.process.wait(10)
        agent.stop()
    assert agent.process.returncode == -9  # killed, not stopped

    restarted = AgentProcess(tmp_path, url, m3ua=True)
    try:
        assert ecr_status(restarted) == "GREYLISTED"
        assert checkimei_status(restarted) == "GREY_LISTED"
    finally:
        assert restarted.stop() == 0
    assert first_sight(url, S13_KEY, S13_IMSI) == s13_seen  # the same clock, not restarted
    assert first_sight(url, MAP_KEY, MAP_IMSI) == map_seen
    assert deadline(url, S13_KEY, S13_IMSI) == before
