"""``eir sim replay``: the requests of a capture against an agent, answers compared with the captured ones."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from diameter.transport import DIAMETER_PORT
from simulator.command_options import address
from simulator.msc import M3UA_PORT


@click.command("replay")
@click.argument("capture", metavar="FILE.pcap|FILE.pcapng",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--peer", required=True, callback=address(DIAMETER_PORT), metavar="HOST:PORT",
              help="The agent's Diameter address: the S13 requests go there.")
@click.option("--map-peer", "map_peer", callback=address(M3UA_PORT), metavar="HOST:PORT",
              help="The agent's M3UA address: the MAP CheckIMEI invokes go there.")
@click.option("--control", type=click.Path(dir_okay=False, path_type=Path), metavar="SOCKET",
              help="The lab control socket of an agent started with --lab-clock: the clock is set to each "
                   "frame's time (forward only) before its request.")
@click.option("--diameter-port", "diameter_ports", multiple=True, type=click.IntRange(1, 65535), metavar="PORT",
              help="A TCP or SCTP port carrying Diameter besides 3868 (repeatable).")
@click.option("--m3ua-port", "m3ua_ports", multiple=True, type=click.IntRange(1, 65535), metavar="PORT",
              help="A TCP or SCTP port carrying M3UA besides 2905 (repeatable).")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for each answer.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def replay(capture: Path, peer: tuple[str, int], map_peer: tuple[str, int] | None, control: Path | None,
           diameter_ports: tuple[int, ...], m3ua_ports: tuple[int, ...], timeout: float, as_json: bool) -> None:
    """Read the S13 ECRs and MAP CheckIMEI invokes of a capture (Diameter or M3UA over TCP,
    reassembled across segments, or over SCTP), send each to the agent, and print every answer
    that differs from the captured one (status, result code, error), with its frame number,
    then a summary.

    \b
    Exit status: 0 every answer as captured; 1 an answer differs, or the agent could not be
    reached; 2 the file is not a capture, is cut short, or holds no ECR and no CheckIMEI
    (or holds CheckIMEI invokes and no --map-peer was given)."""
    import asyncio

    from simulator.lab_client import LabControlError
    from simulator.replay import CaptureError, ReplayFailed, load_requests
    from simulator.replay import replay as replay_requests

    try:
        found = load_requests(capture, diameter_ports=(3868, *diameter_ports), m3ua_ports=(M3UA_PORT, *m3ua_ports))
    except CaptureError as exc:
        click.echo(f"eir sim replay: {exc}", err=True)
        sys.exit(2)
    assert peer is not None
    asked_over_map = [request for request in found.requests if request.interface == "MAP"]
    if asked_over_map and map_peer is None:
        click.echo(f"eir sim replay: {capture}: {len(asked_over_map)} MAP CheckIMEI invoke(s), the first in frame "
                   f"{asked_over_map[0].frame}: give the agent's M3UA address with --map-peer HOST:PORT", err=True)
        sys.exit(2)
    try:
        report = asyncio.run(replay_requests(found, str(capture), peer, map_peer=map_peer, control=control,
                                             timeout=timeout))
    except (ReplayFailed, LabControlError) as exc:
        click.echo(f"eir sim replay: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(report.to_json()))
    else:
        for line in report.lines():
            click.echo(line)
    sys.exit(1 if report.different else 0)
