"""The observation recorder: first sights and notices durable at commit, later sights moved
at most once a day, reads that see what is queued, and writes that survive a refused commit."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text

from agent.service import EquipmentCheck, Interface, MillisecondClock
from registry.decision import ListName, Query, Status
from registry.observations import Observations, Recorder, parse_stamp, stamp
from registry.profile import Profile, load_profile
from registry.store import Registry

KEY = "35999000000017"
LOCAL, OTHER = "436011234567890", "436059876543210"
T0 = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


@contextmanager
def write_lock(registry: Registry, mode: str = "IMMEDIATE") -> Iterator[None]:
    """Another writer holds the lock (an import, say): SQLite's BEGIN ``mode``, or on
    PostgreSQL the sighting table locked against writes, until the block ends."""
    if registry.raw_connection is None:
        with registry.engine.connect() as other, other.begin() as transaction:
            other.exec_driver_sql("LOCK TABLE sighting IN EXCLUSIVE MODE")
            yield
            transaction.rollback()
        return
    with closing(sqlite3.connect(registry.url.database or "", isolation_level=None)) as other:
        other.execute(f"BEGIN {mode}")
        yield
        other.execute("ROLLBACK")


def query(at: datetime, imsi: str | None = LOCAL, key: str = KEY) -> Query:
    return Query(key, Interface.S13, at, None, imsi)


def recording(registry: Registry, busy_seconds: float = 0.2) -> tuple[Recorder, EquipmentCheck]:
    """The agent's side: a recorder and the service that records through it (tj profile)."""
    recorder = Recorder(registry, busy_seconds)
    return recorder, EquipmentCheck(registry, load_profile("tj"), recorder)


def stored(registry: Registry) -> list[tuple[str, str, str, str]]:
    """The sightings on disk, times as the recorder writes them (PostgreSQL gives datetimes)."""
    with registry.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT imei, imsi, first_seen, last_seen FROM sighting ORDER BY imsi")
        return [(imei, imsi, stamp(parse_stamp(first)), stamp(parse_stamp(last))) for imei, imsi, first, last in rows]


def test_a_first_sight_waits_for_commit_and_is_readable_before_it(registry: Registry) -> None:
    recorder, service = recording(registry)
    first = service.answer(query(T0))
    assert (first.status, first.rule) == (Status.GREY, "grace") and recorder.waiting
    assert stored(registry) == []
    again = service.answer(query(T0 + timedelta(hours=1)))  # before the commit: the queued sight counts
    assert again.deadline == first.deadline == T0 + timedelta(days=30)
    assert recorder.commit() and not recorder.waiting
    assert stored(registry) == [(KEY, LOCAL, stamp(T0), stamp(T0))]
    recorder.close()


def test_the_grace_clock_belongs_to_the_imei_not_the_sim(registry: Registry) -> None:
    recorder, service = recording(registry)
    service.answer(query(T0))
    recorder.commit()
    swapped = service.answer(query(T0 + timedelta(days=20), OTHER))
    assert swapped.status is Status.GREY and swapped.deadline == T0 + timedelta(days=30)
    assert recorder.waiting  # a SIM swap is a first sight of its own pair
    recorder.commit()
    assert [row[1] for row in stored(registry)] == [LOCAL, OTHER]
    assert service.answer(query(T0 + timedelta(days=31), OTHER)).rule == "grace-expired"
    recorder.close()


def test_a_known_pair_moves_its_last_sight_once_a_day_at_flush(registry: Registry) -> None:
    recorder, service = recording(registry)
    service.answer(query(T0))
    recorder.commit()
    service.answer(query(T0 + timedelta(hours=2)))  # same day: nothing to write
    assert not recorder.waiting
    recorder.flush()
    assert stored(registry)[0][3] == stamp(T0)
    service.answer(query(T0 + timedelta(days=1, hours=1)))
    assert not recorder.waiting  # not durable: kept for the flush
    recorder.flush()
    assert stored(registry)[0][2:] == (stamp(T0), stamp(T0 + timedelta(days=1, hours=1)))
    recorder.close()


