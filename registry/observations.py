"""Observations: which IMEI the network asked about with which IMSI, and the notice outbox.

Every answered query is a sighting of its (IMEI, IMSI) pair. A pair's first sight whose
answer rests on the sightings (a grace clock starts, a roamer's exemption, a grey-list
deadline: ``decision.OBSERVED_RULES``) and every notice due are *durable*: they are
written in one transaction, synchronously on disk (SQLite: WAL with synchronous=FULL),
and the answers that depend on them leave only once that transaction committed (group
commit; the agent runs the writes off its event loop: agent/durable.py). Other first
sights (a white-listed handset's new SIM, say) and the last sight of a known pair, moved
when it is on an earlier day, are kept in memory and written with the next batch that is
due anyway, or by ``flush`` (the agent: every 0.2 s): a crash loses at most those 0.2 s of
them, never a first sight an answer rested on. Every query is also one line of the
agent's answer log.

The writes go in batches: ``take`` moves the queued rows into a ``Batch`` (on the thread
that decides), ``write`` writes it (on any thread: it touches only the writer connection),
``settle`` makes it readable, or queues its rows again when the write failed. A first
sight taken into a batch is *in flight* until it settles: a later answer resting on it
waits for the next batch too (``observe`` says so), so it never leaves before that row is
on disk, even when the write in flight fails.

Several agents on one registry: a pair's first sight is the first one committed
(registry/writer.py). When another agent's came first with another time, the batch says so
(``Batch.moved``); its notices for that IMEI were left out; ``settle`` remembers the IMEI
(``moved``) so that every answer that waited for the batch is decided again from what the
registry holds before it leaves (agent/service.py ``EquipmentCheck.settled``), and
``renotice`` queues the notices of that decision.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from registry.clock import Clock, parse_stamp, stamp
from registry.decision import OBSERVED_RULES, Decision, EquipmentFacts, Query, Rule, Sighting
from registry.store import Registry
from registry.writer import Moved, ObservationWriter

__all__ = ["AUTO_ENTRY_SOURCE", "Batch", "Observations", "Recorder", "Sightings", "parse_stamp", "stamp"]

log = logging.getLogger("eir.observations")

TYPE_CACHE_LIMIT = 65536
LOG_EVERY = 10.0  # seconds between log lines about failed writes
SEEN_LIMIT = 500_000  # pairs remembered as recorded today (about 50 MiB); then it starts again
NOTICED_LIMIT = 262144
MOVED_LIMIT = 65536  # IMEIs remembered as having had a first sight stored by another agent first
AUTO_ENTRY_SOURCE = "auto-entry"  # the source of an IMEI the profile entered by its device type


class Sightings:
    """An IMEI's sightings as stored: rows ending in (imsi, first_seen, last_seen), the
    times as text. They become Sighting values only when iterated: most decisions never look."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    def __iter__(self) -> Iterator[Sighting]:
        for row in self.rows:
            yield Sighting(row[-3], parse_stamp(row[-2]), parse_stamp(row[-1]))

    def __len__(self) -> int:
        return len(self.rows)

    def last_seen(self, imsi: str) -> str | None:
        """When the pair was last seen (stored text), None when it never was."""
        for row in self.rows:
            if row[-3] == imsi:
                return str(row[-1])
        return None

    def first_seen(self, imsi: str) -> str | None:
        """When the pair was first seen (stored text), None when it never was."""
        for row in self.rows:
            if row[-3] == imsi:
                return str(row[-2])
        return None


