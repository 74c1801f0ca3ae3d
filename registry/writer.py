"""The recorder's writes: each batch of sights, notices and automatic entries in one
transaction, on a connection of its own (registry/connections.py), with the registry's
hand-written statements (registry/statements.py).

On a SQLite file the writer is a sqlite3 connection that commits with fsync and may be
used from another thread; a batch can also be *staged* (its statements run on the
deciding thread, never waiting for a lock) and committed on another (the fsync). In
memory the writer is the lookup connection itself. Elsewhere (PostgreSQL) a batch is a
transaction of the SQLAlchemy engine, which never waits on a lock for longer than the
busy time either.

Several agents may write one registry (PostgreSQL; or one SQLite file under ``eir serve
--workers``). A live sight never moves a stored first sight (``statements.record_sighting``:
the first committed wins), and the durable first sights of a batch come back as stored
(PostgreSQL: RETURNING; SQLite: read under the transaction's write lock just before the
upsert, at a tenth of the cost of a RETURNING row by row). ``write`` and ``stage`` return
those another writer stored first with another time (``Moved``), and leave out of the
transaction the batch's notices for those IMEIs, whose deadlines rest on the time this
agent assumed (the agent decides them again: agent/service.py ``EquipmentCheck.settled``).
On PostgreSQL every statement's rows go in one order (sorted by their unique key), so two
agents' batches never wait on each other in a cycle (a deadlock would cost a lock timeout
and a retry).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from registry import statements
from registry.clock import parse_stamp, stamp
from registry.connections import is_memory, writer_connection

if TYPE_CHECKING:
    from registry.store import Registry

Rows = Sequence[dict[str, Any]]
Moved = dict[tuple[str, str], str]  # (imei, imsi): the first sight stored, where it is not the one written
PAIR_ORDER = itemgetter("imei", "imsi")
NOTICE_ORDER = itemgetter("imei", "imsi", "event")
IN_CHUNK = 500  # IMEIs a SQLite read of stored first sights names at once (SQLite allows 32766 parameters)


class ObservationWriter:
    """Writes batches of observation rows for a Recorder, waiting at most ``busy_seconds``
    for another writer's lock."""

    def __init__(self, registry: Registry, busy_seconds: float) -> None:
        self.registry = registry
        dialect = registry.url.get_dialect().name
        self._record = statements.record_sighting(dialect)
        self._returning = statements.record_sighting(dialect, returning=True)
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

    def write(self, first: Rows, later: Rows, notices: Rows, auto: Rows) -> Moved:
        """Write the rows in one transaction (any thread, when ``threaded``): ``first``, the
        first sights answers rest on, ``later`` the other sights. The first sights another
        writer stored first with another time; raises what the database raised, having
        rolled back."""
        if self._sqlite is None:
            return self._write_engine(first, later, notices, auto)
        self._wait_for_lock(self._busy_seconds)
        moved = self._begin_and_run(first, later, notices, auto)
        self.commit_staged()
        return moved

    def stage(self, first: Rows, later: Rows, notices: Rows, auto: Rows) -> Moved:
        """Begin the transaction and run the statements, on this thread; raises at once
        (database is locked) when another process holds the write lock. As ``write``."""
        assert self._own
        self._wait_for_lock(0.0)
        return self._begin_and_run(first, later, notices, auto)

    def _begin_and_run(self, first: Rows, later: Rows, notices: Rows, auto: Rows) -> Moved:
        writer = self._sqlite
        assert writer is not None
        writer.execute("BEGIN IMMEDIATE")
        try:
            moved = _moved(first, _stored_first(writer, first))
            for rows in (first, later):
                if rows:
                    writer.executemany(self._record, rows)
            for sql, rows in self._others(_kept(notices, moved), auto):
                if rows:
                    writer.executemany(sql, rows)
        except BaseException:
            if writer.in_transaction:
                writer.execute("ROLLBACK")
            raise
        return moved

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

    def _others(self, notices: Rows, auto: Rows) -> list[tuple[str, Rows]]:
        """The statements after the sights, each with its rows in one order."""
        entries = sorted(auto, key=itemgetter("imei"))
        written = [(statements.NOTICE_INSERT, sorted(notices, key=NOTICE_ORDER))]
        if self._sqlite is None:  # PostgreSQL: another agent may enter the IMEI at the same moment
            return [*written, (statements.AUTO_ENTRY_ONCE, entries)]
        return [*written, (statements.AUTO_HISTORY, entries), (statements.AUTO_ENTRY, entries)]

    def _wait_for_lock(self, seconds: float) -> None:
        """How long the SQLite writer waits for another process's write lock."""
        if seconds != self._lock_wait and self._sqlite is not None:
            self._sqlite.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
            self._lock_wait = seconds

    def _write_engine(self, first: Rows, later: Rows, notices: Rows, auto: Rows) -> Moved:
        with self.registry.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # as SQLite's busy timeout: never wait on a lock for ever
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(1, int(self._busy_seconds * 1000))}")
            sights = sorted([*first, *later], key=PAIR_ORDER)
            stored = {(row[0], row[1]): row for row in self._returned(conn, sights)}
            moved = _moved(first, [stored.get(PAIR_ORDER(row)) for row in first])
            for sql, rows in self._others(_kept(notices, moved), auto):
                if rows:
                    conn.execute(text(sql), rows)
        return moved

    def _returned(self, conn: Connection, sights: Rows) -> list[tuple[Any, ...]]:
        """Run the sights' statement, every row's RETURNING (imei, imsi, first_seen) back:
        psycopg in one pipelined executemany, another driver a row at a time."""
        if not sights:
            return []
        if conn.dialect.driver != "psycopg":
            return [tuple(conn.execute(text(self._returning), row).one()) for row in sights]
        sql = statements.pyformat(self._returning)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(sql, sights, returning=True)
            found = []
            while True:
                found += cursor.fetchall()
                if not cursor.nextset():
                    return found
        except conn.dialect.loaded_dbapi.Error as error:  # raised as SQLAlchemy would raise it
            lost = conn.dialect.is_disconnect(error, conn.connection.dbapi_connection, cursor)
            if lost:
                conn.invalidate(error)
            raise DBAPIError.instance(sql, None, error, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect,
                                      connection_invalidated=lost) from error
        finally:
            cursor.close()


