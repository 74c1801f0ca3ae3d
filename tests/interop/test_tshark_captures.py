"""``--pcap FILE`` of every simulator command, judged by tshark (Wireshark 4.0), which nobody here
wrote: a real `eir sim ecr`, `checkimei`, `load` (S13 over two processes, MAP) and `run` against
a real agent, each writing a capture; tshark must read every file without a malformed packet, an
expert error or a TCP analysis flag, decode every ECR/ECA and every CheckIMEI invoke and answer
(M3UA over TCP with the shipped Lua dissector), and show the real ports of the run: the agent's
listening port as the destination of every request, and as client ports exactly those the
agent logged for the connections it accepted. A scenario's capture carries its IMEIs and the
lab clock's days (day 31 is day 31 in Wireshark). The SCTP frames the tap writes for an
association decode as Diameter and M3UA by their PPID alone.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.utils import rdpcap

from diameter.transport import SCTP_DIAMETER
from netio.pcap import PcapFlowWriter
from netio.pcap_sctp import SctpAssociations
from netio.sctp import Payload
from sigtran.m3ua_streams import M3UA
from sigtran.map import EquipmentStatus
from simulator.agent_process import AgentProcess
from simulator.demo_registry import BLACK, IMSI, WHITE, build_demo_registry
from simulator.msc import map_imei
from simulator.scenario import load_scenario
from tests.tools import LOOPBACK, require_tool

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
LUA = (ROOT / "simulator" / "wireshark" / "m3ua_tcp.lua").read_text()
SCENARIO = ROOT / "scenarios" / "grey_list" / "black_after_deadline.yaml"
ECR_CODE = "324"
INVOKE, RETURN_RESULT_LAST = "1", "2"  # gsm_map.old.Component
S13_STATUS = {"WHITELISTED": "0", "BLACKLISTED": "1", "GREYLISTED": "2"}
# A scenario's MAP attach is the vendor v2 variant, the IMSI after the IMEI, which TS 29.002 has no
# place for: tshark flags that invoke with this warning (tests/interop/test_tshark_map.py), nothing else.
VENDOR_WARNING = "BER Error: This field lies beyond the end of the known sequence definition."
PROBLEMS = "_ws.malformed || _ws.expert.severity >= error || (tcp.analysis.flags && !tcp.analysis.window_update)"


@dataclass
class Tshark:
    path: str
    folder: Path

    def run(self, pcap: Path, *args: str, diameter: int | None = None, m3ua: int | None = None) -> str:
        decode: list[str] = []
        if diameter is not None:
            decode += ["-d", f"tcp.port=={diameter},diameter"]
        if m3ua is not None:
            lua = self.folder / f"m3ua_tcp_{m3ua}.lua"
            lua.write_text(LUA.replace("local port = 2905", f"local port = {m3ua}"))
            decode += ["-X", f"lua_script:{lua}"]
        return subprocess.run([self.path, "-r", str(pcap), *decode, *args], capture_output=True, text=True,
                              timeout=120, check=True).stdout

    def rows(self, pcap: Path, display_filter: str, *fields: str, **decode: int) -> list[dict[str, str]]:
        out = self.run(pcap, "-Y", display_filter, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,",
                       *(arg for field in fields for arg in ("-e", field)), **decode)
        return [dict(zip(fields, line.split("\t"), strict=True)) for line in out.splitlines()]

    def problems(self, pcap: Path, vendor_invokes: bool = False, **decode: int) -> list[str]:
        """Malformed packets, expert errors and TCP analysis flags, as tshark reports them
        (``vendor_invokes``: but VENDOR_WARNING on a CheckIMEI invoke)."""
        fields = ("frame.number", "_ws.expert.message", "gsm_map.old.Component")
        flagged = [f"frame {row['frame.number']}: {row['_ws.expert.message']}"
                   for row in self.rows(pcap, PROBLEMS, *fields, **decode)
                   if not (vendor_invokes and row["_ws.expert.message"] == VENDOR_WARNING
                           and row["gsm_map.old.Component"] == INVOKE)]
        summary = self.run(pcap, "-q", "-z", "expert,error", **decode)
        return flagged + [line for line in summary.splitlines() if line.startswith("Errors")]


@dataclass
class Agent:
    process: AgentProcess
    folder: Path

    @property
    def port(self) -> int:
        return self.process.address[1]

    @property
    def m3ua_port(self) -> int:
        return self.process.m3ua_address[1]

    def client_ports(self, since: int) -> tuple[set[int], set[int]]:
        """The (Diameter, M3UA) client ports the agent logged as connecting after log offset ``since``."""
        log = self.process.stderr_path.read_text()[since:]
        diameter = {int(port) for port in re.findall(r"peer \S+ \(\('127\.0\.0\.1', (\d+)\)\) open", log)}
        m3ua = {int(port) for port in re.findall(r"M3UA connection with 127\.0\.0\.1:(\d+)$", log, re.M)}
        return diameter, m3ua

    def log_size(self) -> int:
        return len(self.process.stderr_path.read_text())


@pytest.fixture(scope="module")
def tshark(tmp_path_factory: pytest.TempPathFactory) -> Tshark:
    return Tshark(require_tool("tshark"), tmp_path_factory.mktemp("lua"))


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    folder = tmp_path_factory.mktemp("captures-agent")
    process = AgentProcess(folder, build_demo_registry(folder), m3ua=True)
    try:
        yield Agent(process, folder)
    finally:
        assert process.stop() == 0, process.log()


def sim(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "eir", "sim", *args], capture_output=True, text=True,
                            timeout=180, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def pairs(row: dict[str, str], *fields: str) -> list[tuple[str, ...]]:
    """The messages of one frame: its aggregated fields zipped back together."""
    return list(zip(*(row[field].split(",") for field in fields), strict=True))


def test_sim_ecr_pcap_holds_the_whole_connection_with_its_real_ports(tshark: Tshark, agent: Agent,
                                                                     tmp_path: Path) -> None:
    pcap = tmp_path / "ecr.pcap"
    since = agent.log_size()
    outcome = json.loads(sim("ecr", "--peer", f"{LOOPBACK}:{agent.port}", WHITE, "--imsi", IMSI, "--json",
                             "--pcap", str(pcap)).stdout)
    assert outcome["equipment_status"] == "WHITELISTED"
    assert tshark.problems(pcap, diameter=agent.port) == []
    fields = ("diameter.cmd.code", "diameter.flags.request", "tcp.srcport", "tcp.dstport", "diameter.IMEI",
              "diameter.User-Name", "diameter.Equipment-Status")
    rows = tshark.rows(pcap, "diameter", *fields, diameter=agent.port)
    assert [(row["diameter.cmd.code"], row["diameter.flags.request"]) for row in rows] == [
        ("257", "1"), ("257", "0"), (ECR_CODE, "1"), (ECR_CODE, "0"), ("282", "1"), ("282", "0")]
    ecr, eca = rows[2], rows[3]
    assert (ecr["diameter.IMEI"], ecr["diameter.User-Name"]) == (WHITE, IMSI)
    assert eca["diameter.Equipment-Status"] == S13_STATUS["WHITELISTED"]
    assert ecr["tcp.dstport"] == eca["tcp.srcport"] == str(agent.port)
    diameter_ports, _ = agent.client_ports(since)
    assert {int(row["tcp.srcport"]) for row in rows if row["diameter.flags.request"] == "1"} == diameter_ports
    assert len(diameter_ports) == 1


def test_sim_checkimei_pcap_decodes_the_dialogue_with_its_real_ports(tshark: Tshark, agent: Agent,
                                                                     tmp_path: Path) -> None:
    pcap = tmp_path / "checkimei.pcap"
    since = agent.log_size()
    outcome = json.loads(sim("checkimei", "--peer", f"{LOOPBACK}:{agent.m3ua_port}", BLACK, "--json",
                             "--pcap", str(pcap)).stdout)
    assert outcome["status"] == "BLACK_LISTED"
    assert tshark.problems(pcap, m3ua=agent.m3ua_port) == []
    rows = tshark.rows(pcap, "gsm_map.old.Component", "gsm_map.old.Component", "tcap.otid", "tcap.dtid",
                       "gsm_map.tbcd_digits", "gsm_map.ms.equipmentStatus", "tcp.srcport", "tcp.dstport",
                       m3ua=agent.m3ua_port)
    assert [row["gsm_map.old.Component"] for row in rows] == [INVOKE, RETURN_RESULT_LAST]
    invoke, answer = rows
    assert invoke["tcap.otid"] == answer["tcap.dtid"] == outcome["otid"]
    assert invoke["gsm_map.tbcd_digits"] == map_imei(BLACK)
    assert answer["gsm_map.ms.equipmentStatus"] == str(int(EquipmentStatus.BLACK_LISTED))
    assert invoke["tcp.dstport"] == answer["tcp.srcport"] == str(agent.m3ua_port)
    _, m3ua_ports = agent.client_ports(since)
    assert m3ua_ports == {int(invoke["tcp.srcport"])}
    handshake = tshark.rows(pcap, "m3ua", "m3ua.message_class", "m3ua.message_type", m3ua=agent.m3ua_port)
    assert len(handshake) >= 6  # ASPUP, its ACK, ASPAC, its ACK, the DATA pair, ASPDN and its ACK


def test_sim_load_over_two_processes_writes_every_ecr_and_eca_into_one_file(tshark: Tshark, agent: Agent,
                                                                            tmp_path: Path) -> None:
    pcap = tmp_path / "load.pcap"
    since = agent.log_size()
    report = json.loads(sim("load", "--peer", f"{LOOPBACK}:{agent.port}", "--connections", "3", "--processes", "2",
                            "--inflight", "8", "--duration", "1", "--json", "--pcap", str(pcap)).stdout)
    assert report["answers"] == report["requests"] > 0 and report["error_total"] == 0, report
    assert sorted(path.name for path in tmp_path.iterdir()) == ["load.pcap"]  # the parts are merged, removed
    assert tshark.problems(pcap, diameter=agent.port) == []
    fields = ("diameter.cmd.code", "diameter.flags.request", "tcp.srcport", "tcp.dstport")
    requests, answers, ports = 0, 0, set()
    for row in tshark.rows(pcap, f"diameter.cmd.code == {ECR_CODE}", *fields, diameter=agent.port):
        for code, request in pairs(row, "diameter.cmd.code", "diameter.flags.request"):
            if code == ECR_CODE and request == "1":
                requests += 1
                assert row["tcp.dstport"] == str(agent.port)
                ports.add(int(row["tcp.srcport"]))
            elif code == ECR_CODE:
                answers += 1
                assert row["tcp.srcport"] == str(agent.port)
    assert (requests, answers) == (report["requests"], report["answers"])
    assert ports == agent.client_ports(since)[0] and len(ports) == 3
    times = [float(t) for t in tshark.run(pcap, "-T", "fields", "-e", "frame.time_epoch").split()]
    assert times == sorted(times)


def test_sim_load_map_writes_every_invoke_and_answer(tshark: Tshark, agent: Agent, tmp_path: Path) -> None:
    pcap = tmp_path / "load-map.pcap"
    since = agent.log_size()
    report = json.loads(sim("load", "--protocol", "map", "--peer", f"{LOOPBACK}:{agent.m3ua_port}",
                            "--connections", "2", "--inflight", "8", "--duration", "1", "--json",
                            "--pcap", str(pcap)).stdout)
    assert report["answers"] == report["requests"] > 0 and report["error_total"] == 0, report
    assert tshark.problems(pcap, m3ua=agent.m3ua_port) == []
    components: dict[str, int] = {}
    ports = set()
    for row in tshark.rows(pcap, "gsm_map.old.Component", "gsm_map.old.Component", "tcp.srcport", "tcp.dstport",
                           m3ua=agent.m3ua_port):
        for (component,) in pairs(row, "gsm_map.old.Component"):
            components[component] = components.get(component, 0) + 1
        if INVOKE in row["gsm_map.old.Component"].split(","):
            assert row["tcp.dstport"] == str(agent.m3ua_port)
            ports.add(int(row["tcp.srcport"]))
    assert components == {INVOKE: report["requests"], RETURN_RESULT_LAST: report["answers"]}
    assert ports == agent.client_ports(since)[1] and len(ports) == 2


def test_sim_run_writes_one_capture_per_run_on_the_lab_clock(tshark: Tshark, tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIO)
    (imei,) = scenario.handsets["phone"].imeis
    out = sim("run", str(SCENARIO), "--pcap", str(tmp_path / "suite.pcap")).stdout
    s13 = tmp_path / "suite-grey_list-black_after_deadline-s13.pcap"
    map_pcap = tmp_path / "suite-grey_list-black_after_deadline-map.pcap"
    assert f"  pcap {s13}" in out and f"  pcap {map_pcap}" in out, out
    assert sorted(tmp_path.iterdir()) == sorted([s13, map_pcap])
    port = int(tshark.run(s13, "-c", "1", "-T", "fields", "-e", "tcp.dstport"))
    assert tshark.problems(s13, diameter=port) == []
    rows = tshark.rows(s13, f"diameter.cmd.code == {ECR_CODE}", "diameter.flags.request", "diameter.IMEI",
                       "diameter.Equipment-Status", "frame.time_epoch", "tcp.dstport", diameter=port)
    ecrs = [row for row in rows if row["diameter.flags.request"] == "1"]
    assert [row["diameter.IMEI"] for row in ecrs] == [imei] * 3
    assert all(row["tcp.dstport"] == str(port) for row in ecrs)
    assert [row["diameter.Equipment-Status"] for row in rows if row["diameter.flags.request"] == "0"] == [
        S13_STATUS["GREYLISTED"], S13_STATUS["GREYLISTED"], S13_STATUS["BLACKLISTED"]]
    days = [datetime.fromtimestamp(float(row["frame.time_epoch"]), scenario.start.tzinfo) for row in ecrs]
    start = scenario.start
    assert [(day - start) // timedelta(days=1) + 1 for day in days] == [1, 5, 31]  # the scenario's days
    assert all(timedelta(0) <= day - start - (day - start) // timedelta(days=1) * timedelta(days=1)
               < timedelta(minutes=1) for day in days)  # each a few real seconds after its lab time
    m3ua_port = int(tshark.run(map_pcap, "-c", "1", "-T", "fields", "-e", "tcp.dstport"))
    assert tshark.problems(map_pcap, vendor_invokes=True, m3ua=m3ua_port) == []
    invokes = tshark.rows(map_pcap, f"gsm_map.old.Component == {INVOKE}", "gsm_map.tbcd_digits", "tcp.dstport",
                          m3ua=m3ua_port)
    assert [row["gsm_map.tbcd_digits"] for row in invokes] == [map_imei(imei)] * 3
    assert all(row["tcp.dstport"] == str(m3ua_port) for row in invokes)


def test_sim_run_of_one_scenario_on_one_interface_writes_the_file_named(tshark: Tshark, tmp_path: Path) -> None:
    pcap = tmp_path / "one.pcap"
    out = sim("run", str(SCENARIO), "--interface", "s13", "--pcap", str(pcap)).stdout
    assert f"  pcap {pcap}" in out and sorted(tmp_path.iterdir()) == [pcap], out
    port = int(tshark.run(pcap, "-c", "1", "-T", "fields", "-e", "tcp.dstport"))
    assert len(tshark.rows(pcap, f"diameter.cmd.code == {ECR_CODE}", "frame.number", diameter=port)) == 6


def test_a_capture_file_that_cannot_be_written_is_a_usage_error(agent: Agent, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    result = subprocess.run([sys.executable, "-m", "eir", "sim", "ecr", "--peer", f"{LOOPBACK}:{agent.port}", WHITE,
                             "--pcap", str(tmp_path / "taken" / "ecr.pcap")], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 2 and "cannot write the capture" in result.stderr, result.stderr



def as_sctp(tcp_pcap: Path, sctp_pcap: Path, payload: Payload) -> None:
    """The messages of a TCP capture written again as one SCTP association, cut and put on
    streams as the tap does over kernel SCTP (this machine may have no SCTP to run one)."""
    writer = PcapFlowWriter(sctp_pcap)
    associations = SctpAssociations(writer)
    for frame in rdpcap(str(tcp_pcap)):
        segment = frame[TCP]
        data = bytes(segment.payload)
        src, dst = (frame[IP].src, segment.sport), (frame[IP].dst, segment.dport)
        for message, stream in payload.split(data, 16) if data else ():
            associations.send(float(frame.time), src, dst, message, payload.ppid, stream)
    associations.close_all(float(frame.time))
    writer.close()


def test_sctp_frames_of_the_tap_decode_as_diameter_and_m3ua(tshark: Tshark, agent: Agent, tmp_path: Path) -> None:
    sim("ecr", "--peer", f"{LOOPBACK}:{agent.port}", WHITE, "--pcap", str(tmp_path / "ecr.pcap"))
    sim("checkimei", "--peer", f"{LOOPBACK}:{agent.m3ua_port}", BLACK, "--pcap", str(tmp_path / "map.pcap"))
    as_sctp(tmp_path / "ecr.pcap", tmp_path / "ecr-sctp.pcap", SCTP_DIAMETER)
    as_sctp(tmp_path / "map.pcap", tmp_path / "map-sctp.pcap", M3UA)
    for pcap in (tmp_path / "ecr-sctp.pcap", tmp_path / "map-sctp.pcap"):  # no Lua, no -d: the PPID says
        assert tshark.problems(pcap) == []
    rows = tshark.rows(tmp_path / "ecr-sctp.pcap", "diameter", "sctp.data_payload_proto_id", "diameter.cmd.code",
                       "sctp.data_sid", "sctp.dstport")
    assert [row["diameter.cmd.code"] for row in rows] == ["257", "257", ECR_CODE, ECR_CODE, "282", "282"]
    assert {row["sctp.data_payload_proto_id"] for row in rows} == {"46"} and rows[2]["sctp.dstport"] == str(agent.port)
    rows = tshark.rows(tmp_path / "map-sctp.pcap", "gsm_map.old.Component", "gsm_map.old.Component",
                       "sctp.data_payload_proto_id", "sctp.data_sid", "gsm_map.tbcd_digits")
    assert [row["gsm_map.old.Component"] for row in rows] == [INVOKE, RETURN_RESULT_LAST]
    assert rows[0]["gsm_map.tbcd_digits"] == map_imei(BLACK)
    assert {row["sctp.data_payload_proto_id"] for row in rows} == {"3"}
    assert all(row["sctp.data_sid"] != "0" for row in rows)  # DATA off stream 0 (RFC 4666 3.8.1)


def test_sim_conformance_pcap_holds_every_check_connection(tshark: Tshark, agent: Agent, tmp_path: Path) -> None:
    pcap = tmp_path / "conformance.pcap"
    since = agent.log_size()
    out = sim("conformance", f"{LOOPBACK}:{agent.port}", "--map", f"{LOOPBACK}:{agent.m3ua_port}", "--check", "cer",
              "--check", "ecr", "--check", "map-v3", "--json", "--pcap", str(pcap)).stdout
    assert len(out.splitlines()) == 3
    decode = {"diameter": agent.port, "m3ua": agent.m3ua_port}
    assert tshark.problems(pcap, **decode) == []
    rows = tshark.rows(pcap, "diameter", "diameter.cmd.code", "diameter.flags.request", "tcp.srcport", **decode)
    assert [(row["diameter.cmd.code"], row["diameter.flags.request"]) for row in rows] == [
        ("257", "1"), ("257", "0"), ("282", "1"), ("282", "0"),  # cer: CER/CEA, then a polite DPR/DPA
        ("257", "1"), ("257", "0"), (ECR_CODE, "1"), (ECR_CODE, "0"), ("282", "1"), ("282", "0")]
    invokes = tshark.rows(pcap, f"gsm_map.old.Component == {INVOKE}", "tcp.srcport", "tcp.dstport", **decode)
    diameter_ports, m3ua_ports = agent.client_ports(since)
    assert {int(row["tcp.srcport"]) for row in rows if row["diameter.flags.request"] == "1"} == diameter_ports
    assert {int(row["tcp.srcport"]) for row in invokes} == m3ua_ports and len(m3ua_ports) == 1


def test_a_scenario_runs_capture_replays_with_no_difference(tmp_path: Path) -> None:
    """The issue's round trip: a scenario played with --pcap, its capture replayed (eir sim replay,
    which reads it with scapy, not our writer) against a fresh agent on the run's registry with
    a lab clock set to each frame's time: the same answers, day 1 to day 31, S13 and MAP."""
    scenario = load_scenario(SCENARIO)
    sim("run", str(SCENARIO), "--pcap", str(tmp_path / "run.pcap"), "--keep", str(tmp_path / "kept"))
    for interface in ("s13", "map"):
        pcap = tmp_path / f"run-grey_list-black_after_deadline-{interface}.pcap"
        port = tshark_port(pcap)
        folder = tmp_path / f"fresh-{interface}"
        folder.mkdir()
        registry = folder / "registry.db"
        registry.write_bytes((tmp_path / "kept" / f"grey_list-black_after_deadline-{interface}" /
                              "registry.db").read_bytes())
        agent = AgentProcess(folder, f"sqlite:///{registry}", "--profile", scenario.profile, m3ua=True,
                             lab_clock=scenario.start.isoformat())
        try:
            assert agent.control_path is not None
            replayed = subprocess.run(
                [sys.executable, "-m", "eir", "sim", "replay", str(pcap), "--peer", f"{LOOPBACK}:{agent.port}",
                 "--map-peer", f"{LOOPBACK}:{agent.m3ua_port}", "--control", str(agent.control_path),
                 f"--{'diameter' if interface == 's13' else 'm3ua'}-port", str(port), "--json"],
                capture_output=True, text=True, timeout=120, cwd=ROOT)
        finally:
            assert agent.stop() == 0, agent.log()
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        summary = json.loads(replayed.stdout)
        assert (summary["requests"], summary["same"], summary["different"], summary["unanswered"]) == (3, 3, 0, 0), \
            summary
        statuses = [str(item["replayed"]["status"]).replace("_", "") for item in summary["items"]]
        assert statuses == ["GREYLISTED", "GREYLISTED", "BLACKLISTED"], summary  # S13's words, MAP's with a _


def tshark_port(pcap: Path) -> int:
    """The agent's port: where the first SYN of the capture goes."""
    frames = rdpcap(str(pcap))
    return int(frames[0][TCP].dport)
