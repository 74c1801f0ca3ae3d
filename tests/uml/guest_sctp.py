"""Runs inside the User-Mode Linux guest that tests/uml boots (kernel SCTP). By default:

- a capture of every SCTP packet on loopback (dumpcap, for the host's tshark to decode);
- the real ``eir serve``, with S13 (Diameter) and MAP (M3UA) both over SCTP;
- ``eir sim checkimei --transport sctp`` for each IMEI in guest.json, and one
  ``eir sim ecr --transport sctp``, each writing its own capture (``--pcap``: tap-*.pcap);
- a raw ASP written here with plain ``socket.sendmsg``/``recvmsg`` (not ``netio.sctp``):
  it sends DATA on stream 0 (the agent must answer ERR Invalid Stream Identifier), then
  the same DATA on stream 1 (answered), and records the stream and PPID of every message
  the agent sent it, as the kernel reports them (SCTP_RCVINFO).

With "stp" in guest.json it runs osmo-stp instead, with two static ASPs told apart by the
port they reach: the agent joins it as an ASP (``m3ua.connect`` over SCTP) and
``eir sim checkimei --transport sctp`` asks through it (tests/uml/test_osmo_stp.py).

Everything it learns goes to result.json in the folder given as its argument.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sigtran.asp import AspActive, AspClient, ClientSettings, DataReceived, ErrorReceived, Event
from simulator.agent_process import EIR, AgentProcess
from simulator.msc import MscIdentity, encode_request

LOOPBACK = "127.0.0.1"
DIAMETER_PORT, M3UA_PORT = 3868, 2905
SCTP_RECVRCVINFO, SCTP_SNDINFO, SCTP_RCVINFO = 32, 2, 3  # linux/sctp.h
SNDINFO = struct.Struct("=HHIIi")  # struct sctp_sndinfo: sid, flags, ppid, context, assoc_id
RCVINFO = struct.Struct("=HHHxxIIIIi")  # struct sctp_rcvinfo: sid, ssn, flags, ppid, tsn, cumtsn, context, assoc_id
ASPDN_ACK = (3, 5)  # M3UA class ASPSM, type 5


def start_capture(path: Path, timeout: float = 15.0) -> subprocess.Popen[bytes]:
    log = path.with_suffix(".log")
    with log.open("w") as err:
        capture = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-f", "sctp", "-w", str(path)],
                                   stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + timeout
    while "Capturing on" not in log.read_text():
        if capture.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"dumpcap did not start: {log.read_text()}")
        time.sleep(0.05)
    return capture


def stop_capture(capture: subprocess.Popen[bytes]) -> int:
    time.sleep(0.3)  # the last packets reach the capture
    capture.send_signal(signal.SIGTERM)
    return capture.wait(10)


def eir(registry: str, *args: str) -> dict[str, Any]:
    """An ``eir`` command's JSON output and exit status."""
    started = time.monotonic()
    done = subprocess.run([*EIR, "--registry", registry, *args], capture_output=True, text=True, timeout=60)
    try:
        output = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        output = {"stdout": done.stdout}
    return {"exit": done.returncode, "output": output, "stderr": done.stderr,
            "seconds": round(time.monotonic() - started, 2)}


# --- a raw ASP: plain sendmsg/recvmsg with SCTP_SNDINFO/SCTP_RCVINFO ----------------------------