def _stored_first(writer: sqlite3.Connection, first: Rows) -> list[tuple[Any, ...] | None]:
    """SQLite: the first sights stored for the pairs of ``first`` (None: not stored), read
    inside the transaction before it writes them. BEGIN IMMEDIATE holds the file's one write
    lock, so what is read is what the upsert keeps: as RETURNING would give it back, at a
    tenth of the cost (one statement per IN_CHUNK IMEIs, not one per row; measured 1 to 2 µs a
    row instead of 15 to 30, on the event loop)."""
    found: dict[tuple[str, str], tuple[Any, ...]] = {}
    keys = sorted({row["imei"] for row in first})
    for start in range(0, len(keys), IN_CHUNK):
        chunk = keys[start:start + IN_CHUNK]
        sql = f"{statements.STORED_FIRST} ({', '.join('?' * len(chunk))})"
        found.update(((imei, imsi), (imei, imsi, seen)) for imei, imsi, seen in writer.execute(sql, chunk))
    return [found.get(PAIR_ORDER(row)) for row in first]


def _moved(first: Rows, stored: Sequence[Sequence[Any] | None]) -> Moved:
    """The first sights whose stored time is not the one written: another writer's came first."""
    moved: Moved = {}
    for row, found in zip(first, stored, strict=True):
        if found is not None:
            at = stamp(parse_stamp(found[2]))
            if at != row["first_seen"]:
                moved[(row["imei"], row["imsi"])] = at
    return moved


def _kept(notices: Rows, moved: Moved) -> Rows:
    """The notices to write: none of an IMEI whose first sight another writer stored first
    (their deadlines rest on this agent's; the agent decides them again after the commit)."""
    if not moved:
        return notices
    imeis = {imei for imei, _ in moved}
    return [row for row in notices if row["imei"] not in imeis]
