"""Observations imports, clearing the stolen flag, the operators' list files and the notice
outbox, in process, on SQLite files."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.service import EquipmentCheck, Interface
from registry.decision import EquipmentFacts, ListName, Query
from registry.imei import luhn_check_digit
from registry.imports import BadRow, CsvFormatError, ImportKind, ImportReport, export_csv, import_file
from registry.lists import OperatorError, exception_rows, notification_rows, operator_prefix
from registry.models import HistoryField
from registry.observations import Recorder, stamp
from registry.outbox import NoticeExport, export_notices, mark_exported
from registry.profile import load_profile
from registry.store import Counts, Registry
from tests.postgres import stored_rows

TJ = load_profile("tj")
A, B, C, D = (f"3520990017614{n}" for n in range(4))
MEGAFON, TCELL, ROAMER = "436011234567890", "436059876543210", "250011111111111"
MSISDN = "992900123456"
DAY = timedelta(days=1)


def imei15(key: str) -> str:
    return key + luhn_check_digit(key)


def observe(registry: Registry, folder: Path, text: str, strict: bool = False) -> ImportReport:
    path = folder / "observations.csv"
    path.write_text(text, encoding="utf-8")
    return import_file(registry, ImportKind.OBSERVATIONS, path, strict=strict)


def sightings(registry: Registry) -> list[tuple[str, ...]]:
    return stored_rows(registry.engine, "SELECT imei, imsi, msisdn, first_seen, last_seen, interface FROM sighting "
                                        "ORDER BY imei, imsi")


# -- import observations ---------------------------------------------------------------

def test_rows_of_a_pair_merge_earliest_first_latest_last_in_the_agents_format(registry: Registry,
                                                                              tmp_path: Path) -> None:
    report = observe(registry, tmp_path, f"IMSI,Date,MSISDN,IMEI\n"
                                         f"{MEGAFON},2025-03-02,,{imei15(A)}\n"
                                         f"{MEGAFON},2025-03-01T10:15:00,+{MSISDN},{A}\n"
                                         f"{MEGAFON},2025-03-05T12:00:00+05:00,,{A}07\n"   # an IMEISV: same key
                                         f",2025-01-01,,{B}\n")                            # SIM not known
    assert (report.bad, report.counts) == ([], Counts(new=2, changed=2))
    assert report.summary().startswith("observations: 4 rows read, 4 imported (2 new pairs, 2 merged into known "
                                       "pairs), 0 bad")
    first, last = datetime(2025, 3, 1, 10, 15, tzinfo=UTC), datetime(2025, 3, 5, 7, tzinfo=UTC)
    assert sightings(registry) == [
        (A, MEGAFON, MSISDN, stamp(first), stamp(last), "import"),
        (B, "", None, stamp(datetime(2025, 1, 1, tzinfo=UTC)), stamp(datetime(2025, 1, 1, tzinfo=UTC)), "import"),
    ]


def test_an_import_merges_with_what_the_agent_recorded(registry: Registry, tmp_path: Path) -> None:
    seen = datetime(2025, 6, 1, 8, 30, tzinfo=UTC)
    recorder = Recorder(registry)
    EquipmentCheck(registry, TJ, recorder).answer(Query(A, Interface.S13, seen, imsi=MEGAFON, msisdn=MSISDN))
    recorder.close()
    report = observe(registry, tmp_path, f"date,imei,imsi\n2025-05-01,{A},{MEGAFON}\n2025-07-01,{A},{TCELL}\n")
    assert report.counts == Counts(new=1, changed=1)
    assert sightings(registry) == [
        (A, MEGAFON, MSISDN, stamp(datetime(2025, 5, 1, tzinfo=UTC)), stamp(seen), "import"),  # MSISDN kept
        (A, TCELL, None, stamp(datetime(2025, 7, 1, tzinfo=UTC)), stamp(datetime(2025, 7, 1, tzinfo=UTC)), "import"),
    ]
    assert EquipmentCheck(registry, TJ).check(Query(A, Interface.CLI, seen, imsi=MEGAFON)).deadline == \
        datetime(2025, 5, 31, tzinfo=UTC)  # the imported first sight starts the grace clock


def test_bad_observation_rows_are_reported_and_the_good_ones_kept(registry: Registry, tmp_path: Path) -> None:
    future = (datetime.now(UTC) + 2 * DAY).date().isoformat()
    report = observe(registry, tmp_path, f"date,imei,imsi,msisdn\n"
                                         f"2025-03-01,{A},{MEGAFON},\n"             # 2 good
                                         f"2025-03-01,{A[:-1]}X,{MEGAFON},\n"       # 3
                                         f"2025-02-30,{A},{MEGAFON},\n"             # 4
                                         f"{future},{A},{MEGAFON},\n"               # 5
                                         f"1970-01-01,{A},{MEGAFON},\n"             # 6
                                         f",{A},{MEGAFON},\n"                       # 7
                                         f"2025-03-01,{A},4360,\n"                  # 8
                                         f"2025-03-01,{A},{MEGAFON},99-2\n"         # 9
                                         f"2025-03-01,{A}\n"                        # 10
                                         f"2025-03-01,{B},{MEGAFON}\n")             # 11 good: msisdn may go
    assert report.bad == [
        BadRow(3, f"bad IMEI '{A[:-1]}X': IMEI has a non-digit 'X' at position 14"),
        BadRow(4, "bad date '2025-02-30': not an ISO date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM:SS, UTC unless "
                  "it says)"),
        BadRow(5, f"date {future} is in the future"),
        BadRow(6, "date 1970-01-01 is before 1990"),
        BadRow(7, "date is empty"),
        BadRow(8, "bad IMSI '4360': IMSI must be 6 to 15 digits, got 4"),
        BadRow(9, "bad MSISDN '99-2': MSISDN has a non-digit '-' at position 3"),
        BadRow(10, "missing column 'imsi' (2 fields, the header has 4)"),
    ]
    assert report.counts == Counts(new=2) and [row[:2] for row in sightings(registry)] == [(A, MEGAFON), (B, MEGAFON)]


def test_strict_refuses_an_observations_file_with_a_bad_row(registry: Registry, tmp_path: Path) -> None:
    rows = "".join(f"2025-03-01,{imei15(f'3520990017{n:04d}')},{MEGAFON}\n" for n in range(50))
    report = observe(registry, tmp_path, f"date,imei,imsi\n{rows}2025-03-01,1,{MEGAFON}\n", strict=True)
    assert report.refused and report.counts == Counts() and sightings(registry) == []


def test_observations_need_date_imei_and_imsi_columns(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(CsvFormatError, match="missing column 'imsi'; observations files have columns "
                                             "date,imei,imsi,msisdn"):
        observe(registry, tmp_path, f"date,imei\n2025-03-01,{A}\n")


def test_export_observations_round_trips_one_row_per_pair(registry: Registry, tmp_path: Path) -> None:
    observe(registry, tmp_path, f"date,imei,imsi,msisdn\n2025-03-01T10:15:00.250000,{A},{MEGAFON},{MSISDN}\n"
                                f"2025-04-01,{A},{MEGAFON},\n2025-01-01,{B},,\n")
    out = io.StringIO()
    assert export_csv(registry, ImportKind.OBSERVATIONS, out) == 2
    assert out.getvalue() == (f"date,imei,imsi,msisdn\n2025-03-01T10:15:00.250000Z,{imei15(A)},{MEGAFON},{MSISDN}\n"
                              f"2025-01-01T00:00:00Z,{imei15(B)},,\n")
    with Registry(f"sqlite:///{tmp_path / 'other.db'}") as other:
        assert observe(other, tmp_path, out.getvalue()).bad == []
        assert [row[:4] for row in sightings(other)] == [row[:4] for row in sightings(registry)]


# -- clearing the stolen flag ----------------------------------------------------------

def test_clearing_the_stolen_flag_writes_history_and_keeps_the_list(registry: Registry) -> None:
    registry.put_list(ListName.GREY, [(A, "first seen")], "test")
    registry.put_stolen([(A, "police 7")], "test")
    counts = registry.put_stolen([(A, "returned"), (B, "never stolen"), (C, "unknown")], "cli:unblock", stolen=False)
    assert counts == Counts(new=0, changed=1, unchanged=2)
    assert registry.lookup(A) == EquipmentFacts(A, ListName.GREY, False, "first seen", None, ())
    assert registry.lookup(C) is None  # clearing never adds an entry
    assert [(h.field, h.old, h.new, h.reason, h.source) for h in registry.history(A)][-1] == \
        (HistoryField.STOLEN, "true", "false", "returned", "cli:unblock")
    again = registry.put_stolen([(A, "returned")], "cli:unblock", stolen=False)
    assert again == Counts(0, 0, 1) and len(registry.history(A)) == 3


# -- the operators' lists --------------------------------------------------------------

def test_operator_must_be_a_home_plmn_of_the_profile() -> None:
    assert operator_prefix("436-01", TJ) == "43601"
    with pytest.raises(OperatorError, match="not MCC-MNC"):
        operator_prefix("43601", TJ)
    with pytest.raises(OperatorError, match="436-99 is not a home PLMN of profile tj"):
        operator_prefix("436-99", TJ)
    with pytest.raises(OperatorError, match="437-01 is not a home PLMN of profile tj"):
        operator_prefix("437-01", TJ)


def test_notification_lists_the_operators_pairs_of_grey_imeis(registry: Registry, tmp_path: Path) -> None:
    observe(registry, tmp_path, f"date,imei,imsi,msisdn\n"
                                f"2025-03-01,{A},{TCELL},\n"           # A: first local sight with another operator
                                f"2025-03-10,{A},{MEGAFON},{MSISDN}\n"  # ... then a SIM of ours
                                f"2025-03-05,{B},{MEGAFON},\n"          # B: white-listed
                                f"2025-01-01,{C},{MEGAFON},\n"          # C: grace over by --at
                                f"2025-03-20,{D},{ROAMER},\n"           # D: a roamer; then ours, after --at
                                f"2025-04-20,{D},{MEGAFON},\n")
    registry.put_list(ListName.WHITE, [(B, "customs")], "test")
    at = datetime(2025, 3, 15, 12, tzinfo=UTC)
    rows = list(notification_rows(registry, TJ, "43601", at))
    deadline = "2025-03-31T00:00:00Z"  # 30 days from the IMEI's first local sight, whatever the SIM
    assert rows == [(imei15(A), MEGAFON, MSISDN, deadline,
                     "not registered; 30-day window from 2025-03-01 ends 2025-03-31")]
    assert [row[:2] for row in notification_rows(registry, TJ, "43605", at)] == [(imei15(A), TCELL)]
    # the grey list is grey inside the window from its first local sight, then black: off the list
    registry.put_list(ListName.GREY, [(C, "awaiting payment")], "test")
    early = list(notification_rows(registry, TJ, "43601", datetime(2025, 1, 10, 12, tzinfo=UTC)))
    assert [(row[0], row[3], row[4]) for row in early] == [
        (imei15(C), "2025-01-31T00:00:00Z", "on the grey list (awaiting payment); the 30-day window from 2025-01-01 "
         "ends 2025-01-31")]
    later = list(notification_rows(registry, TJ, "43601", at + 40 * DAY))
    assert [(row[0], row[4]) for row in later] == [
        (imei15(D), "not registered; 30-day window from 2025-04-20 ends 2025-05-20")]  # the roaming days do not count


def test_exception_lists_the_paired_imeis_bound_to_the_operators_sims(registry: Registry) -> None:
    registry.put_pairings([(A, MEGAFON, None), (A, MEGAFON, MSISDN), (A, TCELL, None), (B, None, MSISDN),
                           (C, MEGAFON, None), (D, "436011111111111", None)], "test")
    registry.put_stolen([(C, "police")], "test")  # stolen: black whatever it is paired with
    registry.put_list(ListName.BLACK, [(D, "clone")], "test")  # left the paired list: bindings dropped
    assert list(exception_rows(registry, "43601")) == [(imei15(A), MEGAFON)]
    assert list(exception_rows(registry, "43605")) == [(imei15(A), TCELL)]


# -- the notice outbox -----------------------------------------------------------------

def queue_notices(registry: Registry, keys: list[str], at: datetime) -> None:
    recorder = Recorder(registry)
    service = EquipmentCheck(registry, TJ, recorder)
    for key in keys:
        service.answer(Query(key, Interface.S13, at, imsi=MEGAFON, msisdn=MSISDN))
    recorder.close()


def test_notices_are_exported_once_and_marked_only_when_asked(registry: Registry) -> None:
    at = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    queue_notices(registry, [A, B], at)
    out = io.StringIO()
    done = export_notices(registry, out)
    assert (done.written, done.runs) == (2, [(1, 2)])
    row = f"{MEGAFON},{MSISDN},grey,2026-03-31T08:30:00Z,not registered; 30-day window from 2026-03-01 ends " \
          f"2026-03-31,2026-03-01T08:30:00Z"
    assert out.getvalue() == (f"imei,imsi,msisdn,event,deadline,reason,created_at\n{imei15(A)},{row}\n"
                              f"{imei15(B)},{row}\n")
    queue_notices(registry, [C], at)  # queued after the file was written: not marked
    mark_exported(registry, done)
    assert export_notices(registry, io.StringIO()).runs == [(3, 3)]
    everything = io.StringIO()
    assert export_notices(registry, everything, everything=True).written == 3
    assert export_notices(registry, io.StringIO()).written == 1  # --all marks nothing


def test_runs_of_consecutive_ids_hold_only_the_ids_written() -> None:
    done = NoticeExport()
    for notice_id in (3, 4, 5, 9, 11, 12):
        done.add(notice_id)
    assert done.runs == [(3, 5), (9, 9), (11, 12)]
