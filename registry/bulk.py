"""Set-based bulk writes (imports): rows are loaded chunk by chunk into a temporary table,
then applied by a handful of INSERT ... SELECT and UPDATE ... FROM statements in the same
transaction. Counts, history, list moves and duplicates are computed by the database, so
the memory of an import does not grow with its file.

Loading: PostgreSQL takes each chunk with COPY (psycopg 3), SQLite with one executemany
straight to sqlite3. Every loaded row carries its line in the file (or its place in the
call). Staging copies the loaded rows, sorted by key, into the table the statements read,
keeping the first row of each key (the lowest line): every statement then walks the
registry's B-trees in key order, and the rows left behind are the file's duplicates, which
``duplicates`` lists with their lines (the first ``duplicates_listed``; ``duplicate_count``
counts them all).

On SQLite the bulk connection keeps its temporary tables and sorts in files
(``temp_store=FILE``, set before the transaction begins and restored after it ends): a
file of any size then costs the same memory. The registry's own durability settings are
untouched. On PostgreSQL the transaction's sorts and hash joins get ``WORK_MEM`` each (SET
LOCAL: the setting ends with the transaction); the server's durability settings are untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
from sqlalchemy.sql.elements import ColumnElement

from registry.clock import SYSTEM_CLOCK, Clock, stored
from registry.decision.facts import ListName
from registry.models import FIELD_TYPE, LIST_TYPE, Base, HistoryField

EQUIPMENT = Base.metadata.tables["equipment"]
PAIRING = Base.metadata.tables["pairing"]
TAC = Base.metadata.tables["tac"]
HISTORY = Base.metadata.tables["history"]

CHUNK = 20_000  # rows per executemany (or COPY) into a load table
WORK_MEM = "64MB"  # PostgreSQL's work_mem in a bulk write's transaction (SET LOCAL; the server default is 4MB)

# Load tables are a plain append (the line last); staging tables hold the rows the
# statements read, one per key, sorted by key.
_STAGING = MetaData()
STAGE_LIST = Table("eir_stage_list", _STAGING, Column("imei", String(14)), Column("reason", String),
                   Column("line", Integer), prefixes=["TEMPORARY"])
STAGE_PAIR = Table("eir_stage_pair", _STAGING, Column("imei", String(14)), Column("imsi", String(15)),
                   Column("msisdn", String(15)), Column("line", Integer), prefixes=["TEMPORARY"])
STAGE_TAC = Table("eir_stage_tac", _STAGING, Column("tac", String(8)), Column("brand", String),
                  Column("model", String), Column("device_type", String), Column("line", Integer),
                  prefixes=["TEMPORARY"])
_LOAD = {stage: Table(stage.name.replace("stage", "load"), _STAGING, *(Column(c.name, c.type) for c in stage.columns),
                      prefixes=["TEMPORARY"])
         for stage in (STAGE_LIST, STAGE_PAIR, STAGE_TAC)}
# What makes two loaded rows the same row (a pairing is its whole binding; NULLs equal)
KEYS = {STAGE_LIST: ("imei",), STAGE_PAIR: ("imei", "imsi", "msisdn"), STAGE_TAC: ("tac",)}


@dataclass(frozen=True, slots=True)
class Counts:
    """What a bulk write did, in rows of the input."""

    new: int = 0  # the IMEI (or TAC) was not in the registry
    changed: int = 0
    unchanged: int = 0


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A loaded row whose key an earlier row already gave: it is not applied."""

    line: int
    key: tuple[str | None, ...]  # the values of KEYS (imei; tac; imei, imsi, msisdn)
    first: int  # the line of the row that is applied


