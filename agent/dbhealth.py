"""When the registry cannot be read: the agent answers at once by the profile's
``database_unreachable`` (registry/profile.py), finds out by itself when the database is
back, and loses none of the sights it made meanwhile.

Detection. Every decision's reads are bounded: on PostgreSQL no wait of the hot path for
the database lasts longer than ``READ_SECONDS`` (registry/bounded.py: a server that stopped
answering is found out nearly as fast as one that refuses connections); a SQLite lookup
waits at most ``READ_SECONDS`` for another connection's lock (but SQLite's WAL locking
protocol may hold a read about 10 s when another process keeps the file's shared-memory
locks: that first read then fails, and the outage is handled as any other). A read that
fails for a reason of the database (``unreachable``: a refused or dropped connection, a
wait past its bound, a lock, an I/O error) puts the agent in "database unreachable" mode:
from then on no answer touches the database; each is answered by the setting (rule
``database-unreachable``), and the answers still waiting for a commit get S13 5012 / MAP
systemFailure (rule unrecorded) at once. One line is logged when the registry goes down and
one when it comes back (at most one pair every ``LOG_EVERY`` seconds; the counters count
every one, and the agent logs them at exit: ``summary``).

Return. A thread of its own probes the registry every ``PROBE_SECONDS`` (one lookup, on a
connection of the engine, at most ``PROBE_DEADLINE`` seconds; the first one at once),
and opens the connections the hot path will use (on PostgreSQL ``WARM_CONNECTIONS`` are
open from the start, so no answer waits for a new one). When one succeeds the
agent is *returning*: the writer (agent/durable.py GroupCommit) first writes the sights
kept meanwhile, in the order they were made, then answers come from the registry again. A
sight made before the outage and still queued is retried by the writer as always.

Sights made while down. The answer rested on no sighting, so nothing had to be durable
before it left; each (IMEI, IMSI) pair seen is kept in memory (``Backlog``: its first and
last sight), at most ``BACKLOG_LIMIT`` pairs (about 75 MB at most); a new pair past that is
dropped and counted (a line says so, at most every ``LOG_EVERY`` seconds): its IMEI is
first seen again when it next attaches, its window starting then. A new IMEI is never
answered grey while the registry is down: a grey answer rests on a durable first sight; it
gets the setting's answer (for ``cache``: ``otherwise``) and its sight is kept, so its
window counts from that moment once the registry has it.

The cache (``answer: cache``): the agent's own last answer per IMEI (``LastAnswers``), kept
while the registry is readable (not an answer that waits for its first sight to be on
disk: it may yet be refused; the pair's next answer is kept), at most ``CACHE_LIMIT`` IMEIs
(about 35 MB; the oldest go first); answers equal to what ``otherwise`` would give are not
kept (with ``otherwise: white`` only the grey, black and unknown ones are).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from registry.clock import parse_stamp, stamp
from registry.deadline import within
from registry.decision import Decision, Query, Rule, Status
from registry.profile import DatabaseUnreachable, Unreachable
from registry.store import Registry

__all__ = ["BACKLOG_LIMIT", "CACHE_LIMIT", "Backlog", "DatabaseHealth", "LastAnswers", "Unanswerable", "unreachable"]

log = logging.getLogger("eir.dbhealth")

READ_SECONDS = 0.05  # a read may wait this long for the database before it counts as unreachable
WARM_CONNECTIONS = 3  # PostgreSQL connections kept open for the hot path, the writer and the probe
PROBE_SECONDS = 0.2  # between probes while it is
FIRST_PROBE_SECONDS = 0.02  # before the first probe
PROBE_DEADLINE = 1.0  # seconds each wait of a probe may take (its reads, a new connection)
BACKLOG_LIMIT = 200_000  # (IMEI, IMSI) pairs kept while the registry is unreachable
BACKLOG_BATCH = 5_000  # kept sights written per transaction when it returns
CACHE_LIMIT = 100_000  # IMEIs whose last answer the cache keeps
LOG_EVERY = 10.0  # seconds: at most one "unreachable" line (and its "back" line) this often

# Decisions that hold for the IMEI whatever the SIM: the cache answers them for any IMSI.
# Every other rule rests on the (IMEI, IMSI) pair: answered from the cache for the same IMSI only.
IMEI_RULES = frozenset({Rule.STOLEN, Rule.BLACK_LIST, Rule.WHITE_LIST, Rule.AUTO_ENTERED, Rule.UNKNOWN_TAC})
_KEPT = frozenset({Status.WHITE, Status.GREY, Status.BLACK, Status.UNKNOWN})
_FIXED = {Unreachable.WHITE: Status.WHITE, Unreachable.BLACK: Status.BLACK}
# SQLite's result codes that say the file cannot be read now: BUSY, LOCKED, IOERR, CORRUPT,
# CANTOPEN, PROTOCOL (a WAL lock held too long), NOTADB.
SQLITE_UNREACHABLE = frozenset({5, 6, 10, 11, 14, 15, 26})


def unreachable(error: BaseException) -> bool:
    """Whether a read failed for a reason of the database, not of the query or the schema
    (a renamed table is a failed decision, 5012 system-failure, as a bug is): a connection
    refused, dropped or past its bound, a lock, an I/O error, a damaged or missing file."""
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        if isinstance(error.orig, sqlite3.Error):
            return _sqlite_unreachable(error.orig)
        return isinstance(error, OperationalError | InterfaceError)
    if isinstance(error, sqlite3.Error):
        return _sqlite_unreachable(error)
    return isinstance(error, PoolTimeout)


def _sqlite_unreachable(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)  # the primary code is the low byte of an extended one
    return code is not None and code & 0xFF in SQLITE_UNREACHABLE


class Unanswerable(Exception):
    """The agent cannot decide now; the interfaces answer that they cannot comply (S13 5012
    DIAMETER_UNABLE_TO_COMPLY, MAP systemFailure) and log ``decision`` (its rule says why)."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reason)
        self.decision = decision


