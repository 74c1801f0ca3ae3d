"""The registry's schema revision, and what opening a registry checks.

Alembic keeps the schema (registry/migrations): its ``alembic_version`` table holds the
revision a registry was made or last upgraded to, HEAD being this eir's. ``create_schema``
makes a registry or upgrades an older one (``eir registry init``); ``verify_schema``
refuses a registry that is missing, empty, older (a revision before HEAD, or made before
Alembic), made by a newer eir (a revision this eir does not know), or lacks a table;
``check_writable_files`` and ``verify_writable`` one that cannot be written. Opening a
registry at HEAD reads two catalogues and one row: Alembic is imported only to upgrade.

``eir_schema`` (one row) is what eirs before Alembic read: version 1 was theirs, and
revision 0002 sets it to 2 for good, so that they refuse a registry they do not know.

Every refusal is a RegistryError whose message says what to do, for a person.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, inspect, select, update
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from registry.models import Base

REVISIONS = ("0001", "0002")  # registry/migrations/versions, oldest first (tests/test_migrations.py checks)
HEAD = REVISIONS[-1]
LEGACY_VERSIONS = (1, 2)  # eir_schema's versions: 1 before Alembic, 2 from revision 0002 on
INIT = "`eir registry init`"
ALEMBIC_VERSION = "alembic_version"

_META = MetaData()
SCHEMA = Table("eir_schema", _META,
               Column("id", Integer, primary_key=True, autoincrement=False),  # always 1: one row
               Column("version", Integer, nullable=False))
_REVISION = Table(ALEMBIC_VERSION, _META, Column("version_num", String(32), primary_key=True))


class RegistryError(Exception):
    """A registry that cannot be used as it is; the message says why and what to do."""


class RegistryMissing(RegistryError):
    """No registry there: no SQLite file, or a database without any registry table."""


class SchemaVersionError(RegistryError):
    """A registry of another schema revision (older, newer, or made before Alembic)."""


@dataclass(frozen=True)
class SchemaState:
    """What a database holds of a registry's schema."""

    tables: frozenset[str]
    revision: str | None  # alembic_version's row; None: no table, or no row
    legacy: int | None  # eir_schema's version; None: no table, or no row

    @property
    def registry_tables(self) -> frozenset[str]:
        """The tables of registry/models.py the database has."""
        return self.tables & frozenset(Base.metadata.tables)


def schema_state(conn: Connection) -> SchemaState:
    tables = frozenset(inspect(conn).get_table_names())
    revision = conn.execute(select(_REVISION.c.version_num).limit(1)).scalar() if ALEMBIC_VERSION in tables else None
    legacy = (conn.execute(select(SCHEMA.c.version).order_by(SCHEMA.c.id).limit(1)).scalar()
              if SCHEMA.name in tables else None)
    return SchemaState(tables, None if revision is None else str(revision), legacy)


