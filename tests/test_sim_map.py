"""``eir sim checkimei`` and ``eir sim load --protocol map`` as real processes over loopback
M3UA/TCP, against the stand-in EIR of tests/map_eir.py, which answers each case as needed
(results, errors, rejects, aborts, a UDTS, an M3UA ERR, silence)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sigtran import ber, tcap
from sigtran import map as mapv
from sigtran.asp import ServerSettings
from sigtran.m3ua import SI_SCCP
from sigtran.sccp import ReturnCause
from tests import map_eir
from tests.tools import LOOPBACK, free_tcp_port

ROOT = Path(__file__).resolve().parent.parent
EIR = [sys.executable, "-m", "eir"]
IMEI = "35209900176148"


def eir(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EIR, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def checkimei(peer: str, *args: str) -> subprocess.CompletedProcess[str]:
    return eir("sim", "checkimei", "--peer", peer, *args)


def imei_argument(received: map_eir.Received) -> list[bytes]:
    (invoke,) = received.message.components
    assert isinstance(invoke, tcap.Invoke) and invoke.opcode == mapv.CHECK_IMEI and invoke.invoke_id == 1
    parameter = invoke.parameter
    if parameter[0] == 0x30:  # v3: CheckIMEI-Arg
        parameter = ber.decode_one(parameter).contents
    return [e.contents for e in ber.iterate(parameter, 0, len(parameter))]


# --- eir sim checkimei --------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["1", "2", "3"])
def test_checkimei_prints_the_equipment_status(version: str) -> None:
    with map_eir.fake_eir() as (peer, fake):
        run = checkimei(peer, IMEI, "--ac-version", version, "--json")
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["status"] == "WHITE_LISTED" and answer["message"] == "END"
    assert answer["answered_version"] == (None if version == "1" else int(version))
    assert answer["imei_sent"] == IMEI + "0" and answer["rtt_ms"] > 0
    assert answer["answered_by"] == "GT 992900000009, SSN 9"
    (received,) = fake.received
    assert received.data.si == SI_SCCP and (received.data.opc, received.data.dpc, received.data.ni) == (2, 1, 2)
    assert received.routing_context is None
    assert received.sccp.protocol_class == 1 and received.sccp.return_on_error
    assert received.sccp.called.digits == "992900000009" and received.sccp.calling.ssn == 8
    assert imei_argument(received)[0] == bytes.fromhex("53029900711684f0")
    dialogue = received.message.dialogue
    assert (dialogue is None) == (version == "1")
    assert fake.connections == 1


def test_checkimei_options_reach_the_wire() -> None:
    with map_eir.fake_eir() as (peer, fake):
        run = checkimei(peer, "3520990017614812", "--imsi", "436011234567890", "--ac-version", "2", "--opc", "77",
                        "--dpc", "88", "--routing-context", "9", "--calling-gt", "992900000149",
                        "--calling-ssn", "149", "--called-gt", "99290000", "--json")
    assert run.returncode == 0, run.stderr
    (received,) = fake.received
    assert (received.data.opc, received.data.dpc, received.routing_context) == (77, 88, 9)
    assert received.sccp.calling.digits == "992900000149" and received.sccp.calling.ssn == 149
    assert received.sccp.called.digits == "99290000"
    assert imei_argument(received) == [mapv.encode_tbcd("3520990017614812"), mapv.encode_tbcd("436011234567890")]


def test_checkimei_sends_malformed_imeis_as_given() -> None:
    with map_eir.fake_eir() as (peer, fake):
        run = checkimei(peer, "3520990017614")
    assert run.returncode == 0, run.stderr
    assert "asked v3 for IMEI 3520990017614" in run.stdout
    assert imei_argument(fake.received[0])[0] == mapv.encode_tbcd("3520990017614")  # 7 octets


def test_checkimei_refuses_what_tbcd_cannot_carry() -> None:
    run = checkimei(f"{LOOPBACK}:{free_tcp_port()}", "3520990017614A")
    assert run.returncode == 2 and "digits 0-9 only" in run.stderr
    run = checkimei(f"{LOOPBACK}:{free_tcp_port()}", IMEI, "--imsi", "436011234567890")
    assert run.returncode == 2 and "not in v3" in run.stderr


@pytest.mark.parametrize(("reply", "expected"), [
    (lambda m: map_eir.end_error(m.otid, 3, mapv.ErrorCode.UNKNOWN_EQUIPMENT), "returnError: 7 UNKNOWN_EQUIPMENT"),
    (lambda m: map_eir.end_reject(m.otid, 3), f"reject: {tcap.INVOKE_MISTYPED_PARAMETER}"),
    (lambda m: map_eir.p_abort(m.otid), "abort: P-Abort resource-limitation"),
    (lambda m: map_eir.refused(m.otid),
     "abort: dialogue refused: service-user application-context-name-not-supported"),
    (lambda m: map_eir.end_status(m.otid, 3, mapv.EquipmentStatus.BLACK_LISTED), "EquipmentStatus: BLACK_LISTED"),
])
def test_checkimei_describes_each_answer(reply: map_eir.Handler, expected: str) -> None:
    with map_eir.fake_eir(reply) as (peer, _):
        run = checkimei(peer, IMEI)
    assert run.returncode == 0, run.stderr
    assert expected in run.stdout, run.stdout


def test_a_returned_request_exits_1() -> None:
    with map_eir.fake_eir(lambda m: ReturnCause.NO_TRANSLATION_FOR_ADDRESS) as (peer, _):
        run = checkimei(peer, IMEI, "--json")
    assert run.returncode == 1
    assert "came back in a UDTS, return cause 0x01 NO_TRANSLATION_FOR_ADDRESS" in json.loads(run.stdout)["error"]


def test_an_m3ua_err_exits_1() -> None:
    settings = ServerSettings(routing_contexts=frozenset({5}))
    with map_eir.fake_eir(settings=settings) as (peer, _):
        run = checkimei(peer, IMEI, "--routing-context", "7")
    assert run.returncode == 1 and run.stdout == ""
    assert "M3UA ERR 0x19 INVALID_ROUTING_CONTEXT while we waited for the ASPAC-ACK" in run.stderr


def test_silence_times_out() -> None:
    with map_eir.fake_eir(lambda m: None) as (peer, _):
        started = time.monotonic()
        run = checkimei(peer, IMEI, "--timeout", "0.5")
    assert run.returncode == 1
    assert "no answer to the CheckIMEI within 0.5 s" in run.stderr
    assert time.monotonic() - started < 10


def test_a_closed_port_exits_1() -> None:
    run = checkimei(f"{LOOPBACK}:{free_tcp_port()}", IMEI)
    assert run.returncode == 1 and "cannot connect to 127.0.0.1:" in run.stderr and "refused" in run.stderr.lower()


# --- eir sim load --protocol map ------------------------------------------------------------------

def test_map_load_against_the_stand_in() -> None:
    with map_eir.fake_eir() as (peer, fake):
        run = eir("sim", "load", "--protocol", "map", "--peer", peer, "--connections", "2", "--inflight", "8",
                  "--duration", "1", "--ac-version", "2", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    answers = result["answers"]
    assert answers > 100, result
    assert result["requests"] == answers
    assert result["by_status"] == {"WHITE_LISTED": answers} and result["by_result"] == {"result": answers}
    assert result["error_total"] == 0, result["errors"]
    assert result["protocol"] == "map" and result["ac_version"] == 2
    assert fake.connections == 2
    assert {map_eir.asked_version(r.message) for r in fake.received} == {2}
    assert len({r.message.otid for r in fake.received}) == len(fake.received)  # one otid per dialogue


def test_map_load_counts_errors_and_sends_the_vendor_imsi(tmp_path: Path) -> None:
    imeis = tmp_path / "imeis.txt"
    imeis.write_text("35209900176148\n3520990017614812\n")
    with map_eir.fake_eir(lambda m: map_eir.end_error(m.otid, 1, 7)) as (peer, fake):
        run = eir("sim", "load", "--protocol", "map", "--peer", peer, "--imeis", str(imeis), "--ac-version", "1",
                  "--vendor-imsi", "--imsi-prefix", "43601", "--duration", "0.5", "--inflight", "4")
    assert run.returncode == 0, run.stderr
    assert "(MAP CheckIMEI v1)" in run.stdout and "2 IMEIs" in run.stdout
    assert "by status    NONE" in run.stdout and "by result    UNKNOWN_EQUIPMENT" in run.stdout
    assert "errors       none" in run.stdout
    arguments = {tuple(imei_argument(r)) for r in fake.received}
    assert arguments == {(mapv.encode_tbcd("352099001761480"), mapv.encode_tbcd("436010000000000")),
                         (mapv.encode_tbcd("3520990017614812"), mapv.encode_tbcd("436010000000001"))}


def test_map_load_reports_returned_requests_and_timeouts() -> None:
    replies = iter(range(1_000_000))

    def half_returned(message: tcap.TcMessage) -> map_eir.Reply:
        return ReturnCause.SUBSYSTEM_FAILURE if next(replies) % 2 else None

    with map_eir.fake_eir(half_returned) as (peer, _):
        run = eir("sim", "load", "--protocol", "map", "--peer", peer, "--duration", "1", "--inflight", "4",
                  "--timeout", "0.3", "--json")
    assert run.returncode == 1  # no answer at all
    result = json.loads(run.stdout)
    assert result["errors"]["returned"] > 0 and result["errors"]["timeouts"] > 0
    assert result["answers"] == 0


def test_map_load_failures_are_clear() -> None:
    run = eir("sim", "load", "--protocol", "map", "--peer", f"{LOOPBACK}:{free_tcp_port()}", "--duration", "1")
    assert run.returncode == 1 and "cannot connect" in run.stderr
    with map_eir.fake_eir(settings=ServerSettings(routing_contexts=frozenset({5}))) as (peer, _):
        run = eir("sim", "load", "--protocol", "map", "--peer", peer, "--routing-context", "6", "--duration", "1")
    assert run.returncode == 1
    assert "refused the ASP handshake: M3UA ERR 0x19 INVALID_ROUTING_CONTEXT" in run.stderr
    run = eir("sim", "load", "--ac-version", "2", "--peer", f"{LOOPBACK}:1", "--duration", "1")
    assert run.returncode == 2 and "MAP only" in run.stderr
    run = eir("sim", "load", "--protocol", "map", "--ac-version", "3", "--vendor-imsi", "--peer", f"{LOOPBACK}:1")
    assert run.returncode == 1 and "not in v3" in run.stderr
