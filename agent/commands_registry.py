"""``eir registry init|import|export|show|block|unblock``: parse, call the registry, print.

Only ``init`` and ``import`` create a registry; every other command refuses one that does
not exist or is not at this eir's schema revision (registry/schema.py); ``init`` also
upgrades one (registry/migrations).

Exit status: 0 done (import: every row was good); 1 import with bad rows (the good rows
were imported, or with --strict nothing was), ``show`` of an IMEI the registry does not
hold, ``unblock`` of an IMEI that is not blocked; 2 usage, file or registry errors
(invalid IMEI, unreadable CSV, bad URL, a missing registry or one of another schema
version, an operator the profile lacks): nothing written.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

import click

from agent.cli_common import (
    cli_clock,
    connect_registry,
    fail,
    open_registry,
    parse_at,
    registry_url,
    shown_url,
    write_aside,
)
from agent.config import DEFAULT_PROFILE

if TYPE_CHECKING:
    from registry.imei import Imei
    from registry.store import Registry

KINDS = ["white", "grey", "black", "paired", "stolen", "tac", "observations", "subscribers"]
LIST_FILES = ["notification", "exception"]  # exports only: the lists handed to an operator
Writer = Callable[[TextIO], int]


@click.group()
def registry() -> None:
    """The equipment registry: create it, import and export lists, show, block and unblock an
    IMEI."""


@registry.command("init", short_help="Create the registry, or upgrade it to this eir's schema (both databases).")
@click.option("--sql", "sql", is_flag=True, help="Print the SQL instead of running it (for a DBA to review and "
              "apply); change nothing.")
@click.pass_context
def init_command(ctx: click.Context, sql: bool) -> None:
    """Create the registry named by eir --registry (env EIR_REGISTRY), or upgrade it to this
    eir's schema: the one command for both, on SQLite and PostgreSQL. It runs the schema
    migrations (Alembic, registry/migrations) up to this eir's head revision in one
    transaction; run it after installing a new eir, before starting its agents.

    \b
    An empty database or a missing SQLite file (its folder must exist): created.
    A registry of an older eir (an older revision, or made before migrations): upgraded.
    A registry already at this eir's revision: left as it is.
    A registry made by a newer eir: refused, left alone.

    No other command creates a registry, but `eir registry import` into one that does not
    exist yet; none upgrades one: `eir serve`, `eir check` and the others refuse a missing
    registry, or one at another revision, and say to run this command.
    On PostgreSQL the database must exist and the role may create tables in it; concurrent
    runs wait for each other.

    --sql prints the statements that would run (from the registry's revision, or the whole
    schema for an empty database or a missing file), in Alembic's offline mode, and changes
    nothing; applied by hand they leave the registry as init would. A registry made before
    migrations is adopted by init itself only.

    Exit status 0: created, upgraded or already current (--sql: printed); 2: registry error."""
    from registry.schema import HEAD

    url = registry_url(ctx)
    if sql:
        click.echo(_init_sql(url), nl=False)
        return
    store = connect_registry(url, "registry init", cli_clock(ctx), upgrade=True)
    done = store.schema
    store.close()
    said = {"created": "created at", "upgraded": "upgraded to", "current": "already at"}[done]
    click.echo(f"registry {shown_url(url)}: {said} schema revision {HEAD}")


def _init_sql(url: str) -> str:
    """What ``init --sql`` prints: the upgrade's SQL, or a comment that there is none."""
    import sqlite3

    from sqlalchemy.exc import SQLAlchemyError

    from registry.migrations import registry_sql
    from registry.schema import HEAD, RegistryError, first_line

    try:
        written = registry_sql(url)
    except (RegistryError, SQLAlchemyError, sqlite3.Error, ImportError, OSError, ValueError) as error:
        fail("registry init", f"cannot read registry {shown_url(url)}: {first_line(error)}")
    return written or f"-- registry {shown_url(url)}: already at schema revision {HEAD}, nothing to run\n"


@registry.command("import", short_help="Import a CSV file into a list, the stolen flags, the TAC catalogue or the "
                                      "sightings.")
@click.argument("kind", metavar="{white|grey|black|paired|stolen|tac|observations|subscribers}",
                type=click.Choice(KINDS))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--strict", is_flag=True, help="Refuse the whole file if any row is bad (default: keep the good rows).")