def newer_registry(state: SchemaState) -> SchemaVersionError | None:
    """The refusal of a registry made by a newer eir (a revision this eir does not know),
    None for any other."""
    if state.revision is not None and state.revision not in REVISIONS:
        return SchemaVersionError(f"its schema is at revision {state.revision}, made by a newer eir (this one "
                                  f"knows revisions up to {HEAD}); use that eir, or a registry made by this one")
    if state.revision is None and state.legacy is not None and state.legacy not in LEGACY_VERSIONS:
        return SchemaVersionError(f"its schema is version {state.legacy}, made by a newer eir (this one knows "
                                  f"revisions up to {HEAD}); use that eir, or a registry made by this one")
    return None


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL (``sqlite:///PATH``, or ``sqlite:///file:PATH?...&uri=true``);
    None for an in-memory database or another database."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    database = url.database
    if str(url.query.get("uri", "")).lower() in ("true", "1", "yes") and database.startswith("file:"):
        parts = urlsplit(database)
        if parts.path in ("", ":memory:") or "mode=memory" in parts.query:
            return None
        return Path(unquote(parts.path))
    return Path(database)


def check_file(url: URL, create: bool) -> None:
    """Before connecting (SQLite creates a missing file on connect): with ``create`` its
    folder must exist, without it the file itself."""
    path = sqlite_file(url)
    if path is None:
        return
    folder = path.absolute().parent
    if create:
        if not folder.is_dir():
            raise RegistryError(f"folder {folder} does not exist")
        return
    if not path.exists():
        where = "" if folder.is_dir() else f" (nor does its folder {folder})"
        raise RegistryMissing(f"{path} does not exist{where}; create a registry with {INIT} or "
                              "`eir registry import`, or give the right --registry (or EIR_REGISTRY)")
    if not path.is_file():
        raise RegistryError(f"{path} is not a file")


def verify_schema(conn: Connection) -> None:
    """The registry's schema is there, at HEAD, with every table of the models."""
    state = schema_state(conn)
    refusal = newer_registry(state)
    if refusal is not None:
        raise refusal
    if state.revision is None:
        if not state.registry_tables and state.legacy is None:
            raise RegistryMissing(f"it holds no registry (no registry tables); create one with {INIT}")
        if state.legacy is None:
            raise SchemaVersionError(f"its schema has no version (made by an older eir); upgrade it with {INIT}")
        if state.legacy == LEGACY_VERSIONS[-1]:  # made with migrations, its alembic_version emptied
            raise SchemaVersionError(f"its schema has no version (no {ALEMBIC_VERSION} row); upgrade it with {INIT}")
        raise SchemaVersionError(f"its schema is version {state.legacy}, made by an older eir (before "
                                 f"migrations); upgrade it with {INIT}")
    if state.revision != HEAD:
        raise SchemaVersionError(f"its schema is at revision {state.revision}, this eir needs revision {HEAD}; "
                                 f"upgrade it with {INIT}")
    missing = sorted(frozenset(Base.metadata.tables) - state.tables)
    if missing:
        raise SchemaVersionError(f"it lacks table(s) {', '.join(missing)}; upgrade it with {INIT}")


def create_schema(engine: Engine) -> str:
    """Make the registry's schema, or upgrade an older one, in one transaction (BEGIN
    IMMEDIATE on SQLite; one upgrade at a time on PostgreSQL): "created", "upgraded", or
    "current" (nothing to do; Alembic is not even imported). A registry made by a newer
    eir is refused and left alone."""
    with engine.connect() as conn:
        state = schema_state(conn)
    if state.revision == HEAD and not frozenset(Base.metadata.tables) - state.tables:
        return "current"
    from registry.migrations import upgrade  # Alembic: only when there is something to do

    return upgrade(engine)


def check_writable_files(url: URL) -> None:
    """Before connecting (SQLite cannot even open a WAL database for reading where it cannot
    make the -shm file): a SQLite registry's file, its folder (where the -wal and -shm
    files are made) and those files when they exist are writable."""
    path = sqlite_file(url)
    if path is None:
        return
    folder = path.absolute().parent
    if path.exists() and not os.access(path, os.W_OK):
        raise RegistryError(f"{path} is not writable")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RegistryError(f"folder {folder} is not writable (SQLite makes {path.name}-wal and "
                            f"{path.name}-shm there)")
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists() and not os.access(side, os.W_OK):
            raise RegistryError(f"{side} is not writable")


def verify_writable(engine: Engine) -> None:
    """The registry takes a write: one in a transaction that is rolled back (on SQLite,
    BEGIN IMMEDIATE alone succeeds on a read-only database)."""
    with engine.connect() as conn:
        conn = conn.execution_options(eir_write=True)
        transaction = conn.begin()
        try:
            conn.execute(update(SCHEMA).values(version=SCHEMA.c.version))
        except DBAPIError as error:
            raise RegistryError(f"it refuses writes: {first_line(error)}") from None
        finally:
            transaction.rollback()


def first_line(error: BaseException) -> str:
    """The first line of an error's message (a database error's own, without SQLAlchemy's
    wrapping), or its type when it says nothing."""
    orig = getattr(error, "orig", None)
    text = str(orig if isinstance(orig, BaseException) else error).strip()
    return text.splitlines()[0] if text else type(error).__name__
