"""Every connection the registry opens is made here: the SQLAlchemy engine (SQLite: WAL,
and BEGIN IMMEDIATE for writes), the raw ``sqlite3`` lookup connection of the hot path,
and the recorder's writer connection (a commit is on disk: synchronous=FULL).

The raw connections exist for speed: on SQLite a lookup through them costs a fraction of
one through SQLAlchemy (registry/store.py). On other databases there are none: the
engine serves every read and write.

``parse_url`` reads every registry URL: ``postgresql://`` and ``postgres://`` (no driver
named, as operators and libpq write them) mean psycopg 3, the driver the ``postgres``
extra installs; a URL that names its driver keeps it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from registry.schema import RegistryError

LOCK_WAIT = 30  # seconds the engine and the lookup connection wait for another writer's lock
POSTGRESQL_DRIVER = "postgresql+psycopg"  # psycopg 3 (the postgres extra); psycopg2 is not ours
_BARE_POSTGRESQL = ("postgresql", "postgres")
_DRIVER_PACKAGES = {"psycopg": "pip install 'eir[postgres]'"}  # a missing driver module: what installs it


def parse_url(url: str | URL) -> URL:
    """A registry URL: SQLAlchemy's, with ``postgresql://`` and ``postgres://`` given the
    psycopg driver. Raises sqlalchemy's ArgumentError for text that is no URL."""
    parsed = make_url(url)
    if parsed.drivername in _BARE_POSTGRESQL:
        return parsed.set(drivername=POSTGRESQL_DRIVER)
    return parsed


def is_memory(url: URL) -> bool:
    """A SQLite database in memory: one, shared by every connection of the process."""
    return url.get_dialect().name == "sqlite" and url.database in (None, "", ":memory:")


def is_pysqlite(url: URL) -> bool:
    """SQLite through Python's own sqlite3: the raw connections can be used."""
    return url.get_dialect().name == "sqlite" and url.get_driver_name() == "pysqlite"


def open_engine(url: URL) -> Engine:
    """The engine of a URL (from ``parse_url``). A driver that is not installed is a
    RegistryError saying what to install."""
    if url.get_dialect().name != "sqlite":
        try:
            return create_engine(url)
        except ImportError as error:
            missing = error.name or url.get_driver_name()
            fix = _DRIVER_PACKAGES.get(missing.split(".")[0], f"install the Python module {missing}")
            raise RegistryError(f"the {url.get_dialect().name} driver {missing} is not installed; {fix}") from None
    if is_memory(url):
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        engine = create_engine(url, connect_args={"timeout": LOCK_WAIT})
    if url.get_driver_name() == "pysqlite":
        memory = is_memory(url)
        event.listen(engine, "connect", lambda dbapi, _record: _on_connect(dbapi, memory))
        event.listen(engine, "begin", _on_begin)
    return engine


def _on_connect(dbapi: sqlite3.Connection, memory: bool) -> None:
    dbapi.isolation_level = None  # SQLAlchemy's begin event says BEGIN itself (pysqlite's is late)
    if not memory:
        dbapi.execute("PRAGMA journal_mode=WAL")  # readers never wait for an import
    dbapi.execute("PRAGMA synchronous=NORMAL")  # safe in WAL: a crash loses at most the last commit
    dbapi.execute("PRAGMA temp_store=MEMORY")
    dbapi.execute("PRAGMA cache_size=-131072")  # 128 MiB: imports touch every page of the B-trees


def _on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("eir_write") else "BEGIN")


def lookup_connection(engine: Engine, url: URL) -> sqlite3.Connection:
    """The lookup connection: autocommit (each SELECT its own snapshot), read-only."""
    if is_memory(url):  # the one shared in-memory database lives in the engine's pool
        proxied = engine.raw_connection()
        raw = proxied.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        return raw
    raw = sqlite3.connect(url.database or "", isolation_level=None, check_same_thread=False, timeout=LOCK_WAIT)
    raw.execute("PRAGMA query_only=ON")
    # Read the file through a memory map (SQLite caps the size at its compile-time limit):
    # a page is then a memory read, not a read() into the page cache.
    raw.execute("PRAGMA mmap_size=17179869184")
    raw.execute("PRAGMA cache_size=-16384")
    return raw


def held_connection(engine: Engine) -> Any:
    """A connection of ``engine``'s pool (so made as every other: for PostgreSQL through
    registry/bounded.py when the agent bounds its waits) in autocommit, for a caller that
    holds it (registry/pg_lookup.py); the caller invalidates it rather than returning it."""
    pooled = engine.raw_connection()
    try:
        pooled.driver_connection.autocommit = True  # type: ignore[union-attr]
    except BaseException:
        pooled.invalidate()
        raise
    return pooled


def writer_connection(url: URL, busy_seconds: float) -> sqlite3.Connection:
    """A SQLite file's writer for the recorder: a connection of its own (any thread) that
    commits with fsync (synchronous=FULL) and waits at most ``busy_seconds`` for another
    writer. An in-memory database has no other: its writer is the lookup connection."""
    writer = sqlite3.connect(url.database or "", isolation_level=None, check_same_thread=False, timeout=busy_seconds)
    writer.execute("PRAGMA synchronous=FULL")
    return writer
