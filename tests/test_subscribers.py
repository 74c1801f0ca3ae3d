"""The operator's subscriber data (registry/subscribers.py): ``eir registry import
subscribers``, its history, the MSISDN an IMSI held at a time (subscriber data first, then
imported observations), the export that imports back unchanged, and the recorder's use of
it: notices carry the number, and no notice is queued without an addressee."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.service import EquipmentCheck, Interface
from registry.decision import Decision, ListName, Notice, Query, Status
from registry.imports import ImportKind, ImportReport, export_csv, import_file
from registry.observations import Observations, Recorder
from registry.profile import Profile
from registry.store import Counts, Registry
from tests.postgres import stored_rows

IMSI_A, IMSI_B, IMSI_C = "436011000000001", "436011000000002", "436011000000003"
NUMBER_1, NUMBER_2, NUMBER_3 = "992901000001", "992901000002", "992901000003"
KEY = "35209900100001"


def load(registry: Registry, folder: Path, text: str, kind: ImportKind = ImportKind.SUBSCRIBERS,
         strict: bool = False) -> ImportReport:
    path = folder / f"{kind.value}.csv"
    path.write_text(text, encoding="utf-8")
    return import_file(registry, kind, path, strict=strict)


def rows(registry: Registry) -> list[tuple[str, str, str | None, str | None]]:
    return stored_rows(registry.engine, "SELECT imsi, msisdn, valid_from, valid_until FROM subscriber ORDER BY id")


def held(registry: Registry, imsi: str, at: datetime) -> str | None:
    return Observations(registry).msisdn(imsi, at)


NOW = datetime.now(UTC)
LONG_AGO = datetime(2001, 1, 1, tzinfo=UTC)


def test_first_rows_hold_as_far_back_as_known_and_a_repeat_is_unchanged(registry: Registry, tmp_path: Path) -> None:
    report = load(registry, tmp_path, f"imsi,msisdn\n{IMSI_A},+{NUMBER_1}\n{IMSI_B},{NUMBER_2}\n")
    assert (report.counts, report.bad) == (Counts(new=2), [])
    assert [(r[0], r[1], r[2], r[3]) for r in rows(registry)] == [(IMSI_A, NUMBER_1, None, None),
                                                                   (IMSI_B, NUMBER_2, None, None)]
    assert held(registry, IMSI_A, LONG_AGO) == NUMBER_1 and held(registry, IMSI_B, NOW) == NUMBER_2
    assert held(registry, IMSI_C, NOW) is None
    again = load(registry, tmp_path, f"msisdn,imsi\n{NUMBER_1},{IMSI_A}\n")
    assert again.counts == Counts(unchanged=1) and len(rows(registry)) == 2


def test_a_number_moving_to_another_sim_closes_the_old_row(registry: Registry, tmp_path: Path) -> None:
    load(registry, tmp_path, f"imsi,msisdn\n{IMSI_A},{NUMBER_1}\n{IMSI_B},{NUMBER_2}\n")
    swap = datetime(2026, 6, 1, tzinfo=UTC)
    # the subscriber of NUMBER_1 gets a new SIM (IMSI_C) on 1 June; IMSI_B gets another number today
    report = load(registry, tmp_path, f"imsi,msisdn,date\n{IMSI_C},{NUMBER_1},2026-06-01\n{IMSI_B},{NUMBER_3},\n")
    assert report.counts == Counts(new=1, changed=1)
    assert held(registry, IMSI_A, swap - timedelta(seconds=1)) == NUMBER_1
    assert held(registry, IMSI_A, swap) is None
    assert held(registry, IMSI_C, swap) == NUMBER_1 and held(registry, IMSI_C, swap - timedelta(days=1)) is None
    assert held(registry, IMSI_B, NOW - timedelta(days=1)) == NUMBER_2  # its change holds from the import
    assert held(registry, IMSI_B, datetime.now(UTC)) == NUMBER_3
    assert len(rows(registry)) == 4  # history: the closed rows stay


def test_bad_and_duplicate_rows_are_reported_with_their_lines(registry: Registry, tmp_path: Path) -> None:
    report = load(registry, tmp_path, f"imsi,msisdn\n{IMSI_A},{NUMBER_1}\n{IMSI_A},{NUMBER_2}\n{IMSI_B},{NUMBER_1}\n"
                                      f"abc,{NUMBER_3}\n{IMSI_C},\n{IMSI_C},{NUMBER_3}\n")
    assert [(bad.line, bad.reason) for bad in report.bad] == [
        (3, f"duplicate: IMSI {IMSI_A} already on line 2"),
        (4, f"duplicate: MSISDN {NUMBER_1} already on line 2"),
        (5, "bad IMSI 'abc': IMSI has a non-digit 'a' at position 1"),
        (6, "MSISDN is empty: a subscriber row needs both")]
    assert report.counts == Counts(new=2)
    strict = load(registry, tmp_path, f"imsi,msisdn\n{IMSI_B},{NUMBER_2}\n{IMSI_B},x\n", strict=True)
    assert strict.refused and held(registry, IMSI_B, NOW) is None


def test_the_export_imports_back_unchanged(registry: Registry, tmp_path: Path) -> None:
    load(registry, tmp_path, f"imsi,msisdn,date\n{IMSI_A},{NUMBER_1},\n{IMSI_B},{NUMBER_2},2026-05-01T10:00:00\n")
    load(registry, tmp_path, f"imsi,msisdn\n{IMSI_C},{NUMBER_1}\n")
    out = io.StringIO()
    assert export_csv(registry, ImportKind.SUBSCRIBERS, out) == 2
    text = out.getvalue()
    assert text.splitlines()[0] == "imsi,msisdn,date"
    assert f"{IMSI_B},{NUMBER_2},2026-05-01T10:00:00Z" in text and IMSI_A not in text
    again = load(registry, tmp_path, text)
    assert (again.counts, again.bad) == (Counts(unchanged=2), [])


def test_imported_observations_give_a_number_when_the_subscriber_data_do_not(registry: Registry,
                                                                          tmp_path: Path) -> None:
    load(registry, tmp_path, f"date,imei,imsi,msisdn\n2026-01-10,{KEY},{IMSI_A},{NUMBER_1}\n", ImportKind.OBSERVATIONS)
    assert held(registry, IMSI_A, NOW) == NUMBER_1
    assert held(registry, IMSI_A, datetime(2026, 1, 9, tzinfo=UTC)) is None  # not known yet then
    load(registry, tmp_path, f"imsi,msisdn\n{IMSI_A},{NUMBER_2}\n")
    assert held(registry, IMSI_A, NOW) == NUMBER_2  # the subscriber data win


def test_a_paired_imei_matches_through_the_number_of_its_sim(registry: Registry, tmp_path: Path, tj: Profile) -> None:
    registry.put_pairings([(KEY, None, NUMBER_1)], "test")
    load(registry, tmp_path, f"imsi,msisdn\n{IMSI_A},{NUMBER_1}\n")
    service = EquipmentCheck(registry, tj)
    bound = service.check(Query(KEY, Interface.CLI, NOW, imsi=IMSI_A))
    assert (bound.status, bound.rule) == (Status.WHITE, "paired-match")
    other = service.check(Query(KEY, Interface.CLI, NOW, imsi=IMSI_B))
    assert (other.status, other.rule) == (Status.BLACK, "paired-mismatch")
    # after the number moved to another SIM, the old SIM no longer matches
    load(registry, tmp_path, f"imsi,msisdn\n{IMSI_B},{NUMBER_1}\n")
    later = datetime.now(UTC)
    assert service.check(Query(KEY, Interface.CLI, later, imsi=IMSI_A)).rule == "paired-mismatch"
    assert service.check(Query(KEY, Interface.CLI, later, imsi=IMSI_B)).rule == "paired-match"


# -- the recorder: notices' addressees -------------------------------------------------

def outbox(registry: Registry) -> list[tuple[str, str, str | None, str]]:
    return stored_rows(registry.engine, "SELECT imei, imsi, msisdn, event FROM notice ORDER BY id")


def test_notices_carry_the_number_and_none_goes_without_an_addressee(registry: Registry, tmp_path: Path,
                                                                     tj: Profile) -> None:
    load(registry, tmp_path, f"imsi,msisdn\n{IMSI_A},{NUMBER_1}\n")
    recorder = Recorder(registry)
    service = EquipmentCheck(registry, tj, recorder)
    service.answer(Query(KEY, Interface.S13, NOW, imsi=IMSI_A))
    service.answer(Query("35209900100002", Interface.MAP, NOW))  # MAP v3: no IMSI, none seen
    service.answer(Query("35209900100003", Interface.S13, NOW, imsi=IMSI_B))  # no number known
    assert recorder.commit()
    assert outbox(registry) == [(KEY, IMSI_A, NUMBER_1, "grey"), ("35209900100003", IMSI_B, None, "grey")]
    assert recorder.unaddressed == 1
    recorder.close()


@settings(max_examples=max(50, settings.default.max_examples // 50), deadline=None)
@given(imsi=st.sampled_from([None, "", IMSI_A, IMSI_B]), msisdn=st.sampled_from([None, NUMBER_2]),
       inferred=st.sampled_from([None, IMSI_C]), events=st.lists(st.sampled_from(["grey", "reminder-7d", "black"]),
                                                                 min_size=1, max_size=3, unique=True))
def test_no_notice_is_queued_without_an_addressee(tmp_path_factory: pytest.TempPathFactory, imsi: str | None,
                                                  msisdn: str | None, inferred: str | None,
                                                  events: list[str]) -> None:
    """Whatever the query and the decision: every notice queued names an IMSI or an MSISDN,
    the query's, the IMSI the decision was made with, or the number the data give it."""
    folder = tmp_path_factory.mktemp("outbox")
    with Registry(f"sqlite:///{folder / 'r.db'}") as registry:
        load(registry, folder, f"imsi,msisdn\n{IMSI_A},{NUMBER_1}\n")
        recorder = Recorder(registry)
        decision = Decision(Status.GREY, "grace", "test", KEY, NOW, tuple(Notice(e, NOW) for e in events),
                            imsi=inferred)
        recorder.observe(KEY, Query(KEY, Interface.MAP, NOW, None, imsi, msisdn), None, decision)
        assert recorder.commit()
        queued = outbox(registry)
        recorder.close()
    assert all(row[1] or row[2] for row in queued), queued
    addressed = bool(imsi or inferred or msisdn)
    assert len(queued) == (len(events) if addressed else 0)
    for _, to, number, _ in queued:
        assert to == (imsi or inferred or "")
        assert number == (msisdn or (NUMBER_1 if to == IMSI_A else None))


def test_an_automatic_entry_is_written_once_with_its_history(registry: Registry, tj: Profile) -> None:
    registry.put_tacs([("86000001", "Acme", "R1", "WLAN Router")])
    recorder = Recorder(registry)
    service = EquipmentCheck(registry, tj, recorder)
    key = "86000001000017"
    first = service.answer(Query(key, Interface.S13, NOW, imsi=IMSI_A))
    assert (first.status, first.rule) == (Status.WHITE, "auto-entered") and recorder.waiting
    service.answer(Query(key, Interface.S13, NOW, imsi=IMSI_B))  # a second one before the commit
    assert recorder.commit()
    facts = registry.lookup(key)
    assert facts is not None and facts.list is ListName.WHITE and "WLAN Router" in (facts.reason or "")
    entry = registry.entry(key)
    assert entry is not None and entry.source == "auto-entry"
    assert [(h.old, h.new, h.source) for h in registry.history(key)] == [(None, "white", "auto-entry")]
    again = service.answer(Query(key, Interface.S13, NOW, imsi=IMSI_A))
    assert (again.status, again.rule) == (Status.WHITE, "white-list")
    recorder.close()
