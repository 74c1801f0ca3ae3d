"""Two real agents behind freeDiameter 1.2.1 as the DRA, on one PostgreSQL registry: one of
them is SIGKILLed under load, the DRA fails over, and the killed agent rejoins.

The registry is the session's throwaway PostgreSQL (tests/postgres.py), made with the real
``eir registry init`` and ``eir registry import``. Two ``eir serve`` processes, Origin-Host
eir-a and eir-b, are ConnectPeers of freeDiameter (TCP, TcTimer 1), and rt_default gives
both the same score for the realm: freeDiameter picks one of two equal candidates at random
for each request (``fd_rtd_candidate_reorder``), so they share the load. The MME is our own
Diameter stack, connected to the DRA alone, sending ECRs at a steady rate.

Three seconds in, a few milliseconds after a burst of ECRs left, agent A gets SIGKILL: its
kernel closes the connection, freeDiameter sees it broken, leaves STATE_OPEN and sends the
requests it had sent to A and not yet seen answered again, with the T flag, to B
(``fd_p_sr_failover``; those still queued for A go back to routing too,
``fd_peer_failover_msg``). It never answers them 3002 itself while B is open, so none should
be lost. Its debug log (-dd) says "Failing over message sent to 'eir-a...'" for each: that
count is exactly the requests in flight on A when it died (and B, which counts the T-flagged
requests it serves, must have counted as many), and the test asserts that no more
ECRs than that went unanswered or got an error from the relay (the MME alone cannot tell
which agent holds a request: the printout also gives every ECR in flight at the kill, A's
and B's).

Then A is started again on the same port. freeDiameter tries to connect every 0 to 4 s
(TcTimer 1: ``fd_psm_next_timeout`` waits TcTimer - 2 s, at least 0, plus a random 0 to 4 s),
and after the CER/CEA it holds the peer in STATE_REOPEN for three DWR/DWA exchanges, sent
back to back (RFC 3539), before STATE_OPEN: so A is OPEN within REJOIN_BOUND of listening
again, and answers from A come back in the MME's stream.

The rate (PLAN) is what one agent carries alone on this crowded 2-core host (the printout
gives B's CPU time per answer). Where B cannot keep up alone, it refuses what exceeds its
bound on requests in progress with 3004 DIAMETER_TOO_BUSY at once: an answer, and a matter of
capacity, not of failover; the printout counts them apart, and an agent's error other than
3004 fails the test. The figures are printed (``pytest -s``). With CI=true a missing
freeDiameter or PostgreSQL fails instead of skipping.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from diameter.transport import connect
from simulator.agent_process import AgentProcess
from tests.interop.dra_load import (
    MME,
    Events,
    Figures,
    Load,
    Plan,
    check_failover,
    cpu_seconds,
    import_devices,
    killer,
    retransmitted_requests,
)
from tests.interop.freediameter import FreeDiameterRelay, Peer, RelayConfig
from tests.postgres import reset
from tests.tools import LOOPBACK, free_tcp_port, require_tool

pytestmark = pytest.mark.interop

REALM = "localdomain"
A, B = "eir-a.localdomain", "eir-b.localdomain"
# 120 ECRs/s: what one agent carries alone on a crowded 2-core host; SIGKILL A 3 s in; 8 s at least.
PLAN = Plan(victim=A, survivor=B, rate=120, duration=8.0, kill_at=3.0)
TC_TIMER = 1  # freeDiameter's reconnection timer: an attempt every 0 to 4 s (see the module text)
REJOIN_BOUND = 4.0 + 2.0  # from A listening again to the DRA's STATE_OPEN: 4 s of timer, 2 s of CER/CEA on a busy host


def start_agent(folder: Path, url: str, identity: str, port: int | None = None) -> AgentProcess:
    folder.mkdir(exist_ok=True)
    return AgentProcess(folder, url, "--origin-host", identity, "--allow-peer", "dra.localdomain",
                        "--allow-peer", "mme*.localdomain", port=port)


def test_sigkill_one_agent_under_load_the_dra_fails_over_and_it_rejoins(tmp_path: Path, postgres_url: str) -> None:
    require_tool("freeDiameterd")
    reset(postgres_url)
    devices = import_devices(postgres_url, tmp_path)
    agents = {A: start_agent(tmp_path / "a", postgres_url, A), B: start_agent(tmp_path / "b", postgres_url, B)}
    config = RelayConfig(port=free_tcp_port(), realm=REALM, tc_timer=TC_TIMER, debug_level=2,
                         peers=[Peer(identity, LOOPBACK, agent.port) for identity, agent in agents.items()],
                         routes={REALM: (A, B)})
    events = Events()
    relay = FreeDiameterRelay(tmp_path / "dra", config).start()
    try:
        for identity in agents:
            assert relay.wait_peer_open(identity, 10.0), relay.log_tail()

        async def main() -> Load:
            connection = await connect(MME, *relay.address)
            load = Load(connection, devices, PLAN)
            again = agents[A].port
            await load.run(events, killer(load, events, agents[A], relay,
                                          lambda: start_agent(tmp_path / "a-again", postgres_url, A, again)))
            if events.restart is not None:
                await events.restart
            await connection.disconnect()
            return load

        load = asyncio.run(main())
        survivor_cpu = cpu_seconds(agents[B].process.pid)
    finally:
        relay.stop()  # before the agents: else it waits for them on shutdown
        for agent in (*agents.values(), events.restarted):
            if agent is not None:
                agent.stop()
    figures = Figures.of(load, events, relay, survivor_cpu)
    text = figures.text(PLAN, f"freeDiameter 1.2.1 (rt_default, equal scores, TcTimer {TC_TIMER}), TCP, PostgreSQL")
    print(text)
    check_failover(figures, REJOIN_BOUND, text)
    # what freeDiameter says it failed over is what B says it received with the T flag
    retransmitted = retransmitted_requests(agents[B].log())
    print(f"  {B} counted {retransmitted} T-flagged requests served (retransmitted_requests)")
    assert retransmitted == figures.failed_over, agents[B].log()[-2000:]
    broken = {identity: relay.times_left_open(identity, "STATE_CLOSED") for identity in (A, B)}
    assert broken == {A: 1, B: 0}, relay.log_tail()  # the DRA saw A's connection break, once, and B's never
    restarted = events.restarted
    assert restarted is not None and any(line["peer"] == MME.origin_host for line in restarted.answers()), \
        "the answer log of A, started again, holds no answer to the MME"
