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

Bulk writes load the validated rows into a temporary table (executemany, chunk by chunk),
copy them sorted by key, then apply them with a handful of INSERT ... SELECT and
UPDATE ... FROM statements in the same transaction: history and the new state are
computed by the database, walking its B-trees in key order.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.sql.elements import ColumnElement

from registry import statements
from registry.clock import SYSTEM_CLOCK, Clock, stamp, stored
from registry.connections import is_pysqlite, lookup_connection, open_engine
from registry.decision.facts import EquipmentFacts, ListName, Pair
from registry.models import FIELD_TYPE, LIST_TYPE, Base, HistoryField
from registry.schema import check_file, check_writable_files, create_schema, verify_schema, verify_writable

EQUIPMENT = Base.metadata.tables["equipment"]
PAIRING = Base.metadata.tables["pairing"]
TAC = Base.metadata.tables["tac"]
HISTORY = Base.metadata.tables["history"]

# Bulk writes load rows into temporary tables without keys (a plain append; the caller
# gives unique rows), then copy them sorted by key into the staging tables the statements
# read: every statement then walks the registry's B-trees in key order.
_STAGING = MetaData()
STAGE_LIST = Table("eir_stage_list", _STAGING, Column("imei", String(14)), Column("reason", String),
                   prefixes=["TEMPORARY"])
STAGE_PAIR = Table("eir_stage_pair", _STAGING, Column("imei", String(14)), Column("imsi", String(15)),
                   Column("msisdn", String(15)), prefixes=["TEMPORARY"])
STAGE_TAC = Table("eir_stage_tac", _STAGING, Column("tac", String(8)), Column("brand", String),
                  Column("model", String), Column("device_type", String), prefixes=["TEMPORARY"])
_LOAD = {stage: Table(stage.name.replace("stage", "load"), _STAGING,
                      Column("seq", Integer, primary_key=True, autoincrement=True),  # file order, among equal keys
                      *(Column(c.name, c.type) for c in stage.columns), prefixes=["TEMPORARY"])
         for stage in (STAGE_LIST, STAGE_PAIR, STAGE_TAC)}

CHUNK = 20_000  # rows per executemany into a staging table
SNAPSHOT_SECONDS = 0.01  # how long SQLite lookups may share one read snapshot
PROBE_KEY = "00000000000000"  # a key no IMEI has (TAC 00000000 is never allocated): ``probe`` reads it

# The hot path's statements as globals of this module: one lookup less per call.
_LOOKUP_SQL, _PAIRINGS_SQL, _OBSERVED_SQL = statements.LOOKUP, statements.PAIRINGS, statements.OBSERVED
_LISTS: dict[str | None, ListName | None] = {None: None, **{name.value: name for name in ListName}}

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