class State(enum.Enum):
    UP = "up"  # answers come from the registry
    DOWN = "down"  # answers by the setting; a thread probes the registry
    RETURNING = "returning"  # the registry answered a probe: the kept sights are written first


class LastAnswers:
    """The agent's last answer per IMEI key, for ``answer: cache``: what it answered, for
    which IMSI, and until when (monotonic seconds) it may be answered again."""

    def __init__(self, setting: DatabaseUnreachable, limit: int = CACHE_LIMIT,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.age = setting.cache_age.total_seconds()
        self.limit = limit
        self.monotonic = monotonic
        self._same = _FIXED.get(setting.otherwise)  # answers equal to the fallback's are not kept
        self._entries: dict[str, tuple[float, Decision, str | None]] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, key: str, query: Query, decision: Decision) -> None:
        entries = self._entries
        entries.pop(key, None)
        status = decision.status
        if status is self._same or status not in _KEPT:
            return
        entries[key] = (self.monotonic() + self.age, decision, query.imsi)
        if len(entries) > self.limit:
            del entries[next(iter(entries))]
            self.evicted += 1

    def recall(self, key: str, query: Query) -> Decision | None:
        """The answer to give again (rule database-unreachable, the reason saying what and
        how old), None when the cache has none for this query."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        until, decision, imsi = entry
        now = self.monotonic()
        if now >= until:
            del self._entries[key]
            return None
        if decision.rule not in IMEI_RULES and imsi != query.imsi:
            return None
        if decision.deadline is not None and query.at >= decision.deadline:
            return None  # a grey answer never outlives its window
        age = self.age - (until - now)
        reason = (f"the registry cannot be read: answered as this agent did {age:.0f} s ago "
                  f"({decision.rule}: {decision.reason})")
        return Decision(decision.status, Rule.DATABASE_UNREACHABLE, reason, key, decision.deadline)


class Backlog:
    """Sights made while the registry could not be read, in the order made: per (IMEI, IMSI)
    pair its first and last sight; at most ``limit`` pairs, new ones past it are dropped."""

    def __init__(self, limit: int = BACKLOG_LIMIT) -> None:
        self.limit = limit
        self._pairs: dict[tuple[str, str], list[Any]] = {}  # [msisdn, first, last, interface]
        self.kept = 0  # sights kept (a pair seen twice counts twice)
        self.dropped = 0  # sights of new pairs not kept: the backlog was full

    def __len__(self) -> int:
        return len(self._pairs)

    def add(self, key: str, query: Query) -> bool:
        """Keep the query's sight; False when it was dropped."""
        pair = (key, query.imsi or "")
        found = self._pairs.get(pair)
        if found is not None:
            found[2] = query.at
            if query.msisdn:
                found[0] = query.msisdn
        elif len(self._pairs) >= self.limit:
            self.dropped += 1
            return False
        else:
            self._pairs[pair] = [query.msisdn, query.at, query.at, str(query.interface)]
        self.kept += 1
        return True

    def take(self, limit: int = BACKLOG_BATCH) -> list[dict[str, Any]]:
        """The oldest ``limit`` pairs as sighting rows (as the recorder writes them), removed."""
        rows = []
        for pair in list(self._pairs)[:limit]:
            msisdn, first, last, interface = self._pairs.pop(pair)
            rows.append({"imei": pair[0], "imsi": pair[1], "msisdn": msisdn, "first_seen": stamp(first),
                         "last_seen": stamp(last), "interface": interface})
        return rows

    def put_back(self, rows: list[dict[str, Any]]) -> None:
        """Rows ``take`` gave that could not be written: first again, ahead of newer sights."""
        newer = self._pairs
        self._pairs = {}
        for row in rows:
            self._pairs[(row["imei"], row["imsi"])] = [row["msisdn"], parse_stamp(row["first_seen"]),
                                                       parse_stamp(row["last_seen"]), row["interface"]]
        for pair, value in newer.items():
            kept = self._pairs.get(pair)
            if kept is None:
                self._pairs[pair] = value
            else:
                kept[2] = value[2]
                kept[0] = value[0] or kept[0]