def test_notices_are_queued_once_per_imei_imsi_and_event(registry: Registry) -> None:
    recorder, service = recording(registry)
    for days in (0, 1, 2, 24, 25, 29, 31, 32):
        service.answer(query(T0 + timedelta(days=days)))
        recorder.commit()
    with registry.engine.connect() as conn:
        events = [(event, imsi, stamp(parse_stamp(deadline))) for event, imsi, deadline
                  in conn.exec_driver_sql("SELECT event, imsi, deadline FROM notice ORDER BY id")]
    deadline = stamp(T0 + timedelta(days=30))
    assert events == [("grey", LOCAL, deadline), ("reminder-7d", LOCAL, deadline), ("reminder-1d", LOCAL, deadline),
                      ("black", LOCAL, deadline)]
    fresh = Recorder(registry)  # another process: the outbox, not memory, says what was queued
    EquipmentCheck(registry, load_profile("tj"), fresh).answer(query(T0 + timedelta(days=33)))
    assert not fresh.waiting
    fresh.close()
    recorder.close()


def test_a_refused_commit_keeps_the_rows_and_the_next_one_writes_them(registry: Registry) -> None:
    recorder, service = recording(registry, busy_seconds=0.05)
    service.answer(query(T0))
    with write_lock(registry):  # another writer holds the lock: an import, say
        assert recorder.commit() is False and recorder.failures == 1 and recorder.waiting
    assert recorder.commit() is True and not recorder.waiting
    assert stored(registry) == [(KEY, LOCAL, stamp(T0), stamp(T0))]
    recorder.close()


def test_checking_records_nothing(registry: Registry, tj: Profile) -> None:
    service = EquipmentCheck(registry, tj)
    assert service.check(query(T0)).status is Status.GREY
    assert list(Observations(registry).sightings(KEY)) == []
    assert stored(registry) == []


def test_stored_times_read_back_as_aware_utc() -> None:
    assert parse_stamp(stamp(T0)) == T0
    assert parse_stamp(datetime(2026, 3, 1, 8, 30)) == T0
    bishkek = T0.astimezone(timezone(timedelta(hours=6)))
    assert stamp(bishkek) == "2026-03-01 08:30:00.000000"


def test_a_first_sight_no_answer_rests_on_is_written_at_flush_not_before(registry: Registry) -> None:
    registry.put_list(ListName.WHITE, [(KEY, "customs")], "test")
    recorder, service = recording(registry)
    assert service.answer(query(T0)).rule == "white-list"
    assert not recorder.waiting  # the white answer does not rest on the sighting
    assert [s.imsi for s in recorder.sightings(KEY)] == [LOCAL]  # but reads see it at once
    recorder.commit()
    assert stored(registry) == []
    recorder.flush()
    assert stored(registry) == [(KEY, LOCAL, stamp(T0), stamp(T0))]
    recorder.close()


def test_a_first_sight_kept_for_the_flush_is_committed_once_an_answer_rests_on_it(registry: Registry) -> None:
    registry.put_list(ListName.WHITE, [(KEY, "customs")], "test")
    recorder, service = recording(registry)
    service.answer(query(T0))  # white: kept for the flush
    with registry.bulk() as bulk:  # the entry goes away (an operator's mistake corrected, say)
        bulk.conn.exec_driver_sql(f"DELETE FROM equipment WHERE imei = '{KEY}'")
    registry.renew()
    grey = service.answer(query(T0 + timedelta(seconds=1)))
    assert grey.rule == "grace" and grey.deadline == T0 + timedelta(days=30)  # the clock of the first sight
    assert recorder.waiting
    recorder.commit()
    assert stored(registry) == [(KEY, LOCAL, stamp(T0), stamp(T0))]
    recorder.close()


def test_a_pair_recorded_today_is_known_until_the_day_changes(registry: Registry) -> None:
    recorder, service = recording(registry)
    assert not recorder.known_today(KEY, LOCAL, T0)
    service.answer(query(T0))
    assert recorder.known_today(KEY, LOCAL, T0 + timedelta(hours=3))
    assert not recorder.known_today(KEY, OTHER, T0 + timedelta(hours=3))  # another SIM: another pair
    assert not recorder.known_today(KEY, LOCAL, T0 + timedelta(days=1))  # a new day: read and move again
    assert not Observations(registry).known_today(KEY, LOCAL, T0)  # plain reads remember nothing
    recorder.close()


def test_the_millisecond_clock_is_aware_utc_and_never_goes_back() -> None:
    clock = MillisecondClock()
    times = [clock() for _ in range(1000)]
    assert all(t.tzinfo is UTC for t in times) and times == sorted(times)
    assert abs((datetime.now(UTC) - times[-1]).total_seconds()) < 0.01


