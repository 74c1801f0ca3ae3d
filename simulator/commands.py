"""``eir sim``: the network around the agent, from the command line. Parse, call, print."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click

from simulator.load import MAX_CONNECTIONS, LoadConfig, LoadFailed, run_load
from simulator.load_wire import DEFAULT_TAC, generated_imeis, read_imeis
from simulator.mme import DEFAULT_ORIGIN_HOST, DEFAULT_REALM, EcrFailed, MmeIdentity, parse_peer, send_ecr


def _peer(_: click.Context, __: click.Parameter, value: str) -> tuple[str, int]:
    try:
        return parse_peer(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _identity_options(function: Any) -> Any:
    for option in reversed([
        click.option("--origin-host", default=DEFAULT_ORIGIN_HOST, show_default=True, help="Our Origin-Host."),
        click.option("--origin-realm", default=DEFAULT_REALM, show_default=True, help="Our Origin-Realm."),
        click.option("--destination-realm", default=DEFAULT_REALM, show_default=True,
                     help="Destination-Realm of the requests."),
    ]):
        function = option(function)
    return function


@click.group()
def sim() -> None:
    """Play the network around the agent: an MME sending ECRs, a load generator."""


@sim.command()
@click.option("--peer", "peer", required=True, callback=_peer, metavar="HOST:PORT", help="The EIR to ask.")
@click.argument("imei")
@click.option("--imsi", help="IMSI sent as User-Name.")
@click.option("--sv", "software_version", metavar="NN", help="Software-Version inside Terminal-Information.")
@_identity_options
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for the CEA and the ECA.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def ecr(peer: tuple[str, int], imei: str, imsi: str | None, software_version: str | None, origin_host: str,
        origin_realm: str, destination_realm: str, timeout: float, as_json: bool) -> None:
    """Send one ME-Identity-Check for IMEI (sent exactly as given) like an MME would:
    CER/CEA, ECR, print the answer, DPR. Exits 1 when no answer came."""
    identity = MmeIdentity(origin_host, origin_realm, destination_realm)
    try:
        outcome = asyncio.run(send_ecr(peer[0], peer[1], imei, identity=identity, imsi=imsi,
                                       software_version=software_version, timeout=timeout))
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
@click.option("--peer", "peer", required=True, callback=_peer, metavar="HOST:PORT", help="The EIR to load.")
@click.option("--connections", default=1, show_default=True, type=click.IntRange(1, MAX_CONNECTIONS),
              help="Diameter connections.")
@click.option("--inflight", default=64, show_default=True, type=click.IntRange(1, 65536),
              help="Requests in flight on each connection.")
@click.option("--duration", default=10.0, show_default=True, type=click.FloatRange(0.1, 86400),
              help="Seconds of load (then in-flight requests are drained).")
@click.option("--imeis", "imei_file", type=click.Path(exists=True, dir_okay=False),
              help="IMEIs to ask for: one per line, or a CSV with an 'imei' column. Default: generated.")
@click.option("--tac", default=DEFAULT_TAC, show_default=True, help="TAC of the generated IMEIs.")
@click.option("--imsi-prefix", default="43601", show_default=True,
              help="User-Name of each request: this prefix + the IMEI's position in the list, 15 digits "
                   "('none': no User-Name).")
@click.option("--sv", "software_version", metavar="NN", help="Software-Version in every request.")
@_identity_options
@click.option("--timeout", default=5.0, show_default=True, help="Seconds before a request counts as timed out.")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes sharing the connections.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def load(peer: tuple[str, int], connections: int, inflight: int, duration: float, imei_file: str | None, tac: str,
         imsi_prefix: str, software_version: str | None, origin_host: str, origin_realm: str,
         destination_realm: str, timeout: float, processes: int, as_json: bool) -> None:
    """Keep N ECRs in flight on each of C connections for S seconds; report answers/s,
    answers by Equipment-Status and result code, errors, and latency percentiles."""
    try:
        imeis = read_imeis(imei_file) if imei_file else generated_imeis(tac)
    except (OSError, ValueError, UnicodeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--imeis/--tac") from None
    config = LoadConfig(host=peer[0], port=peer[1], imeis=imeis, connections=connections, inflight=inflight,
                        duration=duration, timeout=timeout,
                        imsi_prefix=None if imsi_prefix.lower() in ("", "none") else imsi_prefix,
                        software_version=software_version,
                        identity=MmeIdentity(origin_host, origin_realm, destination_realm), processes=processes)
    try:
        result = run_load(config)
    except (LoadFailed, ValueError) as exc:
        if as_json:
            click.echo(json.dumps({"peer": f"{peer[0]}:{peer[1]}", "error": str(exc)}))
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(result) if as_json else "\n".join(_load_lines(result)))
    if result["answers"] == 0:
        click.echo("error: no answer at all", err=True)
        sys.exit(1)


def _load_lines(result: dict[str, Any]) -> list[str]:
    latency = result["latency_ms"]
    errors = {k: v for k, v in result["errors"].items() if v}
    names = result["result_code_names"]
    cpu = result["generator_cpu_s"]
    return [
        f"peer         {result['peer']}: {result['connections']} connection(s) x {result['inflight']} in flight, "
        f"{result['processes']} process(es), {result['imeis']} IMEIs",
        f"answers      {result['answers']} in {result['duration_s']} s = {result['answers_per_s']:.0f}/s "
        f"({result['requests']} requests sent)",
        "by status    " + ", ".join(f"{k} {v}" for k, v in result["by_status"].items()),
        "by result    " + ", ".join(f"{k} {names.get(k, '')} {v}".replace("  ", " ")
                                    for k, v in result["by_result_code"].items()),
        "errors       " + (", ".join(f"{k} {v}" for k, v in errors.items()) or "none"),
        "latency ms   " + "  ".join(f"{k} {v}" for k, v in latency.items()),
        f"generator    {cpu} s CPU ({100 * cpu / max(result['duration_s'], 1e-9):.0f}% of one core"
        f"{' summed over processes' if result['processes'] > 1 else ''})",
    ]
