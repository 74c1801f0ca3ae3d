"""The pieces of answering without the registry (agent/dbhealth.py): the profile's
``database_unreachable`` setting, the cache of the agent's last answers, the backlog of
sights kept while the registry is unreachable, and the health's answers and states (on a
SQLite registry whose reads are made to fail, in process: the end-to-end runs on
PostgreSQL are tests/e2e/test_database_unreachable.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

from agent.dbhealth import Backlog, DatabaseHealth, LastAnswers, State, Unanswerable, unreachable
from agent.durable import GroupCommit
from agent.service import EquipmentCheck
from registry.decision import Decision, ListName, Query, Rule, Status
from registry.imei import luhn_check_digit
from registry.observations import Observations, Recorder
from registry.profile import DatabaseUnreachable, Profile, ProfileError, Unreachable, parse_profile
from registry.store import Registry
from tests.tools import wait_until_async

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)
KEY, OTHER = "35999000013131", "35999000024242"
IMSI, SIM = "436011111111111", "436012222222222"


def profile_with(setting: Any) -> Profile:
    return parse_profile({"name": "t", "home_plmns": ["436-01"], "grace": [{"days": 30}],
                          "database_unreachable": setting})


def query(key: str = KEY, imsi: str | None = IMSI, at: datetime = AT) -> Query:
    return Query(key, "s13", at, None, imsi)


# -- the profile setting --------------------------------------------------------------------


def test_the_default_answers_from_the_cache_for_an_hour_else_white() -> None:
    default = parse_profile({"name": "t", "home_plmns": ["436-01"], "grace": []}).database_unreachable
    assert default == DatabaseUnreachable(Unreachable.CACHE, timedelta(hours=1), Unreachable.WHITE)


@pytest.mark.parametrize(("setting", "expected"), [
    ({"answer": "white"}, DatabaseUnreachable(Unreachable.WHITE)),
    ({"answer": "unable"}, DatabaseUnreachable(Unreachable.UNABLE)),
    ({"answer": "cache", "cache_age": "10m", "otherwise": "black"},
     DatabaseUnreachable(Unreachable.CACHE, timedelta(minutes=10), Unreachable.BLACK)),
    ({"cache_age": "90s"}, DatabaseUnreachable(Unreachable.CACHE, timedelta(seconds=90), Unreachable.WHITE)),
    ({"cache_age": "2d", "otherwise": "unable"},
     DatabaseUnreachable(Unreachable.CACHE, timedelta(days=2), Unreachable.UNABLE)),
])
def test_the_setting_is_read(setting: dict[str, str], expected: DatabaseUnreachable) -> None:
    assert profile_with(setting).database_unreachable == expected


@pytest.mark.parametrize(("setting", "says"), [
    ("white", "must be a mapping"),
    ({"answer": "grey"}, "'grey' is not one of white, black, unable, cache"),
    ({"answer": "cache", "otherwise": "cache"}, "otherwise is what to answer when the cache has nothing"),
    ({"answer": "white", "cache_age": "1h"}, "apply only to answer: cache, not white"),
    ({"cache_age": "10 minutes"}, "must be a duration such as 90s, 10m, 1h or 2d"),
    ({"cache_age": 600}, "must be a duration"),
    ({"cache_age": "8d"}, "must be from 1s to 7d"),
    ({"cache_age": "0s"}, "must be from 1s to 7d"),
    ({"answer": "white", "fallback": "black"}, "must be a mapping"),
])
def test_a_wrong_setting_is_refused_naming_the_key(setting: Any, says: str) -> None:
    with pytest.raises(ProfileError, match="database_unreachable") as refused:
        profile_with(setting)
    assert says in str(refused.value)


# -- the cache ------------------------------------------------------------------------------


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def cache(age: str = "10m", otherwise: str = "white", limit: int = 100) -> tuple[LastAnswers, Ticks]:
    ticks = Ticks()
    setting = profile_with({"answer": "cache", "cache_age": age, "otherwise": otherwise}).database_unreachable
    return LastAnswers(setting, limit, ticks), ticks


def test_a_black_answer_is_given_again_for_any_sim_until_it_is_too_old() -> None:
    answers, ticks = cache("10m")
    answers.remember(KEY, query(), Decision(Status.BLACK, Rule.STOLEN, "reported stolen", KEY))
    ticks.now += 599
    again = answers.recall(KEY, query(imsi=SIM))  # a thief's new SIM: still black
    assert again is not None and again.status is Status.BLACK and again.rule is Rule.DATABASE_UNREACHABLE
    assert "599 s ago (stolen: reported stolen)" in again.reason
    ticks.now += 1
    assert answers.recall(KEY, query()) is None
    assert len(answers) == 0


def test_an_answer_resting_on_the_sim_is_given_again_for_that_sim_only() -> None:
    answers, _ = cache()
    answers.remember(KEY, query(), Decision(Status.BLACK, Rule.PAIRED_MISMATCH, "paired to another SIM", KEY))
    assert answers.recall(KEY, query(imsi=SIM)) is None
    found = answers.recall(KEY, query())
    assert found is not None and found.status is Status.BLACK


def test_a_grey_answer_never_outlives_its_window() -> None:
    answers, _ = cache("1h")
    deadline = AT + timedelta(minutes=5)
    answers.remember(KEY, query(), Decision(Status.GREY, Rule.GRACE, "window", KEY, deadline))
    found = answers.recall(KEY, query(at=AT + timedelta(minutes=4)))
    assert found is not None and found.status is Status.GREY and found.deadline == deadline
    assert answers.recall(KEY, query(at=deadline)) is None


def test_an_answer_equal_to_the_fallback_is_not_kept_and_replaces_an_older_one() -> None:
    answers, _ = cache(otherwise="white")
    answers.remember(KEY, query(), Decision(Status.BLACK, Rule.BLACK_LIST, "listed", KEY))
    answers.remember(KEY, query(), Decision(Status.WHITE, Rule.WHITE_LIST, "listed", KEY))  # taken off the black list
    assert answers.recall(KEY, query()) is None and len(answers) == 0
    closed, _ = cache(otherwise="unable")
    closed.remember(KEY, query(), Decision(Status.WHITE, Rule.WHITE_LIST, "listed", KEY))
    assert closed.recall(KEY, query(imsi=SIM)) is not None


def test_the_cache_forgets_the_oldest_past_its_limit() -> None:
    answers, _ = cache(limit=2)
    for key in (KEY, OTHER, "35999000035353"):
        answers.remember(key, query(key), Decision(Status.BLACK, Rule.BLACK_LIST, "listed", key))
    assert answers.recall(KEY, query(KEY)) is None and answers.evicted == 1
    assert answers.recall(OTHER, query(OTHER)) is not None


# -- the backlog ----------------------------------------------------------------------------


def test_the_backlog_keeps_a_pair_first_and_last_sight_in_order_and_drops_past_its_limit() -> None:
    backlog = Backlog(limit=2)
    assert backlog.add(KEY, query(at=AT))
    assert backlog.add(OTHER, query(OTHER, at=AT + timedelta(seconds=1)))
    assert backlog.add(KEY, query(at=AT + timedelta(seconds=2)))  # a known pair: still kept
    assert not backlog.add("35999000035353", query("35999000035353"))
    assert (backlog.kept, backlog.dropped, len(backlog)) == (3, 1, 2)
    rows = backlog.take(1)
    assert [(row["imei"], row["first_seen"], row["last_seen"]) for row in rows] == [
        (KEY, "2026-03-01 12:00:00.000000", "2026-03-01 12:00:02.000000")]
    backlog.add(KEY, query(at=AT + timedelta(seconds=3)))  # seen again while the row is being written
    backlog.put_back(rows)  # the write failed: first again, the later sight kept
    again = backlog.take()
    assert [(row["imei"], row["first_seen"], row["last_seen"]) for row in again] == [
        (KEY, "2026-03-01 12:00:00.000000", "2026-03-01 12:00:03.000000"),
        (OTHER, "2026-03-01 12:00:01.000000", "2026-03-01 12:00:01.000000")]
    assert not backlog


# -- what counts as the database being unreachable -------------------------------------------


def sqlite_error(kind: type[sqlite3.Error], code: int) -> sqlite3.Error:
    """An error as sqlite3 raises it, with its SQLite result code."""
    error = kind("as sqlite3 words it")
    error.sqlite_errorcode = code
    return error


def test_only_errors_of_the_database_count_as_unreachable(tmp_path: Path) -> None:
    assert unreachable(sqlite_error(sqlite3.OperationalError, 5))  # SQLITE_BUSY: database is locked
    assert unreachable(sqlite_error(sqlite3.OperationalError, 15))  # SQLITE_PROTOCOL: a WAL lock held too long
    assert unreachable(sqlite_error(sqlite3.OperationalError, 10 | 3 << 8))  # SQLITE_IOERR_WRITE
    assert unreachable(sqlite_error(sqlite3.DatabaseError, 26))  # SQLITE_NOTADB
    assert unreachable(OperationalError("SELECT 1", {}, Exception("connection refused")))
    with sqlite3.connect(tmp_path / "x.db") as conn, pytest.raises(sqlite3.OperationalError) as missing:
        conn.execute("SELECT * FROM equipment")  # a table renamed away: the schema, not the database
    assert not unreachable(missing.value)
    assert not unreachable(OperationalError("SELECT", {}, missing.value))
    assert not unreachable(ProgrammingError("SELECT 1", {}, Exception("syntax error")))
    assert not unreachable(KeyError("a bug"))


# -- the health, in process ------------------------------------------------------------------


class FailingReads:
    """Makes a registry's lookups fail (as a locked or unreadable SQLite file would) until ``heal``."""

    def __init__(self, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
        self.failing = False
        for name in ("lookup", "lookup_observed", "probe"):
            monkeypatch.setattr(registry, name, self._failing(getattr(registry, name)))

    def _failing(self, read: Any) -> Any:
        def maybe(*args: Any) -> Any:
            if self.failing:
                raise sqlite_error(sqlite3.OperationalError, 10)  # SQLITE_IOERR: disk I/O error
            return read(*args)
        return maybe


def test_sqlite_reads_that_fail_are_answered_by_the_setting_and_the_sights_written_on_return(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    with Registry(url) as setup:
        setup.put_list(ListName.BLACK, [(KEY, "stolen")], "test")
    profile = profile_with({"answer": "cache", "otherwise": "unable"})
    now = datetime.now(UTC)

    async def run() -> None:
        registry = Registry(url, create=False)
        reads = FailingReads(registry, monkeypatch)
        recorder = Recorder(registry)
        health = DatabaseHealth(registry, profile.database_unreachable, probe_seconds=0.01)
        commits = GroupCommit(recorder, health=health)
        service = EquipmentCheck(registry, profile, recorder, health=health)
        assert service.record(query(at=now))[0].rule is Rule.BLACK_LIST
        reads.failing = True
        assert service.record(query(at=now))[0].rule is Rule.DATABASE_UNREACHABLE  # from the cache
        assert health.state is State.DOWN
        with pytest.raises(Unanswerable) as unable:  # nothing cached: otherwise unable
            service.record(query(OTHER, at=now))
        assert unable.value.decision.rule is Rule.DATABASE_UNREACHABLE
        bad_check_digit = KEY + str((int(luhn_check_digit(KEY)) + 1) % 10)  # judged without the registry
        assert service.record(Query(bad_check_digit, "s13", now, None, IMSI))[0].rule is Rule.INVALID_IMEI
        reads.failing = False
        await wait_until_async(lambda: health.state is State.UP, 5, "the registry's return")
        later, durable = service.record(query(OTHER, at=now + timedelta(minutes=1)))
        assert later.status is Status.GREY and later.deadline == now + timedelta(days=30)  # from the outage's sight
        assert durable  # its grey notice is not on disk yet: the answer waits, and is not kept
        assert health.cache is not None and health.cache.recall(OTHER, query(OTHER, at=now)) is None
        assert await commits.wait()
        assert service.record(query(OTHER, at=now + timedelta(minutes=2))) == (later, False)
        assert health.counters["went_down"] == health.counters["came_back"] == 1
        assert health.cache.recall(OTHER, query(OTHER, at=now)) is not None  # kept now
        assert await commits.close()
        registry.close()

    asyncio.run(run())
    with Registry(url, create=False) as registry:
        sights = [(seen.imsi, seen.first_seen, seen.last_seen) for seen in Observations(registry).sightings(OTHER)]
    assert len(sights) == 1 and sights[0][:2] == (IMSI, now)
