"""The registry store: the agent's hot-path lookup, the entry and its history for people,
and set-based bulk writes for imports, over any SQLAlchemy URL (a SQLite file by default).

Callers ask by name (``lookup``, ``sightings``, ``device_type``, ``msisdn``,
``notice_queued``, the bulk writes, the exports); none hands the registry SQL. The few
statements written by hand live in registry/statements.py and every connection is opened
by registry/connections.py.

On SQLite (pysqlite) the lookup uses one raw ``sqlite3`` connection and two fixed
parameterised statements on the primary key (the pairings only for the paired list). The
database runs in WAL mode, so an import (one write transaction) never blocks lookups.
Lookups share one read snapshot for at most ``snapshot_seconds`` (0.01 s): starting a read
transaction costs about as much as the lookup itself, and an import is seen at most that
long after it commits. Other databases go through SQLAlchemy Core.

Bulk writes (imports) are registry/bulk.py's: rows loaded into a temporary table chunk by
chunk, then applied with a handful of set-based statements in one transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    select,
    text,
)
from sqlalchemy.engine import URL

from registry import statements
from registry.bulk import CHUNK as CHUNK
from registry.bulk import Bulk as Bulk
from registry.bulk import Counts as Counts
from registry.clock import SYSTEM_CLOCK, Clock, stamp
from registry.connections import is_pysqlite, lookup_connection, open_engine, parse_url
from registry.decision.facts import EquipmentFacts, ListName, Pair
from registry.models import Base, HistoryField
from registry.schema import check_file, check_writable_files, create_schema, verify_schema, verify_writable

if TYPE_CHECKING:
    from registry.pg_lookup import PgLookups

EQUIPMENT = Base.metadata.tables["equipment"]
PAIRING = Base.metadata.tables["pairing"]
TAC = Base.metadata.tables["tac"]
HISTORY = Base.metadata.tables["history"]

SNAPSHOT_SECONDS = 0.01  # how long SQLite lookups may share one read snapshot
PROBE_KEY = "00000000000000"  # a key no IMEI has (TAC 00000000 is never allocated): ``probe`` reads it

# The hot path's statements as globals of this module: one lookup less per call.
_LOOKUP_SQL, _PAIRINGS_SQL, _OBSERVED_SQL = statements.LOOKUP, statements.PAIRINGS, statements.OBSERVED
_LISTS: dict[str | None, ListName | None] = {None: None, **{name.value: name for name in ListName}}

Pairings = Callable[[str], Sequence[tuple[Any, ...]]]


def _equipment_facts(key: str, row: Sequence[Any], pairings: Pairings) -> EquipmentFacts:
    """The facts of an equipment row (list, stolen, reason, stolen_reason, ...); ``pairings``
    reads the key's pairings, only for a paired IMEI."""
    list_value = row[0]
    found = tuple(pairings(key)) if list_value == "paired" else ()
    return _facts(key, _LISTS[list_value], bool(row[1]), row[2], row[3], found)


def _observed_facts(key: str, rows: list[tuple[Any, ...]], pairings: Pairings
                    ) -> tuple[EquipmentFacts | None, list[tuple[Any, ...]]]:
    """The facts and sightings of statements.OBSERVED's rows (the equipment row's columns,
    then imsi, first_seen, last_seen; always one row at least: a left join)."""
    first = rows[0]
    if first[4] is None:  # no sighting: the one row is the left join's NULLs
        rows = []
    if first[1] is None:  # no equipment row
        return None, rows
    return _equipment_facts(key, first, pairings), rows


def _fast_facts() -> Callable[[str, ListName | None, bool, str | None, str | None, tuple[Pair, ...]], EquipmentFacts]:
    """EquipmentFacts(...) for the hot path: the generated __init__ of a frozen dataclass
    sets each field through object.__setattr__ (about 1.2 µs); writing the slots directly
    gives the same object in half the time."""
    new = object.__new__
    set_imei, set_list, set_stolen, set_reason, set_stolen_reason, set_pairings = (
        EquipmentFacts.__dict__[field.name].__set__ for field in fields(EquipmentFacts))

    def facts(imei: str, list_name: ListName | None, stolen: bool, reason: str | None, stolen_reason: str | None,
              pairings: tuple[Pair, ...]) -> EquipmentFacts:
        made = new(EquipmentFacts)
        set_imei(made, imei)
        set_list(made, list_name)
        set_stolen(made, stolen)
        set_reason(made, reason)
        set_stolen_reason(made, stolen_reason)
        set_pairings(made, pairings)
        return made

    return facts


