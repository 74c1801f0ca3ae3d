"""``eir sim lab``: a person at the lab control endpoint of ``eir serve --lab-clock``: read
and move the agent's clock, register, block and unblock IMEIs, import list rows, list an
IMEI's notices. Parse, call simulator/lab_client.py, print.

Exit status 0 done; 1 the agent refused (the error on stderr, one line: bad IMEI, a move
back in time, a CSV with bad rows...) or no agent listens on --control; 2 usage."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from simulator.lab_client import LabControl, LabControlError, parse_duration

T = TypeVar("T")
KINDS = ["white", "grey", "black", "paired", "stolen", "tac", "observations", "subscribers"]


@click.group()
@click.option("--control", "control", required=True, metavar="PATH", type=click.Path(dir_okay=False, path_type=Path),
              help="The agent's control socket (eir serve --lab-clock --control PATH).")
@click.pass_context
def lab(ctx: click.Context, control: Path) -> None:
    """Drive an agent started with `eir serve --lab-clock`: its clock (only forward) and its
    registry, while it runs."""
    ctx.obj = control


def _run(ctx: click.Context, call: Callable[[LabControl], Awaitable[T]]) -> T:
    """Connect to the control socket, make one call, close; a refusal is one line, exit 1."""
    async def once() -> T:
        control = await LabControl.connect(ctx.find_object(Path) or Path())
        try:
            return await call(control)
        finally:
            await control.close()

    try:
        return asyncio.run(once())
    except LabControlError as error:
        click.echo(f"eir sim lab: {error}", err=True)
        sys.exit(1)


@lab.command("time")
@click.pass_context
def time_command(ctx: click.Context) -> None:
    """Print the agent's lab time (ISO 8601, UTC)."""
    click.echo(_run(ctx, lambda control: control.time()))


def _duration(_: click.Context, __: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@lab.command("advance")
@click.argument("duration", callback=_duration)
@click.pass_context
def advance_command(ctx: click.Context, duration: float) -> None:
    """Move the clock forward by DURATION (30d, 12h, 90m, 45s, 1d12h; a number: seconds);
    print the new time."""
    click.echo(_run(ctx, lambda control: control.advance(duration)))


@lab.command("set")
@click.argument("time")
@click.pass_context
def set_command(ctx: click.Context, time: str) -> None:
    """Move the clock forward to TIME (an ISO time, UTC unless it says; a date: 00:00 UTC);
    print it."""
    click.echo(_run(ctx, lambda control: control.set(time)))


@lab.command("register")
@click.argument("imei")
@click.option("--reason", help="Why (e.g. the registration's number).")
@click.pass_context
def register_command(ctx: click.Context, imei: str, reason: str | None) -> None:
    """Put IMEI on the white list (registered)."""
    reply = _run(ctx, lambda control: control.register(imei, reason))
    click.echo(f"IMEI {reply['imei']} registered (white list)" + ("" if reply["changed"] else ", as it was"))


@lab.command("block")
@click.argument("imei")
@click.option("--reason", required=True, help="Why, e.g. the police request and its number.")
@click.pass_context
def block_command(ctx: click.Context, imei: str, reason: str) -> None:
    """Report IMEI stolen (black everywhere), as `eir registry block` does."""
    reply = _run(ctx, lambda control: control.block(imei, reason))
    click.echo(f"IMEI {reply['imei']} blocked: stolen ({reason})" + (", as it was" if reply["already"] else ""))


@lab.command("unblock")
@click.argument("imei")
@click.option("--reason", required=True, help="Why, e.g. the device was returned to its owner.")
@click.pass_context
def unblock_command(ctx: click.Context, imei: str, reason: str) -> None:
    """Clear IMEI's stolen flag, as `eir registry unblock` does."""
    reply = _run(ctx, lambda control: control.unblock(imei, reason))
    click.echo(f"IMEI {reply['imei']} unblocked ({reason}); now answered by its list: {reply['list'] or 'none'}")


@lab.command("import")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--strict", is_flag=True, help="Refuse the whole file if any row is bad.")
@click.pass_context
def import_command(ctx: click.Context, kind: str, file: Any, strict: bool) -> None:
    """Import a CSV FILE (header first, as `eir registry import` reads) into the running
    agent's registry. Every bad row is FILE:LINE: reason on stderr; exit 1 if any."""
    text = file.read()
    report = _run(ctx, lambda control: control.import_rows(kind, text, strict))
    for bad in report["bad"]:
        click.echo(f"{file.name}:{bad['line']}: {bad['reason']}", err=True)
    counts = report["counts"]
    click.echo(f"{kind}: {report['rows']} rows read, {report['imported']} imported ({counts['new']} new, "
               f"{counts['changed']} changed, {counts['unchanged']} unchanged), {len(report['bad'])} bad"
               + ("; file refused (--strict): nothing written" if report["refused"] else ""))
    sys.exit(1 if report["bad"] else 0)


@lab.command("notices")
@click.argument("imei")
@click.pass_context
def notices_command(ctx: click.Context, imei: str) -> None:
    """List the notices queued for IMEI, oldest first."""
    found = _run(ctx, lambda control: control.notices(imei))
    if not found:
        click.echo(f"no notices for IMEI {imei}")
    for notice in found:
        deadline = f", deadline {notice['deadline']}" if notice["deadline"] else ""
        click.echo(f"{notice['created_at']}  {notice['event']}{deadline}  IMSI {notice['imsi'] or '-'}  "
                   f"MSISDN {notice['msisdn'] or '-'}")
