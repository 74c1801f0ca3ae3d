"""``eir sim ecr`` and ``eir sim load`` over real loopback sockets, and the pieces of the
load generator that must agree with the codec: pre-encoded requests and light answer parsing.

The load runs against bench/fixed_answer_server.py as a child process; ``eir sim ecr``
runs against that server and against our own Diameter server (in a thread of this
process), which records what it received and answers what each case needs.
"""

from __future__ import annotations

import asyncio
import json
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from diameter.answers import answer_to, error_answer, result_code_of
from diameter.capabilities import LocalNode
from diameter.constants import VENDOR_3GPP, EquipmentStatus, ResultCode
from diameter.errors import AvpProblem
from diameter.message import Message, decode_message
from diameter.peer import PeerSettings
from diameter.transport import PeerConnection, start_server
from registry.imei import parse_imei
from simulator.load import LoadConfig, LoadConnection, LoadStats
from simulator.load_common import LinkState
from simulator.load_wire import AnswerScanner, EcrTemplates, generated_imeis, read_imeis, scan_answer
from simulator.mme import MmeIdentity, build_ecr
from tests import diameter_samples as samples
from tests.tools import LOOPBACK, free_tcp_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
EIR = [sys.executable, "-m", "eir"]
SERVER_SCRIPT = ROOT / "bench" / "fixed_answer_server.py"
EIR_NODE = LocalNode("eir.localdomain", "localdomain", product_name="test-eir")


