"""One clock, passed in: the store, the recorder, the policy and the answer log read the
clock they are handed (registry/clock.py), and no module under registry/ or agent/ reads
the machine's time on its own."""

from __future__ import annotations

import ast
import io
import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.answer_log import AnswerLog
from agent.config import AgentConfig
from agent.s13 import S13Answerer
from agent.server import local_node
from agent.service import EquipmentCheck, Interface
from diameter.capabilities import LocalNode
from registry.clock import SYSTEM_CLOCK, ManualClock, stored
from registry.decision import ListName, Query, Status
from registry.imports import ImportKind, import_file
from registry.observations import Observations, Recorder, parse_stamp
from registry.outbox import export_notices, mark_exported
from registry.profile import load_profile
from registry.store import Registry

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2031, 5, 4, 9, 15, tzinfo=UTC)  # a date no test machine's own clock shows
KEY, BLACK = "35999000000017", "35999000000025"
LOCAL = "436011234567890"


def test_a_manual_clock_moves_only_forward_and_both_its_times_together() -> None:
    clock = ManualClock(T0, monotonic=5.0)
    assert (clock.now(), clock.monotonic()) == (T0, 5.0)
    assert clock.advance(timedelta(days=2)) == T0 + timedelta(days=2) and clock.monotonic() == 5.0 + 2 * 86400
    assert clock.set(T0 + timedelta(days=3)) == clock.now() and clock.monotonic() == 5.0 + 3 * 86400
    with pytest.raises(ValueError, match="never goes back"):
        clock.advance(-0.001)
    with pytest.raises(ValueError, match="never goes back"):
        clock.set(T0)
    assert clock.now() == T0 + timedelta(days=3)
    assert ManualClock(datetime(2031, 5, 4, 9, 15)).now() == T0  # naive: UTC
    east = ManualClock(datetime(2031, 5, 4, 14, 15, tzinfo=timezone(timedelta(hours=5)))).now()
    assert east == T0 and east.tzinfo is UTC
    assert stored(T0) == datetime(2031, 5, 4, 9, 15) and stored(stored(T0)) == stored(T0)


def test_the_system_clock_is_aware_utc_and_its_monotonic_is_the_builtin() -> None:
    import time

    now = SYSTEM_CLOCK.now()
    assert now.tzinfo is UTC and abs((datetime.now(UTC) - now).total_seconds()) < 1
    assert SYSTEM_CLOCK.monotonic is time.monotonic


def test_the_store_the_recorder_the_policy_and_the_answer_log_read_the_one_clock(registry_url: str) -> None:
    clock = ManualClock(T0)
    with Registry(registry_url, clock=clock) as registry:
        # the store: what a write stamps
        registry.put_list(ListName.BLACK, [(BLACK, "reported")], "test")
        entry = registry.entry(BLACK)
        assert entry is not None and (entry.created_at, entry.updated_at) == (stored(T0), stored(T0))
        assert [change.at for change in registry.history(BLACK)] == [stored(T0)]

        # the service asks at the clock's now; the policy counts the grace from it
        recorder = Recorder(registry, clock=clock)
        service = EquipmentCheck(registry, load_profile("tj"), recorder, clock=clock)
        first = service.answer(Query(KEY, Interface.S13, service.now(), None, LOCAL))
        assert (first.status, first.rule, first.deadline) == (Status.GREY, "grace", T0 + timedelta(days=30))
        assert recorder.commit()

        # the recorder: the first sight is stamped with the clock's date
        sightings = list(Observations(registry).sightings(KEY))
        assert [(seen.imsi, seen.first_seen, seen.last_seen) for seen in sightings] == [(LOCAL, T0, T0)]

        # a day on: the service's time moves with the clock, the grace deadline stays
        clock.advance(timedelta(days=1))
        assert service.now() == T0 + timedelta(days=1)
        later = service.answer(Query(KEY, Interface.S13, service.now(), None, LOCAL))
        assert (later.status, later.deadline) == (Status.GREY, T0 + timedelta(days=30))
        assert S13Answerer(service, LocalNode("eir.localdomain", "localdomain")).clock() == T0 + timedelta(days=1)

        # the notice the grey answer made due, and its export mark
        with registry.engine.connect() as conn:
            created = [parse_stamp(at) for (at,) in conn.exec_driver_sql("SELECT created_at FROM notice")]
        assert created == [T0]
        done = export_notices(registry, io.StringIO())
        mark_exported(registry, done)
        with registry.engine.connect() as conn:
            marked = [parse_stamp(at) for (at,) in conn.exec_driver_sql("SELECT exported_at FROM notice")]
        assert marked == [T0 + timedelta(days=1)]
        recorder.close()

    # the answer log: "ts" is the clock's now, and moves with it
    buffer = io.StringIO()
    log = AnswerLog(buffer, clock=clock)
    log.write("s13", "mme", "s", KEY, LOCAL, "grey", "grace", "why", 2001, 10)
    clock.advance(0.25)
    log.write("s13", "mme", "s", KEY, LOCAL, "grey", "grace", "why", 2001, 10)
    stamps = [json.loads(line)["ts"] for line in buffer.getvalue().splitlines()]
    assert stamps == [(T0 + timedelta(days=1)).timestamp(), (T0 + timedelta(days=1, seconds=0.25)).timestamp()]

    # Origin-State-Id: the start time on the clock
    assert local_node(AgentConfig(), clock).origin_state_id == int(clock.now().timestamp())