def test_the_registry_tells_when_another_connection_committed(sqlite_registry: Registry) -> None:
    registry = sqlite_registry  # SQLite's data_version; elsewhere changed() is True every 10 s
    registry.changed()
    assert not registry.changed()
    with sqlite3.connect(registry.url.database or "") as other:
        other.execute("INSERT INTO tac (tac, device_type) VALUES ('35999000', 'WLAN Router')")
    assert registry.changed() and not registry.changed()


# --- batches written off the deciding thread (agent/durable.py) -------------------------------


def test_an_answer_resting_on_a_first_sight_in_flight_waits_and_a_failed_write_queues_it_again(
        registry: Registry) -> None:
    recorder, service = recording(registry)
    first, durable = service.record(query(T0))
    assert first.rule == "grace" and durable
    batch = recorder.take()
    assert not recorder.waiting  # taken: in flight, not queued
    again, durable = service.record(query(T0 + timedelta(minutes=1)))
    assert again.rule == "grace" and durable  # rests on the sight in flight: it waits for the next batch
    assert recorder.settle(batch, sqlite3.OperationalError("database is locked")) is False
    assert recorder.waiting and recorder.failures == 1  # queued again, for the next batch
    assert stored(registry) == []
    assert recorder.commit() and stored(registry) == [(KEY, LOCAL, stamp(T0), stamp(T0))]
    _, durable = service.record(query(T0 + timedelta(minutes=2)))
    assert not durable  # on disk now
    recorder.close()


async def _commit_while_locked(url: str) -> tuple[bool, bool, int]:
    import asyncio

    from agent.durable import GroupCommit

    with Registry(url) as store:
        recorder, service = recording(store, busy_seconds=0.2)
        commits = GroupCommit(recorder, timeout=0.6)
        with write_lock(store, "EXCLUSIVE"):
            assert service.record(query(T0))[1]
            waited = commits.wait()
            ticks = 0
            while not waited.done():  # the event loop runs on while the commit waits for the lock
                await asyncio.sleep(0.01)  # the test: the loop ticks while the commit waits
                ticks += 1
            recorded = waited.result()
        second = commits.wait()  # the rows stayed queued: written now the lock is gone
        recorded_later = await second
        assert await commits.close()
        return recorded, recorded_later, ticks


def test_a_commit_against_a_locked_registry_runs_off_the_loop_and_answers_false_after_the_timeout(
        registry_url: str) -> None:
    import asyncio

    Registry(registry_url).close()
    recorded, recorded_later, ticks = asyncio.run(_commit_while_locked(registry_url))
    assert recorded is False and recorded_later is True
    assert ticks >= 10  # the loop turned at least ten times while the write waited in its thread
    with Registry(registry_url) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT imei, imsi FROM sighting").fetchall() == [(KEY, LOCAL)]


def test_a_pair_known_today_whose_decision_reads_no_sightings_still_waits_for_its_unwritten_first_sight(
        registry: Registry) -> None:
    """Seen in the soak run: an unlimited roamer's second query (known today, sightings not
    read) left at once while the first sight its rule rests on was still queued; a SIGKILL
    then lost it."""
    recorder, service = recording(registry)
    roamer = "250011234567890"
    first, durable = service.record(query(T0, imsi=roamer))
    assert first.rule == "roamer" and durable
    assert recorder.settle(recorder.take(), sqlite3.OperationalError("database is locked")) is False
    again, durable = service.record(query(T0 + timedelta(seconds=1), imsi=roamer))
    assert again.rule == "roamer" and durable  # queued again, not on disk: this answer waits too
    assert recorder.commit()
    assert not service.record(query(T0 + timedelta(seconds=2), imsi=roamer))[1]
    recorder.close()


# --- several agents on one registry: a pair's first sight is the first one committed ---------


def notices_of(registry: Registry) -> list[tuple[str, str, str]]:
    with registry.engine.connect() as conn:
        return [(event, imsi, stamp(parse_stamp(deadline))) for event, imsi, deadline
                in conn.exec_driver_sql("SELECT event, imsi, deadline FROM notice ORDER BY id")]


