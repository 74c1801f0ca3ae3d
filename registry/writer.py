"""The recorder's writes: each batch of sights, notices and automatic entries in one
transaction, on a connection of its own (registry/connections.py), with the registry's
hand-written statements (registry/statements.py).

On a SQLite file the writer is a sqlite3 connection that commits with fsync and may be
used from another thread; a batch can also be *staged* (its statements run on the
deciding thread, never waiting for a lock) and committed on another (the fsync). In
memory the writer is the lookup connection itself. Elsewhere (PostgreSQL) a batch is a
transaction of the SQLAlchemy engine, which never waits on a lock for longer than the
busy time either.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from registry import statements
from registry.connections import is_memory, writer_connection

if TYPE_CHECKING:
    from registry.store import Registry

Rows = Sequence[dict[str, Any]]


class ObservationWriter:
    """Writes batches of observation rows for a Recorder, waiting at most ``busy_seconds``
    for another writer's lock."""

    def __init__(self, registry: Registry, busy_seconds: float) -> None:
        self.registry = registry
        self._upsert = statements.upsert_sighting(registry.url.get_dialect().name)
        self._busy_seconds = self._lock_wait = busy_seconds
        raw = registry.raw_connection
        self._sqlite: sqlite3.Connection | None = None
        self._own = False  # whether the writer connection is this writer's to close
        if raw is not None:
            self._own = not is_memory(registry.url)
            self._sqlite = writer_connection(registry.url, busy_seconds) if self._own else raw

    @property
    def threaded(self) -> bool:
        """Whether ``write`` may run on another thread (its connection is its own)."""
        return self._sqlite is None or self._own

    @property
    def stages(self) -> bool:
        """A SQLite file: ``stage`` and ``commit_staged`` may split a batch across threads."""
        return self._own

    def write(self, sights: Rows, notices: Rows, auto: Rows) -> None:
        """Write the rows in one transaction (any thread, when ``threaded``); raises what the
        database raised, having rolled back."""
        if self._sqlite is None:
            self._write_engine(self._statements(sights, notices, auto))
            return
        self._wait_for_lock(self._busy_seconds)
        self._begin_and_run(sights, notices, auto)
        self.commit_staged()

    def stage(self, sights: Rows, notices: Rows, auto: Rows) -> None:
        """Begin the transaction and run the statements, on this thread; raises at once
        (database is locked) when another process holds the write lock."""
        assert self._own
        self._wait_for_lock(0.0)
        self._begin_and_run(sights, notices, auto)

    def _begin_and_run(self, sights: Rows, notices: Rows, auto: Rows) -> None:
        writer = self._sqlite
        assert writer is not None
        writer.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in self._statements(sights, notices, auto):
                if rows:
                    writer.executemany(sql, rows)
        except BaseException:
            if writer.in_transaction:
                writer.execute("ROLLBACK")
            raise

    def commit_staged(self) -> None:
        """COMMIT what ``stage`` wrote (any thread: the fsync)."""
        writer = self._sqlite
        assert writer is not None
        try:
            writer.execute("COMMIT")
        except BaseException:
            if writer.in_transaction:
                writer.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._own and self._sqlite is not None:
            self._sqlite.close()

    def _statements(self, sights: Rows, notices: Rows, auto: Rows) -> list[tuple[str, Rows]]:
        return [(self._upsert, sights), (statements.NOTICE_INSERT, notices), (statements.AUTO_HISTORY, auto),
                (statements.AUTO_ENTRY, auto)]

    def _wait_for_lock(self, seconds: float) -> None:
        """How long the SQLite writer waits for another process's write lock."""
        if seconds != self._lock_wait and self._sqlite is not None:
            self._sqlite.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
            self._lock_wait = seconds

    def _write_engine(self, batches: list[tuple[str, Rows]]) -> None:
        with self.registry.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # as SQLite's busy timeout: never wait on a lock for ever
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(1, int(self._busy_seconds * 1000))}")
            for sql, rows in batches:
                if rows:
                    conn.execute(text(sql), rows)
