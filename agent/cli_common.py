"""What several ``eir`` command groups share: opening and verifying the registry, failing
with one line and an exit status, usage errors in one line, writing a file whole or not
at all, reading ``--at``, and the process's one clock (``cli_clock``)."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

import click

from agent.context import DEFAULT_REGISTRY, CliContext
from registry.clock import parse_moment

if TYPE_CHECKING:
    from registry.clock import Clock
    from registry.store import Registry

T = TypeVar("T")


EX_USAGE = 64  # sysexits.h: a command line that is wrong (eir check)
EX_UNAVAILABLE = 69  # sysexits.h: a registry that is missing or cannot be used (eir check)


def fail(program: str, message: str, status: int = 2) -> NoReturn:
    """``eir PROGRAM: message`` on stderr (one line), exit ``status`` (2 unless told)."""
    if "\n" in message:
        message = " ".join(line.strip() for line in message.splitlines() if line.strip())
    click.echo(f"eir {program}: {message}", err=True)
    sys.exit(status)


class OneLineCommand(click.Command):
    """A command whose usage errors (a bad or missing option or argument, or a
    click.UsageError raised by the command itself) are ``eir NAME: message``, one line on
    stderr, exit ``usage_status``: no usage block, and a status of the command's own."""

    def __init__(self, *args: Any, usage_status: int = EX_USAGE, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.usage_status = usage_status

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:
            fail(self.name or "eir", error.format_message(), self.usage_status)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            fail(self.name or "eir", error.format_message(), self.usage_status)


def registry_url(ctx: click.Context) -> str:
    """The URL given by ``eir --registry`` (or EIR_REGISTRY, or the default)."""
    found = ctx.find_object(CliContext)
    return found.registry_url if found is not None else DEFAULT_REGISTRY


def cli_clock(ctx: click.Context) -> Clock:
    """The clock the root ``eir`` command made: every command reads the time from it."""
    found = ctx.find_object(CliContext)
    return found.clock if found is not None else CliContext().clock


def shown_url(url: str) -> str:
    """The URL to print: its password hidden."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    return url if parsed.password is None else parsed.render_as_string(hide_password=True)


def connect_registry(url: str, program: str, clock: Clock, *, create: bool = False, upgrade: bool = False,
                     writable: bool = False, status: int = 2) -> Registry:
    """The registry at ``url``, verified: it exists at this eir's schema version (and can be
    written, with ``writable``). ``create``: a registry that is absent (no file, or no
    registry table) is created; an existing one is still verified, never upgraded.
    ``upgrade`` (``eir registry init``): created, or upgraded to this eir's schema. A
    refusal is ``eir PROGRAM: cannot open registry URL: why`` and exit ``status``. The
    registry stamps its writes with ``clock``."""
    import sqlite3

    from sqlalchemy.exc import SQLAlchemyError

    from registry.schema import RegistryError, RegistryMissing, first_line
    from registry.store import Registry

    try:
        if upgrade:
            return Registry(url, create=True, writable=writable, clock=clock)
        try:
            return Registry(url, create=False, writable=writable, clock=clock)
        except RegistryMissing:
            if not create:
                raise
        return Registry(url, create=True, writable=writable, clock=clock)
    except (RegistryError, SQLAlchemyError, sqlite3.Error, ImportError, OSError, ValueError) as error:
        # a missing or unusable registry, a bad URL, no driver, a corrupt file
        fail(program, f"cannot open registry {shown_url(url)}: {first_line(error)}", status)


@contextmanager
def open_registry(ctx: click.Context, program: str, *, create: bool = False, writable: bool = False,
                  status: int = 2, after: str = "; nothing written") -> Iterator[Registry]:
    """The registry named by ``eir --registry`` (env EIR_REGISTRY), verified (see
    ``connect_registry``) and closed afterwards; one that cannot be opened or used is
    ``eir PROGRAM: ...`` and exit ``status`` (``after`` ends the message of an error while
    in use)."""
    import sqlite3

    from sqlalchemy.exc import SQLAlchemyError

    from registry.schema import first_line

    url = registry_url(ctx)
    store = connect_registry(url, program, cli_clock(ctx), create=create, writable=writable, status=status)
    try:
        yield store
    except (SQLAlchemyError, sqlite3.Error) as error:
        fail(program, f"registry {shown_url(url)}: {first_line(error)}{after}", status)
    finally:
        store.close()


def write_aside(path: Path, write: Callable[[TextIO], T]) -> T:
    """Call ``write`` on a file beside ``path``, then rename it to ``path``: readers see
    the whole file or the old one, never a part."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as stream:
            result = write(stream)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return result


def parse_at(text: str | None, clock: Clock, option: str = "--at") -> datetime:
    """--at: a date (noon UTC that day), an ISO time (UTC unless it says), or the clock's now."""
    if text is None:
        return clock.now()
    try:
        return parse_moment(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date (YYYY-MM-DD) or an ISO time", param_hint=option) from None
