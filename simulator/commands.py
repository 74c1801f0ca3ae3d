"""``eir sim`` and ``eir demo``: the network around the agent, from the command line. Parse, call, print."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from diameter.transport import DIAMETER_PORT
from simulator.captures import CaptureError
from simulator.command_options import address
from simulator.commands_lab import lab
from simulator.commands_replay import replay
from simulator.commands_run import run
from simulator.commands_traffic import traffic
from simulator.conformance_common import DEFAULT_IMEI, DEFAULT_UNKNOWN_ORIGIN_HOST
from simulator.load import LoadConfig, LoadFailed, run_load
from simulator.load_map import MapLoadConfig, run_map_load
from simulator.load_wire import DEFAULT_TAC, MAX_CONNECTIONS, generated_imeis, read_imeis
from simulator.mme import DEFAULT_ORIGIN_HOST, DEFAULT_REALM, EcrFailed, MmeIdentity, parse_peer, send_ecr
from simulator.msc import M3UA_PORT, CheckImeiFailed, MscIdentity, send_checkimei

if TYPE_CHECKING:
    from netio.capture import Capture

T = TypeVar("T")

_MSC = MscIdentity()


def _msc_options(function: Any) -> Any:
    """The MTP3 label and SCCP addresses of the emulated MSC (``simulator.msc.MscIdentity``)."""
    point_code = click.IntRange(0, 0x3FFF)
    for option in reversed([
        click.option("--opc", default=_MSC.opc, show_default=True, type=point_code, help="Our point code (OPC)."),
        click.option("--dpc", default=_MSC.dpc, show_default=True, type=point_code, help="The EIR's point code."),
        click.option("--routing-context", type=click.IntRange(0, 0xFFFFFFFF),
                     help="M3UA Routing Context of ASPAC and DATA (default: none)."),
        click.option("--calling-gt", default=_MSC.calling_gt, show_default=True, help="Our global title."),
        click.option("--calling-ssn", default=_MSC.calling_ssn, show_default=True, type=click.IntRange(0, 255),
                     help="Our subsystem: 8 MSC, 7 VLR, 149 SGSN."),
        click.option("--called-gt", default=_MSC.called_gt, show_default=True, help="The EIR's global title."),
    ]):
        function = option(function)
    return function


def _msc(opc: int, dpc: int, routing_context: int | None, calling_gt: str, calling_ssn: int,
         called_gt: str) -> MscIdentity:
    for name, digits in (("--calling-gt", calling_gt), ("--called-gt", called_gt)):
        if not digits.isascii() or not digits.isdigit() or len(digits) > 30:
            raise click.BadParameter(f"{digits!r} is not 1 to 30 digits", param_hint=name)
    return MscIdentity(opc, dpc, routing_context, calling_gt=calling_gt, calling_ssn=calling_ssn,
                       called_gt=called_gt)


def _identity_options(function: Any) -> Any:
    for option in reversed([
        click.option("--origin-host", default=DEFAULT_ORIGIN_HOST, show_default=True, help="Our Origin-Host."),
        click.option("--origin-realm", default=DEFAULT_REALM, show_default=True, help="Our Origin-Realm."),
        click.option("--destination-realm", default=DEFAULT_REALM, show_default=True,
                     help="Destination-Realm of the requests."),
    ]):
        function = option(function)
    return function


def _pcap_option(help_text: str) -> Any:
    return click.option("--pcap", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE", help=help_text)


def _captured(path: Path | None, play: Callable[[Capture | None], Coroutine[Any, Any, T]]) -> T:
    """Run ``play`` with the capture of ``--pcap`` (None without), closing it after; a file that
    cannot be written is a usage error (simulator.captures)."""
    from simulator.captures import capturing

    try:
        with capturing(path) as capture:
            return asyncio.run(play(capture))
    except CaptureError as error:
        raise click.UsageError(str(error)) from None


def _transport_option(help_text: str) -> Any:
    return click.option("--transport", default="tcp", show_default=True, type=click.Choice(["tcp", "sctp"]),
                        help=help_text)


@click.command()
def demo() -> None:
    """Play the shipped enforcement tour (scenarios/tajikistan/enforcement_tour.yaml) over S13
    and over MAP against a real `eir serve --lab-clock`: a device on each list, a paired IMEI
    and its clone, an unregistered phone cut off on day 31, a roamer, a router, invalid
    IMEIs; every answer printed with the agent's rule and reason. Exit 1 if any step failed."""
    from simulator.demo import run_demo

    failed = run_demo(click.echo)
    if failed:
        click.echo(f"{failed} run(s) did not go as the scenario expects", err=True)
        sys.exit(1)


