"""End to end, the lab clock (issue 14): a real `eir serve --lab-clock` process under the
Tajik profile, moved and fed through its control socket (simulator/lab_client.py and
`eir sim lab`), asked by the simulator's MME over S13 on loopback.

- the agent decides, stamps its sights and its answer log by the lab clock, and a move
  of 31 days turns a grey handset black;
- registering, blocking, unblocking and importing over the endpoint take effect at the
  next attach, without a restart; notices are listed with their deadlines;
- time moves only forward;
- without --lab-clock there is no endpoint, and --control alone is a usage error;
- bad input on the endpoint gets a precise error and the endpoint goes on serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.lab import MAX_REQUEST
from registry.imei import luhn_check_digit
from simulator.agent_process import EIR, AgentProcess, free_port, run_eir
from simulator.lab_client import LabControl, LabControlError
from simulator.mme import send_ecr
from tests.tools import wait_until

START = datetime(2031, 3, 1, 6, 0, tzinfo=UTC)  # a lab date no machine's clock shows
TAC = "35209900"
LOCAL = "436011000000001"  # a Tajik SIM (436-01)
GREY_DAYS = 30  # profile tj: grace {days: 30}


def key(n: int) -> str:
    return f"{TAC}{n:06d}"


def imei15(imei: str) -> str:
    return imei + luhn_check_digit(imei)


@pytest.fixture
def lab_agent(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def make(start: str = START.isoformat(), port: int | None = None) -> AgentProcess:
        agent = AgentProcess(tmp_path, f"sqlite:///{tmp_path / 'lab.db'}", "--profile", "tj", lab_clock=start,
                             port=port)
        started.append(agent)
        return agent

    yield make
    for agent in started:
        assert agent.stop() == 0, agent.log()
        assert agent.control_path is not None and not agent.control_path.exists()  # removed at exit


def control(agent: AgentProcess, *calls: Callable[[LabControl], Any]) -> list[Any]:
    """Connect to the agent's control socket and make ``calls`` in order; their results."""
    async def run() -> list[Any]:
        assert agent.control_path is not None
        async with await LabControl.connect(agent.control_path) as lab:
            return [await call(lab) for call in calls]
    return asyncio.run(run())


def ask(agent: AgentProcess, imei: str, imsi: str = LOCAL) -> tuple[str, dict[str, Any]]:
    """An S13 ECR; its Equipment-Status and its answer log line."""
    before = len([line for line in agent.answers() if line["imei"] == imei])
    answer = asyncio.run(send_ecr(*agent.address, imei, imsi=imsi))
    lines = wait_until(lambda: [line for line in agent.answers() if line["imei"] == imei][before:], 5.0,
                       f"the answer log line of {imei}")
    return str(answer.equipment_status), lines[-1]


def test_the_agent_decides_and_stamps_by_the_lab_clock(lab_agent: Callable[..., AgentProcess]) -> None:
    agent = lab_agent()
    assert f"eir: lab clock at {START.isoformat()}; control socket {agent.control_path}" in agent.log()
    imei = key(1)
    status, line = ask(agent, imei)
    assert (status, line["rule"]) == ("GREYLISTED", "grace")
    assert line["ts"] == START.timestamp()  # the clock stands still until moved
    [now] = control(agent, lambda lab: lab.advance(31 * 86400))
    assert now == (START + timedelta(days=31)).isoformat()
    status, line = ask(agent, imei)
    assert (status, line["rule"]) == ("BLACKLISTED", "grace-expired")
    assert line["ts"] == (START + timedelta(days=31)).timestamp()
    registry = f"sqlite:///{agent.answer_log.parent / 'lab.db'}"
    show = run_eir(registry, "registry", "show", imei, "--at", "2031-03-20", check=False)
    assert f"IMSI {LOCAL}  first 2031-03-01 06:00:00 UTC  last 2031-04-01 06:00:00 UTC" in show.stdout, show.stdout
    inside = run_eir(registry, "check", imei, "--imsi", LOCAL, "--at", "2031-03-20", check=False)
    assert inside.returncode == 2 and "GREY (grace)" in inside.stdout, inside.stdout
    after = run_eir(registry, "check", imei, "--imsi", LOCAL, "--at", "2031-04-05", check=False)
    assert after.returncode == 1 and "BLACK (grace-expired)" in after.stdout, after.stdout


