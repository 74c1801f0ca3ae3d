"""Runs inside the User-Mode Linux guest that tests/uml/test_osmo_stp_loadshare.py boots (kernel
SCTP): osmo-stp with one application server for the EIR, in loadshare traffic mode, whose two
ASPs are two real ``eir serve`` agents (``m3ua.connect`` over SCTP); the simulator's MSC asks
CheckIMEI through the STP (``eir sim checkimei --transport sctp``), one agent is SIGKILLed, the
MSC asks again, the agent is started again and rejoins, the MSC asks once more.

osmo-stp 1.6 tells ASPs without routing-key registration apart by the port they connect to
(tests/uml/guest_sctp.py): the MSC's ASP reaches 2905, agent A's 2906 and agent B's 2907; the
two agents are ASPs of the one AS as-eir (routing context 2, point code 1), traffic-mode
loadshare, which osmo-stp 1.6 serves round robin over the active ASPs
(``xua_as_select_asp_roundrobin``): consecutive CheckIMEIs go to A, B, A, ... while both are
active, to B alone once A is gone. Each agent has its own SQLite copy of the demo registry
(built on the host), so both answer the same devices the same way.

Everything it learns goes to result.json in the folder given as its argument: each
CheckIMEI's outcome, and how many MAP answers each agent's answer log holds at each step.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from simulator.agent_process import AgentProcess
from tests.uml.guest_sctp import (
    LOOPBACK,
    STP_CONFIG,
    STP_EIR_PORT,
    STP_MSC_PORT,
    eir,
    guest_main,
    start_stp,
    wait_for,
)

EIR_B_PORT = 2907  # agent B's ASP reaches the STP here; agent A's at STP_EIR_PORT (2906)
ASKS = {"both": 4, "one": 4, "again": 2}  # CheckIMEIs at each step: both agents up, A killed, A back

# STP_CONFIG with a third listener, and the EIR's AS holding two ASPs in loadshare.
LOADSHARE_CONFIG = STP_CONFIG.replace(
    """ listen m3ua {eir_port}
  local-ip 127.0.0.1
""", """ listen m3ua {eir_port}
  local-ip 127.0.0.1
 listen m3ua {eir_b_port}
  local-ip 127.0.0.1
""").replace(
    """ asp asp-eir 0 {eir_port} m3ua
  local-ip 127.0.0.1
  role sg
  sctp-role server
""", """ asp asp-eir-a 0 {eir_port} m3ua
  local-ip 127.0.0.1
  role sg
  sctp-role server
 asp asp-eir-b 0 {eir_b_port} m3ua
  local-ip 127.0.0.1
  role sg
  sctp-role server
""").replace(
    """ as as-eir m3ua
  asp asp-eir
""", """ as as-eir m3ua
  asp asp-eir-a
  asp asp-eir-b
  traffic-mode loadshare
""")


def start_agent(folder: Path, setup: dict[str, Any], name: str, port: int) -> AgentProcess:
    """Agent ``name`` ("a" or "b"), joining the STP at ``port`` as an ASP of routing context
    eir_rc, point code eir_pc, in loadshare mode (the agent's default traffic mode)."""
    place = folder / name
    place.mkdir(exist_ok=True)
    stp = setup["stp"]
    config = place / "eir.yaml"
    config.write_text(json.dumps({"m3ua": {"point_code": stp["eir_pc"], "traffic_mode": "loadshare", "connect": [
        {"address": f"{LOOPBACK}:{port}", "transport": "sctp", "routing_context": stp["eir_rc"]}]}}))
    return AgentProcess(place, setup["registries"][name[0]], "--profile", setup["profile"], "--config", str(config))


def map_answers(agent: AgentProcess | None) -> int:
    """The MAP answers in the agent's answer log (flushed every 0.2 s: wait a little first)."""
    return 0 if agent is None else sum(1 for line in agent.answers() if line.get("interface") == "map")


def ask(setup: dict[str, Any], count: int) -> list[dict[str, Any]]:
    stp = setup["stp"]
    return [eir(setup["registries"]["a"], "sim", "checkimei", "--peer", f"{LOOPBACK}:{STP_MSC_PORT}",
                "--transport", "sctp", "--routing-context", str(stp["msc_rc"]), "--opc", str(stp["msc_pc"]),
                "--dpc", str(stp["eir_pc"]), "--timeout", "10", "--json", setup["imei"]) for _ in range(count)]


def tally(agents: dict[str, AgentProcess | None]) -> dict[str, int]:
    time.sleep(1.0)  # a few flushes of the answer logs (every 0.2 s), in a slow guest
    return {name: map_answers(agent) for name, agent in agents.items()}


def run(folder: Path, result: dict[str, Any]) -> dict[str, Any]:
    """The run; ``result`` fills up as it goes, so that a failure still leaves what was learnt."""
    setup = json.loads((folder / "guest.json").read_text())
    result |= {"timings": {}, "asked": {}, "answers": {}}
    started = time.monotonic()
    stp = start_stp(folder, {**setup["stp"], "eir_b_port": EIR_B_PORT}, LOADSHARE_CONFIG)
    agents: dict[str, AgentProcess | None] = {"a": None, "b": None, "a-again": None}
    try:
        agents["a"] = start_agent(folder, setup, "a", STP_EIR_PORT)
        agents["b"] = start_agent(folder, setup, "b", EIR_B_PORT)
        result["joined"] = {name: wait_for(agent.stderr_path, "joined M3UA gateway")
                            for name, agent in agents.items() if agent is not None}
        result["timings"]["joined"] = round(time.monotonic() - started, 2)
        result["asked"]["both"] = ask(setup, ASKS["both"])
        result["answers"]["both"] = tally(agents)
        victim = agents["a"]
        assert victim is not None
        victim.process.send_signal(signal.SIGKILL)
        result["killed_exit"] = victim.process.wait(10)
        result["asked"]["one"] = ask(setup, ASKS["one"])
        result["answers"]["one"] = tally(agents)
        again = agents["a-again"] = start_agent(folder, setup, "a-again", STP_EIR_PORT)
        result["joined"]["a-again"] = wait_for(again.stderr_path, "joined M3UA gateway")
        result["asked"]["again"] = ask(setup, ASKS["again"])
        result["answers"]["again"] = tally(agents)
    finally:
        result["agent_exits"] = {name: agent.stop() for name, agent in agents.items() if agent is not None}
        result["agent_logs"] = {name: agent.log()[-3000:] for name, agent in agents.items() if agent is not None}
        stp.send_signal(signal.SIGTERM)
        result["stp_exit"] = stp.wait(10)
        result["stp_log"] = (folder / "osmo-stp.log").read_text()
    result["timings"]["total"] = round(time.monotonic() - started, 2)
    return result


def main() -> None:
    guest_main(run)


if __name__ == "__main__":
    main()
