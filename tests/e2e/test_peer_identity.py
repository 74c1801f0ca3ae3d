"""End to end, issue 12 item 10: a Diameter peer is who it says it is, against a real
`eir serve` over loopback.

- A request without Route-Record came straight from the peer: an Origin-Host other than
  the peer's CER identity is answered 5003 DIAMETER_AUTHORIZATION_REJECTED (Failed-AVP:
  the Origin-Host), logged, counted and in the answer log as from the real peer; the
  connection stays up and the peer's own requests are served. A relayed request is served
  when its first Route-Record (written by the first relay: the node it got the request
  from) names its Origin-Host, and refused when it names another node.
- The allow-list binds names to addresses: an entry ``NAME@CIDR`` refuses NAME from an
  address outside CIDR with CEA 3010, and the log says which name from which address.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from diameter.answers import result_code_of
from diameter.capabilities import LocalNode
from diameter.constants import EquipmentStatus, ResultCode
from diameter.message import Message
from diameter.transport import CapabilitiesRefused, connect
from simulator.agent_process import AgentProcess, free_port, run_eir
from simulator.demo_registry import IMSI, WHITE
from simulator.mme import build_ecr

REALM = "localdomain"
MME = LocalNode("mme01.localdomain", REALM, product_name="e2e-mme")
DRA = LocalNode("dra.localdomain", REALM, product_name="e2e-dra")
SPOOFED = LocalNode("spoofed-mme.other.test", "other.test")


def ecr(origin: LocalNode, session: str, *route_records: str) -> Message:
    """An ECR for a white IMEI from ``origin``, with the Route-Records relays appended."""
    request = build_ecr(origin, WHITE, IMSI, session=session, destination_realm=REALM)
    for record in route_records:
        request.add("Route-Record", record)
    return request


def ask(agent: AgentProcess, node: LocalNode, *requests: Message) -> tuple[list[Message], bool]:
    """The answers ``node`` gets on one connection, and whether it was still open after them."""
    async def main() -> tuple[list[Message], bool]:
        connection = await connect(node, *agent.address)
        try:
            answers = [await connection.request(request, timeout=5) for request in requests]
            return answers, not connection.closed.done()
        finally:
            await connection.disconnect()
    return asyncio.run(main())


def test_an_origin_host_that_is_not_the_sender_gets_5003_and_the_peer_is_still_served(
        tmp_path: Path, demo_registry: str) -> None:
    agent = AgentProcess(tmp_path, demo_registry)
    try:
        (spoofed, genuine), still_open = ask(agent, MME, ecr(SPOOFED, "spoof"), ecr(MME, "genuine"))
        relayed, _ = ask(agent, DRA, ecr(MME, "relayed", MME.origin_host),
                         ecr(MME, "two-relays", MME.origin_host, "dra0.localdomain"),
                         ecr(MME, "relayed-spoof", "mme66.localdomain"))
    finally:
        assert agent.stop() == 0
    assert result_code_of(spoofed) == ResultCode.DIAMETER_AUTHORIZATION_REJECTED and not spoofed.is_error
    assert spoofed.find("Equipment-Status") is None
    (failed,) = spoofed.find("Failed-AVP").value  # type: ignore[union-attr]
    assert (failed.name, failed.value) == ("Origin-Host", SPOOFED.origin_host)
    assert MME.origin_host in spoofed.value("Error-Message")
    assert still_open
    assert (result_code_of(genuine), genuine.value("Equipment-Status")) == (
        ResultCode.DIAMETER_SUCCESS, EquipmentStatus.WHITELISTED)
    assert [result_code_of(answer) for answer in relayed] == [
        ResultCode.DIAMETER_SUCCESS, ResultCode.DIAMETER_SUCCESS, ResultCode.DIAMETER_AUTHORIZATION_REJECTED]

    log = agent.log()
    (line,) = [line for line in log.splitlines() if f"Origin-Host {SPOOFED.origin_host} is not" in line]
    assert f"from {MME.origin_host}:" in line and "result 5003" in line
    assert "'bad_input.diameter_5003': 2" in log  # S13's counters at exit
    answers = {line["session"].split(";")[1]: line for line in agent.answers()}
    refused = answers["spoof"]
    assert (refused["result"], refused["rule"], refused["peer"], refused["interface"]) == (
        5003, "protocol-error", MME.origin_host, "s13")  # an ECR the peer refused is still an S13 answer
    assert answers["relayed-spoof"]["peer"] == "mme66.localdomain"  # the node the relay got it from
    assert answers["genuine"]["result"] == answers["relayed"]["result"] == 2001


def test_an_allow_entry_name_at_cidr_refuses_the_name_from_elsewhere_with_3010(
        tmp_path: Path, demo_registry: str) -> None:
    agent = AgentProcess(tmp_path, demo_registry, "--allow-peer", f"{MME.origin_host}@192.0.2.0/24",
                         "--allow-peer", f"{DRA.origin_host}@127.0.0.0/8")
    try:
        with pytest.raises(CapabilitiesRefused) as refused:
            ask(agent, MME, ecr(MME, "refused"))
        (answer,), _ = ask(agent, DRA, ecr(MME, "through-the-dra", MME.origin_host))
    finally:
        assert agent.stop() == 0
    assert refused.value.result_code == ResultCode.DIAMETER_UNKNOWN_PEER
    assert result_code_of(answer) == ResultCode.DIAMETER_SUCCESS
    assert (f"peer {MME.origin_host} is not allowed: connecting from 127.0.0.1, outside the networks of the "
            f"entries for its name: {MME.origin_host}@192.0.2.0/24") in agent.log()
    assert [line["result"] for line in agent.answers() if line["rule"] == "protocol-error"] == [3010]


def test_a_bad_allow_peer_is_one_line_and_exit_1(demo_registry: str) -> None:
    result = run_eir(demo_registry, "serve", "--listen", f"127.0.0.1:{free_port()}", "--allow-peer",
                     "mme*.realm@10.0.0.0/33", check=False, timeout=30)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "'10.0.0.0/33' is not a network" in result.stderr
