"""Observations: which IMEI the network asked about with which IMSI, and the notice outbox.

Every query is recorded as a sighting of its (IMEI, IMSI) pair: first and last sight, a
count, the MSISDN when known and the interface. A pair's first sight (it starts a grace
clock, or shows a SIM swap) and every notice due are *durable*: ``commit()`` writes them
in one transaction, synchronously on disk (SQLite: WAL with synchronous=FULL), and the
agent calls it before the answers that depend on them leave (group commit: one commit per
batch of requests read). Later sights of a known pair only move its last sight and count:
they are kept in memory and written by ``flush()`` about once a second; a crash loses at
most that second of counts, never a first sight that was answered.

If the database refuses a commit (another process holds the write lock longer than
``busy_seconds``, a full disk), the rows stay queued, are retried at the next commit,
and the failure is logged and counted: answers are not held back.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from registry.policy import Decision, Query, Sighting
from registry.store import Registry

log = logging.getLogger("eir.observations")

_SIGHTINGS_SQL = "SELECT imsi, first_seen FROM sighting WHERE imei = ?"
_DEVICE_TYPE_SQL = "SELECT device_type FROM tac WHERE tac = ?"
_NOTICE_SQL = "SELECT 1 FROM notice WHERE imei = ? AND imsi = ? AND event = ?"
_STAMP = "%Y-%m-%d %H:%M:%S.%f"  # as SQLAlchemy writes DateTime on SQLite: the strings sort by time
TYPE_CACHE_LIMIT = 65536
NOTICED_LIMIT = 262144


def upsert_sql(dialect: str) -> str:
    """One statement for a first sight and for later ones: the earliest first sight and
    the latest last sight win, counts add up."""
    low, high = ("least", "greatest") if dialect == "postgresql" else ("min", "max")
    return ("INSERT INTO sighting (imei, imsi, msisdn, first_seen, last_seen, count, interface) "
            "VALUES (:imei, :imsi, :msisdn, :first_seen, :last_seen, :count, :interface) "
            "ON CONFLICT (imei, imsi) DO UPDATE SET msisdn = coalesce(excluded.msisdn, sighting.msisdn), "
            f"first_seen = {low}(sighting.first_seen, excluded.first_seen), "
            f"last_seen = {high}(sighting.last_seen, excluded.last_seen), "
            "count = sighting.count + excluded.count, interface = excluded.interface")


NOTICE_INSERT_SQL = ("INSERT INTO notice (imei, imsi, msisdn, event, deadline, reason, created_at) "
                     "VALUES (:imei, :imsi, :msisdn, :event, :deadline, :reason, :created_at) "
                     "ON CONFLICT (imei, imsi, event) DO NOTHING")


def stamp(at: datetime) -> str:
    """A time as the registry stores it: naive UTC text."""
    return at.astimezone(UTC).strftime(_STAMP)


def parse_stamp(value: Any) -> datetime:
    """A stored time (text from SQLite, a datetime elsewhere) as an aware UTC datetime."""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


class Observations:
    """Reads of the observations and of the TAC catalogue, for decisions."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._types: dict[str, str | None] = {}
        self._pending: dict[str, list[Sighting]] = defaultdict(list)  # first sights not yet visible to reads

    def sightings(self, key: str) -> list[Sighting]:
        rows = self.registry.fetch(_SIGHTINGS_SQL, (key,))
        found = [Sighting(imsi, parse_stamp(first)) for imsi, first in rows]
        pending = self._pending.get(key)
        return found + pending if pending else found

    def device_type(self, tac: str) -> str | None:
        """The TAC catalogue's device type (None: no such TAC, or no type given); cached,
        and the cache starts again whenever an import may have changed the catalogue."""
        if tac in self._types:
            return self._types[tac]
        rows = self.registry.fetch(_DEVICE_TYPE_SQL, (tac,))
        found = rows[0][0] if rows and rows[0][0] else None
        if len(self._types) >= TYPE_CACHE_LIMIT:
            self._types.clear()
        self._types[tac] = found
        return found

    def forget_types(self) -> None:
        self._types.clear()


