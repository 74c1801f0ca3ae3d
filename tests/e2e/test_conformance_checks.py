"""End to end: every wire conformance check (simulator/conformance.py) against a real
`eir serve` process with S13 over TCP and MAP over M3UA/TCP, and what the checks report
when the EIR never answers or is not there. Nothing of ours is mocked: each observation
below crossed the agent's sockets."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from simulator.agent_process import EIR, LOOPBACK, AgentProcess, free_port
from simulator.conformance import CHECKS, CheckOptions, WireObservation, checks_for, run_check
from simulator.demo_registry import WHITE, imei15

OPTIONS = CheckOptions(imei=imei15(WHITE), timeout=5.0)  # WHITE is on the demo registry's white list

# What our agent answers, field by field (a subset of each observation's fields).
EXPECTED: dict[str, dict[str, object]] = {
    "cer": {"command": "CEA", "result_code": 2001, "error_bit": False, "auth_application_ids": [16777252],
            "vendor_specific_application_ids": [[10415, 16777252]]},
    "dwr": {"command": "DWA", "result_code": 2001, "error_bit": False},
    "dpr": {"command": "DPA", "result_code": 2001, "error_bit": False, "closed": False},
    "ecr": {"command": "ECA", "result_code": 2001, "error_bit": False, "equipment_status": "WHITELISTED",
            "failed_avp": []},
    "missing-avp": {"command": "ECA", "result_code": 5005, "error_bit": False,
                    "failed_avp": ["Terminal-Information"], "equipment_status": None},
    "invalid-avp-value": {"command": "ECA", "result_code": 5004, "error_bit": False,
                          "failed_avp": ["Terminal-Information/IMEI"], "equipment_status": None},
    "unsupported-avp": {"command": "ECA", "result_code": 5001, "error_bit": False, "failed_avp": ["AVP-65001"]},
    "unsupported-command": {"command": "Answer-8388650", "result_code": 3001, "error_bit": True},
    "unsupported-application": {"command": "Answer-316", "result_code": 3007, "error_bit": True},
    "invalid-hdr-bits": {"command": "ECA", "result_code": 3008, "error_bit": True},
    "avp-occurs-too-many-times": {"command": "ECA", "result_code": 5009, "error_bit": False,
                                  "failed_avp": ["Terminal-Information/IMEI"]},
    "realm-not-served": {"command": "ECA", "result_code": 3003, "error_bit": True,
                         "failed_avp": ["Destination-Realm"]},
    "invalid-avp-length": {"command": "ECA", "result_code": 5014, "error_bit": False, "failed_avp": ["User-Name"]},
    "unknown-peer": {"command": "CEA", "result_code": 3010, "error_bit": True, "closed": True},
    "map-v1": {"message": "END", "status": "WHITE_LISTED", "component": "result", "problem": None, "abort": None,
               "version": None},
    "map-v2": {"message": "END", "status": "WHITE_LISTED", "component": "result", "problem": None, "abort": None,
               "version": 2},
    "map-v3": {"message": "END", "status": "WHITE_LISTED", "component": "result", "problem": None, "abort": None,
               "version": 3},
    "tcap-reject-malformed-invoke": {"message": "END", "status": None, "component": "reject",
                                     "problem": "INVOKE_MISTYPED_PARAMETER", "abort": None},
    "tcap-reject-unknown-operation": {"message": "END", "status": None, "component": "reject",
                                      "problem": "INVOKE_UNRECOGNIZED_OPERATION", "abort": None},
    "tcap-abort-unknown-context": {
        "message": "ABORT", "status": None, "component": "none", "problem": None, "version": 3,
        "abort": "dialogue refused: service-user application-context-name-not-supported"},
    "map-error-data-missing": {"message": "END", "status": None, "component": "error", "error": "DATA_MISSING"},
}


@pytest.fixture(scope="module")
def guarded_agent(tmp_path_factory: pytest.TempPathFactory, demo_registry: str) -> Iterator[AgentProcess]:
    """S13 and MAP, allowing only Origin-Hosts mme*.localdomain (the unknown-peer check's stranger is not)."""
    process = AgentProcess(tmp_path_factory.mktemp("conformance"), demo_registry, "--allow-peer", "mme*.localdomain",
                           m3ua=True)
    yield process
    assert process.stop() == 0


def observe(name: str, host: str, port: int, options: CheckOptions = OPTIONS) -> WireObservation:
    return asyncio.run(run_check(name, host, port, options=options))


def port_of(agent: AgentProcess, name: str) -> int:
    return agent.port if CHECKS[name].interface == "diameter" else agent.m3ua_address[1]


def test_every_check_has_its_expectation_and_a_description() -> None:
    assert sorted(EXPECTED) == sorted(CHECKS)
    assert checks_for("diameter") + checks_for("map") == list(CHECKS)
    for check in CHECKS.values():
        assert check.description and "\n" not in check.description
        assert any(source in check.description for source in ("RFC", "TS ", "Q.773")), check.name


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_check_observes_what_our_agent_answers(guarded_agent: AgentProcess, name: str) -> None:
    observation = observe(name, LOOPBACK, port_of(guarded_agent, name))
    assert observation.check == name
    observed = {key: observation.fields.get(key, "<absent>") for key in EXPECTED[name]}
    assert observed == EXPECTED[name], observation.detail
    assert observation.detail.startswith("sent ")


def test_the_agent_still_answers_after_every_check(guarded_agent: AgentProcess) -> None:
    assert observe("ecr", *guarded_agent.address).fields["equipment_status"] == "WHITELISTED"
    assert observe("map-v3", *guarded_agent.m3ua_address).fields["status"] == "WHITE_LISTED"
    assert "Traceback" not in guarded_agent.log()


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A socket that listens and never answers: the kernel completes the handshake, nobody reads."""
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


@pytest.mark.parametrize("name", ["cer", "ecr", "unknown-peer", "map-v1", "tcap-abort-unknown-context"])
def test_no_answer_is_reported_as_a_timeout_in_bounded_time(silent_listener: int, name: str) -> None:
    started = time.monotonic()
    observation = observe(name, LOOPBACK, silent_listener, CheckOptions(timeout=0.3))
    assert observation.fields == {"timeout": True}, observation.detail
    assert "0.3 s" in observation.detail
    assert time.monotonic() - started < 3.0


def serve_once(reply: bytes | None) -> tuple[int, threading.Thread]:
    """A listener that accepts one connection, reads the first octets, then writes ``reply``
    (None: closes without a word) and closes."""
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(1)

    def once() -> None:
        with listener, listener.accept()[0] as connection:
            connection.settimeout(5)
            connection.recv(4096)
            if reply is not None:
                connection.sendall(reply)
                connection.recv(4096)  # until the check closes its side

    thread = threading.Thread(target=once, daemon=True)
    thread.start()
    return int(listener.getsockname()[1]), thread


def test_a_peer_that_closes_without_a_cea_is_reported_as_closed() -> None:
    port, thread = serve_once(None)
    observation = observe("cer", LOOPBACK, port)
    thread.join(5)
    assert observation.fields == {"closed": True, "result_code": None}, observation.detail
    assert "closed the connection without answering" in observation.detail


def test_a_peer_that_speaks_no_diameter_is_reported_unreadable() -> None:
    port, thread = serve_once(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    observation = observe("cer", LOOPBACK, port)
    thread.join(5)
    assert list(observation.fields) == ["unreadable"], observation.detail
    assert "not Diameter" in observation.detail


@pytest.mark.parametrize("name", ["dwr", "map-v3"])
def test_nobody_listening_is_a_connect_error(name: str) -> None:
    observation = observe(name, LOOPBACK, free_port(), CheckOptions(timeout=1.0))
    assert observation.fields == {"connect_error": "Connection refused"}, observation.detail


def test_an_allowed_origin_host_makes_unknown_peer_observe_a_success(guarded_agent: AgentProcess) -> None:
    """The check reports; it does not judge: against an EIR that allows the name, CEA 2001."""
    options = CheckOptions(unknown_origin_host="mme-allowed.localdomain")
    observation = observe("unknown-peer", *guarded_agent.address, options)
    assert (observation.fields["result_code"], observation.fields["closed"]) == (2001, False)


def test_the_cli_prints_one_observation_per_check(guarded_agent: AgentProcess) -> None:
    host, port = guarded_agent.address
    command = [*EIR, "sim", "conformance", f"{host}:{port}", "--map", "{}:{}".format(*guarded_agent.m3ua_address),
               "--check", "missing-avp", "--check", "map-v2", "--imei", imei15(WHITE), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["check"], line.get("result_code"), line.get("status")) for line in lines] == [
        ("missing-avp", 5005, None), ("map-v2", None, "WHITE_LISTED")]
    plain = subprocess.run([*EIR, "sim", "conformance", f"{host}:{port}", "--check", "unsupported-command", "-v"],
                           capture_output=True, text=True, timeout=60, check=True).stdout
    fields, detail = plain.splitlines()
    assert fields.startswith("unsupported-command") and "result_code=3001" in fields and "error_bit=True" in fields
    assert detail.strip().startswith("sent CER, then command 8388650")


def test_the_cli_refuses_an_unknown_check_and_an_empty_run() -> None:
    unknown = subprocess.run([*EIR, "sim", "conformance", "127.0.0.1:1", "--check", "nope"], capture_output=True,
                             text=True, timeout=60)
    assert unknown.returncode == 2 and "no check named nope" in unknown.stderr
    nothing = subprocess.run([*EIR, "sim", "conformance", "--check", "map-v3"], capture_output=True, text=True,
                             timeout=60)
    assert nothing.returncode == 2 and "nothing to run" in nothing.stderr