class Observations:
    """Reads of the observations and of the TAC catalogue, for decisions. ``clock``: the
    registry's unless given."""

    def __init__(self, registry: Registry, *, clock: Clock | None = None) -> None:
        self.registry = registry
        self.clock = registry.clock if clock is None else clock
        self._types: dict[str, str | None] = {}
        self._pending: dict[str, list[tuple[Any, ...]]] = defaultdict(list)  # first sights not yet readable

    def lookup(self, key: str) -> tuple[EquipmentFacts | None, Sightings]:
        """The registry's facts for a key and the key's sightings, with the first sights
        recorded but not committed yet."""
        facts, rows = self.registry.lookup_observed(key)
        return facts, self._with_pending(key, rows)

    def sightings(self, key: str) -> Sightings:
        """The key's sightings alone (one read, not the equipment row again)."""
        return self._with_pending(key, self.registry.sightings(key))

    def _with_pending(self, key: str, rows: list[tuple[Any, ...]]) -> Sightings:
        if rows and not isinstance(rows[0][-2], str):  # not SQLite: datetimes, stored as text here
            rows = [(row[-3], stamp(parse_stamp(row[-2])), stamp(parse_stamp(row[-1]))) for row in rows]
        pending = self._pending.get(key)
        return Sightings(rows + pending if pending else rows)

    def device_type(self, tac: str) -> str | None:
        """The TAC catalogue's device type (None: no such TAC, or no type given); cached
        until ``forget_types`` (the agent calls it when the database changed)."""
        if tac in self._types:
            return self._types[tac]
        found = self.registry.device_type(tac)
        if len(self._types) >= TYPE_CACHE_LIMIT:
            self._types.clear()
        self._types[tac] = found
        return found

    def forget_types(self) -> None:
        self._types.clear()

    def msisdn(self, imsi: str, at: datetime) -> str | None:
        """The MSISDN ``imsi`` held at ``at``: the operator's subscriber data, else the last
        one imported observations gave it; None when neither knows."""
        return self.registry.msisdn(imsi, at)

    def msisdns(self, equipment: EquipmentFacts | None, imsi: str | None, sightings: Iterable[Sighting],
                at: datetime) -> dict[str, str]:
        """For a paired IMEI bound to an MSISDN: the number each IMSI the decision may use
        held at ``at`` (the query's IMSI, or those seen with the IMEI when it carried none)."""
        if equipment is None or not any(msisdn for _, msisdn in equipment.pairings):
            return {}
        imsis = {imsi} if imsi else {seen.imsi for seen in sightings if seen.imsi}
        found = {sim: self.msisdn(sim, at) for sim in imsis}
        return {sim: number for sim, number in found.items() if number}

    def known_today(self, key: str, imsi: str, at: datetime) -> bool:
        """Whether this process already recorded the pair on the UTC day of ``at`` (then
        there is nothing to record for it, and its sightings need not be read unless the
        decision looks at them). Plain reads remember nothing: always False."""
        return False