@click.pass_context
def import_command(ctx: click.Context, kind: str, file: Path, strict: bool) -> None:
    """Import a CSV file (with a header row) into a list, the stolen flags, the TAC catalogue
    or the sightings.

    \b
    white, grey, black, stolen: imei[,reason]
    paired: imei,imsi,msisdn (one of imsi, msisdn may be empty)
    tac: tac,brand,model,device_type
    observations: date,imei,imsi[,msisdn] (date: YYYY-MM-DD or an ISO time, UTC; imsi may be empty)
    subscribers: imsi,msisdn[,date] (the HLR/HSS export: the number each IMSI holds, from date)

    A registry that does not exist yet (no SQLite file, or a database without registry
    tables) is created first, as `eir registry init` does; an existing one must be at this
    eir's schema revision (upgrade it with `eir registry init`).

    Every bad row is reported as FILE:LINE: reason. Exit status 0: all rows good;
    1: some rows bad (the good ones were imported; with --strict none were); 2: usage,
    file or registry error, nothing written."""
    from registry.imports import CsvFormatError, ImportKind, import_file

    with open_registry(ctx, "registry", create=True) as store:
        try:
            report = import_file(store, ImportKind(kind), file, strict=strict)
        except CsvFormatError as error:
            _fail(f"{file}: {error}; nothing imported")
    for bad in report.bad:
        click.echo(f"{file}:{bad.line}: {bad.reason}", err=True)
    click.echo(report.summary())
    sys.exit(1 if report.bad else 0)


@registry.command("export", short_help="Export a list, the stolen IMEIs, the TAC catalogue, the sightings, or an "
                                      "operator's notification or exception list as CSV.")
@click.argument("kind", metavar="{white|grey|black|paired|stolen|tac|observations|subscribers|notification|"
                "exception}",
                type=click.Choice(KINDS + LIST_FILES))
@click.option("--out", "out", required=True, metavar="FILE", help="CSV file to write ('-' for standard output).")
@click.option("--operator", metavar="MCC-MNC", help="notification, exception: the operator (a home PLMN).")
@click.option("--profile", metavar="NAME|PATH", help=f"notification, exception: the country profile "
              f"(default {DEFAULT_PROFILE}).")
@click.option("--at", "at", metavar="DATE", help="notification: grey at DATE (YYYY-MM-DD: noon UTC, or an ISO "
              "time; default now).")
@click.pass_context
def export_command(ctx: click.Context, kind: str, out: str, operator: str | None, profile: str | None,
                   at: str | None) -> None:
    """Export as CSV: a list, the stolen IMEIs, the TAC catalogue or the sightings (one row
    per IMEI-IMSI pair, dated at its first sight) in the format import reads; or the list
    file of one operator: notification (the grey IMEIs seen with its SIMs: imei, imsi,
    msisdn, deadline, reason) or exception (paired IMEIs and their bound IMSIs of the
    operator: imei, imsi). The file is written whole or not at all (written aside, then
    renamed)."""
    make = (_list_export if kind in LIST_FILES else _kind_export)(kind, operator, profile, at)
    with _registry(ctx) as store:
        write = make(store)
        if out == "-":
            count = write(sys.stdout)
        else:
            try:
                count = write_aside(Path(out), write)
            except OSError as error:
                _fail(f"cannot write {out}: {error.strerror or error}")
    click.echo(f"{kind}: {count} rows exported to {out}", err=True)


def _kind_export(kind: str, operator: str | None, profile: str | None, at: str | None) -> Callable[[Registry], Writer]:
    from registry.imports import ImportKind, export_csv

    if operator or profile or at:
        raise click.UsageError("--operator, --profile and --at are for the notification and exception lists")
    return lambda store: partial(export_csv, store, ImportKind(kind))


def _list_export(kind: str, operator: str | None, profile: str | None,
                 at: str | None) -> Callable[[Registry], Writer]:
    """The writer of an operator's list; the operator, profile and time are checked first."""
    from registry.lists import OperatorError, operator_prefix, write_exception, write_notification
    from registry.profile import ProfileError, load_profile

    if operator is None:
        raise click.UsageError(f"the {kind} list needs --operator MCC-MNC")
    if at is not None and kind == "exception":
        raise click.UsageError("--at is for the notification list")
    try:
        rules = load_profile(profile or DEFAULT_PROFILE)
        prefix = operator_prefix(operator, rules)
    except (ProfileError, OperatorError) as error:
        _fail(str(error))
    if kind == "exception":
        return lambda store: partial(write_exception, store, prefix)
    when = parse_at(at, cli_clock(click.get_current_context()))
    return lambda store: partial(write_notification, store, rules, prefix, when)