_facts = _fast_facts()


@dataclass(frozen=True, slots=True)
class Entry:
    """An IMEI's facts with their bookkeeping, for people (``eir registry show``)."""

    facts: EquipmentFacts
    source: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    at: datetime
    field: HistoryField
    old: str | None  # None: there was no value (a new entry)
    new: str | None
    reason: str | None
    source: str


class Registry:
    """The equipment registry at ``url`` (any SQLAlchemy URL)."""

    def __init__(self, url: str, create: bool = True, snapshot_seconds: float = SNAPSHOT_SECONDS, *,
                 writable: bool = False, clock: Clock = SYSTEM_CLOCK) -> None:
        """``create``: make the schema (the SQLite file too) or upgrade an older one, and
        stamp its version (registry/schema.py); ``self.schema`` says "created", "upgraded"
        or "current". Without it the registry must exist, at this eir's schema version
        (``self.schema`` is "verified"); ``writable`` also proves it can be written. A
        refusal is a RegistryError that says why.

        ``snapshot_seconds``: on a SQLite file, lookups share one read snapshot for at most
        this long (they see another connection's commit at most that late); 0 gives every
        lookup its own snapshot, at about twice the cost.

        ``clock``: the time of what the registry stamps (history, entries) and of its
        snapshot ages; the recorder and the service read it too unless given their own."""
        self.url: URL = parse_url(url)
        self.clock = clock
        self._monotonic = clock.monotonic  # kept: read once per lookup
        self._raw: sqlite3.Connection | None = None
        self._cursor: sqlite3.Cursor
        self._pg: PgLookups | None = None  # PostgreSQL through psycopg 3: the held lookup connection
        self._version: float = 0.0  # see changed()
        self._snapshot_seconds = 0.0
        self._snapshot_until = 0.0
        check_file(self.url, create)  # before connecting: SQLite makes a missing file on connect
        if writable:
            check_writable_files(self.url)
        self.engine = open_engine(self.url)  # every connection comes from registry/connections.py
        try:
            if create:
                self.schema = create_schema(self.engine)
            else:
                with self.engine.connect() as conn:
                    verify_schema(conn)
                self.schema = "verified"
            if writable:
                verify_writable(self.engine)
            if is_pysqlite(self.url):
                self._raw = lookup_connection(self.engine, self.url)
                self._cursor = self._raw.cursor()  # one cursor for every lookup: no cursor made per call
                wal = self._raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
                self._snapshot_seconds = snapshot_seconds if wal else 0.0  # a held read blocks writers without WAL
            elif self.engine.dialect.name == "postgresql" and self.engine.dialect.driver == "psycopg":
                from registry.pg_lookup import PgLookups  # psycopg is imported for a PostgreSQL registry only

                self._pg = PgLookups(self.engine)
        except BaseException:
            self.engine.dispose()
            raise

    # -- the hot path ------------------------------------------------------------------

    def lookup(self, key: str) -> EquipmentFacts | None:
        """The facts for a 14-digit key, or None when the registry does not hold it."""
        if self._raw is None:
            pg = self._pg_here()
            if pg is None:
                return self._lookup_core(key)
            rows = pg.equipment(key)
            return _equipment_facts(key, rows[0], pg.pairings) if rows else None
        if self._snapshot_seconds and self._monotonic() >= self._snapshot_until:
            self._renew_snapshot()
        rows = self._cursor.execute(_LOOKUP_SQL, (key,)).fetchall()  # fetchall: the statement is done and reset
        return _equipment_facts(key, rows[0], self._sqlite_pairings) if rows else None

    def _sqlite_pairings(self, key: str) -> list[tuple[Any, ...]]:
        assert self._raw is not None
        return self._raw.execute(_PAIRINGS_SQL, (key,)).fetchall()

    def _pg_here(self) -> PgLookups | None:
        """The held PostgreSQL lookup connection, when this is its thread (else None: read
        through SQLAlchemy)."""
        pg = self._pg
        return pg if pg is not None and pg.thread == threading.get_ident() else None

    @property
    def raw_connection(self) -> sqlite3.Connection | None:
        """The SQLite lookup connection (None on other databases)."""
        return self._raw

    def _read(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Rows of one of the registry's read-only statements (registry/statements.py, named
        parameters), on the lookup connection and its shared snapshot (SQLite), or through
        SQLAlchemy elsewhere."""
        if self._raw is None:
            pg = self._pg_here()
            if pg is not None:
                return pg.rows(sql, params)
            with self.engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(sql), params)]
        if self._snapshot_seconds and self._monotonic() >= self._snapshot_until:
            self._renew_snapshot()
        return self._cursor.execute(sql, params).fetchall()

    def renew(self) -> None:
        """See every commit made so far at the next read (read your own writes)."""
        self._snapshot_until = 0.0

    def changed(self) -> bool:
        """Whether another connection may have committed since the last call: SQLite's
        data_version on the lookup connection; elsewhere, True at most every 10 s."""
        if self._raw is None:
            now = self._monotonic()
            changed, self._version = now >= self._version, max(self._version, now + 10.0)
            return changed
        version = self._raw.execute("PRAGMA data_version").fetchone()[0]
        changed, self._version = version != self._version, version
        return changed

    def lookup_observed(self, key: str) -> tuple[EquipmentFacts | None, list[tuple[Any, ...]]]:
        """The facts for a key and its sightings: rows whose last three columns are imsi,
        first_seen and last_seen (no rows: never seen). On SQLite one statement, a left
        join that costs about 1.5 us more than ``lookup`` alone."""
        if self._raw is None:
            pg = self._pg_here()
            if pg is None:
                return self.lookup(key), self.sightings(key)
            return _observed_facts(key, pg.observed(key), pg.pairings)
        if self._snapshot_seconds and self._monotonic() >= self._snapshot_until:
            self._renew_snapshot()
        return _observed_facts(key, self._cursor.execute(_OBSERVED_SQL, (key,)).fetchall(), self._sqlite_pairings)

    def sightings(self, key: str) -> list[tuple[Any, ...]]:
        """A key's sightings alone, as (imsi, first_seen, last_seen) rows."""
        return [tuple(row) for row in self._read(statements.SIGHTINGS, {"imei": key})]

    def device_type(self, tac: str) -> str | None:
        """The TAC catalogue's device type of ``tac`` (None: no such TAC, or no type given)."""
        rows = self._read(statements.DEVICE_TYPE, {"tac": tac})
        return rows[0][0] if rows and rows[0][0] else None

    def msisdn(self, imsi: str, at: datetime) -> str | None:
        """The MSISDN ``imsi`` held at ``at``: the operator's subscriber data, else the last
        one imported observations gave it; None when neither knows."""
        found = self._read(statements.MSISDN, {"imsi": imsi, "at": stamp(at)})[0][0]
        return None if found is None else str(found)

    def notice_queued(self, key: str, imsi: str, event: str) -> bool:
        """Whether the notice outbox holds the notice ``event`` for this IMEI and IMSI."""
        return bool(self._read(statements.NOTICE_QUEUED, {"imei": key, "imsi": imsi, "event": event}))

    def _renew_snapshot(self) -> None:
        """End the lookup connection's read transaction and start the next one (WAL: a
        read transaction never blocks a writer; it only pins the snapshot it reads)."""
        raw = self._raw
        assert raw is not None
        if raw.in_transaction:
            raw.execute("COMMIT")
        raw.execute("BEGIN")
        self._snapshot_until = self._monotonic() + self._snapshot_seconds

    def bound_waits(self, lock_seconds: float) -> bool:
        """Make the hot path's waits end, for a process that must answer in time (the agent):
        SQLite lookups wait at most ``lock_seconds`` for another connection's lock (instead
        of 30 s); on PostgreSQL through psycopg 3 no wait lasts longer than the bound the
        waiting thread set with ``registry.deadline.within`` (registry/bounded.py). False
        when this registry's waits cannot be bounded (another driver)."""
        if self._raw is not None:
            self._raw.execute(f"PRAGMA busy_timeout = {max(1, int(lock_seconds * 1000))}")
            return True
        if self.engine.dialect.driver != "psycopg":
            return False
        from registry.bounded import bound  # psycopg is imported only for a PostgreSQL registry

        return bound(self.engine)

    def probe(self, connections: int = 1) -> None:
        """A lookup's read (of a key no IMEI has) on ``connections`` connections of the engine
        at once, left in its pool: any thread, never the hot path's own connection; raises
        what the database raises. The agent's health probe (agent/dbhealth.py) at start and
        when the registry returns: PostgreSQL lookups then find connections open."""
        e = EQUIPMENT.c
        with contextlib.ExitStack() as opened:
            for _ in range(connections):
                opened.enter_context(self.engine.connect()).execute(select(e.list).where(e.imei == PROBE_KEY)).first()

    def read_facts(self, key: str) -> EquipmentFacts | None:
        """The facts for a key, read on a connection of its own: callable from any thread
        (the lookup connection is the agent's hot path), sees every commit made so far."""
        return self._lookup_core(key)

    def _lookup_core(self, key: str) -> EquipmentFacts | None:
        e = EQUIPMENT.c
        with self.engine.connect() as conn:
            row = conn.execute(select(e.list, e.stolen, e.reason, e.stolen_reason).where(e.imei == key)).first()
            if row is None:
                return None
            pairings: tuple[Pair, ...] = ()
            if row.list is ListName.PAIRED:
                p = PAIRING.c
                found = conn.execute(select(p.imsi, p.msisdn).where(p.imei == key).order_by(p.id))
                pairings = tuple((imsi, msisdn) for imsi, msisdn in found)
        return EquipmentFacts(key, row.list, bool(row.stolen), row.reason, row.stolen_reason, pairings)

    # -- for people --------------------------------------------------------------------

    def tac(self, tac: str) -> tuple[str | None, str | None, str | None] | None:
        """(brand, model, device_type) of a TAC, or None when the catalogue lacks it."""
        t = TAC.c
        with self.engine.connect() as conn:
            row = conn.execute(select(t.brand, t.model, t.device_type).where(t.tac == tac)).first()
        return None if row is None else (row.brand, row.model, row.device_type)

    def entry(self, key: str) -> Entry | None:
        e = EQUIPMENT.c
        with self.engine.connect() as conn:
            row = conn.execute(select(e.source, e.created_at, e.updated_at).where(e.imei == key)).first()
        facts = self.lookup(key)
        if row is None or facts is None:
            return None
        return Entry(facts, row.source, row.created_at, row.updated_at)

    def history(self, key: str) -> list[HistoryEntry]:
        """Every status change of ``key``, oldest first."""
        h = HISTORY.c
        query = select(h.at, h.field, h.old, h.new, h.reason, h.source).where(h.imei == key).order_by(h.at, h.id)
        with self.engine.connect() as conn:
            return [HistoryEntry(*row) for row in conn.execute(query)]

    def show(self, key: str) -> tuple[EquipmentFacts | None, list[HistoryEntry]]:
        return self.lookup(key), self.history(key)

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        self.engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- bulk writes (imports) ---------------------------------------------------------

    @contextmanager
    def bulk(self) -> Iterator[Bulk]:
        """One bulk write in one transaction: stage rows chunk by chunk (``add_*``), then
        apply them (``put_*``). It commits when the block ends, unless ``cancel()`` was
        called or an exception escapes: then nothing is written."""
        with self.engine.connect() as conn, _temp_in_files(conn):
            # BEGIN IMMEDIATE on SQLite; rowcounts of INSERT ... SELECT are the counts we report
            conn = conn.execution_options(eir_write=True, preserve_rowcount=True)
            transaction = conn.begin()
            try:
                bulk = Bulk(conn, self.clock)
                yield bulk
                bulk.drop_tables()
                if bulk.cancelled:
                    transaction.rollback()
                else:
                    transaction.commit()
            except BaseException:
                transaction.rollback()
                raise
        self._snapshot_until = 0.0  # read your own writes

    def put_list(self, name: ListName, rows: Sequence[tuple[str, str | None]], source: str) -> Counts:
        """Put each (key, reason) on list ``name`` (keys unique); see ``Bulk.put_list``."""
        with self.bulk() as bulk:
            bulk.add_entries(rows)
            return bulk.put_list(name, source)

    def put_stolen(self, rows: Sequence[tuple[str, str | None]], source: str, stolen: bool = True) -> Counts:
        """Set (or with ``stolen=False`` clear) the stolen flag of each (key, reason) (keys
        unique); the list is kept. See ``Bulk.put_stolen``."""
        with self.bulk() as bulk:
            bulk.add_entries(rows)
            return bulk.put_stolen(source, stolen)

    def put_pairings(self, rows: Sequence[tuple[str, str | None, str | None]], source: str) -> Counts:
        """Bind each key to (imsi, msisdn) (rows unique); see ``Bulk.put_pairings``."""
        with self.bulk() as bulk:
            bulk.add_pairings(rows)
            return bulk.put_pairings(source)

    def put_tacs(self, rows: Sequence[tuple[str, str | None, str | None, str | None]]) -> Counts:
        """Upsert (tac, brand, model, device_type) rows (TACs unique) into the catalogue."""
        with self.bulk() as bulk:
            bulk.add_tacs(rows)
            return bulk.put_tacs()

    # -- exports -----------------------------------------------------------------------

    def iter_list(self, name: ListName) -> Iterator[tuple[str, str | None]]:
        """(key, reason) of every IMEI on list ``name``, by key."""
        e = EQUIPMENT.c
        return self._stream(select(e.imei, e.reason).where(e.list == name).order_by(e.imei))

    def iter_stolen(self) -> Iterator[tuple[str, str | None]]:
        e = EQUIPMENT.c
        return self._stream(select(e.imei, e.stolen_reason).where(e.stolen.is_(True)).order_by(e.imei))

    def iter_pairings(self) -> Iterator[tuple[str, str | None, str | None]]:
        """(key, imsi, msisdn) of every pairing of an IMEI on the paired list."""
        e, p = EQUIPMENT.c, PAIRING.c
        return self._stream(select(p.imei, p.imsi, p.msisdn).join_from(PAIRING, EQUIPMENT, e.imei == p.imei)
                            .where(e.list == ListName.PAIRED).order_by(p.imei, p.id))

    def iter_tacs(self) -> Iterator[tuple[str, str | None, str | None, str | None]]:
        t = TAC.c
        return self._stream(select(t.tac, t.brand, t.model, t.device_type).order_by(t.tac))

    def _stream(self, query: Any) -> Iterator[Any]:
        with self.engine.connect() as conn:
            for row in conn.execution_options(stream_results=True, yield_per=CHUNK).execute(query):
                yield tuple(row)


@contextmanager
def _temp_in_files(conn: Connection) -> Iterator[None]:
    """On SQLite, a bulk write's temporary tables and sorts go to files for the time of its
    transaction (temp_store cannot change inside one): memory stays flat whatever the
    import's size. The main database's journal and synchronous settings are untouched."""
    driver = conn.connection.driver_connection if conn.dialect.name == "sqlite" else None
    if not isinstance(driver, sqlite3.Connection) or driver.in_transaction:  # a shared in-memory one, in use
        yield
        return
    before = driver.execute("PRAGMA temp_store").fetchone()[0]
    driver.execute("PRAGMA temp_store=FILE")
    try:
        yield
    finally:
        if not driver.in_transaction:
            driver.execute(f"PRAGMA temp_store={int(before)}")