@click.group()
def sim() -> None:
    """Play the network around the agent: an MME sending ECRs, an MSC sending CheckIMEI, a load generator,
    wire conformance checks, scenario suites (run), the lab clock of an agent started with --lab-clock."""


sim.add_command(run)
sim.add_command(lab)
sim.add_command(replay)
sim.add_command(traffic)


@sim.command()
@click.option("--peer", "peer", required=True, callback=address(DIAMETER_PORT), metavar="HOST:PORT",
              help="The EIR to ask.")
@click.argument("imei")
@click.option("--imsi", help="IMSI sent as User-Name.")
@click.option("--sv", "software_version", metavar="NN", help="Software-Version inside Terminal-Information.")
@_identity_options
@_transport_option("Diameter over TCP, or over SCTP (PPID 46).")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for the CEA and the ECA.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_pcap_option("Write the connection (CER to DPA) to this pcap file, with its real addresses and ports.")
def ecr(peer: tuple[str, int], imei: str, imsi: str | None, software_version: str | None, origin_host: str,
        origin_realm: str, destination_realm: str, transport: str, timeout: float, as_json: bool,
        pcap: Path | None) -> None:
    """Send one ME-Identity-Check for IMEI (sent exactly as given) like an MME would:
    CER/CEA, ECR, print the answer, DPR. Exits 1 when no answer came."""
    identity = MmeIdentity(origin_host, origin_realm, destination_realm)
    try:
        outcome = _captured(pcap, lambda capture: send_ecr(
            peer[0], peer[1], imei, identity=identity, imsi=imsi, software_version=software_version,
            timeout=timeout, transport=transport, capture=capture))
    except EcrFailed as failed:
        if as_json:
            click.echo(json.dumps({"peer": f"{peer[0]}:{peer[1]}", "imei": imei, "error": str(failed),
                                   "cea_result_code": failed.result_code}))
        click.echo(f"error: {failed}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(outcome.to_json()))
    else:
        click.echo("\n".join(outcome.lines()))


@sim.command()
@click.option("--peer", "peer", required=True, callback=address(M3UA_PORT), metavar="HOST:PORT",
              help="The EIR's M3UA address (port 2905 when omitted).")
@click.argument("imei")
@click.option("--imsi", help="IMSI after the IMEI: the v1/v2 vendor variant.")
@click.option("--ac-version", "version", default="3", show_default=True, type=click.Choice(["1", "2", "3"]),
              help="equipmentMngtContext version; 1 sends no dialogue portion.")
@_msc_options
@_transport_option("M3UA over TCP, or over SCTP (PPID 3, DATA off stream 0).")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for each step and the answer.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_pcap_option("Write the association (ASPUP to ASPDN-ACK) to this pcap file, with its real addresses and ports.")
def checkimei(peer: tuple[str, int], imei: str, imsi: str | None, version: str, opc: int, dpc: int,
              routing_context: int | None, calling_gt: str, calling_ssn: int, called_gt: str, transport: str,
              timeout: float, as_json: bool, pcap: Path | None) -> None:
    """Send one MAP CheckIMEI for IMEI like an MSC would: ASPUP, ASPAC, a TCAP Begin in an
    SCCP UDT, print the answer, ASPDN. 14 or 15 digits are sent as TAC+SNR and the spare 0,
    other counts as given. Exits 1 when no answer came."""
    identity = _msc(opc, dpc, routing_context, calling_gt, calling_ssn, called_gt)
    try:
        outcome = _captured(pcap, lambda capture: send_checkimei(
            peer[0], peer[1], imei, imsi=imsi, version=int(version), identity=identity, timeout=timeout,
            transport=transport, capture=capture))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except CheckImeiFailed as failed:
        if as_json:
            click.echo(json.dumps({"peer": f"{peer[0]}:{peer[1]}", "imei": imei, "error": str(failed)}))
        click.echo(f"error: {failed}", err=True)
        sys.exit(1)
    click.echo(json.dumps(outcome.to_json()) if as_json else "\n".join(outcome.lines()))


def _peer_text(_: click.Context, __: click.Parameter, value: str) -> str:
    try:
        parse_peer(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@sim.command()
@click.option("--peer", "peer", required=True, callback=_peer_text, metavar="HOST:PORT",
              help="The EIR to load (port 3868 for S13, 2905 for MAP when omitted).")
@click.option("--protocol", default="s13", show_default=True, type=click.Choice(["s13", "map"]),
              help="S13 ME-Identity-Check over Diameter, or MAP CheckIMEI over M3UA.")
@click.option("--connections", default=1, show_default=True, type=click.IntRange(1, MAX_CONNECTIONS),
              help="Diameter or M3UA connections.")
@click.option("--inflight", default=64, show_default=True, type=click.IntRange(1, 65536),
              help="Requests in flight on each connection.")
@click.option("--duration", default=10.0, show_default=True, type=click.FloatRange(0.1, 86400),
              help="Seconds of load (then in-flight requests are drained).")
@click.option("--imeis", "imei_file", type=click.Path(exists=True, dir_okay=False),
              help="IMEIs to ask for: one per line, or a CSV with an 'imei' column. Default: generated.")
@click.option("--tac", default=DEFAULT_TAC, show_default=True, help="TAC of the generated IMEIs.")
@click.option("--imsi-prefix", default="43601", show_default=True,
              help="IMSI of each request: this prefix + the IMEI's position in the list, 15 digits "
                   "('none': no IMSI). S13 sends it as User-Name; MAP only with --vendor-imsi.")
@click.option("--sv", "software_version", metavar="NN", help="S13: Software-Version in every request.")
@_identity_options
@click.option("--ac-version", "version", type=click.Choice(["1", "2", "3"]),
              help="MAP: equipmentMngtContext version [default: 3].")
@click.option("--vendor-imsi", is_flag=True, help="MAP v1/v2: send the IMSI after the IMEI (vendor variant).")
@_msc_options
@click.option("--timeout", default=5.0, show_default=True, help="Seconds before a request counts as timed out.")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes sharing the connections.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_pcap_option("Write every connection of every process to this pcap file (slows the generator: "
              "each write and read becomes frames); with --processes, parts merged in time order.")
def load(peer: str, protocol: str, connections: int, inflight: int, duration: float, imei_file: str | None,
         tac: str, imsi_prefix: str, software_version: str | None, origin_host: str, origin_realm: str,
         destination_realm: str, version: str | None, vendor_imsi: bool, opc: int, dpc: int,
         routing_context: int | None, calling_gt: str, calling_ssn: int, called_gt: str, timeout: float,
         processes: int, as_json: bool, pcap: Path | None) -> None:
    """Keep N requests (S13 ECRs or MAP CheckIMEI dialogues) in flight on each of C connections
    for S seconds; report answers/s, answers by status and result, errors, and latency percentiles."""
    try:
        imeis = read_imeis(imei_file) if imei_file else generated_imeis(tac)
    except (OSError, ValueError, UnicodeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--imeis/--tac") from None
    prefix = None if imsi_prefix.lower() in ("", "none") else imsi_prefix
    config: LoadConfig | MapLoadConfig
    if protocol == "map":
        if software_version is not None:
            raise click.BadParameter("a Software-Version is S13 only", param_hint="--sv")
        if vendor_imsi and prefix is None:
            raise click.BadParameter("--vendor-imsi needs an IMSI prefix", param_hint="--imsi-prefix")
        host, port = parse_peer(peer, M3UA_PORT)
        config = MapLoadConfig(host, port, imeis, connections, inflight, duration, timeout, int(version or 3),
                               prefix if vendor_imsi else None,
                               _msc(opc, dpc, routing_context, calling_gt, calling_ssn, called_gt), processes,
                               pcap=pcap)
    else:
        if version is not None or vendor_imsi:
            raise click.BadParameter("MAP only (--protocol map)", param_hint="--ac-version/--vendor-imsi")
        host, port = parse_peer(peer)
        config = LoadConfig(host=host, port=port, imeis=imeis, connections=connections, inflight=inflight,
                            duration=duration, timeout=timeout, imsi_prefix=prefix, software_version=software_version,
                            identity=MmeIdentity(origin_host, origin_realm, destination_realm), processes=processes,
                            pcap=pcap)
    try:
        result = run_map_load(config) if isinstance(config, MapLoadConfig) else run_load(config)
    except CaptureError as error:
        raise click.UsageError(str(error)) from None
    except (LoadFailed, ValueError) as exc:
        if as_json:
            click.echo(json.dumps({"peer": f"{host}:{port}", "error": str(exc)}))
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(result) if as_json else "\n".join(_load_lines(result)))
    if result["answers"] == 0:
        click.echo("error: no answer at all", err=True)
        sys.exit(1)


def _by_result(result: dict[str, Any]) -> str:
    if "by_result" in result:  # MAP: "result", an error's name, reject, abort...
        return ", ".join(f"{k} {v}" for k, v in result["by_result"].items())
    names = result["result_code_names"]
    return ", ".join(f"{k} {names.get(k, '')} {v}".replace("  ", " ") for k, v in result["by_result_code"].items())


def _load_lines(result: dict[str, Any]) -> list[str]:
    latency = result["latency_ms"]
    errors = {k: v for k, v in result["errors"].items() if v}
    cpu = result["generator_cpu_s"]
    what = f" (MAP CheckIMEI v{result['ac_version']})" if result.get("protocol") == "map" else ""
    return [
        f"peer         {result['peer']}{what}: {result['connections']} connection(s) x {result['inflight']} "
        f"in flight, {result['processes']} process(es), {result['imeis']} IMEIs",
        f"answers      {result['answers']} in {result['duration_s']} s = {result['answers_per_s']:.0f}/s "
        f"({result['requests']} requests sent)",
        "by status    " + ", ".join(f"{k} {v}" for k, v in result["by_status"].items()),
        "by result    " + _by_result(result),
        "errors       " + (", ".join(f"{k} {v}" for k, v in errors.items()) or "none"),
        "latency ms   " + "  ".join(f"{k} {v}" for k, v in latency.items()),
        f"generator    {cpu} s CPU ({100 * cpu / max(result['duration_s'], 1e-9):.0f}% of one core"
        f"{' summed over processes' if result['processes'] > 1 else ''})",
    ]


@sim.command()
@click.argument("peer", required=False, callback=address(DIAMETER_PORT), metavar="[HOST:PORT]")
@click.option("--map", "map_peer", callback=address(M3UA_PORT), metavar="HOST:PORT",
              help="The EIR's M3UA address: run the MAP checks there (port 2905 when omitted).")
@click.option("--check", "names", multiple=True, metavar="NAME",
              help="Run only this check (repeatable); --list shows the names.")
@click.option("--list", "listing", is_flag=True, help="Print each check's name and description, and exit.")
@click.option("--imei", default=DEFAULT_IMEI, show_default=True, help="The IMEI of the checks that need one.")
@click.option("--unknown-origin-host", default=DEFAULT_UNKNOWN_ORIGIN_HOST, show_default=True,
              help="unknown-peer: an Origin-Host the EIR does not allow.")
@_identity_options
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for each answer.")
@click.option("--close-wait", default=10.0, show_default=True,
              help="Seconds to wait for the EIR to close the connection after a DPA or a refusing CEA.")
@click.option("-v", "--verbose", is_flag=True, help="Under each check, what was sent and what came back.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per check.")
@_pcap_option("Write every connection of the checks (well-formed or not) to this pcap file.")
def conformance(peer: tuple[str, int] | None, map_peer: tuple[str, int] | None, names: tuple[str, ...],
                listing: bool, imei: str, unknown_origin_host: str, origin_host: str, origin_realm: str,
                destination_realm: str, timeout: float, close_wait: float, verbose: bool, as_json: bool,
                pcap: Path | None) -> None:
    """Run the wire conformance checks against an EIR: the Diameter (S13) ones at HOST:PORT,
    the MAP ones at --map. Prints what each check observed, one line per check; it judges
    nothing (a scenario's expectations do). Exits 1 when a check could not connect, 2 when
    there is nothing to run."""
    from simulator.conformance import CHECKS, CheckOptions, run_check

    if listing:
        for check in CHECKS.values():
            click.echo(f"{check.name:<32} {check.interface:<9} {check.description}")
        return
    unknown = [name for name in names if name not in CHECKS]
    if unknown:
        raise click.BadParameter(f"no check named {', '.join(unknown)} (see --list)", param_hint="--check")
    targets = {"diameter": peer, "map": map_peer}
    chosen = [(name, targets[check.interface]) for name, check in CHECKS.items() if not names or name in names]
    runnable = [(name, target) for name, target in chosen if target is not None]
    if not runnable:
        raise click.UsageError("nothing to run: give HOST:PORT for the Diameter checks, --map for the MAP ones")
    async def main(capture: Capture | None) -> int:
        options = CheckOptions(origin_host, origin_realm, destination_realm, timeout, imei, unknown_origin_host,
                               close_wait, capture=capture)
        unreachable = 0
        for name, (host, port) in runnable:  # one at a time: each is one exchange, as an engineer reads them
            observation = await run_check(name, host, port, options=options)
            unreachable += "connect_error" in observation.fields
            if as_json:
                click.echo(json.dumps({"check": name, "peer": f"{host}:{port}", **observation.fields,
                                       "detail": observation.detail}))
            else:
                click.echo(observation.line() + (f"\n    {observation.detail}" if verbose else ""))
        return unreachable

    if _captured(pcap, main):
        click.echo("error: some checks could not connect", err=True)
        sys.exit(1)