@dataclass(frozen=True, slots=True)
class Counts:
    """What a bulk write did, in rows of the input."""

    new: int = 0  # the IMEI (or TAC) was not in the registry
    changed: int = 0
    unchanged: int = 0


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
        self.url: URL = make_url(url)
        self.clock = clock
        self._monotonic = clock.monotonic  # kept: read once per lookup
        self._raw: sqlite3.Connection | None = None
        self._cursor: sqlite3.Cursor
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
        except BaseException:
            self.engine.dispose()
            raise

    # -- the hot path ------------------------------------------------------------------

    def lookup(self, key: str) -> EquipmentFacts | None:
        """The facts for a 14-digit key, or None when the registry does not hold it."""
        raw = self._raw
        if raw is None:
            return self._lookup_core(key)
        if self._snapshot_seconds and self._monotonic() >= self._snapshot_until:
            self._renew_snapshot()
        rows = self._cursor.execute(_LOOKUP_SQL, (key,)).fetchall()  # fetchall: the statement is done and reset
        if not rows:
            return None
        list_value, stolen, reason, stolen_reason = rows[0]
        pairings = tuple(raw.execute(_PAIRINGS_SQL, (key,)).fetchall()) if list_value == "paired" else ()
        return _facts(key, _LISTS[list_value], bool(stolen), reason, stolen_reason, pairings)

    @property
    def raw_connection(self) -> sqlite3.Connection | None:
        """The SQLite lookup connection (None on other databases)."""
        return self._raw

    def _read(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Rows of one of the registry's read-only statements (registry/statements.py, named
        parameters), on the lookup connection and its shared snapshot (SQLite), or through
        SQLAlchemy elsewhere."""
        if self._raw is None:
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
            return self.lookup(key), self.sightings(key)
        if self._snapshot_seconds and self._monotonic() >= self._snapshot_until:
            self._renew_snapshot()
        rows = self._cursor.execute(_OBSERVED_SQL, (key,)).fetchall()
        first = rows[0]
        if first[4] is None:  # no sighting: the one row is the left join's NULLs
            rows = []
        stolen = first[1]
        if stolen is None:  # no equipment row
            return None, rows
        list_value = first[0]
        pairings = tuple(self._raw.execute(_PAIRINGS_SQL, (key,)).fetchall()) if list_value == "paired" else ()
        return _facts(key, _LISTS[list_value], bool(stolen), first[2], first[3], pairings), rows

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
        with self.engine.connect() as conn:
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


# -- set-based bulk writes -------------------------------------------------------------

class Bulk:
    """Rows loaded chunk by chunk, then applied with set-based statements: counts, history
    and the new state are computed by the database, in the registry's key order."""

    def __init__(self, conn: Connection, clock: Clock = SYSTEM_CLOCK) -> None:
        self.conn = conn
        self.clock = clock
        self.cancelled = False
        self._tables: set[Table] = set()  # temporary tables created by this bulk write
        self._driver_sql = conn.dialect.name == "sqlite" and conn.dialect.driver == "pysqlite"

    def now(self) -> datetime:
        """The clock's time as the tables store it (naive UTC), for what a write stamps."""
        return stored(self.clock.now())

    def add_entries(self, rows: Sequence[tuple[str, str | None]]) -> None:
        """(key, reason) rows for ``put_list`` or ``put_stolen``."""
        self._load(STAGE_LIST, rows)

    def add_pairings(self, rows: Sequence[tuple[str, str | None, str | None]]) -> None:
        """(key, imsi, msisdn) rows for ``put_pairings``."""
        self._load(STAGE_PAIR, rows)

    def add_tacs(self, rows: Sequence[tuple[str, str | None, str | None, str | None]]) -> None:
        """(tac, brand, model, device_type) rows for ``put_tacs``."""
        self._load(STAGE_TAC, rows)

    def cancel(self) -> None:
        """Write nothing: the transaction is rolled back when the bulk block ends."""
        self.cancelled = True

    def put_list(self, name: ListName, source: str) -> Counts:
        """Put the loaded entries on list ``name``: new entries, moves from another list
        (with history; pairings are dropped when leaving paired), reason updates."""
        return _apply_list(self.conn, name, source, self.now(), self._stage(STAGE_LIST))

    def put_stolen(self, source: str, stolen: bool = True) -> Counts:
        """Set the flag of the loaded entries, with their reason (an IMEI the registry lacks
        is added, known only as stolen); ``stolen=False`` clears it (the reason goes to
        history; IMEIs not stolen are unchanged and none is added)."""
        return _apply_stolen(self.conn, source, self.now(), self._stage(STAGE_LIST), stolen)

    def put_pairings(self, source: str) -> Counts:
        """Bind the loaded keys to their identities and put them on the paired list.
        Pairings are added; those already held are kept. Counts are per loaded row."""
        self._stage(STAGE_PAIR)
        self._create(STAGE_LIST)
        keys = self.conn.execute(insert(STAGE_LIST).from_select(
            ["imei", "reason"], select(STAGE_PAIR.c.imei, null()).distinct().order_by(STAGE_PAIR.c.imei))).rowcount
        return _apply_pairings(self.conn, source, self.now(), keys)

    def put_tacs(self) -> Counts:
        return _apply_tacs(self.conn, self._stage(STAGE_TAC))

    def drop_tables(self) -> None:
        for table in self._tables:
            table.drop(self.conn)
        self._tables.clear()

    def _create(self, table: Table) -> None:
        if table not in self._tables:
            table.drop(self.conn, checkfirst=True)
            table.create(self.conn)
            self._tables.add(table)

    def _load(self, stage: Table, rows: Sequence[Sequence[Any]]) -> None:
        load = _LOAD[stage]
        self._create(load)
        if not rows:
            return
        names = [column.name for column in stage.columns]
        if self._driver_sql:
            # The DBAPI's executemany with the statement Core compiles: tuples go straight
            # to sqlite3 (Core's executemany costs a few microseconds more per row).
            cursor = self.conn.connection.cursor()
            try:
                cursor.executemany(str(insert(load).compile(dialect=self.conn.dialect, column_keys=names)), rows)
            finally:
                cursor.close()
            return
        for start in range(0, len(rows), CHUNK):
            self.conn.execute(insert(load), [dict(zip(names, row, strict=True)) for row in rows[start:start + CHUNK]])

    def _stage(self, stage: Table) -> int:
        """Fill the staging table with the loaded rows, sorted by key; returns their count."""
        load = _LOAD[stage]
        self._create(load)
        self._create(stage)
        names = [column.name for column in stage.columns]
        staged = self.conn.execute(insert(stage).from_select(
            names, select(*(load.c[name] for name in names)).order_by(load.c[names[0]], load.c.seq))).rowcount
        load.drop(self.conn)
        self._tables.discard(load)
        return staged


