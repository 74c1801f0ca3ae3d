"""``eir demo``: the product end to end on loopback, in one command.

It builds a demo registry with the real ``eir registry import`` commands, starts a real
``eir serve`` process (Tajik profile), plays an MME sending ECRs that cover each list, a
paired IMEI used with its bound IMSI and with another, an unregistered handset with a
local SIM (grey: its grace clock starts) and then with another SIM (the same clock), an
unregistered handset with a roaming SIM, and invalid IMEIs; prints every answer with the
reason the agent logged for it; stops the agent with SIGTERM (the agent says DPR on its
way out); and asks ``eir check --at`` what the unregistered handset gets 31 days later.
Between the ECRs and the stop, it plays an MSC asking MAP CheckIMEI over M3UA (v1, v2 and
v3, one association each: ASPUP, ASPAC, the dialogue, ASPDN) for the same devices, which
get the same answers from the same decision.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from diameter.answers import result_code_of
from diameter.capabilities import LocalNode
from diameter.message import Message
from diameter.transport import PeerConnection, connect
from registry.imei import luhn_check_digit
from simulator.agent_process import AgentProcess, run_eir
from simulator.mme import build_ecr, status_name
from simulator.msc import CheckImeiOutcome, send_checkimei


def imei15(key: str) -> str:
    return key + luhn_check_digit(key)


# The demo registry: one IMEI per case. Keys are 14 digits (TAC+SNR).
WHITE = "35209900176148"
GREY = "35209900176149"
BLACK = "35209900176150"
STOLEN = "35209900176151"  # on the white list, and reported stolen
PAIRED = "35209900176152"
PAIRED_IMSI = "436011234567890"
OTHER_IMSI = "436059999999999"
UNKNOWN = "35209900999999"  # in no list: the tj profile's grace rules decide
ROAMER = "35209900888888"
IMSI = "436011111111111"
ROAMING_IMSI = "250011234567890"  # an inbound roamer's SIM (MCC 250)

MME = LocalNode("mme01.localdomain", "localdomain", product_name="eir-demo-mme")


def build_demo_registry(folder: Path) -> str:
    """A SQLite registry with one IMEI per list, imported through the real CLI."""
    url = f"sqlite:///{folder / 'registry.db'}"
    files = {
        "white": f"imei,reason\n{imei15(WHITE)},customs cleared\n{STOLEN},entered automatically\n",
        "grey": f"imei,reason\n{GREY},awaiting registration\n",
        "black": f"imei,reason\n{imei15(BLACK)},grace period over\n",
        "stolen": f"imei,reason\n{STOLEN},police report 2026-118\n",
        "paired": f"imei,imsi,msisdn\n{PAIRED},{PAIRED_IMSI},\n",
    }
    for name, text in files.items():
        path = folder / f"{name}.csv"
        path.write_text(text)
        run_eir(url, "registry", "import", name, str(path))
    return url


@dataclass(frozen=True)
class Case:
    title: str
    imei: str
    imsi: str
    expected: str  # "2001 WHITELISTED", "5422", "5004"...


CASES = [
    Case("registered (white list)", imei15(WHITE), IMSI, "2001 WHITELISTED"),
    Case("not cleared yet (grey list)", GREY, IMSI, "2001 GREYLISTED"),
    Case("black list", BLACK, IMSI, "2001 BLACKLISTED"),
    Case("reported stolen", STOLEN, IMSI, "2001 BLACKLISTED"),
    Case("paired, with its bound IMSI", PAIRED, PAIRED_IMSI, "2001 WHITELISTED"),
    Case("paired, with another IMSI", PAIRED, OTHER_IMSI, "2001 BLACKLISTED"),
    Case("unregistered, local SIM", UNKNOWN, IMSI, "2001 GREYLISTED"),
    Case("same handset, new SIM", UNKNOWN, OTHER_IMSI, "2001 GREYLISTED"),
    Case("unregistered, roaming SIM", ROAMER, ROAMING_IMSI, "2001 WHITELISTED"),
    Case("invalid: wrong check digit", WHITE + str((int(luhn_check_digit(WHITE)) + 1) % 10), IMSI,
         "2001 BLACKLISTED"),
    Case("invalid: letters", "3520990017614A", IMSI, "5004"),
]


@dataclass(frozen=True)
class MapCase:
    title: str
    imei: str
    version: int
    imsi: str | None  # sent after the IMEI (the vendor variant, v1 and v2 only)
    expected: str  # "WHITE_LISTED", "unknownEquipment"...


MAP_CASES = [
    MapCase("registered (white list)", imei15(WHITE), 3, None, "WHITE_LISTED"),
    MapCase("not cleared yet (grey list)", GREY, 2, None, "GREY_LISTED"),
    MapCase("black list", BLACK, 1, None, "BLACK_LISTED"),
    MapCase("reported stolen", STOLEN, 3, None, "BLACK_LISTED"),
    MapCase("paired, with its bound IMSI", PAIRED, 2, PAIRED_IMSI, "WHITE_LISTED"),
    MapCase("paired, with another IMSI", PAIRED, 2, OTHER_IMSI, "BLACK_LISTED"),
    MapCase("unregistered, no IMSI", UNKNOWN, 3, None, "GREY_LISTED"),
    MapCase("roamer over S13, no IMSI", ROAMER, 3, None, "WHITE_LISTED"),
]


def describe_map(outcome: CheckImeiOutcome) -> str:
    if outcome.status is not None:
        return outcome.status.name
    return outcome.error_name or outcome.reject or outcome.abort_cause or outcome.message


def describe(answer: Message) -> str:
    code = result_code_of(answer)
    status = answer.value("Equipment-Status")
    return f"{code} {status_name(status)}" if status is not None else str(code)


async def _ask_all(agent: AgentProcess) -> tuple[list[Message], PeerConnection]:
    connection = await connect(MME, *agent.address)
    answers = []
    for number, case in enumerate(CASES):
        answers.append(await connection.request(build_ecr(MME, case.imei, case.imsi, session=f"demo;{number}"), 5))
    return answers, connection


def run_demo(out: Callable[[str], None] = print) -> int:
    """Run the demo; returns how many answers differed from what the demo expects."""
    with tempfile.TemporaryDirectory(prefix="eir-demo-") as folder:
        url = build_demo_registry(Path(folder))
        out(f"demo registry: {url} (white, grey, black, stolen, paired imported with `eir registry import`)")
        agent = AgentProcess(Path(folder), url, m3ua=True)
        try:
            out(f"agent: `eir serve` pid {agent.process.pid} on {agent.address[0]}:{agent.address[1]}, "
                "profile tj (Tajikistan; local SIMs 436-01 ... 436-12)")
            answers, map_outcomes, connection = asyncio.run(_until_stopped(agent))
        finally:
            code = agent.stop()
        surprises = 0
        for case, answer in zip(CASES, answers, strict=True):
            got = describe(answer)
            ok = got == case.expected
            surprises += not ok
            line = agent.answer_for(str(answer.value("Session-Id")))
            why = f"{line['rule']}: {line['reason']}" if line else "(no answer log line)"
            out(f"  {case.title:30} IMEI {case.imei:16} -> ECA {got:18} {'ok ' if ok else 'UNEXPECTED'} {why}")
        surprises += _print_map(agent, map_outcomes, out)
        out(f"agent stopped with SIGTERM: exit {code}; DPR received with Disconnect-Cause "
            f"{connection.disconnect_cause} (0 = REBOOTING)")
        surprises += code != 0 or connection.disconnect_cause != 0
        surprises += _later(url, out)
    return surprises


def _later(url: str, out: Callable[[str], None]) -> int:
    """The same unregistered handset 31 days on, from the grace clock the agent recorded."""
    at = (datetime.now(UTC) + timedelta(days=31)).isoformat(timespec="seconds")
    result = run_eir(url, "check", UNKNOWN, "--imsi", OTHER_IMSI, "--at", at, check=False)
    out(f"31 days later (`eir check {UNKNOWN} --at {at[:10]}`): {result.stdout.strip()}")
    return int(result.returncode != 1 or "grace-expired" not in result.stdout)


async def _ask_over_map(agent: AgentProcess) -> list[CheckImeiOutcome]:
    host, port = agent.m3ua_address
    return [await send_checkimei(host, port, case.imei, imsi=case.imsi, version=case.version) for case in MAP_CASES]


def _print_map(agent: AgentProcess, outcomes: list[CheckImeiOutcome], out: Callable[[str], None]) -> int:
    host, port = agent.m3ua_address
    out(f"an MSC asks MAP CheckIMEI over M3UA/TCP {host}:{port} (SCCP to SSN 9, TCAP, one association each):")
    surprises = 0
    for case, outcome in zip(MAP_CASES, outcomes, strict=True):
        got = describe_map(outcome)
        ok = got == case.expected
        surprises += not ok
        line = agent.answer_for(outcome.otid)
        why = f"{line['rule']}: {line['reason']}" if line else "(no answer log line)"
        imsi = f" + IMSI {case.imsi}" if case.imsi else ""
        out(f"  {case.title:30} v{case.version} IMEI {case.imei:16}{imsi:22} -> END {got:13} "
            f"{'ok ' if ok else 'UNEXPECTED'} {why}")
    return surprises


async def _until_stopped(agent: AgentProcess) -> tuple[list[Message], list[CheckImeiOutcome], PeerConnection]:
    answers, connection = await _ask_all(agent)
    map_outcomes = await _ask_over_map(agent)
    await asyncio.to_thread(agent.stop)
    await asyncio.wait_for(connection.closed, 5)
    return answers, map_outcomes, connection