def test_two_agents_seeing_a_new_pair_at_once_answer_with_the_first_sight_committed_first(
        registry: Registry) -> None:
    """Agent B's clock reads a second behind A's; both decide before either commits; A
    commits first. B's commit finds A's first sight (RETURNING), leaves its own grey notice
    out, and decides again as of A's first sight: one fact, one notice."""
    a, service_a = recording(registry)
    b, service_b = recording(registry)
    ahead = T0 + timedelta(seconds=1)
    decided_a, durable_a = service_a.record(query(ahead))
    decided_b, durable_b = service_b.record(query(T0))
    assert durable_a and durable_b and decided_b.deadline == T0 + timedelta(days=30)
    assert a.commit() and b.commit()
    assert stored(registry) == [(KEY, LOCAL, stamp(ahead), stamp(ahead))]  # B's earlier clock moved nothing
    assert (a.moved(KEY), b.moved(KEY), b.moved_first_sights) == (False, True, 1)
    settled = service_b.settled(query(T0), decided_b)
    assert settled.deadline == decided_a.deadline == ahead + timedelta(days=30)
    assert settled.reason == decided_a.reason and settled.status is decided_a.status
    assert service_a.settled(query(ahead), decided_a) is decided_a  # the winner's answer stands
    b.flush()
    assert notices_of(registry) == [("grey", LOCAL, stamp(ahead + timedelta(days=30)))]
    a.close()
    b.close()


def test_a_notice_left_out_for_a_moved_first_sight_is_queued_again_with_the_stored_deadline(
        registry: Registry) -> None:
    """The agent that committed first wrote no notice (another writer's row, say): the notice
    the losing agent's assumption made due is not written with its own deadline, but queued
    again by the decision made after the commit, with the stored first sight's."""
    recorder, service = recording(registry)
    decided, _ = service.record(query(T0))
    other = T0 + timedelta(seconds=2)
    with registry.engine.begin() as conn:  # another agent's first sight commits first, alone
        conn.exec_driver_sql("INSERT INTO sighting (imei, imsi, first_seen, last_seen, interface) "
                             f"VALUES ('{KEY}', '{LOCAL}', '{stamp(other)}', '{stamp(other)}', 's13')")
    assert recorder.commit()
    assert notices_of(registry) == []  # left out: its deadline rested on T0
    settled = service.settled(query(T0), decided)
    assert settled.deadline == other + timedelta(days=30) != decided.deadline
    assert recorder.waiting  # the notice of the decision made again, for the next batch or flush
    recorder.flush()
    assert notices_of(registry) == [("grey", LOCAL, stamp(other + timedelta(days=30)))]
    recorder.close()


def test_a_first_sight_stored_ahead_of_the_agents_clock_is_the_one_it_answers_with(registry: Registry) -> None:
    """Agent A committed the pair's first sight at a time B's clock has not reached yet: B
    decides as of that first sight, not with one of its own, and records nothing new."""
    a, service_a = recording(registry)
    b, service_b = recording(registry)
    ahead = T0 + timedelta(seconds=1)
    decided_a = service_a.answer(query(ahead))
    a.commit()
    decided_b, durable = service_b.record(query(T0))
    assert decided_b == decided_a and not durable and b.first_sights_ahead == 1
    b.flush()
    assert stored(registry) == [(KEY, LOCAL, stamp(ahead), stamp(ahead))]
    a.close()
    b.close()


def test_an_import_still_moves_a_first_sight_earlier_the_agent_never_does(registry: Registry) -> None:
    from registry import statements

    dialect = registry.url.get_dialect().name
    row = {"imei": KEY, "imsi": LOCAL, "msisdn": None, "interface": "s13"}
    day = timedelta(days=1)
    live, earlier = text(statements.record_sighting(dialect)), stamp(T0 - day)
    with registry.engine.begin() as conn:
        conn.execute(live, {**row, "first_seen": stamp(T0), "last_seen": stamp(T0)})
        conn.execute(live, {**row, "first_seen": earlier, "last_seen": earlier})  # the first committed stays
    assert stored(registry) == [(KEY, LOCAL, stamp(T0), stamp(T0))]
    with registry.engine.begin() as conn:
        conn.execute(text(statements.upsert_sighting(dialect)),  # an imported observation: the earliest wins
                     {**row, "first_seen": earlier, "last_seen": earlier, "interface": "import"})
    assert stored(registry) == [(KEY, LOCAL, earlier, stamp(T0))]