def _count(conn: Connection, joined: Any, new: ColumnElement[bool], changed: ColumnElement[bool]) -> Counts:
    total, n_new, n_changed = conn.execute(
        select(func.count(), func.sum(case((new, 1), else_=0)), func.sum(case((changed, 1), else_=0)))
        .select_from(joined)).one()
    n_new, n_changed = n_new or 0, n_changed or 0
    return Counts(n_new, n_changed, total - n_new - n_changed)


def _history(conn: Connection, query: Any) -> None:
    columns = ["imei", "at", "field", "old", "new", "reason", "source"]
    conn.execute(insert(HISTORY).from_select(columns, query))


def _pair_text(imsi: Any, msisdn: Any) -> ColumnElement[str]:
    """'imsi=…', 'msisdn=…' or 'imsi=… msisdn=…' in SQL, for history."""
    both = literal("imsi=") + imsi + literal(" msisdn=") + msisdn
    return case((msisdn.is_(None), literal("imsi=") + imsi), (imsi.is_(None), literal("msisdn=") + msisdn),
                else_=both)


def _apply_list(conn: Connection, name: ListName, source: str, now: datetime, staged: int) -> Counts:
    s, e = STAGE_LIST.c, EQUIPMENT.c
    joined = STAGE_LIST.outerjoin(EQUIPMENT, e.imei == s.imei)
    moved = e.list.is_distinct_from(name)
    differs = or_(moved, e.reason.is_distinct_from(s.reason))
    at, src = literal(now, DateTime), literal(source, String)
    _history(conn, select(s.imei, at, literal(HistoryField.LIST, FIELD_TYPE), e.list, literal(name.value, String),
                          s.reason, src).select_from(joined).where(moved))
    if name is not ListName.PAIRED:
        _drop_pairings(conn, name, src, at)
    changed = conn.execute(update(EQUIPMENT).where(e.imei == s.imei, differs)
                           .values(list=name, reason=s.reason, source=source, updated_at=now)).rowcount
    new = conn.execute(insert(EQUIPMENT).from_select(
        ["imei", "list", "reason", "source", "stolen", "stolen_reason", "created_at", "updated_at"],
        select(s.imei, literal(name, LIST_TYPE), s.reason, src, literal(False, Boolean), null(), at, at)
        .where(~exists().where(e.imei == s.imei)))).rowcount
    return Counts(new, changed, staged - new - changed)