class RawAsp:
    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
        self.sock.setsockopt(socket.IPPROTO_SCTP, SCTP_RECVRCVINFO, 1)
        self.sock.settimeout(5)
        self.sock.connect((host, port))
        self.asp = AspClient(ClientSettings())
        self.received: list[dict[str, int]] = []  # each message the agent sent: class, type, stream, ppid

    def send(self, data: bytes, stream: int) -> None:
        info = SNDINFO.pack(stream, 0, socket.htonl(3), 0, 0)
        self.sock.sendmsg([data], [(socket.IPPROTO_SCTP, SCTP_SNDINFO, info)])

    def flush(self) -> None:
        """What the AspClient queued (ASPUP, ASPAC, ASPDN): management, on stream 0."""
        data = self.asp.data_to_send()
        if data:
            self.send(data, 0)

    def events(self) -> list[Event]:
        data, ancillary, _, _ = self.sock.recvmsg(1 << 17, socket.CMSG_SPACE(RCVINFO.size))
        if not data:
            raise ConnectionError("the agent closed the association")
        stream, ppid = -1, -1
        for level, kind, value in ancillary:
            if level == socket.IPPROTO_SCTP and kind == SCTP_RCVINFO:
                stream, _, _, raw_ppid, *_ = RCVINFO.unpack_from(value)
                ppid = socket.ntohl(raw_ppid)
        self.received.append({"class": data[2], "type": data[3], "stream": stream, "ppid": ppid,
                              "length": len(data)})
        events = self.asp.receive_data(data, time.monotonic())
        self.flush()
        return events

    def up(self) -> None:
        self.asp.connection_made(time.monotonic())
        self.flush()
        while not any(isinstance(event, AspActive) for event in self.events()):
            pass

    def ask(self, data: bytes, stream: int) -> dict[str, Any]:
        """Send one DATA on ``stream``; what came back: an ERR's code, or a DATA."""
        self.send(data, stream)
        for _ in range(5):
            for event in self.events():
                if isinstance(event, ErrorReceived):
                    return {"err": event.code, **self.received[-1]}
                if isinstance(event, DataReceived):
                    return {"data": len(event.data.user_data), **self.received[-1]}
        return {"nothing": True}

    def close(self) -> None:
        """ASPDN, and the association ends with the ASPDN-ACK."""
        self.asp.close(time.monotonic())
        self.flush()
        with contextlib.suppress(ConnectionError, OSError):
            while (self.received[-1]["class"], self.received[-1]["type"]) != ASPDN_ACK:
                self.events()
        self.sock.close()


def stream_zero(imei: str) -> dict[str, Any]:
    request = encode_request(MscIdentity(), bytes.fromhex("0badcafe"), imei[:14] + "0", 3, sls=5)
    asp = RawAsp(LOOPBACK, M3UA_PORT)
    try:
        asp.up()
        on_zero = asp.ask(request, 0)
        on_one = asp.ask(request, 1)
    finally:
        asp.close()
    return {"on_stream_0": on_zero, "on_stream_1": on_one, "received": asp.received}


# --- with osmo-stp between them ------------------------------------------------------------------

STP_MSC_PORT, STP_EIR_PORT = 2905, 2906  # osmo-stp tells its two static ASPs apart by the port they reach
STP_CONFIG = """\
log stderr
 logging filter all 1
 logging color 0
 logging print category 1
 logging timestamp 0
 logging level set-all notice
line vty
 no login
cs7 instance 0
 point-code 0.0.3
 listen m3ua {msc_port}
  local-ip 127.0.0.1
 listen m3ua {eir_port}
  local-ip 127.0.0.1
 asp asp-msc 0 {msc_port} m3ua
  local-ip 127.0.0.1
  role sg
  sctp-role server
 asp asp-eir 0 {eir_port} m3ua
  local-ip 127.0.0.1
  role sg
  sctp-role server
 as as-msc m3ua
  asp asp-msc
  routing-key {msc_rc} 0.0.{msc_pc}
 as as-eir m3ua
  asp asp-eir
  routing-key {eir_rc} 0.0.{eir_pc}
 route-table system
  update route 0.0.{msc_pc} 7.255.7 linkset as-msc
  update route 0.0.{eir_pc} 7.255.7 linkset as-eir
"""


def start_stp(folder: Path, stp: dict[str, int], template: str = STP_CONFIG) -> subprocess.Popen[bytes]:
    """osmo-stp with ``template`` (STP_CONFIG unless told) filled in from ``stp`` and the two
    ports; returns once it accepts an association on STP_EIR_PORT."""
    config = folder / "osmo-stp.cfg"
    config.write_text(template.format(msc_port=STP_MSC_PORT, eir_port=STP_EIR_PORT, **stp))
    with (folder / "osmo-stp.log").open("w") as log:
        process = subprocess.Popen(["osmo-stp", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                   cwd=folder)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"osmo-stp exited: {(folder / 'osmo-stp.log').read_text()}")
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
        try:
            probe.connect((LOOPBACK, STP_EIR_PORT))
            return process  # the probe's association: an ASP that never says ASPUP, gone at once
        except OSError:
            time.sleep(0.1)
        finally:
            probe.close()
    raise RuntimeError("osmo-stp did not listen within 15 s")