async def _map_answer_after_another_agent_committed(registry: Registry, at: datetime, ahead: datetime) -> str:
    """Agent B's MAP answer for a new pair, decided at ``at`` and held for its commit, while
    agent A answers the pair at ``ahead`` and commits first; B's answer-log line."""
    import asyncio
    import io

    from agent.answer_log import AnswerLog
    from agent.durable import GroupCommit
    from agent.map import MapAnswerer
    from sigtran import tcap
    from simulator.msc import check_imei_begin

    _, service_a = recording(registry)
    b, service_b = recording(registry)
    lines = io.StringIO()
    commits = GroupCommit(b)
    answerer = MapAnswerer(service_b, AnswerLog(lines), clock=lambda: at, commits=commits)
    held = answerer(check_imei_begin(b"\x01\x02\x03\x04", KEY + "0", 2, LOCAL), "992900000001")
    assert isinstance(held, asyncio.Future)  # a new pair: the answer waits for its first sight on disk
    assert service_a.answer(query(ahead)).rule == "grace" and service_a.recorder is not None
    assert service_a.recorder.commit()  # A's first sight is on disk first
    answer = await held
    assert answer is not None and tcap.decode(answer).components
    assert await commits.close() and service_a.recorder.close()
    return lines.getvalue()


def test_a_held_map_answer_is_decided_again_when_another_agents_first_sight_came_first(registry: Registry) -> None:
    import asyncio
    import json

    at, ahead = datetime(2026, 3, 1, 18, 59, 59, tzinfo=UTC), datetime(2026, 3, 1, 19, 0, 1, tzinfo=UTC)
    (line,) = asyncio.run(_map_answer_after_another_agent_committed(registry, at, ahead)).splitlines()
    answered = json.loads(line)
    # tj is UTC+5: B's own first sight would have been 2026-03-01, A's stored one is 2026-03-02.
    assert (answered["status"], answered["rule"]) == ("grey", "grace")
    assert "window from 2026-03-02 ends 2026-04-01" in answered["reason"], answered
    assert stored(registry) == [(KEY, LOCAL, stamp(ahead), stamp(ahead))]
    assert notices_of(registry) == [("grey", LOCAL, stamp(ahead + timedelta(days=30)))]


@contextmanager
def agent_a_batch(registry: Registry) -> Iterator[Callable[[str, dict[str, Any]], None]]:
    """Another agent's batch: a function running a statement of it; committed when the block
    ends. SQLite: its writer's transaction (BEGIN IMMEDIATE: it holds the file's write lock),
    the entry's two statements for its one (registry/writer.py)."""
    from registry import statements

    if registry.raw_connection is None:
        with registry.engine.connect() as conn, conn.begin():
            yield lambda sql, row: conn.execute(text(sql), row) and None
        return
    with closing(sqlite3.connect(registry.url.database or "", isolation_level=None)) as raw:
        raw.execute("BEGIN IMMEDIATE")

        def run(sql: str, row: dict[str, Any]) -> None:
            for each in ((statements.AUTO_HISTORY, statements.AUTO_ENTRY) if sql == statements.AUTO_ENTRY_ONCE
                         else (sql,)):
                raw.execute(each, row)

        yield run
        raw.execute("COMMIT")


def test_two_agents_entering_one_imei_at_once_write_one_entry_and_one_history_line(registry: Registry) -> None:
    """Agent A's batch entering a router automatically is not committed yet when agent B's
    enters it too: B waits for A's commit and then enters nothing, records no history."""
    import threading

    from registry import statements

    with registry.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO tac (tac, device_type) VALUES ('35999000', 'WLAN Router')")
    b, service = recording(registry, busy_seconds=5.0)
    decided, durable = service.record(query(T0))
    assert decided.rule == "auto-entered" and durable
    entry = {"imei": KEY, "reason": "a router (agent A)", "source": "auto-entry", "stolen": False, "at": stamp(T0)}
    done: list[bool] = []
    writer = threading.Thread(target=lambda: done.append(b.commit()))
    with agent_a_batch(registry) as run:  # agent A's batch, in its transaction
        run(statements.AUTO_ENTRY_ONCE, entry)
        writer.start()
        writer.join(0.3)
        assert writer.is_alive()  # B waits for A's uncommitted entry
    writer.join(5.0)
    assert done == [True]
    with registry.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT reason FROM equipment").fetchall() == [("a router (agent A)",)]
        assert conn.exec_driver_sql("SELECT reason FROM history").fetchall() == [("a router (agent A)",)]
    b.close()
