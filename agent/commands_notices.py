"""``eir notices export``: parse, call the outbox, print.

Exit status: 0 written; 2 usage, file or registry errors (nothing marked exported): a
registry that does not exist is refused, never created.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from agent.cli_common import fail, open_registry, write_aside


@click.group()
def notices() -> None:
    """The outbox of SMS notices to owners (grey, reminders, black), queued by the agent."""


@notices.command("export", short_help="Write the notices not exported yet as CSV, and mark them exported.")
@click.option("--out", "out", default="-", show_default=True, metavar="FILE|-",
              help="CSV file to write ('-' for standard output).")
@click.option("--all", "everything", is_flag=True, help="Write every notice, exported or not, and mark none.")
@click.pass_context
def export_command(ctx: click.Context, out: str, everything: bool) -> None:
    """Write the notices not exported yet as CSV, oldest first, and mark them exported once
    the file is complete (written aside, then renamed): a failed export marks nothing.
    --all writes every notice and marks none. Columns: imei, imsi, msisdn, event, deadline,
    reason, created_at (times ISO UTC). Prints the count on stderr.
    Exit status 0: written; 2: file or registry error (a registry that does not exist, or
    of another schema version), nothing marked."""
    from registry.outbox import export_notices, mark_exported

    with open_registry(ctx, "notices") as store:
        if out == "-":
            done = export_notices(store, sys.stdout, everything)
            sys.stdout.flush()
        else:
            try:
                done = write_aside(Path(out), lambda stream: export_notices(store, stream, everything))
            except OSError as error:
                fail("notices", f"cannot write {out}: {error.strerror or error}; nothing marked exported")
        if not everything:
            mark_exported(store, done)
    marked = "all notices, none marked" if everything else "marked exported"
    click.echo(f"notices: {done.written} written to {out} ({marked})", err=True)