def wait_for(path: Path, text: str, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def run_stp(folder: Path, setup: dict[str, Any]) -> dict[str, Any]:
    """The agent joins osmo-stp as an ASP (m3ua.connect over SCTP); the MSC asks through the STP."""
    registry, stp = setup["registry"], setup["stp"]
    result: dict[str, Any] = {"timings": {}}
    started = time.monotonic()
    capture = start_capture(folder / "sctp.pcapng")
    process = start_stp(folder, stp)
    config = folder / "eir.yaml"
    config.write_text(json.dumps({"m3ua": {"point_code": stp["eir_pc"], "connect": [
        {"address": f"{LOOPBACK}:{STP_EIR_PORT}", "transport": "sctp", "routing_context": stp["eir_rc"]}]}}))
    agent = AgentProcess(folder, registry, "--profile", setup["profile"], "--config", str(config))
    try:
        result["joined"] = wait_for(agent.stderr_path, "joined M3UA gateway")
        result["timings"]["agent_joined"] = round(time.monotonic() - started, 2)
        result["checkimei"] = {name: eir(registry, "sim", "checkimei", "--peer", f"{LOOPBACK}:{STP_MSC_PORT}",
                                         "--transport", "sctp", "--routing-context", str(stp["msc_rc"]),
                                         "--opc", str(stp["msc_pc"]), "--dpc", str(stp["eir_pc"]), "--json", imei)
                               for name, imei in setup["imeis"].items()}
    finally:
        result["agent_exit"] = agent.stop()
        process.send_signal(signal.SIGTERM)
        result["stp_exit"] = process.wait(10)
        result["capture_exit"] = stop_capture(capture)
        result["agent_log"] = agent.log()
        result["stp_log"] = (folder / "osmo-stp.log").read_text()
    result["timings"]["total"] = round(time.monotonic() - started, 2)
    return result


# --- the run ---------------------------------------------------------------------------------


def run(folder: Path) -> dict[str, Any]:
    setup = json.loads((folder / "guest.json").read_text())
    if "stp" in setup:
        return run_stp(folder, setup)
    registry = setup["registry"]
    result: dict[str, Any] = {"timings": {}}
    started = time.monotonic()
    capture = start_capture(folder / "sctp.pcapng")
    agent = AgentProcess(folder, registry, "--transport", "sctp", "--m3ua-listen", f"{LOOPBACK}:{M3UA_PORT}",
                         "--m3ua-transport", "sctp", "--profile", setup["profile"], port=DIAMETER_PORT)
    result["timings"]["agent_ready"] = round(time.monotonic() - started, 2)
    try:
        result["checkimei"] = {name: eir(registry, "sim", "checkimei", "--peer", f"{LOOPBACK}:{M3UA_PORT}",
                                         "--transport", "sctp", "--json", imei,
                                         "--pcap", str(folder / f"tap-checkimei-{name}.pcap"))
                               for name, imei in setup["imeis"].items()}
        result["ecr"] = eir(registry, "sim", "ecr", "--peer", f"{LOOPBACK}:{DIAMETER_PORT}", "--transport", "sctp",
                            "--json", setup["imeis"]["white"], "--pcap", str(folder / "tap-ecr.pcap"))
        result["raw_asp"] = stream_zero(setup["imeis"]["white"])
    finally:
        result["agent_exit"] = agent.stop()
        result["capture_exit"] = stop_capture(capture)
        result["agent_log"] = agent.log()
    result["timings"]["total"] = round(time.monotonic() - started, 2)
    return result


def guest_main(run: Callable[[Path, dict[str, Any]], object]) -> None:
    """A guest driver's main: ``run(folder, result)`` on the folder given as the argument,
    then ``result`` written to result.json there (with the error, if ``run`` raised: the host
    test reports it, and the rest says how far it got) and synced before the guest halts."""
    folder = Path(sys.argv[1])
    result: dict[str, Any] = {}
    try:
        run(folder, result)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    (folder / "result.json").write_text(json.dumps(result, indent=1))
    os.sync()


def main() -> None:
    guest_main(lambda folder, result: result.update(run(folder)))


if __name__ == "__main__":
    main()