def _drop_pairings(conn: Connection, name: ListName, src: Any, at: Any) -> None:
    """IMEIs leaving the paired list lose their bindings (with history), so a later return
    to the paired list never revives an old binding."""
    s, p = STAGE_LIST.c, PAIRING.c
    if conn.execute(select(p.id).limit(1)).first() is None:
        return  # no pairings at all (the common case): nothing to look for
    _history(conn, select(p.imei, at, literal(HistoryField.PAIRING, FIELD_TYPE), _pair_text(p.imsi, p.msisdn),
                          null(), literal(f"left the paired list for {name.value}"), src)
             .join_from(PAIRING, STAGE_LIST, s.imei == p.imei).order_by(p.id))
    conn.execute(delete(PAIRING).where(p.imei.in_(select(s.imei))))


def _apply_stolen(conn: Connection, source: str, now: datetime, staged: int, stolen: bool = True) -> Counts:
    s, e = STAGE_LIST.c, EQUIPMENT.c
    joined = STAGE_LIST.outerjoin(EQUIPMENT, e.imei == s.imei)
    turns = or_(e.stolen.is_(None), e.stolen.is_(False)) if stolen else e.stolen.is_(True)
    differs = or_(turns, e.stolen_reason.is_distinct_from(s.reason)) if stolen else turns
    at, src = literal(now, DateTime), literal(source, String)
    old = case((e.imei.is_(None), null()), else_=literal(str(not stolen).lower()))
    _history(conn, select(s.imei, at, literal(HistoryField.STOLEN, FIELD_TYPE), old, literal(str(stolen).lower()),
                          s.reason, src).select_from(joined).where(turns))
    changed = conn.execute(update(EQUIPMENT).where(e.imei == s.imei, differs).values(
        stolen=stolen, stolen_reason=s.reason if stolen else null(), source=source, updated_at=now)).rowcount
    if not stolen:  # clearing never adds an entry
        return Counts(0, changed, staged - changed)
    new = conn.execute(insert(EQUIPMENT).from_select(
        ["imei", "list", "reason", "source", "stolen", "stolen_reason", "created_at", "updated_at"],
        select(s.imei, null(), null(), src, literal(True, Boolean), s.reason, at, at)
        .where(~exists().where(e.imei == s.imei)))).rowcount
    return Counts(new, changed, staged - new - changed)


def _apply_pairings(conn: Connection, source: str, now: datetime, keys: int) -> Counts:
    """Counts are per pairing row: new (the IMEI was not in the registry), changed (the
    pairing is added, or the IMEI moves to the paired list), unchanged."""
    sp, e, p = STAGE_PAIR.c, EQUIPMENT.c, PAIRING.c
    held = exists().where(p.imei == sp.imei, p.imsi.is_not_distinct_from(sp.imsi),
                          p.msisdn.is_not_distinct_from(sp.msisdn))
    joined = STAGE_PAIR.outerjoin(EQUIPMENT, e.imei == sp.imei)
    differs = or_(e.list.is_distinct_from(ListName.PAIRED), e.reason.is_not(None), ~held)
    counts = _count(conn, joined, e.imei.is_(None), and_(e.imei.is_not(None), differs))
    _apply_list(conn, ListName.PAIRED, source, now, keys)
    at, src = literal(now, DateTime), literal(source, String)
    _history(conn, select(sp.imei, at, literal(HistoryField.PAIRING, FIELD_TYPE), null(),
                          _pair_text(sp.imsi, sp.msisdn), null(), src).where(~held))
    conn.execute(insert(PAIRING).from_select(["imei", "imsi", "msisdn", "created_at"],
                                             select(sp.imei, sp.imsi, sp.msisdn, at).where(~held)))
    return counts


def _apply_tacs(conn: Connection, staged: int) -> Counts:
    s, t = STAGE_TAC.c, TAC.c
    differs = or_(t.brand.is_distinct_from(s.brand), t.model.is_distinct_from(s.model),
                  t.device_type.is_distinct_from(s.device_type))
    changed = conn.execute(update(TAC).where(t.tac == s.tac, differs)
                           .values(brand=s.brand, model=s.model, device_type=s.device_type)).rowcount
    new = conn.execute(insert(TAC).from_select(["tac", "brand", "model", "device_type"],
                                               select(s.tac, s.brand, s.model, s.device_type)
                                               .where(~exists().where(t.tac == s.tac)))).rowcount
    return Counts(new, changed, staged - new - changed)