class Bulk:
    """Rows loaded chunk by chunk, then applied with set-based statements: counts, history
    and the new state are computed by the database, in the registry's key order."""

    def __init__(self, conn: Connection, clock: Clock = SYSTEM_CLOCK, duplicates_listed: int = 1000) -> None:
        self.conn = conn
        self.clock = clock
        self.cancelled = False
        self.duplicates: list[Duplicate] = []  # the first ``duplicates_listed`` of them, by line
        self.duplicate_count = 0
        self._listed = duplicates_listed
        self._tables: set[Table] = set()  # temporary tables created by this bulk write
        self._loaded: dict[Table, int] = {}  # load table -> rows loaded
        self._staged: dict[Table, int] = {}  # staging table -> rows staged
        self._dialect = conn.dialect.name
        self._driver_sql = self._dialect == "sqlite" and conn.dialect.driver == "pysqlite"
        self._copy = self._dialect == "postgresql" and conn.dialect.driver == "psycopg"
        if self._dialect == "postgresql":  # sorts and hash joins of millions of rows: for this transaction only
            conn.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))

    def now(self) -> datetime:
        """The clock's time as the tables store it (naive UTC), for what a write stamps."""
        return stored(self.clock.now())

    def add_entries(self, rows: Sequence[Sequence[Any]], numbered: bool = False) -> None:
        """(key, reason) rows for ``put_list`` or ``put_stolen``; ``numbered``: each row
        ends with its line in the file, else rows are numbered in the order they come."""
        self._load(STAGE_LIST, rows, numbered)

    def add_pairings(self, rows: Sequence[Sequence[Any]], numbered: bool = False) -> None:
        """(key, imsi, msisdn) rows for ``put_pairings`` (``numbered``: as ``add_entries``)."""
        self._load(STAGE_PAIR, rows, numbered)

    def add_tacs(self, rows: Sequence[Sequence[Any]], numbered: bool = False) -> None:
        """(tac, brand, model, device_type) rows for ``put_tacs`` (``numbered``: as ``add_entries``)."""
        self._load(STAGE_TAC, rows, numbered)

    def stage(self) -> None:
        """Stage what was loaded (``put_*`` does it too) and so find the duplicates before
        anything is applied: a strict import refuses a file on them without writing."""
        for stage, load in _LOAD.items():
            if load in self._tables:
                self._stage(stage)

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

    def _load(self, stage: Table, rows: Sequence[Sequence[Any]], numbered: bool) -> None:
        load = _LOAD[stage]
        self._create(load)
        if not rows:
            return
        loaded = self._loaded.get(load, 0)
        if not numbered:
            rows = [(*row, loaded + n) for n, row in enumerate(rows, 1)]
        self._loaded[load] = loaded + len(rows)
        names = [column.name for column in load.columns]
        if self._copy:
            self._copy_rows(load, names, rows)
        elif self._driver_sql:
            # The DBAPI's executemany with the statement Core compiles: tuples go straight
            # to sqlite3 (Core's executemany costs a few microseconds more per row).
            cursor = self.conn.connection.cursor()
            try:
                cursor.executemany(str(insert(load).compile(dialect=self.conn.dialect, column_keys=names)), rows)
            finally:
                cursor.close()
        else:
            for start in range(0, len(rows), CHUNK):
                self.conn.execute(insert(load), [dict(zip(names, row, strict=True))
                                                 for row in rows[start:start + CHUNK]])

    def _copy_rows(self, load: Table, names: list[str], rows: Iterable[Sequence[Any]]) -> None:
        """COPY ... FROM STDIN on the bulk write's own psycopg connection (its transaction)."""
        driver = self.conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor, cursor.copy(f"COPY {load.name} ({', '.join(names)}) FROM STDIN") as copy:
            write = copy.write_row
            for row in rows:
                write(row)

    def _stage(self, stage: Table) -> int:
        """Fill the staging table with the first loaded row of each key, sorted by key, and
        note the duplicates (once: a second call returns the first one's count); returns
        how many rows were staged."""
        if stage in self._staged:
            return self._staged[stage]
        load = _LOAD[stage]
        self._create(load)
        self._create(stage)
        staged = self.conn.execute(text(_dedup_sql(self._dialect, stage, load))).rowcount
        self.duplicate_count = self._loaded.get(load, 0) - staged
        if self.duplicate_count > 0:
            self.duplicates = self._find_duplicates(stage, load)
        load.drop(self.conn)
        self._tables.discard(load)
        if self._dialect == "postgresql":
            self.conn.execute(text(f"ANALYZE {stage.name}"))  # autovacuum never analyzes temporary tables
        self._staged[stage] = staged
        return staged

    def _find_duplicates(self, stage: Table, load: Table) -> list[Duplicate]:
        """The first loaded rows (by line) that were not staged, with the line staged instead."""
        keys = KEYS[stage]
        self.conn.execute(text(f"CREATE INDEX {stage.name}_key ON {stage.name} ({', '.join(keys)})"))
        same = " AND ".join(f"s.{key} IS NOT DISTINCT FROM l.{key}" if self._dialect == "postgresql"
                            else f"s.{key} IS l.{key}" for key in keys)
        found = self.conn.execute(text(
            f"SELECT l.line, {', '.join(f'l.{key}' for key in keys)}, s.line FROM {load.name} AS l "
            f"JOIN {stage.name} AS s ON {same} WHERE l.line <> s.line ORDER BY l.line LIMIT :limit"),
            {"limit": self._listed})
        return [Duplicate(row[0], tuple(row[1:-1]), row[-1]) for row in found]


def _dedup_sql(dialect: str, stage: Table, load: Table) -> str:
    """INSERT the first row (lowest line) of each key of ``load`` into ``stage``, by key
    and then line (the pairings of an IMEI keep their order in the file)."""
    keys = ", ".join(KEYS[stage])
    names = [column.name for column in stage.columns]
    values = ", ".join(name for name in names if name != "line")
    if dialect == "postgresql":
        first = f"SELECT DISTINCT ON ({keys}) {values}, line FROM {load.name} ORDER BY {keys}, line"
    else:  # SQLite: with one min(), the other columns come from the row that has it
        first = f"SELECT {values}, min(line) AS line FROM {load.name} GROUP BY {keys}"
    if len(KEYS[stage]) > 1:
        first = f"SELECT * FROM ({first}) AS d ORDER BY {KEYS[stage][0]}, line"
    elif dialect != "postgresql":
        first += f" ORDER BY {keys}"
    return f"INSERT INTO {stage.name} ({', '.join(names)}) {first}"


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