def eir(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EIR, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


# --- servers -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fixed_server() -> Iterator[str]:
    """bench/fixed_answer_server.py on a free port; stopped with SIGTERM, which it must obey."""
    port = free_tcp_port()
    process = subprocess.Popen([sys.executable, str(SERVER_SCRIPT), "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 15)
        line = process.stdout.readline() if ready else ""
        assert line.strip() == f"listening on {LOOPBACK}:{port}", (line, process.poll())
        yield f"{LOOPBACK}:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail("the fixed-answer server did not stop on SIGTERM")
    assert code == 0, process.stderr.read() if process.stderr else code


Handler = Callable[[Message, PeerConnection], Message | None]


@contextmanager
def diameter_server(handler: Handler, settings: Callable[[], PeerSettings] = PeerSettings) -> Iterator[str]:
    """Our own Diameter server, in a thread with its own event loop, for as long as the block runs."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        server = await start_server(EIR_NODE, handler, LOOPBACK, 0, settings=settings)
        box["address"], box["stop"] = server.addresses[0], asyncio.Event()
        ready.set()
        await box["stop"].wait()
        await server.close()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    assert ready.wait(5), "the in-process Diameter server did not start"
    try:
        host, port = box["address"]
        yield f"{host}:{port}"
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(5)
        loop.close()


def refuse_every_peer() -> PeerSettings:
    """Server settings under which every CER gets CEA 3010 DIAMETER_UNKNOWN_PEER."""
    return PeerSettings(accept_peer=lambda info, address: False)


class RecordingEir:
    """Records each ECR; answers 5004 (Failed-AVP IMEI) to an IMEI that is not 14 or 15
    characters long, else Experimental-Result 5422 as for unknown equipment."""

    def __init__(self) -> None:
        self.requests: list[Message] = []

    def __call__(self, request: Message, _: PeerConnection) -> Message:
        self.requests.append(request)
        terminal = request.find("Terminal-Information")
        assert terminal is not None
        imei = terminal.find("IMEI")
        assert imei is not None
        if len(str(imei.value)) not in (14, 15):
            problem = AvpProblem(ResultCode.DIAMETER_INVALID_AVP_VALUE, "IMEI must be 14 or 15 digits", imei,
                                 (terminal,))
            return error_answer(request, EIR_NODE.origin_host, EIR_NODE.origin_realm, problem)
        answer = answer_to(request, EIR_NODE.origin_host, EIR_NODE.origin_realm)
        answer.avps.append(answer.group("Experimental-Result", ("Vendor-Id", VENDOR_3GPP),
                                        ("Experimental-Result-Code", ResultCode.DIAMETER_ERROR_EQUIPMENT_UNKNOWN)))
        return answer.add("Auth-Session-State", 1)

    def terminal(self, index: int) -> dict[str, Any]:
        request = self.requests[index]
        terminal = request.find("Terminal-Information")
        assert terminal is not None
        members = {m.name: m.value for m in terminal.value}
        return members | {"User-Name": request.value("User-Name"), "Origin-Host": request.value("Origin-Host"),
                          "Destination-Realm": request.value("Destination-Realm")}


# --- eir sim load ----------------------------------------------------------------------------

def test_load_against_the_fixed_answer_server(fixed_server: str) -> None:
    run = eir("sim", "load", "--peer", fixed_server, "--connections", "2", "--inflight", "16",
              "--duration", "2", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    answers = result["answers"]
    assert answers > 1000, result
    assert result["requests"] == answers, result
    assert result["by_status"] == {"WHITELISTED": answers}
    assert result["by_result_code"] == {"2001": answers}
    assert result["error_total"] == 0 and set(result["errors"].values()) == {0}, result["errors"]
    assert 1.9 <= result["duration_s"] <= 3.0
    assert result["answers_per_s"] == pytest.approx(answers / result["duration_s"], rel=0.01)
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"], latency


def test_load_reads_imeis_from_a_csv_and_prints_a_summary(fixed_server: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "white.csv"
    csv_file.write_text("imei,reason\n352099001761481,ok\n35209900176149,ok\n3520990017614812,sv\n")
    run = eir("sim", "load", "--peer", fixed_server, "--imeis", str(csv_file), "--duration", "0.5")
    assert run.returncode == 0, run.stderr
    assert "3 IMEIs" in run.stdout
    assert "by status    WHITELISTED" in run.stdout and "2001 DIAMETER_SUCCESS" in run.stdout
    assert "errors       none" in run.stdout
    assert "latency ms   p50" in run.stdout


def test_load_against_a_closed_port_fails_clearly() -> None:
    run = eir("sim", "load", "--peer", f"{LOOPBACK}:{free_tcp_port()}", "--duration", "1")
    assert run.returncode == 1
    assert "cannot connect" in run.stderr and "refused" in run.stderr.lower()


def test_load_refused_by_the_peer_reports_the_cea_code() -> None:
    with diameter_server(RecordingEir(), refuse_every_peer) as peer:
        run = eir("sim", "load", "--peer", peer, "--duration", "1", "--json")
    assert run.returncode == 1
    assert "3010 DIAMETER_UNKNOWN_PEER" in json.loads(run.stdout)["error"]


def test_load_stops_when_the_peer_disconnects() -> None:
    recording = RecordingEir()
    with diameter_server(recording) as peer:
        load = subprocess.Popen([*EIR, "sim", "load", "--peer", peer, "--inflight", "8", "--duration", "30", "--json"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: len(recording.requests) >= 100, 20.0, "the load's first 100 requests")
    # Leaving the block closed the server: DPR to the generator, which answers DPA and stops.
    out, err = load.communicate(timeout=10)
    assert load.returncode == 0, err
    result = json.loads(out)
    assert result["answers"] > 0 and result["by_result_code"] == {"5422": result["answers"]}
    assert result["errors"]["peer_disconnects"] == 1
    assert result["errors"]["connection_losses"] == 0 and result["errors"]["unmatched_answers"] == 0
    assert result["requests"] == result["answers"] + result["errors"]["lost_in_flight"]
    assert result["duration_s"] < 5


# --- eir sim ecr -------------------------------------------------------------------------------

def test_ecr_against_the_fixed_answer_server(fixed_server: str) -> None:
    run = eir("sim", "ecr", "--peer", fixed_server, "35209900176148", "--imsi", "437011234567890", "--sv", "01")
    assert run.returncode == 0, run.stderr
    assert "Result-Code: 2001 DIAMETER_SUCCESS" in run.stdout
    assert "Equipment-Status: WHITELISTED" in run.stdout
    assert "from fixed.localdomain" in run.stdout


def test_ecr_sends_the_imei_as_given_and_names_the_failed_avp() -> None:
    recorder = RecordingEir()
    with diameter_server(recorder) as peer:
        run = eir("sim", "ecr", "--peer", peer, "3520990017614812", "--imsi", "437011234567890", "--sv", "07",
                  "--origin-host", "mme07.localdomain", "--json")
        unknown = eir("sim", "ecr", "--peer", peer, "35209900176148")
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["result_code"] == 5004 and answer["result_name"] == "DIAMETER_INVALID_AVP_VALUE"
    assert answer["failed_avps"] == ["Terminal-Information/IMEI"]
    assert answer["error_message"] == "IMEI must be 14 or 15 digits"
    assert answer["equipment_status"] is None and not answer["experimental"]
    assert answer["rtt_ms"] > 0
    assert recorder.terminal(0) == {"IMEI": "3520990017614812", "Software-Version": "07",
                                    "User-Name": "437011234567890", "Origin-Host": "mme07.localdomain",
                                    "Destination-Realm": "localdomain"}
    assert unknown.returncode == 0, unknown.stderr
    assert "Experimental-Result-Code: 5422 DIAMETER_ERROR_EQUIPMENT_UNKNOWN" in unknown.stdout
    assert "Equipment-Status" not in unknown.stdout
    assert recorder.terminal(1) == {"IMEI": "35209900176148", "User-Name": None, "Origin-Host": "mme.localdomain",
                                    "Destination-Realm": "localdomain"}


def test_ecr_against_a_closed_port_exits_1() -> None:
    run = eir("sim", "ecr", "--peer", f"{LOOPBACK}:{free_tcp_port()}", "35209900176148")
    assert run.returncode == 1
    assert run.stdout == ""
    assert "cannot connect to 127.0.0.1:" in run.stderr and "refused" in run.stderr.lower()


def test_ecr_without_an_answer_times_out() -> None:
    with diameter_server(lambda request, connection: None) as peer:  # a server that never answers
        started = time.monotonic()
        run = eir("sim", "ecr", "--peer", peer, "35209900176148", "--timeout", "0.5")
    assert run.returncode == 1
    assert "no answer to the ECR within 0.5 s" in run.stderr
    assert time.monotonic() - started < 10


def test_ecr_refused_by_the_peer_prints_the_cea_code() -> None:
    with diameter_server(RecordingEir(), refuse_every_peer) as peer:
        run = eir("sim", "ecr", "--peer", peer, "35209900176148", "--json")
    assert run.returncode == 1
    assert json.loads(run.stdout)["cea_result_code"] == ResultCode.DIAMETER_UNKNOWN_PEER
    assert "CEA Result-Code 3010 DIAMETER_UNKNOWN_PEER" in run.stderr


# --- the pieces, without sockets -------------------------------------------------------------

@pytest.mark.parametrize("imsi_prefix", ["43701", None])
@pytest.mark.parametrize("sv", ["01", None])
def test_pre_encoded_requests_equal_the_codec(imsi_prefix: str | None, sv: str | None) -> None:
    identity = MmeIdentity("mme01.localdomain", "epc.localdomain", "eir.localdomain")
    imeis = ["35209900176148", "352099001761481", "3520990017614812", "3520990017614A", "35209900176149"]
    templates = EcrTemplates(identity, imeis, "1700000000;", imsi_prefix, sv)
    for index, imei in enumerate(imeis):
        counter = 123_000_000_456 + index
        imsi = None if imsi_prefix is None else f"{imsi_prefix}{index:010d}"
        expected = build_ecr(identity.node(), imei, imsi, software_version=sv, session=f"1700000000;{counter:012d}",
                             destination_realm="eir.localdomain")
        expected.hop_by_hop, expected.end_to_end = 0xA0000000 + index, 0x0B000000 + index
        assert templates.request(index, counter, 0xA0000000 + index, 0x0B000000 + index) == expected.to_bytes()


def test_the_hot_path_sends_what_the_codec_encodes() -> None:
    async def scenario() -> tuple[LoadConnection, list[bytes]]:
        identity = MmeIdentity()
        imeis = ["35209900176148", "3520990017614812", "352099001761481"]
        config = LoadConfig(LOOPBACK, 3868, imeis, inflight=5, identity=identity)
        templates = EcrTemplates(identity, imeis, "1700000000;", "43701", "01")
        connection = LoadConnection(config, LoadStats(), templates, 2)
        transport = _Transport()
        connection.transport = transport  # type: ignore[assignment]
        connection.state = LinkState.OPEN
        connection.start(deadline_ns=2**62)
        assert connection._sweeper is not None
        connection._sweeper.cancel()
        return connection, transport.written

    connection, written = asyncio.run(scenario())
    assert len(written) == 1  # the whole window in one write
    stream, hops = written[0], sorted(connection.pending)
    assert len(hops) == 5 and hops == list(range(hops[0], hops[0] + 5))
    frames = []
    while stream:
        length = int.from_bytes(stream[1:4], "big")
        frames.append(stream[:length])
        stream = stream[length:]
    assert len(frames) == 5
    first_imei = (2 * 7919) % 3
    for n, (frame, hop) in enumerate(zip(frames, hops, strict=True)):
        index = (first_imei + n) % 3
        imei = ["35209900176148", "3520990017614812", "352099001761481"][index]
        expected = build_ecr(MmeIdentity().node(), imei, f"43701{index:010d}", software_version="01",
                             session=f"1700000000;{2 * 10**9 + n + 1:012d}")
        decoded = decode_message(frame)
        expected.hop_by_hop, expected.end_to_end = hop, decoded.end_to_end
        assert frame == expected.to_bytes()
        assert not decoded.problems
    assert len({decode_message(f).end_to_end for f in frames}) == 5


def test_light_parsing_agrees_with_the_codec() -> None:
    answers = [samples.eca(status) for status in EquipmentStatus]
    answers += [samples.eca_unknown(), samples.eca(None, result_code=ResultCode.DIAMETER_UNABLE_TO_COMPLY),
                samples.cea(ResultCode.DIAMETER_UNKNOWN_PEER), samples.eca(None, result_code=None)]
    scanner = AnswerScanner()
    for answer in answers:
        data = answer.to_bytes()
        decoded = decode_message(data)
        status = decoded.value("Equipment-Status")
        expected = (result_code_of(decoded), None if status is None else int(status))
        assert scan_answer(data, 20, len(data)) == expected
        assert scanner(data, 20, len(data)) == expected
        assert scanner(data, 20, len(data)) == expected  # from the memo now
    assert scan_answer(b"\0" * 20 + b"\x00\x00\x01\x0c\x40\x00\x00\x04", 20, 28) == (None, None)  # AVP too short


def test_imei_sources(tmp_path: Path) -> None:
    imeis = generated_imeis("35209900", 1000)
    assert len(set(imeis)) == 1000
    assert all(parse_imei(i).key == i[:14] for i in imeis)  # 15 digits, Luhn digit right
    plain = tmp_path / "imeis.txt"
    plain.write_text("35209900176148\n\n  352099001761481 \n# comment\n3520990017614A\n")
    assert read_imeis(str(plain)) == ["35209900176148", "352099001761481", "3520990017614A"]
    table = tmp_path / "paired.csv"
    table.write_text("msisdn,IMEI,imsi\n4367612345,35209900176148,437011234567890\n,352099001761481,\n")
    assert read_imeis(str(table)) == ["35209900176148", "352099001761481"]
    empty = tmp_path / "empty.csv"
    empty.write_text("imei,reason\n")
    with pytest.raises(ValueError, match="no IMEI"):
        read_imeis(str(empty))


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))


def test_the_generator_answers_dwr_and_counts_stray_answers() -> None:
    async def scenario() -> tuple[list[bytes], LoadStats]:
        config = LoadConfig(LOOPBACK, 3868, ["35209900176148"])
        stats = LoadStats()
        templates = EcrTemplates(config.identity, config.imeis, "1;", "43701", None)
        connection = LoadConnection(config, stats, templates, 0)
        transport = _Transport()
        connection.transport = transport  # type: ignore[assignment]
        connection.state = LinkState.OPEN
        connection.data_received(samples.dwr(hop_by_hop=77, end_to_end=78).to_bytes()
                                 + samples.eca(hop_by_hop=79).to_bytes()[:30])
        connection.data_received(samples.eca(hop_by_hop=79).to_bytes()[30:])
        return transport.written, stats

    written, stats = asyncio.run(scenario())
    assert len(written) == 1
    dwa = decode_message(written[0])
    assert (dwa.name, dwa.hop_by_hop, dwa.end_to_end, result_code_of(dwa)) == ("DWA", 77, 78, 2001)
    assert not dwa.problems
    assert stats.errors["unmatched_answers"] == 1 and stats.answers == 0


def test_the_window_is_not_drained_before_the_load_starts() -> None:
    async def scenario() -> LoadConnection:
        config = LoadConfig(LOOPBACK, 3868, ["35209900176148"], inflight=4)
        templates = EcrTemplates(config.identity, config.imeis, "1;", "43701", None)
        connection = LoadConnection(config, LoadStats(), templates, 0)
        connection.transport = _Transport()  # type: ignore[assignment]
        connection.state = LinkState.WAIT_CEA
        connection.data_received(samples.cea(hop_by_hop=connection._cer.hop_by_hop).to_bytes())
        assert connection.state == "open" and connection.opened.done()
        assert not connection.drained.done()  # a drain before start() would end the run at once
        connection.start(deadline_ns=0)  # the deadline has passed: the first answers end the load
        assert len(connection.pending) == 4
        connection.stop()
        assert not connection.drained.done()
        for hop in list(connection.pending):
            connection.data_received(samples.eca(hop_by_hop=hop).to_bytes())
        assert connection.drained.done() and connection.stats.answers == 4
        assert connection.stats.sent == 4 and not connection.stats.errors
        return connection

    asyncio.run(scenario())
