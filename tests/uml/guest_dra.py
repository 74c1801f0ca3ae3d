"""Runs inside the User-Mode Linux guest that tests/uml/test_dra_sctp.py boots (kernel SCTP):
freeDiameter as the DRA and two real ``eir serve`` agents behind it, all over SCTP, and the MME
of tests/interop/dra_load.py in front of it; agent A is SIGKILLed under load and started again
on its port, as tests/interop/test_dra_failover.py does over TCP on the host.

freeDiameter ignores loopback addresses for SCTP (/work/shared/INTEROP.md), so the guest gets
an address of its own, ``192.0.2.10`` (TEST-NET-1) on a dummy interface that exists only inside
it: the relay listens there, the agents listen there (and, as AgentProcess always asks, on
loopback too), and the MME connects there. The agents admit the relay from that address alone
(``--allow-peer dra.localdomain@192.0.2.10/32``).

The registry: each agent has its own SQLite copy of the same devices, built on the host with
the real CLI (the guest runs no PostgreSQL: sharing one PostgreSQL registry is the host test's;
this one is about SCTP). guest.json may say ``"transport": "tcp"`` and an ``address`` of
127.0.0.1 and ``"dummy": false``: the same run on a host without SCTP, to try the driver out.

Everything it learns goes to result.json in the folder given as its argument.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from diameter.transport import connect
from simulator.agent_process import AgentProcess
from tests.interop.dra_load import MME, Events, Figures, Load, Plan, cpu_seconds, killer, retransmitted_requests
from tests.interop.freediameter import FreeDiameterRelay, Peer, RelayConfig
from tests.uml.guest_sctp import guest_main

GUEST_ADDRESS = "192.0.2.10"  # on the dummy interface eir0, inside the guest only
REALM = "localdomain"
A, B = "eir-a.localdomain", "eir-b.localdomain"
TC_TIMER = 1
# UML runs every system call of the guest through ptrace on the host: an order of magnitude
# slower than the host, so a gentle load, and more time for everything.
PLAN = Plan(victim=A, survivor=B, rate=20, duration=8.0, kill_at=3.0, tick=0.25, kill_delay=0.01,
            answer_timeout=10.0, last_call=45.0, rejoin_wait=25.0)


def add_address(folder: Path, address: str) -> None:
    """The dummy interface eir0 with ``address``: modules from the folder init.sh loads them from."""
    modules = folder / "modules"
    for command in (["modprobe", "-d", str(modules), "dummy"], ["ip", "link", "add", "eir0", "type", "dummy"],
                    ["ip", "addr", "add", f"{address}/32", "dev", "eir0"], ["ip", "link", "set", "eir0", "up"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")


def start_agent(folder: Path, setup: dict[str, Any], identity: str, home: str) -> AgentProcess:
    """``eir serve`` as ``identity`` on the run's transport, at ``address:port`` for the relay
    (and at loopback, port + 100, which AgentProcess always adds); ``home`` names its folder."""
    address, port = setup["address"], setup["ports"][identity]
    place = folder / home
    place.mkdir(exist_ok=True)
    return AgentProcess(place, setup["registries"][identity], "--origin-host", identity,
                        "--transport", setup["transport"], "--listen", f"{address}:{port}",
                        "--allow-peer", f"dra.localdomain@{address}/32", port=port + 100)


def relay_config(setup: dict[str, Any]) -> RelayConfig:
    address = setup["address"]
    return RelayConfig(port=setup["ports"]["relay"], realm=REALM, tc_timer=TC_TIMER, debug_level=2,
                       transport=setup["transport"], listen_on=address,
                       peers=[Peer(identity, address, setup["ports"][identity]) for identity in (A, B)],
                       routes={REALM: (A, B)})


async def load_through(relay: FreeDiameterRelay, setup: dict[str, Any], agents: dict[str, AgentProcess],
                       events: Events, folder: Path) -> Load:
    devices = {imei: int(status) for imei, status in setup["devices"].items()}
    connection = await connect(MME, *relay.address, transport=setup["transport"], timeout=30.0)
    load = Load(connection, devices, PLAN)
    await load.run(events, killer(load, events, agents[A], relay, lambda: start_agent(folder, setup, A, "a-again")))
    if events.restart is not None:
        await events.restart
    await connection.disconnect()
    return load


def run(folder: Path, result: dict[str, Any]) -> dict[str, Any]:
    """The run; ``result`` fills up as it goes, so that a failure still leaves what was learnt."""
    setup = json.loads((folder / "guest.json").read_text())
    result |= {"timings": {}}
    started = time.monotonic()
    if setup.get("dummy", True):
        add_address(folder, setup["address"])
    agents = {A: start_agent(folder, setup, A, "a"), B: start_agent(folder, setup, B, "b")}
    result["timings"]["agents_ready"] = round(time.monotonic() - started, 2)
    events = Events()
    relay = FreeDiameterRelay(folder / "dra", relay_config(setup))
    try:
        relay.start(timeout=30.0)
        result["opened"] = {identity: relay.wait_peer_open(identity, 30.0) for identity in agents}
        result["timings"]["relay_open"] = round(time.monotonic() - started, 2)
        load = asyncio.run(load_through(relay, setup, agents, events, folder))
        survivor_cpu = cpu_seconds(agents[B].process.pid)
    finally:
        relay.stop()  # before the agents: else it waits for them on shutdown
        result["agent_exits"] = {name: agent.stop() for name, agent in
                                 (("a", agents[A]), ("b", agents[B]), ("a-again", events.restarted)) if agent}
        result["agent_logs"] = {name: agent.log()[-4000:] for name, agent in
                                (("a", agents[A]), ("b", agents[B]), ("a-again", events.restarted)) if agent}
        result["relay_log_tail"] = relay.log_tail(60)
    result["figures"] = dataclasses.asdict(Figures.of(load, events, relay, survivor_cpu))
    result["retransmitted_to_b"] = retransmitted_requests(agents[B].log())
    result["broken"] = {identity: relay.times_left_open(identity, "STATE_CLOSED") for identity in (A, B)}
    result["transports"] = {identity: relay.transports_of(identity) for identity in (A, B, MME.origin_host)}
    restarted = events.restarted
    result["answers_again"] = 0 if restarted is None else sum(
        1 for line in restarted.answers() if line["peer"] == MME.origin_host)
    result["timings"]["total"] = round(time.monotonic() - started, 2)
    return result


def main() -> None:
    guest_main(run)


if __name__ == "__main__":
    main()
