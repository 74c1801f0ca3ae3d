"""The notice outbox as a file: ``eir notices export`` hands the SMS notices the agent
queued (table ``notice``) to whatever sends them.

Columns ``imei,imsi,msisdn,event,deadline,reason,created_at``: IMEIs with 15 digits,
times ISO UTC. A plain export writes the notices not exported yet; the caller marks them
exported (``mark_exported``) only once the file is whole, so a failed export loses none
(a crash in between writes them again next time: at least once, never lost).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import bindparam, select, update

from registry.clock import stored
from registry.imei import luhn_check_digit
from registry.imports import write_csv
from registry.models import Base
from registry.sightings import iso_utc, stream
from registry.store import Registry

NOTICE = Base.metadata.tables["notice"]
COLUMNS = ("imei", "imsi", "msisdn", "event", "deadline", "reason", "created_at")


@dataclass
class NoticeExport:
    """What an export wrote: how many notices, and their ids as runs of consecutive ids
    (a run holds no id the export did not see, so marking it marks only what was written)."""

    written: int = 0
    runs: list[tuple[int, int]] = field(default_factory=list)

    def add(self, notice_id: int) -> None:
        if self.runs and self.runs[-1][1] + 1 == notice_id:
            self.runs[-1] = (self.runs[-1][0], notice_id)
        else:
            self.runs.append((notice_id, notice_id))


def export_notices(registry: Registry, out: TextIO, everything: bool = False) -> NoticeExport:
    """Write the notices not exported yet (``everything``: all of them) to ``out``, oldest
    first; marks nothing."""
    n = NOTICE.c
    query: Any = select(n.id, n.imei, n.imsi, n.msisdn, n.event, n.deadline, n.reason, n.created_at).order_by(n.id)
    if not everything:
        query = query.where(n.exported_at.is_(None))
    done = NoticeExport()
    done.written = write_csv(out, COLUMNS, _rows(stream(registry, query), done))
    return done


def _rows(found: Iterator[tuple[Any, ...]], done: NoticeExport) -> Iterator[tuple[str | None, ...]]:
    for notice_id, key, imsi, msisdn, event, deadline, reason, created_at in found:
        done.add(notice_id)
        yield (key + luhn_check_digit(key), imsi, msisdn, event, _iso(deadline), reason, _iso(created_at))


def _iso(at: datetime | None) -> str | None:
    return None if at is None else iso_utc(at)


def mark_exported(registry: Registry, done: NoticeExport, at: datetime | None = None) -> None:
    """Mark the notices an export wrote as exported (those another export marked first keep
    their time), in one transaction; at ``at``, else the registry's clock's now."""
    if not done.runs:
        return
    n = NOTICE.c
    statement = (update(NOTICE).where(n.id.between(bindparam("low"), bindparam("high")), n.exported_at.is_(None))
                 .values(exported_at=stored(at or registry.clock.now())))
    with registry.engine.connect() as conn:
        writing = conn.execution_options(eir_write=True)  # SQLite: BEGIN IMMEDIATE
        with writing.begin():
            writing.execute(statement, [{"low": low, "high": high} for low, high in done.runs])


def notices_of(registry: Registry, key: str) -> list[dict[str, str | None]]:
    """Every notice queued for one IMEI (14-digit key), exported or not, oldest first: event,
    deadline, imsi, msisdn, created_at (times ISO UTC). Read on a connection of its own."""
    n = NOTICE.c
    query = (select(n.event, n.deadline, n.imsi, n.msisdn, n.created_at).where(n.imei == key).order_by(n.id))
    return [{"event": event, "deadline": _iso(deadline), "imsi": imsi, "msisdn": msisdn, "created_at": _iso(created)}
            for event, deadline, imsi, msisdn, created in stream(registry, query)]