def test_the_registrys_clock_is_the_default_of_what_reads_it(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    with Registry(f"sqlite:///{tmp_path / 'r.db'}", clock=clock) as registry:
        service = EquipmentCheck(registry, load_profile("tj"), Recorder(registry))
        assert service.clock is clock and service.recorder is not None and service.recorder.clock is clock
        assert Observations(registry).clock is clock and service.now() == T0
        service.recorder.close()


def test_an_import_dates_the_future_by_the_registrys_clock(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    rows = tmp_path / "seen.csv"
    rows.write_text(f"date,imei,imsi\n2031-05-03,{KEY},{LOCAL}\n2031-05-05,{BLACK},{LOCAL}\n")
    with Registry(f"sqlite:///{tmp_path / 'r.db'}", clock=clock) as registry:
        report = import_file(registry, ImportKind.OBSERVATIONS, rows)
    assert report.counts is not None and report.counts.new == 1
    assert [(bad.line, bad.reason) for bad in report.bad] == [(3, "date 2031-05-05 is in the future")]


def test_lookup_snapshots_age_on_the_registrys_clock(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    path = tmp_path / "r.db"
    with Registry(f"sqlite:///{path}", snapshot_seconds=1.0, clock=clock) as registry:
        assert registry.lookup(BLACK) is None  # the snapshot starts
        with closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute("INSERT INTO equipment (imei, list, reason, source, stolen, stolen_reason, created_at, "
                          "updated_at) VALUES (?, 'black', NULL, 'other', 0, NULL, ?, ?)",
                          (BLACK, "2031-05-04 09:15:00", "2031-05-04 09:15:00"))
        clock.advance(0.999)
        assert registry.lookup(BLACK) is None  # the same snapshot: not a second old on the clock
        clock.advance(0.001)
        found = registry.lookup(BLACK)
        assert found is not None and found.list is ListName.BLACK


# --- nothing below the command line reads the machine's time -------------------------------

# Calls that read the machine's time. time.perf_counter (how long an answer or an import
# took) and the event loop's time (asyncio timers) are durations, not the time of day.
FORBIDDEN = {"datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today", "datetime.date.today",
             "time.time", "time.time_ns", "time.monotonic", "time.monotonic_ns", "time.localtime", "time.gmtime"}
CLOCK_MODULES = {"registry/clock.py"}  # SystemClock: the one place that reads it


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> what it names, from the module's imports (time, datetime and theirs)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module in ("time", "datetime"):
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def time_reads(path: Path) -> list[str]:
    """``line: call`` of every call in ``path`` that reads the machine's time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name is None:
            continue
        head, _, rest = name.partition(".")
        qualified = aliases.get(head, head) + (f".{rest}" if rest else "")
        if qualified in FORBIDDEN:
            found.append(f"{node.lineno}: {name}()")
    return found


def test_the_time_read_finder_sees_every_spelling(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import time\nimport datetime as dt\nfrom time import monotonic as m\n"
                      "from datetime import date, datetime\n"
                      "a = time.time(); b = dt.datetime.now(); c = m(); d = date.today(); e = datetime.now()\n"
                      "f = time.perf_counter(); g = loop.time(); h = clock.now()\n")
    assert sorted(time_reads(module)) == ["5: date.today()", "5: datetime.now()", "5: dt.datetime.now()", "5: m()",
                                          "5: time.time()"]


def test_nothing_under_registry_or_agent_reads_the_machines_time_but_the_system_clock() -> None:
    reads = {}
    for package in ("registry", "agent"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative not in CLOCK_MODULES and (found := time_reads(path)):
                reads[relative] = found
    assert reads == {}
    assert [read.split(": ")[1] for read in time_reads(ROOT / "registry" / "clock.py")] == ["datetime.now()"]