class Recorder(Observations):
    """Reads and records observations for the agent (one per process)."""

    def __init__(self, registry: Registry, busy_seconds: float = 0.2, *, clock: Clock | None = None) -> None:
        super().__init__(registry, clock=clock)
        self._writer = ObservationWriter(registry, busy_seconds)
        self._first: list[dict[str, Any]] = []  # durable: first sights not yet committed
        self._notices: list[dict[str, Any]] = []  # durable: notices not yet committed
        self._auto: dict[str, dict[str, Any]] = {}  # durable: automatic entries not yet committed
        self.unaddressed = 0  # notices not queued: neither IMSI nor MSISDN known
        self._later: dict[tuple[str, str], dict[str, Any]] = {}  # last sights to move, written by flush()
        self._noticed: set[tuple[str, str, str]] = set()
        self._day, self._day_text = date.min, ""
        self._seen: set[str] = set()  # the pairs recorded today (``known_today``)
        self._seen_date, self._seen_day = "", 0  # the UTC date the set is for, and its ordinal
        self._unsettled: set[tuple[str, str]] = set()  # first sights queued as durable or in a batch being written
        self._moved: dict[str, None] = {}  # IMEIs a first sight of which another agent stored first (oldest first)
        self.commits = 0
        self.failures = 0
        self.moved_first_sights = 0  # first sights another agent stored first, with another time
        self.first_sights_ahead = 0  # queries decided as of a first sight stored later than their time (EquipmentCheck)
        self._quiet_until = 0.0

    def known_today(self, key: str, imsi: str, at: datetime) -> bool:
        if at.toordinal() != self._seen_day or at.tzinfo is not UTC:  # a new day: every last sight may move again
            self._new_day(at)
        return key + imsi in self._seen

    def _new_day(self, at: datetime) -> None:
        day = self._today(at)
        if day != self._seen_date:
            self._seen.clear()
            self._seen_date = day
        self._seen_day = at.toordinal() if at.tzinfo is UTC else 0

    def observe(self, key: str, query: Query, sightings: Sightings | None, decision: Decision) -> bool:
        """Record the query as a sighting, queue the notices its decision makes due and the
        automatic entry it makes. ``sightings`` None: the pair is known today
        (``known_today``) and was not read. A query without IMSI decided with the IMSI last
        seen (``decision.imsi``) is no new sight of anything: only its notices are queued,
        to that IMSI. True when something durable was queued: ``commit()`` before answering."""
        durable = False
        if decision.imsi:
            durable = self._rests_on(key, decision.imsi, decision)
        elif sightings is not None:
            durable = self._sight(key, query.imsi or "", query, sightings, decision)
        elif decision.rule in OBSERVED_RULES:  # known today, not read: its first sight may still be unwritten
            durable = self._unwritten(key, query.imsi or "")
        if decision.notices:
            durable = self._notice(key, query.imsi or decision.imsi or "", query, decision) or durable
        if decision.rule == Rule.AUTO_ENTERED and key not in self._auto:
            self._auto[key] = {"imei": key, "reason": decision.reason, "source": AUTO_ENTRY_SOURCE, "stolen": False,
                               "at": stamp(query.at)}
            durable = True
        return durable

    def _notice(self, key: str, imsi: str, query: Query, decision: Decision) -> bool:
        """Queue the notices due, addressed to the IMSI (the database adds the MSISDN it
        holds as it writes them: statements.NOTICE_INSERT); none without an IMSI or an MSISDN.
        True when one was queued."""
        queued = False
        for notice in decision.notices:
            if not self._due(key, imsi, notice.event):
                continue
            if not imsi and not query.msisdn:
                self.unaddressed += 1
                continue
            self._notices.append({"imei": key, "imsi": imsi, "msisdn": query.msisdn, "event": notice.event,
                                  "deadline": stamp(notice.deadline) if notice.deadline else None,
                                  "reason": decision.reason, "created_at": stamp(query.at)})
            queued = True
        return queued

    def renotice(self, key: str, query: Query, decision: Decision) -> None:
        """Queue the notices a decision made again after its commit makes due (``moved``):
        written with the next batch or flush; the answer does not wait for them (the first
        sight it rests on is on disk, and a notice lost in a crash is due again at the next sight)."""
        self._notice(key, query.imsi or decision.imsi or "", query, decision)

    def moved(self, key: str) -> bool:
        """Whether another agent stored a first sight of this IMEI first, with another time
        than this agent assumed: the answers that rested on it are decided again."""
        return key in self._moved

    def _rests_on(self, key: str, imsi: str, decision: Decision) -> bool:
        """A decision made with the IMSI last seen rests on that pair's sight: commit it now
        if it is still kept for the flush."""
        return decision.rule in OBSERVED_RULES and self._unwritten(key, imsi)

    def _sight(self, key: str, imsi: str, query: Query, sightings: Sightings, decision: Decision) -> bool:
        """Record the sight of a pair read from the registry; True when it must be durable."""
        durable = False
        last = sightings.last_seen(imsi)
        if last is None:
            row = _row(key, imsi, query)
            self._pending[key].append((imsi, row["first_seen"], row["last_seen"]))
            if decision.rule in OBSERVED_RULES:  # the answer rests on this first sight
                self._queue_first(row)
                durable = True
            else:
                self._later[(key, imsi)] = row
        elif not last.startswith(self._today(query.at)):  # last seen on an earlier day: move it
            self._later[(key, imsi)] = _row(key, imsi, query)
        if not durable and decision.rule in OBSERVED_RULES and self._unwritten(key, imsi):
            durable = True
        if len(self._seen) >= SEEN_LIMIT:
            self._seen.clear()
        self._seen.add(_pair(key, imsi))
        return durable

    def _unwritten(self, key: str, imsi: str) -> bool:
        """Whether the pair's first sight is not on disk yet: in flight (the answer waits for
        the next batch, which holds it again if its write fails), or kept for the flush
        (no answer rested on it when it was seen; now one does: it becomes durable)."""
        pair = (key, imsi)
        if pair in self._unsettled:
            return True
        if pair in self._later and any(row[-3] == imsi for row in self._pending.get(key, ())):
            self._queue_first(self._later.pop(pair))
            return True
        return False

    def _queue_first(self, row: dict[str, Any]) -> None:
        self._first.append(row)
        self._unsettled.add((row["imei"], row["imsi"]))

    def _today(self, at: datetime) -> str:
        """The UTC date of ``at`` as stored ("YYYY-MM-DD"), remembered for the day."""
        day = at.astimezone(UTC).date() if at.tzinfo is not UTC else at.date()
        if day != self._day:
            self._day, self._day_text = day, day.isoformat()
        return self._day_text

    def _due(self, key: str, imsi: str, event: str) -> bool:
        """Whether a notice is still to be queued (not queued by this process, not in the outbox)."""
        marker = (key, imsi, event)
        if marker in self._noticed:
            return False
        queued = self.registry.notice_queued(key, imsi, event)  # first: a read that fails marks nothing
        if len(self._noticed) >= NOTICED_LIMIT:
            self._noticed.clear()
        self._noticed.add(marker)
        return not queued

    @property
    def waiting(self) -> bool:
        """Durable rows are queued: the answers that depend on them wait for the next batch."""
        return bool(self._first or self._notices or self._auto)

    @property
    def threaded(self) -> bool:
        """Whether ``write`` may run on another thread (its connection is its own)."""
        return self._writer.threaded

    def take(self, later: bool = False) -> Batch:
        """Move the queued durable rows (and with ``later`` the sights kept for the flush)
        into a batch to write; their first sights are in flight until ``settle``."""
        batch = Batch(self._first, self._notices, list(self._auto.values()),
                      list(self._later.values()) if later else [])
        self._first, self._notices = [], []
        self._auto.clear()
        if later:
            self._later.clear()
        self._unsettled.update(batch.pairs())
        return batch

    def write(self, batch: Batch) -> None:
        """Write a batch in one transaction (any thread: only the writer connection is
        used); raises what the database raised."""
        if batch:
            batch.moved = self._writer.write(batch.first, batch.later, batch.notices, batch.auto)

    @property
    def stages(self) -> bool:
        """A SQLite file: a batch's statements can run on the deciding thread (``stage``,
        never waiting for a lock) and only its COMMIT, the fsync, on the writer thread
        (``commit_staged``). A worker thread running every statement needs the GIL back
        for each row, from an event loop busy with the next requests."""
        return self._writer.stages

    def stage(self, batch: Batch) -> None:
        """Begin the batch's transaction and run its statements, on this thread; raises at
        once (database is locked) when another process holds the write lock."""
        batch.moved = self._writer.stage(batch.first, batch.later, batch.notices, batch.auto)

    def commit_staged(self) -> None:
        """COMMIT what ``stage`` wrote (any thread: the fsync)."""
        self._writer.commit_staged()

    def settle(self, batch: Batch, error: BaseException | None = None) -> bool:
        """After ``write``: the batch is readable (True), or, when it failed with ``error``,
        its rows are queued again for the next batch, its first sights as durable ones
        (an answer may have come to rest on them while they were in flight)."""
        self._unsettled.difference_update(batch.pairs())
        if error is None:
            if batch:
                self.commits += 1
                self.registry.renew()  # the next reads see what was just written
                self._forget_pending(batch)
                if batch.moved:
                    self._settle_moved(batch)
            return True
        first_sights = [row for row in batch.later if self._is_pending(row)]
        self._first = batch.first + first_sights + self._first
        self._unsettled.update((row["imei"], row["imsi"]) for row in (*batch.first, *first_sights))
        self._notices = batch.notices + self._notices
        for row in batch.auto:
            self._auto.setdefault(row["imei"], row)
        for row in batch.later:
            if not self._is_pending(row):
                self._later.setdefault((row["imei"], row["imsi"]), row)
        self._failed(f"{len(batch.first) + len(first_sights)} first sights, {len(batch.notices)} notices, "
                     f"{len(batch.auto)} automatic entries and {len(batch.later) - len(first_sights)} last sights "
                     f"not written (kept, retried with the next batch): {error}")
        return False

    def _settle_moved(self, batch: Batch) -> None:
        """Another agent stored some of the batch's first sights first: remember their IMEIs
        (``moved``), and forget the notices of those IMEIs the batch left out, so that the
        decisions made again queue them with the stored first sight's deadline."""
        self.moved_first_sights += len(batch.moved)
        keys = {key for key, _ in batch.moved}
        for key in keys:
            self._moved.pop(key, None)
            self._moved[key] = None
        while len(self._moved) > MOVED_LIMIT:
            del self._moved[next(iter(self._moved))]
        for row in batch.notices:
            if row["imei"] in keys:
                self._noticed.discard((row["imei"], row["imsi"], row["event"]))
        log.debug("%d first sights were stored first by another agent: their answers are decided again",
                  len(batch.moved))

    def _is_pending(self, row: dict[str, Any]) -> bool:
        """A first sight not readable from the registry yet (a row of ``_pending``)."""
        imsi = row["imsi"]
        return any(pending[0] == imsi for pending in self._pending.get(row["imei"], ()))

    def _forget_pending(self, batch: Batch) -> None:
        """The first sights of a written batch are readable now: no longer added to reads."""
        for row in (*batch.first, *batch.later):
            key, imsi = row["imei"], row["imsi"]
            rows = self._pending.get(key)
            if rows is None or (key, imsi) in self._later or (key, imsi) in self._unsettled:
                continue
            kept = [pending for pending in rows if pending[0] != imsi]
            if kept:
                self._pending[key] = kept
            else:
                del self._pending[key]

    def commit(self) -> bool:
        """Write the queued first sights, notices and automatic entries durably, on this
        thread; True when all are on disk."""
        return self._run(self.take())

    def flush(self) -> bool:
        """Write everything queued, on this thread: the durable rows, the first sights no
        answer rested on and the last sights to move. True when all are on disk."""
        return self._run(self.take(later=True))

    def _run(self, batch: Batch) -> bool:
        try:
            self.write(batch)
        except (sqlite3.Error, SQLAlchemyError) as error:
            return self.settle(batch, error)
        return self.settle(batch)

    def _failed(self, message: str) -> None:
        """Count every failure; log the first and then at most one every LOG_EVERY seconds."""
        self.failures += 1
        now = self.clock.monotonic()
        if now >= self._quiet_until:
            log.error("%s (%d failures so far)", message, self.failures)
            self._quiet_until = now + LOG_EVERY

    @property
    def unwritten(self) -> int:
        """Rows queued and not on disk (after ``close``: what is lost)."""
        return len(self._first) + len(self._notices) + len(self._auto) + len(self._later)

    def close(self) -> bool:
        """Flush, and close the writer; True when nothing queued was left unwritten."""
        written = self.flush()
        self._writer.close()
        if self.moved_first_sights or self.first_sights_ahead:
            log.info("first sights another agent stored first: %d found at commit (answers decided again), "
                     "%d read with a time ahead of this agent's clock (answers decided as of it)",
                     self.moved_first_sights, self.first_sights_ahead)
        return written


@dataclass(slots=True)
class Batch:
    """Rows taken to be written in one transaction."""

    first: list[dict[str, Any]] = field(default_factory=list)  # durable first sights
    notices: list[dict[str, Any]] = field(default_factory=list)
    auto: list[dict[str, Any]] = field(default_factory=list)  # automatic entries
    later: list[dict[str, Any]] = field(default_factory=list)  # sights no answer rested on
    moved: Moved = field(default_factory=dict)  # once written: first sights another agent stored first

    def __bool__(self) -> bool:
        return bool(self.first or self.notices or self.auto or self.later)

    def __len__(self) -> int:
        return len(self.first) + len(self.notices) + 2 * len(self.auto) + len(self.later)

    def pairs(self) -> set[tuple[str, str]]:
        return {(row["imei"], row["imsi"]) for row in (*self.first, *self.later)}


def _pair(key: str, imsi: str) -> str:
    """One text per (key, imsi): the key has 14 digits, so no two pairs meet."""
    return key + imsi


def _row(key: str, imsi: str, query: Query) -> dict[str, Any]:
    at = stamp(query.at)
    return {"imei": key, "imsi": imsi, "msisdn": query.msisdn, "first_seen": at, "last_seen": at,
            "interface": str(query.interface)}