@registry.command("show", short_help="Print an IMEI's entry, history, sightings and the decision it gets now.")
@click.argument("imei")
@click.option("--profile", default=DEFAULT_PROFILE, show_default=True, metavar="NAME|PATH",
              help="Country profile of the decision: tj, kg, or a YAML file.")
@click.option("--at", "at", metavar="DATE", help="Decide as if asked at DATE (YYYY-MM-DD: noon UTC, or an ISO "
              "time; default now).")
@click.pass_context
def show_command(ctx: click.Context, imei: str, profile: str, at: str | None) -> None:
    """Print an IMEI's entry (14, 15 or 16 digits), its history (oldest first), its
    sightings (each IMSI it was seen with: first and last sight, MSISDN when known,
    interface) and the decision it would get now (or at --at) under --profile, asked with
    the IMSI it was last seen with (none if never seen): the rule and its reason, as
    ``eir check`` prints them. Records nothing.
    Exit status 0: found; 1: not in the registry; 2: not a valid IMEI, a bad profile, or a
    registry error."""
    from agent.service import EquipmentCheck, Interface, Query
    from registry.observations import parse_stamp
    from registry.profile import ProfileError, load_profile

    parsed = _parse_imei(imei)
    try:
        rules = load_profile(profile)
    except ProfileError as error:
        _fail(str(error))
    when = parse_at(at, cli_clock(ctx))
    with _registry(ctx) as store:
        entry = store.entry(parsed.key)
        history = store.history(parsed.key)
        tac = store.tac(parsed.tac)
        sightings = _sightings(store, parsed.key)
        asked = _last_imsi(sightings, when)
        decision = EquipmentCheck(store, rules).check(Query(imei, Interface.CLI, when, imsi=asked))
    click.echo(f"IMEI {parsed.key} (15 digits: {parsed.imei15})")
    if tac is not None:
        click.echo(f"  TAC {parsed.tac}: {' '.join(part for part in tac[:2] if part) or '-'}"
                   + (f" ({tac[2]})" if tac[2] else ""))
    if entry is None:
        click.echo("  not in the registry")
    else:
        facts = entry.facts
        click.echo(f"  list:     {facts.list.value if facts.list else '(none)'}" + _why(facts.reason))
        click.echo(f"  stolen:   {'yes' if facts.stolen else 'no'}" + _why(facts.stolen_reason))
        for imsi, msisdn in facts.pairings:
            click.echo(f"  paired:   IMSI {imsi or '-'}, MSISDN {msisdn or '-'}")
        click.echo(f"  source:   {entry.source} (last change)")
        click.echo(f"  created:  {_when(entry.created_at)}; updated {_when(entry.updated_at)}")
    if history:
        click.echo("history (oldest first):")
    for item in history:
        click.echo(f"  {_when(item.at)}  {item.field.value}: {item.old or '(none)'} -> {item.new or '(none)'}"
                   f"{_why(item.reason)}  [{item.source}]")
    click.echo("sightings (first seen first):" if sightings else "sightings: none")
    for seen in sightings:
        click.echo(f"  IMSI {seen.imsi or '(none)':<15}  first {_when(seen.first_seen)}  last {_when(seen.last_seen)}"
                   f"  MSISDN {seen.msisdn or '-'}  via {seen.interface or '-'}")
    deadline = f"; deadline {decision.deadline.isoformat(timespec='seconds')}" if decision.deadline else ""
    click.echo(f"decision {'now' if at is None else 'at ' + _when(parse_stamp(when))} (profile {rules.name}): "
               f"{decision.status.value.upper()} ({decision.rule}): {decision.reason}{deadline}"
               f"; {_asked(asked, sightings)}")
    sys.exit(0 if entry is not None else 1)


class _Seen:
    """One row of the ``sighting`` table, times as aware UTC; ``imsi`` is "" when the
    network did not say which."""

    __slots__ = ("first_seen", "imsi", "interface", "last_seen", "msisdn")

    def __init__(self, imsi: str, msisdn: str | None, first_seen: datetime, last_seen: datetime,
                 interface: str | None) -> None:
        self.imsi, self.msisdn, self.interface = imsi, msisdn, interface
        self.first_seen, self.last_seen = first_seen, last_seen


