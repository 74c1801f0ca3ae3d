"""``eir registry import|export|show``: parse, call the registry, print.

Exit status: 0 done (import: every row was good); 1 import with bad rows (the good rows
were imported, or with --strict nothing was), or ``show`` of an IMEI the registry does not
hold; 2 usage, file or registry errors (invalid IMEI, unreadable CSV, bad URL): nothing
written.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from agent.context import DEFAULT_REGISTRY, CliContext

if TYPE_CHECKING:
    from registry.imports import ImportKind
    from registry.store import Registry

KINDS = ["white", "grey", "black", "paired", "stolen", "tac"]


@click.group()
def registry() -> None:
    """The equipment registry: import and export lists, show an IMEI."""


@registry.command("import", short_help="Import a CSV file into a list, the stolen flags or the TAC catalogue.")
@click.argument("kind", metavar="{white|grey|black|paired|stolen|tac}", type=click.Choice(KINDS))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--strict", is_flag=True, help="Refuse the whole file if any row is bad (default: keep the good rows).")
@click.pass_context
def import_command(ctx: click.Context, kind: str, file: Path, strict: bool) -> None:
    """Import a CSV file (with a header row) into a list, the stolen flags or the TAC catalogue.

    \b
    white, grey, black, stolen: imei[,reason]
    paired: imei,imsi,msisdn (one of imsi, msisdn may be empty)
    tac: tac,brand,model,device_type

    Every bad row is reported as FILE:LINE: reason. Exit status 0: all rows good;
    1: some rows bad (the good ones were imported; with --strict none were); 2: usage,
    file or registry error, nothing written."""
    from registry.imports import CsvFormatError, ImportKind, import_file

    with _registry(ctx) as store:
        try:
            report = import_file(store, ImportKind(kind), file, strict=strict)
        except CsvFormatError as error:
            _fail(f"{file}: {error}; nothing imported")
    for bad in report.bad:
        click.echo(f"{file}:{bad.line}: {bad.reason}", err=True)
    click.echo(report.summary())
    sys.exit(1 if report.bad else 0)


@registry.command("export", short_help="Export a list, the stolen IMEIs or the TAC catalogue as CSV.")
@click.argument("kind", metavar="{white|grey|black|paired|stolen|tac}", type=click.Choice(KINDS))
@click.option("--out", "out", required=True, metavar="FILE", help="CSV file to write ('-' for standard output).")
@click.pass_context
def export_command(ctx: click.Context, kind: str, out: str) -> None:
    """Export a list, the stolen IMEIs or the TAC catalogue as CSV, in the format import reads.
    The file is written whole or not at all (written aside, then renamed)."""
    from registry.imports import ImportKind, export_csv

    with _registry(ctx) as store:
        if out == "-":
            count = export_csv(store, ImportKind(kind), sys.stdout)
        else:
            try:
                count = _export_to_file(store, ImportKind(kind), Path(out))
            except OSError as error:
                _fail(f"cannot write {out}: {error.strerror or error}")
    click.echo(f"{kind}: {count} rows exported to {out}", err=True)


@registry.command("show", short_help="Print an IMEI's entry and its history.")
@click.argument("imei")
@click.pass_context
def show_command(ctx: click.Context, imei: str) -> None:
    """Print an IMEI's entry (14, 15 or 16 digits) and its history, oldest first.
    Exit status 0: found; 1: not in the registry; 2: not a valid IMEI, or a registry error."""
    from registry.imei import ImeiError, parse_imei

    try:
        parsed = parse_imei(imei)
    except ImeiError as error:
        _fail(f"invalid IMEI {imei!r}: {error}")
    with _registry(ctx) as store:
        entry = store.entry(parsed.key)
        history = store.history(parsed.key)
        tac = store.tac(parsed.tac)
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
    sys.exit(0 if entry is not None else 1)


def _export_to_file(store: Registry, kind: ImportKind, path: Path) -> int:
    from registry.imports import export_csv

    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as stream:
            count = export_csv(store, kind, stream)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count


@contextmanager
def _registry(ctx: click.Context) -> Iterator[Registry]:
    """The registry named by ``eir --registry`` (env EIR_REGISTRY), closed afterwards;
    a registry that cannot be opened or used is exit status 2."""
    import sqlite3

    from sqlalchemy.exc import SQLAlchemyError

    from registry.store import Registry

    found = ctx.find_object(CliContext)
    url = found.registry_url if found is not None else DEFAULT_REGISTRY
    try:
        store = Registry(url)
    except (SQLAlchemyError, sqlite3.Error, ImportError) as error:  # bad URL, no driver, cannot open
        _fail(f"cannot open registry {url}: {_first_line(error)}")
    try:
        yield store
    except (SQLAlchemyError, sqlite3.Error) as error:
        _fail(f"registry {url}: {_first_line(error)}; nothing written")
    finally:
        store.close()


def _fail(message: str) -> NoReturn:
    click.echo(f"eir registry: {message}", err=True)
    sys.exit(2)


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0]


def _why(reason: str | None) -> str:
    return f" ({reason})" if reason else ""


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC"