class Recorder(Observations):
    """Reads and records observations for the agent (one per process)."""

    def __init__(self, registry: Registry, busy_seconds: float = 0.2) -> None:
        super().__init__(registry)
        self._upsert = upsert_sql(registry.url.get_dialect().name)
        self._writer = _writer(registry, busy_seconds)
        self._first: list[dict[str, Any]] = []  # durable: first sights not yet committed
        self._notices: list[dict[str, Any]] = []  # durable: notices not yet committed
        self._later: dict[tuple[str, str], list[Any]] = {}  # later sights, written by flush()
        self._noticed: set[tuple[str, str, str]] = set()
        self.commits = 0
        self.failures = 0

    def observe(self, key: str, query: Query, sightings: Sequence[Sighting], decision: Decision) -> bool:
        """Record the query as a sighting, and queue the notices its decision makes due.
        True when something durable was queued: ``commit()`` before answering."""
        imsi = query.imsi or ""
        if any(s.imsi == imsi for s in sightings):
            self._later_sight(key, imsi, query)
            durable = False
        else:
            self._first.append(_row(key, imsi, query))
            self._pending[key].append(Sighting(imsi, query.at))
            durable = True
        for notice in decision.notices:
            if self._due(key, imsi, notice.event):
                self._notices.append({"imei": key, "imsi": imsi, "msisdn": query.msisdn, "event": notice.event,
                                      "deadline": stamp(notice.deadline) if notice.deadline else None,
                                      "reason": decision.reason, "created_at": stamp(query.at)})
                durable = True
        return durable

    def _later_sight(self, key: str, imsi: str, query: Query) -> None:
        """A known pair seen again: kept in memory as [msisdn, last sight, count, interface]."""
        kept = self._later.get((key, imsi))
        if kept is None:
            self._later[(key, imsi)] = [query.msisdn, query.at, 1, query.interface]
            return
        if query.msisdn:
            kept[0] = query.msisdn
        if query.at > kept[1]:
            kept[1] = query.at
        kept[2] += 1
        kept[3] = query.interface

    def _due(self, key: str, imsi: str, event: str) -> bool:
        """Whether a notice is still to be queued (not queued by this process, not in the outbox)."""
        marker = (key, imsi, event)
        if marker in self._noticed:
            return False
        if len(self._noticed) >= NOTICED_LIMIT:
            self._noticed.clear()
        self._noticed.add(marker)
        return not self.registry.fetch(_NOTICE_SQL, marker)

    @property
    def waiting(self) -> bool:
        """Durable rows are queued: ``commit()`` before the answers that depend on them."""
        return bool(self._first or self._notices)

    def commit(self) -> bool:
        """Write the queued first sights and notices durably; True when all are on disk."""
        if not (self._first or self._notices):
            return True
        try:
            self._write([(self._upsert, self._first), (NOTICE_INSERT_SQL, self._notices)])
        except (sqlite3.Error, SQLAlchemyError) as error:
            self.failures += 1
            log.error("observations not written (kept, retried at the next commit): %s", error)
            return False
        self.commits += 1
        self._first, self._notices = [], []
        self._pending.clear()
        self.registry.renew()  # the next reads see what was just written
        return True

    def flush(self) -> None:
        """Commit what is durable, then write the later sights kept in memory."""
        self.commit()
        if not self._later:
            return
        rows = [{"imei": key, "imsi": imsi, "msisdn": msisdn, "first_seen": stamp(at), "last_seen": stamp(at),
                 "count": count, "interface": str(interface)}
                for (key, imsi), (msisdn, at, count, interface) in self._later.items()]
        try:
            self._write([(self._upsert, rows)])
        except (sqlite3.Error, SQLAlchemyError) as error:
            self.failures += 1
            log.warning("later sights not written (kept for the next flush): %s", error)
            return
        self._later.clear()

    def close(self) -> None:
        self.flush()
        if isinstance(self._writer, sqlite3.Connection) and self._writer is not self.registry.raw_connection:
            self._writer.close()

    def _write(self, batches: Iterable[tuple[str, list[dict[str, Any]]]]) -> None:
        writer = self._writer
        if isinstance(writer, sqlite3.Connection):
            writer.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in batches:
                    if rows:
                        writer.executemany(sql, rows)
                writer.execute("COMMIT")
            except BaseException:
                if writer.in_transaction:
                    writer.execute("ROLLBACK")
                raise
            return
        with self.registry.engine.begin() as conn:
            for sql, rows in batches:
                if rows:
                    conn.execute(text(sql), rows)


def _row(key: str, imsi: str, query: Query) -> dict[str, Any]:
    at = stamp(query.at)
    return {"imei": key, "imsi": imsi, "msisdn": query.msisdn, "first_seen": at, "last_seen": at, "count": 1,
            "interface": str(query.interface)}


def _writer(registry: Registry, busy_seconds: float) -> sqlite3.Connection | None:
    """SQLite: a connection of its own that commits with fsync (synchronous=FULL), and
    waits at most ``busy_seconds`` for another writer. Elsewhere: the SQLAlchemy engine."""
    raw = registry.raw_connection
    if raw is None:
        return None
    if registry.url.database in (None, "", ":memory:"):
        return raw  # the one shared in-memory database
    writer = sqlite3.connect(registry.url.database or "", isolation_level=None, check_same_thread=False,
                             timeout=busy_seconds)
    writer.execute("PRAGMA synchronous=FULL")
    return writer
