"""The hot path's reads on PostgreSQL: one psycopg 3 connection held for the lookups, its
statements prepared on the server, as the SQLite lookup connection is held.

Through SQLAlchemy every lookup checked a connection out of the pool, compiled its
statement and wrapped its rows: about 450 µs of CPU and two round trips for an IMEI's
facts and sightings, where the one joined statement, prepared, on a held connection costs
about 30 µs and one round trip (measured on loopback, 2026-12-06). The connection comes
from the engine's pool (so registry/connections.py and registry/bounded.py made it: its
waits end at the bound the agent's thread set), runs in autocommit (no transaction left
idle between lookups: a held read would hold back VACUUM and a migration's lock) and is
used by the thread that opened it only; any other thread reads through SQLAlchemy.

A failure drops the connection (the next read opens another) and is raised as SQLAlchemy
raises it (``DBAPIError``, ``connection_invalidated`` for a connection-level error), so the
agent's health watch (agent/dbhealth.py) sees what it sees from SQLAlchemy.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from registry import statements
from registry.connections import held_connection

# SQLite's lookups (registry/statements.py) with psycopg's placeholder; the join's IMEI is
# cast (PostgreSQL types a bare parameter in a SELECT list as unknown).
LOOKUP, PAIRINGS = (sql.replace("?", "%s") for sql in (statements.LOOKUP, statements.PAIRINGS))
OBSERVED = statements.OBSERVED.replace("(SELECT ? AS imei)", "(SELECT CAST(%s AS VARCHAR(14)) AS imei)")
assert "?" not in OBSERVED


class PgLookups:
    """Reads on one held connection of ``engine`` (PostgreSQL through psycopg 3)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.thread = threading.get_ident()  # the lookups' thread (the agent's event loop)
        self._pooled: Any = None  # SQLAlchemy's pooled connection, holding the psycopg one
        self._cursor: Any = None
        self._formatted: dict[str, str] = {}

    def observed(self, key: str) -> list[tuple[Any, ...]]:
        """statements.OBSERVED's rows: an IMEI's equipment joined with its sightings."""
        return self._execute(OBSERVED, (key,))

    def equipment(self, key: str) -> list[tuple[Any, ...]]:
        """statements.LOOKUP's rows: an IMEI's equipment row, or none."""
        return self._execute(LOOKUP, (key,))

    def pairings(self, key: str) -> list[tuple[Any, ...]]:
        """statements.PAIRINGS's rows: a paired IMEI's bindings, in order."""
        return self._execute(PAIRINGS, (key,))

    def rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Rows of one of registry/statements.py's read statements (named parameters)."""
        formatted = self._formatted.get(sql)
        if formatted is None:
            formatted = self._formatted[sql] = statements.pyformat(sql)
        return self._execute(formatted, params)

    def _execute(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        try:
            cursor = self._cursor or self._open()  # a pooled connection the server dropped fails here
            cursor.execute(sql, params, prepare=True)
            return cursor.fetchall()
        except psycopg.Error as error:
            self.close()
            raise DBAPIError.instance(sql, params, error, psycopg.Error,
                                      connection_invalidated=_connection_error(error)) from error
        except BaseException:
            self.close()
            raise

    def _open(self) -> Any:
        pooled = held_connection(self.engine)
        try:
            self._cursor = pooled.driver_connection.cursor()
        except BaseException:
            pooled.invalidate()
            raise
        self._pooled = pooled
        return self._cursor

    def close(self) -> None:
        """Drop the held connection (never back to the pool: it is in autocommit)."""
        pooled, self._pooled, self._cursor = self._pooled, None, None
        if pooled is not None:
            pooled.invalidate()


def _connection_error(error: BaseException) -> bool:
    """A failure of the connection rather than of the statement (psycopg's OperationalError
    and InterfaceError: refused, dropped, closed, past its bound)."""
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)
