"""What several ``eir`` command groups share: opening the registry, failing with exit
status 2, writing a file whole or not at all, reading ``--at``."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO, TypeVar

import click

from agent.context import DEFAULT_REGISTRY, CliContext

if TYPE_CHECKING:
    from registry.store import Registry

T = TypeVar("T")


def fail(program: str, message: str) -> NoReturn:
    """``eir PROGRAM: message`` on stderr, exit status 2."""
    click.echo(f"eir {program}: {message}", err=True)
    sys.exit(2)


@contextmanager
def open_registry(ctx: click.Context, program: str) -> Iterator[Registry]:
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
        fail(program, f"cannot open registry {url}: {first_line(error)}")
    try:
        yield store
    except (SQLAlchemyError, sqlite3.Error) as error:
        fail(program, f"registry {url}: {first_line(error)}; nothing written")
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


def parse_at(text: str | None, option: str = "--at") -> datetime:
    """--at: a date (noon UTC that day), an ISO time (UTC unless it says), or now."""
    if text is None:
        return datetime.now(UTC)
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(12), UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date (YYYY-MM-DD) or an ISO time", param_hint=option) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def first_line(error: Exception) -> str:
    return str(error).splitlines()[0]
