"""The operator's subscriber data: which MSISDN each IMSI holds, and since when.

S13 and MAP carry an IMSI, never an MSISDN, so an IMEI paired to a subscriber number only
can be matched on the network through this table (``eir registry import subscribers``,
columns ``imsi,msisdn[,date]``, from the HLR/HSS export) and the MSISDNs imported
observations carry. Notices are addressed with it too.

History is kept: an IMSI holds one MSISDN at a time and an MSISDN is held by one IMSI at
a time, so a row that gives an IMSI another number, or a number to another IMSI (a SIM
swap that keeps the number), closes the rows it replaces (``valid_until``) and opens a new
one (``valid_from``): the row's ``date`` when given, else the time of the import. The first
row ever of an IMSI and of its number, undated, holds as far back as is known
(``valid_from`` empty): an HLR export says who holds a number, not since when. A row equal to
what the registry holds is unchanged. The export writes the rows that hold now, dated when
their start is known, so it imports back unchanged. Decisions read it through
``registry.observations.Observations.msisdn``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Column, DateTime, MetaData, String, Table, func, insert, select, text

from registry.bulk import Bulk, Counts
from registry.models import Base
from registry.sightings import iso_utc, stream
from registry.store import Registry

SUBSCRIBER = Base.metadata.tables["subscriber"]
_STAGING = MetaData()
STAGE = Table("eir_stage_subscriber", _STAGING, Column("imsi", String(15)), Column("msisdn", String(15)),
              Column("at", DateTime), Column("dated", Boolean), Column("prior", Boolean), prefixes=["TEMPORARY"])

SubscriberRow = tuple[str, str, str | None, int]  # (imsi, msisdn, date as stored or None, line in the file)


class SubscriberLoader:
    """Stages parsed rows in a bulk write's transaction, then applies them at ``counts``."""

    def __init__(self, bulk: Bulk, source: str, now: datetime | None = None) -> None:
        self.conn = bulk.conn
        self.source = source
        self.now = now or bulk.now()  # the import's time: the start of an undated row
        STAGE.drop(self.conn, checkfirst=True)
        STAGE.create(self.conn)

    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        """Stage a chunk of (imsi, msisdn, date or None, line) rows (the line is not kept)."""
        if rows:
            self.conn.execute(insert(STAGE), [{"imsi": row[0], "msisdn": row[1], "at": _time(row[2]) or self.now,
                                               "dated": row[2] is not None, "prior": False} for row in rows])

    def counts(self) -> Counts:
        """Apply the staged rows: new (an IMSI the data did not hold), changed, unchanged."""
        conn, s = self.conn, STAGE.c
        staged = int(conn.execute(select(func.count()).select_from(STAGE)).scalar_one())
        unchanged = conn.execute(text(
            "DELETE FROM eir_stage_subscriber WHERE EXISTS (SELECT 1 FROM subscriber AS c WHERE c.imsi = "
            "eir_stage_subscriber.imsi AND c.msisdn = eir_stage_subscriber.msisdn AND c.valid_until IS NULL)")).rowcount
        new = int(conn.execute(select(func.count()).select_from(STAGE).where(~select(SUBSCRIBER.c.imsi).where(
            SUBSCRIBER.c.imsi == s.imsi).exists())).scalar_one())
        conn.execute(text(
            "UPDATE eir_stage_subscriber SET prior = :yes WHERE EXISTS (SELECT 1 FROM subscriber AS c WHERE "
            "c.imsi = eir_stage_subscriber.imsi OR c.msisdn = eir_stage_subscriber.msisdn)"), {"yes": True})
        for column in ("imsi", "msisdn"):  # the rows a staged row replaces end when it starts
            conn.execute(text(
                f"UPDATE subscriber SET valid_until = (SELECT s.at FROM eir_stage_subscriber AS s WHERE "
                f"s.{column} = subscriber.{column}) WHERE valid_until IS NULL AND {column} IN "
                f"(SELECT {column} FROM eir_stage_subscriber)"))
        conn.execute(text(
            "INSERT INTO subscriber (imsi, msisdn, valid_from, valid_until, source) SELECT imsi, msisdn, "
            "CASE WHEN dated OR prior THEN at ELSE NULL END, NULL, :source FROM eir_stage_subscriber ORDER BY imsi"),
            {"source": self.source})
        STAGE.drop(conn)
        return Counts(new=new, changed=staged - unchanged - new, unchanged=unchanged)


def iter_subscribers(registry: Registry) -> Iterator[tuple[str, str, str | None]]:
    """(imsi, msisdn, valid_from as ISO UTC or None) of every row that holds now, by IMSI."""
    c = SUBSCRIBER.c
    query = select(c.imsi, c.msisdn, c.valid_from).where(c.valid_until.is_(None)).order_by(c.imsi)
    for imsi, msisdn, since in stream(registry, query):
        yield imsi, msisdn, None if since is None else iso_utc(since)


def _time(value: str | None) -> datetime | None:
    """A staged date (stored-time text) as a naive UTC datetime for the DateTime column."""
    return None if value is None else datetime.fromisoformat(value)
