"""The registry's schema version, and what opening a registry checks.

``eir_schema`` holds one row: the version of the schema the registry was made or last
upgraded to (a table, not SQLite's ``user_version``, so that it works on any database).
``create_schema`` makes what ``registry/models.py`` declares, or upgrades an older
registry: the missing tables, the missing indexes of existing tables, then the version.
``verify_schema`` refuses a registry that is missing, empty, unversioned (older), of
another version, or lacks a table; ``check_writable_files`` and ``verify_writable`` one
that cannot be written.

Every refusal is a RegistryError whose message says what to do, for a person.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy import Column, Connection, Engine, Integer, MetaData, Table, inspect, select, update
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from registry.models import Base

SCHEMA_VERSION = 1
INIT = "`eir registry init`"

_META = MetaData()
SCHEMA = Table("eir_schema", _META,
               Column("id", Integer, primary_key=True, autoincrement=False),  # always 1: one row
               Column("version", Integer, nullable=False))


class RegistryError(Exception):
    """A registry that cannot be used as it is; the message says why and what to do."""


class RegistryMissing(RegistryError):
    """No registry there: no SQLite file, or a database without any registry table."""


class SchemaVersionError(RegistryError):
    """A registry of another schema version (or an older one without a version)."""


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL (``sqlite:///PATH``, or ``sqlite:///file:PATH?...&uri=true``);
    None for an in-memory database or another database."""
    if url.get_dialect().name != "sqlite" or url.database in (None, "", ":memory:"):
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


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _version(conn: Connection) -> int | None:
    return conn.execute(select(SCHEMA.c.version).order_by(SCHEMA.c.id).limit(1)).scalar()


def _newer(version: int) -> SchemaVersionError:
    return SchemaVersionError(f"its schema is version {version}, made by a newer eir (this one knows versions "
                              f"up to {SCHEMA_VERSION}); use that eir, or a registry made by this one")


def verify_schema(conn: Connection) -> None:
    """The registry's schema is there, at SCHEMA_VERSION, with every table of the models."""
    tables = _tables(conn)
    wanted = set(Base.metadata.tables)
    if SCHEMA.name not in tables:
        if not tables & wanted:
            raise RegistryMissing(f"it holds no registry (no registry tables); create one with {INIT}")
        raise SchemaVersionError(f"its schema has no version (made by an older eir); upgrade it with {INIT}")
    version = _version(conn)
    if version is None:
        raise SchemaVersionError(f"its schema has no version (made by an older eir); upgrade it with {INIT}")
    if version > SCHEMA_VERSION:
        raise _newer(version)
    if version < SCHEMA_VERSION:
        raise SchemaVersionError(f"its schema is version {version}, this eir needs version {SCHEMA_VERSION}; "
                                 f"upgrade it with {INIT}")
    missing = sorted(wanted - tables)
    if missing:
        raise SchemaVersionError(f"it lacks table(s) {', '.join(missing)}; upgrade it with {INIT}")


def _complete(conn: Connection) -> bool:
    """Every table and index of the models exists and the version is SCHEMA_VERSION."""
    inspector = inspect(conn)
    tables = set(inspector.get_table_names())
    if SCHEMA.name not in tables or not set(Base.metadata.tables) <= tables or _version(conn) != SCHEMA_VERSION:
        return False
    for table in Base.metadata.tables.values():
        names = {index["name"] for index in inspector.get_indexes(table.name)}
        if any(index.name not in names for index in table.indexes):
            return False
    return True


def create_schema(engine: Engine) -> str:
    """Make the registry's schema, or upgrade an older one, in one transaction (BEGIN
    IMMEDIATE on SQLite): "created", "upgraded", or "current" (nothing to do). A registry
    made by a newer eir is refused and left alone."""
    with engine.connect() as conn:
        if _complete(conn):
            return "current"
    with engine.connect() as conn:
        conn = conn.execution_options(eir_write=True)
        with conn.begin():
            tables = _tables(conn)
            version = _version(conn) if SCHEMA.name in tables else None
            if version is not None and version > SCHEMA_VERSION:
                raise _newer(version)
            Base.metadata.create_all(conn)  # checkfirst: only the missing tables (with their indexes)
            for table in Base.metadata.sorted_tables:
                for index in table.indexes:  # indexes added to tables that already existed
                    index.create(conn, checkfirst=True)
            SCHEMA.create(conn, checkfirst=True)
            conn.execute(SCHEMA.delete())
            conn.execute(SCHEMA.insert().values(id=1, version=SCHEMA_VERSION))
    return "upgraded" if tables & set(Base.metadata.tables) else "created"


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
