"""Sightings as files: ``eir registry import observations`` seeds the ``sighting`` table
from a CSV of (date, imei, imsi, msisdn) rows, and the export writes it back.

An imported row is a sight of its (IMEI, IMSI) pair at its date, written with the agent's
own statement (``registry.statements.upsert_sighting``) and time format (``stamp``): per pair
the earliest first sight and the latest last sight win, the last MSISDN given is kept, and
the interface becomes "import". The rows are written with executemany, chunk by chunk, in
the import's one transaction; each chunk sorted by key, so the B-tree is walked in order.

Also here: ``stream`` (rows of a query, a chunk at a time, for exports) and ``iso_utc``
(how every export writes a time).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text

from registry import statements
from registry.bulk import CHUNK, Bulk, Counts
from registry.clock import parse_stamp
from registry.models import Base
from registry.store import Registry

SIGHTING = Base.metadata.tables["sighting"]
INTERFACE = "import"

ObservationRow = tuple[str, str, str | None, str, int]  # (key, imsi or "", msisdn, stamp, line in the file)


class SightingLoader:
    """Writes parsed observation rows into the sighting table of a bulk write's transaction."""

    def __init__(self, bulk: Bulk) -> None:
        self.conn = bulk.conn
        self.rows = 0
        self._sql = statements.upsert_sighting(self.conn.dialect.name)
        self._raw = self.conn.dialect.name == "sqlite" and self.conn.dialect.driver == "pysqlite"
        self._before = self._pairs()  # in the write transaction: nobody else adds pairs meanwhile

    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        """Upsert a chunk of (key, imsi, msisdn, stamp, line) rows (the line is not kept)."""
        params = [{"imei": row[0], "imsi": row[1], "msisdn": row[2], "first_seen": row[3], "last_seen": row[3],
                   "interface": INTERFACE} for row in sorted(rows, key=_pair)]
        if not params:
            return
        if self._raw:  # straight to sqlite3, as Bulk does: Core's executemany costs more per row
            cursor = self.conn.connection.cursor()
            try:
                cursor.executemany(self._sql, params)
            finally:
                cursor.close()
        else:
            self.conn.execute(text(self._sql), params)
        self.rows += len(params)

    def counts(self) -> Counts:
        """new: pairs the registry did not hold; changed: the other rows, merged into a pair."""
        new = self._pairs() - self._before
        return Counts(new=new, changed=self.rows - new)

    def _pairs(self) -> int:
        return int(self.conn.execute(select(func.count()).select_from(SIGHTING)).scalar_one())


def _pair(row: Sequence[Any]) -> tuple[str, str]:
    return row[0], row[1]


def iter_observations(registry: Registry) -> Iterator[tuple[str, str, str | None, datetime]]:
    """(key, imsi, msisdn, first_seen as aware UTC) of every sighting, by key and IMSI."""
    s = SIGHTING.c
    query = select(s.imei, s.imsi, s.msisdn, s.first_seen).order_by(s.imei, s.imsi)
    for key, imsi, msisdn, first in stream(registry, query):
        yield key, imsi, msisdn, parse_stamp(first)


def stream(registry: Registry, query: Any) -> Iterator[tuple[Any, ...]]:
    """The rows of ``query``, fetched a chunk at a time (never all in memory)."""
    with registry.engine.connect() as conn:
        for row in conn.execution_options(stream_results=True, yield_per=CHUNK).execute(query):
            yield tuple(row)


def iso_utc(at: datetime) -> str:
    """A time as exports write it: ISO 8601 in UTC with a Z, microseconds only when set.
    Naive times are the registry's UTC."""
    return parse_stamp(at).replace(tzinfo=None).isoformat() + "Z"
