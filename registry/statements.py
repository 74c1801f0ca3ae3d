"""The SQL the registry writes by hand, in one place: the hot path's reads (one fixed,
parameterised statement each, run on the raw SQLite connection: SQLAlchemy Core would
compile and wrap every call, costing more than the lookup itself) and the recorder's
batch writes (executemany of an upsert on its writer connection). Only registry/store.py
and the registry's writers (registry/writer.py, registry/sightings.py) run them; callers
use the registry's named methods.

The statements for every database use named parameters (``:name``: sqlite3 and
SQLAlchemy's ``text`` both read them; ``pyformat`` gives psycopg's form, for the one
statement the writer runs on the driver itself); the SQLite-only lookups use ``?``.
"""

from __future__ import annotations

import re

# -- SQLite lookups (the raw connection; Core on other databases) -------------------------

LOOKUP = "SELECT list, stolen, reason, stolen_reason FROM equipment WHERE imei = ?"
PAIRINGS = "SELECT imsi, msisdn FROM pairing WHERE imei = ? ORDER BY id"
OBSERVED = ("SELECT e.list, e.stolen, e.reason, e.stolen_reason, s.imsi, s.first_seen, s.last_seen "
            "FROM (SELECT ? AS imei) AS q LEFT JOIN equipment AS e ON e.imei = q.imei "
            "LEFT JOIN sighting AS s ON s.imei = q.imei")

# -- reads on every database --------------------------------------------------------------

SIGHTINGS = "SELECT imsi, first_seen, last_seen FROM sighting WHERE imei = :imei"
DEVICE_TYPE = "SELECT device_type FROM tac WHERE tac = :tac"
NOTICE_QUEUED = "SELECT 1 FROM notice WHERE imei = :imei AND imsi = :imsi AND event = :event"
STORED_FIRST = "SELECT imei, imsi, first_seen FROM sighting WHERE imei IN"  # SQLite's writer adds "(?, ?...)"


def msisdn_expression(imsi: str, at: str) -> str:
    """An SQL expression: the MSISDN the IMSI ``imsi`` held at time ``at`` (both parameter
    placeholders): the subscriber data (registry/subscribers.py), else the last one imported
    observations gave it (a partial index holds only the sightings with one); NULL if none."""
    return (f"coalesce((SELECT s.msisdn FROM subscriber AS s WHERE s.imsi = {imsi} AND (s.valid_from IS NULL OR "
            f"s.valid_from <= {at}) AND (s.valid_until IS NULL OR s.valid_until > {at}) "
            f"ORDER BY s.valid_from DESC NULLS LAST LIMIT 1), "
            f"(SELECT o.msisdn FROM sighting AS o WHERE o.imsi = {imsi} AND o.msisdn IS NOT NULL AND "
            f"o.first_seen <= {at} ORDER BY o.last_seen DESC LIMIT 1))")


MSISDN = f"SELECT {msisdn_expression(':imsi', ':at')}"

# -- writes ---------------------------------------------------------------------------


def upsert_sighting(dialect: str) -> str:
    """Imported observations (registry/sightings.py): one statement for a first sight and for
    later ones (parameters imei, imsi, msisdn, first_seen, last_seen, interface): the earliest
    first sight and the latest last sight win (an import may date a first sight earlier: that
    is what it is for); a known MSISDN is kept unless a new one is given."""
    low, high = ("least", "greatest") if dialect == "postgresql" else ("min", "max")
    return ("INSERT INTO sighting (imei, imsi, msisdn, first_seen, last_seen, interface) "
            "VALUES (:imei, :imsi, :msisdn, :first_seen, :last_seen, :interface) "
            "ON CONFLICT (imei, imsi) DO UPDATE SET msisdn = coalesce(excluded.msisdn, sighting.msisdn), "
            f"first_seen = {low}(sighting.first_seen, excluded.first_seen), "
            f"last_seen = {high}(sighting.last_seen, excluded.last_seen), interface = excluded.interface")



def record_sighting(dialect: str, returning: bool = False) -> str:
    """The agent's own sights (registry/writer.py; parameters as ``upsert_sighting``): the
    first committed first sight wins, whichever agent's clock read earlier, since an answer
    may already have left resting on it; the latest last sight wins. ``returning``: the
    statement gives back (imei, imsi, first_seen) as stored, so the agent learns whether
    another agent's first sight came first (SQLite since 3.35, PostgreSQL)."""
    high = "greatest" if dialect == "postgresql" else "max"
    sql = ("INSERT INTO sighting (imei, imsi, msisdn, first_seen, last_seen, interface) "
           "VALUES (:imei, :imsi, :msisdn, :first_seen, :last_seen, :interface) "
           "ON CONFLICT (imei, imsi) DO UPDATE SET msisdn = coalesce(excluded.msisdn, sighting.msisdn), "
           f"last_seen = {high}(sighting.last_seen, excluded.last_seen), interface = excluded.interface")
    return sql + " RETURNING imei, imsi, first_seen" if returning else sql


def pyformat(sql: str) -> str:
    """A statement of this module with psycopg's placeholders (``%(name)s`` for ``:name``),
    for the driver's own executemany (its ``returning`` gives every row's RETURNING)."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql)

# An IMEI the profile enters automatically by its device type: on the white list, with its
# history, unless the registry holds it already (an import, or another answer, came first).
# The IMEI is cast where the condition reads it (PostgreSQL: one type per parameter).
AUTO_HISTORY = ("INSERT INTO history (imei, at, field, old, new, reason, source) "
                "SELECT :imei, :at, 'list', NULL, 'white', :reason, :source "
                "WHERE NOT EXISTS (SELECT 1 FROM equipment WHERE imei = CAST(:imei AS VARCHAR(14)))")
AUTO_ENTRY = ("INSERT INTO equipment (imei, list, reason, source, stolen, stolen_reason, created_at, updated_at) "
              "VALUES (:imei, 'white', :reason, :source, :stolen, NULL, :at, :at) ON CONFLICT (imei) DO NOTHING")
# PostgreSQL: the entry and its history in one statement, the history only where the entry
# was made. Two agents entering one IMEI at once both find it absent (neither sees the
# other's uncommitted row) and AUTO_HISTORY would write it twice; here the second waits for
# the first's commit, then neither enters nor records anything.
AUTO_ENTRY_ONCE = (f"WITH entered AS ({AUTO_ENTRY} RETURNING imei) "
                   "INSERT INTO history (imei, at, field, old, new, reason, source) "
                   "SELECT imei, CAST(:at AS TIMESTAMP), 'list', NULL, 'white', CAST(:reason AS VARCHAR), "
                   "CAST(:source AS VARCHAR) FROM entered")

# A notice is addressed to its IMSI and the MSISDN the IMSI held when it was made due (the
# query's, else the subscriber data's, else the last one imported observations gave it),
# looked up by the database as it writes the batch. The IMSI is cast where the subquery
# reads it: PostgreSQL refuses a parameter it deduces as text there and as varchar in VALUES.
NOTICE_INSERT = (
    "INSERT INTO notice (imei, imsi, msisdn, event, deadline, reason, created_at) "
    f"VALUES (:imei, :imsi, coalesce(:msisdn, {msisdn_expression('CAST(:imsi AS VARCHAR(15))', ':created_at')}), "
    ":event, :deadline, :reason, :created_at) ON CONFLICT (imei, imsi, event) DO NOTHING")