def _sightings(store: Registry, key: str) -> list[_Seen]:
    """The key's sightings, first seen first (SQLAlchemy Core on the ``sighting`` table)."""
    from sqlalchemy import select

    from registry.observations import parse_stamp
    from registry.sightings import SIGHTING

    s = SIGHTING.c
    query = (select(s.imsi, s.msisdn, s.first_seen, s.last_seen, s.interface)
             .where(s.imei == key).order_by(s.first_seen, s.imsi))
    with store.engine.connect() as conn:
        return [_Seen(imsi, msisdn, parse_stamp(first), parse_stamp(last), interface)
                for imsi, msisdn, first, last, interface in conn.execute(query)]


def _asked(imsi: str | None, sightings: list[_Seen]) -> str:
    if imsi:
        return f"asked with IMSI {imsi} (the last seen)"
    return "asked without an IMSI (" + ("last seen without one)" if sightings else "never seen)")


def _last_imsi(sightings: list[_Seen], when: datetime) -> str | None:
    """The IMSI of the sighting last seen among those first seen by ``when`` (None: none, or
    the network did not say which IMSI)."""
    seen = [item for item in sightings if item.first_seen <= when]
    if not seen:
        return None
    return max(seen, key=lambda item: (item.last_seen, item.first_seen)).imsi or None


@registry.command("block", short_help="Block an IMEI: report it stolen (black everywhere).")
@click.argument("imei")
@click.option("--reason", required=True, help="Why, e.g. the police request and its number.")
@click.pass_context
def block_command(ctx: click.Context, imei: str, reason: str) -> None:
    """Set the stolen flag of one IMEI (14, 15 or 16 digits), with a history entry (source
    cli:block); its list is kept. An IMEI the registry lacks is added, known only as stolen.
    Exit status 0: blocked (or already blocked); 2: not a valid IMEI, or a registry error."""
    from registry.edits import block

    key, why = _parse_imei(imei).key, _reason(reason)
    with _registry(ctx) as store:
        before = block(store, key, why, "cli:block")
    if before is not None and before.stolen:
        click.echo(f"IMEI {key} was already blocked" + _why(before.stolen_reason) + f"; reason now: {why}")
    else:
        click.echo(f"IMEI {key} blocked: stolen ({why})" + ("" if before else "; it was not in the registry"))


@registry.command("unblock", short_help="Unblock an IMEI: clear its stolen flag.")
@click.argument("imei")
@click.option("--reason", required=True, help="Why, e.g. the device was returned to its owner.")
@click.pass_context
def unblock_command(ctx: click.Context, imei: str, reason: str) -> None:
    """Clear the stolen flag of one IMEI, with a history entry (source cli:unblock); the
    IMEI is then answered by its list. The device must restart (attach again) to be let in.
    Exit status 0: unblocked; 1: the IMEI is not blocked (nothing changed); 2: not a valid
    IMEI, or a registry error."""
    from registry.edits import unblock

    key, why = _parse_imei(imei).key, _reason(reason)
    with _registry(ctx) as store:
        after = unblock(store, key, why, "cli:unblock")
    if after is None:
        click.echo(f"eir registry: IMEI {key} is not blocked (not reported stolen); nothing changed", err=True)
        sys.exit(1)
    listed = after.list.value if after.list else "none"
    click.echo(f"IMEI {key} unblocked ({why}); now answered by its list: {listed}")


def _parse_imei(text: str) -> Imei:
    from registry.imei import ImeiError, parse_imei

    try:
        return parse_imei(text)
    except ImeiError as error:
        _fail(f"invalid IMEI {text!r}: {error}")


def _reason(text: str) -> str:
    from registry.edits import EditError, edit_reason

    try:
        return edit_reason(text) or ""
    except EditError:
        raise click.BadParameter("must not be empty", param_hint="--reason") from None


def _registry(ctx: click.Context) -> AbstractContextManager[Registry]:
    """The registry named by ``eir --registry`` (env EIR_REGISTRY), closed afterwards; one
    that does not exist, is not at this eir's schema version, or cannot be opened or used
    is exit status 2 (it is never created here)."""
    return open_registry(ctx, "registry")


def _fail(message: str) -> NoReturn:
    fail("registry", message)


def _why(reason: str | None) -> str:
    return f" ({reason})" if reason else ""


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC"