def test_the_registry_is_fed_over_the_endpoint_without_a_restart(lab_agent: Callable[..., AgentProcess]) -> None:
    agent = lab_agent()
    phone, listed = key(2), key(3)
    assert ask(agent, phone)[0] == "GREYLISTED"
    control(agent, lambda lab: lab.advance(20 * 86400), lambda lab: lab.register(phone, "day 20"))
    status, line = ask(agent, phone)
    assert (status, line["rule"]) == ("WHITELISTED", "white-list")
    control(agent, lambda lab: lab.block(imei15(phone), "police 7"))
    status, line = ask(agent, phone)
    assert (status, line["rule"]) == ("BLACKLISTED", "stolen")
    [unblocked] = control(agent, lambda lab: lab.unblock(phone, "returned"))
    assert unblocked["list"] == "white"
    assert ask(agent, phone)[0] == "WHITELISTED"
    with pytest.raises(LabControlError, match=f"IMEI {imei15(phone)} is not blocked"):
        control(agent, lambda lab: lab.unblock(phone, "again"))
    with pytest.raises(LabControlError, match="invalid IMEI '12345'"):
        control(agent, lambda lab: lab.register("12345"))

    [report] = control(agent, lambda lab: lab.import_rows("grey", f"imei,reason\n{imei15(listed)},customs\n"
                                                                  "35209900abc,letters\n"))
    assert (report["rows"], report["imported"]) == (2, 1)
    assert report["bad"] == [{"line": 3, "reason": "bad IMEI '35209900abc': IMEI has a non-digit 'a' at "
                                                   "position 9"}], report
    status, line = ask(agent, listed)
    assert (status, line["rule"]) == ("GREYLISTED", "grey-list")

    [found] = control(agent, lambda lab: lab.notices(phone))
    assert [(n["event"], n["imsi"], n["created_at"][:19]) for n in found] == [("grey", LOCAL, "2031-03-01T06:00:00")]
    deadline = datetime.fromisoformat(found[0]["deadline"].replace("Z", "+00:00"))
    assert START + timedelta(days=GREY_DAYS - 1) < deadline <= START + timedelta(days=GREY_DAYS + 1), deadline
    registry = f"sqlite:///{agent.answer_log.parent / 'lab.db'}"
    show = run_eir(registry, "registry", "show", phone, check=False).stdout
    assert "[lab:register]" in show and "[lab:block]" in show and "[lab:unblock]" in show, show
    assert "[lab:import]" in run_eir(registry, "registry", "show", listed, check=False).stdout


def test_time_only_moves_forward(lab_agent: Callable[..., AgentProcess]) -> None:
    agent = lab_agent("2031-03-01")
    with pytest.raises(LabControlError, match=r"never goes back \(asked to move -1 seconds\)"):
        control(agent, lambda lab: lab.advance(-1))
    with pytest.raises(LabControlError, match="never goes back"):
        control(agent, lambda lab: lab.set("2031-02-28T23:59:59Z"))
    assert control(agent, lambda lab: lab.time()) == ["2031-03-01T00:00:00+00:00"]
    lab = [*EIR, "sim", "lab", "--control", str(agent.control_path)]
    back = subprocess.run([*lab, "set", "2030-01-01"], capture_output=True, text=True, timeout=60)
    assert back.returncode == 1 and back.stderr.count("\n") == 1 and "never goes back" in back.stderr, back
    moved = subprocess.run([*lab, "advance", "1d12h"], capture_output=True, text=True, timeout=60)
    assert moved.stdout.strip() == "2031-03-02T12:00:00+00:00", moved
    assert control(agent, lambda lab: lab.set("2031-03-05")) == ["2031-03-05T00:00:00+00:00"]