class DatabaseHealth:
    """Whether the agent reads the registry or answers without it, and everything that
    goes with the answers made without it (see the module's docstring). Made on the event
    loop; its state changes on the loop only (the probe thread hands its result over)."""

    def __init__(self, registry: Registry, setting: DatabaseUnreachable, *, read_seconds: float = READ_SECONDS,
                 probe_seconds: float = PROBE_SECONDS, backlog: Backlog | None = None,
                 cache: LastAnswers | None = None) -> None:
        self.registry = registry
        self.setting = setting
        self.loop = asyncio.get_running_loop()
        bounded = registry.bound_waits(read_seconds)
        if not bounded:
            log.warning("the registry's driver %s cannot bound its waits: a database that stops answering will hold "
                        "the answers (use postgresql+psycopg://)", registry.engine.dialect.driver)
        registry.probe(WARM_CONNECTIONS)  # before the first answer: none waits for a new connection
        # The bound on each database wait of a decision's reads: on a network database only
        # (SQLite's lookups are bounded by their lock wait); None when the driver cannot be bounded.
        self.read_seconds = read_seconds if bounded and registry.raw_connection is None else None
        self.probe_seconds = probe_seconds
        self.state = State.UP
        self.readable = True  # state is UP: read on every answer
        self.backlog = backlog if backlog is not None else Backlog()
        self.cache = cache if cache is not None else (
            LastAnswers(setting, monotonic=registry.clock.monotonic) if setting.answer is Unreachable.CACHE else None)
        self.counters: Counter[str] = Counter()
        self._returned: list[Callable[[], None]] = []  # what to call when the registry answers again
        self._downed: list[Callable[[], None]] = []  # what to call when it is found unreachable
        self._writer_waits = False  # a writer writes the kept sights before answers read again
        self._probe: threading.Thread | None = None
        self._stop = threading.Event()
        self._down_since = 0.0
        self._quiet_until = 0.0
        self._drops_quiet_until = 0.0
        self._logged_down = False

    # -- the hot path ---------------------------------------------------------------

    def remember(self, key: str | None, query: Query, decision: Decision) -> None:
        """A decision made from the registry: the cache keeps it (``answer: cache``)."""
        if self.cache is not None and key is not None:
            self.cache.remember(key, query, decision)

    def answer(self, key: str, query: Query) -> Decision:
        """The answer without the registry to a query for the IMEI ``key``, by the setting;
        its sight is kept for later. Unanswerable for ``unable`` (and for ``otherwise:
        unable`` without a cached answer)."""
        if not self.backlog.add(key, query):
            self._dropped()
        answer = self.setting.answer
        if answer is Unreachable.CACHE:
            assert self.cache is not None
            found = self.cache.recall(key, query)
            if found is not None:
                self.counters["answers.cache"] += 1
                return found
            answer = self.setting.otherwise
        self.counters[f"answers.{answer.value}"] += 1
        setting = "database_unreachable" + (" (nothing cached)" if self.setting.answer is Unreachable.CACHE else "")
        status = _FIXED.get(answer)
        if status is None:
            raise Unanswerable(Decision(Status.INVALID, Rule.DATABASE_UNREACHABLE,
                                        f"the registry cannot be read: {setting}: unable", key))
        return Decision(status, Rule.DATABASE_UNREACHABLE,
                        f"the registry cannot be read: {setting}: {answer.value}", key)

    def _dropped(self) -> None:
        now = self.registry.clock.monotonic()
        if now >= self._drops_quiet_until:
            log.error("the registry is still unreachable and %d (IMEI, IMSI) pairs are kept: the sights of new "
                      "pairs are dropped (%d so far)", self.backlog.limit, self.backlog.dropped)
            self._drops_quiet_until = now + LOG_EVERY

    def failed(self, error: BaseException) -> None:
        """A read failed for a reason of the database (``unreachable``): answer without it
        from now on, and probe it until it answers again."""
        if self.state is not State.DOWN:
            self._down(f"{type(error).__name__}: {_first_line(error)}")

    # -- the writer's side -------------------------------------------------------------

    def on_return(self, call: Callable[[], None]) -> None:
        """Call ``call`` (on the loop) each time the registry answers a probe again; the
        writer that registers writes the kept sights (``backlog``) and then says
        ``written``: only then do answers read the registry again."""
        self._returned.append(call)
        self._writer_waits = True

    def on_down(self, call: Callable[[], None]) -> None:
        """Call ``call`` (on the loop) each time the registry is found unreachable."""
        self._downed.append(call)

    @property
    def writable(self) -> bool:
        """Whether the writer may write (not while the registry is unreachable)."""
        return self.state is not State.DOWN

    @property
    def returning(self) -> bool:
        return self.state is State.RETURNING

    def written(self) -> None:
        """The writer wrote every kept sight: answers read the registry again."""
        if self.state is State.RETURNING and not self.backlog:
            self._up()

    def write_failed(self, error: BaseException) -> None:
        """The kept sights could not be written: the registry is not back after all."""
        if self.state is State.RETURNING:
            self._down(f"writing the kept sights failed: {type(error).__name__}: {_first_line(error)}")

    # -- state -------------------------------------------------------------------------

    def _down(self, why: str) -> None:
        now = self.registry.clock.monotonic()
        if self.state is State.UP:
            self.counters["went_down"] += 1
            self._down_since = now
            self._logged_down = now >= self._quiet_until
            if self._logged_down:
                log.error("registry unreachable (%s): answering by the profile's database_unreachable (%s) until "
                          "it answers again; sights are kept in memory (at most %d pairs)", why,
                          _describe(self.setting), self.backlog.limit)
                self._quiet_until = now + LOG_EVERY
        self.state, self.readable = State.DOWN, False
        self._start_probe()
        for call in self._downed:
            call()

    def _up(self) -> None:
        self.state, self.readable = State.UP, True
        self.counters["came_back"] += 1
        if self._logged_down:
            log.warning("registry readable again after %.1f s: answering from it; %s",
                        self.registry.clock.monotonic() - self._down_since, self.summary())

    def _returns(self) -> None:
        """On the loop: a probe succeeded."""
        self._probe = None
        if self.state is not State.DOWN or self._stop.is_set():
            return
        self.state = State.RETURNING
        if not self._writer_waits:
            self._up()
            return
        for call in self._returned:
            call()

    def _start_probe(self) -> None:
        if self._probe is None and not self._stop.is_set():
            self._probe = threading.Thread(target=self._probing, name="eir-dbprobe", daemon=True)
            self._probe.start()

    def _probing(self) -> None:
        """The probe thread: one read soon (a read that was merely slow is over in a blink),
        then one every ``probe_seconds`` until one succeeds; the connections the hot path
        will use are opened here, off the loop."""
        pause = min(self.probe_seconds, FIRST_PROBE_SECONDS)
        while not self._stop.wait(pause):
            pause = self.probe_seconds
            try:
                with within(PROBE_DEADLINE):
                    self.registry.probe(WARM_CONNECTIONS)
            except Exception:  # whatever the database says, it is not back
                continue
            with contextlib.suppress(RuntimeError):  # the loop is closed: the agent stopped
                self.loop.call_soon_threadsafe(self._returns)
            return

    def summary(self) -> str:
        """The counters, for a log line."""
        counts = self.counters
        answers = {name.split(".", 1)[1]: count for name, count in counts.items() if name.startswith("answers.")}
        cached = f"; cache {len(self.cache)} IMEIs ({self.cache.evicted} evicted)" if self.cache is not None else ""
        return (f"went down {counts['went_down']} time(s), back {counts['came_back']}; answers without it "
                f"{answers}; sights kept {self.backlog.kept}, dropped {self.backlog.dropped}, "
                f"waiting {len(self.backlog)} pairs{cached}")

    def close(self) -> None:
        """Stop probing (the agent stops)."""
        self._stop.set()


def _describe(setting: DatabaseUnreachable) -> str:
    if setting.answer is Unreachable.CACHE:
        return (f"answers of the last {setting.cache_age.total_seconds():.0f} s from the cache, "
                f"else {setting.otherwise.value}")
    return setting.answer.value


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else ""