def test_without_the_lab_clock_there_is_no_endpoint(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path, f"sqlite:///{tmp_path / 'plain.db'}")
    try:
        would_be = tmp_path / f"lab-{agent.port}.sock"
        assert agent.control_path is None and not list(tmp_path.glob("*.sock"))
        with pytest.raises(LabControlError, match=f"no control endpoint at {would_be}: is the agent running "
                                                  "with --lab-clock?"):
            asyncio.run(LabControl.connect(would_be))
        moved = subprocess.run([*EIR, "sim", "lab", "--control", str(would_be), "advance", "1d"],
                               capture_output=True, text=True, timeout=60)
        assert moved.returncode == 1 and "no control endpoint" in moved.stderr, moved
    finally:
        assert agent.stop() == 0
    alone = subprocess.run([*EIR, "--registry", f"sqlite:///{tmp_path / 'plain.db'}", "serve", "--control",
                            str(would_be)], capture_output=True, text=True, timeout=60)
    assert alone.returncode == 2, alone
    assert alone.stderr == "eir serve: --control needs --lab-clock: the control socket exists only in lab mode\n"
    assert not would_be.exists()


async def exchange(path: Path, lines: list[bytes]) -> list[dict[str, Any]]:
    """Write raw request lines on one connection; the replies, in order."""
    reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 20)
    replies = []
    for line in lines:
        writer.write(line)
        await writer.drain()
        replies.append(json.loads(await reader.readline()))
    writer.close()
    return replies


def test_bad_input_gets_a_precise_error_and_the_endpoint_keeps_serving(
        lab_agent: Callable[..., AgentProcess]) -> None:
    agent = lab_agent()
    assert agent.control_path is not None
    assert stat.S_IMODE(os.stat(agent.control_path).st_mode) == 0o600
    overlong = b'{"op": "import", "kind": "white", "csv": "' + b"x" * MAX_REQUEST + b'"}\n'
    replies = asyncio.run(exchange(agent.control_path, [
        b"garbage\n", b"[1, 2]\n", b'{"op": "rewind"}\n', b'{"op": "advance"}\n',
        b'{"op": "advance", "days": "two"}\n', b'{"op": "set", "at": "yesterday"}\n',
        b'{"op": "time", "extra": 1}\n', b'{"op": "import", "kind": "pink", "csv": ""}\n',
        b'{"op": "import", "kind": "white", "csv": "imsi\\n1\\n"}\n', b"\xff\xfe\n", overlong,
        b'{"op": "time"}\n']))
    errors = [reply.get("error") for reply in replies[:-1]]
    assert all(reply["ok"] is False for reply in replies[:-1]), replies
    assert errors[0].startswith("not JSON: Expecting value: line 1 column 1")
    assert errors[1] == "a request is one JSON object a line, got an array"
    assert errors[2] == "unknown op 'rewind'; the ops are time, advance, set, import, register, block, unblock, notices"
    assert errors[3] == "advance needs days, hours, minutes or seconds (a number)"
    assert errors[4] == "days must be a number, got a string"
    assert errors[5].startswith("'yesterday' is not an ISO time") and "the clock stays at" in errors[5]
    assert errors[6] == "time does not take 'extra'; it takes no fields"
    assert errors[7].startswith("kind 'pink' is not one of white, grey, black")
    assert errors[8].startswith("csv: line 1: unknown column 'imsi'") and errors[8].endswith("nothing imported")
    assert errors[9] == "not UTF-8 text at byte 0"
    assert errors[10] == f"request line longer than {MAX_REQUEST:,} bytes; read past it"
    assert replies[-1] == {"ok": True, "now": START.isoformat()}  # the same connection still answers
    assert "WARNING eir.lab: from lab control connection 1: not JSON" in agent.log()


def test_a_stale_socket_file_is_replaced_and_a_live_one_refused(tmp_path: Path,
                                                                lab_agent: Callable[..., AgentProcess]) -> None:
    port = free_port()
    stale = tmp_path / f"lab-{port}.sock"
    with socket.socket(socket.AF_UNIX) as left:  # an agent killed with -9 leaves its file
        left.bind(str(stale))
    agent = lab_agent(port=port)
    assert control(agent, lambda lab: lab.time()) == [START.isoformat()]
    second = subprocess.run([*EIR, "--registry", f"sqlite:///{tmp_path / 'lab.db'}", "serve", "--listen",
                             f"127.0.0.1:{free_port()}", "--answer-log", "off", "--lab-clock", "--control",
                             str(stale)], capture_output=True, text=True, timeout=60)
    assert second.returncode == 1, second
    assert second.stderr.endswith(f"eir serve: cannot open the control socket {stale}: in use: another agent "
                                  "listens on it\n"), second.stderr
    assert control(agent, lambda lab: lab.time()) == [START.isoformat()]  # the first agent's socket is intact
